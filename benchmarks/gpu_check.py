"""The issue-17 recipes at the `paper` scale on one GPU, in under 8 minutes: throughput and quality.

Run it when a session is lent a GPU (`device` tool), e.g.
  python benchmarks/gpu_check.py --work /tmp/gpu --budget 75
It builds the 100-patient glioma phantom (split 0.5/0.1/0.4) unless --data is given, then for each
recipe trains the `paper` preset for about --budget seconds of wall time (the steps that fit, from a
measured first stretch), and measures:
- the painters (inpaint2d, diffusion-inpaint): `benchmarks/inpaint_quality.py --runs RUN` (placement
  in the requested box against the segmenter's ceiling on real lesions, Dice, pixels beyond the
  margin unchanged, train-on-synthetic ratio, lesion diversity, painting speed), with judges sized
  for the budget;
- the whole-image generators (diffusion, class-conditional DCGAN with DiffAugment): 1,000 generated
  images through `benchmarks/gan_quality.py --synthetic` (train-on-synthetic ratio, per-class
  diversity against the real images').
It prints one table: recipe, steps, seconds, training images/s, generation images/s, the quality
numbers. Nothing here needs a GPU (on a CPU, --tiny checks that the script runs end to end).
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from pathosynth.config import make_config
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.splits import SplitPlan
from pathosynth.generate import generate
from pathosynth.training.loop import resume_run, train

HERE = Path(__file__).resolve().parent
# name: (family, overrides at the paper preset)
RECIPES = {
    "inpaint2d": ("inpaint2d", {}),
    "diffusion-inpaint": ("diffusion-inpaint", {}),
    "diffusion": ("diffusion", {"classes": "conditional"}),
    "dcgan-diffaugment": ("dcgan", {"classes": "conditional", "diffaugment": "brightness,contrast,translation,cutout"}),
}
PROBE_STEPS = 20  # the first stretch, timed to size the rest


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--data", type=Path, help="glioma phantom (default: built into --work)")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--budget", type=float, default=75.0, help="training seconds per recipe")
    parser.add_argument("--tiny", action="store_true", help="tiny presets and judges: a smoke run on a CPU")
    parser.add_argument("--json", type=Path)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"{platform.node()}: {torch.cuda.get_device_name(0) if device == 'cuda' else 'CPU only'}, "
          f"torch {torch.__version__}")
    data = args.data or build_data(args.work, args.tiny)
    rows = []
    for name in args.recipes.split(","):
        family, overrides = RECIPES[name]
        row = {"recipe": name, **train_for_budget(family, overrides, data, args)}
        row.update(measure(name, family, Path(row["run"]), data, args))
        rows.append(row)
        print(json.dumps(row))
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def build_data(work: Path, tiny: bool) -> Path:
    out = work / ("brain-tiny" if tiny else "brain-100")
    if not (out / "dataset.json").is_file():
        build_phantom("brain-mr", out, seed=0, patients=None if tiny else 100, tiny=tiny,
                      plan=SplitPlan((0.5, 0.1, 0.4), 0), overwrite=True, progress=False)
    return out


def train_for_budget(family: str, overrides: dict, data: Path, args: argparse.Namespace) -> dict:
    """Train PROBE_STEPS, time them, then resume to the steps that fill the budget."""
    run = args.work / "runs" / family
    preset = "tiny" if args.tiny else "paper"
    config = make_config(family, preset, data=str(data), steps=PROBE_STEPS, sample_every=10 ** 9,
                         checkpoint_every=10 ** 9, **overrides)
    shutil.rmtree(run, ignore_errors=True)
    started = time.perf_counter()
    train(config, run, progress=False)
    # seconds per step from the run's own log: the probe's wall time also holds reading the data
    records = [json.loads(line) for line in (run / "stats.jsonl").read_text().splitlines() if line.strip()]
    per_step = sum(r["seconds"] for r in records) / max(records[-1]["step"], 1)
    steps = max(PROBE_STEPS, PROBE_STEPS + int(args.budget / max(per_step, 1e-6)))
    if steps > PROBE_STEPS:
        resume_run(run, steps=steps, progress=False)
    seconds = time.perf_counter() - started
    return {"run": str(run), "steps": steps, "train_s": round(seconds, 1),
            "train_images_per_s": round(steps * config.batch / seconds, 1)}


def measure(name: str, family: str, run: Path, data: Path, args: argparse.Namespace) -> dict:
    if family in ("inpaint2d", "diffusion-inpaint"):
        out = args.work / f"{name}-quality.json"
        small = ["--n", "200", "--judge-steps", "50", "--clf-steps", "50"] if args.tiny else ["--n", "400"]
        command = [sys.executable, str(HERE / "inpaint_quality.py"), "--data", str(data), "--work",
                   str(args.work / f"{name}-quality"), "--runs", str(run), "--json", str(out), *small]
        subprocess.run(command, check=True)
        return {"quality": json.loads(out.read_text())}
    started = time.perf_counter()
    count = 64 if args.tiny else 1000
    synthetic = generate(run, count, args.work / f"{name}-synthetic", overwrite=True, progress=False)
    generation = count / (time.perf_counter() - started)
    out = args.work / f"{name}-quality.json"
    small = ["--repeats", "1", "--classifier-steps", "20"] if args.tiny else []
    subprocess.run([sys.executable, str(HERE / "gan_quality.py"), "--real", str(data), "--synthetic", str(synthetic),
                    "--json", str(out), *small], check=True)
    return {"generate_images_per_s": round(generation, 1), "quality": json.loads(out.read_text())}


def print_table(rows: list[dict]) -> None:
    print("\n| recipe | steps | training s | training images/s | generation images/s |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for row in rows:
        print(f"| {row['recipe']} | {row['steps']} | {row['train_s']} | {row['train_images_per_s']} | "
              f"{row.get('generate_images_per_s', 'see quality')} |")
    print("\nquality: the JSON lines above (inpaint_quality.py and gan_quality.py print their own tables too)")


if __name__ == "__main__":
    sys.exit(main())
