"""Process-wide settings for the numerical libraries."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def usable_cores() -> int:
    """The cores in this process's affinity mask (all of the machine's where there is none)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def free_cores() -> int:
    """Cores this process may use and that are not already busy: PATHOSYNTH_THREADS if set, else
    the usable cores minus the machine's current load (at least one)."""
    if os.environ.get("PATHOSYNTH_THREADS"):
        return max(1, int(os.environ["PATHOSYNTH_THREADS"]))
    cores = usable_cores()
    busy = int(os.getloadavg()[0]) if hasattr(os, "getloadavg") else 0
    return max(1, cores - busy)


def configure_torch_threads(threads: int | None = None) -> int:
    """Use only the free cores: oversubscribing a 2-core machine made training 4x slower."""
    import torch

    threads = threads or free_cores()
    torch.set_num_threads(threads)
    return threads


def cpu_name() -> str:
    """The CPU's model name (for run records and benchmark tables)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def software_versions(device=None) -> dict:
    """What produced a result, for every run and output folder's record: the libraries whose
    versions can change a number, the platform, torch's thread count, and the device (a CUDA
    device's name, else the CPU's)."""
    import importlib.metadata

    import monai
    import numpy
    import scipy
    import sklearn
    import torch

    from pathosynth import __version__

    found = {"pathosynth": __version__, "python": platform.python_version(), "platform": platform.platform(),
             "torch": torch.__version__, "monai": monai.__version__, "numpy": numpy.__version__,
             "scipy": scipy.__version__, "scikit-learn": sklearn.__version__, "torch_threads": torch.get_num_threads(),
             "device": torch.cuda.get_device_name(device) if device is not None and device.type == "cuda"
             else cpu_name()}
    try:  # recorded where installed; only the radiomics feature space needs it
        found["pyradiomics"] = importlib.metadata.version("pyradiomics-bhklab")
    except importlib.metadata.PackageNotFoundError:
        pass
    return found
