"""`data info` and `data show`: what a dataset folder holds, in numbers and in a picture."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
from tqdm import tqdm

from pathosynth.contracts import replacing
from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.paths import kind_of
from pathosynth.data.splits import SPLITS
from pathosynth.errors import UserError
from pathosynth.tempfiles import remove_stale_temporaries

CT_DISPLAY_WINDOW = (-1350.0, 150.0)  # lung window W1500 / L-600, in HU


def dataset_info(root: str | Path, progress: bool = True) -> dict:
    """Counts by split, class and attribute; image sizes; spacing; intensity range; box statistics."""
    dataset = Dataset.load(root)
    info = dataset.info
    counts: dict[str, Counter] = defaultdict(Counter)
    patients: dict[str, set] = defaultdict(set)
    attributes: dict[str, Counter] = defaultdict(Counter)
    sizes: Counter = Counter()
    low, high, total, voxels = np.inf, -np.inf, 0.0, 0
    box_extents: list[list[float]] = []
    box_counts = []
    for sample in tqdm(dataset.samples, desc="reading", unit="img", disable=not progress):
        counts[sample.split][sample.label] += 1
        patients[sample.split].add(sample.patient_id)
        for key in info.attributes:
            if key in sample.attributes:
                attributes[key][str(sample.attributes[key])] += 1
        for nodule in sample.attributes.get("nodules", []):
            for key in info.attributes:
                if key in nodule:
                    attributes[key][str(nodule[key])] += 1
        array = dataset.read(sample)
        sizes[tuple(array.shape[1:])] += 1
        low, high = min(low, float(array.min())), max(high, float(array.max()))
        total += float(array.sum(dtype=np.float64))
        voxels += array.size
        box_counts.append(len(sample.boxes))
        dims = info.dimensionality
        box_extents.extend([b[dims + i] - b[i] for i in range(dims)] for b in sample.boxes)
    boxes = {"total": int(sum(box_counts)), "images_with_boxes": int(sum(c > 0 for c in box_counts)),
             "max_per_image": int(max(box_counts, default=0))}
    if box_extents:
        extents = np.asarray(box_extents, dtype=float)
        axes = "xyz"[: info.dimensionality]
        boxes["extent_px"] = {axis: {"min": float(extents[:, i].min()), "median": float(np.median(extents[:, i])),
                                     "max": float(extents[:, i].max())} for i, axis in enumerate(axes)}
    return {
        "path": str(Path(root)),
        "name": info.name,
        "modality": info.modality,
        "dimensionality": info.dimensionality,
        "channels": info.channels,
        "classes": info.classes,
        "samples": len(dataset.samples),
        "counts": {split: dict(sorted(counts[split].items())) for split in _ordered(counts)},
        "patients": {split: len(patients[split]) for split in _ordered(patients)},
        "attributes": {k: dict(sorted(v.items())) for k, v in sorted(attributes.items())},
        "image_sizes": {"x".join(map(str, s)): n for s, n in sorted(sizes.items())},
        "spacing_mm": info.spacing,
        "intensity": {"unit": info.intensity_unit, "min": low if voxels else None,
                      "max": high if voxels else None, "mean": total / voxels if voxels else None},
        "boxes": boxes,
        "synthetic": sum(s.synthetic is not None for s in dataset.samples),
    }


def _ordered(by_split: dict) -> list[str]:
    return sorted(by_split, key=lambda s: (SPLITS.index(s) if s in SPLITS else len(SPLITS), s))


def format_info(summary: dict) -> str:
    lines = [f"{summary['name']}: {summary['modality']} {summary['dimensionality']}D, "
             f"{summary['samples']} samples, channels {', '.join(summary['channels'])}",
             f"  path: {summary['path']}"]
    classes = summary["classes"]
    header = f"  {'split':<8}{'patients':>10}" + "".join(f"{c:>14}" for c in classes) + f"{'total':>10}"
    lines += ["", header]
    for split, by_label in summary["counts"].items():
        cells = "".join(f"{by_label.get(c, 0):>14}" for c in classes)
        lines.append(f"  {split:<8}{summary['patients'][split]:>10}{cells}{sum(by_label.values()):>10}")
    for key, values in summary["attributes"].items():
        lines.append(f"  {key}: " + ", ".join(f"{v} {n}" for v, n in values.items()))
    lines.append("  image size (array order): " + _sizes_text(summary["image_sizes"]))
    spacing = summary["spacing_mm"]
    lines.append(f"  spacing (mm, array order): {spacing if spacing else 'varies per sample'}")
    intensity = summary["intensity"]
    lines.append(f"  intensity ({intensity['unit']}): min {intensity['min']:.4g}, max {intensity['max']:.4g}, "
                 f"mean {intensity['mean']:.4g}")
    boxes = summary["boxes"]
    lines.append(f"  boxes: {boxes['total']} on {boxes['images_with_boxes']} images, at most "
                 f"{boxes['max_per_image']} per image")
    for axis, stats in boxes.get("extent_px", {}).items():
        lines.append(f"    {axis} extent px: min {stats['min']:.4g}, median {stats['median']:.4g}, "
                     f"max {stats['max']:.4g}")
    if summary["synthetic"]:
        lines.append(f"  synthetic samples: {summary['synthetic']}")
    return "\n".join(lines)


def _sizes_text(sizes: dict[str, int]) -> str:
    if len(sizes) <= 4:
        return ", ".join(f"{s} ({n})" for s, n in sizes.items())
    shapes = np.asarray([[int(v) for v in s.split("x")] for s in sizes])
    ranges = "x".join(f"{lo}-{hi}" if lo != hi else f"{lo}" for lo, hi in zip(shapes.min(0), shapes.max(0)))
    return f"{len(sizes)} sizes within {ranges}"


def pick_samples(dataset: Dataset, n: int, split: str | None, label: str | None, seed: int) -> list[Sample]:
    """Up to n samples, the classes taking turns so a rare class still shows."""
    pool = dataset.select(split=split, label=label)
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[Sample]] = defaultdict(list)
    for index in rng.permutation(len(pool)):
        by_label[pool[index].label].append(pool[index])
    queues = [by_label[c] for c in dataset.info.classes if by_label[c]]
    picked: list[Sample] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop())
    return picked


def show_dataset(root: str | Path, out: str | Path, n: int = 16, split: str | None = None,
                 label: str | None = None, channel: int = 0, seed: int = 0) -> Path:
    """A PNG grid of samples with their boxes; volumes show the axial slice through the first box."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    out = Path(out)
    _check_picture_path(out)
    dataset = Dataset.load(root)
    channels = len(dataset.info.channels)
    if not 0 <= channel < channels:
        raise UserError(f"{root}: has {channels} channel(s) ({', '.join(dataset.info.channels)}); "
                        f"choose --channel 0 to {channels - 1}")
    samples = pick_samples(dataset, n, split, label, seed)
    if not samples:
        raise UserError(f"{root}: no sample matches split={split} label={label}; drop or change the filter")
    columns = min(len(samples), 4 if len(samples) <= 8 else 6)
    rows = -(-len(samples) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(3 * columns, 3.3 * rows), squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    for axis, sample in zip(axes.ravel(), samples):
        array = dataset.read(sample)
        image, boxes = _displayable(array[min(channel, len(array) - 1)], sample, dataset.info.dimensionality)
        low, high = (CT_DISPLAY_WINDOW if dataset.info.intensity_unit == "HU"
                     else np.percentile(image, [0.5, 99.5]))
        axis.imshow(image, cmap="gray", vmin=low, vmax=max(high, low + 1e-6), interpolation="nearest")
        for x0, y0, x1, y1 in boxes:
            axis.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False, color="#ff3b30", lw=1.2))
        axis.set_title(_caption(sample), fontsize=7)
    figure.suptitle(f"{dataset.info.name}: {dataset.info.modality} {dataset.info.dimensionality}D", fontsize=10)
    figure.tight_layout()
    remove_stale_temporaries(out.parent, of=out.name)  # left by a killed `data show`
    with replacing(out, suffix=".png") as tmp:
        figure.savefig(tmp, dpi=110)
    plt.close(figure)
    return out


def _check_picture_path(out: Path) -> None:
    if kind_of(out) == "dir":
        raise UserError(f"{out}: is a folder; give --out a file name such as preview.png")
    if kind_of(out.parent) != "dir":
        raise UserError(f"{out}: its folder {out.parent} does not exist; create it or choose another --out")


def _displayable(image: np.ndarray, sample: Sample, dims: int) -> tuple[np.ndarray, list[list[float]]]:
    if dims == 2:
        return image, [b[:4] for b in sample.boxes]
    if sample.boxes:
        z = int((sample.boxes[0][2] + sample.boxes[0][5]) // 2)
    else:
        z = image.shape[0] // 2
    boxes = [[b[0], b[1], b[3], b[4]] for b in sample.boxes if b[2] <= z < b[5]]
    return image[z], boxes


def _caption(sample: Sample) -> str:
    extra = [str(sample.attributes[k]) for k in ("size", "attenuation") if k in sample.attributes]
    name = sample.id if len(sample.id) <= 28 else "..." + sample.id[-25:]
    return f"{name}\n{sample.label}" + (f" ({', '.join(extra)})" if extra else "")
