"""Time and peak memory of building each built-in dataset at its default size.

Each build runs in its own process, which reports its own peak resident memory.
Usage: python benchmarks/phantoms.py [--patients-scale 1.0] [--kinds brain-mr,chest-ct,radiograph]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from pathosynth.runtime import cpu_name

CHILD = """
import json, resource, sys, time
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.dataset import Dataset
kind, out, patients = sys.argv[1], sys.argv[2], int(sys.argv[3])
start = time.perf_counter()
build_phantom(kind, out, patients=patients, progress=False)
seconds = time.perf_counter() - start
peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "samples": len(Dataset.load(out).samples), "peak_mib": peak_mib}))
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
            result = subprocess.run([sys.executable, "-c", CHILD, kind, str(out), str(patients)],
                                    capture_output=True, text=True, check=True)
            numbers = json.loads(result.stdout.strip().splitlines()[-1])
            size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 1e6
        rows.append((kind, patients, numbers["samples"], numbers["seconds"], numbers["seconds"] / patients,
                     numbers["peak_mib"], size_mb))
    print(f"machine: {cpu_name()}, {os.cpu_count()} cpus, Python {platform.python_version()}")
    print("| phantom | patients | samples | build s | s/patient | peak RSS MiB | folder MB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for kind, patients, samples, seconds, per, peak, size_mb in rows:
        print(f"| {kind} | {patients} | {samples} | {seconds:.1f} | {per:.2f} | {peak:.0f} | {size_mb:.0f} |")


if __name__ == "__main__":
    main()
