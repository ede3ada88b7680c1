"""`pathosynth evaluate classify`: classic DA as in the paper, leakage refusals, the synthetic
ratio, determinism, a tiny end-to-end CLI run and resuming after an interruption."""

from __future__ import annotations

import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from pathosynth.cli import main
from pathosynth.data.dataset import Dataset, DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.splits import SplitPlan
from pathosynth.evaluate import classify as classify_module
from pathosynth.evaluate.classic_da import ClassicDA, augmented_copies, forward_matrices
from pathosynth.evaluate.classify_data import class_counts, classic_sources, select_synthetic
from pathosynth.contracts import RUN_FORMAT

SETUPS = "real,classic,gan,classic+gan,synthetic-only"
COS10, SIN10 = math.cos(math.radians(10)), math.sin(math.radians(10))


# ------------------------------------------------------------------------------------ fixtures


def _phantom(out: Path, splits: list[str]) -> Path:
    plan = SplitPlan(explicit={f"PHANTOM_BRAIN_{i:04d}": split for i, split in enumerate(splits)})
    return build_phantom("brain-mr", out, patients=len(splits), tiny=True, plan=plan, progress=False)


def _fake_run(out: Path, data: Path, split: str, images: int) -> Path:
    """A run folder as `pathosynth train` records it, as far as the provenance check reads it."""
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({
        "format": RUN_FORMAT, "config": {"model": "dcgan", "data": str(data), "split": split, "label": None},
        "data": {"path": str(data.resolve()), "images": images}}))
    return out


def _synthetic(out: Path, real: Dataset, run: Path | None, extra: list[tuple[str, np.ndarray]] = (),
               mark: bool = True) -> Path:
    """A synthetic set in `pathosynth generate`'s contract: noisy copies of the real training
    images (and `extra` (label, image) pairs), each its own 'patient', with provenance."""
    info = DatasetInfo(name="syn", modality="MR", dimensionality=2, classes=real.info.classes,
                       channels=real.info.channels, intensity_unit=real.info.intensity_unit,
                       source={"synthetic": True, "generator": "test", **({"run": str(run)} if run else {})})
    rng = np.random.default_rng(0)
    images = [(s.label, real.read(s)[0] + rng.normal(0, 0.03, real.read(s)[0].shape))
              for s in real.select(split="train")]
    with DatasetWriter(out, info) as writer:
        for i, (label, array) in enumerate([*images, *extra]):
            provenance = {"model": "test", "seed": i, **({"run": str(run)} if run else {})} if mark else None
            writer.add(Sample(id=f"synthetic-{i:05d}", patient_id=f"synthetic-{i:05d}", image="", label=label,
                              split="train", synthetic=provenance),
                       MedicalImage(np.clip(array, 0, 1).astype(np.float32), (1.0, 1.0)))
        return writer.commit(SplitPlan())


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """A tiny brain phantom (4 train, 2 val, 2 test patients; slices of 64 px) and a synthetic set
    of noisy copies of its training slices whose recorded GAN was trained on the real train split."""
    root = tmp_path_factory.mktemp("classify")
    real = _phantom(root / "real", ["train"] * 4 + ["val"] * 2 + ["test"] * 2)
    run = _fake_run(root / "run", real, "train", len(Dataset.load(real).select(split="train")))
    synthetic = _synthetic(root / "syn", Dataset.load(real), run)
    return real, synthetic


def _run_cli(*args) -> int:
    try:
        main(["evaluate", "classify", *map(str, args)])
    except SystemExit as exit_info:
        return int(exit_info.code or 0)
    return 0


def _numbers(results: dict) -> dict:
    return {k: v for k, v in results.items() if k != "timing"}


# ------------------------------------------------------------------------------------ classic DA


def _params(n: int = 1, **values) -> dict[str, torch.Tensor]:
    base = {"flip_x": False, "flip_y": False, "angle": 0.0, "shift_x": 0.0, "shift_y": 0.0, "shear": 0.0,
            "zoom_x": 1.0, "zoom_y": 1.0, **values}
    return {k: torch.tensor([v] * n, dtype=torch.bool if isinstance(v, bool) else torch.float64)
            for k, v in base.items()}


def _centroid(image: torch.Tensor) -> tuple[float, float]:
    weights = image[0, 0].double()
    ys, xs = torch.meshgrid(torch.arange(64.0, dtype=torch.float64), torch.arange(64.0, dtype=torch.float64),
                            indexing="ij")
    return float((weights * xs).sum() / weights.sum()), float((weights * ys).sum() / weights.sum())


