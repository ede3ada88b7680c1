"""The diffusion baseline: DDIM sampling recovers what an exact denoiser knows, guidance mixes the
conditional and unconditional predictions, and training resumes bit for bit through the one loop."""

import math

import numpy as np
import pytest
import torch

from pathosynth.config import make_config
from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from pathosynth.generate import generate
from pathosynth.models.diffusion import DiffusionSampler
from pathosynth.training.loop import resume_run, train


def _sampler(**kwargs) -> DiffusionSampler:
    torch.manual_seed(0)
    return DiffusionSampler(resolution=16, channels=1, widths=(8, 16), attention=(False, True), timesteps=100,
                            **kwargs).eval()


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
def test_ddim_with_an_exact_denoiser_lands_on_the_image_it_knows(prediction):
    """If the network predicts the true noise (or v = sqrt(a) noise - sqrt(1 - a) x0) of x_t for
    one known image x0, deterministic DDIM (eta = 0) must end on x0 from any start, in any number
    of steps: a check of the sampling loop against the forward process's closed form, not against
    our own numbers."""
    sampler = _sampler(sample_steps=7, prediction=prediction)
    target = torch.linspace(-0.8, 0.8, 16 * 16).reshape(1, 1, 16, 16)
    alphas = sampler.scheduler().alphas_cumprod

    def exact(x, t, labels):
        a = alphas[t].reshape(-1, 1, 1, 1)
        noise = (x - a.sqrt() * target) / (1 - a).sqrt()
        return noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * target

    sampler.denoise = exact
    start = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    out = sampler(start)
    assert torch.allclose(out, target.expand(3, -1, -1, -1), atol=1e-4)


def test_guidance_extrapolates_from_the_unconditional_towards_the_conditional_prediction():
    sampler = _sampler(num_classes=2, sample_steps=2, guidance=3.0)
    seen, stepped = [], []

    def recorder(x, t, labels):
        seen.append(labels.clone())
        # "no class" (index 2) predicts 0.5, class 0 predicts 1, class 1 predicts 2
        return torch.tensor([1.0, 2.0, 0.5])[labels].reshape(-1, 1, 1, 1).expand_as(x)

    scheduler = sampler.scheduler()
    original_step = scheduler.step

    def step(model_output, timestep, sample):
        stepped.append(model_output[:, 0, 0, 0].clone())
        return original_step(model_output, timestep, sample)

    scheduler.step = step
    sampler.denoise = recorder
    sampler.scheduler = lambda: scheduler
    sampler(torch.zeros(2, 1, 16, 16), labels=torch.tensor([0, 1]))
    assert seen[0].tolist() == [0, 1, 2, 2]  # conditional and unconditional in one batch
    # eps_u + w (eps_c - eps_u): 0.5 + 3 x 0.5 and 0.5 + 3 x 1.5, at every step
    assert all(torch.allclose(noise, torch.tensor([2.0, 5.0])) for noise in stepped) and len(stepped) == 2


def test_training_resumes_bit_for_bit_and_generation_depends_only_on_the_seed(tmp_path, tiny_brain):
    torch.set_num_threads(1)
    config = make_config("diffusion", "tiny", data=str(tiny_brain), steps=6, checkpoint_every=2)
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    train(config, straight, progress=False)
    train(config, interrupted, progress=False, stop_after=3)
    resume_run(interrupted, progress=False)
    a, b = (torch.load(run / "checkpoints" / "last.pt", weights_only=True) for run in (straight, interrupted))
    assert a["step"] == b["step"] == 6 and set(a) >= {"generator", "ema", "opt_g"}
    for part in ("generator", "ema"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part])
    one = generate(straight, 4, tmp_path / "one", seed=10, batch=4, progress=False)
    two = generate(straight, 6, tmp_path / "two", seed=8, batch=2, progress=False)  # seeds 8..13
    first, second = Dataset.load(one), Dataset.load(two)
    by_seed = {s.synthetic["seed"]: second.read(s) for s in second.samples}
    for sample in first.samples:
        assert np.array_equal(first.read(sample), by_seed[sample.synthetic["seed"]])
    labels = [s.label for s in first.samples]
    assert sorted(set(labels)) == ["non-tumour", "tumour"]  # class-conditional: both classes on request
    assert math.isfinite(float(np.mean([first.read(s).mean() for s in first.samples])))


@pytest.mark.parametrize("overrides, needle", [
    ({"boxes": True}, "no box conditioning"),
    ({"attention": (True,)}, "one per level"),
    ({"label_dropout": 1.0}, "label-dropout"),
    ({"spectral_norm": True}, "DCGAN/WGAN option"),
])
def test_bad_diffusion_settings_end_in_one_sentence(overrides, needle):
    with pytest.raises(UserError, match=needle):
        make_config("diffusion", "tiny", **overrides)
