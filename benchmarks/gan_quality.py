"""Does a trained GAN make useful, correctly placed pathology? Two measurements on brain MR at 64 px.

1. Train on synthetic, test on real. The same small CNN (benchmarks/_quality_models.py) is trained
   (a) on the real train split and (b) on the synthetic images only, with class-balanced batches,
   R times with different seeds, and tested on the real test split (--eval-split): ROC AUC,
   sensitivity and specificity at probability 0.5, and AUC_synthetic / AUC_real. Bar: ratio >=
   0.85. The built-in phantom's test split has 6 patients, and a classifier's scores shift from
   patient to patient, so the pooled AUC is noisy; `--eval-split val,test` uses 12. When the
   real-trained classifier is near chance the ratio means nothing, and the table says so.
2. Box placement. For a box-conditioned run's output (rows with the requested `boxes`), the
   fraction of images in which a tumour is found in the requested (largest) box. The detector is
   a small lesion segmenter trained on the real train split's tumour masks, its lesion threshold
   set on the real train split's healthy brains; a box is a hit when >= 8 lesion pixels lie in it
   (grown by 2 px) at >= 3x the lesion density of the rest of the brain. An intensity detector
   (pixels brighter than a threshold calibrated on real healthy brains) is shown beside it; on
   this phantom it misses the many tumours that are dark or faint on T1c, so it is not the judge.
   Both are first checked on held-out real images (val + test splits): true boxes (should be
   high), the box moved to a wrong place and real tumour layouts on healthy images (should be
   low). The generated images are judged with their requested boxes, with the box moved to a
   wrong place, and with another generated image's requested boxes: a generator that puts a
   lesion where tumours usually are, whatever was asked, scores as high on the last as on the
   requested ones, so only the difference is placement on request. Only boxes whose shorter
   side is >= --min-box px are judged: at 64 px most phantom tumour slices are a few pixels
   across and visible to no detector, real or generated (the tables show every size too).
   Bar: >= 80% of the judged generated images.

Usage:
  python benchmarks/gan_quality.py --real DIR --synthetic DIR            # measurement 1
  python benchmarks/gan_quality.py --real DIR --boxed DIR                # measurement 2
  python benchmarks/gan_quality.py --real DIR --synthetic DIR --boxed DIR --json out.json
  python benchmarks/gan_quality.py --end-to-end --real DIR [--work DIR] [--dcgan-steps S] [--pggan-steps S]

--real: a dataset folder (e.g. `pathosynth data phantom brain-mr --out DIR`) with train/val/test
splits; --synthetic / --boxed: folders written by `pathosynth generate`. --end-to-end trains a
class-conditional DCGAN and a box-conditioned PGGAN (CPGGAN) from the CLI (small preset),
generates 2,000 and 500 images, then measures both. Measurement 1 also prints each class's
diversity (pairwise RMS, spread of the head's area) beside the real images': a generator that
makes one image per class can still pass a classifier test by luck, not this check.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _quality_models as qm  # noqa: E402  (the helper beside this file)

from pathosynth.data.dataset import Dataset  # noqa: E402
from pathosynth.errors import UserError  # noqa: E402
from pathosynth.runtime import cpu_name  # noqa: E402

BAR_RATIO = 0.85
BAR_HITS = 0.80
NEAR_CHANCE_AUC = 0.65  # below this the real baseline is too weak for the ratio to mean anything
TRUSTED_DETECTOR = (0.70, 0.15)  # on real images: at least this many true-box hits, at most this many false


def positive_class(dataset: Dataset, name: str | None) -> str:
    """--positive, else the class whose images carry boxes (tumour), else the last class."""
    classes = dataset.info.classes
    if name:
        if name not in classes:
            raise UserError(f"{dataset.root}: no class '{name}'; its classes are {', '.join(classes)}")
        return name
    boxed = [s.label for s in dataset.samples if s.boxes]
    return max(set(boxed), key=boxed.count) if boxed else classes[-1]


def _passed(value: float, bar: float) -> str:
    return "PASS" if value >= bar else "FAIL"


# ------------------------------------------------------------------- 1: synthetic vs real


def measure_classification(real_dir: Path, synthetic_dir: Path, args) -> dict:
    start = time.perf_counter()
    real, synthetic = Dataset.load(real_dir), Dataset.load(synthetic_dir)
    positive = positive_class(real, args.positive)
    splits = [name.strip() for name in args.eval_split.split(",") if name.strip()]
    train_samples = real.select(split="train")
    test_samples = [s for s in real.samples if s.split in splits]
    if not train_samples or not test_samples:
        raise UserError(f"{real_dir}: needs a train split and a {' or '.join(splits)} split")
    synthetic_samples = synthetic.samples
    synthetic_labels = {s.label for s in synthetic_samples}
    if positive not in synthetic_labels or len(synthetic_labels) < 2:
        raise UserError(f"{synthetic_dir}: the synthetic set holds only {', '.join(sorted(synthetic_labels))}; "
                        f"generate every class (`pathosynth generate RUN --n N` without --label)")
    train = qm.load_images(real, train_samples, args.size)
    test = qm.load_images(real, test_samples, args.size)
    fake = qm.load_images(synthetic, synthetic_samples, args.size)
    if args.blur_synthetic:
        fake = qm.blurred(fake, args.blur_synthetic)
    load_seconds = time.perf_counter() - start

    def is_positive(images: qm.Images) -> torch.Tensor:
        return torch.tensor([label == positive for label in images.labels])

    test_y = is_positive(test)
    runs = {"real": [], "synthetic": []}
    seconds = {"real": 0.0, "synthetic": 0.0}
    for repeat in range(args.repeats):
        for name, images in (("real", train), ("synthetic", fake)):
            tick = time.perf_counter()
            model = qm.train_classifier(images.x, is_positive(images), seed=args.seed + repeat,
                                        steps=args.classifier_steps)
            result = qm.test_classifier(model, test.x, test_y)
            seconds[name] += time.perf_counter() - tick
            runs[name].append({"seed": args.seed + repeat, **result})
    ratios = [s["auc"] / r["auc"] for r, s in zip(runs["real"], runs["synthetic"])]
    diversity = {f"{source} {label}": qm.diversity(images.x[torch.tensor([name == label for name in images.labels])])
                 for source, images in (("real", train), ("synthetic", fake))
                 for label in sorted(set(train.labels))
                 if label in images.labels}
    return {
        "real": str(real_dir), "synthetic": str(synthetic_dir), "positive": positive, "size": args.size,
        "classifier_steps": args.classifier_steps, "repeats": args.repeats,
        "blur_synthetic": args.blur_synthetic,
        "threshold": "probability 0.5 (logit 0; balanced batches)",
        "train_images": {"real": len(train.labels), "synthetic": len(fake.labels)},
        "train_positive": {"real": int(is_positive(train).sum()), "synthetic": int(is_positive(fake).sum())},
        "eval_split": splits, "test_images": len(test.labels), "test_positive": int(test_y.sum()),
        "test_patients": len(set(test.patients)),
        "runs": runs, "auc_ratio": ratios, "diversity": diversity,
        "seconds": {"load": load_seconds, **seconds, "total": time.perf_counter() - start},
    }


def print_classification(result: dict) -> None:
    print(f"\n### 1. Train on synthetic, test on real ({result['size']} px, real {'+'.join(result['eval_split'])} "
          f"split: {result['test_images']} slices, {result['test_positive']} {result['positive']}, "
          f"{result['test_patients']} patients)\n")
    if result["blur_synthetic"]:
        print(f"DIAGNOSTIC: the synthetic images were blurred (Gaussian, sigma {result['blur_synthetic']:g} px) "
              "before training; not a quality figure.\n")
    print(f"Small CNN, {result['classifier_steps']} steps of balanced batches, {result['repeats']} seeds; "
          f"sensitivity/specificity at {result['threshold']}.\n")
    print("| trained on | images (positive) | AUC mean | AUC min | sensitivity | specificity | train+test s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in ("real", "synthetic"):
        runs = result["runs"][name]
        aucs = [r["auc"] for r in runs]
        label = "real train split" if name == "real" else "synthetic only"
        print(f"| {label} | {result['train_images'][name]} ({result['train_positive'][name]}) | "
              f"{np.mean(aucs):.3f} | {min(aucs):.3f} | {np.mean([r['sensitivity'] for r in runs]):.2f} | "
              f"{np.mean([r['specificity'] for r in runs]):.2f} | {result['seconds'][name]:.0f} |")
    ratios = result["auc_ratio"]
    print(f"\nAUC_synthetic / AUC_real: mean {np.mean(ratios):.3f}, min {min(ratios):.3f} "
          f"(per seed: {', '.join(f'{r:.3f}' for r in ratios)}); bar >= {BAR_RATIO}: "
          f"{_passed(min(ratios), BAR_RATIO)} (on the min)")
    print("\nDiversity (a mode-collapse check; synthetic far below real means collapse):\n")
    print("| images | pairwise RMS | head-area std |\n| --- | ---: | ---: |")
    for name, values in result["diversity"].items():
        print(f"| {name} | {values['pairwise_rms']:.3f} | {values['head_area_std']:.4f} |")
    real_auc = np.mean([r["auc"] for r in result["runs"]["real"]])
    if real_auc < NEAR_CHANCE_AUC:
        print(f"\nWARNING: the classifier trained on real images reaches only AUC {real_auc:.3f} here (below "
              f"{NEAR_CHANCE_AUC}): a weak baseline, so the ratio says little (try --eval-split val,test for more "
              "patients, or more data)")


# ----------------------------------------------------------------------- 2: box placement


def _judge(index: int, boxes: list[list[float]], lesions: dict, rule: qm.HitRule,
           brain: np.ndarray) -> dict[str, bool]:
    """Each detector's verdict on image `index`: a lesion in the largest of `boxes`?"""
    box = qm.largest_box(boxes)
    return {name: qm.box_hit(maps[index], brain, box, boxes, rule) for name, maps in lesions.items()}


