import csv

import numpy as np
import pytest

from pathosynth.data.dataset import Dataset, DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import BadInputError, UserError


def _info(**extra):
    return DatasetInfo(name="t", modality="MR", dimensionality=2, classes=["a", "b"], **extra)


def _write(out, info=None, n=4):
    rng = np.random.default_rng(0)
    images = {}
    with DatasetWriter(out, info or _info(png_slope=1 / 65535)) as writer:
        for i in range(n):
            array = rng.random((6, 7)).astype(np.float32)
            images[f"s{i}"] = array
            writer.add(Sample(id=f"s{i}", patient_id=f"P{i // 2}", image="", label="ab"[i % 2],
                              boxes=[[1, 1, 3, 4]] if i % 2 else []), MedicalImage(array, (0.5, 0.7)))
        writer.commit(SplitPlan(ratios=(0.5, 0.5, 0.0), seed=0))
    return images


def test_round_trip_png_encoding_manifest_and_splits(tmp_path):
    images = _write(tmp_path / "ds")
    dataset = Dataset.load(tmp_path / "ds")
    assert [s.id for s in dataset.samples] == sorted(images)
    for sample in dataset.samples:
        assert sample.image.endswith(".png")
        array = dataset.read(sample)
        assert array.shape == (1, 6, 7)
        np.testing.assert_allclose(array[0], images[sample.id], atol=0.5 / 65535 + 1e-7)
        assert sample.spacing == [0.5, 0.7]
    splits = {s.patient_id: s.split for s in dataset.samples}
    assert sorted(splits.values()) == ["train", "val"]
    assert dataset.info.image_size == [6, 7] and dataset.info.spacing == [0.5, 0.7]
    assert dataset.select(label="b")[0].boxes == [[1, 1, 3, 4]]
    assert not list(tmp_path.glob(".*partial*"))


def test_float_without_png_scale_and_multichannel_go_to_nifti(tmp_path):
    with DatasetWriter(tmp_path / "ds", _info(channels=["t1", "t2"])) as writer:
        two = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
        writer.add(Sample("x", "P", "", "a"), MedicalImage(two, (1.0, 1.0)))
        writer.add(Sample("y", "P", "", "a"), MedicalImage(two[0] - 3.5, (1.0, 1.0)))
        writer.commit(SplitPlan())
    dataset = Dataset.load(tmp_path / "ds")
    assert all(s.image.endswith(".nii.gz") for s in dataset.samples)
    np.testing.assert_array_equal(dataset.read(dataset.samples[0]), two)
    np.testing.assert_array_equal(dataset.read(dataset.samples[1])[0], two[0] - 3.5)


def test_failure_inside_the_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with DatasetWriter(tmp_path / "ds", _info()) as writer:
            writer.add(Sample("x", "P", "", "a"), MedicalImage(np.zeros((3, 3), np.uint8), (1.0, 1.0)))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_writer_refuses_existing_output_unknown_label_and_outside_box(tmp_path):
    (tmp_path / "ds").mkdir()
    with pytest.raises(UserError, match="already exists"):
        DatasetWriter(tmp_path / "ds", _info())
    with DatasetWriter(tmp_path / "other", _info()) as writer:
        image = MedicalImage(np.zeros((4, 4), np.uint16), (1.0, 1.0))
        with pytest.raises(UserError, match="unknown label 'c'"):
            writer.add(Sample("x", "P", "", "c"), image)
        with pytest.raises(UserError, match=r"box \[0, 0, 5, 2\] is outside the 4x4 image"):
            writer.add(Sample("y", "P", "", "a", boxes=[[0, 0, 5, 2]]), image)
        with pytest.raises(UserError, match="no samples"):
            writer.commit(SplitPlan())
    assert not (tmp_path / "other").exists()


def test_skip_bad_lists_skipped_inputs(tmp_path):
    with DatasetWriter(tmp_path / "ds", _info(), skip_bad=True) as writer:
        writer.handle_bad(BadInputError("case7", "has no seg file", "add it"))
        writer.add(Sample("x", "P", "", "a"), MedicalImage(np.zeros((3, 3), np.uint8), (1.0, 1.0)))
        writer.commit(SplitPlan())
    with (tmp_path / "ds" / "skipped.csv").open() as handle:
        assert list(csv.DictReader(handle)) == [{"source": "case7", "reason": "has no seg file; add it"}]
    with DatasetWriter(tmp_path / "strict", _info()) as writer:
        with pytest.raises(UserError, match="case7: has no seg file; add it; or pass --skip-bad"):
            writer.handle_bad(BadInputError("case7", "has no seg file", "add it"))


