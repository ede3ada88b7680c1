"""Results of a Visual Turing Test: confusion tables, accuracies with intervals, reader agreement.

Physicians look at real and synthetic images and answer "real or synthetic?" (the origin question)
and, in some studies, "tumour or not?" (the label question), each answer with a 1-5 confidence.
The answers arrive in long format, one dict per (reader, case):

    {"reader": str, "case": str,
     "truth_origin": "real" | "synthetic", "answer_origin": "real" | "synthetic" | None,
     "truth_label": str | None, "answer_label": str | None,
     "confidence": int 1-5 | None, "seconds": float | None}

`None` as an answer means the question was not asked (or not answered): the row then counts for
neither that question's accuracy nor its agreement.

Conventions:

- A statistic that is undefined on the data (accuracy of no answers, kappa when chance agreement
  is already perfect, Fleiss' kappa with fewer than two readers) is `nan`, never an exception and
  never a made-up 0 or 1. Callers render `nan` as "n/a". `json.dumps` writes it as `NaN`, which
  Python reads back but strict JSON parsers do not.
- Everything `study_results` returns is plain Python (dict, list, str, int, float, None).
- Readers, cases and reader pairs are sorted, so that the same answers give the same report.
- Wrong inputs (a label outside the given labels, two answers of one reader to one case, a case
  with two different truths) raise `ValueError`: silently dropping them would hide a typo such
  as "Synthetic" for "synthetic" behind a plausible-looking table.

Only numpy and scipy here: the tests check against scikit-learn and statsmodels, which must stay
independent references. No torch import: the reader web app does not load models.
"""

from __future__ import annotations

import itertools
import math
import operator
import statistics
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

ORIGINS = ("real", "synthetic")
CONFIDENCE_LEVELS = (1, 2, 3, 4, 5)
INTERVAL_METHODS = ("wilson", "clopper-pearson")


# --------------------------------------------------------------------------------------------------
# binomial intervals


def _count(value: int, name: str) -> int:
    try:
        count = operator.index(value)
    except TypeError:
        raise ValueError(f"{name} must be an integer, got {value!r}") from None
    if count < 0:
        raise ValueError(f"{name} must not be negative, got {count}")
    return count


def binomial_interval(successes: int, n: int, level: float = 0.95, method: str = "wilson") -> tuple[float, float]:
    """Two-sided confidence interval for a proportion `successes / n`.

    `method` "wilson" is the Wilson score interval (good coverage at small n, never outside
    [0, 1]); "clopper-pearson" is the exact interval from beta quantiles (conservative). The same
    numbers as statsmodels' `proportion_confint` with method "wilson" and "beta".
    `n == 0` gives `(nan, nan)`: there is nothing to estimate.
    """
    successes, n = _count(successes, "successes"), _count(n, "n")
    if successes > n:
        raise ValueError(f"successes ({successes}) exceed n ({n})")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if method not in INTERVAL_METHODS:
        raise ValueError(f"method must be one of {INTERVAL_METHODS}, got {method!r}")
    if n == 0:
        return math.nan, math.nan
    tail = (1.0 - level) / 2.0
    if method == "wilson":
        return _wilson(successes, n, tail)
    return _clopper_pearson(successes, n, tail)


def _wilson(successes: int, n: int, tail: float) -> tuple[float, float]:
    z = float(stats.norm.isf(tail))
    p = successes / n
    shrink = 1.0 + z * z / n
    centre = (p + z * z / (2.0 * n)) / shrink
    half_width = z * math.sqrt(p * (1.0 - p) / n + z * z / (4.0 * n * n)) / shrink
    # Clipped because at p = 0 or 1 rounding can put an end a hair outside [0, 1].
    return max(0.0, centre - half_width), min(1.0, centre + half_width)


def _clopper_pearson(successes: int, n: int, tail: float) -> tuple[float, float]:
    # The beta quantiles are undefined at 0 and n successes, where the exact ends are 0 and 1.
    low = 0.0 if successes == 0 else float(stats.beta.ppf(tail, successes, n - successes + 1))
    high = 1.0 if successes == n else float(stats.beta.isf(tail, successes + 1, n - successes))
    return low, high


