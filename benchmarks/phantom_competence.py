"""Can the built-in brain sets answer the papers' questions? The competence benchmark of issue 15.

1. The glioma set (`pathosynth data phantom brain-mr`, the classification task): the `small`
   real-only classifier of `pathosynth evaluate classify` (MONAI ResNet-10, widths 8-64, 64 px,
   `evaluate/classifiers.py` `fit`/`predict`, images prepared by `evaluate/classify_data.py`
   exactly as `evaluate classify` does) is trained on the train split, selected on val and tested
   on test, once per seed (seed r is `evaluate classify --seed 0`'s repeat r). The bar: ROC AUC
   >= 0.90 for every seed. Then the low-data regime: the same, trained on K seeded training
   patients only (the rest of the train split unused), where sensitivity must keep headroom.
2. The metastasis set (`pathosynth data phantom brain-metastases`, the detection task): boxes and
   masks per slice, their agreement, and the lesion size distribution (box side at 256 px and at
   64 px, lesions per slice).

3. Texture: tissue contrasts and noise of the phantom's T1c against published values for real MR
   (no real MR is available offline), measured on the raw volumes with the phantom's own tissue map.

Usage: python benchmarks/phantom_competence.py [--patients 100] [--split 0.5,0.1,0.4] [--seeds 3]
           [--low-data 4] [--glioma DIR] [--metastases DIR] [--metastasis-patients 40] [--threads 1]
Without --glioma/--metastases the sets are built (seed 0) in a temporary folder and timed. The
default glioma set (100 patients: 50 train, 10 val, 40 test) is the size the demo needs for a
test split of 40 patients; `--patients 40 --split 0.7,0.15,0.15` is `pathosynth data phantom
brain-mr`'s default. About 10 minutes on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage
from sklearn.metrics import roc_auc_score

from pathosynth.data.dataset import Dataset
from pathosynth.data.phantoms import build_phantom
from pathosynth.data.readers import read_image
from pathosynth.data.splits import SplitPlan, parse_ratios
from pathosynth.evaluate.classifiers import fit, get_settings, predict
from pathosynth.evaluate.classify_data import load_images, load_real
from pathosynth.runtime import configure_torch_threads, cpu_name

AUC_BAR = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--patients", type=int, default=100, help="glioma patients to build")
    parser.add_argument("--split", default="0.5,0.1,0.4", help="train,val,test patient ratios of the glioma set")
    parser.add_argument("--metastasis-patients", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3, help="classifier seeds (evaluate classify's repeats)")
    parser.add_argument("--low-data", type=int, default=4, help="training patients of the low-data rows (0: none)")
    parser.add_argument("--glioma", type=Path, help="an existing glioma set instead of building one")
    parser.add_argument("--metastases", type=Path, help="an existing metastasis set instead of building one")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: the same numbers on any load)")
    args = parser.parse_args()
    configure_torch_threads(args.threads)
    cpu_before, started = _cpu_seconds(), time.perf_counter()
    print(f"machine: {cpu_name()}, {os.cpu_count()} cpus, Python {platform.python_version()}, torch "
          f"{torch.__version__}, {args.threads} torch thread(s); {datetime.now():%Y-%m-%d %H:%M}; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"command: {' '.join(sys.argv)}\n")
    with tempfile.TemporaryDirectory(prefix="phantom-competence-") as scratch:
        glioma = args.glioma or _build("brain-mr", Path(scratch) / "glioma", args.patients, parse_ratios(args.split))
        describe_gliomas(glioma)
        classification(glioma, args.seeds, args.low_data)
        metastases = args.metastases or _build("brain-metastases", Path(scratch) / "mets", args.metastasis_patients)
        detection(metastases)
        texture(Path(scratch) / "texture")
    wall = time.perf_counter() - started
    others = max(0.0, (_cpu_seconds() - cpu_before) / wall - _own_cpu() / wall) if wall > 0 else 0.0
    print(f"\n{wall:.0f} s wall; load average now {os.getloadavg()[0]:.2f}; other processes used about "
          f"{others:.1f} cores during the run")


def _build(kind: str, out: Path, patients: int, ratios=(0.7, 0.15, 0.15)) -> Path:
    started = time.perf_counter()
    build_phantom(kind, out, seed=0, patients=patients, plan=SplitPlan(tuple(ratios), seed=0), progress=False)
    seconds = time.perf_counter() - started
    print(f"built {kind}: {patients} patients in {seconds:.1f} s ({seconds / patients:.2f} s per patient)")
    return out


# ----------------------------------------------------------------------------------- the gliomas


def describe_gliomas(root: Path) -> None:
    """The glioma set's lesion sizes and its hard positives (slices showing no or a small core)."""
    dataset = Dataset.load(root)
    tumour = [s for s in dataset.samples if s.label == "tumour"]
    largest = np.array([max((max(b[2] - b[0], b[3] - b[1]) for b in s.boxes), default=0) for s in tumour])
    area = np.array([s.attributes["tumour_area_px"] for s in tumour])
    core = np.array([np.isin(read_image(dataset.root / s.mask).array, (1, 4)).sum() for s in tumour])
    side = dataset.info.image_size[-1]
    share = len(tumour) / len(dataset.samples)
    print(f"\nglioma set: {len(dataset.samples)} slices, {len(tumour)} tumour ({share:.0%}); "
          f"excluded {dataset.info.source.get('excluded_slices')}")
    print(f"largest tumour box side per tumour slice: median {np.median(largest):.0f} px at {side} "
          f"(IQR {np.percentile(largest, 25):.0f}-{np.percentile(largest, 75):.0f}), "
          f"{np.median(largest) * 64 / side:.1f} px at 64; tumour area median {np.median(area):.0f} px")
    print(f"tumour slices showing no core (oedema only): {np.mean(core == 0):.0%}; a core under 3 cm^2: "
          f"{np.mean((core > 0) & (core < 300)):.0%}")


