"""The 3D MCGAN networks: shapes, the noise box, where the conditions go, dropout as the randomness."""

import pytest
import torch
from monai.networks.nets import PatchDiscriminator

from pathosynth.losses import gradient_penalty
from pathosynth.config import make_config
from pathosynth.data.nodules import ATTENUATIONS, CONDITIONS, SIZES
from pathosynth.models.mcgan3d.networks import (
    AlwaysDropout, ContextDiscriminator, MCGANDiscriminators, MCGANGenerator, NoduleDiscriminator,
    centre_block, centre_slices, condition_vector, generator_input, noise_box_input, paste_centre,
    tile_conditions)
from pathosynth.training.ema import standing_statistics

_PRESET = make_config("mcgan3d", "tiny").family  # the widths the tiny preset trains with
TINY = dict(generator=_PRESET.unet_widths, context=_PRESET.width, nodule=_PRESET.width)


def _voi(batch=2, side=16, spatial_dims=3, seed=0):
    return torch.rand((batch, 1) + (side,) * spatial_dims, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _conditions(*pairs):
    return torch.stack([condition_vector(size, attenuation) for size, attenuation in pairs])


def _generator(side=16, box=8, spatial_dims=3, **kwargs):
    torch.manual_seed(0)
    return MCGANGenerator(side, box, TINY["generator"], spatial_dims=spatial_dims, **kwargs)


def _input(side=16, box=8, spatial_dims=3, conditions=None):
    conditions = _conditions(("small", "solid"), ("large", "ggn")) if conditions is None else conditions
    noise = noise_box_input(_voi(2, side, spatial_dims), box, generator=torch.Generator().manual_seed(1))
    return generator_input(noise, conditions)


def _seeded(model, x, seed):
    torch.manual_seed(seed)
    return model(x)


# --- shapes -----------------------------------------------------------------------------------

@pytest.mark.parametrize("side, box, spatial_dims, patches", [(16, 8, 3, 2), (32, 16, 3, 2), (32, 16, 2, 2)])
def test_shapes_and_tanh_range(side, box, spatial_dims, patches):
    generator = _generator(side, box, spatial_dims)
    x = _input(side, box, spatial_dims)
    assert x.shape == (2, 7) + (side,) * spatial_dims
    out = generator(x)
    assert out.shape == (2, 1) + (side,) * spatial_dims
    assert out.abs().max() <= 1 and out.std() > 0  # tanh, not a constant
    discriminators = MCGANDiscriminators(side, box, TINY["context"], spatial_dims=spatial_dims)
    # 3 PatchGAN layers at 32 (32 // 8 - 2 = 2 patches a side), 2 at 16 (16 // 4 - 2 = 2)
    assert discriminators.context.layers == (3 if side >= 24 else 2)
    scores = discriminators.context(x, out)
    assert scores.shape == (2, 1) + (patches,) * spatial_dims
    block = centre_block(out, box)
    assert block.shape == (2, 1) + (box,) * spatial_dims
    assert discriminators.nodule(block, _conditions(("small", "solid"), ("large", "ggn"))).shape == (2,)


def test_generator_attributes_and_layers():
    generator = _generator()
    assert (generator.voi_size, generator.box, generator.spatial_dims, generator.latent_dim) == (16, 8, 3, 0)
    assert len(generator.encoder) == 4 and len(generator.decoder) == 4
    norms = [m for m in generator.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(norms) == 3 + 4  # every encoder conv but the first, every deconv
    assert sum(isinstance(m, AlwaysDropout) for m in generator.modules()) == 3
    assert not any(isinstance(m, torch.nn.modules.dropout._DropoutNd) for m in generator.modules())
    assert isinstance(ContextDiscriminator(16, 4, 2).net, PatchDiscriminator)
    assert ContextDiscriminator(64, 4, 3).patches == 6 and MCGANDiscriminators(64, 32, 4).context.layers == 3


# --- noise box and compositing ----------------------------------------------------------------

def test_centre_slices():
    assert centre_slices(64, 32, 3) == (slice(16, 48),) * 3
    assert centre_slices(16, 8, 2) == (slice(4, 12),) * 2
    assert centre_slices(15, 5, 3) == (slice(5, 10),) * 3
    with pytest.raises(ValueError, match="box side"):
        centre_slices(16, 17, 3)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_noise_box_replaces_exactly_the_centre(spatial_dims):
    voi = _voi(2, 16, spatial_dims)
    noisy = noise_box_input(voi, 8, generator=torch.Generator().manual_seed(3))
    inside = (..., *centre_slices(16, 8, spatial_dims))
    mask = torch.zeros_like(voi, dtype=torch.bool)
    mask[inside] = True
    assert torch.equal(noisy[~mask], voi[~mask])
    assert noisy[inside].min() >= -0.5 and noisy[inside].max() <= 0.5
    assert not torch.isclose(noisy[inside], voi[inside]).any()
    assert noisy[inside].std() > 0.2  # uniform on a width of 1: std 0.29
    assert torch.equal(noisy, noise_box_input(voi, 8, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(noisy, noise_box_input(voi, 8, generator=torch.Generator().manual_seed(4)))
    assert torch.equal(voi, _voi(2, 16, spatial_dims))  # the input is untouched


def test_paste_centre_and_its_gradient():
    context = _voi(2, 16)
    block = torch.full((2, 1, 8, 8, 8), 7.0, requires_grad=True)
    out = paste_centre(context, block, 8)
    inside = (..., *centre_slices(16, 8, 3))
    assert torch.equal(out[inside], block.detach())
    mask = torch.zeros_like(context, dtype=torch.bool)
    mask[inside] = True
    assert torch.equal(out[~mask], context[~mask]) and not (context == 7).any()
    weights = torch.rand(out.shape)
    (grad,) = torch.autograd.grad((out * weights).sum(), block)
    assert torch.equal(grad, weights[inside])
    with pytest.raises(ValueError, match="block must have shape"):
        paste_centre(context, block[:, :, :4], 8)


# --- conditions -------------------------------------------------------------------------------

def test_condition_vector_and_tiling():
    assert CONDITIONS == SIZES + ATTENUATIONS
    assert condition_vector("medium", "part-solid").tolist() == [0, 1, 0, 0, 1, 0]
    assert condition_vector("large", "ggn").dtype == torch.float32
    with pytest.raises(ValueError, match="small, medium, large"):
        condition_vector("huge", "solid")
    with pytest.raises(ValueError, match="solid, part-solid, ggn"):
        condition_vector("small", "small")
    vectors = _conditions(("small", "solid"), ("large", "ggn"))
    tiled = tile_conditions(vectors, (3, 4, 5))
    assert tiled.shape == (2, 6, 3, 4, 5)
    assert torch.equal(tiled[:, :, 2, 3, 4], vectors) and torch.equal(tiled[:, :, 0, 0, 0], vectors)
    with pytest.raises(ValueError, match=r"\(N, 6\)"):
        tile_conditions(vectors[:, :5], (4, 4))


def test_conditions_reach_the_generator():
    generator = _generator()
    small = _input(conditions=_conditions(("small", "solid"), ("small", "solid")))
    large = _input(conditions=_conditions(("large", "solid"), ("small", "ggn")))
    assert torch.equal(small[:, :1], large[:, :1])
    assert not torch.allclose(_seeded(generator, small, 0), _seeded(generator, large, 0))


def test_conditions_reach_the_nodule_discriminator():
    torch.manual_seed(0)
    nodule = NoduleDiscriminator(8, TINY["nodule"])
    block = _voi(2, 8)
    vectors = _conditions(("small", "solid"), ("large", "ggn")).requires_grad_(True)
    scores = nodule(block, vectors)
    (grad,) = torch.autograd.grad(scores.sum(), vectors)
    assert (grad.abs().sum(dim=1) > 0).all()
    assert not torch.allclose(scores, nodule(block, _conditions(("medium", "part-solid"), ("small", "solid"))))


def test_context_discriminator_sees_the_noise_box_voi_and_the_conditions():
    torch.manual_seed(0)
    context = ContextDiscriminator(16, TINY["context"], 2)
    voi = _voi(2, 16)
    conditions = _conditions(("small", "solid"), ("large", "ggn"))
    first = generator_input(noise_box_input(voi, 8, generator=torch.Generator().manual_seed(1)), conditions)
    second = generator_input(noise_box_input(voi, 8, generator=torch.Generator().manual_seed(2)), conditions)
    assert not torch.allclose(context(first, voi), context(second, voi))
    other = generator_input(first[:, :1], _conditions(("medium", "part-solid"), ("small", "solid")))
    assert not torch.allclose(context(first, voi), context(other, voi))
    vectors = conditions.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(context(generator_input(first[:, :1], vectors), voi).sum(), vectors)
    assert (grad.abs().sum(dim=1) > 0).all()


# --- randomness -------------------------------------------------------------------------------

@pytest.mark.parametrize("mode", ["train", "eval", "standing_statistics"])
def test_dropout_is_the_randomness(mode):
    generator = _generator()
    x = _input()
    if mode == "eval":  # after some training-mode batches, so the running statistics are a trained G's
        with torch.no_grad():
            for seed in range(30):  # momentum 0.1: 0.9**30 of the initial statistics left
                _seeded(generator, x, seed)
        generator.eval()
    elif mode == "standing_statistics":  # what the EMA generator goes through before sampling
        standing_statistics(generator, lambda: _seeded(generator, x, 5), batches=2)
    with torch.no_grad():
        first, again, other = _seeded(generator, x, 0), _seeded(generator, x, 0), _seeded(generator, x, 1)
    assert torch.equal(first, again)
    assert (first - other).abs().mean() > 0.05 * first.abs().mean()


def test_no_dropout_means_deterministic():
    generator = _generator(dropout=0.0).eval()
    x = _input()
    assert torch.equal(_seeded(generator, x, 0), _seeded(generator, x, 1))


# --- bad input --------------------------------------------------------------------------------

def test_bad_shapes_raise():
    generator = _generator()
    x = _input()
    with pytest.raises(ValueError, match=r"expects \(N, 7, 16, 16, 16\)"):
        generator(x[:, :6])
    with pytest.raises(ValueError, match="expects"):
        generator(_input(32, 16))
    with pytest.raises(ValueError, match="multiple of 2\\*\\*4"):
        MCGANGenerator(24, 8, TINY["generator"])
    with pytest.raises(ValueError, match="box side"):
        MCGANGenerator(16, 32, TINY["generator"])
    with pytest.raises(ValueError, match="generator_input must have shape"):
        ContextDiscriminator(16, 4, 2)(x[:, :1], x[:, :1])
    with pytest.raises(ValueError, match="VOI side >= 24"):
        ContextDiscriminator(16, 4, 3)
    nodule = NoduleDiscriminator(8, 4)
    with pytest.raises(ValueError, match=r"conditions must have shape \(2, 6\)"):
        nodule(_voi(2, 8), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="block must have shape"):
        nodule(_voi(2, 16), torch.zeros(2, 6))


# --- WGAN-GP feasibility ----------------------------------------------------------------------

def test_nodule_critic_is_per_sample_for_the_gradient_penalty():
    torch.manual_seed(0)
    nodule = NoduleDiscriminator(16, TINY["nodule"]).train()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in nodule.modules())
    conditions = _conditions(("small", "solid"), ("large", "ggn"))
    block = _voi(2, 16).requires_grad_(True)
    scores = nodule(block, conditions)
    (grad,) = torch.autograd.grad(scores.sum(), block, create_graph=True)
    assert (grad.flatten(1).norm(dim=1) > 0).all()

    moved = block.detach().clone()
    moved[1] += torch.randn_like(moved[1])
    moved.requires_grad_(True)
    moved_scores = nodule(moved, conditions)
    (moved_grad,) = torch.autograd.grad(moved_scores.sum(), moved)
    assert torch.allclose(moved_scores[0], scores[0], atol=1e-6) and not torch.allclose(moved_scores[1], scores[1])
    assert torch.allclose(moved_grad[0], grad[0].detach(), atol=1e-6)

    penalty = gradient_penalty(lambda x: nodule(x, conditions), block.detach(), _voi(2, 16, seed=9))
    penalty.backward()  # the double backward reaches the critic's weights
    assert nodule.score.weight.grad is not None and nodule.score.weight.grad.abs().sum() > 0
