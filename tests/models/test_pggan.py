import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pathosynth.data.boxes import box_image as box_array
from pathosynth.models.pggan import (
    EqualizedConv2d, EqualizedLinear, MinibatchStd, PGGANDiscriminator, PGGANGenerator, PixelNorm)
from tests.models.conditioning import assert_labels_reach_both_networks

def box_image(boxes, resolution):
    return torch.from_numpy(box_array(boxes, resolution))


TINY = dict(width=4, max_width=16)  # stages 4..32 px: 16, 16, 16, 8 channels
LATENT = 16


def _pair(resolution=32, channels=1, **kwargs):
    torch.manual_seed(0)
    generator = PGGANGenerator(resolution, channels, latent_dim=LATENT, **TINY, **kwargs).eval()
    discriminator = PGGANDiscriminator(resolution, channels, **TINY, **kwargs).eval()
    return generator, discriminator


@pytest.mark.parametrize("channels", [1, 4])
def test_shapes_at_every_stage(channels):
    generator, discriminator = _pair(32, channels)
    z = torch.randn(3, LATENT)
    for stage in range(4):
        size = 4 * 2 ** stage
        for alpha in (0.5, 1.0):
            images = generator(z, stage=stage, alpha=alpha)
            assert images.shape == (3, channels, size, size)
            assert discriminator(images, stage=stage, alpha=alpha).shape == (3,)
    assert generator(z).shape == (3, channels, 32, 32)  # stage None: the final stage
    assert discriminator(generator(z)).shape == (3,)


def test_the_papers_layers_and_widths():
    generator = PGGANGenerator(256, latent_dim=8)  # the paper's full width: 16 .. 512
    assert [m.weight.shape[1] for m in generator.to_rgb] == [512, 512, 256, 128, 64, 32, 16]
    small = PGGANGenerator(256, latent_dim=8, width=8, max_width=64)
    assert [m.weight.shape[1] for m in small.to_rgb] == [64, 64, 64, 64, 32, 16, 8]
    generator, discriminator = _pair()
    modules = [*generator.modules(), *discriminator.modules()]
    assert not any(isinstance(m, (torch.nn.Tanh, torch.nn.Conv2d, torch.nn.Linear, torch.nn.BatchNorm2d))
                   for m in modules)  # equalised layers only, linear output, no batch norm
    assert all(m.negative_slope == 0.2 for m in modules if isinstance(m, torch.nn.LeakyReLU))
    assert any(isinstance(m, PixelNorm) for m in generator.modules())
    assert not any(isinstance(m, PixelNorm) for m in discriminator.modules())
    assert isinstance(discriminator.blocks[0][0], MinibatchStd)
    assert all(m.weight.shape[-1] == 1 for m in generator.to_rgb)
    assert all(m[0].weight.shape[-1] == 1 for m in discriminator.from_rgb)


def test_fade_in_blends_the_previous_stage():
    generator, _ = _pair()
    z = torch.randn(2, LATENT)
    with torch.no_grad():
        for stage in range(1, 4):
            old = F.interpolate(generator(z, stage=stage - 1), scale_factor=2, mode="nearest")
            assert torch.equal(generator(z, stage=stage, alpha=0.0), old)
            new = generator(z, stage=stage, alpha=1.0)
            assert not torch.allclose(new, old)
            halfway = generator(z, stage=stage, alpha=0.25)
            torch.testing.assert_close(halfway, 0.75 * old + 0.25 * new)


def test_discriminator_fade_in_uses_the_downsampled_input():
    _, discriminator = _pair()
    x = torch.randn(2, 1, 16, 16)
    with torch.no_grad():
        # At alpha 0 the new stage is not yet used: D sees only the downsampled image.
        torch.testing.assert_close(discriminator(x, stage=2, alpha=0.0),
                                   discriminator(F.avg_pool2d(x, 2), stage=1))
        assert not torch.allclose(discriminator(x, stage=2, alpha=1.0), discriminator(x, stage=2, alpha=0.0))


def test_equalised_learning_rate():
    torch.manual_seed(0)
    conv, linear = EqualizedConv2d(64, 32, 3), EqualizedLinear(512, 256)
    assert conv.scale == pytest.approx(math.sqrt(2 / (64 * 3 * 3)))
    assert linear.scale == pytest.approx(math.sqrt(2 / 512))
    for layer in (conv, linear):
        assert layer.weight.mean().item() == pytest.approx(0, abs=0.02)
        assert layer.weight.std().item() == pytest.approx(1, abs=0.02)
        assert torch.equal(layer.bias, torch.zeros_like(layer.bias))
    x = torch.randn(2, 64, 5, 5)
    torch.testing.assert_close(conv(x), F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1))


def test_minibatch_std_adds_the_mean_std_channel():
    x = torch.randn(5, 3, 4, 4)
    out = MinibatchStd()(x)
    assert out.shape == (5, 4, 4, 4)
    assert torch.equal(out[:, :3], x)
    expected = x.std(dim=0, unbiased=False).mean()
    torch.testing.assert_close(out[:, 3], expected.expand(5, 4, 4))


