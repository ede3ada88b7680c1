"""Teaching cases generated on demand by tiny trained runs: 2D (conditional, per class, box-conditioned)
and 3D MCGAN nodules placed into CT scans."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from pathosynth.data.dataset import Dataset
from pathosynth.data.readers import read_image
from pathosynth.errors import UserError
from pathosynth.generate import generate
from pathosynth.reader.teaching_sources import CaseMaker, PoolMaker, TeachingRequest
from pathosynth.generate.teaching import NODULE_MARK, RunMaker, load_maker

torch.set_num_threads(1)


def _sha256(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def runs(teaching_runs):
    return teaching_runs


@pytest.fixture(scope="module")
def nodules(runs, tiny_chest):
    return RunMaker(runs["mcgan"], base_scans=tiny_chest[1] / "subset0")


def _brain_train_ranges(tiny_brain):
    """The 10-90th percentile ranges of the real training boxes, as fractions of the (square) image."""
    dataset = Dataset.load(tiny_brain)
    side = dataset.info.image_size[0]
    boxes = np.array([b for s in dataset.select(split="train") for b in s.boxes], float) / side
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    return (np.percentile(areas, [10, 90]), np.percentile(centres[:, 0], [10, 90]),
            np.percentile(centres[:, 1], [10, 90]))


def _outside(box, ranges, side=16):
    (a_lo, a_hi), (x_lo, x_hi), (y_lo, y_hi) = ranges
    area = (box[2] - box[0]) * (box[3] - box[1]) / side ** 2
    cx, cy = (box[0] + box[2]) / 2 / side, (box[1] + box[3]) / 2 / side
    return not (a_lo <= area <= a_hi and x_lo <= cx <= x_hi and y_lo <= cy <= y_hi)


# ------------------------------------------------------------------------------------- 2D

def test_a_conditional_run_makes_the_asked_for_class_from_the_seed(runs):
    maker = load_maker(str(runs["dcgan"]))
    assert isinstance(maker, RunMaker) and isinstance(maker, CaseMaker)
    description = json.loads(json.dumps(maker.describe()))
    assert description["classes"] == ["non-tumour", "tumour"] and description["accepts_box"] is False
    assert description["image_size"] == [16, 16] and description["dimensionality"] == 2
    case = maker.make(TeachingRequest(label="tumour", seed=7))
    assert case.array.shape == (1, 16, 16) and case.array.dtype == np.float32 and case.label == "tumour"
    assert case.provenance["source"] == "run" and case.provenance["seed"] == 7
    assert case.provenance["checkpoint_sha256"] == _sha256(runs["dcgan"] / "checkpoints" / "generator.pt")
    assert case.provenance["condition"] == {"label": "tumour", "boxes": None}
    json.dumps(case.metadata())
    assert np.array_equal(maker.make(TeachingRequest(label="tumour", seed=7)).array, case.array)
    assert np.array_equal(RunMaker(runs["dcgan"]).make(TeachingRequest(label="tumour", seed=7)).array, case.array)
    assert not np.array_equal(maker.make(TeachingRequest(label="tumour", seed=8)).array, case.array)
    assert not np.array_equal(maker.make(TeachingRequest(label="non-tumour", seed=7)).array, case.array)


def test_a_case_is_the_image_pathosynth_generate_makes_for_the_same_seed(runs, tmp_path):
    case = load_maker(str(runs["dcgan"])).make(TeachingRequest(label="tumour", seed=11))
    pool = generate(runs["dcgan"], 1, tmp_path / "pool", label="tumour", seed=11, progress=False)
    dataset = Dataset.load(pool)
    written = dataset.read(dataset.samples[0])
    assert np.abs(written - case.array).max() <= dataset.info.png_slope  # one 16-bit step of rounding


def test_a_run_with_one_gan_per_class_uses_that_class_s_generator(runs):
    maker = RunMaker(runs["separate"])
    for label in ("tumour", "non-tumour"):
        case = maker.make(TeachingRequest(label=label, seed=3))
        assert case.label == label and case.provenance["checkpoint"] == f"by-class/{label}/checkpoints/generator.pt"
        generator = runs["separate"] / "by-class" / label / "checkpoints" / "generator.pt"
        assert case.provenance["checkpoint_sha256"] == _sha256(generator)


def test_a_box_conditioned_run_draws_the_asked_for_box(runs):
    maker = RunMaker(runs["cpggan"])
    assert maker.describe()["accepts_box"] is True
    case = maker.make(TeachingRequest(label="tumour", box=[2, 3, 9, 8], seed=5))
    assert case.boxes == [[2, 3, 9, 8]] and case.provenance["condition"]["boxes"] == [[2, 3, 9, 8]]
    other = maker.make(TeachingRequest(label="tumour", box=[9, 9, 14, 13], seed=5))
    assert not np.array_equal(other.array, case.array)  # the box is part of the condition
    assert np.array_equal(maker.make(TeachingRequest(label="tumour", box=[2, 3, 9, 8], seed=5)).array, case.array)


def test_quiz_boxes_of_a_box_conditioned_run_follow_the_training_ranges(runs, tiny_brain):
    maker = RunMaker(runs["cpggan"])
    ranges = _brain_train_ranges(tiny_brain)
    for seed in range(6):
        atypical = maker.quiz_case(seed, atypical=True)
        assert atypical.typical is False and atypical.label == "tumour" and len(atypical.boxes) == 1
        assert _outside(atypical.boxes[0], ranges), atypical.boxes
        assert all(0 <= v <= 16 for v in atypical.boxes[0])
        assert atypical.attributes["atypical_because"][0].startswith("box ")
        typical = maker.quiz_case(seed, atypical=False)
        assert typical.typical is True and typical.attributes["atypical_because"] == []
        assert all(not _outside(box, ranges) for box in typical.boxes)
        assert np.array_equal(maker.quiz_case(seed, atypical=True).array, atypical.array)


def test_a_run_that_cannot_make_atypical_cases_says_so(runs):
    maker = RunMaker(runs["dcgan"])  # both classes common, no boxes
    assert maker.describe()["can_make_atypical"] is False
    with pytest.raises(UserError, match="cannot make an atypical case: no class is rare"):
        maker.quiz_case(0, atypical=True)
    assert maker.quiz_case(0, atypical=False).typical is True


@pytest.mark.parametrize("run, request_, expected", [
    ("dcgan", TeachingRequest(label="fracture"), "unknown class 'fracture'; choose one of non-tumour, tumour"),
    ("dcgan", TeachingRequest(box=[1, 1, 4, 4]), "is not box-conditioned (dcgan); ask without a box"),
    ("dcgan", TeachingRequest(size="large"), "makes 2D images and takes no size; ask without one"),
    ("cpggan", TeachingRequest(box=[0, 0, 20, 4]), "box [0.0, 0.0, 20.0, 4.0] is not inside the 16x16 image"),
])
def test_user_errors_of_2d_runs(runs, run, request_, expected):
    with pytest.raises(UserError) as error:
        RunMaker(runs[run]).make(request_)
    assert expected in str(error.value) and "\n" not in str(error.value)


# ------------------------------------------------------------------------------------- 3D

def test_a_nodule_case_has_the_asked_for_size_and_attenuation_and_its_provenance(runs, nodules, tiny_chest):
    case = nodules.make(TeachingRequest(size="large", attenuation="ggn", seed=2))
    assert case.dimensionality == 3 and case.array.ndim == 4 and case.array.shape[0] == 1
    assert all(n <= 64 for n in case.array.shape[1:]) and case.array.dtype == np.float32
    assert (case.attributes["size"], case.attributes["attenuation"]) == ("large", "ggn")
    assert case.provenance["condition"] == {"size": "large", "attenuation": "ggn"}
    assert case.provenance["checkpoint_sha256"] == _sha256(runs["mcgan"] / "checkpoints" / "generator.pt")
    assert case.intensity_unit == "HU" and case.label == "nodule" and case.mark == NODULE_MARK
    assert json.loads(json.dumps(case.metadata()))["provenance"]["seed"] == 2  # plain JSON, no numpy scalars
    spacings = {tuple(round(s, 4) for s in read_image(p).spacing) for p in (tiny_chest[1] / "subset0").glob("*.mhd")}
    assert tuple(round(s, 4) for s in case.spacing) in spacings
    (box,) = case.boxes
    extent = case.array.shape[1:][::-1]  # x, y, z
    assert all(0 <= box[i] < box[i + 3] <= extent[i] for i in range(3))
    # the crop holds the nodule: the box's centre is the requested centre voxel
    np.testing.assert_allclose([(box[i] + box[i + 3]) / 2 for i in range(3)],
                               np.asarray(case.attributes["centre_voxel_xyz"]) + 0.5, atol=1.0)
    # no large nodule in the training VOIs: the rule calls it atypical and says why
    assert case.typical is False and "size 'large' is rare: 0%" in case.attributes["atypical_because"][0]


def test_the_same_seed_places_the_same_nodule(runs, nodules, tiny_chest):
    request = TeachingRequest(size="small", attenuation="solid", seed=4)
    case = nodules.make(request)
    assert np.array_equal(nodules.make(request).array, case.array)
    fresh = RunMaker(runs["mcgan"], base_scans=tiny_chest[1] / "subset0")
    assert np.array_equal(fresh.make(request).array, case.array)
    other = nodules.make(TeachingRequest(size="small", attenuation="solid", seed=5))
    assert not np.array_equal(other.array, case.array)


def test_nodule_quiz_cases_are_typical_or_atypical_by_the_training_vois(nodules, tiny_chest):
    train_vois = Dataset.load(tiny_chest[0]).select(split="train")
    share = {key: {} for key in ("size", "attenuation")}
    for sample in train_vois:
        for key in share:
            value = sample.attributes[key]
            share[key][value] = share[key].get(value, 0) + 1 / len(train_vois)
    for seed in range(3):
        atypical = nodules.quiz_case(seed, atypical=True)
        typical = nodules.quiz_case(seed, atypical=False)
        assert atypical.typical is False and atypical.attributes["atypical_because"]
        assert typical.typical is True
        assert all(share[k].get(typical.attributes[k], 0) >= 0.1 for k in share)


def test_user_errors_of_nodule_runs(runs, nodules, tiny_chest):
    with pytest.raises(UserError, match="unknown attenuation 'calcified'; choose one of solid, part-solid, ggn"):
        nodules.make(TeachingRequest(attenuation="calcified"))
    with pytest.raises(UserError, match="takes no box; ask without one"):
        nodules.make(TeachingRequest(box=[1, 1, 1, 4, 4, 4]))
    with pytest.raises(UserError, match="needs base CT scans"):
        RunMaker(runs["mcgan"])
    with pytest.raises(UserError, match="base scans are for 3D nodule runs"):
        RunMaker(runs["dcgan"], base_scans=tiny_chest[1] / "subset0")


# ------------------------------------------------------------------------------ load_maker

def test_load_maker_opens_a_pool_for_a_dataset_folder_and_refuses_other_folders(runs, tiny_brain, tmp_path):
    pool = generate(runs["dcgan"], 4, tmp_path / "pool", seed=0, progress=False)
    maker = load_maker(str(pool), reference=tiny_brain)
    assert isinstance(maker, PoolMaker)
    case = maker.make(TeachingRequest(label="tumour", seed=1))
    assert case.label == "tumour" and case.provenance["model"] == "dcgan" and case.array.shape == (1, 16, 16)
    with pytest.raises(UserError, match="are real images"):
        load_maker(str(tiny_brain))
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="neither a trained run"):
        load_maker(str(tmp_path / "empty"))
