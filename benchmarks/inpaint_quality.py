"""The bars of the 2D lesion inpainter (`--model inpaint2d`, issue 17) on the glioma phantom.

Per seed, one `inpaint2d` run (the `small` preset, trained here or given with --runs), measured
through the package's public API (`training.loop.train`, `generate.generate`, `Dataset`):

1. Placement. A lesion segmenter (MONAI 2D U-Net at 128 px, the slices area-averaged 2x; BCE + soft
   Dice, half of each batch slices with a lesion, left-right flips, one fixed seed) is trained once
   on the REAL train-split slices and masks (mask > 0). A box counts as found by the rule printed
   in the output (probability > 0.5 on >= 10% of the box's pixels or >= 20 px, whichever is fewer),
   judged on each slice's largest box at the slice's own 256 px:
   (a) the ceiling: real test-split lesions in their own boxes;
   (b) lesions painted (`generate(..., into=DATA, split="test")`) into the test split's lesion-free
       slices, in the requested boxes;
   (c) the control: the same boxes on the unedited source slices (false hits);
   (d) Dice between the segmenter (> 0.5) and the painted mask, inside the boxes grown by the
       family's margin (the mask may reach into the feather);
   (e) the share of painted slices whose every pixel farther than the margin from every box is
       bit-identical to its source slice (the link from the source map). Bar: 1.0.
2. Train on synthetic, test on real (TSTR), 64 px. The small CNN of benchmarks/_quality_models.py
   (balanced batches, a fixed number of steps, flips, shifts, intensity jitter), trained with the
   seed: arm A on the real train split (tumour + non-tumour); arm B on the real train-split
   non-tumour slices that were NOT used as hosts, plus as many painted tumour slices as the real
   train split has tumour slices, painted into other train-split non-tumour slices
   (`into=DATA, split="train"`; hosts from the source map). Test ROC AUC on the real test split;
   bar: B / A >= 0.95 on every seed.
3. Speed: painted slices per second at 256 px, the wall time of the placement `generate` call
   (reading, painting, writing; the model's loading included).
4. Lesion diversity: mean pairwise L2 (RMS per pixel, data unit) between 32 x 32 crops of the largest
   box, painted lesions against real test lesions (ratio); with --audit, also the memorisation
   audit (`pathosynth curate audit --features pixel`) of the placement set: its flag rate.

Usage: OMP_NUM_THREADS=1 python benchmarks/inpaint_quality.py [--data DIR | --patients 100 --split 0.5,0.1,0.4]
           [--work DIR] [--seeds 0,1,2 | --runs RUN,RUN,RUN] [--steps K] [--n 400] [--judge-steps 700]
           [--clf-steps 1000] [--threads 1] [--audit] [--json FILE]
Without --data the phantom is built (seed 0) into --work and reused from there; so are the runs
(--work/runs/, resumed when cut short). The full run (3 seeds, 100 patients, `small` preset, 2,000
steps each) takes about 2 hours on one thread of a 2-core AMD EPYC with the other core busy, 85% of it
training (0.9-1.1 s a step); per seed the rest is about 5 minutes (2,400 slices painted for TSTR at ~25/s).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from pathosynth.config import make_config
from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.splits import SplitPlan, parse_ratios
from pathosynth.generate import generate
from pathosynth.runtime import cpu_name
from pathosynth.training.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _lesion_judges as lj  # noqa: E402  (the helpers beside this file)
import _quality_models as qm  # noqa: E402

RATIO_BAR = 0.95
CLASSIFIER_SIZE = 64
CHUNK = 32  # slices read and judged at once
MARGIN_FOR_REAL = 6  # the family's default margin: real lesions' Dice is taken over boxes grown as much


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="glioma phantom folder (default: built into --work)")
    parser.add_argument("--patients", type=int, default=100, help="phantom patients, when it is built")
    parser.add_argument("--split", default="0.5,0.1,0.4", help="phantom train,val,test patient ratios")
    parser.add_argument("--work", type=Path, default=Path("/tmp/inpaint-quality"),
                        help="cache: the built phantom, the runs, the painted sets")
    parser.add_argument("--seeds", default="0,1,2", help="run seeds (each: a run, its generation, its classifiers)")
    parser.add_argument("--model", choices=("inpaint2d", "diffusion-inpaint"), default="inpaint2d",
                        help="the painter family trained per seed")
    parser.add_argument("--runs", help="existing painter run folders, comma-separated (seeds: their own)")
    parser.add_argument("--steps", type=int, help="training steps per run (default: the small preset's)")
    parser.add_argument("--n", type=int, default=400, help="slices painted for placement and speed (>= 200)")
    parser.add_argument("--positions", choices=("real", "random"), default="real", help="generate's positions")
    parser.add_argument("--per-image", type=int, default=1, help="with --positions random: lesions per slice")
    parser.add_argument("--lesion-size", help="with --positions random: box side MIN-MAX px")
    parser.add_argument("--judge-size", type=int, default=128, help="segmenter input side (px)")
    parser.add_argument("--judge-steps", type=int, default=700, help="segmenter training steps (batch 16)")
    parser.add_argument("--judge-seed", type=int, default=0)
    parser.add_argument("--clf-steps", type=int, default=1000, help="TSTR classifier steps (batch 64), both arms")
    parser.add_argument("--audit", action="store_true", help="also run `pathosynth curate audit` on each set")
    parser.add_argument("--no-tstr", action="store_true",
                        help="skip train-on-synthetic (it paints as many slices as the train split's tumour slices: "
                             "~40 min for the diffusion painter on a CPU)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--json", type=Path, help="write every number here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    os.environ["OMP_NUM_THREADS"] = str(args.threads)  # for the audit's subprocess
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    header = print_header(args)
    args.work.mkdir(parents=True, exist_ok=True)
    context = prepare(args)
    runs = given_runs(args.runs) if args.runs else trained_runs(args, context.root)
    rows = [measure_seed(seed, run, train_s, context) for seed, run, train_s in runs]
    summary = print_table(rows, context)
    wall = time.perf_counter() - started
    print(f"\n{wall:.0f} s wall; load average now {os.getloadavg()[0]:.2f}")
    if args.json:
        args.json.write_text(json.dumps({**header, "data": str(context.root), "rule": context.rule.describe(),
                                         "segmenter": context.segmenter_facts, "ceiling": context.ceiling,
                                         "rows": rows, "summary": summary, "wall_s": wall}, indent=2) + "\n")
        print(f"wrote {args.json}")


def print_header(args: argparse.Namespace) -> dict:
    header = {"machine": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
              "torch": torch.__version__, "threads": torch.get_num_threads(),
              "date": f"{datetime.now():%Y-%m-%d %H:%M}", "load_average": os.getloadavg()[0],
              "command": " ".join([Path(sys.executable).name, *sys.argv])}
    print(f"machine: {header['machine']}, {header['cpus']} cpus, Python {header['python']}, torch {header['torch']}, "
          f"{header['threads']} torch thread(s) (OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']}); "
          f"{header['date']}; load average {header['load_average']:.2f}")
    print(f"command: {header['command']}\n")
    return header


# ------------------------------------------------------------------------------ the real data


@dataclass
class Context:
    """What every seed is judged against: the real data, its tensors and the segmenter."""

    args: argparse.Namespace
    root: Path
    data: Dataset
    positive: str
    train: list[Sample]
    test: list[Sample]
    train_x: torch.Tensor  # (N, 1, 64, 64), data unit
    test_x: torch.Tensor
    segmenter: torch.nn.Module
    rule: lj.HitRule = field(default_factory=lj.HitRule)
    segmenter_facts: dict = field(default_factory=dict)
    ceiling: dict = field(default_factory=dict)

    def labels(self, samples: list[Sample]) -> torch.Tensor:
        return torch.tensor([s.label == self.positive for s in samples])


def prepare(args: argparse.Namespace) -> Context:
    root = args.data or build_data(args.work, args.patients, args.split)
    data = Dataset.load(root)
    train_samples, test_samples = data.select(split="train"), data.select(split="test")
    started = time.perf_counter()
    judge_x, judge_masks = lj.load_slices(data, train_samples, args.judge_size, masks=True)
    test_x, _ = lj.load_slices(data, test_samples, CLASSIFIER_SIZE)
    read_s = time.perf_counter() - started
    started = time.perf_counter()
    segmenter = lj.train_segmenter(judge_x, judge_masks, args.judge_seed, args.judge_steps)
    facts = {"steps": args.judge_steps, "batch": 16, "size": args.judge_size, "seed": args.judge_seed,
             "train_slices": len(train_samples), "train_s": time.perf_counter() - started, "read_s": read_s}
    print(f"segmenter: MONAI UNet at {args.judge_size} px, {args.judge_steps} steps of 16 on {len(train_samples)} "
          f"real train slices, {facts['train_s']:.0f} s (reading the splits {read_s:.0f} s)")
    train_x = F.interpolate(judge_x, size=(CLASSIFIER_SIZE,) * 2, mode="area")  # the test split's 64 px rule
    context = Context(args, Path(root), data, lj.lesion_label(data), train_samples, test_samples, train_x, test_x,
                      segmenter, segmenter_facts=facts)
    context.ceiling = judge_real_lesions(context)
    return context


def build_data(work: Path, patients: int, split: str) -> Path:
    out = work / f"glioma-{patients}-{split.replace(',', '-')}"
    if (out / "manifest.csv").is_file():
        print(f"phantom: reusing {out}")
        return out
    started = time.perf_counter()
    build_phantom("brain-mr", out, seed=0, patients=patients, plan=SplitPlan(tuple(parse_ratios(split)), seed=0),
                  progress=False)
    print(f"phantom: built brain-mr, {patients} patients, split {split}, in {time.perf_counter() - started:.0f} s")
    return out


def judge_real_lesions(context: Context) -> dict:
    """The ceiling: the segmenter on the real test lesions, each slice's largest box (and every box)."""
    samples = [s for s in context.test if s.boxes]
    largest, every, dices, crops = [], [], [], []
    for start in range(0, len(samples), CHUNK):
        chunk = samples[start:start + CHUNK]
        images = [context.data.read(s)[0] for s in chunk]
        probabilities = segment(context, images)
        for sample, image, probability in zip(chunk, images, probabilities):
            truth = context.data.read_mask(sample) > 0
            box = lj.largest_box(sample.boxes)
            largest.append(lj.box_hit(probability, box, context.rule))
            every += [lj.box_hit(probability, b, context.rule) for b in sample.boxes]
            near = lj.region(sample.boxes, image.shape, MARGIN_FOR_REAL)
            dices.append(lj.dice((probability > context.rule.threshold) & near, truth & near))
            crops.append(lj.lesion_crop(image, box))
    result = {"slices": len(samples), "hit_largest": float(np.mean(largest)), "boxes": len(every),
              "hit_every_box": float(np.mean(every)), "dice": float(np.nanmean(dices)),
              "crop_l2": lj.mean_pairwise_l2(crops)}
    print(f"ceiling on {len(samples)} real test lesion slices: largest box found {result['hit_largest']:.1%}, "
          f"every box {result['hit_every_box']:.1%} ({len(every)} boxes), Dice in the boxes {result['dice']:.3f}; "
          f"rule: {context.rule.describe()}\n")
    return result



