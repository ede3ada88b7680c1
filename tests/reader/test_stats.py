"""Visual Turing Test statistics against independent implementations: scikit-learn's confusion
matrix and Cohen's kappa, statsmodels' Fleiss' kappa, rater aggregation and binomial intervals;
plus the edge cases a small reader study really produces (one category only, unanswered
questions, a reader who stopped half-way) and a hand-built study whose cells are known."""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import statistics
import warnings

import numpy as np
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import cohen_kappa_score, confusion_matrix
from statsmodels.stats.inter_rater import aggregate_raters
from statsmodels.stats.inter_rater import fleiss_kappa as statsmodels_fleiss
from statsmodels.stats.proportion import proportion_confint

from pathosynth.reader.stats import (
    accuracy,
    binomial_interval,
    cohen_kappa,
    confusion,
    fleiss_kappa,
    ratings_table,
    study_results,
)

ORIGINS = ["real", "synthetic"]
TUMOURS = ["glioma", "meningioma", "none"]
SEEDS = (0, 1, 2)
SIZES = (1, 9, 80)
TIGHT = {"rel": 1e-12, "abs": 1e-12}

# statsmodels' names for our interval methods
STATSMODELS_METHOD = {"wilson": "wilson", "clopper-pearson": "beta"}


# ------------------------------------------------------------------------------------ data makers


def _noisy_answers(rng: np.random.Generator, truth: list[str], categories: list[str], skill: float) -> list[str]:
    """Answers that copy the truth with probability `skill` and guess otherwise, so that kappas
    land away from 0 and from 1 and a wrong formula shows."""
    guesses = rng.choice(categories, size=len(truth))
    copies = rng.random(len(truth)) < skill
    return [t if copy else str(g) for t, copy, g in zip(truth, copies, guesses)]


def _random_truth(rng: np.random.Generator, size: int, categories: list[str]) -> list[str]:
    return [str(c) for c in rng.choice(categories, size=size)]


def _random_study(seed: int, readers: int = 4, cases: int = 40) -> list[dict]:
    """A study with gaps: readers skip cases, some questions are not asked, some rows lack a
    confidence or a time."""
    rng = np.random.default_rng(seed)
    truth_origin = _random_truth(rng, cases, ORIGINS)
    truth_label = _random_truth(rng, cases, TUMOURS)
    rows = []
    for r in range(readers):
        skill = 0.2 + 0.6 * rng.random()
        answer_origin = _noisy_answers(rng, truth_origin, ORIGINS, skill)
        answer_label = _noisy_answers(rng, truth_label, TUMOURS, skill)
        for c in range(cases):
            if rng.random() < 0.15:
                continue
            rows.append({
                "reader": f"reader{r}", "case": f"case{c:03d}",
                "truth_origin": truth_origin[c],
                "answer_origin": answer_origin[c] if rng.random() > 0.1 else None,
                "truth_label": truth_label[c],
                "answer_label": answer_label[c] if rng.random() > 0.2 else None,
                "confidence": int(rng.integers(1, 6)) if rng.random() > 0.1 else None,
                "seconds": float(rng.uniform(1, 30)) if rng.random() > 0.1 else None,
            })
    return rows


def _row(reader: str, case: str, truth: str, answer: str | None, confidence: int | None = None,
         seconds: float | None = None, truth_label: str | None = None, answer_label: str | None = None) -> dict:
    return {"reader": reader, "case": case, "truth_origin": truth, "answer_origin": answer,
            "truth_label": truth_label, "answer_label": answer_label, "confidence": confidence, "seconds": seconds}


def _answers_by_reader(rows: list[dict], field: str) -> dict[str, dict[str, str]]:
    by_reader: dict[str, dict[str, str]] = {}
    for row in rows:
        if row[field] is not None:
            by_reader.setdefault(row["reader"], {})[row["case"]] = row[field]
    return by_reader


