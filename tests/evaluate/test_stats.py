"""Tests of the evaluation statistics against independent references.

References are scikit-learn / scipy, closed forms, or plain loops written here from the papers'
definitions; never the module's own helpers.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from sklearn import metrics as skm

from pathosynth.evaluate import stats

# --------------------------------------------------------------------------------------------------
# binary metrics


def _random_case(seed: int, n: int = 300, decimals: int | None = None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    scores = rng.normal(size=n) + 0.8 * y
    if decimals is not None:
        scores = np.round(scores, decimals)  # many ties
    return y, scores


@pytest.mark.parametrize("seed,decimals", [(0, None), (1, 1), (2, 0), (3, 2)])
def test_binary_metrics_match_sklearn(seed, decimals):
    y, scores = _random_case(seed, decimals=decimals)
    threshold = 0.3
    pred = (scores >= threshold).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(y, pred, labels=[0, 1]).ravel()

    m = stats.binary_metrics(y, scores, threshold)

    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (tp, fp, tn, fn)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred), abs=1e-12)
    assert m["sensitivity"] == pytest.approx(skm.recall_score(y, pred), abs=1e-12)
    assert m["specificity"] == pytest.approx(skm.recall_score(y, pred, pos_label=0), abs=1e-12)
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, scores), abs=1e-12)


@pytest.mark.parametrize("seed", range(20))
def test_auc_and_ap_match_sklearn_on_small_heavily_tied_sets(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(4, 15))
    y = rng.integers(0, 2, n)
    y[:2] = [0, 1]
    scores = rng.integers(0, 4, n).astype(float)
    assert stats.roc_auc(y, scores) == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert stats.average_precision(y, scores) == pytest.approx(skm.average_precision_score(y, scores), abs=1e-12)


def test_score_equal_to_threshold_is_predicted_positive():
    m = stats.binary_metrics([1, 0, 0], [0.5, 0.5, 0.2], threshold=0.5)
    assert m["sensitivity"] == 1.0
    assert m["specificity"] == 0.5


@pytest.mark.parametrize("label", [0, 1])
def test_binary_metrics_with_one_class_are_nan_where_undefined(label):
    y = np.full(6, label)
    m = stats.binary_metrics(y, np.linspace(0, 1, 6), threshold=0.5)
    assert math.isnan(m["roc_auc"]) and math.isnan(m["average_precision"])
    assert math.isnan(m["specificity" if label == 1 else "sensitivity"])
    assert m["sensitivity" if label == 1 else "specificity"] == 0.5
    assert m["accuracy"] == 0.5


def test_binary_metrics_rejects_bad_labels():
    with pytest.raises(ValueError, match="only 0 and 1"):
        stats.binary_metrics([0, 2], [0.1, 0.2], 0.5)
    with pytest.raises(ValueError, match="shape"):
        stats.binary_metrics([0, 1], [0.1, 0.2, 0.3], 0.5)


# --------------------------------------------------------------------------------------------------
# patient bootstrap


def _rank_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Mann-Whitney AUC via scipy's ranks (a reference independent of stats.roc_auc)."""
    n_pos = int(np.sum(y == 1))
    n_neg = y.size - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    ranks = sps.rankdata(s)
    return (ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


# Population for the coverage test: each patient has a label shared by all its slices (diseased or
# not), a random effect u ~ N(0, SD_PATIENT^2) and per-slice noise e ~ N(0, SD_SLICE^2):
# score = SHIFT * label + u + e. Positive and negative slices always come from different patients,
# so a positive-minus-negative score difference is N(SHIFT, 2 (SD_PATIENT^2 + SD_SLICE^2)).
SHIFT, SD_PATIENT, SD_SLICE = 1.0, 1.0, 0.5
TRUE_AUC = sps.norm.cdf(SHIFT / math.sqrt(2 * (SD_PATIENT**2 + SD_SLICE**2)))


def _simulate_patients(rng: np.random.Generator, n_patients: int = 30):
    labels = np.repeat([0, 1], n_patients // 2)
    slices = rng.integers(2, 6, n_patients)
    patient = np.repeat(np.arange(n_patients), slices)
    effect = rng.normal(0, SD_PATIENT, n_patients)
    y = labels[patient]
    scores = SHIFT * y + effect[patient] + rng.normal(0, SD_SLICE, patient.size)
    return y, scores, patient


def test_true_auc_of_the_simulated_population():
    # Checks the closed form the coverage test relies on, with a large simulation of independent
    # positive and negative patients.
    rng = np.random.default_rng(7)
    n = 400_000
    pos = SHIFT + rng.normal(0, SD_PATIENT, n) + rng.normal(0, SD_SLICE, n)
    neg = rng.normal(0, SD_PATIENT, n) + rng.normal(0, SD_SLICE, n)
    assert np.mean(pos > neg) == pytest.approx(TRUE_AUC, abs=0.003)


def test_patient_bootstrap_interval_covers_the_true_auc():
    rng = np.random.default_rng(2024)
    replications = 200
    covered = covered_by_slices = 0
    for rep in range(replications):
        y, scores, patient = _simulate_patients(rng)
        _, low, high = stats.patient_bootstrap(y, scores, patient, _rank_auc, n_boot=300, seed=rep)
        covered += low <= TRUE_AUC <= high
        # The same bootstrap treating every slice as its own patient, for contrast.
        each_slice = np.arange(y.size)
        _, low, high = stats.patient_bootstrap(y, scores, each_slice, _rank_auc, n_boot=300, seed=rep)
        covered_by_slices += low <= TRUE_AUC <= high
    coverage = covered / replications
    assert 0.88 <= coverage <= 0.99, coverage
    # Slices of a patient share its random effect, so a slice-level interval is too narrow: this
    # population is one where resampling the wrong unit visibly fails (about 70% coverage).
    assert covered_by_slices / replications < coverage - 0.1, (covered_by_slices, covered)


def test_patient_bootstrap_resamples_whole_patients():
    # 12 patients with 1..12 slices; the "scores" carry (patient, slice) so the metric sees exactly
    # which slices each resample holds.
    sizes = np.arange(1, 13)
    patient = np.repeat(np.arange(12), sizes)
    slice_id = np.arange(patient.size)
    y = (patient % 2).astype(int)
    tags = np.column_stack([patient, slice_id])
    seen: list[np.ndarray] = []

    def record(y_sub, tags_sub):
        seen.append(tags_sub.copy())
        return float(len(tags_sub))

    result = stats.patient_bootstrap(y, tags, patient, record, n_boot=200, seed=3)

    resamples = seen[1:]  # the first call is the point estimate on the full data
    assert len(resamples) == 200
    sizes_seen = set()
    distinct = []
    max_draws = 0
    for r in resamples:
        slice_counts = np.bincount(r[:, 1], minlength=patient.size)
        draws = np.zeros(12, dtype=int)
        for p in range(12):
            counts = slice_counts[patient == p]
            # every slice of a patient appears equally often: the times the patient was drawn
            assert (counts == counts[0]).all(), (p, counts)
            draws[p] = counts[0]
        assert draws.sum() == 12  # as many patient draws as patients
        sizes_seen.add(len(r))
        distinct.append(np.count_nonzero(draws))
        max_draws = max(max_draws, draws.max())
    # A slice-level bootstrap would keep every resample at 78 slices and reach ~50 distinct
    # patient ids in most of them; here sizes vary and ~12 * (1 - (11/12)^12) = 7.7 patients appear.
    assert len(sizes_seen) > 20
    assert 7.0 < np.mean(distinct) < 8.4
    assert max_draws >= 3  # a patient drawn k times contributes all its slices k times
    assert result.point == patient.size
    assert result.n_skipped == 0


def test_patient_bootstrap_is_deterministic_for_a_seed():
    y, scores, patient = _simulate_patients(np.random.default_rng(1))
    a = stats.patient_bootstrap(y, scores, patient, _rank_auc, n_boot=200, seed=11)
    b = stats.patient_bootstrap(y, scores, patient, _rank_auc, n_boot=200, seed=11)
    c = stats.patient_bootstrap(y, scores, patient, _rank_auc, n_boot=200, seed=12)
    assert tuple(a) == tuple(b)
    assert tuple(a) != tuple(c)
    assert a.point == pytest.approx(skm.roc_auc_score(y, scores), abs=1e-12)
    assert a.low < a.point < a.high


def test_patient_bootstrap_skips_and_counts_undefined_resamples():
    # Patient 0 holds the only positives: every resample that misses it (probability
    # (9/10)^10 = 0.349) has one class, and its AUC is undefined.
    patient = np.repeat(np.arange(10), 3)
    y = (patient == 0).astype(int)
    scores = np.random.default_rng(5).normal(size=patient.size) + y
    outcomes: list[float] = []

    def auc(y_sub, s_sub):
        value = _rank_auc(y_sub, s_sub)
        outcomes.append(value)
        return value

    with pytest.warns(RuntimeWarning, match="undefined"):
        result = stats.patient_bootstrap(y, scores, patient, auc, n_boot=1000, seed=0)
    undefined = int(np.sum(np.isnan(outcomes[1:])))
    assert result.n_skipped == undefined
    assert undefined / 1000 == pytest.approx(0.9**10, abs=0.05)
    assert math.isfinite(result.low) and math.isfinite(result.high)


# --------------------------------------------------------------------------------------------------
# DeLong


def _psi(x: float, y: float) -> float:
    return 1.0 if x > y else 0.5 if x == y else 0.0


def _brute_placements(y, scores):
    """DeLong's structural components with plain O(m n) loops (DeLong et al. 1988, eq. 3-4)."""
    pos = [s for s, t in zip(scores, y) if t == 1]
    neg = [s for s, t in zip(scores, y) if t == 0]
    v10 = [sum(_psi(x, z) for z in neg) / len(neg) for x in pos]
    v01 = [sum(_psi(x, z) for x in pos) / len(pos) for z in neg]
    return v10, v01


def _brute_cov(u, v):
    mu, mv = sum(u) / len(u), sum(v) / len(v)
    return sum((a - mu) * (b - mv) for a, b in zip(u, v)) / (len(u) - 1)


def _brute_delong(y, scores_a, scores_b):
    a10, a01 = _brute_placements(y, scores_a)
    b10, b01 = _brute_placements(y, scores_b)
    m, n = len(a10), len(a01)
    auc_a, auc_b = sum(a10) / m, sum(b10) / m
    var_a = _brute_cov(a10, a10) / m + _brute_cov(a01, a01) / n
    var_b = _brute_cov(b10, b10) / m + _brute_cov(b01, b01) / n
    cov_ab = _brute_cov(a10, b10) / m + _brute_cov(a01, b01) / n
    var_diff = var_a + var_b - 2 * cov_ab
    z = (auc_a - auc_b) / math.sqrt(var_diff)
    return auc_a, auc_b, var_a, var_diff, z, math.erfc(abs(z) / math.sqrt(2))


def _tied_pair(seed: int, n: int = 27):
    rng = np.random.default_rng(seed)
    y = np.zeros(n, dtype=int)
    y[rng.choice(n, 12, replace=False)] = 1
    latent = rng.normal(size=n) + y
    a = np.round(latent + rng.normal(0, 0.7, n))  # integer scores: many ties
    b = np.round(latent + rng.normal(0, 1.2, n), 1)
    return y, a, b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_delong_auc_and_variance_match_brute_force(seed):
    y, a, b = _tied_pair(seed)
    auc_a, _, var_a, var_diff, z, p = _brute_delong(y, list(a), list(b))

    single = stats.delong_auc_variance(y, a)
    assert single["auc"] == pytest.approx(skm.roc_auc_score(y, a), abs=1e-12)
    assert single["auc"] == pytest.approx(auc_a, abs=1e-12)
    assert single["variance"] == pytest.approx(var_a, rel=1e-10)
    assert single["standard_error"] == pytest.approx(math.sqrt(var_a), rel=1e-10)

    paired = stats.delong_test(y, a, b)
    assert paired["auc_b"] == pytest.approx(skm.roc_auc_score(y, b), abs=1e-12)
    assert paired["difference"] == pytest.approx(skm.roc_auc_score(y, a) - skm.roc_auc_score(y, b), abs=1e-12)
    assert paired["variance"] == pytest.approx(var_diff, rel=1e-10)
    assert paired["z"] == pytest.approx(z, rel=1e-10)
    assert paired["p"] == pytest.approx(p, rel=1e-9)


def test_delong_identical_rankings_give_zero_difference_and_p_one():
    y, a, _ = _tied_pair(4)
    for b in (a, 3 * a + 1):  # a monotone transform ranks the cases identically
        result = stats.delong_test(y, a, b)
        assert result["difference"] == 0.0
        assert result["variance"] == 0.0
        assert result["z"] == 0.0
        assert result["p"] == 1.0


def test_delong_type_one_error_is_near_nominal():
    # Two equally good, correlated scorers: the test should reject at about its 5% level.
    rng = np.random.default_rng(9)
    rejections = 0
    replications = 400
    for _ in range(replications):
        y = np.repeat([0, 1], 60)
        latent = rng.normal(size=y.size) + 1.0 * y
        a = latent + rng.normal(0, 1, y.size)
        b = latent + rng.normal(0, 1, y.size)
        rejections += stats.delong_test(y, a, b)["p"] < 0.05
    assert 0.02 <= rejections / replications <= 0.09


def test_delong_needs_two_of_each_class():
    with pytest.raises(ValueError, match="2 positives"):
        stats.delong_auc_variance([1, 0, 0, 0], [0.9, 0.1, 0.2, 0.3])


# --------------------------------------------------------------------------------------------------
# McNemar


def _paired_outcomes(b: int, c: int, both_right: int = 20, both_wrong: int = 5):
    a = [True] * b + [False] * c + [True] * both_right + [False] * both_wrong
    bb = [False] * b + [True] * c + [True] * both_right + [False] * both_wrong
    order = np.random.default_rng(b * 100 + c).permutation(len(a))
    return np.array(a)[order], np.array(bb)[order]


@pytest.mark.parametrize("b,c", [(7, 2), (3, 3), (0, 5), (10, 14), (24, 0), (1, 0)])
def test_mcnemar_exact_matches_binomtest(b, c):
    result = stats.mcnemar_test(*_paired_outcomes(b, c))
    assert (result["b"], result["c"], result["method"]) == (b, c, "exact")
    expected = sps.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue
    assert result["p"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("b,c", [(30, 15), (12, 13), (40, 10), (0, 25)])
def test_mcnemar_chi_square_with_continuity_correction(b, c):
    result = stats.mcnemar_test(*_paired_outcomes(b, c))
    statistic = (abs(b - c) - 1) ** 2 / (b + c)
    assert result["method"] == "chi2"
    assert result["statistic"] == pytest.approx(statistic, rel=1e-12)
    assert result["p"] == pytest.approx(sps.chi2.sf(statistic, df=1), rel=1e-12)


def test_mcnemar_without_discordant_pairs_has_p_one():
    a = np.array([True, False, True])
    assert stats.mcnemar_test(a, a)["p"] == 1.0


def test_paired_sensitivity_specificity_tests():
    rng = np.random.default_rng(21)
    y = rng.integers(0, 2, 200)
    pred_a = np.where(rng.random(200) < 0.8, y, 1 - y)
    pred_b = np.where(rng.random(200) < 0.7, y, 1 - y)

    result = stats.paired_sensitivity_specificity_tests(y, pred_a, pred_b)

    pos, neg = y == 1, y == 0
    sens = result["sensitivity"]
    assert sens["rate_a"] == pytest.approx(skm.recall_score(y, pred_a), abs=1e-12)
    assert sens["rate_b"] == pytest.approx(skm.recall_score(y, pred_b), abs=1e-12)
    assert sens["b"] == np.sum(pos & (pred_a == 1) & (pred_b == 0))
    assert sens["c"] == np.sum(pos & (pred_a == 0) & (pred_b == 1))
    assert sens["n"] == pos.sum()
    spec = result["specificity"]
    assert spec["rate_a"] == pytest.approx(skm.recall_score(y, pred_a, pos_label=0), abs=1e-12)
    assert spec["b"] == np.sum(neg & (pred_a == 0) & (pred_b == 1))
    assert spec["c"] == np.sum(neg & (pred_a == 1) & (pred_b == 0))
    for part in (sens, spec):
        b, c = part["b"], part["c"]
        if b + c < 25:
            expected = sps.binomtest(min(b, c), b + c, 0.5).pvalue
        else:
            expected = sps.chi2.sf((abs(b - c) - 1) ** 2 / (b + c), df=1)
        assert part["p"] == pytest.approx(expected, rel=1e-12)


# --------------------------------------------------------------------------------------------------
# Frechet distance


def test_frechet_diagonal_gaussians_closed_form():
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    s1, s2 = rng.uniform(0.1, 3, 6), rng.uniform(0.1, 3, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    got = stats.frechet_distance_gaussians(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def _commuting_covariances(rng, d):
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    e1, e2 = rng.uniform(0.2, 2, d), rng.uniform(0.2, 2, d)
    return q @ np.diag(e1) @ q.T, q @ np.diag(e2) @ q.T, np.sum(e1 + e2 - 2 * np.sqrt(e1 * e2))


def test_frechet_commuting_gaussians_closed_form():
    rng = np.random.default_rng(1)
    cov1, cov2, trace_term = _commuting_covariances(rng, 5)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    got = stats.frechet_distance_gaussians(mu1, cov1, mu2, cov2)
    assert got == pytest.approx(np.sum((mu1 - mu2) ** 2) + trace_term, rel=1e-9)


def test_frechet_of_samples_approaches_the_closed_form():
    rng = np.random.default_rng(2)
    cov1, cov2, trace_term = _commuting_covariances(rng, 3)
    mu1, mu2 = np.zeros(3), np.array([1.0, -0.5, 0.25])
    expected = np.sum((mu1 - mu2) ** 2) + trace_term
    errors = []
    for n in (200, 50_000):
        a = rng.multivariate_normal(mu1, cov1, n)
        b = rng.multivariate_normal(mu2, cov2, n)
        errors.append(abs(stats.frechet_distance(a, b) - expected))
    assert errors[1] < 0.03 * expected
    assert errors[1] < errors[0]


def test_frechet_one_feature_is_the_wasserstein_distance_of_normals():
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, (500, 1)), rng.normal(2, 3, (400, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert stats.frechet_distance(a, b) == pytest.approx(expected, rel=1e-10)


def test_frechet_of_identical_sets_is_zero():
    features = np.random.default_rng(4).normal(size=(300, 16)) * 5
    assert abs(stats.frechet_distance(features, features)) < 1e-8


def test_frechet_with_rank_deficient_covariances_matches_eigenvalues():
    # Fewer samples than features: both covariances are singular. The eigenvalues of cov1 @ cov2
    # are real and >= 0, and tr sqrt(cov1 @ cov2) is the sum of their square roots.
    rng = np.random.default_rng(5)
    a, b = rng.normal(size=(10, 20)), rng.normal(1, 2, size=(12, 20))
    mu1, mu2 = a.mean(0), b.mean(0)
    cov1, cov2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    eig = np.clip(np.linalg.eigvals(cov1 @ cov2).real, 0, None)
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * np.sum(np.sqrt(eig))
    assert stats.frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    assert abs(stats.frechet_distance(a, a)) < 1e-6


def test_frechet_falls_back_to_a_ridge_when_sqrtm_fails(monkeypatch):
    real_sqrtm = stats.linalg.sqrtm
    inputs = []

    def failing_once(matrix):
        inputs.append(matrix.copy())
        return np.full_like(matrix, np.nan) if len(inputs) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(stats.linalg, "sqrtm", failing_once)
    s1, s2 = np.array([1.0, 2.0, 4.0]), np.array([2.0, 2.0, 1.0])
    with pytest.warns(RuntimeWarning, match="ridge"):
        got = stats.frechet_distance_gaussians(np.zeros(3), np.diag(s1), np.ones(3), np.diag(s2))
    assert len(inputs) == 2
    # The retry saw the product of ridged covariances: a small positive shift of its diagonal.
    shift = np.diag(inputs[1] - inputs[0])
    assert np.all(shift > 0) and np.all(shift < 1e-4 * (s1 + s2))
    expected = 3 + np.sum(s1 + s2 - 2 * np.sqrt(s1 * s2))
    assert got == pytest.approx(expected, rel=1e-4)


# --------------------------------------------------------------------------------------------------
# KID


def _brute_mmd2(x, y):
    """Unbiased MMD^2 with k(u, v) = (u.v / d + 1)^3, as plain double loops."""
    d = len(x[0])

    def k(u, v):
        return (sum(p * q for p, q in zip(u, v)) / d + 1) ** 3

    m = len(x)
    within = sum(k(x[i], x[j]) + k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    across = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return within - 2 * across


def test_kid_equals_brute_force_mmd_on_a_tiny_set():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 3)), rng.normal(0.5, 1, size=(5, 3))
    # subset_size is capped at 5, so every subset is the whole set (MMD ignores the order).
    mean, std = stats.kernel_inception_distance(a, b, subsets=4, subset_size=1000)
    expected = _brute_mmd2(a.tolist(), b.tolist())
    assert mean == pytest.approx(expected, rel=1e-10)
    assert std == pytest.approx(0.0, abs=1e-10 * abs(expected))


def test_kid_draws_uniform_subsets_of_the_smaller_size():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(5, 3)), rng.normal(0.3, 1.5, size=(8, 3))
    # a's subsets are always all of a; b's are uniform 5-of-8 subsets: the expectation is the
    # mean over all 56 of them.
    values = [_brute_mmd2(a.tolist(), b[list(rows)].tolist()) for rows in itertools.combinations(range(8), 5)]
    mean, std = stats.kernel_inception_distance(a, b, subsets=3000, subset_size=6, seed=2)
    assert mean == pytest.approx(np.mean(values), abs=4 * np.std(values) / math.sqrt(3000))
    assert std == pytest.approx(np.std(values), rel=0.1)


def test_kid_is_near_zero_for_one_distribution_and_positive_for_a_shift():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(800, 16)), rng.normal(size=(800, 16))
    shifted = rng.normal(0.3, 1, size=(800, 16))
    same_mean, same_std = stats.kernel_inception_distance(a, b, subsets=40, subset_size=300)
    shift_mean, shift_std = stats.kernel_inception_distance(a, shifted, subsets=40, subset_size=300)
    assert abs(same_mean) < 3 * same_std
    assert shift_mean > 5 * shift_std
    assert shift_mean > 20 * abs(same_mean)


# --------------------------------------------------------------------------------------------------
# precision and recall


def _brute_precision_recall(real, fake, k):
    """Kynkaanniemi et al.'s definition with plain loops over Euclidean distances."""

    def radii(points):
        return [sorted(math.dist(p, q) for q in points)[k] for p in points]  # index 0 is p itself

    def share_inside(queries, centres, r):
        return sum(any(math.dist(q, c) <= rc for c, rc in zip(centres, r)) for q in queries) / len(queries)

    real, fake = real.tolist(), fake.tolist()
    return share_inside(fake, real, radii(real)), share_inside(real, fake, radii(fake))


def test_precision_recall_matches_brute_force_with_small_blocks(monkeypatch):
    monkeypatch.setattr(stats, "_BLOCK_ELEMENTS", 50)  # forces many blocks of 1-2 rows
    rng = np.random.default_rng(0)
    real = rng.normal(size=(40, 4))
    fake = rng.normal(1.5, 0.5, size=(30, 4))
    result = stats.precision_recall(real, fake, k=3)
    precision, recall = _brute_precision_recall(real, fake, 3)
    assert 0.05 < precision < 0.95 and 0.05 < recall < 0.95  # a case where both are informative
    assert result["precision"] == pytest.approx(precision, abs=1e-12)
    assert result["recall"] == pytest.approx(recall, abs=1e-12)


def test_precision_recall_of_identical_and_of_matching_sets():
    rng = np.random.default_rng(1)
    real = rng.normal(size=(500, 8))
    same = stats.precision_recall(real, real.copy())
    assert same["precision"] == 1.0 and same["recall"] == 1.0
    other = stats.precision_recall(real, rng.normal(size=(500, 8)))
    assert other["precision"] > 0.8 and other["recall"] > 0.8


def test_collapsed_fakes_are_precise_but_recall_nothing():
    real = np.random.default_rng(2).normal(size=(300, 8))
    collapsed = np.repeat(real[:1], 100, axis=0)
    result = stats.precision_recall(real, collapsed)
    assert result["precision"] == 1.0
    assert result["recall"] == pytest.approx(1 / 300)


def test_far_away_fakes_have_no_precision():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 8))
    result = stats.precision_recall(real, rng.normal(size=(200, 8)) + 50)
    assert result["precision"] == 0.0 and result["recall"] == 0.0


# ------------------------------------------------------------------ operating point and power


@settings(max_examples=60, deadline=None)
@given(negatives=st.lists(st.floats(0, 1), min_size=1, max_size=40), specificity=st.floats(0, 1))
def test_threshold_for_specificity_is_the_lowest_that_reaches_it(negatives, specificity):
    threshold = stats.threshold_for_specificity(negatives, specificity)
    values = np.asarray(negatives)
    # "reaches" as the function counts it: kept negatives >= specificity x n, to 1e-9 of a negative
    # (a tolerance in proportions disagreed at specificity 1e-9: two negatives at 0, found by Hypothesis)
    needed = specificity * len(values) - 1e-9
    assert (values <= threshold).sum() >= needed
    lower = [t for t in [-np.inf, *values] if t < threshold]  # every lower cut (brute force)
    assert all((values <= t).sum() < needed for t in lower)


def test_minimum_detectable_difference_matches_the_normal_quantiles():
    expected = (sps.norm.ppf(0.975) + sps.norm.ppf(0.8)) * 0.03
    assert stats.minimum_detectable_difference(0.03) == pytest.approx(expected)
    assert stats.minimum_detectable_difference(0.03, alpha=0.01, power=0.9) == pytest.approx(
        (sps.norm.ppf(0.995) + sps.norm.ppf(0.9)) * 0.03)


def test_the_bootstrap_standard_error_is_the_spread_of_the_resamples():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    y[:2] = [0, 1]
    scores = rng.uniform(0, 1, 200)
    patients = np.arange(200)
    interval = stats.patient_bootstrap(y, scores, patients, stats.roc_auc, n_boot=400, seed=1)
    # an independent reference: the same resamples drawn by hand (one slice per patient), scored by scikit-learn
    draws = np.random.default_rng(1).integers(0, 200, size=(400, 200))
    values = [skm.roc_auc_score(y[d], scores[d]) for d in draws if len(set(y[d])) == 2]
    assert interval.standard_error == pytest.approx(np.std(values, ddof=1), rel=1e-9)
