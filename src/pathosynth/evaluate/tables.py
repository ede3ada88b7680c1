"""Markdown tables and plots for the `evaluate` reports.

`classification_table` lays results out as the papers' Table 1 (two-step GAN paper): one row per
DA setup, the real-only baseline first. The primary answer comes first: ROC AUC (threshold-free) and
sensitivity at the specificity the real-only model reaches on validation (METHODS section 10; the
sensitivity-first question of section 6 without a threshold that moves with the class balance);
then the papers' 0.5-threshold sensitivity, specificity and accuracy and average precision, each as
mean +- sd over the repeats with the 95% patient-bootstrap interval, and the paired tests' p values
against the baseline; differences carry the smallest difference detectable at 80% power.
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np

_NAMES = {"real": "Real only", "classic": "+ {n} classic DA", "gan": "+ {n} GAN DA ({s})",
          "classic+gan": "+ {n} classic DA & {n} GAN DA ({s})", "synthetic-only": "Synthetic only ({s}, {m} images)"}


def setup_name(entry: dict, extra: int) -> str:
    images = entry["training_images"]["total"]
    return _NAMES[entry["kind"]].format(n=f"{extra:,}", s=entry["synthetic"], m=f"{images:,}")


def _percent(metric: dict) -> str:
    return _format(metric, 100.0, 1)


def _fraction(metric: dict) -> str:
    return _format(metric, 1.0, 3)


def _format(metric: dict, scale: float, digits: int) -> str:
    if metric["mean"] is None or not math.isfinite(metric["mean"]):
        return "undefined"
    text = f"{metric['mean'] * scale:.{digits}f}"
    if metric.get("sd") is not None and math.isfinite(metric["sd"]):
        text += f" ± {metric['sd'] * scale:.{digits}f}"
    if math.isfinite(metric["low"]) and math.isfinite(metric["high"]):
        text += f" ({metric['low'] * scale:.{digits}f}–{metric['high'] * scale:.{digits}f})"
    return text


def _signed(metric: dict, scale: float, digits: int, power: bool = False) -> str:
    values = [metric[k] for k in ("mean", "low", "high")]
    if any(v is None or not math.isfinite(v) for v in values):
        return "undefined"
    mean, low, high = (v * scale for v in values)
    text = f"{mean:+.{digits}f} ({low:+.{digits}f} to {high:+.{digits}f})"
    mdd = metric.get("mdd")
    if power and mdd is not None and math.isfinite(mdd):
        text += f" ±{mdd * scale:.{digits}f}"
    if power and len(metric.get("runs") or []) > 1:
        text += " [runs " + ", ".join(f"{v * scale:+.{digits}f}" for v in metric["runs"]) + "]"
    return text


def _p(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def classification_table(results: dict, config: dict) -> str:
    extra = results["extra_images"]["used"]
    test = results["test"]
    real = config["real"]
    lines = [f"# Classification on the real test split: {results['positive']} vs {results['negative']}", ""]
    lines.append(f"Real set `{real['path']}`: train {real['images']['train']['total']:,} images "
                 f"({real['patients']['train']} patients), val {real['images']['val']['total']:,} "
                 f"({real['patients']['val']}), test {test['images']:,} ({test['patients']} patients; "
                 f"{test['positive']:,} {results['positive']}, {test['negative']:,} {results['negative']}). "
                 f"Preset `{config['preset']['name']}` ({config['preset']['size']} px), {results['repeats']} "
                 f"repeat(s), seed {config['seed']}; extra images per DA setup: {extra:,} "
                 f"(ratio {extra / max(real['images']['train']['total'], 1):.3g} of the real training images), "
                 "in the real training class balance.")
    lines.append("")
    for group in results["groups"]:
        lines += _group_tables(group, config, extra)
    lines += _footnote(results)
    if results.get("notes"):
        lines += ["Notes:", ""] + [f"- {note}" for note in results["notes"]] + [""]
    return "\n".join(lines)


def _group_tables(group: dict, config: dict, extra: int) -> list[str]:
    key = "pretrained" if group["pretrained"] else "scratch"
    title = "ImageNet-pretrained" if group["pretrained"] else "Trained from scratch"
    lines = [f"## {title}: {config['networks'][key]}", ""]
    point = group.get("operating_point")
    fixed = point is not None
    if fixed:
        lines += [f"Primary: ROC AUC, and sensitivity at the specificity the real-only model reaches on the "
                  f"validation split ({100 * point['target_specificity']:.1f}%), each model's threshold fixed on "
                  "validation and applied unchanged to the test split. Secondary: the 0.5-threshold numbers, which "
                  "move with the class balance of what was added.", ""]
    competence = group.get("competence")
    if competence and not competence["competent"]:
        lines += [f"**The real-only classifier is too weak to judge augmentation: test AUC "
                  f"{competence['real_auc']:.3f} < {competence['floor']:.2f}.**", ""]
    header = ["DA setup", "Training images", "ROC AUC"]
    header += ["Sensitivity at fixed specificity (%)", "Specificity there (%)"] if fixed else []
    header += ["Sensitivity at 0.5 (%)", "Specificity at 0.5 (%)", "Accuracy at 0.5 (%)", "Average precision",
               "p sensitivity", "p specificity", "p AUC"]
    lines += ["| " + " | ".join(header) + " |", "| --- | " + " | ".join(["---:"] * (len(header) - 1)) + " |"]
    for entry in group["rows"]:
        m = entry["metrics"]
        tests = entry["tests_vs_real"] or {}
        cells = [setup_name(entry, extra), f"{entry['training_images']['total']:,}", _fraction(m["roc_auc"])]
        if fixed:
            cells += [_percent(m["sensitivity_at_fixed_specificity"]), _percent(m["specificity_at_fixed_specificity"])]
        cells += [_percent(m["sensitivity"]), _percent(m["specificity"]), _percent(m["accuracy"]),
                  _fraction(m["average_precision"])]
        cells += [_p((tests.get(name) or {}).get("p")) if tests else "baseline"
                  for name in ("sensitivity_mcnemar", "specificity_mcnemar", "auc_delong")]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines += _difference_table(group["rows"], "difference_vs_real", extra,
                               "Difference from real only (95% paired patient-bootstrap interval; ± the smallest "
                               "difference this test split detects at 80% power; [each training run's own "
                               "difference]):")
    lines += _difference_table(group["rows"], "difference_vs_classic", extra,
                               "GAN DA on top of classic DA: difference from classic DA alone (95% paired "
                               "patient-bootstrap interval; ± the smallest difference detectable at 80% power; "
                               "[each training run's own difference]):")
    return lines + _training_noise(group.get("training_noise") or {})


def _training_noise(pooled: dict) -> list[str]:
    """One sentence: how much one training run's difference moves between runs (seeds, CPUs)."""
    auc, sensitivity = pooled.get("roc_auc"), pooled.get("sensitivity_at_fixed_specificity")
    if not auc or not auc["df"] or not math.isfinite(auc["sd"]):
        return ["Training noise: not measured (one run per setup); another seed or CPU may change every "
                "difference, so no headline is drawn.", ""]
    text = f"Training noise: one run's difference varies between runs with sd {auc['sd']:.3f} AUC"
    if sensitivity and math.isfinite(sensitivity["sd"]):
        text += f" and {100 * sensitivity['sd']:.1f} sensitivity points at the fixed specificity"
    return [text + f" (pooled over the comparisons, {auc['df']} degrees of freedom); the headline needs the "
            "interval widened by it to exclude 0 as well.", ""]


