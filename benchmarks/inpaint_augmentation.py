"""Does lesion inpainting help a tumour classifier in the low-data regime? (issue 17's augmentation bar)

For each seed S, on one glioma phantom (100 patients split 0.3/0.1/0.6 as the demo's: 60 test
patients):
1. the 2D lesion inpainter trains (`small` preset, --steps) on 8 training patients drawn with S;
2. it paints 1,200 slices into those patients' lesion-free slices: lesions at real layouts with the
   papers' jitter, and, in the real training class balance, healthy tissue into the same kind of
   boxes (the non-tumour class: a classifier cannot learn "painted" as "tumour");
3. `evaluate classify` (the issue-15 experiment: `small` preset, 3 repeats, the same 8 patients)
   trains real / classic / inpainting / classic + inpainting / synthetic-only classifiers and
   tests them on the 60 test patients.
It prints per seed: the real-only test AUC (the judge's competence), classic vs classic + inpainting
(ROC AUC and sensitivity at the specificity fixed on validation, paired patient-bootstrap 95%
intervals, the same interval widened by training noise, and the smallest difference the test split
detects at 80% power), and the train-on-synthetic ratio (synthetic-only AUC / real AUC); then the
experiment's own headline sentence. Each seed is one demo experiment (`pathosynth demo --seed S`
runs the same steps on a phantom built with S).

Usage: OMP_NUM_THREADS=1 python benchmarks/inpaint_augmentation.py --work W [--data BRAIN] [--seeds 0,1,2]
           [--steps 600] [--threads 1] [--json FILE]
Finished runs, painted sets and experiments under W are reused, so a cut-short run resumes. Runs the
seeds one after another; start one process per seed (--seeds S) to use more cores.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from datetime import datetime
from pathlib import Path

import torch

from pathosynth.config import make_config
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.splits import SplitPlan
from pathosynth.demo import DEMO_BRAIN_SPLIT, DEMO_PATIENTS, TRAIN_PATIENTS
from pathosynth.demo.lesions import IMAGES, STEPS, healthy_share
from pathosynth.demo.runs import train_or_resume
from pathosynth.evaluate.classify import classify
from pathosynth.evaluate.classify_headline import headline_sentences
from pathosynth.generate import generate
from pathosynth.runtime import cpu_name

REPEATS = 3


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the phantom, runs and experiments")
    parser.add_argument("--data", type=Path, help="glioma phantom folder (default: the demo's, built into --work)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=STEPS, help="inpainter training steps (the demo's default)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    brain = args.data or build_data(args.work)
    rows = [one_seed(brain, args.work, int(s), args) for s in args.seeds.split(",")]
    print_table(rows, args)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")


def build_data(work: Path) -> Path:
    out = work / "brain-mr"
    if not (out / "dataset.json").is_file():
        build_phantom("brain-mr", out, seed=0, patients=DEMO_PATIENTS["brain-mr"], plan=SplitPlan(DEMO_BRAIN_SPLIT, 0),
                      overwrite=True, progress=False)
    return out


def one_seed(brain: Path, work: Path, seed: int, args: argparse.Namespace) -> dict:
    folder = work / f"seed{seed}"
    run_dir, painted, experiment = folder / "run", folder / "painted", folder / "classify"
    timing = {}
    started = time.perf_counter()
    config = make_config("inpaint2d", "small", data=str(brain), seed=seed, steps=args.steps,
                         train_patients=TRAIN_PATIENTS, subset_seed=seed)
    train_or_resume(config, run_dir, progress=False)
    timing["train_s"] = time.perf_counter() - started
    share = healthy_share(brain, TRAIN_PATIENTS, seed)
    if not (painted / "dataset.json").is_file():
        started = time.perf_counter()
        generate(run_dir, IMAGES, painted, seed=seed, healthy=share, overwrite=True, progress=False)
        timing["paint_s"] = time.perf_counter() - started
    if not (experiment / "results.json").is_file():
        started = time.perf_counter()
        classify(brain, [painted], experiment, preset="small", repeats=REPEATS, seed=seed,
                 train_patients=TRAIN_PATIENTS, subset_seed=seed, progress=False)
        timing["classify_s"] = time.perf_counter() - started
    results = json.loads((experiment / "results.json").read_text())
    return summarise(seed, results, share, timing)


def summarise(seed: int, results: dict, share: float, timing: dict) -> dict:
    group = next(g for g in results["groups"] if not g.get("pretrained"))
    rows = {row["kind"]: row for row in group["rows"]}
    auc = {kind: row["metrics"]["roc_auc"]["mean"] for kind, row in rows.items()}
    both = rows["classic+gan"]["difference_vs_classic"]
    return {"seed": seed, "test_patients": results["test"]["patients"], "healthy_share": share,
            "auc": auc, "competent": group["competence"]["competent"],
            "tstr_ratio": auc.get("synthetic-only", float("nan")) / auc["real"],
            "classic_plus_inpainting_vs_classic": {metric: {k: both[metric][k] for k in
                                                            ("mean", "low", "high", "robust_low", "robust_high", "mdd")}
                                                   for metric in ("roc_auc", "sensitivity_at_fixed_specificity")},
            "headline": headline_sentences(results), "notes": results.get("notes", []), "timing": timing}


def _interval(d: dict, scale: float = 1.0, digits: int = 3) -> str:
    return (f"{d['mean'] * scale:+.{digits}f} [{d['low'] * scale:+.{digits}f}, {d['high'] * scale:+.{digits}f}]; "
            f"with training noise [{d['robust_low'] * scale:+.{digits}f}, {d['robust_high'] * scale:+.{digits}f}]; "
            f"detects {d['mdd'] * scale:.{digits}f}")


def print_table(rows: list[dict], args: argparse.Namespace) -> None:
    print(f"\n{datetime.now():%Y-%m-%d %H:%M}, {cpu_name()}, {platform.machine()}, {args.threads} torch thread(s), "
          f"inpainter {args.steps} steps, {TRAIN_PATIENTS} training patients, {REPEATS} repeats per setup\n")
    print("| seed | test patients | AUC real / classic / inpainting / classic+inpainting / synthetic-only | "
          "TSTR ratio | classic+inpainting - classic: ROC AUC | sensitivity at fixed specificity (points) |")
    print("| --- | ---: | --- | ---: | --- | --- |")
    for row in rows:
        auc = row["auc"]
        aucs = " / ".join(f"{auc.get(k, float('nan')):.3f}"
                          for k in ("real", "classic", "gan", "classic+gan", "synthetic-only"))
        diff = row["classic_plus_inpainting_vs_classic"]
        print(f"| {row['seed']} | {row['test_patients']} | {aucs}{'' if row['competent'] else ' (judge not competent)'}"
              f" | {row['tstr_ratio']:.3f} | {_interval(diff['roc_auc'])} | "
              f"{_interval(diff['sensitivity_at_fixed_specificity'], 100.0, 1)} |")
    for row in rows:
        print(f"\nseed {row['seed']} ({', '.join(f'{k} {v:.0f} s' for k, v in row['timing'].items()) or 'reused'}):")
        for sentence in row["headline"]:
            print(f"  {sentence}")


if __name__ == "__main__":
    sys.exit(main())