@contextlib.contextmanager
def _nan_on_purpose():
    """An undefined statistic must be recognised as such, not fall out of a 0 / 0 that happens
    to give nan: numpy's division warnings become errors."""
    with np.errstate(all="raise"), warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def _assert_plain_python(value: object, where: str = "results") -> None:
    """numpy scalars pass json.dumps only by luck (float64 does, int64 does not): insist on
    builtins all the way down."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, f"{where} has key {key!r} of type {type(key)}"
            _assert_plain_python(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_plain_python(item, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (str, int, float, bool), f"{where} is {type(value)}"


# ------------------------------------------------------------------------------------ intervals


@pytest.mark.parametrize("method", ["wilson", "clopper-pearson"])
def test_binomial_interval_matches_statsmodels(method):
    for n in (1, 2, 7, 30, 250):
        for successes in sorted({0, 1, n // 3, n // 2, n - 1, n}):
            for level in (0.9, 0.95, 0.99):
                expected = proportion_confint(successes, n, alpha=1 - level, method=STATSMODELS_METHOD[method])
                got = binomial_interval(successes, n, level, method)
                assert got == pytest.approx(expected, **TIGHT), (successes, n, level)


@pytest.mark.parametrize("method", ["wilson", "clopper-pearson"])
def test_binomial_interval_of_no_trials_is_nan(method):
    low, high = binomial_interval(0, 0, method=method)
    assert math.isnan(low) and math.isnan(high)


@pytest.mark.parametrize("successes, n, level, method", [
    (5, 4, 0.95, "wilson"),
    (-1, 4, 0.95, "wilson"),
    (1.5, 4, 0.95, "wilson"),
    (1, 4, 1.0, "wilson"),
    (1, 4, 0.95, "beta"),  # statsmodels' name, not ours: a silent fallback would hide the typo
])
def test_binomial_interval_rejects_impossible_input(successes, n, level, method):
    with pytest.raises(ValueError):
        binomial_interval(successes, n, level, method)


# ------------------------------------------------------------------------------------ confusion


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("categories", [ORIGINS, TUMOURS, ["a", "b", "c", "d", "e"]])
def test_confusion_counts_match_sklearn(seed, size, categories):
    rng = np.random.default_rng(seed)
    truth = _random_truth(rng, size, categories)
    answer = _noisy_answers(rng, truth, categories, skill=0.5)
    result = confusion(truth, answer, categories)
    assert result["labels"] == categories
    assert result["counts"] == confusion_matrix(truth, answer, labels=categories).tolist()
    for (i, t), (j, a) in itertools.product(enumerate(categories), repeat=2):
        assert result["cells"][f"{t[0].upper()}{t[1:]} as {a[0].upper()}{a[1:]}"] == result["counts"][i][j]


def test_confusion_cells_put_truth_first():
    # Deliberately lopsided, so that swapping rows and columns changes every off-diagonal cell.
    truth = ["real", "real", "real", "synthetic", "synthetic"]
    answer = ["real", "synthetic", "synthetic", "real", "synthetic"]
    result = confusion(truth, answer, ORIGINS)
    assert result["cells"] == {"Real as Real": 1, "Real as Synthetic": 2, "Synthetic as Real": 1,
                               "Synthetic as Synthetic": 1}
    assert list(result["cells"]) == ["Real as Real", "Real as Synthetic", "Synthetic as Real",
                                     "Synthetic as Synthetic"]


def test_confusion_cell_names_capitalise_the_first_letter_only():
    result = confusion(["tumour WHO-IV", "non-tumour"], ["non-tumour", "non-tumour"], ["tumour WHO-IV", "non-tumour"])
    assert result["cells"] == {"Tumour WHO-IV as Tumour WHO-IV": 0, "Tumour WHO-IV as Non-tumour": 1,
                               "Non-tumour as Tumour WHO-IV": 0, "Non-tumour as Non-tumour": 1}


def test_confusion_rejects_an_answer_outside_the_labels():
    with pytest.raises(ValueError, match="Synthetic"):
        confusion(["real", "synthetic"], ["real", "Synthetic"], ORIGINS)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES)
def test_accuracy_matches_count_and_statsmodels_wilson(seed, size):
    rng = np.random.default_rng(seed)
    truth = _random_truth(rng, size, TUMOURS)
    answer = _noisy_answers(rng, truth, TUMOURS, skill=0.6)
    correct = int(np.sum(np.array(truth) == np.array(answer)))
    result = accuracy(truth, answer, level=0.9)
    assert (result["n"], result["correct"]) == (size, correct)
    assert result["accuracy"] == pytest.approx(correct / size, **TIGHT)
    expected = proportion_confint(correct, size, alpha=0.1, method="wilson")
    assert (result["low"], result["high"]) == pytest.approx(expected, **TIGHT)


def test_accuracy_of_no_answers_is_nan():
    result = accuracy([], [])
    assert (result["n"], result["correct"]) == (0, 0)
    assert all(math.isnan(result[key]) for key in ("accuracy", "low", "high"))


# ------------------------------------------------------------------------------------ Cohen


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("size", SIZES[1:])
@pytest.mark.parametrize("categories", [ORIGINS, TUMOURS, ["a", "b", "c", "d", "e"]])
@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn asks for `labels`; beside the point here
def test_cohen_kappa_matches_sklearn(seed, size, categories):
    rng = np.random.default_rng(seed)
    truth = _random_truth(rng, size, categories)
    first = _noisy_answers(rng, truth, categories, skill=0.6)
    second = _noisy_answers(rng, truth, categories, skill=0.4)
    undefined = len(set(first) | set(second)) == 1
    with pytest.warns(UndefinedMetricWarning) if undefined else contextlib.nullcontext():
        expected = cohen_kappa_score(first, second)
    assert _same_float(cohen_kappa(first, second), expected)
    # An unused label must change nothing.
    assert _same_float(cohen_kappa(first, second, [*categories, "never used"]), expected)


def _same_float(got: float, expected: float) -> bool:
    if math.isnan(expected):
        return math.isnan(got)
    return got == pytest.approx(expected, **TIGHT)


def test_cohen_kappa_of_perfect_agreement_is_one():
    answers = ["glioma", "none", "meningioma", "none", "glioma"]
    assert cohen_kappa(answers, list(answers)) == pytest.approx(1.0, **TIGHT)
    assert cohen_kappa_score(answers, answers) == pytest.approx(1.0, **TIGHT)


@pytest.mark.filterwarnings("ignore:A single label was found")  # sklearn asks for `labels`; beside the point here
def test_cohen_kappa_is_nan_when_both_readers_give_one_and_the_same_answer():
    # Chance agreement is already 1, so kappa is 0 / 0: sklearn says nan too.
    answers = ["synthetic"] * 6
    with pytest.warns(UndefinedMetricWarning):
        expected = cohen_kappa_score(answers, answers)
    assert math.isnan(expected)
    with _nan_on_purpose():
        assert math.isnan(cohen_kappa(answers, answers))
        assert math.isnan(cohen_kappa(answers, answers, ORIGINS))


def test_cohen_kappa_of_two_different_constant_readers_is_zero_like_sklearn():
    first, second = ["real"] * 5, ["synthetic"] * 5
    assert cohen_kappa(first, second) == pytest.approx(cohen_kappa_score(first, second), **TIGHT)
    assert cohen_kappa(first, second) == 0.0


def test_cohen_kappa_of_no_shared_cases_is_nan():
    assert math.isnan(cohen_kappa([], [], ORIGINS))


def test_cohen_kappa_rejects_answers_outside_the_labels():
    # sklearn would drop the pair silently and report a kappa over fewer cases.
    with pytest.raises(ValueError):
        cohen_kappa(["real", "synthetic", "real"], ["real", "synthetic", "fake"], ORIGINS)


# ------------------------------------------------------------------------------------ Fleiss


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("raters", [2, 3, 6])
@pytest.mark.parametrize("categories", [ORIGINS, TUMOURS, ["a", "b", "c", "d", "e"]])
@pytest.mark.parametrize("subjects", [3, 50])
def test_fleiss_kappa_matches_statsmodels(seed, raters, categories, subjects):
    rng = np.random.default_rng(seed)
    truth = _random_truth(rng, subjects, categories)
    data = np.array([_noisy_answers(rng, truth, categories, skill=0.5) for _ in range(raters)]).T
    table, _ = aggregate_raters(data)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = statsmodels_fleiss(table, method="fleiss")
    assert _same_float(fleiss_kappa(table), expected)


def test_fleiss_kappa_of_perfect_agreement_is_one():
    table = np.array([[3, 0, 0], [0, 3, 0], [0, 0, 3], [3, 0, 0]])
    assert fleiss_kappa(table) == pytest.approx(1.0, **TIGHT)
    assert statsmodels_fleiss(table) == pytest.approx(1.0, **TIGHT)


def test_fleiss_kappa_is_nan_when_everybody_answers_one_category():
    table = np.array([[4, 0], [4, 0], [4, 0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        assert math.isnan(statsmodels_fleiss(table))
    with _nan_on_purpose():
        assert math.isnan(fleiss_kappa(table))


def test_fleiss_kappa_of_a_single_rater_is_nan():
    # Fleiss' kappa counts agreeing pairs of raters per subject; one rater gives no pair.
    with _nan_on_purpose():
        assert math.isnan(fleiss_kappa(np.array([[1, 0], [0, 1]])))


def test_fleiss_kappa_rejects_subjects_with_different_rater_counts():
    with pytest.raises(ValueError, match="same number of raters"):
        fleiss_kappa(np.array([[2, 1], [1, 1]]))


def test_ratings_table_keeps_only_cases_every_reader_rated():
    rng = np.random.default_rng(3)
    cases = [f"case{i:02d}" for i in range(20)]
    truth = _random_truth(rng, len(cases), TUMOURS)
    ratings = {reader: dict(zip(cases, _noisy_answers(rng, truth, TUMOURS, 0.5))) for reader in ("ann", "bob", "cy")}
    for dropped in ("case03", "case11", "case17"):
        del ratings["cy"][dropped]
    table, used = ratings_table(ratings, TUMOURS)
    shared = [c for c in cases if c not in ("case03", "case11", "case17")]
    assert used == shared
    # aggregate_raters' columns are the sorted categories seen; TUMOURS is sorted and all appear.
    expected, levels = aggregate_raters(np.array([[ratings[r][c] for r in sorted(ratings)] for c in shared]))
    assert levels.tolist() == TUMOURS
    assert table.tolist() == expected.tolist()


# ------------------------------------------------------------------------------------ a known study


def _known_study() -> list[dict]:
    """Four cases, three readers. ann is perfect, bob calls everything real, cy stopped after two
    cases, and the origin question was not put to ann on case4."""
    truth = {"case1": "real", "case2": "real", "case3": "synthetic", "case4": "synthetic"}
    rows = [
        _row("ann", "case1", truth["case1"], "real", 5, 4.0),
        _row("ann", "case2", truth["case2"], "real", 4, 6.0),
        _row("ann", "case3", truth["case3"], "synthetic", 5, 10.0),
        _row("ann", "case4", truth["case4"], None, None, None),
        _row("bob", "case1", truth["case1"], "real", 2, 3.0),
        _row("bob", "case2", truth["case2"], "real", 1, 5.0),
        _row("bob", "case3", truth["case3"], "real", 1, 7.0),
        _row("bob", "case4", truth["case4"], "real", 3, 9.0),
        _row("cy", "case1", truth["case1"], "synthetic", 2, 20.0),
        _row("cy", "case3", truth["case3"], "synthetic", 5, 30.0),
    ]
    # Shuffled so that sorted output cannot come from the input order.
    return rows[::-1]


def _origin_cells(real_as_real: int, real_as_synthetic: int, synthetic_as_real: int,
                  synthetic_as_synthetic: int) -> dict[str, int]:
    return {"Real as Real": real_as_real, "Real as Synthetic": real_as_synthetic,
            "Synthetic as Real": synthetic_as_real, "Synthetic as Synthetic": synthetic_as_synthetic}


def test_known_study_cells_per_reader_and_pooled():
    results = study_results(_known_study())
    assert list(results["readers"]) == ["ann", "bob", "cy"]
    cells = {reader: summary["origin"]["confusion"]["cells"] for reader, summary in results["readers"].items()}
    assert cells["ann"] == _origin_cells(real_as_real=2, real_as_synthetic=0, synthetic_as_real=0,
                                         synthetic_as_synthetic=1)
    assert cells["bob"] == _origin_cells(real_as_real=2, real_as_synthetic=0, synthetic_as_real=2,
                                         synthetic_as_synthetic=0)
    assert cells["cy"] == _origin_cells(real_as_real=0, real_as_synthetic=1, synthetic_as_real=0,
                                        synthetic_as_synthetic=1)
    assert results["pooled"]["origin"]["confusion"]["cells"] == _origin_cells(
        real_as_real=4, real_as_synthetic=1, synthetic_as_real=2, synthetic_as_synthetic=2)
    assert results["pooled"]["origin"]["confusion"]["counts"] == [[4, 1], [2, 2]]


def test_known_study_accuracy_counts_and_times():
    results = study_results(_known_study())
    ann, bob, cy = (results["readers"][r] for r in ("ann", "bob", "cy"))
    # ann's case4 was not asked: not an answered case, not a wrong answer.
    assert (ann["n"], ann["origin"]["accuracy"]["n"], ann["origin"]["accuracy"]["correct"]) == (3, 3, 3)
    assert bob["origin"]["accuracy"]["accuracy"] == 0.5
    assert cy["origin"]["accuracy"]["accuracy"] == 0.5
    assert results["pooled"]["n"] == 9
    assert results["pooled"]["origin"]["accuracy"]["accuracy"] == pytest.approx(6 / 9, **TIGHT)
    assert (results["pooled"]["origin"]["accuracy"]["low"], results["pooled"]["origin"]["accuracy"]["high"]) == \
        pytest.approx(proportion_confint(6, 9, method="wilson"), **TIGHT)
    assert ann["mean_confidence"] == pytest.approx(14 / 3, **TIGHT)
    assert bob["median_seconds"] == 6.0
    assert results["pooled"]["median_seconds"] == statistics.median([4, 6, 10, 3, 5, 7, 9, 20, 30])
    # No row has a label: the label question was never part of this study.
    assert results["labels"] is None and ann["label"] is None and results["agreement"]["label"] is None


def test_known_study_agreement_uses_shared_cases():
    agreement = study_results(_known_study())["agreement"]["origin"]
    assert agreement["readers"] == ["ann", "bob", "cy"]
    # Every reader answered only case1 and case3 (ann skipped case4, cy stopped).
    assert agreement["cases"] == 2
    table = np.array([[2, 1], [1, 2]])  # case1: real, real, synthetic; case3: synthetic, real, synthetic
    assert agreement["fleiss"] == pytest.approx(statsmodels_fleiss(table), **TIGHT)
    pairs = {(p["a"], p["b"]): p for p in agreement["pairs"]}
    assert list(pairs) == [("ann", "bob"), ("ann", "cy"), ("bob", "cy")]
    assert pairs[("ann", "bob")]["cases"] == 3
    assert pairs[("ann", "bob")]["cohen"] == pytest.approx(
        cohen_kappa_score(["real", "real", "synthetic"], ["real", "real", "real"]), **TIGHT)
    assert pairs[("ann", "cy")]["cases"] == 2
    assert pairs[("ann", "cy")]["cohen"] == pytest.approx(
        cohen_kappa_score(["real", "synthetic"], ["synthetic", "synthetic"]), **TIGHT)
    assert pairs[("bob", "cy")]["cases"] == 2


def test_known_study_by_confidence():
    levels = study_results(_known_study())["by_confidence"]["origin"]
    assert [level["confidence"] for level in levels] == [1, 2, 3, 4, 5]
    # Confidence 1: bob on case2 (right) and case3 (wrong). Confidence 5: ann twice and cy, all right.
    assert [(level["n"], level["correct"]) for level in levels] == [(2, 1), (2, 1), (1, 0), (1, 1), (3, 3)]
    assert (levels[4]["low"], levels[4]["high"]) == pytest.approx(proportion_confint(3, 3, method="wilson"), **TIGHT)


def test_study_results_survive_json_and_hold_plain_python():
    results = study_results(_random_study(seed=5))
    _assert_plain_python(results)
    assert json.loads(json.dumps(results))["readers"].keys() == results["readers"].keys()


# ------------------------------------------------------------------------------------ random studies


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("readers, cases", [(3, 12), (5, 40)])
def test_random_study_matches_references(seed, readers, cases):
    rows = _random_study(seed, readers, cases)
    results = study_results(rows, labels=TUMOURS)
    for field, question, categories in (("answer_origin", "origin", ORIGINS), ("answer_label", "label", TUMOURS)):
        truth_field = field.replace("answer", "truth")
        for reader, summary in results["readers"].items():
            answered = [r for r in rows if r["reader"] == reader and r[field] is not None]
            expected = confusion_matrix([r[truth_field] for r in answered], [r[field] for r in answered],
                                        labels=categories)
            assert summary[question]["confusion"]["counts"] == expected.tolist()
        _check_agreement(results["agreement"][question], _answers_by_reader(rows, field), categories)


def _check_agreement(agreement: dict, ratings: dict[str, dict[str, str]], categories: list[str]) -> None:
    readers = sorted(ratings)
    shared = sorted(set.intersection(*(set(by_case) for by_case in ratings.values())))
    data = np.array([[categories.index(ratings[r][c]) for r in readers] for c in shared])
    table, _ = aggregate_raters(data, n_cat=len(categories))
    assert agreement["cases"] == len(shared)
    with np.errstate(divide="ignore", invalid="ignore"):
        expected_fleiss = statsmodels_fleiss(table)
    assert _same_float(agreement["fleiss"], expected_fleiss)
    assert [(p["a"], p["b"]) for p in agreement["pairs"]] == list(itertools.combinations(readers, 2))
    for pair in agreement["pairs"]:
        overlap = sorted(set(ratings[pair["a"]]) & set(ratings[pair["b"]]))
        assert pair["cases"] == len(overlap)
        expected = cohen_kappa_score([ratings[pair["a"]][c] for c in overlap], [ratings[pair["b"]][c] for c in overlap])
        assert _same_float(pair["cohen"], expected)


@pytest.mark.parametrize("seed", SEEDS)
def test_random_study_pooled_and_by_confidence_count_every_answer_once(seed):
    rows = _random_study(seed)
    results = study_results(rows)
    asked = [r for r in rows if r["answer_origin"] is not None]
    right = [r for r in asked if r["answer_origin"] == r["truth_origin"]]
    assert results["pooled"]["origin"]["accuracy"]["n"] == len(asked)
    assert results["pooled"]["origin"]["accuracy"]["correct"] == len(right)
    for level in results["by_confidence"]["origin"]:
        at_level = [r for r in asked if r["confidence"] == level["confidence"]]
        assert level["n"] == len(at_level)
        assert level["correct"] == sum(r["answer_origin"] == r["truth_origin"] for r in at_level)
    assert results["pooled"]["n"] == sum(r["answer_origin"] is not None or r["answer_label"] is not None for r in rows)


# ------------------------------------------------------------------------------------ study edge cases


def test_single_reader_has_no_agreement():
    rows = [_row("ann", f"case{i}", truth, answer)
            for i, (truth, answer) in enumerate([("real", "real"), ("synthetic", "real"), ("synthetic", "synthetic")])]
    agreement = study_results(rows)["agreement"]["origin"]
    assert math.isnan(agreement["fleiss"])
    assert (agreement["cases"], agreement["pairs"]) == (0, [])


def test_readers_who_all_answer_real_give_nan_agreement():
    rows = [_row(reader, f"case{i}", truth, "real")
            for reader in ("ann", "bob", "cy") for i, truth in enumerate(["real", "synthetic", "synthetic"])]
    results = study_results(rows)
    agreement = results["agreement"]["origin"]
    assert agreement["cases"] == 3
    assert math.isnan(agreement["fleiss"])
    assert all(math.isnan(pair["cohen"]) for pair in agreement["pairs"])
    assert results["pooled"]["origin"]["confusion"]["cells"]["Synthetic as Real"] == 6


def test_label_answer_without_a_truth_counts_for_agreement_but_not_accuracy():
    rows = [
        _row("ann", "case1", "real", None, truth_label="tumour", answer_label="tumour"),
        _row("bob", "case1", "real", None, truth_label="tumour", answer_label="non-tumour"),
        _row("ann", "case2", "synthetic", None, truth_label=None, answer_label="non-tumour"),
        _row("bob", "case2", "synthetic", None, truth_label=None, answer_label="non-tumour"),
    ]
    results = study_results(rows)
    assert results["labels"] == ["non-tumour", "tumour"]
    assert results["pooled"]["label"]["accuracy"]["n"] == 2
    assert results["pooled"]["label"]["confusion"]["cells"]["Tumour as Non-tumour"] == 1
    assert results["agreement"]["label"]["pairs"][0]["cases"] == 2
    # No origin question was asked at all.
    assert results["pooled"]["origin"] is None and results["agreement"]["origin"] is None


@pytest.mark.parametrize("rows", [
    [_row("ann", "case1", "real", "real"), _row("ann", "case1", "real", "synthetic")],
    [_row("ann", "case1", "real", "real"), _row("bob", "case1", "synthetic", "real")],
    [_row("ann", "case1", "real", "fake")],
    [_row("ann", "case1", "real", "real", confidence=6)],
], ids=["answered twice", "two truths", "unknown origin", "confidence 6"])
def test_study_results_reject_inconsistent_answers(rows):
    with pytest.raises(ValueError):
        study_results(rows)


def test_study_results_reject_labels_outside_the_given_ones():
    # Without a truth label the answer is never scored, so only the up-front check can catch it.
    rows = [_row("ann", "case1", "real", "real", truth_label=None, answer_label="Tumour")]
    with pytest.raises(ValueError, match="Tumour"):
        study_results(rows, labels=["tumour", "non-tumour"])


def test_per_case_results_put_the_most_convincing_synthetic_cases_first():
    def row(reader, case, truth, answer, label=None, truth_label=None):
        return {"reader": reader, "case": case, "truth_origin": truth, "answer_origin": answer,
                "truth_label": truth_label, "answer_label": label, "confidence": None, "seconds": None}

    rows = [row("a", "s1", "synthetic", "synthetic"), row("b", "s1", "synthetic", "real"),
            row("a", "s2", "synthetic", "real"), row("b", "s2", "synthetic", "real"),
            row("a", "r1", "real", "real", "tumour", "tumour"),
            row("b", "r1", "real", "synthetic", "healthy", "tumour")]
    cases = study_results(rows)["cases"]
    assert [(c["case"], c["n"], c["called_real"], c["share_real"]) for c in cases] == [
        ("s2", 2, 2, 1.0), ("s1", 2, 1, 0.5), ("r1", 2, 1, 0.5)]
    assert cases[2]["label_correct"] == 0.5 and math.isnan(cases[0]["label_correct"])