def test_load_rejects_leaking_manifest_and_non_dataset(tmp_path):
    _write(tmp_path / "ds")
    manifest = tmp_path / "ds" / "manifest.csv"
    rows = list(csv.DictReader(manifest.open()))
    rows[0]["split"], rows[1]["split"] = "train", "test"  # s0 and s1 belong to patient P0
    with manifest.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with pytest.raises(UserError, match="P0 in test, train"):
        Dataset.load(tmp_path / "ds")
    with pytest.raises(UserError, match="not a pathosynth dataset"):
        Dataset.load(tmp_path)


def test_a_bad_unit_leaves_none_of_its_samples(tmp_path):
    """An importer that adds inside `writer.unit(...)` gets all-or-nothing per input for free:
    the third image of a case has a NaN, so the case's first two are taken back too."""
    good = MedicalImage(np.zeros((3, 3), np.float32), (1.0, 1.0))
    bad = MedicalImage(np.full((3, 3), np.nan, np.float32), (1.0, 1.0))
    with DatasetWriter(tmp_path / "ds", _info(), skip_bad=True) as writer:
        with writer.unit("case1"):
            writer.add(Sample("c1_0", "P1", "", "a"), good)
        with writer.unit("case2"):
            writer.add(Sample("c2_0", "P2", "", "a"), good, mask=np.ones((3, 3), np.uint8))
            writer.add(Sample("c2_1", "P2", "", "b"), good)
            writer.add(Sample("c2_2", "P2", "", "b"), bad)
        assert sorted(p.name for p in (writer.tmp / "images").iterdir()) == ["c1_0.nii.gz"]
        assert list((writer.tmp / "masks").iterdir()) == []
        with writer.unit("case3"):  # an id taken back may be used again
            writer.add(Sample("c2_0", "P3", "", "a"), good)
        writer.commit(SplitPlan())
    assert [s.id for s in Dataset.load(tmp_path / "ds").samples] == ["c1_0", "c2_0"]
    skipped = list(csv.DictReader((tmp_path / "ds" / "skipped.csv").open()))
    assert [(r["source"], "9 NaN" in r["reason"]) for r in skipped] == [("case2", True)]
    with DatasetWriter(tmp_path / "strict", _info()) as writer:
        with pytest.raises(UserError, match="case2: has non-finite pixel values .*; or pass --skip-bad"):
            with writer.unit("case2"):
                writer.add(Sample("c2_2", "P2", "", "b"), bad)


@pytest.mark.parametrize("sample, image, mask, message", [
    (Sample("../x", "P", "", "a"), None, None, "sample id '../x', which cannot be a file name"),
    (Sample("x", " ", "", "a"), None, None, "has no patient id"),
    (Sample("x", "P", "", ""), None, None, "has no label"),
    (Sample("x", "P", "", "a", boxes=[[0, 0, float("nan"), 2]]), None, None, "non-finite"),
    (Sample("x", "P", "", "a"), MedicalImage(np.zeros((3, 3)), (0.0, 1.0)), None, "voxel spacing"),
    (Sample("x", "P", "", "a"), None, np.full((3, 3), 0.5), "not a non-negative integer"),
    (Sample("x", "P", "", "a"), None, np.ones((3, 4), np.uint8), "mask of shape"),
])
def test_writer_validates_what_any_importer_adds(tmp_path, sample, image, mask, message):
    with DatasetWriter(tmp_path / "ds", _info()) as writer:
        with pytest.raises(BadInputError, match=message):
            writer.add(sample, image or MedicalImage(np.zeros((3, 3), np.uint8), (1.0, 1.0)), mask)
        assert list((writer.tmp / "images").iterdir()) == []


def test_a_label_above_255_is_kept_in_a_16_bit_mask(tmp_path):
    with DatasetWriter(tmp_path / "ds", _info()) as writer:
        writer.add(Sample("x", "P", "", "a"), MedicalImage(np.zeros((3, 3), np.uint8), (1.0, 1.0)),
                   mask=np.array([[0, 256, 4], [1, 2, 3], [0, 0, 65535]], np.int32))
        writer.commit(SplitPlan())
    dataset = Dataset.load(tmp_path / "ds")
    np.testing.assert_array_equal(dataset.read_mask(dataset.samples[0]), [[0, 256, 4], [1, 2, 3], [0, 0, 65535]])
