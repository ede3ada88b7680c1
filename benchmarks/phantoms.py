"""Time and peak memory of building each built-in dataset at its default size.

Each build runs in its own process so that its peak resident memory is its own.
Usage: python benchmarks/phantoms.py [--patients-scale 1.0] [--kinds brain-mr,chest-ct,radiograph]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """
import json, sys, time
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.dataset import Dataset
kind, out, patients = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
build_phantom(kind, out, patients=patients, progress=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "samples": len(Dataset.load(out).samples)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kinds", default="brain-mr,chest-ct,radiograph")
    parser.add_argument("--patients-scale", type=float, default=1.0)
    args = parser.parse_args()
    from pathosynth.data.phantoms import DEFAULT_PATIENTS

    rows = []
    for kind in args.kinds.split(","):
        patients = max(1, round(DEFAULT_PATIENTS[kind] * args.patients_scale))
        with tempfile.TemporaryDirectory() as scratch:
            out = Path(scratch) / kind
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            started = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", CHILD, kind, str(out), str(patients)],
                                    capture_output=True, text=True, check=True)
            wall = time.perf_counter() - started
            peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
            numbers = json.loads(result.stdout.strip().splitlines()[-1])
            size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        rows.append((kind, patients, numbers["samples"], numbers["seconds"], numbers["seconds"] / patients,
                     max(peak_kib, before) / 1024, size_mb, wall))
    print(f"machine: {platform.processor() or platform.machine()}, {platform.python_version()}, "
          f"{__import__('os').cpu_count()} cpus")
    print(f"| phantom | patients | samples | build s | s/patient | peak RSS MiB | folder MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, patients, samples, seconds, per, peak, size_mb, _ in rows:
        print(f"| {kind} | {patients} | {samples} | {seconds:.1f} | {per:.2f} | {peak:.0f} | {size_mb:.0f} |")


if __name__ == "__main__":
    main()
