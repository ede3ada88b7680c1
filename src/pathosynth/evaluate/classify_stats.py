"""The statistics of `pathosynth evaluate classify` (the rule is in `evaluate/classify.py`'s docstring),
built from `evaluate/stats.py`: per-repeat metrics, the patient bootstrap of the repeat-averaged
metrics, paired McNemar/DeLong tests on the repeats' ensemble and paired bootstrap differences."""

from __future__ import annotations

import math
import warnings

import numpy as np

from pathosynth.evaluate import stats

METRICS = ("sensitivity", "specificity", "accuracy", "roc_auc", "average_precision")
THRESHOLD = 0.5
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


def statistics(real, rows, options: tuple[bool, ...], repeats: int, cells: dict, settings, seed: int) -> dict:
    """Every number of results.json but the notes, counts and timing; `cells[(pretrained, repeat, row id)]`
    holds a cell's test scores."""
    y = real.labels("test")
    patients = np.array([s.patient_id for s in real.splits["test"]])
    groups = []
    for p in options:
        entries = []
        ensembles, all_scores = {}, {}
        for row in rows:
            scores = np.stack([np.asarray(cells[(p, r, row.id)]["scores"], dtype=np.float64)
                               for r in range(repeats)], 1)
            per_repeat = [stats.binary_metrics(y, scores[:, r], THRESHOLD) for r in range(repeats)]
            metrics = {}
            for name in METRICS:
                values = [m[name] for m in per_repeat]
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    interval = stats.patient_bootstrap(y, scores, patients, _METRIC_FUNCTIONS[name],
                                                       n_boot=settings.n_boot, seed=seed)
                metrics[name] = {"mean": interval.point, "low": interval.low, "high": interval.high,
                                 "sd": float(np.std(values, ddof=1)) if repeats > 1 else None,
                                 "repeats": values, "bootstrap_skipped": interval.n_skipped,
                                 **({"warning": str(caught[0].message)} if caught else {})}
            ensemble = scores.mean(1)
            ensembles[row.id] = ensemble
            all_scores[row.id] = scores
            first = [cells[(p, r, row.id)] for r in range(repeats)]
            entries.append({"setup": row.id, "kind": row.kind, "synthetic": row.synthetic,
                            "training_images": first[0]["training_images"], "metrics": metrics,
                            "ensemble": stats.binary_metrics(y, ensemble, THRESHOLD),
                            "epochs": [c["epochs"] for c in first], "best_epochs": [c["best_epoch"] for c in first],
                            "best_val_loss": [min(h["val_loss"] for h in c["history"]) for c in first]})
        baseline = ensembles.get("real")
        for entry in entries:
            if baseline is None or entry["setup"] == "real":
                entry["tests_vs_real"] = None
                entry["difference_vs_real"] = None
                continue
            paired = np.concatenate([all_scores[entry["setup"]], all_scores["real"]], 1)
            entry["difference_vs_real"] = {name: _difference(y, paired, patients, name, repeats, settings.n_boot, seed)
                                           for name in METRICS}
            ours = ensembles[entry["setup"]]
            mcnemar = stats.paired_sensitivity_specificity_tests(y, ours >= THRESHOLD, baseline >= THRESHOLD)
            try:
                delong = stats.delong_test(y, ours, baseline)
            except ValueError as error:
                delong = {"p": None, "error": str(error)}
            entry["tests_vs_real"] = {"sensitivity_mcnemar": mcnemar["sensitivity"],
                                      "specificity_mcnemar": mcnemar["specificity"], "auc_delong": delong}
        # The question the papers ask of GAN DA: does it add anything to classic DA alone?
        classic = all_scores.get("classic")
        for entry in entries:
            entry["difference_vs_classic"] = None
            if classic is not None and entry["kind"] == "classic+gan":
                paired = np.concatenate([all_scores[entry["setup"]], classic], 1)
                entry["difference_vs_classic"] = {name: _difference(y, paired, patients, name, repeats,
                                                                    settings.n_boot, seed) for name in METRICS}
        groups.append({"pretrained": p, "rows": entries})
    return {"format": FORMAT, "positive": real.positive, "negative": real.negative,
            "test": {"images": int(len(y)), "positive": int(y.sum()), "negative": int(len(y) - y.sum()),
                     "patients": int(len(set(patients)))},
            "threshold": THRESHOLD, "repeats": repeats, "bootstrap": {"resamples": settings.n_boot, "level": 0.95,
                                                                      "unit": "patient", "seed": seed},
            "ci_rule": ("point: mean over repeats of the metric on the test split; interval: 95% percentile bootstrap "
                        "over test patients, each resample averaging the repeats' metrics; sd: repeats' standard "
                        "deviation; tests vs real: McNemar (sensitivity on positives, specificity on negatives) and "
                        "DeLong (AUC) on the repeat-averaged probabilities, positive at >= 0.5"),
            "groups": groups}


def _difference(y: np.ndarray, paired: np.ndarray, patients: np.ndarray, name: str, repeats: int, n_boot: int,
                seed: int) -> dict:
    """The setup's repeat-mean metric minus the baseline's, with a paired patient-bootstrap interval
    (the same resampled patients for both): unlike the slice-level McNemar and DeLong tests, it
    allows for the correlation of one patient's slices."""
    function = _METRIC_FUNCTIONS[name]

    def difference(y_: np.ndarray, s: np.ndarray) -> float:
        return function(y_, s[:, :repeats]) - function(y_, s[:, repeats:])

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.patient_bootstrap(y, paired, patients, difference, n_boot=n_boot, seed=seed)
    return {"mean": interval.point, "low": interval.low, "high": interval.high}