def test_classic_da_draws_stay_in_the_papers_ranges_and_reach_them():
    da = ClassicDA()
    draws = da.draw(20000, torch.Generator().manual_seed(0))
    for name, bound in (("angle", 10.0), ("shift_x", 0.08), ("shift_y", 0.08), ("shear", 0.08)):
        values = draws[name].abs()
        assert values.max() <= bound and values.max() > 0.99 * bound, name
    for name in ("zoom_x", "zoom_y"):
        assert draws[name].min() >= 0.92 and draws[name].max() <= 1.08
        assert draws[name].min() < 0.921 and draws[name].max() > 1.079
    for name in ("flip_x", "flip_y"):
        assert 0.47 < draws[name].float().mean() < 0.53
    assert not torch.equal(draws["zoom_x"], draws["zoom_y"])  # independent per axis, as Keras draws them


@pytest.mark.parametrize("change, expected", [
    ({"shift_x": 0.08}, lambda x, y: (x + 0.08 * 64, y)),
    ({"shift_y": -0.08}, lambda x, y: (x, y - 0.08 * 64)),
    ({"flip_x": True}, lambda x, y: (63 - x, y)),
    ({"flip_y": True}, lambda x, y: (x, 63 - y)),
    ({"zoom_x": 1.08}, lambda x, y: (31.5 + 1.08 * (x - 31.5), y)),
    ({"shear": 0.08}, lambda x, y: (x + 0.08 * (y - 31.5), y)),
    # +10 degrees turns the content clockwise on screen (y points down), about the image centre
    ({"angle": 10.0}, lambda x, y: (31.5 + COS10 * (x - 31.5) - SIN10 * (y - 31.5),
                                    31.5 + SIN10 * (x - 31.5) + COS10 * (y - 31.5))),
])
def test_each_classic_transform_moves_a_known_spot_where_it_should(change, expected):
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 19:24, 38:43] = 1.0  # a 5 x 5 spot centred at x = 40, y = 21
    x, y = _centroid(image)
    moved = ClassicDA().apply(image, _params(**change))
    assert _centroid(moved) == pytest.approx(expected(x, y), abs=0.15)


def test_combined_transform_and_constant_fill():
    da = ClassicDA()
    params = _params(angle=-7.0, shift_x=0.05, shift_y=-0.03, shear=0.06, zoom_x=0.95, zoom_y=1.04, flip_x=True)
    image = torch.zeros(1, 1, 64, 64)
    image[0, 0, 40:45, 10:15] = 1.0
    x, y = _centroid(image)
    point = torch.tensor([(2 * x + 1) / 64 - 1, (2 * y + 1) / 64 - 1, 1.0], dtype=torch.float64)
    nx, ny, _ = (forward_matrices(params)[0] @ point).tolist()
    assert _centroid(da.apply(image, params)) == pytest.approx((((nx + 1) * 64 - 1) / 2, ((ny + 1) * 64 - 1) / 2),
                                                              abs=0.2)
    # points from outside the input get the constant fill: an all-ones image shifted 8% right
    shifted = da.apply(torch.ones(1, 1, 64, 64), _params(shift_x=0.08))
    assert torch.all(shifted[..., :5] == 0) and torch.allclose(shifted[..., 6:], torch.ones(1, 1, 64, 58))
    filled = ClassicDA(fill=-1.0).apply(torch.ones(1, 1, 64, 64), _params(shift_x=0.08))
    assert torch.all(filled[..., :5] == -1.0)