def segment(context: Context, images: list[np.ndarray]) -> np.ndarray:
    x = torch.stack([lj.pooled(image, context.args.judge_size) for image in images])
    return lj.lesion_probability(context.segmenter, x, images[0].shape[-1])


# -------------------------------------------------------------------------------------- the runs


def given_runs(runs: str) -> list[tuple[int, Path, float | None]]:
    out = []
    for run in (Path(r) for r in runs.split(",")):
        config = json.loads((run / "config.json").read_text())["config"]
        out.append((int(config["seed"]), run, None))
    return out


def trained_runs(args: argparse.Namespace, data: Path) -> list[tuple[int, Path, float | None]]:
    """One run per seed under --work/runs; a finished one (its marker file) is reused, a cut-short
    one resumed."""
    out = []
    for seed in (int(s) for s in args.seeds.split(",")):
        config = make_config(args.model, "small", data=str(data), seed=seed, steps=args.steps)
        run = args.work / "runs" / f"{args.model}-small-{data.name}-seed{seed}-steps{config.steps}"
        marker = run.with_suffix(".done.json")
        if marker.is_file():
            print(f"run seed {seed}: reusing {run}")
            out.append((seed, run, json.loads(marker.read_text())["train_s"]))
            continue
        started = time.perf_counter()
        train(config, run, resume=run.exists(), progress=False)
        seconds = time.perf_counter() - started
        marker.write_text(json.dumps({"train_s": seconds, "steps": config.steps}) + "\n")
        print(f"run seed {seed}: trained {config.steps} steps in {seconds:.0f} s "
              f"({1000 * seconds / config.steps:.0f} ms/step) -> {run}")
        out.append((seed, run, seconds))
    return out


