"""The statistics of `pathosynth evaluate classify` (the rule is in `evaluate/classify.py`'s docstring),
built from `evaluate/stats.py`: per-repeat metrics, the patient bootstrap of the repeat-averaged
metrics, paired McNemar/DeLong tests on the repeats' ensemble and paired bootstrap differences."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from scipy import stats as scipy_stats

from pathosynth.evaluate import stats

THRESHOLD_METRICS = ("sensitivity", "specificity", "accuracy", "roc_auc", "average_precision")
# At the operating point fixed on validation (see `operating_thresholds`): adding images of one class
# moves a classifier's calibration, so a 0.5 threshold can trade specificity for sensitivity
# without the model seeing lesions any better.
FIXED_METRICS = ("sensitivity_at_fixed_specificity", "specificity_at_fixed_specificity")
METRICS = THRESHOLD_METRICS + FIXED_METRICS
PRIMARY = ("roc_auc", "sensitivity_at_fixed_specificity")  # threshold-free, and at a fixed operating point
THRESHOLD = 0.5
COMPETENCE_FLOOR = 0.80  # below this real-only test AUC, the classifier cannot judge what augmentation adds
# Fewer test patients than this and the patient bootstrap has too little to resample: no headline then
MIN_TEST_PATIENTS = 20
FORMAT = "pathosynth-classify"


def _threshold_metric(name: str):
    """metric(y, S) for scores S (n, R): the metric of every column at THRESHOLD, averaged over
    the columns; the definitions of `stats.binary_metrics` (positive when score >= threshold)."""

    def metric(y: np.ndarray, s: np.ndarray) -> float:
        predicted = s >= THRESHOLD
        truth = (y == 1)[:, None]
        if name == "sensitivity":
            n = truth.sum()
            return float((predicted & truth).sum(0).mean() / n) if n else math.nan
        if name == "specificity":
            n = (~truth).sum()
            return float((~predicted & ~truth).sum(0).mean() / n) if n else math.nan
        return float((predicted == truth).mean()) if len(y) else math.nan

    return metric


def _ranking_metric(function):
    def metric(y: np.ndarray, s: np.ndarray) -> float:
        return float(np.mean([function(y, s[:, r]) for r in range(s.shape[1])]))

    return metric


_METRIC_FUNCTIONS = {"sensitivity": _threshold_metric("sensitivity"), "specificity": _threshold_metric("specificity"),
                     "accuracy": _threshold_metric("accuracy"), "roc_auc": _ranking_metric(stats.roc_auc),
                     "average_precision": _ranking_metric(stats.average_precision)}


def _fixed_point_metric(name: str, thresholds: np.ndarray):
    """metric(y, S) for scores S (n, R): column r is positive where it exceeds thresholds[r]; the
    sensitivity or specificity of every column, averaged over the columns."""

    def metric(y: np.ndarray, s: np.ndarray) -> float:
        predicted = s > thresholds[None, :]
        wanted = (y == 1) if name.startswith("sensitivity") else (y == 0)
        if not wanted.any():
            return math.nan
        hits = predicted[wanted] if name.startswith("sensitivity") else ~predicted[wanted]
        return float(hits.mean(0).mean())

    return metric


def metric_function(name: str, thresholds: np.ndarray | None = None):
    return _fixed_point_metric(name, thresholds) if name in FIXED_METRICS else _METRIC_FUNCTIONS[name]


def target_specificity(val_y: np.ndarray, real_val_scores: np.ndarray) -> float:
    """The specificity the real-only model reaches on the validation split at 0.5, averaged over
    its repeats: the operating point every setup is then held to."""
    negatives = val_y == 0
    return float(np.mean([(real_val_scores[negatives, r] < THRESHOLD).mean() for r in range(real_val_scores.shape[1])]))


def operating_thresholds(val_y: np.ndarray, val_scores: np.ndarray, specificity: float) -> np.ndarray:
    """Each repeat's own threshold giving `specificity` on the validation negatives (fixed on
    validation, then applied unchanged to the test split)."""
    negatives = val_y == 0
    return np.array([stats.threshold_for_specificity(val_scores[negatives, r], specificity)
                     for r in range(val_scores.shape[1])])


@dataclass
class _Experiment:
    """What every row's statistics read: test and validation labels, test patients, the cells."""

    y: np.ndarray
    val_y: np.ndarray
    patients: np.ndarray
    repeats: int
    cells: dict
    n_boot: int
    seed: int

    def matrix(self, pretrained: bool, row_id: str, key: str) -> np.ndarray:
        """(images, repeats): a row's scores of every training run."""
        return np.stack([np.asarray(self.cells[(pretrained, r, row_id)][key], dtype=np.float64)
                         for r in range(self.repeats)], 1)