def test_augmented_copies_are_seeded_and_copy_the_chosen_images():
    images = torch.rand(6, 1, 32, 32)
    sources = torch.tensor([0, 0, 5, 2])
    a = augmented_copies(images, sources, ClassicDA(), seed=3)
    b = augmented_copies(images, sources, ClassicDA(), seed=3)
    c = augmented_copies(images, sources, ClassicDA(), seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert not torch.equal(a[0], a[1])  # the same source, two different draws


# ------------------------------------------------------------------------------------ choosing


def test_extra_images_keep_the_real_training_class_balance_and_are_nested():
    samples = [Sample(id=f"s{i:03d}", patient_id=f"s{i:03d}", image="", label="tumour" if i < 30 else "non-tumour")
               for i in range(100)]
    classes = ["tumour", "non-tumour"]
    shares = {"tumour": 0.3, "non-tumour": 0.7}
    for count, expected in ((10, (3, 7)), (50, (15, 35)), (61, (18, 43)), (80, (24, 56)), (500, (30, 70))):
        picked = select_synthetic(samples, classes, count, seed=1, shares=shares)
        assert (sum(s.label == "tumour" for s in picked), sum(s.label == "non-tumour" for s in picked)) == expected
        assert len({s.id for s in picked}) == len(picked)
    small = select_synthetic(samples, classes, 20, seed=1, shares=shares)
    large = select_synthetic(samples, classes, 40, seed=1, shares=shares)
    assert {s.id for s in small} <= {s.id for s in large}
    assert [s.id for s in small] != [s.id for s in select_synthetic(samples, classes, 20, seed=2, shares=shares)]
    # a class that runs short gives all it has; the others make up the total (the caller states the shift)
    assert class_counts({"a": 3, "b": 100}, 10, {"a": 0.5, "b": 0.5}) == {"a": 3, "b": 7}
    labels = np.array([1] * 3 + [0] * 7)
    sources = classic_sources(labels, 11, seed=0)
    assert len(sources) == 11 and (labels[sources] == 1).sum() == 3  # 30% of 11, as in the real training split
    assert sorted(sources[labels[sources] == 1].tolist()) == [0, 1, 2]  # each once before any twice


# ------------------------------------------------------------------------------------ refusals


def _expect_refusal(capsys, out: Path, args: list, *needles: str) -> None:
    assert _run_cli(*args, "--out", out, "--preset", "tiny", "--quiet") == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_leakage_is_refused_with_one_clear_error_and_no_output(sets, tmp_path, capsys):
    real, synthetic = sets
    out = tmp_path / "out"
    # a patient in two splits
    shared = tmp_path / "shared"
    shutil.copytree(real, shared)
    rows = list(csv.DictReader((shared / "manifest.csv").open()))
    test_patient = next(r["patient_id"] for r in rows if r["split"] == "test")
    next(r for r in rows if r["split"] == "train")["patient_id"] = test_patient
    with (shared / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    _expect_refusal(capsys, out, ["--real", shared, "--setups", "real"], str(shared / "manifest.csv"),
                    test_patient, "re-split by patient")
    # no val split
    no_val = _phantom(tmp_path / "no-val", ["train", "train", "test", "test"])
    _expect_refusal(capsys, out, ["--real", no_val, "--setups", "real"], "no-val", "no val images", "--split")
    # a synthetic set that is not marked synthetic
    real_dataset = Dataset.load(real)
    unmarked = _synthetic(tmp_path / "unmarked", real_dataset, None, mark=False)
    _expect_refusal(capsys, out, ["--real", real, "--synthetic", unmarked], "unmarked", "not a synthetic set")
    # a GAN trained on every split of the real set, test patients included
    run_all = _fake_run(tmp_path / "run-all", real, "", 200)
    leaky = _synthetic(tmp_path / "leaky", real_dataset, run_all)
    _expect_refusal(capsys, out, ["--real", real, "--synthetic", leaky], "leaky", "every split", "--split train")
    # a GAN trained on other data that holds the real test patients
    other = _phantom(tmp_path / "other", ["train"] * 8)
    other_gan = _synthetic(tmp_path / "other-gan", real_dataset, _fake_run(tmp_path / "run-other", other, "train", 200))
    _expect_refusal(capsys, out, ["--real", real, "--synthetic", other_gan], "other-gan", "patient(s) of the real test")
    # a synthetic image that is a real test image
    test_image = real_dataset.read(real_dataset.select(split="test")[3])[0]
    copied = _synthetic(tmp_path / "copied", real_dataset, None, extra=[("tumour", test_image)])
    _expect_refusal(capsys, out, ["--real", real, "--synthetic", copied, "--setups", "real,gan"], "copied",
                    "pixel-identical to real test")
    # an existing --out is never replaced without --overwrite
    out.mkdir()
    assert _run_cli("--real", real, "--setups", "real", "--out", out, "--preset", "tiny", "--quiet") == 1
    assert "already exists" in capsys.readouterr().err


# ------------------------------------------------------------------------------------ runs


@pytest.fixture(scope="module")
def full_run(sets, tmp_path_factory):
    """The tiny CLI run of all five setups, two repeats, ratio 0.5."""
    real, synthetic = sets
    out = tmp_path_factory.mktemp("full") / "out"
    code = _run_cli("--real", real, "--synthetic", synthetic, "--setups", SETUPS, "--preset", "tiny", "--repeats", 2,
                    "--ratio", 0.5, "--seed", 3, "--out", out, "--quiet")
    assert code == 0
    return out


def test_end_to_end_cli_writes_every_output(full_run):
    out = full_run
    assert sorted(p.name for p in out.iterdir()) == ["cells", "config.json", "predictions.csv", "results.json",
                                                      "roc.png", "table.md"]
    assert not out.with_name(out.name + ".partial").exists()
    config = json.loads((out / "config.json").read_text())
    results = json.loads((out / "results.json").read_text())
    rows = ["real", "classic", "gan:syn", "classic+gan:syn", "synthetic-only:syn"]
    assert config["setups"] == rows and len(config["real"]["manifest_sha256"]) == 64
    assert config["synthetic"][0]["gan_training"][0]["split"] == "train" and config["threads"] >= 1
    # --ratio 0.5 of the real training images: that many extra images in the real class balance, in every DA row
    train = config["real"]["images"]["train"]
    n, positives = train["total"], train["tumour"]
    extra = round(0.5 * n)
    added = round(extra * positives / n)  # the real share of tumour slices, rounded
    assert config["extra_images"] == {"requested": extra, "used": extra, "real_training_images": n}
    used = config["synthetic_used"]["syn"]["gan"]
    assert used["total"] == extra and abs(used["tumour"] - extra * positives / n) <= 0.5 + 1e-9
    group = results["groups"][0]
    assert [r["setup"] for r in group["rows"]] == rows
    sizes = {r["setup"]: r["training_images"] for r in group["rows"]}
    assert sizes["real"]["total"] == n and sizes["classic"]["total"] == sizes["gan:syn"]["total"] == n + extra
    assert abs(sizes["classic"]["positive"] - (positives + added)) <= 1
    assert abs(sizes["gan:syn"]["positive"] - (positives + added)) <= 1
    assert sizes["classic+gan:syn"]["total"] == n + 2 * extra and sizes["synthetic-only:syn"]["total"] == n
    for row in group["rows"]:
        for name in ("sensitivity", "specificity", "accuracy", "roc_auc", "average_precision"):
            metric = row["metrics"][name]
            assert len(metric["repeats"]) == 2 and metric["mean"] == pytest.approx(np.mean(metric["repeats"]))
            assert metric["low"] <= metric["high"]
        assert (row["tests_vs_real"] is None) == (row["setup"] == "real")
        assert (row["difference_vs_real"] is None) == (row["setup"] == "real")
    classic = group["rows"][1]
    assert classic["difference_vs_real"]["sensitivity"]["mean"] == pytest.approx(
        classic["metrics"]["sensitivity"]["mean"] - group["rows"][0]["metrics"]["sensitivity"]["mean"])
    assert 0 <= group["rows"][1]["tests_vs_real"]["auc_delong"]["p"] <= 1
    # GAN DA on top of classic DA, the papers' question, is compared with classic DA alone
    both = next(r for r in group["rows"] if r["setup"] == "classic+gan:syn")
    assert both["difference_vs_classic"]["sensitivity"]["mean"] == pytest.approx(
        both["metrics"]["sensitivity"]["mean"] - classic["metrics"]["sensitivity"]["mean"])
    assert all(r["difference_vs_classic"] is None for r in group["rows"] if r is not both)
    assert "GAN DA on top of classic DA" in (out / "table.md").read_text()
    table = (out / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| DA setup"))
    assert header.index("Sensitivity") < header.index("Specificity") < header.index("Accuracy")
    assert "Δ Sensitivity" in table
    runs = both["difference_vs_classic"]["roc_auc"]["runs"]
    assert len(runs) == 2 and f"[runs {runs[0]:+.3f}, {runs[1]:+.3f}]" in table  # each training run's own difference
    noise = group["training_noise"]["roc_auc"]
    assert noise["df"] == 4 and f"sd {noise['sd']:.3f} AUC" in table  # classic, gan, classic+gan vs real; vs classic
    for name in ("Real only", f"+ {extra} classic DA", f"+ {extra} GAN DA (syn)",
                 f"+ {extra} classic DA & {extra} GAN DA (syn)", "Synthetic only (syn"):
        assert f"| {name}" in table
    predictions = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(predictions) == 5 * 2 * results["test"]["images"]
    assert set(predictions[0]) == {"setup", "pretrained", "repeat", "image_id", "patient_id", "label", "score"}
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_same_seed_gives_identical_results(sets, tmp_path, full_run):
    real, synthetic = sets
    first, second = tmp_path / "a", tmp_path / "b"
    for out, seed in ((first, 5), (second, 5)):
        classify_module.classify(real, [synthetic], out, setups="real,gan", preset="tiny", repeats=1, ratio=0.5,
                                 seed=seed, progress=False)
    a, b = (json.loads((p / "results.json").read_text()) for p in (first, second))
    assert _numbers(a) == _numbers(b)
    assert (first / "predictions.csv").read_text() == (second / "predictions.csv").read_text()
    # and another seed trains other networks
    full = json.loads((full_run / "results.json").read_text())
    assert a["groups"][0]["rows"][0]["metrics"]["roc_auc"] != full["groups"][0]["rows"][0]["metrics"]["roc_auc"]


def test_an_interrupted_run_resumes_from_its_finished_cells(sets, tmp_path, full_run, monkeypatch):
    real, synthetic = sets
    out = tmp_path / "out"
    args = ["--real", real, "--synthetic", synthetic, "--setups", SETUPS, "--preset", "tiny", "--repeats", 2,
            "--ratio", 0.5, "--seed", 3, "--out", out, "--quiet"]
    real_fit = classify_module.fit
    calls = []

    def interrupted_after_three(*a, **k):
        if len(calls) == 3:
            raise KeyboardInterrupt
        calls.append(k.get("desc"))
        return real_fit(*a, **k)

    monkeypatch.setattr(classify_module, "fit", interrupted_after_three)
    assert _run_cli(*args) == 130
    partial = out.with_name("out.partial")
    assert not out.exists() and len(list((partial / "cells").glob("*.json"))) == 3

    def counting(*a, **k):
        calls.append(k.get("desc"))
        return real_fit(*a, **k)

    monkeypatch.setattr(classify_module, "fit", counting)
    calls.clear()
    assert _run_cli(*args) == 0
    assert len(calls) == 10 - 3 and out.is_dir() and not partial.exists()
    resumed = json.loads((out / "results.json").read_text())
    assert sum(c["reused"] for c in resumed["timing"]["cells"].values()) == 3
    # the same numbers as the uninterrupted run of the same command
    assert _numbers(resumed) == _numbers(json.loads((full_run / "results.json").read_text()))


def test_pretrained_both_starts_from_imagenet_and_reports_both_initialisations(sets, tmp_path):
    from pathosynth.evaluate.classifiers import build_classifier, get_settings
    from pathosynth.evaluate.features import _efficientnet_lite0

    model = build_classifier(get_settings("tiny"), channels=1, pretrained=True)
    imagenet = _efficientnet_lite0("cpu").state_dict()
    assert all(torch.equal(v, imagenet[k]) for k, v in model.backbone.net.state_dict().items())
    assert model(torch.rand(2, 1, 32, 32)).shape == (2,)
    real, _ = sets
    results = classify_module.classify(real, [], tmp_path / "out", setups="real,classic", pretrained="both",
                                       preset="tiny", repeats=1, ratio=0.2, progress=False)
    assert [g["pretrained"] for g in results["groups"]] == [False, True]
    assert "ImageNet-pretrained" in (tmp_path / "out" / "table.md").read_text()
    assert {c.name for c in (tmp_path / "out" / "cells").iterdir()} == {
        "real__scratch__r0.json", "classic__scratch__r0.json", "real__pretrained__r0.json",
        "classic__pretrained__r0.json"}


def test_paper_preset_is_the_papers_resnet50_with_their_head_at_224_px():
    from monai.networks.nets.resnet import ResNetBottleneck

    from pathosynth.evaluate.classifiers import build_classifier, get_settings

    settings = get_settings("paper")
    assert settings.size == 224
    model = build_classifier(settings, channels=1, pretrained=False).eval()
    # ResNet-50: bottleneck blocks, 3-4-6-3 of them
    assert sum(isinstance(m, ResNetBottleneck) for m in model.modules()) == 16
    head = [type(m).__name__ for m in model.head]
    assert head == ["Dropout", "Linear", "BatchNorm1d"] and model.head[0].p == 0.5  # then the sigmoid (BCE)
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 224, 224)).shape == (2,)  # one logit per image


# ------------------------------------------------------------------------------ the primary answer


def test_fixed_operating_point_and_differences_are_in_every_row(sets, full_run):
    results = json.loads((full_run / "results.json").read_text())
    group = results["groups"][0]
    point = group["operating_point"]["target_specificity"]
    real = group["rows"][0]
    cells = {r: json.loads((full_run / "cells" / f"real__scratch__r{r}.json").read_text()) for r in (0, 1)}
    negative = np.array([s.label != "tumour" for s in Dataset.load(sets[0]).select(split="val")])
    # the target is the real-only model's validation specificity at 0.5, averaged over its repeats
    expected = np.mean([(np.array(cells[r]["val_scores"])[negative] < 0.5).mean() for r in (0, 1)])
    assert point == pytest.approx(expected)
    for row in group["rows"]:
        assert len(row["operating_thresholds"]) == 2
        for name in ("sensitivity_at_fixed_specificity", "specificity_at_fixed_specificity"):
            assert row["metrics"][name]["low"] <= row["metrics"][name]["high"]
    for row in group["rows"][1:]:
        assert row["difference_vs_real"]["roc_auc"]["mdd"] > 0
        difference = row["difference_vs_real"]["sensitivity_at_fixed_specificity"]
        assert difference["mdd"] > 0 or (math.isnan(difference["mdd"]) and difference["low"] == difference["high"])
    assert group["competence"]["real_auc"] == real["metrics"]["roc_auc"]["mean"]
    assert group["competence"]["competent"] == (real["metrics"]["roc_auc"]["mean"] >= 0.8)
    table = (full_run / "table.md").read_text()
    header = next(line for line in table.splitlines() if line.startswith("| DA setup | Training"))
    assert header.index("ROC AUC") < header.index("Sensitivity at fixed specificity") < header.index("at 0.5")


def _statistics_of(real_scores: dict, setups: dict, y_test, y_val, patients):
    """`statistics` on hand-made cells: {row id: (test scores (n, R), val scores (m, R))}."""
    from types import SimpleNamespace

    from pathosynth.evaluate.classify import Row
    from pathosynth.evaluate.classify_stats import statistics

    labels = {"test": np.asarray(y_test), "val": np.asarray(y_val)}
    real = SimpleNamespace(labels=lambda split: labels[split], positive="tumour", negative="non-tumour",
                           splits={"test": [SimpleNamespace(patient_id=p) for p in patients]})
    rows = [Row("real")] + [Row(kind, "syn") for kind in setups]
    everything = {"real": real_scores, **{Row(kind, "syn").id: v for kind, v in setups.items()}}
    cells = {}
    for row in rows:
        test, val = everything[row.id]
        for r in range(test.shape[1]):
            cells[(False, r, row.id)] = {"scores": test[:, r].tolist(), "val_scores": val[:, r].tolist(),
                                         "training_images": {"total": 1}, "epochs": 1, "best_epoch": 1,
                                         "history": [{"val_loss": 0.1}]}
    return statistics(real, rows, (False,), test.shape[1], cells, SimpleNamespace(n_boot=300), seed=0)


def test_a_moved_threshold_is_never_a_headline():
    """GAN DA that only shifts the calibration (every score pushed up, the ranking unchanged) raises
    sensitivity at 0.5 by many points, but neither the AUC nor the sensitivity at the fixed
    specificity: the headline must not call it a gain."""
    from pathosynth.evaluate.classify_headline import headline_sentences

    rng = np.random.default_rng(0)
    patients = np.repeat(np.arange(60), 5)
    y_test, y_val = (np.arange(300) % 2 == 0).astype(int), (np.arange(200) % 2 == 0).astype(int)

    def scores(y):
        return 1 / (1 + np.exp(-(2.5 * y[:, None] - 1.6 + rng.normal(0, 1, (len(y), 2)))))

    real_test, real_val = scores(y_test), scores(y_val)
    shifted = {"gan": (real_test ** 0.3, real_val ** 0.3)}  # monotone: the same ranking, higher scores
    results = _statistics_of((real_test, real_val), shifted, y_test, y_val, patients)
    group = results["groups"][0]
    gan = group["rows"][1]
    assert group["competence"]["competent"]
    assert gan["difference_vs_real"]["sensitivity"]["low"] > 0.1  # the 0.5 threshold says "gain"...
    assert gan["difference_vs_real"]["roc_auc"]["mean"] == pytest.approx(0, abs=1e-12)
    assert gan["difference_vs_real"]["sensitivity_at_fixed_specificity"]["mean"] == pytest.approx(0, abs=1e-12)
    (sentence,) = headline_sentences(results)
    assert "not established" in sentence and "improved" not in sentence  # ...the headline does not


def test_an_incompetent_judge_gives_no_headline():
    from pathosynth.evaluate.classify_headline import headline_sentences

    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(60), 5)
    y_test, y_val = (np.arange(300) % 2 == 0).astype(int), (np.arange(200) % 2 == 0).astype(int)
    noise = {n: rng.uniform(0, 1, (n, 2)) for n in (300, 200)}
    better = (np.clip(noise[300] + 0.5 * y_test[:, None], 0, 1), np.clip(noise[200] + 0.5 * y_val[:, None], 0, 1))
    results = _statistics_of((noise[300], noise[200]), {"gan": better}, y_test, y_val, patients)
    (sentence,) = headline_sentences(results)
    assert "too weak to judge" in sentence


