"""The memorization audit: planted copies are caught, new images mostly are not, the CLI is clean."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from pathosynth.cli import main
from pathosynth.curate import (
    AuditSettings,
    audit,
    calibrate_thresholds,
    cross_fitted_rate,
    flags,
    pixel_matches,
    shifted_rms,
)
from pathosynth.data.dataset import Dataset, DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.splits import SplitPlan

PLANTED_SPLITS = {"train": 6, "val": 8, "test": 2}  # 200 held-out images calibrate
AUGMENTED = ("mirror", "shift", "noise", "bright", "combo")


def real_dataset(out: Path, splits: dict[str, int]) -> Path:
    """A tiny brain-MR phantom (25 slices of 64 x 64 per patient) with the given patients per split."""
    names = [name for name, count in splits.items() for _ in range(count)]
    plan = SplitPlan(explicit={f"PHANTOM_BRAIN_{i:04d}": split for i, split in enumerate(names)})
    return build_phantom("brain-mr", out, patients=len(names), tiny=True, plan=plan, progress=False)


def synthetic_dataset(out: Path, like: Dataset, images: list[tuple[str, str, np.ndarray]]) -> Path:
    """A folder as `pathosynth generate` writes it: (id, label, 2D array) per image, synthetic provenance."""
    info = DatasetInfo(name="planted-synthetic", modality=like.info.modality, dimensionality=2,
                       classes=like.info.classes, channels=like.info.channels,
                       intensity_unit=like.info.intensity_unit, png_slope=like.info.png_slope,
                       png_intercept=like.info.png_intercept, source={"synthetic": True, "generator": "planted"})
    with DatasetWriter(out, info) as writer:
        for name, label, array in images:
            writer.add(Sample(id=name, patient_id=name, image="", label=label, split="train",
                              synthetic={"model": "planted", "seed": 0, "condition": {"label": label}}),
                       MedicalImage(np.ascontiguousarray(array, dtype=np.float32), (1.0, 1.0)))
        return writer.commit(SplitPlan())


def shifted(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(image)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """Copies of 20 training images (exact, mirrored, shifted by 2-3 px, noisy, brighter, and all of
    these at once) and 50 images of two patients the GAN never saw (the test split); the audit is
    calibrated on the val split only (8 patients), so the new images are not part of its calibration."""
    root = tmp_path_factory.mktemp("planted")
    real = Dataset.load(real_dataset(root / "real", PLANTED_SPLITS))
    rng = np.random.default_rng(0)
    train = real.select(split="train")
    images, kinds = [], {}

    def add(kind, i, label, array):
        name = f"{kind}-{i:03d}"
        kinds[name] = kind
        images.append((name, label, array))

    for i, j in enumerate(rng.choice(len(train), 20, replace=False)):
        sample = train[j]
        image = real.read(sample)[0]
        add("exact", i, sample.label, image)
        add("mirror", i, sample.label, image[:, ::-1])
        add("shift", i, sample.label, shifted(image, *(int(v) for v in rng.choice([-3, -2, 2, 3], 2))))
        add("noise", i, sample.label, np.clip(image + rng.normal(0, 0.03, image.shape), 0, None))
        add("bright", i, sample.label, image * 0.7 + 0.05)
        combo = shifted(image[:, ::-1], *(int(v) for v in rng.choice([-2, 2], 2))) * 1.2
        add("combo", i, sample.label, np.clip(combo + rng.normal(0, 0.02, image.shape), 0, None))
    for i, sample in enumerate(real.select(split="test")):
        add("new", i, sample.label, real.read(sample)[0])
    synthetic = synthetic_dataset(root / "synthetic", real, images)
    report = audit(real.root, synthetic, root / "audit", AuditSettings(held_out_splits=("val",)), progress=False)
    return report, kinds


def _flag_rates(report, kinds):
    counts, flagged = Counter(), Counter()
    for entry in report["images"]:
        kind = kinds[entry["id"]]
        counts[kind] += 1
        flagged[kind] += entry["flagged"]
    return {kind: flagged[kind] / counts[kind] for kind in counts}, counts


def test_planted_copies_are_flagged_and_new_images_mostly_not(planted):
    report, kinds = planted
    rates, counts = _flag_rates(report, kinds)
    print("flag rates by kind:", rates, "thresholds:", report["thresholds"])
    assert rates["exact"] == 1.0
    augmented = sum(rates[k] * counts[k] for k in AUGMENTED) / sum(counts[k] for k in AUGMENTED)
    assert augmented >= 0.99, rates
    assert all(rates[k] >= 0.95 for k in AUGMENTED), rates
    assert counts["new"] == 50 and rates["new"] <= 0.1, rates
    summary = report["summary"]
    assert summary["held_out_images"] == 200 and summary["held_out_flag_rate"] <= 0.05
    assert summary["synthetic_flagged"] == sum(e["flagged"] for e in report["images"])


def test_copies_point_at_their_source(planted):
    report, kinds = planted
    entries = {e["id"]: e for e in report["images"]}
    for i in range(20):
        exact, mirror = entries[f"exact-{i:03d}"]["nearest"], entries[f"mirror-{i:03d}"]["nearest"]
        for space in ("pixel", "imagenet"):
            assert exact[space]["distance"] < 1e-3 and not exact[space]["mirrored"]
            assert mirror[space]["train_id"] == exact[space]["train_id"] and mirror[space]["mirrored"]
        shift = entries[f"shift-{i:03d}"]["nearest"]["pixel"]
        assert shift["train_id"] == exact["pixel"]["train_id"] and shift["distance"] < 1e-3
        assert 2 <= max(abs(v) for v in shift["shift_grid_px"]) <= 3  # 64 px images on a 64 px grid
    assert all(e["nearest"]["pixel"]["patient_id"].startswith("PHANTOM_BRAIN") for e in report["images"])


def test_threshold_rule_splits_the_percentile_over_the_spaces():
    held = {"pixel": np.arange(1, 201, dtype=float), "imagenet": np.arange(1, 201, dtype=float) / 100}
    thresholds = calibrate_thresholds(held, percentile=2.0)  # 1st percentile in each of 2 spaces
    assert thresholds == pytest.approx({"pixel": np.percentile(held["pixel"], 1),
                                        "imagenet": np.percentile(held["imagenet"], 1)})
    flagged = flags(held, thresholds)
    assert flagged["pixel"].sum() == 2 and flagged["imagenet"].sum() == 2
    patients = [f"p{i % 10}" for i in range(200)]  # every patient spans the whole range
    assert cross_fitted_rate(held, patients, 2.0) == pytest.approx(0.02, abs=0.02)
    assert cross_fitted_rate(held, ["p0"] * 200, 2.0) is None


def test_shift_search_finds_the_planted_shift_exactly():
    torch.manual_seed(0)
    smooth = torch.nn.functional.avg_pool2d(torch.rand(6, 2, 80, 80), 5, 1)[..., 4:68, 4:68]  # 64 x 64
    truth = [(0, 0), (5, -3), (-6, 6), (1, 2), (-4, -1), (3, 6)]
    moved = torch.stack([torch.roll(img, s, (-2, -1)) for img, s in zip(smooth, truth)])
    # compare away from the wrapped border: crop both to the inner part that the roll kept intact
    best, found = shifted_rms(moved[..., 6:-6, 6:-6], smooth[..., 6:-6, 6:-6], radius=6)
    assert found.tolist() == [list(s) for s in truth]
    assert best.max() < 1e-6
    # the distance is the smallest over shifts: never above the unshifted RMS
    other = smooth.flip(0)
    best, _ = shifted_rms(smooth, other, radius=6)
    assert (best <= (smooth - other).square().mean((1, 2, 3)).sqrt() + 1e-7).all()


def test_pixel_matches_find_mirrored_and_shifted_sources():
    rng = np.random.default_rng(1)
    base = torch.nn.functional.avg_pool2d(torch.from_numpy(rng.random((30, 1, 72, 72), dtype=np.float32)), 9, 1)
    train = base[..., :64, :64].numpy()
    queries = np.stack([train[3], train[7][..., ::-1], np.roll(train[11], (2, -3), (-2, -1))])
    matches = pixel_matches(queries, train, radius=6, candidates=3)
    assert matches.index.tolist() == [3, 7, 11]
    assert matches.mirrored.tolist() == [False, True, False]
    assert matches.shift[2].tolist() == [2, -3]


# --------------------------------------------------------------------------------------------------
# the CLI


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """4 patients (2 train, 1 val, 1 test) and a synthetic set of 48 x 48 images (resized on the fly):
    two copies of training images and four held-out images."""
    root = tmp_path_factory.mktemp("small")
    real = Dataset.load(real_dataset(root / "real", {"train": 2, "val": 1, "test": 1}))
    resize = lambda a: torch.nn.functional.interpolate(torch.from_numpy(a)[None, None], size=(48, 48),  # noqa: E731
                                                       mode="bilinear", antialias=True)[0, 0].numpy()
    train, test = real.select(split="train"), real.select(split="test")
    images = [(f"copy-{i}", s.label, resize(real.read(s)[0])) for i, s in enumerate(train[5:7])]
    images += [(f"new-{i}", s.label, resize(real.read(s)[0])) for i, s in enumerate(test[::7])]
    return real.root, synthetic_dataset(root / "synthetic", real, images)


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pathosynth", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def test_cli_writes_audit_json_and_gallery(small, tmp_path):
    real, synthetic = small
    out = tmp_path / "audit"
    result = _cli("curate", "audit", "--train", real, "--synthetic", synthetic, "--out", out, "--quiet",
                  "--gallery", "4")
    assert result.returncode == 0, result.stderr
    assert "near-copies:" in result.stdout and "wrote" in result.stdout
    assert sorted(p.name for p in out.iterdir()) == ["audit.json", "closest-pairs.png"]
    report = json.loads((out / "audit.json").read_text())
    assert set(report["thresholds"]) == {"pixel", "imagenet"}
    assert report["held_out"]["splits"] == ["val", "test"] and report["held_out"]["images"] == 50
    assert report["train"]["images"] == 50 and report["synthetic"]["images"] == 6
    entries = {e["id"]: e for e in report["images"]}
    assert entries["copy-0"]["flagged"] and entries["copy-1"]["flagged"]
    assert entries["copy-0"]["nearest"]["pixel"]["train_id"] == Dataset.load(real).select(split="train")[5].id
    assert set(entries["new-0"]["nearest"]) == {"pixel", "imagenet"}
    for key in ("distance", "train_id", "patient_id", "mirrored", "flagged"):
        assert key in entries["new-0"]["nearest"]["imagenet"]
    assert (out / "closest-pairs.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".audit*"))


def _assert_fails(capsys, args, *needles):
    with pytest.raises(SystemExit) as exit_info:
        main(["curate", "audit", *map(str, args), "--quiet"])
    assert exit_info.value.code == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_bad_inputs_end_in_one_clear_error_and_no_output(small, tmp_path, capsys):
    real, synthetic = small
    out = tmp_path / "out"
    common = ["--out", out, "--features", "pixel"]
    _assert_fails(capsys, ["--train", tmp_path / "nowhere", "--synthetic", synthetic, *common],
                  "nowhere", "not found")
    (tmp_path / "plain").mkdir()
    _assert_fails(capsys, ["--train", tmp_path / "plain", "--synthetic", synthetic, *common],
                  "plain", "not a pathosynth dataset folder")
    _assert_fails(capsys, ["--train", real, "--synthetic", synthetic, *common, "--held-out-split", "train"],
                  "--held-out-split", "val")
    _assert_fails(capsys, ["--train", real, "--synthetic", synthetic, "--out", out, "--features", "pixel,vgg"],
                  "--features", "vgg")
    # a real set whose patients are all in train: nothing to calibrate on
    only_train = real_dataset(tmp_path / "only-train", {"train": 1})
    _assert_fails(capsys, ["--train", only_train, "--synthetic", synthetic, *common],
                  "only-train", "held-out split", "val,test")
    # a synthetic set without images
    empty = tmp_path / "empty-synthetic"
    empty.mkdir()
    (empty / "dataset.json").write_text((Path(synthetic) / "dataset.json").read_text())
    (empty / "manifest.csv").write_text((Path(synthetic) / "manifest.csv").read_text().splitlines()[0] + "\n")
    _assert_fails(capsys, ["--train", real, "--synthetic", empty, *common], "empty-synthetic", "no images")
    # a real set without a train split
    no_train = real_dataset(tmp_path / "no-train", {"val": 1})
    _assert_fails(capsys, ["--train", no_train, "--synthetic", synthetic, *common], "no-train", "train split")
    assert not out.exists() and not list(tmp_path.glob(".out*"))
    # an existing --out is never touched without --overwrite
    out.mkdir()
    _assert_fails(capsys, ["--train", real, "--synthetic", synthetic, *common], "already exists", "--overwrite")


def test_bad_input_from_a_real_process_exits_non_zero_without_traceback(small, tmp_path):
    real, _ = small
    result = _cli("curate", "audit", "--train", real, "--synthetic", tmp_path / "missing", "--out", tmp_path / "o",
                  "--features", "pixel", "--quiet")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "missing" in result.stderr
    assert not (tmp_path / "o").exists()


def test_interrupted_audit_leaves_no_half_written_folder(small, tmp_path, monkeypatch):
    import pathosynth.curate as curate

    real, synthetic = small

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(curate, "closest_pairs_figure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        audit(real, synthetic, tmp_path / "out", AuditSettings(features=("pixel",)), progress=False)
    assert list(tmp_path.iterdir()) == []
