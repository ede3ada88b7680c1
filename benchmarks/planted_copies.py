"""A planted "one image repeated" synthetic set must never read as a gain (issue 15's bar).

Takes a real 2D two-class set (the demo's `demo-output/brain-mr`), picks one tumour and one
non-tumour image of the training patients the experiment uses (`--train-patients`, drawn with
`--subset-seed` as `evaluate classify` draws them), and writes a synthetic set holding only copies
of those two images, in the real training class balance, marked synthetic with a GAN run as its
provenance (the demo's `runs/brain-dcgan`, trained on the same patients). Then it runs
`pathosynth evaluate classify` (real, classic, gan, classic+gan) exactly as the demo does and
prints the diversity check, the primary differences and the headline.

Usage: python benchmarks/planted_copies.py --real demo-output/brain-mr --run demo-output/runs/brain-dcgan
           [--train-patients 10] [--subset-seed 0] [--images 1000] [--repeats 2] [--seed 0] [--out DIR]
About 3 minutes on a 2-core machine for the demo's set.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from pathosynth.data.dataset import DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage
from pathosynth.data.splits import SplitPlan
from pathosynth.evaluate.classify_data import load_real
from pathosynth.evaluate.classify_headline import headline_sentences
from pathosynth.runtime import cpu_name


def write_planted_set(real_path: Path, run: Path, out: Path, images: int, train_patients: int | None,
                      subset_seed: int) -> dict:
    """Copies of one tumour and one non-tumour training image, in the training class balance."""
    real = load_real(real_path, train_patients=train_patients, subset_seed=subset_seed)
    train = real.splits["train"]
    positive = next(s for s in train if s.label == real.positive)
    negative = next(s for s in train if s.label == real.negative)
    share = sum(s.label == real.positive for s in train) / len(train)
    n_positive = round(images * share)
    info = DatasetInfo(name=out.name, modality=real.dataset.info.modality, dimensionality=2,
                       classes=real.dataset.info.classes, channels=real.dataset.info.channels,
                       intensity_unit=real.dataset.info.intensity_unit,
                       source={"synthetic": True, "generator": "planted copies", "run": str(run)})
    with DatasetWriter(out, info) as writer:
        for i in range(images):
            chosen = positive if i < n_positive else negative
            array = real.dataset.read(chosen)[0]
            writer.add(Sample(id=f"synthetic-{i:05d}", patient_id=f"synthetic-{i:05d}", image="",
                              label=chosen.label, split="train",
                              synthetic={"model": "planted", "seed": i, "run": str(run)}),
                       MedicalImage(np.asarray(array, dtype=np.float32), (1.0, 1.0)))
        writer.commit(SplitPlan())
    return {"positive": positive.id, "negative": negative.id, "images": images, "positive_images": n_positive}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--run", type=Path, required=True, help="the GAN run named as the set's provenance")
    parser.add_argument("--train-patients", type=int, default=10)
    parser.add_argument("--subset-seed", type=int, default=0)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="keep the planted set and the experiment here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pathosynth-planted-") as scratch:
        root = args.out or Path(scratch)
        root.mkdir(parents=True, exist_ok=True)
        planted = root / "planted-copies"
        picked = write_planted_set(args.real, args.run, planted, args.images, args.train_patients, args.subset_seed)
        started = time.perf_counter()
        command = [sys.executable, "-m", "pathosynth", "evaluate", "classify", "--real", str(args.real),
                   "--synthetic", str(planted), "--setups", "real,classic,gan,classic+gan", "--repeats",
                   str(args.repeats), "--seed", str(args.seed), "--train-patients", str(args.train_patients),
                   "--subset-seed", str(args.subset_seed), "--out", str(root / "classify"), "--overwrite", "--quiet"]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - started
        results = json.loads((root / "classify" / "results.json").read_text())
    print(f"# planted copies: {platform.node()}, {cpu_name()}; {time.strftime('%Y-%m-%d %H:%M')}; "
          f"classify {wall:.0f} s wall")
    print(f"planted: {picked['images']} images = copies of {picked['positive']} ({picked['positive_images']}) "
          f"and {picked['negative']}")
    diversity = results["synthetic_diversity"]["planted-copies"]
    print(f"diversity: {diversity['distinct_images']} distinct of {diversity['images']}, spread "
          f"x{diversity['spread_ratio']:.2f}, collapsed: {diversity['collapsed']}")
    group = results["groups"][0]
    print(f"real-only test AUC {group['competence']['real_auc']:.3f}; test patients {results['test']['patients']}")
    print("\n| setup | vs | Δ ROC AUC (95% interval) [runs] | Δ sensitivity at fixed specificity (points) [runs] |")
    print("| --- | --- | ---: | ---: |")
    for row in group["rows"]:
        for key, baseline in (("difference_vs_real", "real"), ("difference_vs_classic", "classic")):
            if row.get(key):
                print(f"| {row['setup']} | {baseline} | {_cell(row[key]['roc_auc'], 1, 3)} | "
                      f"{_cell(row[key]['sensitivity_at_fixed_specificity'], 100, 1)} |")
    print()
    for sentence in headline_sentences(results):
        print(sentence)
    return 0


def _cell(metric: dict, scale: float, digits: int) -> str:
    runs = ", ".join(f"{v * scale:+.{digits}f}" for v in metric.get("runs", []))
    return (f"{metric['mean'] * scale:+.{digits}f} ({metric['low'] * scale:+.{digits}f} to "
            f"{metric['high'] * scale:+.{digits}f}) [{runs}]")


if __name__ == "__main__":
    sys.exit(main())
