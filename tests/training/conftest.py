import pytest

from pathosynth.data.phantoms import build_phantom


@pytest.fixture(scope="session")
def tiny_brain(tmp_path_factory):
    """A tiny brain-MR phantom (6 patients of small slices) with tumour boxes, built once."""
    out = tmp_path_factory.mktemp("data") / "brain"
    return build_phantom("brain-mr", out, patients=6, tiny=True, progress=False)
