import numpy as np
import pytest
import torch

from pathosynth.models.dcgan import DCGANDiscriminator, DCGANGenerator
from tests.models.conditioning import assert_labels_reach_both_networks


@pytest.mark.parametrize("resolution", [64, 128])
@pytest.mark.parametrize("channels", [1, 4])
def test_shapes_and_the_papers_layers(resolution, channels):
    generator = DCGANGenerator(resolution, channels, width=8)
    discriminator = DCGANDiscriminator(resolution, channels, width=8)
    images = generator(torch.randn(3, 100))
    assert images.shape == (3, channels, resolution, resolution)
    assert discriminator(images).shape == (3,)
    convolutions = [m for m in [*generator.modules(), *discriminator.modules()]
                    if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    assert all(m.kernel_size == (4, 4) for m in convolutions)
    assert not any(isinstance(m, torch.nn.Tanh) for m in generator.modules())
    assert any(isinstance(m, torch.nn.ELU) for m in discriminator.modules())
    assert not any(isinstance(m, torch.nn.ELU) for m in generator.modules())


def test_default_width_is_half_the_usual_dcgan():
    generator = DCGANGenerator(64)
    first = next(m for m in generator.modules() if isinstance(m, torch.nn.ConvTranspose2d))
    assert first.out_channels == 256  # the usual DCGAN has 512 at 4x4


def test_labels_reach_both_networks():
    torch.manual_seed(0)
    generator = DCGANGenerator(64, width=8, num_classes=2).eval()
    discriminator = DCGANDiscriminator(64, width=8, num_classes=2).eval()
    assert_labels_reach_both_networks(generator, discriminator, torch.randn(2, 100), torch.randn(2, 1, 64, 64))


def test_resolution_must_be_a_power_of_two():
    with pytest.raises(ValueError, match="power of two"):
        DCGANGenerator(96)
    with pytest.raises(ValueError, match="power of two"):
        DCGANDiscriminator(4)


def test_spectral_norm_keeps_every_discriminator_conv_at_unit_spectral_norm():
    torch.manual_seed(0)
    discriminator = DCGANDiscriminator(32, width=8, num_classes=2, spectral_norm=True).train()
    images, labels = torch.randn(4, 1, 32, 32), torch.tensor([0, 1, 0, 1])
    for _ in range(30):  # power iterations run in training-mode forwards
        discriminator(images, labels)
    convolutions = [m for m in discriminator.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convolutions and all(hasattr(m, "parametrizations") for m in convolutions)
    for conv in convolutions:
        matrix = conv.weight.detach().flatten(1).numpy()  # the normalised weight, as used in forward
        assert np.linalg.svd(matrix, compute_uv=False)[0] == pytest.approx(1.0, abs=0.02)
    plain = DCGANDiscriminator(32, width=8)
    assert not any(hasattr(m, "parametrizations") for m in plain.modules())
