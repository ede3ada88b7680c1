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
from pathosynth.evaluate.classify_data import balanced_counts, classic_sources, select_synthetic
from pathosynth.training.loop import RUN_FORMAT

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
    """A tiny brain phantom (4 train, 2 val, 2 test patients; 100/50/50 slices of 64 px) and a
    synthetic set of 100 noisy copies of its training slices (29 tumour, 71 non-tumour) whose
    recorded GAN was trained on the real train split."""
    root = tmp_path_factory.mktemp("classify")
    real = _phantom(root / "real", ["train"] * 4 + ["val"] * 2 + ["test"] * 2)
    run = _fake_run(root / "run", real, "train", 100)
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


def test_ratio_picks_the_right_number_class_balanced_and_nested():
    samples = [Sample(id=f"s{i:03d}", patient_id=f"s{i:03d}", image="", label="tumour" if i < 30 else "non-tumour")
               for i in range(100)]
    classes = ["tumour", "non-tumour"]
    for count, expected in ((10, (5, 5)), (50, (25, 25)), (61, (30, 31)), (80, (30, 50)), (500, (30, 70))):
        picked = select_synthetic(samples, classes, count, seed=1)
        assert (sum(s.label == "tumour" for s in picked), sum(s.label == "non-tumour" for s in picked)) == expected
        assert len({s.id for s in picked}) == len(picked)
    small, large = select_synthetic(samples, classes, 20, seed=1), select_synthetic(samples, classes, 40, seed=1)
    assert {s.id for s in small} <= {s.id for s in large}
    assert [s.id for s in small] != [s.id for s in select_synthetic(samples, classes, 20, seed=2)]
    assert balanced_counts({"a": 3, "b": 100}, 10) == {"a": 3, "b": 7}
    labels = np.array([1] * 3 + [0] * 7)
    sources = classic_sources(labels, 11, seed=0)
    assert len(sources) == 11 and (labels[sources] == 1).sum() == 6
    assert sorted(sources[labels[sources] == 1].tolist()[:3]) == [0, 1, 2]  # each once before any twice


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
    # --ratio 0.5 of 100 real training images: 50 extra images, class-balanced, in every DA row
    assert config["extra_images"] == {"requested": 50, "used": 50, "real_training_images": 100}
    assert config["synthetic_used"]["syn"]["gan"] == {"total": 50, "tumour": 25, "non-tumour": 25}
    group = results["groups"][0]
    assert [r["setup"] for r in group["rows"]] == rows
    sizes = {r["setup"]: r["training_images"] for r in group["rows"]}
    assert sizes["real"]["total"] == 100 and sizes["classic"]["total"] == sizes["gan:syn"]["total"] == 150
    assert sizes["classic"]["positive"] == sizes["gan:syn"]["positive"] == 29 + 25
    assert sizes["classic+gan:syn"]["total"] == 200 and sizes["synthetic-only:syn"]["total"] == 100
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
    for name in ("Real only", "+ 50 classic DA", "+ 50 GAN DA (syn)", "+ 50 classic DA & 50 GAN DA (syn)",
                 "Synthetic only (syn"):
        assert f"| {name}" in table
    predictions = list(csv.DictReader((out / "predictions.csv").open()))
    assert len(predictions) == 5 * 2 * 50
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