def _footnote(results: dict) -> list[str]:
    return [
        "Values: mean ± sd over the repeats, with the 95% interval of a percentile bootstrap over test "
        f"patients ({results['bootstrap']['resamples']:,} resamples, each averaging the repeats' metrics). "
        "p values against real only with the same initialisation, on the repeats' averaged probabilities at "
        f"{results['threshold']}: McNemar's test on the {results['positive']} images (sensitivity) and on the "
        f"{results['negative']} images (specificity), DeLong's test for the AUC; not corrected for multiple "
        "comparisons. These tests count slices as independent, but one patient's slices are correlated, so their p "
        "values are optimistic; the paired patient-bootstrap intervals of the differences (the same resampled "
        "patients for both setups) allow for that: where they include 0, the difference is not established. "
        "They hold the trained models fixed; another seed or CPU trains other models, so the headline also "
        "requires the interval widened by the training runs' spread to exclude 0.", ""]


def _difference_table(rows: list[dict], key: str, extra, title: str) -> list[str]:
    """The rows that carry `key` (a paired difference with its interval) as a Markdown table, or nothing."""
    chosen = [entry for entry in rows if entry.get(key)]
    if not chosen:
        return []
    fixed = "sensitivity_at_fixed_specificity" in chosen[0][key]
    header = ["DA setup", "Δ ROC AUC"] + (["Δ Sensitivity at fixed specificity (points)"] if fixed else [])
    header += ["Δ Sensitivity at 0.5 (points)", "Δ Specificity at 0.5 (points)", "Δ Accuracy at 0.5 (points)",
               "Δ Average precision"]
    lines = [title, "", "| " + " | ".join(header) + " |", "| --- | " + " | ".join(["---:"] * (len(header) - 1)) + " |"]
    for entry in chosen:
        d = entry[key]
        cells = [setup_name(entry, extra), _signed(d["roc_auc"], 1.0, 3, power=True)]
        if fixed:
            cells.append(_signed(d["sensitivity_at_fixed_specificity"], 100.0, 1, power=True))
        cells += [_signed(d[name], 100.0, 1) for name in ("sensitivity", "specificity", "accuracy")]
        cells.append(_signed(d["average_precision"], 1.0, 3))
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def write_table(results: dict, config: dict, path: Path) -> None:
    Path(path).write_text(classification_table(results, config))


