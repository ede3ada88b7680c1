"""Generation: a synthetic dataset folder with seeds, boxes and provenance; determinism; bad input."""

import hashlib
import json
import random

import numpy as np
import pytest
from PIL import Image

from pathosynth.config import make_config
from pathosynth.data.dataset import SYNTHETIC_MARK, Dataset
from pathosynth.errors import UserError
from pathosynth.generate.images import Jitter
from pathosynth.generate import generate
from pathosynth.training.loop import train


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory, tiny_brain):
    out = tmp_path_factory.mktemp("runs") / "dcgan"
    return train(make_config("dcgan", "tiny", data=str(tiny_brain)), out, progress=False)


@pytest.fixture(scope="module")
def box_run(tmp_path_factory, tiny_brain):
    out = tmp_path_factory.mktemp("runs") / "cpggan"
    return train(make_config("pggan", "tiny", data=str(tiny_brain), boxes=True), out, progress=False)


def _pixels(dataset_dir):
    dataset = Dataset.load(dataset_dir)
    return {s.id: dataset.read(s) for s in dataset.samples}


def test_generated_folder_follows_the_dataset_contract_with_provenance(tmp_path, conditional_run):
    out = generate(conditional_run, 6, tmp_path / "syn", seed=100, batch=4, progress=False)
    dataset = Dataset.load(out)
    assert [s.label for s in sorted(dataset.samples, key=lambda s: s.synthetic["seed"])] == \
        ["non-tumour", "tumour"] * 3
    sha = hashlib.sha256((conditional_run / "checkpoints" / "generator.pt").read_bytes()).hexdigest()
    for sample in dataset.samples:
        assert sample.synthetic["checkpoint_sha256"] == sha
        assert sample.synthetic["model"] == "dcgan" and sample.synthetic["condition"]["label"] == sample.label
        assert sample.patient_id == f"synthetic-{sample.synthetic['seed']:08d}"  # no source patient's id
        assert sample.split == "train"
        assert Image.open(out / sample.image).info["Description"] == SYNTHETIC_MARK
        assert dataset.read(sample).shape == (1, 16, 16)
    info = json.loads((out / "dataset.json").read_text())
    assert info["source"]["synthetic"] is True
    assert info["name"] == "syn"  # its own folder's name, not the training data's (a source's)


def test_same_seed_and_condition_give_the_same_image_whatever_the_batch(tmp_path, conditional_run):
    first = generate(conditional_run, 5, tmp_path / "a", seed=7, batch=5, progress=False)
    again = generate(conditional_run, 5, tmp_path / "b", seed=7, batch=5, progress=False)
    for name in ("manifest.csv",):
        assert (first / name).read_text().replace(str(first), "") == (again / name).read_text().replace(str(again), "")
    a, b = _pixels(first), _pixels(again)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # Other batches, other count: image i still depends only on its seed and its label.
    other = _pixels(generate(conditional_run, 3, tmp_path / "c", seed=7, batch=1, progress=False))
    slope = Dataset.load(first).info.png_slope
    for key, values in other.items():
        assert np.abs(values - a[key]).max() <= slope + 1e-9  # at most one 16-bit step of rounding
    different = _pixels(generate(conditional_run, 2, tmp_path / "d", seed=8, batch=2, progress=False))
    assert not np.array_equal(next(iter(different.values())), a["synthetic-00000007"])


def test_requested_boxes_are_the_labels_and_the_condition(tmp_path, box_run):
    out = generate(box_run, 3, tmp_path / "syn", label="tumour", boxes=[[2, 3, 9, 8]], progress=False)
    for sample in Dataset.load(out).samples:
        assert sample.boxes == [[2, 3, 9, 8]] and sample.label == "tumour"
        assert sample.synthetic["condition"] == {"label": "tumour", "boxes": [[2, 3, 9, 8]]}


def test_layouts_drawn_from_data_are_jittered_inside_the_image(tmp_path, box_run, tiny_brain):
    out = generate(box_run, 8, tmp_path / "syn", label="tumour", boxes_from=tiny_brain,
                   jitter="flip,shift=0.2,zoom=0.2", progress=False)
    samples = Dataset.load(out).samples
    assert all(sample.boxes for sample in samples)
    assert all(0 <= b[0] < b[2] <= 16 and 0 <= b[1] < b[3] <= 16 for s in samples for b in s.boxes)


def test_jitter_moves_boxes_as_the_image_would_move():
    boxes = [[2.0, 4.0, 6.0, 10.0]]

    class Fixed(random.Random):  # every draw at its upper end: flips on, shift +, zoom up
        def random(self):
            return 0.0

        def uniform(self, low, high):
            return high

    moved = Jitter(flip=True, shift=0.1, zoom=0.1).apply(boxes, 20, Fixed())
    # flip x: 20-6, 20-2 = 14, 18; flip y: 10, 16; zoom 1.1 about 10 then shift +2 px
    expected = [min(max((v - 10) * 1.1 + 10 + 2, 0), 20) for v in (14, 10, 18, 16)]
    assert moved == [[round(v, 2) for v in expected]]
    assert Jitter.parse("flip,shift=0.1,zoom=0.1") == Jitter(True, 0.1, 0.1)
    with pytest.raises(UserError, match="--jitter"):
        Jitter.parse("spin=3")


@pytest.mark.parametrize("kwargs, needle", [
    ({"label": "cat"}, "unknown label 'cat'"),
    ({"boxes": [[0, 0, 40, 5]]}, "not inside the 16x16"),
    ({"n": 0}, "at least 1"),
])
def test_bad_generation_requests_end_in_one_clear_error(tmp_path, box_run, kwargs, needle):
    n = kwargs.pop("n", 2)
    with pytest.raises(UserError, match=needle):
        generate(box_run, n, tmp_path / "syn", progress=False, **kwargs)
    assert not (tmp_path / "syn").exists()


def test_boxes_for_a_model_without_box_conditioning_are_refused(tmp_path, conditional_run):
    with pytest.raises(UserError, match="not box-conditioned"):
        generate(conditional_run, 2, tmp_path / "syn", boxes=[[1, 1, 4, 4]], progress=False)


def test_missing_or_corrupt_run_folders_are_named(tmp_path, conditional_run):
    with pytest.raises(UserError, match="not a run folder"):
        generate(tmp_path / "nowhere", 2, tmp_path / "syn", progress=False)
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(conditional_run, broken)
    generator = broken / "checkpoints" / "generator.pt"
    generator.write_bytes(generator.read_bytes()[:500])
    with pytest.raises(UserError, match="generator.pt: the checkpoint is damaged"):
        generate(broken, 2, tmp_path / "syn", progress=False)
    assert not (tmp_path / "syn").exists()
