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
