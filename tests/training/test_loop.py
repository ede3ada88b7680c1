"""The training loop: run folders, exact resume, NaN stop, weights-only export, every family."""

import json

import pytest
import torch

from pathosynth.config import make_config
from pathosynth.training.loop import TrainingDiverged, resume_run, train

FAMILIES = [
    ("dcgan", {}),
    ("dcgan", {"spectral_norm": True}),  # the power iteration's vectors are state too
    ("wgan", {}),
    ("pggan", {"boxes": True, "diffaugment": "brightness,contrast,translation,cutout"}),
    ("pggan", {"classes": "none", "label": "tumour"}),
    ("unet-cgan", {}),
]


def _weights(run):
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    return state, {f"{part}.{name}": value for part in ("generator", "discriminator", "ema")
                   for name, value in state[part].items()}


@pytest.mark.parametrize("model, overrides", FAMILIES)
def test_resume_after_an_interruption_continues_bit_for_bit(tmp_path, tiny_brain, model, overrides):
    config = make_config(model, "tiny", data=str(tiny_brain), steps=8, checkpoint_every=3, **overrides)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(config, straight, progress=False)
    train(config, interrupted, progress=False, stop_after=5)
    assert _weights(interrupted)[0]["step"] == 5
    resume_run(interrupted, progress=False)
    (a_state, a), (b_state, b) = _weights(straight), _weights(interrupted)
    assert a_state["step"] == b_state["step"] == 8
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    for key in ("opt_g", "opt_d"):
        for slot, values in a_state[key]["state"].items():
            assert all(torch.equal(values[k], b_state[key]["state"][slot][k])
                       for k in values if torch.is_tensor(values[k]))


def test_a_resumed_run_keeps_the_thread_count_it_started_with(tmp_path, tiny_brain, monkeypatch):
    # Results depend on the thread count, so a resume must not take "the free cores of the moment".
    # 3 is more than this 2-core machine's cores: the free-core rule could never pick it.
    config = make_config("dcgan", "tiny", data=str(tiny_brain), steps=6, checkpoint_every=2)
    monkeypatch.setenv("PATHOSYNTH_THREADS", "3")
    train(config, tmp_path / "run", progress=False, stop_after=2)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["threads"] == 3
    monkeypatch.delenv("PATHOSYNTH_THREADS")
    torch.set_num_threads(1)
    try:
        resume_run(tmp_path / "run", progress=False)
        assert torch.get_num_threads() == 3
        assert "continues with" not in (tmp_path / "run" / "log.txt").read_text()
        monkeypatch.setenv("PATHOSYNTH_THREADS", "1")  # an explicit count wins, and the log says what it costs
        resume_run(tmp_path / "run", progress=False, steps=8)
        assert torch.get_num_threads() == 1
        assert "continues with 1" in (tmp_path / "run" / "log.txt").read_text()
    finally:
        torch.set_num_threads(1)


def test_run_folder_holds_config_seeds_versions_stats_samples_and_checkpoints(tmp_path, tiny_brain):
    config = make_config("pggan", "tiny", data=str(tiny_brain), steps=4, boxes=True)
    run = train(config, tmp_path / "run", progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["config"]["model"] == "pggan" and record["config"]["seed"] == 0
    assert {"torch", "monai", "pathosynth", "python"} <= set(record["versions"])
    assert record["data"]["classes"] == ["non-tumour", "tumour"]
    stats = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    assert [s["step"] for s in stats] == [1, 2, 3, 4]
    assert all(s["gradient_penalty"] > 0 for s in stats)  # WGAN-GP reaches the critic's loss
    assert [s["stage"] for s in stats] == [0, 1, 1, 2]  # tiny preset grows one phase per step
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-0000002.png", "step-0000004.png"]
    assert not [p for p in run.rglob("*") if ".tmp-" in p.name]  # atomic writes leave no temporaries


def test_generator_export_loads_without_unpickling_code(tmp_path, tiny_brain):
    run = train(make_config("dcgan", "tiny", data=str(tiny_brain)), tmp_path / "run", progress=False)
    exported = torch.load(run / "checkpoints" / "generator.pt", weights_only=True)
    assert exported["kind"] == "generator" and exported["model"] == "dcgan"
    assert all(torch.is_tensor(v) for v in exported["weights"].values())
    full = torch.load(run / "checkpoints" / "last.pt", weights_only=True)  # the full state, too
    assert full["step"] == 4


def test_divergence_stops_with_a_clear_message_and_keeps_the_last_good_checkpoint(tmp_path, tiny_brain):
    run = tmp_path / "run"
    train(make_config("wgan", "tiny", data=str(tiny_brain), steps=4, checkpoint_every=2), run, progress=False)
    before = (run / "checkpoints" / "last.pt").read_bytes()
    with pytest.raises(TrainingDiverged, match="diverged.*NaN or infinite.*last good checkpoint \\(step 4\\)"):
        resume_run(run, progress=False, steps=12, lr_d=1e20, lr_g=1e20)
    assert (run / "checkpoints" / "last.pt").read_bytes() == before
    assert "diverged" in (run / "log.txt").read_text()


def test_class_separate_training_makes_one_run_per_class(tmp_path, tiny_brain):
    run = train(make_config("dcgan", "tiny", data=str(tiny_brain), classes="separate"), tmp_path / "run",
                progress=False)
    record = json.loads((run / "config.json").read_text())
    assert record["separate"] == {"non-tumour": "by-class/non-tumour", "tumour": "by-class/tumour"}
    for name in ("non-tumour", "tumour"):
        sub = json.loads((run / "by-class" / name / "config.json").read_text())
        assert sub["config"]["label"] == name and sub["config"]["classes"] == "none"
        tumour_images = sub["data"]["images"]
        assert tumour_images > 0
        assert (run / "by-class" / name / "checkpoints" / "generator.pt").is_file()


def test_a_fresh_run_refuses_to_overwrite_an_existing_one(tmp_path, tiny_brain):
    config = make_config("dcgan", "tiny", data=str(tiny_brain), steps=1)
    train(config, tmp_path / "run", progress=False)
    from pathosynth.errors import UserError

    with pytest.raises(UserError, match="already holds a run.*--resume"):
        train(config, tmp_path / "run", progress=False)