def _runs_experiment(gan_strength: tuple[float, ...], seed: int = 2):
    """Real-only runs see the lesion weakly; each GAN-DA run r sees it with gan_strength[r]."""
    rng = np.random.default_rng(seed)
    patients = np.repeat(np.arange(60), 5)
    y_test, y_val = (np.arange(300) % 2 == 0).astype(int), (np.arange(200) % 2 == 0).astype(int)
    runs = len(gan_strength)
    noise = {n: rng.normal(0, 1, (n, runs)) for n in (300, 200)}

    def scores(y, strength):
        return 1 / (1 + np.exp(-(np.asarray(strength)[None, :] * y[:, None] - 0.6 + noise[len(y)])))

    real = (scores(y_test, [1.2] * runs), scores(y_val, [1.2] * runs))
    gan = (scores(y_test, gan_strength), scores(y_val, gan_strength))
    return _statistics_of(real, {"gan": gan}, y_test, y_val, patients), y_test, real[0], gan[0]


def test_per_run_differences_match_scikit_learn_and_widen_the_interval():
    from sklearn.metrics import roc_auc_score

    results, y, real, gan = _runs_experiment((3.0, 2.5))
    auc = results["groups"][0]["rows"][1]["difference_vs_real"]["roc_auc"]
    expected = [roc_auc_score(y, gan[:, r]) - roc_auc_score(y, real[:, r]) for r in (0, 1)]
    assert auc["runs"] == pytest.approx(expected, abs=1e-12)
    assert auc["runs_sd"] == pytest.approx(np.std(expected, ddof=1))
    assert auc["robust_low"] < auc["mean"] < auc["robust_high"]
    # wider than the training runs' spread alone: 1.96 x sd / sqrt(2) at least on each side
    assert auc["robust_high"] - auc["mean"] >= 1.96 * auc["runs_sd"] / np.sqrt(2) - 1e-12