def roc_curve(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(false positive rates, true positive rates) from (0, 0) to (1, 1), one point per distinct
    score threshold (ties move together)."""
    order = np.argsort(-scores, kind="stable")
    s, t = scores[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tp = np.cumsum(t)[last]
    fp = (last + 1) - tp
    n_pos, n_neg = max(int(y.sum()), 1), max(int(len(y) - y.sum()), 1)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def plot_roc(curves: dict[bool, list[tuple[str, np.ndarray]]], y: np.ndarray, path: Path, threshold: float = 0.5,
             titles: dict[bool, str] | None = None) -> None:
    """ROC curves, one panel per initialisation: {pretrained: [(label, scores), ...]}; the
    operating point at `threshold` is marked on each curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(curves)
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 5.6), squeeze=False)
    for axis, key in zip(axes[0], panels):
        for label, scores in curves[key]:
            fpr, tpr = roc_curve(y, scores)
            (line,) = axis.plot(fpr, tpr, lw=1.6, label=label)
            predicted = scores >= threshold
            sens = (predicted & (y == 1)).sum() / max((y == 1).sum(), 1)
            fp_rate = (predicted & (y == 0)).sum() / max((y == 0).sum(), 1)
            axis.plot([fp_rate], [sens], "o", color=line.get_color(), ms=5)
        axis.plot([0, 1], [0, 1], ":", color="grey", lw=1)
        axis.set_xlabel("1 - specificity")
        axis.set_ylabel("sensitivity")
        axis.set_xlim(0, 1)
        axis.set_ylim(0, 1.01)
        axis.set_title((titles or {}).get(key, "pretrained" if key else "from scratch"))
        axis.legend(loc="lower right", fontsize=8)
    title = ("ROC on the real test split: curves of the repeat-averaged probabilities, dots at threshold "
             f"{threshold}; legend: AUC averaged over the repeats")
    figure.suptitle(textwrap.fill(title, width=70 * len(panels)), fontsize=9)  # one panel is narrow
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
