"""Painting 2D lesions into real slices (both painter families): only the boxes and their margin
change, an image depends only on its seed, masks and boxes come with it, healthy repaints are the
control class, no source is named, and misuse ends in one sentence."""

import json

import numpy as np
import pytest
import torch

from pathosynth.config import make_config
from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from pathosynth.generate import generate
from pathosynth.generate.placement.slices import box_distance, organ_mask
from pathosynth.training.lesions import load_lesion_set
from pathosynth.training.loop import resume_run, train


@pytest.fixture(scope="module", params=["inpaint2d", "diffusion-inpaint"])
def inpaint_run(request, tiny_brain, tmp_path_factory):
    """A run of each painter family: they share the patches and all of generation."""
    torch.set_num_threads(1)
    config = make_config(request.param, "tiny", data=str(tiny_brain), steps=4)
    return train(config, tmp_path_factory.mktemp("inp") / "run", progress=False)


def _sources(source_map):
    return {row["synthetic"]: row["source_sample"] for row in json.loads(source_map.read_text())["scans"]}


def test_only_the_boxes_and_their_margin_change_and_each_lesion_has_its_mask(tmp_path, inpaint_run, tiny_brain):
    source_map = tmp_path / "map.json"
    out = generate(inpaint_run, 6, tmp_path / "syn", seed=3, source_map=source_map, progress=False)
    synthetic, real = Dataset.load(out), Dataset.load(tiny_brain)
    by_id = {s.id: s for s in real.samples}
    sources = _sources(source_map)
    margin = make_config("inpaint2d", "tiny").family.margin
    for sample in synthetic.samples:
        source = by_id[sources[sample.id]]
        assert not source.boxes and sample.boxes and sample.label == "tumour"
        before, after = real.read(source)[0], synthetic.read(sample)[0]
        near = np.zeros(before.shape, dtype=bool)
        for box in sample.boxes:
            near |= box_distance(before.shape, box) < margin
        assert np.array_equal(after[~near], before[~near])  # bit for bit (same PNG unit)
        mask, inside = synthetic.read_mask(sample), np.zeros(before.shape, dtype=bool)
        for box in sample.boxes:
            inside |= box_distance(before.shape, box) == 0
        assert mask is not None and not mask[~inside].any()  # a lesion's mask stays in its box
        assert set(np.unique(mask)) - {0} <= {1, 2, 4} and mask.any()  # the training lesions' labels
        assert sample.synthetic["condition"]["boxes"] == sample.boxes


def test_an_image_depends_only_on_its_seed(tmp_path, inpaint_run):
    one = Dataset.load(generate(inpaint_run, 3, tmp_path / "one", seed=10, batch=3, progress=False))
    two = Dataset.load(generate(inpaint_run, 5, tmp_path / "two", seed=9, batch=2, progress=False))
    by_seed = {s.synthetic["seed"]: s for s in two.samples}
    for sample in one.samples:
        other = by_seed[sample.synthetic["seed"]]
        assert np.array_equal(one.read(sample), two.read(other)) and sample.boxes == other.boxes


def test_random_positions_put_boxes_of_the_asked_size_inside_the_organ(tmp_path, inpaint_run, tiny_brain):
    source_map = tmp_path / "map.json"
    out = generate(inpaint_run, 4, tmp_path / "syn", positions="random", per_image=2, lesion_size=(5, 7), seed=1,
                   source_map=source_map, progress=False)
    synthetic, real = Dataset.load(out), Dataset.load(tiny_brain)
    by_id, sources = {s.id: s for s in real.samples}, _sources(source_map)
    for sample in synthetic.samples:
        organ = organ_mask(real.read(by_id[sources[sample.id]])[0])
        assert 1 <= len(sample.boxes) <= 2
        for x0, y0, x1, y1 in (map(int, box) for box in sample.boxes):
            assert 5 <= x1 - x0 <= 7 and x1 - x0 == y1 - y0
            assert organ[y0:y1, x0:x1].all()


def test_no_file_under_out_names_a_source_slice_or_patient(tmp_path, inpaint_run, tiny_brain):
    out = generate(inpaint_run, 4, tmp_path / "syn", seed=0, progress=False)
    names = {s.id for s in Dataset.load(tiny_brain).samples} | {s.patient_id for s in Dataset.load(tiny_brain).samples}
    for path in out.rglob("*"):
        if path.is_file() and path.suffix in (".csv", ".json"):
            text = path.read_text()
            assert not [name for name in names if name in text], path
    assert str(tiny_brain) not in (out / "dataset.json").read_text()


@pytest.mark.parametrize("model, parts", [("inpaint2d", ("generator", "discriminator", "ema")),
                                          ("diffusion-inpaint", ("generator", "ema"))])
def test_training_resumes_bit_for_bit(tmp_path, tiny_brain, model, parts):
    torch.set_num_threads(1)
    config = make_config(model, "tiny", data=str(tiny_brain), steps=6, checkpoint_every=2)
    train(config, tmp_path / "straight", progress=False)
    train(config, tmp_path / "interrupted", progress=False, stop_after=3)
    resume_run(tmp_path / "interrupted", progress=False)
    a, b = (torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
            for name in ("straight", "interrupted"))
    for part in parts:
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])