def _lesion_maps(images: qm.Images, segmenter, thresholds: dict, brains: list[np.ndarray]) -> dict:
    probability = qm.tumour_probability(segmenter, images.x)
    raw = images.raw[:, 0].numpy()
    return {"segmenter": np.stack([(probability[i] > thresholds["segmenter"]) & brains[i] for i in range(len(raw))]),
            "intensity": np.stack([qm.bright_lesion(raw[i], brains[i], thresholds["intensity"])
                                   for i in range(len(raw))])}


def _rates(rows: list[dict], min_box: float) -> dict:
    """Hit rates among rows whose largest box is >= min_box px (`judged`) and among all rows."""
    out = {}
    for scope, chosen in (("judged", [r for r in rows if r["side"] >= min_box]), ("all", rows)):
        out[scope] = {"n": len(chosen)}
        for detector in ("segmenter", "intensity"):
            out[scope][detector] = float(np.mean([r[detector] for r in chosen])) if chosen else float("nan")
    return out


def measure_boxes(real_dir: Path, boxed_dir: Path, args) -> dict:
    start = time.perf_counter()
    rule = qm.HitRule(dilate=args.dilate)
    real, boxed = Dataset.load(real_dir), Dataset.load(boxed_dir)
    positive = positive_class(real, args.positive)
    train = qm.load_images(real, real.select(split="train"), args.size, masks=True)
    held_out = [s for s in real.samples if s.split in ("val", "test")]
    if not held_out:
        raise UserError(f"{real_dir}: needs a val or test split to check the detector on")
    check = qm.load_images(real, held_out, args.size)
    generated_samples = [s for s in boxed.samples if s.boxes]
    if not generated_samples:
        raise UserError(f"{boxed_dir}: no row has boxes; generate with a box-conditioned run "
                        "(`pathosynth train --model pggan --boxes`, then `pathosynth generate RUN --label tumour`)")
    generated = qm.load_images(boxed, generated_samples, args.size)
    load_seconds = time.perf_counter() - start

    # The detectors: a segmenter learned from the real train split's masks, and an intensity
    # threshold from its healthy brains. Neither ever sees the held-out patients or a GAN image.
    tick = time.perf_counter()
    segmenter = qm.train_segmenter(train.x, train.masks, seed=args.seed, steps=args.segmenter_steps)
    train_brains = [qm.brain_mask(image) for image in train.raw[:, 0].numpy()]
    train_healthy = [i for i, label in enumerate(train.labels) if label != positive]
    thresholds = {"segmenter": qm.probability_threshold(qm.tumour_probability(segmenter, train.x), train_brains,
                                                        train_healthy),
                  "intensity": qm.bright_threshold(train.raw[:, 0].numpy(), train_healthy)}
    detector_seconds = time.perf_counter() - tick

    tick = time.perf_counter()
    check_brains = [qm.brain_mask(image) for image in check.raw[:, 0].numpy()]
    check_lesions = _lesion_maps(check, segmenter, thresholds, check_brains)
    rng = np.random.default_rng(args.seed)
    tumour = [i for i, label in enumerate(check.labels) if label == positive and check.boxes[i]]
    healthy = [i for i, label in enumerate(check.labels) if label != positive]
    true_rows, moved_rows, healthy_rows = [], [], []
    for i in tumour:
        boxes, brain = check.boxes[i], check_brains[i]
        side = qm.box_side(qm.largest_box(boxes))
        true_rows.append({"side": side, **_judge(i, boxes, check_lesions, rule, brain)})
        moved = qm.moved_box(qm.largest_box(boxes), qm.box_region(boxes, args.size, rule.dilate), brain, rng)
        if moved is not None:  # the detector knows only the moved box, as it knows only a requested one
            moved_rows.append({"side": side, **_judge(i, [moved], check_lesions, rule, brain)})
        if healthy:  # the same layout on a healthy brain
            j = healthy[int(rng.integers(len(healthy)))]
            healthy_rows.append({"side": side, **_judge(j, boxes, check_lesions, rule, check_brains[j])})
    check_seconds = time.perf_counter() - tick

    tick = time.perf_counter()
    generated_brains = [qm.brain_mask(image) for image in generated.raw[:, 0].numpy()]
    generated_lesions = _lesion_maps(generated, segmenter, thresholds, generated_brains)
    generated_rows, generated_moved, generated_other = [], [], []
    judged = [i for i, boxes in enumerate(generated.boxes) if qm.box_side(qm.largest_box(boxes)) >= args.min_box]
    for i, sample in enumerate(generated_samples):
        boxes, brain = generated.boxes[i], generated_brains[i]
        side = qm.box_side(qm.largest_box(boxes))
        generated_rows.append({"id": sample.id, "side": side,
                               **_judge(i, boxes, generated_lesions, rule, brain)})
        moved = qm.moved_box(qm.largest_box(boxes), qm.box_region(boxes, args.size, rule.dilate), brain, rng)
        if moved is not None:
            generated_moved.append({"side": side, **_judge(i, [moved], generated_lesions, rule, brain)})
        # the same judged images, with a judged-size layout that was requested for another image
        other = None
        if side >= args.min_box:
            other = qm.other_layout(i, generated.boxes, judged, args.size, rule.dilate, rng)
        if other is not None:
            generated_other.append({"side": side, **_judge(i, other, generated_lesions, rule, brain)})
    return {
        "real": str(real_dir), "boxed": str(boxed_dir), "positive": positive, "size": args.size,
        "min_box": args.min_box, "rule": vars(rule), "thresholds": thresholds,
        "segmenter_steps": args.segmenter_steps,
        "check_patients": len(set(check.patients)),
        "real_true_boxes": _rates(true_rows, args.min_box),
        "real_moved_boxes": _rates(moved_rows, args.min_box),
        "real_healthy_with_tumour_layouts": _rates(healthy_rows, args.min_box),
        "generated": _rates(generated_rows, args.min_box),
        "generated_moved_boxes": _rates(generated_moved, args.min_box),
        "generated_other_layout": _rates(generated_other, args.min_box),
        "generated_images": len(boxed.samples), "generated_without_boxes": len(boxed.samples) - len(generated_samples),
        "generated_rows": generated_rows,
        "seconds": {"load": load_seconds, "detectors": detector_seconds, "real_check": check_seconds,
                    "generated": time.perf_counter() - tick, "total": time.perf_counter() - start},
    }


