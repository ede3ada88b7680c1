"""The built-in brain MR phantom: BraTS-style case folders, read back through the readers."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from pathosynth.data.phantoms.brain_mr import (
    TISSUE_NAMES,
    make_brain_patient,
    tissue_map,
    write_brats_cases,
)
from pathosynth.data.readers import read_image

SHAPE = (40, 64, 64)
SEED = 7
N = 3
SEQUENCES = ("t1", "t1ce", "t2", "flair")
WHITE_MATTER = TISSUE_NAMES.index("white_matter")


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*.nii"))}


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("brats")
    ids = write_brats_cases(root, N, SEED, shape=SHAPE)
    return root, ids


def _load(root: Path, case: str) -> dict[str, np.ndarray]:
    return {name: read_image(root / case / f"{case}_{name}.nii").array
            for name in SEQUENCES + ("seg",)}


def test_case_folders_hold_exactly_the_sequences_and_seg(cases):
    root, ids = cases
    assert ids == [f"PHANTOM_BRAIN_{i:04d}" for i in range(N)]
    assert sorted(p.name for p in root.iterdir()) == ids
    for case in ids:
        expected = {f"{case}_{name}.nii" for name in SEQUENCES + ("seg",)}
        assert {p.name for p in (root / case).iterdir()} == expected


def test_read_back_gives_one_shape_types_and_zero_background(cases):
    root, ids = cases
    for case in ids:
        image = read_image(root / case / f"{case}_t1ce.nii")
        assert image.spacing == (1.0, 1.0, 1.0)
        arrays = _load(root, case)
        for name, array in arrays.items():
            assert array.shape == SHAPE, (case, name)
            assert array.dtype == (np.uint8 if name == "seg" else np.int16), (case, name)
        for name in SEQUENCES:
            array = arrays[name]
            assert array.min() == 0 and array.max() > 100, (case, name)
            for corner in (array[0, 0, 0], array[-1, -1, -1], array[:, 0, 0].max()):
                assert corner == 0, (case, name)
            # The brain (skull-stripped, as BraTS) fills a good part of the middle slice, not the field.
            inside = (array[SHAPE[0] // 2] > 0).mean()
            assert 0.2 < inside < 0.6, (case, name, inside)


def test_seg_uses_brats_labels_and_marks_some_tumour(cases):
    root, ids = cases
    seen = set()
    tumour_voxels = 0
    for case in ids:
        seg = _load(root, case)["seg"]
        seen |= set(np.unique(seg).tolist())
        tumour_voxels += int((seg > 0).sum())
        # Tumour sits inside the head: every seg voxel has signal on every sequence.
        arrays = _load(root, case)
        for name in SEQUENCES:
            assert (arrays[name][seg > 0] > 0).all(), (case, name)
    assert seen <= {0, 1, 2, 4}
    assert tumour_voxels > 0
    assert {2, 4} <= seen


def test_enhancing_rim_is_bright_on_t1ce_and_oedema_bright_on_flair(cases):
    root, ids = cases
    checked_t1ce = checked_flair = 0
    for index, case in enumerate(ids):
        arrays = _load(root, case)
        seg = arrays["seg"]
        t1ce = arrays["t1ce"].astype(float)
        flair = arrays["flair"].astype(float)
        enhancing, oedema = seg == 4, seg == 2
        white = (tissue_map(SEED, index, SHAPE) == WHITE_MATTER) & (seg == 0)
        assert white.sum() > 500, case
        if enhancing.sum() >= 5 and oedema.sum() >= 5:
            assert t1ce[enhancing].mean() > 1.1 * t1ce[oedema].mean(), case
            checked_t1ce += 1
        if oedema.sum() >= 5:
            assert flair[oedema].mean() > 1.1 * flair[white].mean(), case
            checked_flair += 1
    assert checked_t1ce >= 1 and checked_flair >= 1


def test_csf_is_dark_on_flair_and_bright_on_t2(cases):
    root, ids = cases
    for index, case in enumerate(ids):
        arrays = _load(root, case)
        tissue = tissue_map(SEED, index, SHAPE)
        csf = tissue == TISSUE_NAMES.index("csf")
        white = tissue == WHITE_MATTER
        assert arrays["t2"][csf].mean() > 1.5 * arrays["t2"][white].mean(), case
        assert arrays["flair"][csf].mean() < 0.6 * arrays["flair"][white].mean(), case
        assert arrays["t1"][csf].mean() < 0.6 * arrays["t1"][white].mean(), case


def test_tissue_map_matches_the_written_seg(cases):
    root, ids = cases
    for index, case in enumerate(ids):
        tissue = tissue_map(SEED, index, SHAPE)
        seg = _load(root, case)["seg"]
        tumour = np.isin(tissue, [TISSUE_NAMES.index(n) for n in
                                  ("oedema", "enhancing", "necrosis", "non_enhancing")])
        assert np.array_equal(tumour, seg > 0), case
        assert np.array_equal(tissue == TISSUE_NAMES.index("enhancing"), seg == 4), case


def test_same_seed_gives_identical_bytes_and_more_patients_keep_the_first(cases, tmp_path):
    root, _ = cases
    again = write_brats_cases(tmp_path / "again", N, SEED, shape=SHAPE)
    assert again == cases[1]
    assert _hashes(tmp_path / "again") == _hashes(root)
    fewer = tmp_path / "fewer"
    write_brats_cases(fewer, 2, SEED, shape=SHAPE)
    first_two = {k: v for k, v in _hashes(root).items() if not k.startswith("PHANTOM_BRAIN_0002")}
    assert _hashes(fewer) == first_two


def test_different_seed_gives_different_images(cases, tmp_path):
    root, ids = cases
    write_brats_cases(tmp_path, N, SEED + 1, shape=SHAPE)
    ours, theirs = _hashes(root), _hashes(tmp_path)
    assert ours.keys() == theirs.keys()
    for key in ours:
        if not key.endswith("_seg.nii"):
            assert ours[key] != theirs[key], key


def test_patients_differ_from_each_other(cases):
    root, ids = cases
    t1 = [_load(root, case)["t1"] for case in ids]
    heads = [(a > 0).sum() for a in t1]
    assert len(set(heads)) == N  # head size and position vary per patient


def test_sequence_subset_writes_only_those_and_the_same_images(cases, tmp_path):
    root, ids = cases
    write_brats_cases(tmp_path, 1, SEED, shape=SHAPE, sequences=("flair", "t1ce"))
    case = ids[0]
    assert {p.name for p in (tmp_path / case).iterdir()} == {
        f"{case}_flair.nii", f"{case}_t1ce.nii", f"{case}_seg.nii"}
    for name in ("flair", "t1ce", "seg"):
        a = (tmp_path / case / f"{case}_{name}.nii").read_bytes()
        b = (root / case / f"{case}_{name}.nii").read_bytes()
        assert a == b, name


def test_progress_is_called_once_per_patient(tmp_path):
    calls = []
    write_brats_cases(tmp_path, 2, 1, shape=(24, 32, 32), progress=lambda: calls.append(1))
    assert len(calls) == 2


@pytest.mark.parametrize("kwargs", [dict(sequences=("t1", "dwi")), dict(sequences=("t1", "t1")),
                                    dict(shape=(40, 64)), dict(shape=(4, 64, 64)), dict(disease="lymphoma")])
def test_bad_arguments_are_refused(tmp_path, kwargs):
    with pytest.raises(ValueError):
        write_brats_cases(tmp_path, 1, 0, **kwargs)
    assert not any(tmp_path.iterdir())


def test_default_shape_slices_change_along_z():
    images, seg = make_brain_patient(np.random.default_rng([3, 0]), (155, 240, 240))
    t2 = images["t2"]
    assert t2.shape == (155, 240, 240) and t2.dtype == np.int16 and seg.dtype == np.uint8
    assert t2[:, :5].max() == 0 and t2[:, :, -5:].max() == 0  # air at the field's edges
    area = (t2 > 0).sum(axis=(1, 2))
    middle = area[60:90].max()
    assert area[10] < middle and area[145] < 0.8 * middle
