"""Checks shared by every class-conditional model family."""

import pytest
import torch


def assert_labels_reach_both_networks(generator, discriminator, z: torch.Tensor, x: torch.Tensor) -> None:
    """Same noise / image, other label: other output; no label on a conditional model: an error."""
    tumour, normal = torch.ones(len(z), dtype=torch.long), torch.zeros(len(z), dtype=torch.long)
    assert not torch.allclose(generator(z, tumour), generator(z, normal))
    assert not torch.allclose(discriminator(x, tumour), discriminator(x, normal))
    with pytest.raises(ValueError, match="pass labels"):
        generator(z)
    with pytest.raises(ValueError, match="pass labels"):
        discriminator(x)