def statistics(real, rows, options: tuple[bool, ...], repeats: int, cells: dict, settings, seed: int) -> dict:
    """Every number of results.json but the notes, counts and timing; `cells[(pretrained, repeat, row id)]`
    holds a cell's test scores."""
    experiment = _Experiment(real.labels("test"), real.labels("val"),
                             np.array([s.patient_id for s in real.splits["test"]]), repeats, cells, settings.n_boot,
                             seed)
    y, patients = experiment.y, experiment.patients
    return {"format": FORMAT, "positive": real.positive, "negative": real.negative,
            "test": {"images": int(len(y)), "positive": int(y.sum()), "negative": int(len(y) - y.sum()),
                     "patients": int(len(set(patients))), "minimum_patients": MIN_TEST_PATIENTS},
            "threshold": THRESHOLD, "repeats": repeats, "bootstrap": {"resamples": settings.n_boot, "level": 0.95,
                                                                      "unit": "patient", "seed": seed},
            "ci_rule": ("point: mean over repeats of the metric on the test split; interval: 95% percentile bootstrap "
                        "over test patients, each resample averaging the repeats' metrics; sd: repeats' standard "
                        "deviation; tests vs real: McNemar (sensitivity on positives, specificity on negatives) and "
                        "DeLong (AUC) on the repeat-averaged probabilities, positive at >= 0.5; "
                        "*_at_fixed_specificity: at each model's own threshold fixed on validation (see "
                        "operating_point); differences: paired patient bootstrap, mdd = (z_0.975 + z_0.8) x its "
                        "standard error; runs: each training run's difference (repeat r vs repeat r); robust "
                        "interval: mean -+ t x sqrt(bootstrap SE^2 + pooled run variance / repeats), the run "
                        "variance pooled over the comparisons (synthetic-only rows left out), t with "
                        "Welch-Satterthwaite degrees of freedom (training_noise)"),
            "groups": [_group(experiment, p, rows) for p in options]}


def _group(experiment: _Experiment, pretrained: bool, rows) -> dict:
    """One weight initialisation's rows: metrics, differences to real and to classic DA, the noise."""
    has_real = any(row.id == "real" for row in rows)
    target = (target_specificity(experiment.val_y, experiment.matrix(pretrained, "real", "val_scores"))
              if has_real else None)
    entries, scores, thresholds = [], {}, {}
    for row in rows:
        scores[row.id] = experiment.matrix(pretrained, row.id, "scores")
        validation = experiment.matrix(pretrained, row.id, "val_scores")
        thresholds[row.id] = (operating_thresholds(experiment.val_y, validation, target) if has_real
                              else np.full(experiment.repeats, math.nan))
        entries.append(_row_entry(experiment, pretrained, row, scores[row.id], thresholds[row.id], has_real))
    _compare(experiment, entries, scores, thresholds)
    training_noise = add_robust_intervals(entries, experiment.repeats)
    real_auc = next((e["metrics"]["roc_auc"]["mean"] for e in entries if e["setup"] == "real"), None)
    return {"pretrained": pretrained, "rows": entries, "training_noise": training_noise,
            "operating_point": {"target_specificity": target, "rule": OPERATING_RULE} if has_real else None,
            "competence": None if real_auc is None else {
                "real_auc": real_auc, "floor": COMPETENCE_FLOOR, "competent": real_auc >= COMPETENCE_FLOOR}}