# --------------------------------------------------------------------------------------------------
# confusion tables and accuracy


def _label_list(labels: Sequence[Hashable], name: str = "labels") -> list:
    listed = list(labels)
    if not listed:
        raise ValueError(f"{name} must not be empty")
    if len(set(listed)) != len(listed):
        raise ValueError(f"{name} contain duplicates: {listed}")
    return listed


def _same_length(truth: Sequence, answer: Sequence, names: tuple[str, str] = ("truth", "answer")) -> None:
    if len(truth) != len(answer):
        raise ValueError(f"{names[0]} and {names[1]} differ in length: {len(truth)} vs {len(answer)}")


def _positions(values: Sequence[Hashable], labels: list, name: str) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    unknown = sorted({repr(v) for v in values if v not in index})
    if unknown:
        raise ValueError(f"{name} holds values outside the labels {labels}: {', '.join(unknown)}")
    return np.fromiter((index[v] for v in values), dtype=np.int64, count=len(values))


def _count_table(truth: Sequence[Hashable], answer: Sequence[Hashable], labels: list,
                 names: tuple[str, str] = ("truth", "answer")) -> np.ndarray:
    """(labels x labels) integer counts, rows = `truth`, columns = `answer`."""
    _same_length(truth, answer, names)
    rows = _positions(truth, labels, names[0])
    columns = _positions(answer, labels, names[1])
    table = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(table, (rows, columns), 1)
    return table


def _title(label: Hashable) -> str:
    # Only the first letter: str.capitalize() would turn "tumour WHO-IV" into "Tumour who-iv".
    text = str(label)
    return text[:1].upper() + text[1:]


def cell_name(truth: Hashable, answer: Hashable) -> str:
    """The papers' name of a confusion cell: "Real as Synthetic", "Tumour as Non-tumour"."""
    return f"{_title(truth)} as {_title(answer)}"


