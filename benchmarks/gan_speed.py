"""Training and generation speed of the GAN families, measured against this machine's own conv peak.

For every row the real training step of pathosynth is timed (`Run.train_step`: the critic
update(s), the generator update and the EMA update, with the preset's augmentation and
penalties); PGGAN rows are timed at their final, full-resolution stage (alpha = 1). Each row's
FLOPs (convolutions forward and backward, double backward of the gradient penalty included, plus
the dense layers) are counted on one step by a dispatch mode and divided by the step time: the
"% of conv peak" column compares that with a large dense conv2d forward+backward measured in the
same run on the same threads, so the efficiency can be judged on any machine.

Reference figures (best-known public PyTorch code on the project's 2-core CPU, 2 threads, batch
16): DCGAN 64 px train 36 img/s, DCGAN 128 px train 5.9 img/s, full-width PGGAN 64 px train
0.24 img/s, DCGAN 64 px generation 430 img/s at batch 64. They only compare on that machine.

img/s is images (3D rows: VOIs) generated per second, i.e. batch x generator updates / s (WGAN: each generator
update comes with 5 critic updates). Times are the best of several repeats; the load from other
processes during the run is printed, since timings on a busy 2-core machine are not meaningful.

Usage: python benchmarks/gan_speed.py [--data DIR] [--vois DIR] [--threads 2] [--quick] [--json PATH]
                                      [--rows dcgan-64-full,pggan-64-full,...]
Without --data a 4-patient brain-MR phantom is built in a temporary folder (about 10 s).
A full run takes about 5 minutes on an idle 2-core machine, half of it the full-width PGGAN
(three timed steps); --quick about 2.5.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

from pathosynth.models import family
from pathosynth.runtime import cpu_name

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry


# ----------------------------------------------------------------------------- the workloads

@dataclass
class Row:
    key: str
    label: str
    model: str
    overrides: dict = field(default_factory=dict)
    reference: float | None = None  # img/s of the reference code on the project's 2-core CPU


# Full width = the channel counts of the reference implementations; "small" = the preset as shipped.
TRAIN_ROWS = [
    Row("dcgan-64-full", "DCGAN 64 px, width 64, batch 16", "dcgan",
        dict(resolution=64, width=64, batch=16, diffaugment="", classes="none"), 36.0),
    Row("dcgan-128-full", "DCGAN 128 px, width 64, batch 16", "dcgan",
        dict(resolution=128, width=64, batch=16, diffaugment="", classes="none"), 5.9),
    Row("dcgan-64-small", "DCGAN 64 px, small preset", "dcgan"),
    Row("wgan-64-small", "WGAN 64 px, small preset (5 critic steps)", "wgan"),
    # Official PGGAN widths min(512, 8192 / 2**(stage + 1)): 512 at 4..32 px, 256 at 64 px.
    Row("pggan-64-full", "PGGAN 64 px, widths 512..256, latent 512, batch 16", "pggan",
        dict(resolution=64, width=256, max_width=512, latent_dim=512, batch=16, classes="none",
             random_crop=0), 0.24),
    Row("pggan-64-small", "PGGAN 64 px, small preset", "pggan"),
    Row("cpggan-64-small", "CPGGAN 64 px (boxes), small preset", "pggan", dict(boxes=True, classes="none")),
    Row("unet-cgan-64-small", "U-Net cGAN 64 px, small preset", "unet-cgan"),
    Row("mcgan3d-64-small", "3D MCGAN 64^3 VOI (32^3 box), small preset", "mcgan3d"),
]

GENERATE_ROWS = [
    Row("gen-dcgan-64-full", "DCGAN 64 px, width 64", "dcgan", dict(resolution=64, width=64, classes="none"), 430.0),
    Row("gen-pggan-64-small", "PGGAN 64 px, small preset", "pggan", dict(classes="none")),
    Row("gen-unet-cgan-64-small", "U-Net cGAN 64 px, small preset", "unet-cgan"),
    Row("gen-mcgan3d-64-small", "3D MCGAN 64^3 VOI, small preset", "mcgan3d"),
]
GENERATE_BATCH = 64
GENERATE_BATCH_3D = 8  # 64^3 VOIs of 7 channels: 8 of them are already 59 MB of input


# ------------------------------------------------------------------------------- helpers

class FlopCount(TorchDispatchMode):
    """FLOPs of every matmul / convolution (forward, backward, double backward) run inside it.

    torch's FlopCounterMode would do, but its module tracker breaks on the gradient penalty's
    autograd.grad; the FLOP formulas are the same (torch.utils.flop_counter.flop_registry).
    """

    def __init__(self):
        super().__init__()
        self.by_op: Counter = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func._overloadpacket
        if packet in flop_registry:
            self.by_op[str(packet)] += flop_registry[packet](*args, **kwargs, out_val=out)
        return out

    @property
    def total(self) -> int:
        return sum(self.by_op.values())


def _cpu_busy_seconds() -> float | None:
    """All processes' CPU seconds so far (from /proc/stat), to tell our load from the others'."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


