import os

import pytest
from hypothesis import settings

pytest_plugins = ["tests.training_trace"]

# Property tests draw the same examples on every run: a CI failure is then one that reproduces,
# not a draw that the next run may miss (a random draw found an edge case on the 8th session's CI).
settings.register_profile("pathosynth", derandomize=True, database=None)
settings.load_profile("pathosynth")

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


@pytest.fixture(scope="session")
def teaching_runs(tmp_path_factory, tiny_brain, tiny_chest):
    """Tiny trained runs of each kind a teaching session can use: class-conditional and per-class
    DCGAN, box-conditioned CPGGAN, 3D MCGAN."""
    import torch

    from pathosynth.config import make_config
    from pathosynth.training.loop import train

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("teaching-runs")
    return {
        "dcgan": train(make_config("dcgan", "tiny", data=str(tiny_brain)), root / "dcgan", progress=False),
        "separate": train(make_config("dcgan", "tiny", data=str(tiny_brain), classes="separate"), root / "separate",
                          progress=False),
        "cpggan": train(make_config("pggan", "tiny", data=str(tiny_brain), boxes=True), root / "cpggan",
                        progress=False),
        "mcgan": train(make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), steps=4), root / "mcgan",
                       progress=False),
    }
