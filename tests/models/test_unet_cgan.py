import pytest
import torch
from monai.networks.nets import PatchDiscriminator, UNet

from pathosynth.losses import gradient_penalty, least_squares_d, nonsaturating_d, nonsaturating_g
from pathosynth.data.boxes import box_image
from pathosynth.models.unet_cgan import PatchGANDiscriminator, UNetCGANGenerator

WIDTHS = (4, 8, 16, 32)  # 3 downsamplings, tiny


def _pair(resolution=32, channels=1, spatial_dims=2, layers=3, **kwargs):
    torch.manual_seed(0)
    generator = UNetCGANGenerator(resolution, channels, spatial_dims, widths=WIDTHS, **kwargs)
    discriminator = PatchGANDiscriminator(channels, spatial_dims, width=4, layers=layers)
    return generator, discriminator


def _boxes(resolution=32):
    return torch.from_numpy(box_image([[[2, 3, 10, 12]], [[16, 16, 30, 24], [0, 0, 4, 4]]], resolution))


@pytest.mark.parametrize("resolution, channels, patches", [(32, 1, 2 * 2), (64, 2, 6 * 6)])
def test_2d_shapes(resolution, channels, patches):
    generator, discriminator = _pair(resolution, channels)
    boxes = _boxes(resolution)
    z = generator.noise(2)
    assert z.shape == (2, 1, resolution, resolution)
    images = generator(z, boxes=boxes)
    assert images.shape == (2, channels, resolution, resolution)
    scores = discriminator(images, boxes=boxes)
    assert scores.shape == (2, patches)
    assert discriminator.patches(resolution) ** 2 == patches
    assert nonsaturating_g(scores).dim() == 0


def test_3d_shapes():
    generator, discriminator = _pair(16, spatial_dims=3, layers=2, latent_channels=2)
    boxes = torch.zeros(2, 1, 16, 16, 16)
    boxes[0, :, 4:8, 4:8, 4:8] = 1
    z = generator.noise(2)
    assert z.shape == (2, 2, 16, 16, 16)
    images = generator(z, boxes=boxes)
    assert images.shape == (2, 1, 16, 16, 16)
    assert discriminator(images, boxes=boxes).shape == (2, 2 ** 3)


def test_built_from_monai_with_pix2pix_choices():
    generator, discriminator = _pair()
    assert isinstance(generator.unet, UNet) and isinstance(discriminator.net, PatchDiscriminator)
    assert generator.unet.in_channels == 2  # box image + 1 noise channel
    # Encoder: LeakyReLU 0.2, no dropout; decoder: ReLU, dropout 0.5; linear output, no tanh.
    adns = [m for m in generator.modules() if type(m).__name__ == "ADN"]
    for adn in adns:
        if isinstance(adn.A, torch.nn.ReLU):
            assert adn.D.p == 0.5
        else:
            assert isinstance(adn.A, torch.nn.LeakyReLU) and adn.A.negative_slope == 0.2 and adn.D.p == 0.0
    assert sum(isinstance(adn.A, torch.nn.ReLU) for adn in adns) == len(WIDTHS) - 2
    last = list(generator.unet.model.children())[-1]
    assert isinstance(last.conv, torch.nn.ConvTranspose2d) and not hasattr(last, "adn")
    assert not any(isinstance(m, torch.nn.Tanh) for m in generator.modules())


def test_noise_helper_is_seedable():
    generator, _ = _pair()
    a = generator.noise(3, generator=torch.Generator().manual_seed(1))
    b = generator.noise(3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 1, 32, 32) and torch.equal(a, b)


def test_boxes_and_noise_reach_the_generator():
    generator, _ = _pair()
    generator.eval()  # dropout off: a deterministic function of (z, boxes)
    z, boxes = generator.noise(2), _boxes()
    with torch.no_grad():
        out = generator(z, boxes=boxes)
        assert torch.equal(out, generator(z, boxes=boxes))
        assert not torch.allclose(out, generator(z, boxes=boxes.flip(-1)))
        assert not torch.allclose(out, generator(generator.noise(2), boxes=boxes))
        generator.train()  # dropout on: a second source of randomness
        assert not torch.allclose(generator(z, boxes=boxes), generator(z, boxes=boxes))


def test_dropout_only_generator():
    generator, _ = _pair(latent_channels=0)
    assert generator.noise(2).shape == (2, 0, 32, 32)
    assert generator(None, boxes=_boxes()).shape == (2, 1, 32, 32)


def test_boxes_reach_the_discriminator():
    _, discriminator = _pair()
    discriminator.eval()
    images, boxes = torch.randn(2, 1, 32, 32), _boxes()
    with torch.no_grad():
        assert not torch.allclose(discriminator(images, boxes=boxes), discriminator(images, boxes=boxes.flip(-1)))


def test_gradients_reach_every_parameter():
    generator, discriminator = _pair()
    boxes = _boxes()
    fake = generator(generator.noise(2), boxes=boxes)
    nonsaturating_g(discriminator(fake, boxes=boxes)).backward()
    for name, parameter in generator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    discriminator.zero_grad()
    real = torch.randn(2, 1, 32, 32)
    loss = nonsaturating_d(discriminator(real, boxes=boxes), discriminator(fake.detach(), boxes=boxes))
    loss = loss + least_squares_d(discriminator(real, boxes=boxes), discriminator(fake.detach(), boxes=boxes))
    loss.backward()
    for name, parameter in discriminator.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, name
    penalty = gradient_penalty(lambda x: discriminator(x, boxes=boxes), real, fake)
    assert penalty.dim() == 0 and torch.isfinite(penalty)


def test_errors():
    with pytest.raises(ValueError, match="2\\*\\*3"):
        UNetCGANGenerator(36, widths=WIDTHS)  # not divisible by 8
    with pytest.raises(ValueError, match="2\\*\\*2"):
        UNetCGANGenerator(18, widths=(4, 8, 16))  # 3 levels: 2 downsamplings, 18 % 4 != 0
    assert UNetCGANGenerator(20, widths=(4, 8, 16)).resolution == 20
    with pytest.raises(ValueError, match="spatial_dims"):
        UNetCGANGenerator(32, spatial_dims=1)
    with pytest.raises(ValueError, match="widths"):
        UNetCGANGenerator(32, widths=(8,))
    generator, discriminator = _pair()
    z, boxes = generator.noise(2), _boxes()
    with pytest.raises(ValueError, match="boxes"):
        generator(z)
    with pytest.raises(ValueError, match="boxes"):
        generator(z, boxes=boxes[:, :, :16, :16])
    with pytest.raises(ValueError, match="noise"):
        generator(z[:, :, :16, :16], boxes=boxes)
    with pytest.raises(ValueError, match="noise"):
        generator(None, boxes=boxes)
    images = torch.randn(2, 1, 32, 32)
    with pytest.raises(ValueError, match="boxes"):
        discriminator(images)
    with pytest.raises(ValueError, match="boxes"):
        discriminator(images, boxes=boxes[:1])
    with pytest.raises(ValueError, match="x must be"):
        discriminator(torch.randn(2, 3, 32, 32), boxes=boxes)
    with pytest.raises(ValueError, match=">= 24"):
        discriminator(images[..., :16, :16], boxes=boxes[..., :16, :16])