def print_boxes(result: dict) -> None:
    print(f"\n### 2. Box placement ({result['size']} px; judged: largest requested box >= "
          f"{result['min_box']:g} px on its shorter side)\n")
    rule = result["rule"]
    print(f"Hit: >= {rule['min_pixels']} lesion pixels in the largest box grown by {rule['dilate']} px, at >= "
          f"{rule['enrichment']:g}x the lesion density of the rest of the brain. Detectors: segmenter (small FCN "
          f"trained {result['segmenter_steps']} steps on the real train split's masks; lesion: p > "
          f"{result['thresholds']['segmenter']:.2f}, the 99.99th percentile of real healthy brains) and intensity "
          f"(> {result['thresholds']['intensity']:.2f}x the brain's 75th percentile, the 99.5th percentile of "
          f"real healthy brains). Real rows: held-out val + test splits ({result['check_patients']} patients).\n")
    print("| images | boxes | judged n | segmenter hits | intensity hits | all sizes n | segmenter | intensity |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = (("real tumour", "true boxes", "real_true_boxes"),
            ("real tumour", "moved to a wrong place", "real_moved_boxes"),
            ("real healthy", "a real tumour layout", "real_healthy_with_tumour_layouts"),
            ("generated", "requested", "generated"),
            ("generated", "moved to a wrong place", "generated_moved_boxes"),
            ("generated", "another generated image's", "generated_other_layout"))
    for images, boxes, key in rows:
        judged, every = result[key]["judged"], result[key]["all"]
        print(f"| {images} | {boxes} | {judged['n']} | {judged['segmenter']:.0%} | {judged['intensity']:.0%} | "
              f"{every['n']} | {every['segmenter']:.0%} | {every['intensity']:.0%} |")
    hits = result["generated"]["judged"]["segmenter"]
    other = result["generated_other_layout"]["judged"]["segmenter"]
    print(f"\nGenerated images with a tumour in the requested box (segmenter, judged boxes): {hits:.0%} of "
          f"{result['generated']['judged']['n']}; bar >= {BAR_HITS:.0%}: {_passed(hits, BAR_HITS)}"
          + (f" ({result['generated_without_boxes']} rows without boxes not counted)"
             if result["generated_without_boxes"] else ""))
    found = result["real_true_boxes"]["judged"]["segmenter"]
    false = max(result["real_moved_boxes"]["judged"]["segmenter"],
                result["real_healthy_with_tumour_layouts"]["judged"]["segmenter"])
    if found < TRUSTED_DETECTOR[0] or false > TRUSTED_DETECTOR[1]:
        print(f"WARNING: on real images the segmenter finds {found:.0%} of tumours in their boxes and hits {false:.0%} "
              "of wrong boxes; it is not a trustworthy judge here (train it longer: --segmenter-steps)")
    print(f"Placement check: the same images judged with another image's requested boxes hit {other:.0%}; "
          "only the difference to the requested-box rate is placement on request (the rest is lesions "
          "that land where tumours usually are, or a detector that sees tumour there).")