def _row_entry(experiment: _Experiment, pretrained: bool, row, scores: np.ndarray, thresholds: np.ndarray,
               has_real: bool) -> dict:
    y, repeats = experiment.y, experiment.repeats
    per_repeat = [_repeat_metrics(y, scores[:, r], thresholds[r]) for r in range(repeats)]
    metrics = {}
    for name in METRICS if has_real else THRESHOLD_METRICS:
        values = [m[name] for m in per_repeat]
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            interval = stats.patient_bootstrap(y, scores, experiment.patients, metric_function(name, thresholds),
                                               n_boot=experiment.n_boot, seed=experiment.seed)
        metrics[name] = {"mean": interval.point, "low": interval.low, "high": interval.high,
                         "sd": float(np.std(values, ddof=1)) if repeats > 1 else None,
                         "repeats": values, "bootstrap_skipped": interval.n_skipped,
                         **({"warning": str(caught[0].message)} if caught else {})}
    first = [experiment.cells[(pretrained, r, row.id)] for r in range(repeats)]
    return {"setup": row.id, "kind": row.kind, "synthetic": row.synthetic,
            "training_images": first[0]["training_images"], "metrics": metrics,
            "operating_thresholds": [float(t) for t in thresholds],
            "ensemble": stats.binary_metrics(y, scores.mean(1), THRESHOLD),
            "epochs": [c["epochs"] for c in first], "best_epochs": [c["best_epoch"] for c in first],
            "best_val_loss": [min(h["val_loss"] for h in c["history"]) for c in first]}


def _compare(experiment: _Experiment, entries: list[dict], scores: dict, thresholds: dict) -> None:
    """Each row's paired differences and tests against real only, and GAN DA's against classic DA."""
    y, patients = experiment.y, experiment.patients

    def differences(setup: str, reference: str) -> dict:
        return _differences(y, patients, setup, reference, scores, thresholds, experiment.repeats,
                            experiment.n_boot, experiment.seed)

    baseline = scores["real"].mean(1) if "real" in scores else None
    for entry in entries:
        entry["tests_vs_real"], entry["difference_vs_real"] = None, None
        if baseline is not None and entry["setup"] != "real":
            entry["difference_vs_real"] = differences(entry["setup"], "real")
            entry["tests_vs_real"] = _tests(y, scores[entry["setup"]].mean(1), baseline)
    # The question the papers ask of GAN DA: does it add anything to classic DA alone?
    for entry in entries:
        entry["difference_vs_classic"] = None
        if "classic" in scores and entry["kind"] == "classic+gan":
            entry["difference_vs_classic"] = differences(entry["setup"], "classic")


def _tests(y: np.ndarray, ours: np.ndarray, baseline: np.ndarray) -> dict:
    mcnemar = stats.paired_sensitivity_specificity_tests(y, ours >= THRESHOLD, baseline >= THRESHOLD)
    try:
        delong = stats.delong_test(y, ours, baseline)
    except ValueError as error:
        delong = {"p": None, "error": str(error)}
    return {"sensitivity_mcnemar": mcnemar["sensitivity"], "specificity_mcnemar": mcnemar["specificity"],
            "auc_delong": delong}


OPERATING_RULE = ("target specificity: the real-only model's validation specificity at 0.5, averaged over its "
                  "repeats; each trained model gets its own threshold reaching it on the validation negatives, "
                  "applied unchanged to the test split")