# -------------------------------------------------------------------------------- classification


def classification(root: Path, seeds: int, low_data: int) -> None:
    real = load_real(root)
    settings = get_settings("small")
    x = {split: load_images(real.dataset, real.splits[split], settings.size, progress=False)
         for split in ("train", "val", "test")}
    y = {split: torch.from_numpy(real.labels(split)) for split in x}
    _describe_splits(real)
    print("\n| training | seed | train patients | train images | ROC AUC | sensitivity | specificity | "
          "test patients | test images (tumour/non-tumour) | epochs | s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = {"full train split": [], f"{low_data} training patients": []}
    for seed in range(seeds):
        rows["full train split"].append(_cell(settings, real, x, y, seed, None, "full train split"))
    if low_data:
        for seed in range(seeds):
            keep = _patient_subset(real, low_data, seed)
            rows[f"{low_data} training patients"].append(
                _cell(settings, real, x, y, seed, keep, f"{low_data} training patients"))
    for name, results in rows.items():
        if results:
            aucs = [r["auc"] for r in results]
            sens = [r["sensitivity"] for r in results]
            print(f"\n{name}: AUC min {min(aucs):.3f} mean {np.mean(aucs):.3f}; sensitivity mean "
                  f"{np.mean(sens):.3f}")
    full = [r["auc"] for r in rows["full train split"]]
    verdict = "met" if min(full) >= AUC_BAR else "NOT met"
    print(f"bar (ROC AUC >= {AUC_BAR} on the full train split, every seed): {verdict}")


def _describe_splits(real) -> None:
    for split, samples in real.splits.items():
        labels = Counter(s.label for s in samples)
        patients = len({s.patient_id for s in samples})
        print(f"{split}: {patients} patients, {len(samples)} images ({labels[real.positive]} {real.positive}, "
              f"{labels[real.negative]} {real.negative})")
    excluded = real.dataset.info.source.get("excluded_slices")
    print(f"excluded slices: {excluded}")


def _patient_subset(real, count: int, seed: int) -> np.ndarray:
    """A seeded choice of `count` training patients: the indices of their training images."""
    patients = sorted({s.patient_id for s in real.splits["train"]})
    chosen = set(np.random.default_rng([seed, count]).choice(patients, min(count, len(patients)), replace=False))
    return np.array([i for i, s in enumerate(real.splits["train"]) if s.patient_id in chosen], dtype=np.int64)


def _cell(settings, real, x, y, seed: int, keep: np.ndarray | None, name: str) -> dict:
    started = time.perf_counter()
    train_x, train_y = (x["train"], y["train"]) if keep is None else (x["train"][keep], y["train"][keep])
    model, history = fit(settings, False, train_x, train_y, x["val"], y["val"], seed, progress=False)
    scores = predict(model, x["test"])
    truth = y["test"].numpy().astype(bool)
    predicted = scores >= 0.5
    result = {"auc": float(roc_auc_score(truth, scores)),
              "sensitivity": float((predicted & truth).sum() / truth.sum()),
              "specificity": float((~predicted & ~truth).sum() / (~truth).sum())}
    train_patients = len({real.splits["train"][i].patient_id for i in (keep if keep is not None
                                                                      else range(len(train_y)))})
    test_patients = len({s.patient_id for s in real.splits["test"]})
    print(f"| {name} | {seed} | {train_patients} | {len(train_y)} | {result['auc']:.3f} | "
          f"{result['sensitivity']:.3f} | {result['specificity']:.3f} | {test_patients} | "
          f"{len(truth)} ({truth.sum()}/{(~truth).sum()}) | {len(history)} | {time.perf_counter() - started:.0f} |")
    return result


# ------------------------------------------------------------------------------------- detection


def detection(root: Path) -> None:
    dataset = Dataset.load(root)
    side = dataset.info.image_size[-1] if dataset.info.image_size else 256
    sides, per_slice, mismatched, lesion_slices = [], Counter(), 0, 0
    for sample in dataset.samples:
        boxes = [tuple(int(v) for v in b) for b in sample.boxes]
        per_slice[len(boxes)] += 1
        if boxes:
            lesion_slices += 1
        sides += [max(b[2] - b[0], b[3] - b[1]) for b in boxes]
        mismatched += _boxes_disagree_with_mask(dataset, sample, boxes)
    sides = np.array(sides, dtype=float)
    patients = len({s.patient_id for s in dataset.samples})
    print(f"\nmetastasis set: {patients} patients, {len(dataset.samples)} slices, {lesion_slices} with lesions, "
          f"{len(sides)} boxes; slices whose boxes differ from their mask's components: {mismatched}")
    print("\n| box side (max of width, height) | median | IQR | 5-95% | min | max |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    spacing = (dataset.info.spacing or [1.0])[-1]
    for scale, name in ((1.0, f"px at {side}"), (64 / side, "px at 64"), (spacing, "mm")):
        s = sides * scale
        print(f"| {name} | {np.median(s):.1f} | {np.percentile(s, 25):.1f}-{np.percentile(s, 75):.1f} | "
              f"{np.percentile(s, 5):.1f}-{np.percentile(s, 95):.1f} | {s.min():.1f} | {s.max():.1f} |")
    with_lesions = {k: v for k, v in per_slice.items() if k}
    counts = np.repeat(list(with_lesions), list(with_lesions.values()))
    print(f"\nlesions per slice with lesions: mean {counts.mean():.2f}, median {np.median(counts):.0f}, "
          f"share with 2 or more {np.mean(counts >= 2):.0%}; histogram "
          + ", ".join(f"{k}: {v}" for k, v in sorted(per_slice.items())))
    print(f"boxes under 4 px side at {side} (lesion poles): {np.mean(sides < 4):.0%}; "
          f"at least 10 mm: {np.mean(sides * spacing >= 10):.0%}")


def _boxes_disagree_with_mask(dataset: Dataset, sample, boxes) -> int:
    """1 when the slice's boxes are not exactly the bounding boxes of its mask's 8-connected components."""
    if not sample.mask:
        return int(bool(boxes))
    mask = read_image(dataset.root / sample.mask).array > 0
    components, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    found = sorted((sl[1].start, sl[0].start, sl[1].stop, sl[0].stop) for sl in ndimage.find_objects(components))
    return int(found != sorted(boxes))


# --------------------------------------------------------------------------------------- texture

# T1c (post-gadolinium T1-weighted) tissue signal relative to normal white matter: the spin-echo
# signal equation (TR 500 ms, TE 15 ms) with textbook 1.5 T relaxation times and proton densities
# for the normal tissues, the ranges seen clinically for the pathological ones (see docs/data.md).
PUBLISHED = {"grey_matter": "0.75-0.85", "csf": "0.2-0.4", "deep_grey": "0.8-0.9", "oedema": "0.6-0.8",
             "enhancing": "1.3-2.0", "necrosis": "0.3-0.5", "venous_sinus": "1.2-1.8", "choroid_plexus": "1.2-1.6"}
# A real T1 (2 mm, an inner crop of a brain) shipped with nibabel's test data: the only real MR offline.
REAL_T1 = Path(__import__("nibabel").__file__).parent / "tests" / "data" / "anatomical.nii"


def texture(scratch: Path, patients: int = 3) -> None:
    """The phantom's T1c tissue ratios against published values, and its T1 against a real T1."""
    from pathosynth.data.phantoms.brain_mr import tissue_map, write_brats_cases

    write_brats_cases(scratch, patients, 0, sequences=("t1", "t1ce"))
    cases = sorted(p.name for p in scratch.iterdir())
    tissues = [tissue_map(0, index) for index in range(patients)]
    t1c = [read_image(scratch / case / f"{case}_t1ce.nii").array.astype(float) for case in cases]
    print(f"\ntexture: T1c tissue medians / white matter ({patients} glioma patients, raw 1 mm volumes)")
    print("| tissue | phantom | published |")
    print("| --- | ---: | ---: |")
    for name, published in PUBLISHED.items():
        ratios = [_tissue_ratio(image, tissue, name) for image, tissue in zip(t1c, tissues)]
        ratios = [r for r in ratios if r is not None]
        print(f"| {name} | {np.mean(ratios):.2f} | {published} |" if ratios else f"| {name} | - | {published} |")
    print("\nT1 at 2 mm, brain interior: three-class k-means centres / the brightest class, their shares, and")
    print("the SNR of the brightest class (mean / sd of the residual after a 3x3x3 mean), same estimator on both")
    print("| image | dark (CSF) | middle (grey) | bright (white) | shares | SNR |")
    print("| --- | ---: | ---: | ---: | --- | ---: |")
    if REAL_T1.is_file():
        real = read_image(REAL_T1).array.astype(float)
        inner = np.zeros(real.shape, bool)
        inner[2:-2, 2:-2, 2:-2] = True  # the crop's border holds resampling edges
        _print_t1_row("real (nibabel anatomical.nii)", real, inner)
    for index, case in enumerate(cases):
        t1 = _block_mean(read_image(scratch / case / f"{case}_t1.nii").array.astype(float))
        brain = _block_mean(np.isin(tissues[index], _BRAIN_TISSUES).astype(float)) == 1.0
        _print_t1_row(f"phantom patient {index}", t1, ndimage.binary_erosion(brain, iterations=2))


def _tissue_ratio(image: np.ndarray, tissue: np.ndarray, name: str) -> float | None:
    from pathosynth.data.phantoms.brain_mr import TISSUE_NAMES

    values = image[tissue == TISSUE_NAMES.index(name)]
    white = image[tissue == TISSUE_NAMES.index("white_matter")]
    return float(np.median(values) / np.median(white)) if values.size > 50 else None


def _brain_tissues() -> list[int]:
    from pathosynth.data.phantoms.brain_mr import TISSUE_NAMES

    return [TISSUE_NAMES.index(n) for n in ("csf", "grey_matter", "white_matter", "deep_grey")]


_BRAIN_TISSUES = _brain_tissues()


def _block_mean(volume: np.ndarray) -> np.ndarray:
    """2 x 2 x 2 block means: the phantom's 1 mm volume at the real image's 2 mm."""
    z, y, x = (n // 2 * 2 for n in volume.shape)
    return volume[:z, :y, :x].reshape(z // 2, 2, y // 2, 2, x // 2, 2).mean(axis=(1, 3, 5))


def _print_t1_row(name: str, volume: np.ndarray, mask: np.ndarray) -> None:
    values = volume[mask]
    centres = np.percentile(values, [15, 50, 90])
    for _ in range(100):  # 1D k-means: converges in a few dozen steps
        classes = np.argmin(np.abs(values[:, None] - centres[None]), axis=1)
        centres = np.array([values[classes == k].mean() for k in range(3)])
    shares = np.bincount(classes, minlength=3) / classes.size
    bright = np.zeros(volume.shape, bool)
    bright[mask] = classes == 2
    bright = ndimage.binary_erosion(bright)
    residual = volume - ndimage.uniform_filter(volume, 3)
    snr = volume[bright].mean() / (residual[bright].std() * np.sqrt(27 / 26))
    ratio = centres / centres[2]
    print(f"| {name} | {ratio[0]:.2f} | {ratio[1]:.2f} | 1 | {'/'.join(f'{s:.0%}' for s in shares)} | {snr:.0f} |")


# -------------------------------------------------------------------------------------- the load


def _cpu_seconds() -> float:
    """All processes' CPU seconds so far (from /proc/stat), to tell our load from the others'."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
        return (int(fields[0]) + int(fields[1]) + int(fields[2])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _own_cpu() -> float:
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


if __name__ == "__main__":
    main()