# ---------------------------------------------------------------------------- end to end


def _pathosynth(*arguments: str) -> float:
    """Run one CLI verb in a subprocess; stop with its error output if it fails."""
    command = [sys.executable, "-m", "pathosynth", *arguments]
    print("$ pathosynth " + " ".join(arguments), flush=True)
    tick = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.stderr.write(done.stdout[-3000:] + done.stderr[-3000:])
        raise SystemExit(f"`pathosynth {' '.join(arguments)}` failed with exit status {done.returncode}")
    return time.perf_counter() - tick


def end_to_end(real_dir: Path, work: Path, args) -> tuple[Path, Path, dict]:
    dcgan, synthetic = work / "run-dcgan", work / "synthetic"
    cpggan, boxed = work / "run-cpggan", work / "boxed"
    seconds = {}
    dcgan_steps = ["--steps", str(args.dcgan_steps)] if args.dcgan_steps else []
    pggan_steps = (["--steps", str(args.pggan_steps)] if args.pggan_steps else []) + \
        (["--phase-steps", str(args.pggan_phase_steps)] if args.pggan_phase_steps else [])
    positive = positive_class(Dataset.load(real_dir), args.positive)
    seconds["train_dcgan"] = _pathosynth("train", "--model", "dcgan", "--classes", "conditional", "--data",
                                         str(real_dir), "--out", str(dcgan), *dcgan_steps, "--quiet")
    seconds["generate_synthetic"] = _pathosynth("generate", str(dcgan), "--n", str(args.n_synthetic),
                                                "--out", str(synthetic), "--quiet")
    seconds["train_cpggan"] = _pathosynth("train", "--model", "pggan", "--boxes", "--data", str(real_dir),
                                          "--out", str(cpggan), *pggan_steps, "--quiet")
    seconds["generate_boxed"] = _pathosynth("generate", str(cpggan), "--n", str(args.n_boxed), "--label", positive,
                                            "--out", str(boxed), "--quiet")
    return synthetic, boxed, seconds