def test_a_gain_that_one_training_run_alone_shows_is_not_a_headline():
    """The same seed on another CPU trains other models: a gain must clear the spread between runs.
    Run 0 gains much, run 1 nothing; holding the models fixed, the patient bootstrap alone would
    call the mean gain established."""
    from pathosynth.evaluate.classify_headline import headline_sentences

    disagree, *_ = _runs_experiment((4.0, 1.2))
    auc = disagree["groups"][0]["rows"][1]["difference_vs_real"]["roc_auc"]
    assert auc["low"] > 0 and auc["runs"][1] == pytest.approx(0, abs=1e-12)  # the bootstrap alone: a gain
    assert auc["robust_low"] < 0
    (sentence,) = headline_sentences(disagree)
    assert sentence.split(": ")[1].startswith("not established") and "per run" in sentence
    agree, *_ = _runs_experiment((4.0, 3.5))  # both runs gain: the same check passes a real effect
    (sentence,) = headline_sentences(agree)
    assert sentence.split(": ")[1].startswith("improved"), sentence


def test_training_noise_is_pooled_over_the_comparisons_and_leaves_synthetic_only_out():
    """Two runs that happen to agree do not make a comparison robust when the experiment's other
    comparisons show how much training runs differ (measured: native runs 5 points apart, AVX2 runs 0.6)."""
    from scipy import stats as scipy_stats

    from pathosynth.evaluate.classify_stats import add_robust_intervals

    def comparison(runs, se=0.005):
        return {"roc_auc": {"mean": float(np.mean(runs)), "se": se, "runs": runs,
                            "runs_sd": float(np.std(runs, ddof=1)) if len(runs) > 1 else math.nan}}

    lucky, noisy = comparison([0.020, 0.021]), comparison([0.05, -0.05])
    entries = [{"kind": "real"}, {"kind": "gan", "difference_vs_real": lucky},
               {"kind": "classic", "difference_vs_real": noisy},
               {"kind": "synthetic-only", "difference_vs_real": comparison([0.5, -0.5])}]
    pooled = add_robust_intervals(entries, repeats=2)
    variance = np.mean([np.var([0.020, 0.021], ddof=1), np.var([0.05, -0.05], ddof=1)])
    assert pooled["roc_auc"] == {"sd": pytest.approx(np.sqrt(variance)), "df": 2}  # synthetic-only left out
    total = 0.005 ** 2 + variance / 2
    df = total ** 2 / ((variance / 2) ** 2 / 2)
    half = scipy_stats.t.ppf(0.975, df) * np.sqrt(total)
    assert lucky["roc_auc"]["robust_low"] == pytest.approx(0.0205 - half)
    own = np.var([0.020, 0.021], ddof=1) / 2
    own_df = (0.005 ** 2 + own) ** 2 / own ** 2
    alone = 0.0205 - scipy_stats.t.ppf(0.975, own_df) * np.sqrt(0.005 ** 2 + own)
    assert lucky["roc_auc"]["robust_low"] < 0 < alone  # its own two runs would have called it robust
    single = [{"kind": "gan", "difference_vs_real": comparison([0.02])}]
    add_robust_intervals(single, repeats=1)
    assert math.isnan(single[0]["difference_vs_real"]["roc_auc"]["robust_low"])


