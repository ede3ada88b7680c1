import os

import pytest

# Tests run on 2-core machines; one BLAS/torch thread per process avoids oversubscription.
os.environ.setdefault("OMP_NUM_THREADS", "1")
# Training picks its thread count from the free cores, and results depend on it (CPU kernels
# reduce in a thread-count-dependent order): pin it so that two runs in a test match whatever
# the machine's load.
os.environ.setdefault("PATHOSYNTH_THREADS", "1")


@pytest.fixture(scope="session")
def tiny_brain(tmp_path_factory):
    """A tiny brain-MR phantom (6 patients of small slices) with tumour boxes, built once."""
    from pathosynth.data.phantoms import build_phantom  # after the thread settings above

    out = tmp_path_factory.mktemp("data") / "brain"
    return build_phantom("brain-mr", out, patients=6, tiny=True, progress=False)


@pytest.fixture(scope="session")
def tiny_chest(tmp_path_factory):
    """A tiny chest-CT phantom: (nodule VOI dataset, its LUNA16-layout scans + annotations.csv)."""
    from pathosynth.data.phantoms import build_phantom

    root = tmp_path_factory.mktemp("chest")
    vois = build_phantom("chest-ct", root / "vois", patients=6, tiny=True, keep_raw=root / "raw", progress=False)
    return vois, root / "raw"
