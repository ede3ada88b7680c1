"""Statistics behind `pathosynth evaluate`: metrics, intervals, paired tests, image-set distances.

Conventions used throughout:

- Labels are 0 (negative) and 1 (positive); `y_true` may be any array of 0/1 or bools.
- A higher score means "more likely positive". A slice is predicted positive when
  `score >= threshold`.
- ROC AUC counts a tied positive/negative pair as half a correct ordering (the Mann-Whitney
  convention, the same as scikit-learn's `roc_auc_score`).
- A metric that is undefined on the data (AUC with one class only, sensitivity without positives)
  is `nan`, never an exception and never a made-up 0 or 1, so that a report can say "undefined".
- Feature sets are arrays (n_samples, n_features); they are converted to float64.
- Everything random takes a `seed` and is reproducible for it.

Wrong inputs (mismatched lengths, labels other than 0/1, non-finite scores) raise `ValueError`;
the CLI checks files before it gets here, so these are programming errors, not user errors.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from numpy.typing import ArrayLike
from scipy import linalg, stats

# Below this many discordant pairs the chi-square approximation to McNemar's statistic is poor
# (the usual rule of thumb, e.g. Fagerland et al. 2013 recommend the exact test for small counts).
MCNEMAR_EXACT_BELOW = 25

# Warn when more than this share of bootstrap resamples had an undefined metric: the interval then
# describes resamples conditioned on, e.g., both classes being present, and is narrower than it
# should be.
BOOTSTRAP_SKIP_WARNING = 0.05

# Pairwise distances are computed in blocks of at most this many float64 entries (32 MiB), so that
# precision/recall on tens of thousands of 2048-d features fits in memory.
_BLOCK_ELEMENTS = 1 << 22

# sqrtm's result is accepted when ||X @ X - A||_F / ||A||_F is below this; scipy's Schur method
# reaches ~1e-14 on healthy covariance products, so anything worse signals numerical trouble.
_SQRTM_RESIDUAL = 1e-6

# Imaginary parts of sqrt(cov1 @ cov2)'s diagonal up to this fraction of the real diagonal's scale
# are rounding noise (the exact root of a product of two PSD matrices is real); more is an error.
_SQRTM_IMAGINARY = 1e-3


# --------------------------------------------------------------------------------------------------
# input checks


def _labels(y_true: ArrayLike) -> np.ndarray:
    y = np.asarray(y_true)
    if y.ndim != 1:
        raise ValueError(f"y_true must be one-dimensional, got shape {y.shape}")
    if y.dtype == bool:
        return y.astype(np.int64)
    if y.size and not np.isin(y, (0, 1)).all():
        raise ValueError(f"y_true must contain only 0 and 1, got values {np.unique(y)[:10].tolist()}")
    return y.astype(np.int64)


def _scores(scores: ArrayLike, n: int, name: str = "scores") -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},) to match y_true, got {s.shape}")
    if not np.isfinite(s).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return s


def _features(x: ArrayLike, name: str, min_rows: int = 2) -> np.ndarray:
    f = np.asarray(x, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"{name} must be (n_samples, n_features), got shape {f.shape}")
    if f.shape[0] < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError(f"{name} contains NaN or infinite values")
    return f


def _same_width(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature sets differ in width: {a.shape[1]} vs {b.shape[1]}")


def _ratio(numerator: int, denominator: int) -> float:
    return numerator / denominator if denominator else math.nan


# --------------------------------------------------------------------------------------------------
# point metrics


def _midranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks with tied values sharing the mean of their ranks (Sun & Xu 2014, alg. 1)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    return (first + (counts + 1) / 2.0)[inverse]


def roc_auc(y_true: ArrayLike, scores: ArrayLike) -> float:
    """ROC AUC by the rank-sum (Mann-Whitney) identity; `nan` when either class is absent.

    Fast enough to call thousands of times in a bootstrap, unlike scikit-learn's, which spends
    most of its time validating inputs.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos = int(y.sum())
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    rank_sum = _midranks(s)[y == 1].sum()
    return float((rank_sum - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(y_true: ArrayLike, scores: ArrayLike) -> float:
    """Average precision, sum over thresholds of (R_t - R_{t-1}) * P_t; `nan` without both classes.

    This is the step-wise (not interpolated) definition that scikit-learn uses. Without negatives
    AP would be trivially 1, which says nothing about a classifier, hence `nan` there too.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        return math.nan
    order = np.argsort(-s, kind="stable")
    s_sorted, y_sorted = s[order], y[order]
    # Tied scores form one threshold: only the last index of each run of equal scores counts.
    last_of_run = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    true_pos = np.cumsum(y_sorted)[last_of_run]
    predicted_pos = last_of_run + 1
    recall = true_pos / n_pos
    precision = true_pos / predicted_pos
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def binary_metrics(y_true: ArrayLike, scores: ArrayLike, threshold: float) -> dict[str, float]:
    """Threshold and ranking metrics of one binary classifier on one test set.

    A slice is predicted positive when `score >= threshold`. Returned keys:
    `n`, `n_positive`, `n_negative`, `tp`, `fp`, `tn`, `fn`, `threshold`,
    `accuracy`, `sensitivity` (TP / positives), `specificity` (TN / negatives),
    `roc_auc`, `average_precision`.

    With one class missing, `sensitivity` or `specificity` (whichever has no denominator),
    `roc_auc` and `average_precision` are `nan`: they are undefined, not 0 or 1. `accuracy` is
    `nan` only for an empty set.
    """
    y = _labels(y_true)
    s = _scores(scores, y.size)
    predicted = s >= threshold
    positive = y == 1
    tp = int(np.sum(predicted & positive))
    fn = int(np.sum(~predicted & positive))
    tn = int(np.sum(~predicted & ~positive))
    fp = int(np.sum(predicted & ~positive))
    return {
        "n": int(y.size),
        "n_positive": tp + fn,
        "n_negative": tn + fp,
        "tp": tp,
        "fp": fp,
        "tn": tn,
        "fn": fn,
        "threshold": float(threshold),
        "accuracy": _ratio(tp + tn, y.size),
        "sensitivity": _ratio(tp, tp + fn),
        "specificity": _ratio(tn, tn + fp),
        "roc_auc": roc_auc(y, s),
        "average_precision": average_precision(y, s),
    }


# --------------------------------------------------------------------------------------------------
# patient-level bootstrap


@dataclass(frozen=True)
class BootstrapInterval:
    """A percentile bootstrap interval; unpacks as `point, low, high`.

    `n_skipped` resamples had an undefined metric and are not among the `n_boot - n_skipped`
    values the percentiles come from; a report should state it.
    """

    point: float
    low: float
    high: float
    level: float
    n_boot: int
    n_skipped: int
    standard_error: float = math.nan  # the standard deviation of the defined resamples

    def __iter__(self) -> Iterator[float]:
        return iter((self.point, self.low, self.high))


def _patient_groups(patients: ArrayLike, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Slice indices sorted by patient, with each patient's start and count in that order."""
    p = np.asarray(patients)
    if p.shape != (n,):
        raise ValueError(f"patients must have shape ({n},) to match y_true, got {p.shape}")
    _, inverse = np.unique(p, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    counts = np.bincount(inverse)
    starts = np.cumsum(counts) - counts
    return order, starts, counts


def _slices_of(drawn: np.ndarray, order: np.ndarray, starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """All slice indices of the drawn patients, a patient drawn twice contributing twice."""
    lengths = counts[drawn]
    run_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
    within = np.arange(lengths.sum()) - run_start
    return order[np.repeat(starts[drawn], lengths) + within]


def patient_bootstrap(
    y_true: ArrayLike,
    scores: ArrayLike,
    patients: ArrayLike,
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> BootstrapInterval:
    """Percentile bootstrap interval of `metric_fn(y_true, scores)`, resampling patients.

    Slices of one patient are correlated, so resampling slices would treat them as independent
    evidence and give too narrow an interval. Each resample draws as many patients as there are,
    with replacement, and takes all slices of every drawn patient (twice if drawn twice).

    `scores` may have any shape whose first axis is the slices, e.g. (n, 2) with two models'
    scores so that `metric_fn` can return a paired difference. `metric_fn` returns a float, and
    `nan` (or inf) where the metric is undefined on a resample, e.g. only one class drawn
    (`roc_auc` and `binary_metrics` do); such resamples are skipped and counted in `n_skipped`.

    Returns `BootstrapInterval(point, low, high, ...)`: `point` is the metric on the full data,
    `low`/`high` the (1 - level)/2 and (1 + level)/2 quantiles of the resampled values; `nan` if
    fewer than two resamples were defined. The same seed gives the same interval.
    """
    y = _labels(y_true)
    s = np.asarray(scores)
    if s.shape[:1] != y.shape:
        raise ValueError(f"scores must have {y.size} rows to match y_true, got shape {s.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be at least 1, got {n_boot}")
    order, starts, counts = _patient_groups(patients, y.size)

    point = float(metric_fn(y, s))
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, counts.size, size=(n_boot, counts.size))
    values = np.empty(n_boot)
    for b in range(n_boot):
        idx = _slices_of(draws[b], order, starts, counts)
        values[b] = metric_fn(y[idx], s[idx])
    defined = values[np.isfinite(values)]
    n_skipped = n_boot - defined.size

    if n_skipped > BOOTSTRAP_SKIP_WARNING * n_boot:
        warnings.warn(
            f"patient_bootstrap: the metric was undefined on {n_skipped} of {n_boot} resamples "
            "(e.g. one class only); the interval is conditional on the remaining ones",
            RuntimeWarning,
            stacklevel=2,
        )
    if defined.size < 2:
        return BootstrapInterval(point, math.nan, math.nan, level, n_boot, n_skipped)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(defined, [tail, 1.0 - tail])
    return BootstrapInterval(point, float(low), float(high), level, n_boot, n_skipped, float(np.std(defined, ddof=1)))


def minimum_detectable_difference(standard_error: float, alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest true difference a two-sided test at `alpha` detects with probability `power`,
    for an estimate with this standard error (normal approximation): (z_{1-alpha/2} + z_power) x SE."""
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError(f"alpha and power must be in (0, 1), got {alpha} and {power}")
    return float((NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)) * standard_error)


def threshold_for_specificity(negative_scores: ArrayLike, specificity: float) -> float:
    """The lowest threshold t such that calling `score > t` positive keeps at least `specificity`
    of these negatives negative: an operating point fixed on one split, to apply on another."""
    negatives = np.sort(np.asarray(negative_scores, dtype=np.float64).ravel())
    if negatives.size == 0 or not 0.0 <= specificity <= 1.0:
        raise ValueError(f"need negative scores and a specificity in [0, 1], got {negatives.size} and {specificity}")
    needed = math.ceil(specificity * negatives.size - 1e-9)  # negatives that must score <= t
    return float(negatives[needed - 1]) if needed > 0 else -math.inf


# --------------------------------------------------------------------------------------------------
# DeLong


def _structural_components(y: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """DeLong's placement values via midranks (Sun & Xu 2014), for k score rows at once.

    `scores` is (k, n). Returns the AUCs (k,), V10 (k, n_pos): for each positive the share of
    negatives it outscores, and V01 (k, n_neg): for each negative the share of positives that
    outscore it (ties count 1/2 in both). Ranks replace the O(n_pos * n_neg) pair comparisons:
    a positive's rank among all scores minus its rank among positives counts the negatives below it.
    """
    pos, neg = scores[:, y == 1], scores[:, y == 0]
    n_pos, n_neg = pos.shape[1], neg.shape[1]
    v10 = np.empty_like(pos)
    v01 = np.empty_like(neg)
    for row in range(scores.shape[0]):
        combined = _midranks(np.concatenate([pos[row], neg[row]]))
        v10[row] = (combined[:n_pos] - _midranks(pos[row])) / n_neg
        v01[row] = 1.0 - (combined[n_pos:] - _midranks(neg[row])) / n_pos
    return v10.mean(axis=1), v10, v01


def _delong_inputs(y_true: ArrayLike, *score_sets: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    y = _labels(y_true)
    n_pos = int(y.sum())
    if n_pos < 2 or y.size - n_pos < 2:
        raise ValueError(
            f"DeLong's variance needs at least 2 positives and 2 negatives, got {n_pos} and {y.size - n_pos}"
        )
    names = ["scores"] if len(score_sets) == 1 else ["scores_a", "scores_b"]
    return y, np.stack([_scores(s, y.size, name) for s, name in zip(score_sets, names)])


def delong_auc_variance(y_true: ArrayLike, scores: ArrayLike) -> dict[str, float]:
    """ROC AUC and DeLong's (1988) estimate of its variance: keys `auc`, `variance`, `standard_error`.

    variance = Var(V10) / n_pos + Var(V01) / n_neg, sample variances with n - 1 denominators, as in
    DeLong et al. Needs at least two positives and two negatives.
    """
    y, s = _delong_inputs(y_true, scores)
    auc, v10, v01 = _structural_components(y, s)
    variance = float(v10[0].var(ddof=1) / v10.shape[1] + v01[0].var(ddof=1) / v01.shape[1])
    return {"auc": float(auc[0]), "variance": variance, "standard_error": math.sqrt(variance)}


def delong_test(y_true: ArrayLike, scores_a: ArrayLike, scores_b: ArrayLike) -> dict[str, float]:
    """Paired DeLong test of two ROC AUCs measured on the same cases.

    Keys: `auc_a`, `auc_b`, `difference` (auc_a - auc_b), `variance` and `standard_error` of the
    difference, `z`, `p` (two-sided, normal approximation), `n_positive`, `n_negative`.

    The variance of the difference is computed from the per-case differences of the placement
    values, which equals Var_a + Var_b - 2 Cov_ab but is exactly 0 for identical rankings.
    With zero variance: a zero difference gives z = 0 and p = 1; a non-zero one (e.g. AUCs 1 and
    0) gives z = +-inf and p = 0, the limit of the statistic.
    """
    y, s = _delong_inputs(y_true, scores_a, scores_b)
    auc, v10, v01 = _structural_components(y, s)
    n_pos, n_neg = v10.shape[1], v01.shape[1]
    difference = float(auc[0] - auc[1])
    variance = float((v10[0] - v10[1]).var(ddof=1) / n_pos + (v01[0] - v01[1]).var(ddof=1) / n_neg)
    if variance > 0.0:
        z = difference / math.sqrt(variance)
    else:
        z = 0.0 if difference == 0.0 else math.copysign(math.inf, difference)
    return {
        "auc_a": float(auc[0]),
        "auc_b": float(auc[1]),
        "difference": difference,
        "variance": variance,
        "standard_error": math.sqrt(variance),
        "z": z,
        "p": float(2.0 * stats.norm.sf(abs(z))),
        "n_positive": n_pos,
        "n_negative": n_neg,
    }


# --------------------------------------------------------------------------------------------------
# McNemar


def _bools(x: ArrayLike, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {a.shape}")
    if a.dtype != bool and a.size and not np.isin(a, (0, 1)).all():
        raise ValueError(f"{name} must contain only booleans or 0/1")
    return a.astype(bool)


def mcnemar_test(correct_a: ArrayLike, correct_b: ArrayLike) -> dict[str, float | int | str]:
    """McNemar's test that two classifiers, judged on the same cases, are right equally often.

    `correct_a[i]` says whether classifier A got case i right. Only discordant cases carry
    information: `b` = A right and B wrong, `c` = A wrong and B right. Under the null each
    discordant case is a fair coin.

    With b + c < 25 (`MCNEMAR_EXACT_BELOW`) the exact two-sided binomial test is used
    (`method` "exact", `statistic` = min(b, c), p = min(1, 2 * P[Bin(b + c, 1/2) <= min(b, c)]));
    otherwise the chi-square test with continuity correction (`method` "chi2",
    `statistic` = (|b - c| - 1)^2 / (b + c), one degree of freedom). No discordant cases: p = 1.
    """
    a = _bools(correct_a, "correct_a")
    b_ = _bools(correct_b, "correct_b")
    if a.shape != b_.shape:
        raise ValueError(f"correct_a and correct_b differ in length: {a.size} vs {b_.size}")
    b = int(np.sum(a & ~b_))
    c = int(np.sum(~a & b_))
    discordant = b + c
    if discordant < MCNEMAR_EXACT_BELOW:
        smaller = min(b, c)
        p = 1.0 if discordant == 0 else min(1.0, 2.0 * float(stats.binom.cdf(smaller, discordant, 0.5)))
        return {"b": b, "c": c, "n": int(a.size), "method": "exact", "statistic": float(smaller), "p": p}
    statistic = (abs(b - c) - 1.0) ** 2 / discordant
    return {
        "b": b,
        "c": c,
        "n": int(a.size),
        "method": "chi2",
        "statistic": float(statistic),
        "p": float(stats.chi2.sf(statistic, df=1)),
    }


def paired_sensitivity_specificity_tests(
    y_true: ArrayLike, pred_a: ArrayLike, pred_b: ArrayLike
) -> dict[str, dict[str, float | int | str]]:
    """McNemar tests of sensitivity (on the positives) and specificity (on the negatives).

    `pred_a`/`pred_b` are the two classifiers' binary predictions (1 = positive) on the same cases.
    Returns {"sensitivity": {...}, "specificity": {...}}, each `mcnemar_test`'s dict plus `rate_a`
    and `rate_b`: the two classifiers' sensitivities (or specificities), `nan` when the class is
    absent (the test then has no cases and p = 1).
    """
    y = _labels(y_true)
    a = _bools(pred_a, "pred_a")
    b = _bools(pred_b, "pred_b")
    if a.shape != y.shape or b.shape != y.shape:
        raise ValueError(f"pred_a, pred_b and y_true differ in length: {a.size}, {b.size}, {y.size}")
    out: dict[str, dict[str, float | int | str]] = {}
    for name, cls in (("sensitivity", 1), ("specificity", 0)):
        cases = y == cls
        correct_a = a[cases] == bool(cls)
        correct_b = b[cases] == bool(cls)
        result = mcnemar_test(correct_a, correct_b)
        result["rate_a"] = _ratio(int(correct_a.sum()), int(cases.sum()))
        result["rate_b"] = _ratio(int(correct_b.sum()), int(cases.sum()))
        out[name] = result
    return out


# --------------------------------------------------------------------------------------------------
# Frechet distance (FID when the features are Inception pool features)


def fit_gaussian(features: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (n - 1 denominator) of a feature set, e.g. to cache a real set's."""
    f = _features(features, "features")
    # np.cov returns a 0-d array for one feature; keep (d, d) for every d.
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def _residual(root: np.ndarray, target: np.ndarray) -> float:
    scale = np.linalg.norm(target)
    return float(np.linalg.norm(root @ root - target) / scale) if scale > 0 else float(np.linalg.norm(root))


def _root_of_product(cov1: np.ndarray, cov2: np.ndarray) -> np.ndarray:
    """sqrt(cov1 @ cov2), retried with a small ridge on both covariances if sqrtm fails."""

    def attempt(c1: np.ndarray, c2: np.ndarray) -> tuple[np.ndarray, bool]:
        product = c1 @ c2
        with warnings.catch_warnings():
            # scipy warns on singular products (rank-deficient covariances when there are fewer
            # samples than features) yet usually returns an accurate root; the residual decides.
            warnings.simplefilter("ignore", linalg.LinAlgWarning)
            root = linalg.sqrtm(product)
        ok = bool(np.isfinite(root).all()) and _residual(root, product) < _SQRTM_RESIDUAL
        return root, ok

    root, ok = attempt(cov1, cov2)
    if not ok:
        scale = max(float(np.mean(np.diag(cov1))), float(np.mean(np.diag(cov2))), np.finfo(float).tiny)
        ridge = 1e-6 * scale * np.eye(cov1.shape[0])
        warnings.warn(
            f"frechet_distance: sqrtm(cov1 @ cov2) was inaccurate or not finite; retrying with a ridge: "
            f"{1e-6 * scale:.3g} added to both covariances' diagonals",
            RuntimeWarning,
            stacklevel=3,
        )
        root, ok = attempt(cov1 + ridge, cov2 + ridge)
        if not ok:
            raise ValueError("frechet_distance: no accurate square root of cov1 @ cov2 even with a ridge")
    if np.iscomplexobj(root):
        diagonal = np.diagonal(root)
        allowed = _SQRTM_IMAGINARY * max(float(np.max(np.abs(diagonal.real))), np.finfo(float).tiny)
        if np.max(np.abs(diagonal.imag)) > allowed:
            raise ValueError(
                f"frechet_distance: sqrt(cov1 @ cov2) has an imaginary part of "
                f"{np.max(np.abs(diagonal.imag)):.3g} on its diagonal; the covariances are not valid"
            )
        root = root.real
    return root


def frechet_distance_gaussians(
    mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike
) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu1, cov1) and N(mu2, cov2).

    ||mu1 - mu2||^2 + tr(cov1 + cov2 - 2 sqrt(cov1 cov2)). Not clipped at zero: identical inputs
    may give a rounding error of either sign.
    """
    m1, m2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    c1, c2 = np.atleast_2d(np.asarray(cov1, np.float64)), np.atleast_2d(np.asarray(cov2, np.float64))
    d = m1.size
    if m1.shape != (d,) or m2.shape != (d,) or c1.shape != (d, d) or c2.shape != (d, d):
        raise ValueError(
            f"expected means (d,) and covariances (d, d), got {m1.shape}, {c1.shape}, {m2.shape}, {c2.shape}"
        )
    diff = m1 - m2
    root = _root_of_product(c1, c2)
    return float(diff @ diff + np.trace(c1) + np.trace(c2) - 2.0 * np.trace(root))


def frechet_distance(features_a: ArrayLike, features_b: ArrayLike) -> float:
    """Frechet distance between Gaussians fitted to two feature sets (FID on Inception features).

    Biased upwards for small sets (it shrinks as the sets grow); compare values only at equal
    set sizes, or use `kernel_inception_distance`, which is unbiased.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_width(a, b)
    return frechet_distance_gaussians(*fit_gaussian(a), *fit_gaussian(b))


# --------------------------------------------------------------------------------------------------
# Kernel Inception Distance


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-sized samples: the within-set sums leave out i == j."""
    m = x.shape[0]
    k_xx = _polynomial_kernel(x, x)
    k_yy = _polynomial_kernel(y, y)
    k_xy = _polynomial_kernel(x, y)
    within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(within - 2.0 * k_xy.mean())


def kernel_inception_distance(
    features_a: ArrayLike,
    features_b: ArrayLike,
    subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """KID (Binkowski et al. 2018): unbiased MMD^2 with k(x, y) = (x.y / d + 1)^3.

    Averaged over `subsets` pairs of random subsets (drawn without replacement within a subset,
    independently across subsets) of `min(subset_size, n_a, n_b)` samples each. Returns
    (mean, std) over the subsets, std with an n - 1 denominator (0 for one subset). It is the spread
    of single-subset estimates, not the standard error of the mean. Unbiased, so it can be slightly
    negative when the two sets come from the same distribution.
    """
    a = _features(features_a, "features_a")
    b = _features(features_b, "features_b")
    _same_width(a, b)
    if subsets < 1:
        raise ValueError(f"subsets must be at least 1, got {subsets}")
    m = min(subset_size, a.shape[0], b.shape[0])
    if m < 2:
        raise ValueError(f"subset_size must be at least 2, got {subset_size}")
    rng = np.random.default_rng(seed)
    values = np.empty(subsets)
    for i in range(subsets):
        x = a[rng.choice(a.shape[0], m, replace=False)]
        y = b[rng.choice(b.shape[0], m, replace=False)]
        values[i] = _unbiased_mmd2(x, y)
    std = float(values.std(ddof=1)) if subsets > 1 else 0.0
    return float(values.mean()), std


# --------------------------------------------------------------------------------------------------
# improved precision and recall


def _squared_distance_blocks(queries: np.ndarray, centres: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Yield (row slice, squared distances of those queries to all centres), block by block.

    Uses |q|^2 + |c|^2 - 2 q.c (BLAS) rather than direct differences, which is orders of magnitude
    faster for 2048-d features; every distance in this module goes through here, so radii and
    membership tests round identically.
    """
    q_norms = np.einsum("ij,ij->i", queries, queries)
    c_norms = np.einsum("ij,ij->i", centres, centres)
    rows = max(1, _BLOCK_ELEMENTS // centres.shape[0])
    for start in range(0, queries.shape[0], rows):
        block = slice(start, min(start + rows, queries.shape[0]))
        d2 = q_norms[block, None] + c_norms[None, :] - 2.0 * queries[block] @ centres.T
        yield block, np.maximum(d2, 0.0)


def _knn_radii_squared(x: np.ndarray, k: int) -> np.ndarray:
    """Squared distance from each sample to its k-th nearest other sample of the same set."""
    radii = np.empty(x.shape[0])
    for block, d2 in _squared_distance_blocks(x, x):
        # Index k of the sorted row skips the sample itself (distance 0, at index 0 or tied there).
        radii[block] = np.partition(d2, k, axis=1)[:, k]
    return radii


def _share_inside(queries: np.ndarray, centres: np.ndarray, radii_squared: np.ndarray) -> float:
    """Share of queries within the k-NN ball of at least one centre (ball boundary included)."""
    inside = np.empty(queries.shape[0], dtype=bool)
    for block, d2 in _squared_distance_blocks(queries, centres):
        inside[block] = (d2 <= radii_squared[None, :]).any(axis=1)
    return float(inside.mean())


def precision_recall(real_features: ArrayLike, fake_features: ArrayLike, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) of a generated feature set.

    Each set's manifold is the union of balls around its samples, each ball reaching the sample's
    k-th nearest neighbour in its own set. Precision: share of fake samples inside the real
    manifold (realism). Recall: share of real samples inside the fake manifold (coverage).
    Keys: `precision`, `recall`, `k`, `n_real`, `n_fake`. Memory is bounded by computing
    distances in blocks; time is O(n_real * n_fake * d) plus the same within each set.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    real = _features(real_features, "real_features", min_rows=k + 1)
    fake = _features(fake_features, "fake_features", min_rows=k + 1)
    _same_width(real, fake)
    return {
        "precision": _share_inside(fake, real, _knn_radii_squared(real, k)),
        "recall": _share_inside(real, fake, _knn_radii_squared(fake, k)),
        "k": k,
        "n_real": int(real.shape[0]),
        "n_fake": int(fake.shape[0]),
    }