def test_misuse_ends_in_one_sentence(tmp_path, inpaint_run, tiny_brain):
    with pytest.raises(UserError, match="--ct, --scans"):
        generate(inpaint_run, 2, tmp_path / "a", ct=tmp_path / "x.nii.gz", progress=False)
    with pytest.raises(UserError, match="not inside"):
        generate(inpaint_run, 2, tmp_path / "b", boxes=[[0, 0, 500, 500]], progress=False)
    dcgan = train(make_config("dcgan", "tiny", data=str(tiny_brain), steps=1), tmp_path / "dcgan", progress=False)
    with pytest.raises(UserError, match="--into"):
        generate(dcgan, 2, tmp_path / "c", into=tiny_brain, progress=False)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists() and not (tmp_path / "c").exists()


def test_healthy_repaints_are_the_other_class_without_a_lesion_and_change_only_their_boxes(tmp_path, inpaint_run,
                                                                                         tiny_brain):
    source_map = tmp_path / "map.json"
    out = generate(inpaint_run, 6, tmp_path / "syn", healthy=0.5, seed=2, source_map=source_map, progress=False)
    synthetic, real = Dataset.load(out), Dataset.load(tiny_brain)
    by_id, sources = {s.id: s for s in real.samples}, _sources(source_map)
    healthy = [s for s in synthetic.samples if s.label == "non-tumour"]
    assert len(healthy) == 3 and all(s.label == "tumour" and s.boxes for s in synthetic.samples if s not in healthy)
    margin = make_config("inpaint2d", "tiny").family.margin
    for sample in healthy:
        boxes = sample.synthetic["condition"]["healthy_boxes"]
        assert not sample.boxes and boxes
        mask = synthetic.read_mask(sample)
        assert mask is None or not mask.any()
        before, after = real.read(by_id[sources[sample.id]])[0], synthetic.read(sample)[0]
        near = np.zeros(before.shape, dtype=bool)
        for box in boxes:
            near |= box_distance(before.shape, box) < margin
        assert np.array_equal(after[~near], before[~near]) and not np.array_equal(after[near], before[near])


def test_the_painter_learns_healthy_holes_inside_the_organ_and_a_run_without_them_refuses_healthy(tmp_path,
                                                                                                tiny_brain):
    config = make_config("inpaint2d", "tiny", data=str(tiny_brain))
    data = load_lesion_set(config, progress=False)
    assert data.holes and data.healthy is not None
    for index, (x0, y0, x1, y1), lesion in data.holes:
        organ = organ_mask(data.healthy[index, 0].float().numpy())
        assert organ[y0:y1, x0:x1].all()
        bx0, by0, bx1, by1 = data.boxes[lesion]
        assert (x1 - x0, y1 - y0) == (bx1 - bx0, by1 - by0)
    none = make_config("inpaint2d", "tiny", data=str(tiny_brain), steps=1, healthy_share=0.0)
    assert not load_lesion_set(none, progress=False).holes
    run = train(none, tmp_path / "run", progress=False)
    with pytest.raises(UserError, match="did not learn healthy tissue"):
        generate(run, 2, tmp_path / "syn", healthy=0.5, progress=False)
    assert not (tmp_path / "syn").exists()


def test_painting_into_the_runs_own_data_uses_only_the_patients_it_learned_from(tmp_path, tiny_brain):
    # the classification experiment draws its low-data patients with the same call
    from pathosynth.data.splits import patient_subset

    real = Dataset.load(tiny_brain)
    train_split = real.select(split="train")
    assert len({s.patient_id for s in train_split}) >= 2
    config = make_config("inpaint2d", "tiny", data=str(tiny_brain), steps=1, train_patients=1, subset_seed=4)
    run = train(config, tmp_path / "run", progress=False)
    source_map = tmp_path / "map.json"
    generate(run, 8, tmp_path / "syn", seed=0, source_map=source_map, progress=False)
    hosts = {row["source_patient"] for row in json.loads(source_map.read_text())["scans"]}
    assert hosts == set(patient_subset((s.patient_id for s in train_split), 1, 4, str(real.root)))


def test_the_audit_of_a_painted_set_says_what_its_flags_mean(tmp_path, inpaint_run, tiny_brain):
    from pathosynth.curate import PAINTED_NOTE, AuditSettings, audit

    painted = generate(inpaint_run, 4, tmp_path / "syn", seed=0, progress=False)
    report = audit(tiny_brain, painted, tmp_path / "audit", AuditSettings(features=("pixel",)), progress=False)
    assert PAINTED_NOTE in report["notes"]


def test_the_experiment_checks_a_painted_set_without_a_false_re_split_warning(tmp_path, tiny_brain):
    """A painter learns from the slices with lesions, not from every slice of its patients: the
    experiment's "the real set changed since" count check is for whole-image generators only."""
    from pathosynth.evaluate.classify_data import load_real, load_synthetic

    config = make_config("inpaint2d", "tiny", data=str(tiny_brain), steps=1, train_patients=2, subset_seed=1)
    run = train(config, tmp_path / "run", progress=False)
    painted = generate(run, 6, tmp_path / "syn", healthy=0.5, progress=False)
    real = load_real(tiny_brain, train_patients=2, subset_seed=1)
    notes = load_synthetic(painted, real).notes
    assert not [note for note in notes if "changed since" in note], notes