def _repeat_metrics(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    found = stats.binary_metrics(y, scores, THRESHOLD)
    if not math.isnan(threshold):  # nan: no real-only row fixed an operating point
        for name in FIXED_METRICS:
            found[name] = _fixed_point_metric(name, np.array([threshold]))(y, scores[:, None])
    return found


def _differences(y, patients, setup: str, baseline: str, scores: dict, thresholds: dict, repeats: int, n_boot: int,
                 seed: int) -> dict:
    paired = np.concatenate([scores[setup], scores[baseline]], 1)
    both = np.concatenate([thresholds[setup], thresholds[baseline]])
    names = THRESHOLD_METRICS if np.isnan(both).any() else METRICS
    return {name: _difference(y, paired, patients, metric_function(name, both[:repeats]),
                              metric_function(name, both[repeats:]), _per_run(y, paired, both, name, repeats),
                              repeats, n_boot, seed) for name in names}


def _per_run(y: np.ndarray, paired: np.ndarray, thresholds: np.ndarray, name: str, repeats: int) -> list[float]:
    """Each training run's difference on the whole test split: repeat r of the setup minus repeat r of
    the baseline (the same seed)."""
    def one(column: int) -> float:
        return metric_function(name, thresholds[column:column + 1])(y, paired[:, column:column + 1])

    return [one(r) - one(repeats + r) for r in range(repeats)]


def _difference(y: np.ndarray, paired: np.ndarray, patients: np.ndarray, ours, theirs, runs: list[float],
                repeats: int, n_boot: int, seed: int) -> dict:
    """The setup's repeat-mean metric minus the baseline's, with a paired patient-bootstrap interval
    (the same resampled patients for both): unlike the slice-level McNemar and DeLong tests, it
    allows for the correlation of one patient's slices. `mdd`: the smallest difference this test
    split detects with 80% power at the 5% level, from the bootstrap's standard error.

    `runs` are the per-run differences and `se` the bootstrap's standard error, from which
    `add_robust_intervals` widens the interval by the training runs' spread."""

    def difference(y_: np.ndarray, s: np.ndarray) -> float:
        return ours(y_, s[:, :repeats]) - theirs(y_, s[:, repeats:])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.patient_bootstrap(y, paired, patients, difference, n_boot=n_boot, seed=seed)
    # a difference that never varies over the resamples (identical or degenerate predictions) says
    # nothing about what the split could detect: no MDD then
    spread = interval.standard_error
    mdd = stats.minimum_detectable_difference(spread) if math.isfinite(spread) and spread > 1e-9 else math.nan
    runs_sd = float(np.std(runs, ddof=1)) if len(runs) > 1 else math.nan
    return {"mean": interval.point, "low": interval.low, "high": interval.high, "mdd": mdd, "se": spread,
            "runs": [float(v) for v in runs], "runs_sd": runs_sd}


def add_robust_intervals(entries: list[dict], repeats: int) -> dict:
    """Widen every paired difference's interval by the training noise: `robust_low`/`robust_high`.

    The patient bootstrap holds the trained models fixed, but another seed, or the same seed on
    another CPU (other rounding, so another training trajectory), trains other models. The
    variance of one run's difference, estimated per comparison from `repeats` runs, is pooled over
    the experiment's comparisons (two runs alone give a variance estimate too noisy to trust:
    measured, two AVX2-capped runs agreed within 0.6 points where two native ones differed by 5);
    train-on-synthetic-only rows are left out of the pool (another training regime, far noisier).
    Interval: mean -+ t x sqrt(SE_boot^2 + pooled variance / repeats), t with Welch-Satterthwaite
    degrees of freedom (the bootstrap term counted as exact). Returns the pooled standard
    deviation and its degrees of freedom per metric; with one run everything stays nan."""
    comparisons = [d for e in entries if e["kind"] != "synthetic-only"
                   for d in (e.get("difference_vs_real"), e.get("difference_vs_classic")) if d]
    pooled = {}
    for name in dict.fromkeys(n for d in comparisons for n in d):  # ordered: results.json keeps its key order
        variances = [d[name]["runs_sd"] ** 2 for d in comparisons
                     if name in d and math.isfinite(d[name]["runs_sd"])]
        df = len(variances) * (repeats - 1)
        variance = float(np.mean(variances)) if df else math.nan
        pooled[name] = {"sd": math.sqrt(variance) if df else math.nan, "df": df}
        for entry in entries:
            for d in (entry.get("difference_vs_real"), entry.get("difference_vs_classic")):
                if d and name in d:
                    d[name].update(_robust_interval(d[name], variance, df, repeats))
    return pooled


def _robust_interval(metric: dict, variance: float, df: int, repeats: int) -> dict:
    training = variance / repeats
    total = metric["se"] ** 2 + training
    if not (df and math.isfinite(total)):
        return {"robust_low": math.nan, "robust_high": math.nan}
    effective_df = total ** 2 / (training ** 2 / df) if training > 0 else math.inf
    quantile = NormalDist().inv_cdf(0.975) if math.isinf(effective_df) else scipy_stats.t.ppf(0.975, effective_df)
    half = float(quantile) * math.sqrt(total)
    return {"robust_low": metric["mean"] - half, "robust_high": metric["mean"] + half}
