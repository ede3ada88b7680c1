"""3D MCGAN in the one training loop: exact resume, the run folder, what the step feeds each network."""

import json

import pytest
import torch

from pathosynth.config import make_config
from pathosynth.errors import UserError
from pathosynth.training.loop import resume_run, train


def _state(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def test_resume_after_an_interruption_continues_bit_for_bit(tmp_path, tiny_chest):
    config = make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), steps=6, checkpoint_every=2)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(config, straight, progress=False)
    train(config, interrupted, progress=False, stop_after=3)
    resume_run(interrupted, progress=False)
    a, b = _state(straight), _state(interrupted)
    assert a["step"] == b["step"] == 6
    for part in ("generator", "discriminator", "ema"):
        assert a[part].keys() == b[part].keys()
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


def test_run_records_losses_of_both_discriminators_and_exports_the_voi_geometry(tmp_path, tiny_chest):
    config = make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), steps=4)
    run = train(config, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines()]
    for name in ("context_d", "nodule_d", "gradient_penalty", "context_g", "nodule_g", "l1"):
        assert all(name in r and r[name] == r[name] for r in records), name
    # the nodule critic's WGAN-GP penalty is live (it is exactly 0 when no gradient flows)
    assert any(r["gradient_penalty"] > 0 for r in records)
    exported = torch.load(run / "checkpoints" / "generator.pt", weights_only=True)
    assert exported["model"] == "mcgan3d"
    assert exported["voi"] == {"size": 16, "box": 8, "spacing_mm": [2.0, 2.0, 2.0]}  # 32^3 at 1 mm pooled to 16^3
    assert exported["conditions"]["attenuation"] == ["solid", "part-solid", "ggn"]
    assert (run / "samples" / "step-0000004.png").is_file()


def test_both_discriminators_see_the_conditions_and_the_context_one_the_noise_box(tmp_path, tiny_chest, monkeypatch):
    from pathosynth.models.mcgan3d.step import MCGANStep

    seen = {}
    config = make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), steps=1, label_flip=0.0)

    original = MCGANStep.__init__

    def remember(name):
        def hook(module, args, output):  # returns None: the module's output stays as it is
            seen.setdefault(name, args)
        return hook

    def spy(self, *args):
        original(self, *args)
        self.discriminator.context.register_forward_hook(remember("context"))
        self.discriminator.nodule.register_forward_hook(remember("nodule"))

    monkeypatch.setattr(MCGANStep, "__init__", spy)
    train(config, tmp_path / "run", progress=False)
    given, voi = seen["context"]
    noise_voi, tiled = given[:, :1], given[:, 1:]
    centre = (slice(None), slice(None)) + (slice(4, 12),) * 3
    assert noise_voi.shape == voi.shape == (2, 1, 16, 16, 16)
    assert noise_voi[centre].abs().max() <= 0.5 and not torch.equal(noise_voi[centre], voi[centre])
    outside = torch.ones_like(voi, dtype=torch.bool)
    outside[centre] = False
    assert torch.equal(noise_voi[outside], voi[outside])  # only the nodule box is noise
    block, conditions = seen["nodule"]
    assert block.shape == (2, 1, 8, 8, 8) and conditions.shape == (2, 6)
    assert torch.equal(conditions[:, :3].sum(1), torch.ones(2)) and torch.equal(conditions[:, 3:].sum(1), torch.ones(2))
    # the context discriminator's pair carries the same conditions, tiled (pix2pix: D sees G's input)
    assert torch.equal(tiled, conditions[:, :, None, None, None].expand(-1, -1, 16, 16, 16))


def test_a_2d_dataset_or_one_without_attenuation_is_refused(tmp_path, tiny_brain):
    with pytest.raises(UserError, match="3D MCGAN trains on chest CT nodule VOIs"):
        train(make_config("mcgan3d", "tiny", data=str(tiny_brain), steps=1), tmp_path / "run", progress=False)


@pytest.mark.parametrize("overrides, message", [({"resolution": 24}, "multiple of 16"),
                                                ({"nodule_box": 16}, "smaller than the VOI"),
                                                ({"boxes": True}, "not on boxes or classes")])
def test_bad_settings_end_in_one_clear_sentence(tiny_chest, overrides, message):
    with pytest.raises(UserError, match=message):
        make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), **overrides)


def test_two_process_ddp_run_with_torchrun_and_gloo(tmp_path, tiny_chest):
    import os
    import subprocess
    import sys
    from pathlib import Path

    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATHOSYNTH_THREADS": "1"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "pathosynth", "train",
                             "--model", "mcgan3d", "--preset", "tiny", "--data", str(tiny_chest[0]), "--out", str(out),
                             "--steps", "3", "--quiet"], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in (out / "log.txt").read_text()
    state = _state(out)
    assert state["step"] == 3 and state["world"] == 2 and len(state["rng"]) == 2
    records = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert records[-1]["images_shown"] == 3 * 2 * 2  # batch 2 on each process