def run_margin(run: Path) -> int:
    return int(json.loads((run / "config.json").read_text())["config"]["family"]["margin"])


def paint(context: Context, run: Path, n: int, out: Path, split: str, seed: int) -> tuple[Path, list[dict], float]:
    """`generate` into lesion-free slices of `split`; the painted folder, its source map and the wall time."""
    args = context.args
    size = tuple(int(v) for v in args.lesion_size.split("-")) if args.lesion_size else None
    source_map = out.with_suffix(".source-map.json")
    started = time.perf_counter()
    generate(run, n, out, into=context.root, split=split, seed=seed, source_map=source_map,
             positions=args.positions, per_image=args.per_image, lesion_size=size, overwrite=True, progress=False)
    seconds = time.perf_counter() - started
    return out, json.loads(source_map.read_text())["scans"], seconds


# ------------------------------------------------------------------------------------ per seed


def measure_seed(seed: int, run: Path, train_s: float | None, context: Context) -> dict:
    folder = context.args.work / f"sets-{run.name}"
    out, links, seconds = paint(context, run, context.args.n, folder / "placement", "test", seed * 1_000_000)
    row = {"seed": seed, "run": str(run), "train_s": train_s, "margin": run_margin(run),
           "ceiling": context.ceiling["hit_largest"],
           "steps": json.loads((run / "config.json").read_text())["config"]["steps"],
           "painted": len(links), "generate_s": seconds, "slices_per_s": len(links) / seconds}
    row.update(judge_placement(context, out, links, row["margin"]))
    row["diversity_ratio"] = row["crop_l2"] / context.ceiling["crop_l2"]
    if not context.args.no_tstr:
        row.update(train_on_synthetic(context, run, seed, folder))
    if context.args.audit:
        row["audit_flag_rate"] = audit(context.root, out, folder / "audit")
    tstr = f"TSTR {row['auc_synthetic']:.3f} / {row['auc_real']:.3f}" if "auc_real" in row else "no TSTR"
    print(f"seed {seed}: generated hits {row['hit']:.1%}, control {row['control']:.1%}, untouched "
          f"{row['untouched']:.1%}, {tstr}, {row['slices_per_s']:.1f} slices/s")
    return row


