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


def default_device():
    """CUDA when present, else the CPU: nothing assumes a GPU."""
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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


def sidestep_strided_pointwise_convolutions(model):
    """Run every 1 x 1 convolution with a stride as a subsample followed by a stride-1 convolution
    (the same numbers), in place; returns the model.

    Why: oneDNN's `jit_1x1:avx2` weight-gradient kernel corrupts the heap for strided 1 x 1
    convolutions on channels_last inputs with 2-6 input channels (glibc then aborts with
    "corrupted double-linked list"): the ResNet shortcut of the tiny classifier hit it on every
    AVX2-only CPU. Subsampling first keeps the kernel on its unit-stride path, which is sound. The
    parameters and the state dict are unchanged, so checkpoints load either way.
    """
    from torch import nn

    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)) and _strided_pointwise(module):
            strides = module.stride
            module.stride = (1,) * len(strides)
            module.register_forward_pre_hook(_subsampler(strides))
    return model


def _strided_pointwise(conv) -> bool:
    return (all(k == 1 for k in conv.kernel_size) and any(s > 1 for s in conv.stride)
            and all(p == 0 for p in conv.padding) and conv.padding_mode == "zeros")


def _subsampler(strides: tuple[int, ...]):
    def subsample(module, inputs):
        x = inputs[0]
        index = (slice(None), slice(None)) + tuple(slice(None, None, s) for s in strides)
        return (x[index],) + tuple(inputs[1:])

    return subsample