# ----------------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--real", type=Path, required=True, help="real dataset folder (train/val/test splits)")
    parser.add_argument("--synthetic", type=Path, help="synthetic dataset folder (every class) for measurement 1")
    parser.add_argument("--boxed", type=Path, help="box-conditioned synthetic dataset folder for measurement 2")
    parser.add_argument("--end-to-end", action="store_true",
                        help="train, generate and measure from the CLI (ignores --synthetic/--boxed)")
    parser.add_argument("--work", type=Path, help="--end-to-end: keep runs and generated sets here "
                                                  "(default: a temporary folder, removed)")
    parser.add_argument("--dcgan-steps", type=int, help="--end-to-end: DCGAN steps (default: small preset)")
    parser.add_argument("--pggan-steps", type=int, help="--end-to-end: CPGGAN steps (default: small preset)")
    parser.add_argument("--pggan-phase-steps", type=int, help="--end-to-end: CPGGAN steps per growing phase")
    parser.add_argument("--n-synthetic", type=int, default=2000)
    parser.add_argument("--n-boxed", type=int, default=500)
    parser.add_argument("--positive", help="the pathological class (default: the class with boxes)")
    parser.add_argument("--size", type=int, default=64, help="image size the judges work at (px)")
    parser.add_argument("--repeats", type=int, default=3, help="classifier seeds")
    parser.add_argument("--classifier-steps", type=int, default=1000)
    parser.add_argument("--eval-split", default="test",
                        help="real split(s) the classifiers are tested on, comma-separated (e.g. val,test)")
    parser.add_argument("--blur-synthetic", type=float, default=0.0, metavar="SIGMA",
                        help="diagnostic: blur the synthetic images (Gaussian, px at --size) before measurement 1, "
                             "to see how much of the gap to real is high-frequency texture")
    parser.add_argument("--segmenter-steps", type=int, default=600)
    parser.add_argument("--min-box", type=float, default=8.0,
                        help="judge boxes whose shorter side is at least this many px (at --size)")
    parser.add_argument("--dilate", type=int, default=2, help="grow requested boxes by this many px")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the judges")
    parser.add_argument("--json", type=Path, help="write the raw numbers here")
    args = parser.parse_args()
    if not (args.end_to_end or args.synthetic or args.boxed):
        parser.error("give --synthetic and/or --boxed, or --end-to-end")
    torch.set_num_threads(args.threads)

    results: dict = {"machine": {"cpu": cpu_name(), "cpus": os.cpu_count(), "python": platform.python_version(),
                                 "torch": torch.__version__, "threads": args.threads}}
    try:
        with tempfile.TemporaryDirectory(prefix="gan-quality-") as scratch:
            if args.end_to_end:
                work = args.work or Path(scratch)
                work.mkdir(parents=True, exist_ok=True)
                args.synthetic, args.boxed, results["end_to_end_seconds"] = end_to_end(args.real, work, args)
            if args.synthetic:
                results["classification"] = measure_classification(args.real, args.synthetic, args)
            if args.boxed:
                results["boxes"] = measure_boxes(args.real, args.boxed, args)
    except UserError as error:
        raise SystemExit(f"error: {error}") from None

    machine = results["machine"]
    print(f"\nmachine: {machine['cpu']}, {machine['cpus']} cpus, Python {machine['python']}, "
          f"torch {machine['torch']} ({machine['threads']} threads for the judges)")
    if "end_to_end_seconds" in results:
        print("\n| end-to-end step | seconds |\n| --- | ---: |")
        for step, seconds in results["end_to_end_seconds"].items():
            print(f"| {step.replace('_', ' ')} | {seconds:.0f} |")
    if "classification" in results:
        print_classification(results["classification"])
    if "boxes" in results:
        print_boxes(results["boxes"])
    timings = {name: results[name]["seconds"] for name in ("classification", "boxes") if name in results}
    print("\nseconds: " + "; ".join(f"{name}: " + ", ".join(f"{k} {v:.0f}" for k, v in parts.items())
                                    for name, parts in timings.items()))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