def test_pixel_norm_gives_unit_mean_square():
    out = PixelNorm()(torch.randn(2, 8, 3, 3) * 5)
    torch.testing.assert_close(out.pow(2).mean(dim=1), torch.ones(2, 3, 3))


def test_labels_reach_both_networks():
    generator, discriminator = _pair(num_classes=2)
    assert_labels_reach_both_networks(generator, discriminator, torch.randn(2, LATENT), torch.randn(2, 1, 32, 32))


def test_boxes_reach_both_networks():
    generator, discriminator = _pair(box_condition=True)
    z = torch.randn(2, LATENT)
    left = box_image([[[2, 4, 12, 20]], [[0, 0, 8, 8]]], 32)
    right = box_image([[[18, 4, 30, 20]], [[20, 16, 32, 32]]], 32)
    assert not torch.allclose(generator(z, boxes=left), generator(z, boxes=right))
    assert not torch.allclose(generator(z, boxes=left, stage=0), generator(z, boxes=right, stage=0))
    x = torch.randn(2, 1, 32, 32)
    assert not torch.allclose(discriminator(x, boxes=left), discriminator(x, boxes=right))
    small = F.avg_pool2d(x, 4)
    assert not torch.allclose(discriminator(small, boxes=left, stage=1),
                              discriminator(small, boxes=right, stage=1))
    assert all(m[0].weight.shape[1] == 2 for m in discriminator.from_rgb)  # image + box image


def test_box_image_reaches_every_generator_stage():
    generator, _ = _pair(box_condition=True)
    boxes = box_image([[[2, 4, 12, 20], [20, 20, 31, 28]], []], 32)
    seen = {}
    hooks = [block.register_forward_pre_hook(lambda _, args, stage=stage: seen.__setitem__(stage, args[0]))
             for stage, block in enumerate(generator.blocks)]
    generator(torch.randn(2, LATENT), boxes=boxes)
    for hook in hooks:
        hook.remove()
    assert sorted(seen) == [0, 1, 2, 3]
    for stage, inputs in seen.items():
        size = 4 * 2 ** stage
        features = generator.to_rgb[max(stage - 1, 0)].weight.shape[1]  # the (upsampled) previous stage's
        assert inputs.shape == (2, features + 1, size, size)
        torch.testing.assert_close(inputs[:, -1:], F.interpolate(boxes, size=(size, size), mode="area"))


def _numpy_box_image(boxes, resolution):
    image = np.zeros((len(boxes), 1, resolution, resolution), np.float32)
    centres = np.arange(resolution) + 0.5
    for index, sample in enumerate(boxes):
        for x0, y0, x1, y1 in sample:
            inside = ((centres[None, :] >= x0) & (centres[None, :] < x1)
                      & (centres[:, None] >= y0) & (centres[:, None] < y1))
            image[index, 0][inside] = 1
    return image


def test_box_image_matches_numpy():
    boxes = [[[3, 5, 6, 9]], [], [[0, 0, 16, 16]], [[1.4, 2.6, 7.5, 4.5], [10, 10, 20, 20]]]
    image = box_image(boxes, 16)
    assert image.shape == (4, 1, 16, 16)
    np.testing.assert_array_equal(image.numpy(), _numpy_box_image(boxes, 16))
    # Integer boxes: columns x_min..x_max-1, rows y_min..y_max-1 (max exclusive).
    expected = np.zeros((16, 16), np.float32)
    expected[5:9, 3:6] = 1
    np.testing.assert_array_equal(image[0, 0].numpy(), expected)
    assert image[1].sum() == 0 and image[2].sum() == 256
    assert image[3, 0, 6:, 10:].sum() == 6 * 6  # clipped at the image's edge
    with pytest.raises(ValueError, match="box"):
        box_image([[[1, 2, 3]]], 16)


def test_errors():
    for resolution in (2, 3, 48, 0):
        with pytest.raises(ValueError, match="power of two"):
            PGGANGenerator(resolution)
        with pytest.raises(ValueError, match="power of two"):
            PGGANDiscriminator(resolution)
    generator, discriminator = _pair(box_condition=True)
    z, x = torch.randn(2, LATENT), torch.randn(2, 1, 32, 32)
    with pytest.raises(ValueError, match="boxes"):
        generator(z)
    with pytest.raises(ValueError, match="boxes"):
        discriminator(x)
    with pytest.raises(ValueError, match="boxes"):
        generator(z, boxes=torch.zeros(2, 1, 16, 16))  # not at full resolution
    with pytest.raises(ValueError, match="stage"):
        generator(z, boxes=torch.zeros(2, 1, 32, 32), stage=4)
    with pytest.raises(ValueError, match="stage 1 takes 8x8"):
        discriminator(x, boxes=torch.zeros(2, 1, 32, 32), stage=1)
    with pytest.raises(ValueError, match="alpha"):
        discriminator(x, boxes=torch.zeros(2, 1, 32, 32), alpha=1.5)
