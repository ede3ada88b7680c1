"""The cost of avoiding oneDNN's crashing AVX2 kernel, and where that kernel crashes.

On AVX2-only CPUs, oneDNN's `jit_1x1:avx2` weight-gradient kernel corrupts the heap for strided
1 x 1 convolutions on channels_last inputs with few input channels (the ResNet shortcut of the
classifiers). pathosynth runs such convolutions as a subsample plus a stride-1 convolution
(`runtime.sidestep_strided_pointwise_convolutions`). This script

1. probes the kernel: each (input channels, stride) case trains one strided 1 x 1 convolution
   in a subprocess with oneDNN capped to AVX2 and glibc's malloc checker loaded, with and without
   the sidestep, and reports which crash;
2. times the classifier's training step (`tiny` and `small` presets, MONAI ResNet, channels_last)
   with the sidestep, without it (only where the machine's own ISA is safe), in the contiguous
   layout, and with oneDNN switched off (the other fixes one could make).

Usage: python benchmarks/cpu_kernels.py [--threads 2] [--repeats 20] [--skip-probe]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

PROBE = """
import sys, torch
from torch import nn
from pathosynth.runtime import sidestep_strided_pointwise_convolutions
torch.set_num_threads(1)
channels, stride, fix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3] == "yes"
conv = nn.Conv2d(channels, 8, 1, stride=stride).to(memory_format=torch.channels_last)
if fix:
    sidestep_strided_pointwise_convolutions(conv)
for _ in range(100):
    x = torch.randn(16, channels, 8, 8).contiguous(memory_format=torch.channels_last).requires_grad_()
    conv(x).sum().backward()
    keep = [torch.empty(1000) for _ in range(20)]
"""


def probe(channels: int, stride: int, fix: bool) -> str:
    env = dict(os.environ, ONEDNN_MAX_CPU_ISA="AVX2", ATEN_CPU_CAPABILITY="avx2", MALLOC_CHECK_="3")
    checker = sorted(Path("/lib").glob("*-linux-gnu/libc_malloc_debug.so.0"))
    if checker:
        env["LD_PRELOAD"] = str(checker[0])
    done = subprocess.run([sys.executable, "-c", PROBE, str(channels), str(stride), "yes" if fix else "no"],
                          capture_output=True, text=True, env=env, timeout=300)
    return "ok" if done.returncode == 0 else f"CRASH ({done.returncode})"


def time_step(preset: str, variant: str, repeats: int) -> float:
    import torch
    import torch.nn.functional as F

    from pathosynth.evaluate.classifiers import build_classifier, get_settings
    from pathosynth.runtime import sidestep_strided_pointwise_convolutions

    settings = get_settings(preset)
    torch.manual_seed(0)
    torch.backends.mkldnn.enabled = variant != "oneDNN off"
    model = build_classifier(settings, 1, pretrained=False)
    layout = torch.contiguous_format if variant == "contiguous" else torch.channels_last
    model = model.to(memory_format=layout).train()
    if variant in ("channels_last + sidestep", "oneDNN off"):
        sidestep_strided_pointwise_convolutions(model)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    x = torch.randn(settings.batch, 1, settings.size, settings.size).contiguous(memory_format=layout)
    y = (torch.rand(settings.batch) < 0.5).float()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        loss = F.binary_cross_entropy_with_logits(model(x), y)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        best = min(best, time.perf_counter() - start)
    torch.backends.mkldnn.enabled = True
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--skip-probe", action="store_true")
    args = parser.parse_args()
    import torch

    from pathosynth.runtime import cpu_name

    torch.set_num_threads(args.threads)
    print(f"CPU: {cpu_name()}; ATen capability {torch.backends.cpu.get_cpu_capability()}; torch {torch.__version__}; "
          f"{args.threads} thread(s); load {os.getloadavg()[0]:.2f}")
    if not args.skip_probe:
        print("\n| input channels | stride | without sidestep | with sidestep |\n| ---: | ---: | --- | --- |")
        for channels in (1, 2, 3, 4, 5, 6, 7, 8, 12, 16):
            for stride in (2, 3):
                print(f"| {channels} | {stride} | {probe(channels, stride, False)} | {probe(channels, stride, True)} |",
                      flush=True)
    variants = ["channels_last + sidestep", "contiguous", "oneDNN off"]
    if torch.backends.cpu.get_cpu_capability() != "AVX2":  # unsafe where the kernel crashes
        variants.insert(1, "channels_last (no sidestep)")
    print(f"\n| preset | variant | ms per training step (best of {args.repeats}) | vs sidestep |\n"
          "| --- | --- | ---: | ---: |")
    for preset in ("tiny", "small"):
        base = None
        for variant in variants:
            seconds = time_step(preset, variant, args.repeats)
            base = base or seconds
            print(f"| {preset} | {variant} | {seconds * 1000:.1f} | {seconds / base:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
