import pytest

from pathosynth.data.phantoms.chest_ct import make_chest_ct


@pytest.fixture(scope="session")
def chest():
    """A tiny chest CT phantom (64 x 64 x 48 voxels, anisotropic) with three nodules."""
    return make_chest_ct(0, 0, size="tiny")