def judge_placement(context: Context, out: Path, links: list[dict], margin: int) -> dict:
    """(b)-(e) on a painted set, each slice against its own source slice."""
    painted = Dataset.load(out)
    sources = {s.id: s for s in context.data.samples}
    source_of = {link["synthetic"]: sources[link["source_sample"]] for link in links}
    tally: dict[str, list] = {"hit": [], "control": [], "dice": [], "untouched": [], "crops": []}
    for start in range(0, len(painted.samples), CHUNK):
        chunk = painted.samples[start:start + CHUNK]
        images = [painted.read(s)[0] for s in chunk]
        originals = [context.data.read(source_of[s.id])[0] for s in chunk]
        for sample, image, original, p_image, p_original in zip(chunk, images, originals, segment(context, images),
                                                                 segment(context, originals)):
            tally_slice(tally, context.rule, sample, painted.read_mask(sample) > 0, image, original, p_image,
                        p_original, margin)
    return {"hit": float(np.mean(tally["hit"])), "control": float(np.mean(tally["control"])),
            "dice": float(np.nanmean(tally["dice"])), "untouched": float(np.mean(tally["untouched"])),
            "crop_l2": lj.mean_pairwise_l2(tally["crops"])}


def tally_slice(tally: dict, rule: lj.HitRule, sample: Sample, mask: np.ndarray, image: np.ndarray,
                original: np.ndarray, p_image: np.ndarray, p_original: np.ndarray, margin: int) -> None:
    far = lj.far_from_boxes(image.shape, sample.boxes, margin)
    tally["untouched"].append(lj.bit_identical(image[far], original[far]))
    box = lj.largest_box(sample.boxes)
    tally["hit"].append(lj.box_hit(p_image, box, rule))
    tally["control"].append(lj.box_hit(p_original, box, rule))
    near = lj.region(sample.boxes, image.shape, margin)
    tally["dice"].append(lj.dice((p_image > rule.threshold) & near, mask & near))
    tally["crops"].append(lj.lesion_crop(image, box))


def train_on_synthetic(context: Context, run: Path, seed: int, folder: Path) -> dict:
    """TSTR: arm A real train split; arm B real non-host negatives + as many painted positives."""
    real_positive = context.labels(context.train)
    n_positive = int(real_positive.sum())
    out, links, seconds = paint(context, run, n_positive, folder / "tstr", "train", seed * 1_000_000 + 500_000)
    hosts = {link["source_sample"] for link in links}
    painted = Dataset.load(out)
    painted_x, _ = lj.load_slices(painted, painted.samples, CLASSIFIER_SIZE)
    negatives = [i for i, s in enumerate(context.train) if not real_positive[i] and s.id not in hosts]
    x_b = torch.cat([context.train_x[negatives], painted_x])
    y_b = torch.cat([torch.zeros(len(negatives), dtype=torch.bool), torch.ones(len(painted_x), dtype=torch.bool)])
    test_y = context.labels(context.test)
    steps = context.args.clf_steps
    arm_a = qm.test_classifier(qm.train_classifier(qm.normalise(context.train_x), real_positive, seed, steps),
                               qm.normalise(context.test_x), test_y)
    arm_b = qm.test_classifier(qm.train_classifier(qm.normalise(x_b), y_b, seed, steps),
                               qm.normalise(context.test_x), test_y)
    return {"auc_real": arm_a["auc"], "auc_synthetic": arm_b["auc"], "auc_ratio": arm_b["auc"] / arm_a["auc"],
            "arm_a": {"positives": n_positive, "negatives": len(context.train) - n_positive, **arm_a},
            "arm_b": {"positives": len(painted_x), "negatives": len(negatives), "hosts": len(hosts), **arm_b},
            "tstr_generate_s": seconds, "test_images": len(test_y), "test_positives": int(test_y.sum())}


