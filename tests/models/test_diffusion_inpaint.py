"""The diffusion painter (diffusion-inpaint): DDIM with an exact denoiser paints exactly the tissue it
knows into the hole, the U-Net sees the context the same way in training and at generation, and bad
settings end in one sentence. (Generation into slices and resuming are the inpainter's code:
tests/generate/test_lesions.py runs them with both painters.)"""

import pytest
import torch
from monai.networks.schedulers import DDPMScheduler

from pathosynth.config import make_config
from pathosynth.errors import UserError
from pathosynth.models.diffusion_inpaint import DiffusionPainter
from pathosynth.training.lesion_patches import painter_inputs


def _painter(**kwargs) -> DiffusionPainter:
    torch.manual_seed(0)
    return DiffusionPainter(patch=16, labels=2, widths=(8, 16), attention=(False, True), timesteps=100,
                            **kwargs).eval()


def _inputs(noise_seed: int = 1):
    patch = torch.linspace(0.1, 0.9, 16 * 16).reshape(1, 1, 16, 16).expand(2, -1, -1, -1)
    weight = torch.zeros(2, 1, 16, 16)
    weight[..., 4:11, 5:12] = 1.0
    labels = torch.zeros(2, 2, 16, 16)
    labels[:, 0, 5:10, 6:11] = 1.0
    noise = torch.randn(2, 1, 16, 16, generator=torch.Generator().manual_seed(noise_seed))
    return patch, weight, labels, painter_inputs(patch, weight, labels, noise)


@pytest.mark.parametrize("prediction", ["v_prediction", "epsilon"])
def test_ddim_with_an_exact_denoiser_paints_the_tissue_it_knows_into_the_hole(prediction):
    """A network that predicts the true noise (or v) of x_t for one known patch x0 makes DDIM end on
    x0 inside the hole, from any noise: the sampling loop checked against the forward process's
    closed form (MONAI's DDPM scheduler), not against our own numbers."""
    painter = _painter(sample_steps=6, prediction=prediction)
    patch, weight, _, inputs = _inputs()
    target = patch * 2 - 1
    alphas = DDPMScheduler(num_train_timesteps=100, schedule="cosine").alphas_cumprod
    seen = []

    def exact(x, t, context, hole, labels):
        seen.append((context, hole))
        a = alphas[t].reshape(-1, 1, 1, 1)
        noise = (x - a.sqrt() * target) / (1 - a).sqrt()
        return noise if prediction == "epsilon" else a.sqrt() * noise - (1 - a).sqrt() * target

    painter.denoise = exact
    out = painter(inputs)
    hole = weight > 0
    assert torch.allclose(out[hole], patch[hole], atol=1e-4)
    # the context as training shows it: the patch in [-1, 1] outside the hole, 0 inside
    context, seen_hole = seen[0]
    assert torch.equal(seen_hole, hole.float())
    assert torch.allclose(context, torch.where(hole, torch.zeros_like(target), target))


def test_the_same_noise_paints_the_same_tissue_and_other_noise_other_tissue():
    painter = _painter(sample_steps=3)
    _, weight, _, inputs = _inputs(1)
    again, other = _inputs(1)[-1], _inputs(2)[-1]
    hole = weight > 0
    with torch.no_grad():
        first = painter(inputs)
        assert torch.equal(first, painter(again))
        assert not torch.allclose(first[hole], painter(other)[hole])


@pytest.mark.parametrize("overrides, needle", [
    ({"attention": (True,)}, "one per level"),
    ({"margin": 2}, "at least 4 px"),
    ({"healthy_share": 1.0}, "healthy_share"),
    ({"classes": "conditional"}, "not classes"),
    ({"sample_steps": 500}, "cannot exceed"),
    ({"l1_weight": 3.0}, "diffusion-inpaint has no such setting"),
])
def test_bad_diffusion_painter_settings_end_in_one_sentence(overrides, needle):
    with pytest.raises(UserError, match=needle):
        make_config("diffusion-inpaint", "tiny", **overrides)