def confusion(truth: Sequence[str], answer: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Confusion table of answers against the truth, in the papers' layout.

    Returns {"labels": [...], "counts": rows = truth, columns = answer, "cells": {"Real as Real":
    n, "Real as Synthetic": n, ...}} with cells in row-major order. Every value must be one of
    `labels`.
    """
    labels = _label_list(labels)
    names = [cell_name(t, a) for t in labels for a in labels]
    if len(set(names)) != len(names):
        raise ValueError(f"labels {labels} give clashing cell names once capitalised")
    table = _count_table(truth, answer, labels)
    return {
        "labels": list(labels),
        "counts": table.tolist(),
        "cells": dict(zip(names, (int(c) for c in table.ravel()))),
    }


def accuracy(truth: Sequence[str], answer: Sequence[str], level: float = 0.95) -> dict[str, Any]:
    """Share of answers equal to the truth, with its Wilson interval.

    {"n", "correct", "accuracy", "low", "high"}; no answers give accuracy and interval `nan`.
    """
    _same_length(truth, answer)
    n = len(truth)
    correct = sum(1 for t, a in zip(truth, answer) if t == a)
    low, high = binomial_interval(correct, n, level)
    return {"n": n, "correct": correct, "accuracy": correct / n if n else math.nan, "low": low, "high": high}


# --------------------------------------------------------------------------------------------------
# agreement


def cohen_kappa(a: Sequence[str], b: Sequence[str], labels: Sequence[str] | None = None) -> float:
    """Unweighted Cohen's kappa between two readers' answers to the same cases, in order.

    kappa = (p_o - p_e) / (1 - p_e) with p_e from each reader's own category shares. `nan` when
    undefined: no cases, or both readers gave one and the same category throughout (p_e = 1),
    as scikit-learn's `cohen_kappa_score`. `labels` defaults to the values seen; given, every
    value must be one of them (scikit-learn would silently drop the others).
    """
    _same_length(a, b, ("a", "b"))
    if not a:
        return math.nan
    listed = _label_list(labels) if labels is not None else sorted(set(a) | set(b))
    return _cohen_from_table(_count_table(a, b, listed, ("a", "b")))


def _cohen_from_table(table: np.ndarray) -> float:
    n = int(table.sum())
    # n^2 * p_e, exact in integers, so that the undefined case is found without rounding doubts.
    chance = int(table.sum(axis=1) @ table.sum(axis=0))
    if n == 0 or chance == n * n:
        return math.nan
    observed = int(np.trace(table))
    return (observed * n - chance) / (n * n - chance)


def fleiss_kappa(table: np.ndarray) -> float:
    """Fleiss' kappa for (subjects x categories) counts of raters per category.

    Every subject must have been rated by the same number of raters (`ValueError` otherwise);
    the same number as statsmodels' `fleiss_kappa(table, method="fleiss")`. `nan` when undefined:
    no subjects, fewer than two raters per subject, or all ratings in one category (p_e = 1).
    """
    counts = np.asarray(table, dtype=np.float64)
    if counts.ndim != 2:
        raise ValueError(f"table must be (subjects, categories), got shape {counts.shape}")
    if not np.isfinite(counts).all() or (counts < 0).any() or (counts != np.round(counts)).any():
        raise ValueError("table must hold non-negative whole counts")
    if counts.shape[0] == 0:
        return math.nan
    raters_per_subject = counts.sum(axis=1)
    raters = raters_per_subject[0]
    if (raters_per_subject != raters).any():
        raise ValueError(
            "every subject must be rated by the same number of raters, got "
            f"{sorted(set(raters_per_subject.astype(int).tolist()))}")
    category_totals = counts.sum(axis=0)
    if raters < 2 or np.count_nonzero(category_totals) < 2:
        return math.nan
    category_share = category_totals / category_totals.sum()
    # Share of agreeing rater pairs per subject, averaged over subjects.
    observed = float(np.mean(((counts * counts).sum(axis=1) - raters) / (raters * (raters - 1.0))))
    chance = float(np.sum(category_share * category_share))
    return (observed - chance) / (1.0 - chance)


def ratings_table(ratings: Mapping[str, Mapping[str, str]],
                  categories: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """Fleiss' input from `ratings[reader][case] = category`.

    Only cases rated by every reader count, since Fleiss' kappa needs the same number of raters
    per case. Returns the (cases x categories) int64 count table and the sorted case ids used.
    """
    categories = _label_list(categories, "categories")
    if not ratings:
        return np.zeros((0, len(categories)), dtype=np.int64), []
    shared = set.intersection(*(set(by_case) for by_case in ratings.values()))
    cases = sorted(shared)
    table = np.zeros((len(cases), len(categories)), dtype=np.int64)
    for by_case in ratings.values():
        positions = _positions([by_case[case] for case in cases], categories, "ratings")
        table[np.arange(len(cases)), positions] += 1
    return table, cases


# --------------------------------------------------------------------------------------------------
# a whole study


@dataclass(frozen=True)
class _Answer:
    reader: str
    case: str
    truth_origin: str
    answer_origin: str | None
    truth_label: str | None
    answer_label: str | None
    confidence: int | None
    seconds: float | None

    @property
    def answered(self) -> bool:
        return self.answer_origin is not None or self.answer_label is not None


def _confidence(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value not in CONFIDENCE_LEVELS:
        raise ValueError(f"confidence must be one of {CONFIDENCE_LEVELS} or None, got {value!r}")
    return int(value)


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    seconds = float(value)
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"seconds must be a finite non-negative number or None, got {value!r}")
    return seconds


def _parse(row: Mapping[str, Any]) -> _Answer:
    if row.get("truth_origin") is None:
        raise ValueError(f"every row needs a truth_origin, got {dict(row)!r}")
    return _Answer(
        reader=str(row["reader"]),
        case=str(row["case"]),
        truth_origin=row["truth_origin"],
        answer_origin=row.get("answer_origin"),
        truth_label=row.get("truth_label"),
        answer_label=row.get("answer_label"),
        confidence=_confidence(row.get("confidence")),
        seconds=_seconds(row.get("seconds")),
    )


def _check_study(answers: list[_Answer]) -> None:
    seen: set[tuple[str, str]] = set()
    truths: dict[str, tuple[str, str | None]] = {}
    for answer in answers:
        key = (answer.reader, answer.case)
        if key in seen:
            raise ValueError(f"reader {answer.reader!r} answered case {answer.case!r} more than once")
        seen.add(key)
        truth = (answer.truth_origin, answer.truth_label)
        if truths.setdefault(answer.case, truth) != truth:
            raise ValueError(f"case {answer.case!r} has two truths: {truths[answer.case]} and {truth}")


def _check_values(values: list[Any], allowed: list, name: str) -> None:
    unknown = sorted({repr(v) for v in values if v is not None and v not in allowed})
    if unknown:
        raise ValueError(f"{name} holds values outside {allowed}: {', '.join(unknown)}")


def _study_labels(answers: list[_Answer], labels: Sequence[str] | None) -> list[str]:
    """The label question's categories; empty when no row has a label."""
    seen = {v for a in answers for v in (a.truth_label, a.answer_label) if v is not None}
    if labels is None:
        return sorted(seen)
    listed = _label_list(labels)
    _check_values([a.truth_label for a in answers], listed, "truth_label")
    _check_values([a.answer_label for a in answers], listed, "answer_label")
    return listed


def _scored(pairs: list[tuple[str, str]], labels: list[str], level: float) -> dict[str, Any] | None:
    if not pairs:
        return None
    truth = [t for t, _ in pairs]
    answer = [a for _, a in pairs]
    return {"confusion": confusion(truth, answer, labels), "accuracy": accuracy(truth, answer, level)}


def _origin_pairs(answers: list[_Answer]) -> list[tuple[str, str]]:
    return [(a.truth_origin, a.answer_origin) for a in answers if a.answer_origin is not None]


def _label_pairs(answers: list[_Answer]) -> list[tuple[str, str]]:
    # A label answer without a known truth still counts for agreement, but cannot be scored.
    return [(a.truth_label, a.answer_label) for a in answers
            if a.answer_label is not None and a.truth_label is not None]


def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else math.nan


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def _summary(answers: list[_Answer], origins: list[str], labels: list[str], level: float) -> dict[str, Any]:
    answered = [a for a in answers if a.answered]
    return {
        "n": len(answered),
        "origin": _scored(_origin_pairs(answered), origins, level),
        "label": _scored(_label_pairs(answered), labels, level) if labels else None,
        "mean_confidence": _mean([a.confidence for a in answered if a.confidence is not None]),
        "median_seconds": _median([a.seconds for a in answered if a.seconds is not None]),
    }


def _by_confidence(answers: list[_Answer], level: float) -> list[dict[str, Any]]:
    rows = []
    for confidence in CONFIDENCE_LEVELS:
        pairs = [(a.truth_origin, a.answer_origin) for a in answers
                 if a.answer_origin is not None and a.confidence == confidence]
        rows.append({"confidence": confidence,
                     **accuracy([t for t, _ in pairs], [x for _, x in pairs], level)})
    return rows


def _agreement(ratings: dict[str, dict[str, str]], categories: list[str]) -> dict[str, Any] | None:
    """Fleiss over the cases every reader answered, Cohen per pair over the cases both answered.

    Only readers who answered the question at least once take part: a reader never asked it
    would otherwise leave Fleiss without cases.
    """
    if not ratings:
        return None
    readers = sorted(ratings)
    if len(readers) < 2:
        fleiss, cases = math.nan, 0
    else:
        table, case_ids = ratings_table(ratings, categories)
        fleiss, cases = fleiss_kappa(table), len(case_ids)
    pairs = []
    for first, second in itertools.combinations(readers, 2):
        shared = sorted(set(ratings[first]) & set(ratings[second]))
        kappa = cohen_kappa([ratings[first][c] for c in shared], [ratings[second][c] for c in shared], categories)
        pairs.append({"a": first, "b": second, "cohen": kappa, "cases": len(shared)})
    return {"readers": readers, "fleiss": fleiss, "cases": cases, "pairs": pairs}


def _ratings(answers: list[_Answer], field: str) -> dict[str, dict[str, str]]:
    ratings: dict[str, dict[str, str]] = {}
    for answer in answers:
        value = getattr(answer, field)
        if value is not None:
            ratings.setdefault(answer.reader, {})[answer.case] = value
    return ratings


def study_results(rows: list[dict], origins: Sequence[str] = ORIGINS, labels: Sequence[str] | None = None,
                  level: float = 0.95) -> dict[str, Any]:
    """Everything a Visual Turing Test report shows, from answers in long format.

    Returns plain Python (nan where undefined; callers render it as "n/a"):

    - "origins", "labels" (the label question's categories, None when no row has a label),
      "level" (of the Wilson intervals);
    - "readers": {reader: summary}, sorted, and "pooled": the same summary over all answers, where
      a summary is {"n": answered cases, "origin": {"confusion", "accuracy"} or None when the
      origin question was never answered, "label": the same for labels (only answers whose case
      has a truth label are scored), "mean_confidence", "median_seconds"};
    - "agreement": {"origin": ..., "label": ...}, each None when nobody answered that question,
      else {"readers", "fleiss", "cases", "pairs": [{"a", "b", "cohen", "cases"}]}. Fleiss uses
      the cases every answering reader answered (nan, cases 0 with fewer than two readers); each
      pair's Cohen kappa uses the cases both answered. Agreement compares answers, not truths;
    - "by_confidence": {"origin": [{"confidence": 1..5, "n", "correct", "accuracy", "low",
      "high"}]}: pooled origin accuracy at each confidence level, all five always present;
    - "cases": per case {"case", "truth_origin", "truth_label", "n", "called_real", "share_real",
      "label_correct"}, the synthetic cases most often called real first.

    `labels` defaults to the label values seen, sorted; given, every label must be among them.
    """
    origins = _label_list(origins, "origins")
    answers = [_parse(row) for row in rows]
    _check_study(answers)
    _check_values([a.truth_origin for a in answers], origins, "truth_origin")
    _check_values([a.answer_origin for a in answers], origins, "answer_origin")
    label_list = _study_labels(answers, labels)

    by_reader: dict[str, list[_Answer]] = {}
    for answer in answers:
        by_reader.setdefault(answer.reader, []).append(answer)
    label_ratings = _ratings(answers, "answer_label")
    return {
        "origins": list(origins),
        "labels": label_list or None,
        "level": float(level),
        "readers": {reader: _summary(by_reader[reader], origins, label_list, level) for reader in sorted(by_reader)},
        "pooled": _summary(answers, origins, label_list, level),
        "agreement": {
            "origin": _agreement(_ratings(answers, "answer_origin"), origins),
            "label": _agreement(label_ratings, label_list) if label_ratings else None,
        },
        "by_confidence": {"origin": _by_confidence(answers, level)},
        "cases": _by_case(answers),
    }


def _by_case(answers: list[_Answer]) -> list[dict[str, Any]]:
    """Per case: how many readers answered, how many called it real, how many gave its right label.
    Sorted so that the synthetic cases most often taken for real come first: the convincing ones."""
    cases: dict[str, list[_Answer]] = {}
    for answer in answers:
        cases.setdefault(answer.case, []).append(answer)
    rows = []
    for case, given in cases.items():
        origin = [a for a in given if a.answer_origin is not None]
        labelled = [a for a in given if a.answer_label is not None and a.truth_label is not None]
        rows.append({"case": case, "truth_origin": given[0].truth_origin, "truth_label": given[0].truth_label,
                     "n": len(given), "called_real": sum(a.answer_origin == "real" for a in origin),
                     "share_real": _share(sum(a.answer_origin == "real" for a in origin), len(origin)),
                     "label_correct": _share(sum(a.answer_label == a.truth_label for a in labelled), len(labelled))})
    return sorted(rows, key=lambda r: (r["truth_origin"] != "synthetic", -_or_minus_one(r["share_real"]), r["case"]))


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan


def _or_minus_one(value: float) -> float:
    return -1.0 if math.isnan(value) else value