def test_one_training_run_is_never_a_headline():
    from pathosynth.evaluate.classify_headline import headline_sentences

    results, *_ = _runs_experiment((4.0,))
    assert results["groups"][0]["rows"][1]["difference_vs_real"]["roc_auc"]["low"] > 0
    (sentence,) = headline_sentences(results)
    assert "not established (one training run per setup" in sentence


def test_copies_of_one_image_are_collapsed_and_never_a_gain(sets, tmp_path):
    """A planted synthetic set of one training image repeated: flagged as collapsed in the results,
    the headline says 'not established', and the report's checklist fails."""
    from pathosynth.evaluate.classify_headline import headline_sentences
    from pathosynth.report import report

    real, _ = sets
    dataset = Dataset.load(real)
    tumour = next(s for s in dataset.select(split="train") if s.label == "tumour")
    normal = next(s for s in dataset.select(split="train") if s.label != "tumour")
    copies = [(tumour.label, dataset.read(tumour)[0])] * 40 + [(normal.label, dataset.read(normal)[0])] * 60
    run = _fake_run(tmp_path / "run", real, "train", 100)
    repeated = _synthetic(tmp_path / "repeated", dataset, run, extra=copies)
    shutil.rmtree(repeated)  # rebuild with the copies only (no noisy real images)
    info = DatasetInfo(name="repeated", modality="MR", dimensionality=2, classes=dataset.info.classes,
                       channels=dataset.info.channels, intensity_unit=dataset.info.intensity_unit,
                       source={"synthetic": True, "generator": "test", "run": str(run)})
    with DatasetWriter(repeated, info) as writer:
        for i, (label, array) in enumerate(copies):
            writer.add(Sample(id=f"synthetic-{i:05d}", patient_id=f"synthetic-{i:05d}", image="", label=label,
                              split="train", synthetic={"model": "test", "seed": i, "run": str(run)}),
                       MedicalImage(np.clip(array, 0, 1).astype(np.float32), (1.0, 1.0)))
        writer.commit(SplitPlan())
    out = tmp_path / "out"
    results = classify_module.classify(real, [repeated], out, setups="real,classic,gan,classic+gan", preset="tiny",
                                       repeats=1, ratio=0.5, seed=2, progress=False, bootstrap=200)
    diversity = results["synthetic_diversity"]["repeated"]
    assert diversity["collapsed"] and diversity["distinct_images"] == 2
    for sentence in headline_sentences(results):
        assert "not established" in sentence and "improved" not in sentence
    folder = report([real, out], tmp_path / "report")
    text = (folder / "report.md").read_text()
    assert "Synthetic sets varied, not collapsed" in text
    line = next(line for line in text.splitlines() if "Synthetic sets varied, not collapsed" in line)
    assert "NO" in line
    runs = next(line for line in text.splitlines() if "Two or more training runs per setup" in line)
    assert "NO" in runs and "1 run(s) per setup" in runs  # repeats=1 here
    assert "Training noise: not measured" in (out / "table.md").read_text()


def test_train_patients_gives_the_gan_and_the_classifiers_the_same_patients(sets, tmp_path):
    from pathosynth.config import make_config
    from pathosynth.evaluate.classify_data import load_real, load_synthetic
    from pathosynth.training.data import load_training_set

    real, synthetic = sets
    chosen = load_real(real, train_patients=2, subset_seed=4)
    patients = {s.patient_id for s in chosen.splits["train"]}
    assert len(patients) == 2
    config = make_config("dcgan", "tiny", data=str(real), train_patients=2, subset_seed=4)
    gan = load_training_set(config, progress=False)
    assert len(gan.images) == len(chosen.splits["train"])
    # the full-data GAN of `sets` saw patients these classifiers do not: said in the notes
    notes = load_synthetic(synthetic, chosen).notes
    assert any("training patient(s) the classifiers do not" in note for note in notes)
