import numpy as np
import pytest

from pathosynth.data.dataset import Dataset
from pathosynth.data.importers.brats import BratsOptions, import_brats
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from tests.layouts import BRATS_2023_NAMES, make_brats_layout


def _import(src, out, **options):
    return Dataset.load(import_brats(src, out, BratsOptions(**options), SplitPlan(seed=0), progress=False))


def test_labels_boxes_padding_match_the_segmentation(tmp_path):
    cases = make_brats_layout(tmp_path / "src")
    dataset = _import(tmp_path / "src", tmp_path / "ds", slices=(2, 17), pad_to=32)
    assert len(dataset.samples) == 3 * 16
    by_id = {s.id: s for s in dataset.samples}
    for case in cases:
        for z in range(2, 18):
            sample = by_id[f"{case.name}_z{z:03d}"]
            tumour = case.seg[z] > 0
            assert sample.label == ("tumour" if tumour.any() else "non-tumour")
            assert sample.patient_id == case.name
            if tumour.any():
                ys, xs = np.nonzero(tumour)
                # 24 -> 32: 4 px of padding on each side
                assert sample.boxes == [[xs.min() + 4, ys.min() + 4, xs.max() + 5, ys.max() + 5]]
                mask = dataset.read_mask(sample)
                np.testing.assert_array_equal(mask[4:28, 4:28], case.seg[z])
            else:
                assert sample.boxes == []
            image = dataset.read(sample)
            assert image.shape == (1, 32, 32)
            assert image.min() >= 0 and image.max() <= 1
            assert np.all(image[0, :4] == 0) and np.all(image[0, :, 28:] == 0)
    patients_per_split = {}
    for sample in dataset.samples:
        patients_per_split.setdefault(sample.patient_id, set()).add(sample.split)
    assert all(len(s) == 1 for s in patients_per_split.values())


def test_intensity_is_normalised_per_volume(tmp_path):
    cases = make_brats_layout(tmp_path / "src")
    dataset = _import(tmp_path / "src", tmp_path / "ds", slices=(0, 19), pad_to=0, percentile=100.0)
    for case in cases:
        volume = case.volumes["t1ce"].astype(np.float64)
        for z in (5, 10):
            sample = next(s for s in dataset.samples if s.id == f"{case.name}_z{z:03d}")
            expected = volume[z] / volume.max()
            np.testing.assert_allclose(dataset.read(sample)[0], expected, atol=1 / 65535)


def test_four_sequences_stack_as_channels_with_2023_names(tmp_path):
    cases = make_brats_layout(tmp_path / "src", n_cases=2, names=BRATS_2023_NAMES)
    dataset = _import(tmp_path / "src", tmp_path / "ds", sequences=("t1", "t1ce", "t2", "flair"),
                      slices=(9, 10), pad_to=0)
    assert dataset.info.channels == ["t1", "t1ce", "t2", "flair"]
    sample = dataset.samples[0]
    assert sample.image.endswith(".nii.gz")
    image = dataset.read(sample)
    assert image.shape == (4, 24, 24)
    for channel, name in enumerate(dataset.info.channels):
        volume = cases[0].volumes[name]
        top = np.percentile(volume[volume > 0], 99.5)
        expected = np.clip(volume[9] / top, 0, 1)
        np.testing.assert_allclose(image[channel], expected, atol=1e-5)


def test_borderline_and_missing_brain_slices_are_excluded(tmp_path):
    cases = make_brats_layout(tmp_path / "src", n_cases=2)
    dataset = _import(tmp_path / "src", tmp_path / "ds", slices=(0, 19), pad_to=0, min_tumour_area=13,
                      min_brain_fraction=0.5)
    kept = {s.id for s in dataset.samples}
    for case in cases:
        brain = case.volumes["t1ce"] > 0
        area = brain.sum(axis=(1, 2))
        for z in range(20):
            tumour_area = (case.seg[z] > 0).sum()
            expected = area[z] >= 0.5 * area.max() and not (0 < tumour_area < 13)
            assert (f"{case.name}_z{z:03d}" in kept) == expected
    assert dataset.info.source["excluded_slices"]["missing_brain"] > 0


def test_mismatched_shapes_stop_or_are_skipped(tmp_path):
    make_brats_layout(tmp_path / "src", n_cases=2)
    from pathosynth.data.image import MedicalImage
    from pathosynth.data.writers import write_nifti

    bad = tmp_path / "src" / "Case_001" / "Case_001_t1ce.nii.gz"
    write_nifti(bad, MedicalImage(np.ones((20, 24, 23), np.int16), (1.0, 1.0, 1.0)))
    with pytest.raises(UserError, match=r"Case_001_t1ce.nii.gz: has shape \(20, 24, 23\) but the segmentation"):
        _import(tmp_path / "src", tmp_path / "ds", slices=(0, 19), pad_to=0)
    assert not (tmp_path / "ds").exists()
    dataset = Dataset.load(import_brats(tmp_path / "src", tmp_path / "ds", BratsOptions(slices=(0, 19), pad_to=0),
                                        SplitPlan(), skip_bad=True, progress=False))
    assert {s.patient_id for s in dataset.samples} == {"Case_000"}
    assert "Case_001_t1ce.nii.gz" in (tmp_path / "ds" / "skipped.csv").read_text()


def test_missing_sequence_and_empty_folder(tmp_path):
    make_brats_layout(tmp_path / "src", n_cases=1)
    (tmp_path / "src" / "Case_000" / "Case_000_flair.nii.gz").unlink()
    with pytest.raises(UserError, match="has no flair file"):
        _import(tmp_path / "src", tmp_path / "ds", sequences=("flair",), pad_to=0)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no BraTS case found"):
        _import(tmp_path / "empty", tmp_path / "ds2")
    with pytest.raises(UserError, match="smaller than the 24x24"):
        _import(tmp_path / "src", tmp_path / "ds3", pad_to=16, slices=(0, 19))