def audit(data: Path, synthetic: Path, out: Path) -> float:
    """`pathosynth curate audit` in pixel space (the ImageNet space needs downloaded weights)."""
    command = [str(Path(sys.executable).parent / "pathosynth"), "curate", "audit", "--train", str(data),
               "--synthetic", str(synthetic), "--out", str(out), "--features", "pixel", "--overwrite", "--quiet"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    report = json.loads((out / "audit.json").read_text())
    return float(report.get("summary", report)["synthetic_flag_rate"])


# ---------------------------------------------------------------------------------------- table

COLUMNS = [  # (key, heading, format, worst is the max)
    ("ceiling", "(a) real lesion found (ceiling)", "{:.1%}", False),
    ("hit", "(b) painted lesion found", "{:.1%}", False),
    ("control", "(c) control: source slice", "{:.1%}", True),
    ("dice", "(d) Dice in boxes", "{:.3f}", False),
    ("untouched", "(e) untouched beyond margin", "{:.1%}", False),
    ("auc_real", "TSTR AUC real (A)", "{:.3f}", False),
    ("auc_synthetic", "TSTR AUC painted (B)", "{:.3f}", False),
    ("auc_ratio", "B / A", "{:.3f}", False),
    ("slices_per_s", "slices/s (256 px)", "{:.1f}", False),
    ("diversity_ratio", "lesion diversity painted/real", "{:.2f}", False),
    ("audit_flag_rate", "audit flag rate", "{:.1%}", True),
]


def print_table(rows: list[dict], context: Context) -> dict:
    columns = [c for c in COLUMNS if all(c[0] in row for row in rows)]
    ceiling = context.ceiling["hit_largest"]
    print(f"\n(a) ceiling, real test lesions found: {ceiling:.1%} (every box {context.ceiling['hit_every_box']:.1%}); "
          f"painted sets of {context.args.n} test-split slices, positions {context.args.positions}\n")
    print("| seed | steps | train s | " + " | ".join(c[1] for c in columns) + " |")
    print("| --- | ---: | ---: | " + " | ".join("---:" for _ in columns) + " |")
    for row in rows:
        train_s = "-" if row["train_s"] is None else f"{row['train_s']:.0f}"
        print(f"| {row['seed']} | {row['steps']} | {train_s} | "
              + " | ".join(fmt.format(row[key]) for key, _, fmt, _ in columns) + " |")
    summary = {"mean": {k: float(np.mean([r[k] for r in rows])) for k, *_ in columns},
               "worst": {k: float((max if high else min)(r[k] for r in rows)) for k, _, _, high in columns}}
    for name, values in summary.items():
        print(f"| **{name}** | | | " + " | ".join(fmt.format(values[key]) for key, _, fmt, _ in columns) + " |")
    summary["bars"] = {"untouched_every_seed": summary["worst"]["untouched"] == 1.0}
    verdict = {True: "met", False: "NOT met"}
    print(f"\nbar (e), every pixel beyond the margin untouched on every slice of every seed: "
          f"{verdict[summary['bars']['untouched_every_seed']]}")
    if "auc_ratio" in summary["worst"]:
        summary["bars"]["tstr_ratio_every_seed"] = summary["worst"]["auc_ratio"] >= RATIO_BAR
        print(f"bar TSTR, B / A >= {RATIO_BAR} on every seed: {verdict[summary['bars']['tstr_ratio_every_seed']]} "
              f"(worst {summary['worst']['auc_ratio']:.3f})")
    print(f"placement: painted lesions found in {summary['mean']['hit']:.1%} of boxes (worst seed "
          f"{summary['worst']['hit']:.1%}) against the ceiling {ceiling:.1%}; false hits on the sources "
          f"{summary['worst']['control']:.1%} at most")
    return summary


if __name__ == "__main__":
    main()
