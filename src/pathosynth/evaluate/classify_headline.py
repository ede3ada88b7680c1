"""The headline of a classification experiment: one sentence per question, that cannot be read as a
gain unless the data show one.

The questions (METHODS sections 2 and 10): does GAN DA add anything to classic DA alone, and does
GAN DA alone add anything to real data? Each is answered on the primary metrics only, ROC AUC and
sensitivity at the specificity fixed on validation, with their paired patient-bootstrap intervals.
The answer is "not established" when

- the test split has too few patients for the patient bootstrap to mean anything;
- the real-only classifier is too weak to judge (test AUC below the competence floor): a judge
  that cannot see the lesions cannot say what augmentation adds;
- the synthetic set is collapsed (near-copies of few images): whatever moved, it was not varied
  synthetic data;
- every primary interval includes 0; the sentence then says how large a difference the test split
  could have detected (80% power), so "not established" is not read as "no effect";
- one training run per setup: the patient bootstrap holds the trained models fixed, but the same
  seed on another CPU (other rounding, another training trajectory) trains other models, so an
  effect must also clear the spread between training runs. A metric moves only when both its
  patient-bootstrap interval and its interval widened by the training noise, pooled over the
  experiment's comparisons (`robust_low/high`, `classify_stats.add_robust_intervals`), exclude 0;
  each run's own difference is printed beside it.

The 0.5-threshold numbers never make a headline: adding images of one class moves a classifier's
calibration, and with it the 0.5 operating point.
"""

from __future__ import annotations

import math

from pathosynth.evaluate.classify_stats import MIN_TEST_PATIENTS

PRIMARY_WORDS = {"roc_auc": ("ROC AUC", 1.0, 3, ""),
                 "sensitivity_at_fixed_specificity": ("sensitivity at the fixed specificity", 100.0, 1, " points")}


def headline_sentences(results: dict) -> list[str]:
    """One sentence per (initialisation, question) in `evaluate classify`'s results.json."""
    sentences = []
    patients = (results.get("test") or {}).get("patients")
    repeats = results.get("repeats")
    collapsed = {name for name, d in (results.get("synthetic_diversity") or {}).items() if d.get("collapsed")}
    for group in results.get("groups", []):
        start = "ImageNet-pretrained" if group.get("pretrained") else "trained from scratch"
        for row, difference, question in headline_questions(group):
            subject = question.format(s=row.get("synthetic"))
            sentences.append(f"{subject} ({start}): " + _answer(group, row, difference, collapsed, patients, repeats))
    return sentences


def headline_questions(group: dict):
    """(row, its paired difference, the question) for each question the headline answers."""
    for row in group.get("rows", []):
        if row.get("difference_vs_classic"):
            yield row, row["difference_vs_classic"], "GAN DA ({s}) on top of classic DA, against classic DA alone"
    for row in group.get("rows", []):
        if row.get("kind") == "gan" and row.get("difference_vs_real"):
            yield row, row["difference_vs_real"], "GAN DA ({s}), against real data alone"


def _answer(group: dict, row: dict, difference: dict, collapsed: set, patients, repeats) -> str:
    over = f" over {patients} test patients" if patients else ""
    if patients is not None and patients < MIN_TEST_PATIENTS:
        return (f"not established: {patients} test patient(s) are too few to judge (at least {MIN_TEST_PATIENTS}; "
                "slices of one patient are not independent evidence).")
    competence = group.get("competence")
    if competence is None:
        return "not established: there is no real-only row to fix the operating point and judge competence."
    if not competence["competent"]:
        return (f"not established: the real-only classifier is too weak to judge (test AUC "
                f"{competence['real_auc']:.3f} < {competence['floor']:.2f}).")
    if row.get("synthetic") in collapsed:
        return (f"not established: the synthetic set {row['synthetic']} is collapsed (near-copies of few images; "
                "see the notes), so no change can be credited to varied synthetic data.")
    parts = [_metric_text(name, difference.get(name)) for name in PRIMARY_WORDS if difference.get(name)]
    effects = [_direction(difference[name]) for name in PRIMARY_WORDS if difference.get(name)]
    if not parts:
        return "not established: the primary metrics are undefined on this test split."
    if repeats is not None and repeats < 2:
        verdict = ("not established (one training run per setup cannot tell an effect from training noise, which "
                   "another seed or CPU would change; rerun with --repeats 2 or more)")
    elif all(effect == 0 for effect in effects):
        verdict = "not established (every interval includes 0, or the training runs disagree)"
    elif all(effect >= 0 for effect in effects):
        verdict = "improved"
    elif all(effect <= 0 for effect in effects):
        verdict = "worsened"
    else:
        verdict = "mixed: one primary metric rose and the other fell"
    return f"{verdict}: " + "; ".join(parts) + f"{over}."


def _direction(metric: dict) -> int:
    """+1 / -1 when the patient-bootstrap interval and the one widened by the training runs' spread
    (where results carry it) both exclude 0 on that side; else 0."""
    directions = {_side(metric.get("low"), metric.get("high"))}
    if "robust_low" in metric:
        directions.add(_side(metric.get("robust_low"), metric.get("robust_high")))
    return directions.pop() if len(directions) == 1 else 0


def _side(low, high) -> int:
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return 0
    return 1 if low > 0 else -1 if high < 0 else 0


def _metric_text(name: str, metric: dict) -> str:
    words, scale, digits, unit = PRIMARY_WORDS[name]
    values = [metric.get(k) for k in ("mean", "low", "high")]
    if any(v is None or not math.isfinite(v) for v in values):
        return f"{words} undefined"
    mean, low, high = (v * scale for v in values)
    text = f"{words} {mean:+.{digits}f}{unit} (95% interval {low:+.{digits}f} to {high:+.{digits}f}"
    robust = [metric.get(k) for k in ("robust_low", "robust_high")]
    if all(v is not None and math.isfinite(v) for v in robust):
        text += f", {robust[0] * scale:+.{digits}f} to {robust[1] * scale:+.{digits}f} with the training runs' spread"
    if metric.get("runs"):
        text += "; per run " + ", ".join(f"{v * scale:+.{digits}f}" for v in metric["runs"])
    mdd = metric.get("mdd")
    if mdd is not None and math.isfinite(mdd):
        text += f"; the test split detects {mdd * scale:.{digits}f}{unit} or more at 80% power"
    return text + ")"