class Device:
    def __init__(self):
        self.cuda = torch.cuda.is_available()
        self.device = torch.device("cuda", torch.cuda.current_device()) if self.cuda else torch.device("cpu")

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def name(self) -> str:
        if self.cuda:
            return torch.cuda.get_device_name(self.device)
        return f"{cpu_name()}, {os.cpu_count()} cpus, {torch.get_num_threads()} torch threads"


def best_time(fn, device: Device, repeats: int, per_repeat: int = 1) -> float:
    """Best wall time over `repeats` of `per_repeat` calls of fn."""
    best = math.inf
    for _ in range(repeats):
        device.sync()
        start = time.perf_counter()
        for _ in range(per_repeat):
            fn()
        device.sync()
        best = min(best, time.perf_counter() - start)
    return best


# ---------------------------------------------------------------------------- the conv peak

PEAK_WORKLOADS = [(16, 256, 256, 32, 3), (16, 128, 128, 64, 3)]  # batch, in, out, side, kernel


def conv_peak(device: Device, repeats: int) -> list[dict]:
    """Achieved GFLOP/s of a large dense conv2d forward + backward (input and weight gradients),
    in both memory formats; on a GPU under the bfloat16 autocast the training uses."""
    results = []
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.cuda else nullcontext()
    for n, cin, cout, side, k in PEAK_WORKLOADS:
        for fmt_name, fmt in (("contiguous", torch.contiguous_format), ("channels_last", torch.channels_last)):
            x = torch.randn(n, cin, side, side, device=device.device).to(memory_format=fmt).requires_grad_(True)
            w = (torch.randn(cout, cin, k, k, device=device.device) * 0.05).to(memory_format=fmt).requires_grad_(True)
            grad = None

            def step():
                nonlocal grad
                with autocast:
                    y = F.conv2d(x, w, padding=k // 2)
                if grad is None:
                    grad = torch.ones_like(y)
                x.grad = w.grad = None
                y.backward(grad)

            step()  # warm-up: primitive creation
            seconds = best_time(step, device, repeats)
            flops = 3 * 2 * n * cout * side * side * cin * k * k  # backward = 2 x forward
            results.append({"workload": f"{n}x{cin}->{cout} {k}x{k} at {side}x{side}", "format": fmt_name,
                            "seconds": seconds, "gflop": flops / 1e9, "gflops_per_s": flops / seconds / 1e9})
    return results


# ------------------------------------------------------------------------------ training

def train_row(row: Row, data_dir: str, vois_dir: str, device: Device, quick: bool, cache: dict) -> dict:
    from pathosynth.config import make_config
    from pathosynth.training import distributed
    from pathosynth.training.run import Run

    volumes = family(row.model).spatial_dims == 3
    config = make_config(row.model, "small", data=vois_dir if volumes else data_dir, **row.overrides)
    key = (volumes, config.resolution, config.boxes, config.classes, config.label, config.split)
    if key not in cache:
        cache[key] = family(row.model).step.load_data(config, progress=False)
    torch.manual_seed(config.seed)
    with tempfile.TemporaryDirectory() as scratch:
        run = Run(config, Path(scratch), distributed.start(), progress=False, data=cache[key])
        if getattr(config.family, "phase_steps", 0):
            run.step = config.family.phase_steps * 2 * run.trainer.levels + 1  # final stage, fully faded in
        phase = run.phase()
        counter = FlopCount()
        device.sync()
        start = time.perf_counter()
        with counter:  # first step: counts the FLOPs, and warms up
            run.train_step()
        device.sync()
        first = time.perf_counter() - start
        # Once more untimed, then time; slow rows (a step of many seconds) are timed one step at a time.
        single = best_time(run.train_step, device, 1)
        target = 1.0 if quick else 3.0
        per_repeat = max(1, round(target / single))
        repeats = 1 if quick else 3
        if per_repeat == 1 and single > target:
            repeats -= 1  # a slow row: that step is one of the timed ones
        seconds = min(single, best_time(run.train_step, device, repeats, per_repeat) / per_repeat
                      if repeats else math.inf)
    flops = counter.total
    return {"key": row.key, "label": row.label, "model": config.model, "batch": config.batch,
            "resolution": config.resolution, "critic_steps": config.family.critic_steps, "phase": phase,
            "config": {k: v for k, v in config.to_json().items() if k not in ("notes", "data")},
            "first_step_s": first, "step_s": seconds, "timed_steps": repeats * per_repeat + 1,
            "images_per_s": config.batch / seconds, "gflop_per_step": flops / 1e9,
            "gflop_by_op": {op: n / 1e9 for op, n in counter.by_op.items()},
            "gflops_per_s": flops / seconds / 1e9, "reference_images_per_s": row.reference}


# ---------------------------------------------------------------------------- generation

def generate_row(row: Row, device: Device, quick: bool, channels: int = 1) -> dict:
    from pathosynth.config import make_config
    from pathosynth.data.boxes import box_image
    from pathosynth.latents import latents_for_seeds
    from pathosynth.models import build_generator

    config = make_config(row.model, "small", **row.overrides)
    torch.manual_seed(config.seed)
    generator = build_generator(config.model, family(row.model).generator_kwargs(config, channels, 0))
    generator = generator.to(device.device).eval()
    volumes = family(row.model).spatial_dims == 3
    batch = GENERATE_BATCH_3D if volumes else GENERATE_BATCH
    if device.cuda and config.channels_last:
        generator.to(memory_format=torch.channels_last_3d if volumes else torch.channels_last)
    if volumes:  # a noise-box VOI and its tiled conditions: what `pathosynth generate --ct` feeds it
        z = torch.rand(batch, 7, *(config.resolution,) * 3, device=device.device) - 0.5
    else:
        z = latents_for_seeds(generator, list(range(batch)), device.device)
    kwargs = {}
    if config.boxes:
        side = config.resolution
        boxes = [[[side * 0.3, side * 0.35, side * 0.55, side * 0.6]]] * GENERATE_BATCH
        kwargs["boxes"] = torch.from_numpy(box_image(boxes, side)).to(device.device)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if (device.cuda and config.amp) else nullcontext()

    def forward():
        with torch.no_grad(), autocast:
            return generator(z, **kwargs)

    counter = FlopCount()
    with counter:
        forward()  # counts the FLOPs, and warms up
    single = best_time(forward, device, 1)
    per_repeat = max(1, round((0.5 if quick else 2.0) / single))
    repeats = 1 if quick else 3
    seconds = min(single, best_time(forward, device, repeats, per_repeat) / per_repeat)
    return {"key": row.key, "label": row.label, "model": config.model, "batch": batch,
            "resolution": config.resolution, "step_s": seconds, "timed_steps": repeats * per_repeat,
            "images_per_s": batch / seconds, "gflop_per_step": counter.total / 1e9,
            "gflops_per_s": counter.total / seconds / 1e9, "reference_images_per_s": row.reference}


# ---------------------------------------------------------------------------------- main

def _table(rows: list[dict], peak: float) -> list[str]:
    lines = ["| workload | batch | ms/batch | img/s | GFLOP/batch | GFLOP/s | % of conv peak "
             "| reference img/s | speed-up | reference % of peak at our FLOPs |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        reference = r["reference_images_per_s"]
        ref_text = speedup = implied = ""
        if reference:
            # The efficiency the reference would need to reach its figure doing our FLOPs per image.
            ref_text = f"{reference:g}"
            speedup = f"{r['images_per_s'] / reference:.2f}x"
            implied = f"{100 * reference * r['gflop_per_step'] / r['batch'] / peak:.0f}%"
        lines.append(f"| {r['kind']}: {r['label']} | {r['batch']} | {r['step_s'] * 1000:.0f} "
                     f"| {r['images_per_s']:.3g} | {r['gflop_per_step']:.1f} | {r['gflops_per_s']:.1f} "
                     f"| {100 * r['gflops_per_s'] / peak:.0f}% | {ref_text} | {speedup} | {implied} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--data", help="2D dataset folder (default: a 4-patient brain-MR phantom, built now)")
    parser.add_argument("--vois", help="nodule-VOI dataset for the 3D rows (default: a 6-patient chest-CT phantom, "
                                       "built now)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (CPU); default 2")
    parser.add_argument("--quick", action="store_true", help="fewer repeats (numbers are noisier)")
    parser.add_argument("--json", help="also write the raw numbers to this JSON file")
    parser.add_argument("--rows", help="comma-separated row keys to run (default: all): "
                        + ",".join(r.key for r in TRAIN_ROWS + GENERATE_ROWS))
    args = parser.parse_args()
    from pathosynth.runtime import configure_torch_threads

    threads = configure_torch_threads(args.threads)
    device = Device()
    wanted = set(args.rows.split(",")) if args.rows else None
    known = {r.key for r in TRAIN_ROWS + GENERATE_ROWS}
    if wanted and wanted - known:
        parser.error(f"unknown row(s) {', '.join(sorted(wanted - known))}; choose from {', '.join(sorted(known))}")
    train_rows = [r for r in TRAIN_ROWS if not wanted or r.key in wanted]
    generate_rows = [r for r in GENERATE_ROWS if not wanted or r.key in wanted]

    load_before = os.getloadavg()
    busy_start, own_start, wall_start = _cpu_busy_seconds(), _own_cpu_seconds(), time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        data_dir = args.data
        if not data_dir and train_rows:
            from pathosynth.data.phantoms import build_phantom

            print("building a 4-patient brain-MR phantom ...", file=sys.stderr)
            data_dir = str(build_phantom("brain-mr", Path(scratch) / "brain-mr", patients=4, progress=False))
        vois_dir = args.vois
        if not vois_dir and any(family(r.model).spatial_dims == 3 for r in train_rows):
            from pathosynth.data.phantoms import build_phantom

            print("building a 6-patient chest-CT phantom ...", file=sys.stderr)
            vois_dir = str(build_phantom("chest-ct", Path(scratch) / "chest-ct", patients=6, progress=False))
        print("measuring the conv peak ...", file=sys.stderr)
        peaks = conv_peak(device, repeats=2 if args.quick else 5)
        peak = max(p["gflops_per_s"] for p in peaks)
        results, cache = [], {}
        for row in train_rows:
            print(f"train {row.key} ...", file=sys.stderr)
            results.append({"kind": "train", **train_row(row, data_dir, vois_dir, device, args.quick, cache)})
            print(f"  {results[-1]['images_per_s']:.3g} img/s", file=sys.stderr)
        for row in generate_rows:
            print(f"generate {row.key} ...", file=sys.stderr)
            results.append({"kind": "generate", **generate_row(row, device, args.quick)})
            print(f"  {results[-1]['images_per_s']:.3g} img/s", file=sys.stderr)
        # Again at the end: the load may have changed; each workload keeps its better figure.
        print("measuring the conv peak again ...", file=sys.stderr)
        for before, after in zip(peaks, conv_peak(device, repeats=2 if args.quick else 5)):
            if after["gflops_per_s"] > before["gflops_per_s"]:
                before.update(after)
        peak = max(p["gflops_per_s"] for p in peaks)
    wall = time.perf_counter() - wall_start
    busy_end, own_end = _cpu_busy_seconds(), _own_cpu_seconds()
    others = (None if busy_start is None or busy_end is None
              else max(0.0, (busy_end - busy_start) - (own_end - own_start)) / wall)

    print(f"machine: {device.name()}, Python {platform.python_version()}, torch {torch.__version__}"
          f"{', mkldnn' if torch.backends.mkldnn.is_available() and not device.cuda else ''}")
    print(f"threads: {threads}; load average before {load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}; "
          + (f"other processes used {others:.2f} cores on average during the {wall:.0f} s run"
             if others is not None else f"run took {wall:.0f} s"))
    if others is not None and others > 0.25:
        print(f"WARNING: other processes kept {others:.1f} of {os.cpu_count()} cores busy: these timings are "
              "slower than on an idle machine (with 2 threads on 2 cores, several times slower); "
              "run again when the machine is idle")
    volumes = any(family(r.model).spatial_dims == 3 for r in train_rows)
    flat = any(family(r.model).spatial_dims == 2 for r in train_rows)
    data = ([args.data or "brain-mr phantom, 4 patients"] if flat else []) + \
        ([args.vois or "chest-ct phantom VOIs, 6 patients"] if volumes else [])
    print(f"data: {', '.join(data) or 'none (generation only)'}; {'quick' if args.quick else 'full'} run")
    print("conv peak (dense conv2d forward + backward, best of repeats at the start and the end): "
          + "; ".join(f"{p['workload']} {p['format']} {p['gflops_per_s']:.1f} GFLOP/s" for p in peaks)
          + f" -> peak {peak:.1f} GFLOP/s")
    print()
    for line in _table(results, peak):
        print(line)
    if args.json:
        payload = {"machine": device.name(), "python": platform.python_version(), "torch": torch.__version__,
                   "threads": threads, "device": str(device.device), "quick": args.quick,
                   "data": args.data, "load_average_before": load_before[0],
                   "load_average_after": os.getloadavg()[0], "other_processes_cores": others,
                   "wall_s": wall, "conv_peak": peaks, "peak_gflops_per_s": peak, "rows": results}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
