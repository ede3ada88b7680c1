"""The two built-in brain sets: gliomas for classification (`brain-mr`), metastases for detection
(`brain-metastases`). Tiny builds (64 px for the 240 mm field, i.e. the classifier's resolution),
checked against their raw BraTS-style cases, which are kept."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from pathosynth.data.dataset import Dataset
from pathosynth.data.importers.brats import import_brats
from pathosynth.data.phantoms import brain_import_options, build_phantom
from pathosynth.data.phantoms.brain_mr import TISSUE_NAMES, tissue_map
from pathosynth.data.readers import read_image
from pathosynth.data.splits import SplitPlan

PATIENTS = 6
SEED = 3
TINY_SHAPE = (40, 64, 64)
EIGHT_CONNECTED = np.ones((3, 3))
# Tissues outside the brain: what skull stripping removes.
SCALP_AND_SKULL = [TISSUE_NAMES.index(n) for n in ("skin", "fat", "muscle", "bone", "marrow")]


def _built(kind: str, root: Path) -> tuple[Dataset, Path]:
    """A tiny build of `kind` and the raw case folders it was imported from."""
    build_phantom(kind, root / "ds", seed=SEED, patients=PATIENTS, tiny=True, keep_raw=root / "raw", progress=False)
    return Dataset.load(root / "ds"), root / "raw"


@pytest.fixture(scope="module")
def gliomas(tmp_path_factory):
    return _built("brain-mr", tmp_path_factory.mktemp("gliomas"))


@pytest.fixture(scope="module")
def metastases(tmp_path_factory):
    return _built("brain-metastases", tmp_path_factory.mktemp("metastases"))


def _cases(raw: Path) -> dict[str, Path]:
    return {p.parent.name: p.parent for p in sorted(raw.rglob("*_seg.nii"))}


def _volume(case: Path, role: str) -> np.ndarray:
    return read_image(case / f"{case.name}_{role}.nii").array


def _component_boxes(mask: np.ndarray) -> list[list[int]]:
    """The bounding box of every 8-connected component, [x_min, y_min, x_max, y_max], max exclusive."""
    components, _ = ndimage.label(mask > 0, structure=EIGHT_CONNECTED)
    return sorted([sl[1].start, sl[0].start, sl[1].stop, sl[0].stop] for sl in ndimage.find_objects(components))


# ------------------------------------------------------------------------------------------ gliomas


def test_every_glioma_patient_has_a_tumour_and_grade_hgg(gliomas):
    dataset, raw = gliomas
    assert sorted(p.name for p in raw.iterdir()) == ["HGG"]
    for case in _cases(raw).values():
        assert (_volume(case, "seg") > 0).any(), case.name
    assert {s.attributes["grade"] for s in dataset.samples} == {"HGG"}
    assert {s.label for s in dataset.select(split="train")} == {"tumour", "non-tumour"}


def test_glioma_tumours_are_large_at_the_classifier_resolution(gliomas):
    # The tiny set is 64 px for the 240 mm field: the `small` classifier's resolution. The largest
    # tumour box of a tumour slice has a median side of about 40 mm; BraTS HGG tumours (oedema
    # included) are some 5-8 cm across. The old mixed phantom's median box was 3 px at 64 px.
    dataset, _ = gliomas
    tumour = dataset.select(label="tumour")
    largest = [max(max(b[2] - b[0], b[3] - b[1]) for b in s.boxes) for s in tumour if s.boxes]
    assert len(largest) >= 0.9 * len(tumour)
    assert np.median(largest) >= 8  # px at 64, i.e. >= 30 mm, >= 32 px at 256
    # Non-tumour slices of tumour patients stay, as in BraTS.
    patients_with_normal_slices = {s.patient_id for s in dataset.select(label="non-tumour")}
    assert len(patients_with_normal_slices) >= PATIENTS // 2


def test_glioma_import_excludes_exactly_the_borderline_and_missing_brain_slices(gliomas, tmp_path):
    # The full-size rules, the tumour area scaled to the tiny pixels (3.75 mm: 800 px at 1 mm is
    # 57 px), applied to the kept raw cases; --tiny itself keeps every slice, as other tests count on.
    full = brain_import_options("brain-mr")
    assert (full.slices, full.pad_to, full.min_tumour_area, full.min_brain_fraction) == ((30, 130), 256, 800, 0.25)
    assert brain_import_options("brain-mr", tiny=True).min_tumour_area == 0
    options = replace(brain_import_options("brain-mr", tiny=True), min_tumour_area=round(800 * (64 / 240) ** 2),
                      min_brain_fraction=full.min_brain_fraction)
    _, raw = gliomas
    dataset = Dataset.load(import_brats(raw, tmp_path / "ds", options, SplitPlan(seed=0), progress=False))
    first, last = options.slices
    expected, borderline, missing = set(), 0, 0
    for name, case in _cases(raw).items():
        seg, brain = _volume(case, "seg"), _volume(case, "t1ce") > 0
        brain_area = brain.sum(axis=(1, 2))
        for z in range(first, last + 1):
            tumour_area = int((seg[z] > 0).sum())
            if brain_area[z] < options.min_brain_fraction * brain_area.max():
                missing += 1
            elif 0 < tumour_area < options.min_tumour_area:
                borderline += 1
            else:
                expected.add(f"{name}_z{z:03d}")
    assert {s.id for s in dataset.samples} == expected
    assert dataset.info.source["excluded_slices"] == {"borderline": borderline, "missing_brain": missing}
    assert borderline > 0  # the rule has work to do on these patients
    assert all(s.attributes["tumour_area_px"] >= options.min_tumour_area for s in dataset.select(label="tumour"))
    assert len(gliomas[0].samples) == PATIENTS * (last - first + 1)


def test_glioma_images_are_skull_stripped_and_metastasis_images_are_not(gliomas, metastases):
    for (_, raw), disease, stripped in ((gliomas, "glioma", True), (metastases, "metastases", False)):
        for index, case in enumerate(_cases(raw).values()):
            image = _volume(case, "t1ce")
            outside = np.isin(tissue_map(SEED, index, TINY_SHAPE, disease), SCALP_AND_SKULL)
            assert outside.sum() > 1000, case.name
            scalp_signal = (image[outside] > 0).mean()
            assert scalp_signal == 0.0 if stripped else scalp_signal > 0.9, (case.name, scalp_signal)


def test_glioma_heads_are_registered_and_metastasis_heads_are_not(gliomas, metastases):
    # BraTS is rigidly registered to an atlas: every head sits at one place in the field.
    def centres(raw):
        return np.array([ndimage.center_of_mass(_volume(case, "t1ce") > 0) for case in _cases(raw).values()])

    assert np.ptp(centres(gliomas[1])[:, 1:], axis=0).max() < 2.0  # voxels (3.75 mm) in y and x
    assert np.ptp(centres(metastases[1])[:, 1:], axis=0).max() > 2.0


# --------------------------------------------------------------------------------------- metastases


def test_metastasis_boxes_are_the_bounding_boxes_of_the_mask_components(metastases):
    dataset, _ = metastases
    for sample in dataset.samples:
        mask = dataset.read_mask(sample)
        assert [[int(v) for v in b] for b in sample.boxes] == _component_boxes(mask), sample.id
        assert sample.label == ("tumour" if mask.any() else "non-tumour"), sample.id


def test_metastasis_masks_mark_only_the_lesions_which_are_small_and_often_several(metastases):
    dataset, raw = metastases
    for index, case in enumerate(_cases(raw).values()):
        seg = _volume(case, "seg")
        assert set(np.unique(seg).tolist()) <= {0, 1, 4}, case.name  # the oedema is drawn but not labelled
        tissue = tissue_map(SEED, index, TINY_SHAPE, "metastases")
        lesion = np.isin(tissue, [TISSUE_NAMES.index(n) for n in ("enhancing", "necrosis", "non_enhancing")])
        np.testing.assert_array_equal(seg > 0, lesion)
        assert seg.any(), case.name  # every patient has at least one metastasis
    boxes = [b for s in dataset.samples for b in s.boxes]
    spacing = dataset.info.spacing[-1]
    sides_mm = np.array([max(b[2] - b[0], b[3] - b[1]) for b in boxes]) * spacing
    assert np.median(sides_mm) <= 20 and sides_mm.max() <= 40  # a few mm to about 2 cm
    assert max(len(s.boxes) for s in dataset.samples) >= 2
    assert len({s.patient_id for s in dataset.samples if s.boxes}) == PATIENTS


def test_the_two_sets_are_different_patients(gliomas, metastases):
    glioma_case, metastasis_case = next(iter(_cases(gliomas[1]).values())), next(iter(_cases(metastases[1]).values()))
    assert glioma_case.name.startswith("PHANTOM_BRAIN_") and metastasis_case.name.startswith("PHANTOM_METS_")
    assert not np.array_equal(_volume(glioma_case, "seg") > 0, _volume(metastasis_case, "seg") > 0)
