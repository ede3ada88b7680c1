"""Paint 2D lesions into real slices with a trained lesion inpainter (`--model inpaint2d`).

Each synthetic image i (seed `seed + i`) is a real slice drawn from the source pool (by default the
slices without lesions of the run's training data, split `train`, of the patients the run learned
from) with lesions painted into boxes:
- `boxes`: the same boxes for every image (px of the slice);
- positions "real": a real lesion layout, moved by the papers' jitter (flip, shift 10%, zoom 10%),
  kept when every box lies inside the organ;
- positions "random": `per_image` boxes at random places inside the organ, of the real lesions'
  sizes or of `lesion_size` (px, min-max: sizes outside the training range, atypical cases).
Each lesion's shape and sub-regions are a training lesion's label map (of the lesions the run
learned from, or of `boxes_from`), flipped and transposed at random and resized to fill its box;
the painter paints its tissue. Pixels farther than the margin from every painted box are the
source slice's own, bit for bit. With `healthy`, that share of the images gets healthy tissue
painted into lesion-shaped holes at the same kind of boxes (the control class; no label, no box).
Each row carries its boxes, the painted lesions' label map, its
seed and provenance (run, generator sha256,
step, the boxes asked for); no row names the source slice or its patient. The link back is written
only on request, to a source map outside OUT (`source_map`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathosynth import __version__
from pathosynth.contracts import Intensity, read_run
from pathosynth.data.boxes import box_is_inside, format_boxes
from pathosynth.data.dataset import Dataset, DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage, plain_direction
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from pathosynth.generate.images import PAPER_JITTER, Jitter
from pathosynth.generate.placement.slices import (crop, fit_shape, lesion_weight, organ_mask, plan_patch,
                                                   random_boxes, window)
from pathosynth.models import build_generator
from pathosynth.outputs import check_source_map_target, write_source_map
from pathosynth.runtime import default_device
from pathosynth.training import checkpoint as ckpt
from pathosynth.training.lesion_patches import painter_inputs, patch_inputs
from pathosynth.training.lesions import from_unit, lesion_samples, main_lesion, to_unit

INSIDE = 0.95  # a real layout's box must lie this much inside the organ


@dataclass
class Painter:
    """A trained painter and what it needs to paint into slices of the data's unit."""

    model: torch.nn.Module
    file: Path
    sha256: str
    step: int
    patch: int
    margin: int
    labels: list[int]
    intensity: Intensity
    device: torch.device
    healthy_share: float  # of its training patches that were healthy holes (0: it cannot paint the control)
    model_name: str  # its family


def load_painter(run_dir: Path, device: torch.device) -> Painter:
    path = run_dir / "checkpoints" / ckpt.GENERATOR
    payload = ckpt.load_checkpoint(path)
    try:
        model = build_generator(payload["model"], payload["generator_kwargs"])
        model.load_state_dict(payload["weights"])
        intensity = Intensity(**payload["intensity"])
        patch, margin, labels = int(payload["patch"]), int(payload["margin"]), list(payload["labels"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: the weights do not fit the recorded model ({exc}); "
                        "train the run again with this pathosynth version") from exc
    return Painter(model.to(device).eval(), path, ckpt.sha256(path), int(payload.get("step", 0)), patch, margin,
                   labels, intensity, device, float(payload.get("healthy_share", 0.0)), str(payload["model"]))


def lesion_bank(dataset: Dataset, samples: list[Sample]) -> list[np.ndarray]:
    """The label-map crops of these samples' largest lesions: the shapes lesions are drawn from."""
    bank = []
    for sample in samples:
        found = main_lesion(dataset.read_mask(sample)) if sample.mask else None
        if found is not None:
            (x0, y0, x1, y1) = found[1]
            bank.append(found[0][y0:y1, x0:x1])
    return bank


@torch.no_grad()
def paint(painter: Painter, slices: list[np.ndarray], layouts: list[list[list[float]]], seeds: list[int],
          bank: list[np.ndarray], healthy: list[bool] | None = None) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each slice (H, W, the data's unit) with a lesion painted into each box of its layout, one box
    after another (a box sees the lesions painted before it); and the painted lesions' label maps.
    The lesion's shape comes from `bank`, its tissue from the painter; pixels farther than the
    lesion's feather (4 px) stay the slice's own. A `healthy` slice gets healthy tissue painted into
    the same lesion-shaped holes (the control: painted, but no lesion) and an empty label map."""
    healthy = healthy or [False] * len(slices)
    out = [s.copy() for s in slices]
    maps = [np.zeros(s.shape, dtype=np.uint8) for s in slices]
    shapes = [np.random.default_rng(int(seed)) for seed in seeds]
    noises = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    for round_ in range(max((len(layout) for layout in layouts), default=0)):
        which = [i for i, layout in enumerate(layouts) if len(layout) > round_]
        jobs = [_Job(out[i], layouts[i][round_], fit_shape(bank[int(shapes[i].integers(len(bank)))],
                                                           layouts[i][round_], shapes[i]), noises[i], healthy[i])
                for i in which]
        for i, (top, left, painted, lesion) in zip(which, _paint_jobs(painter, jobs)):
            _composite(out[i], None if healthy[i] else maps[i], painted, lesion, top, left)
    return out, maps


@dataclass
class _Job:
    image: np.ndarray  # the slice, data unit
    box: list[float]
    shape: np.ndarray  # the lesion's labels, the box's size
    noise: torch.Generator
    healthy: bool  # paint healthy tissue into the lesion's shape


def _paint_jobs(painter: Painter, jobs: list[_Job]) -> list[tuple[int, int, np.ndarray, np.ndarray]]:
    """Per job: the crop's corner, the painted crop (data unit) and the lesion's labels in the crop."""
    inputs, plans = [], []
    for job in jobs:
        top, left, side = plan_patch(job.box, painter.patch, painter.margin)
        x0, y0 = int(round(job.box[0])), int(round(job.box[1]))
        lesion = np.zeros((side, side), dtype=np.uint8)
        lesion[y0 - top:y0 - top + job.shape.shape[0], x0 - left:x0 - left + job.shape.shape[1]] = job.shape
        image = crop(to_unit(painter.intensity, job.image).astype(np.float32), top, left, side)
        inputs.append(torch.from_numpy(patch_inputs(image, lesion, painter.labels, painter.patch, job.healthy)))
        plans.append((top, left, side, lesion))
    batch = torch.stack(inputs).to(painter.device)
    noise = torch.stack([torch.randn((1, painter.patch, painter.patch), generator=job.noise) for job in jobs])
    painted = painter.model(painter_inputs(batch[:, :1], batch[:, 1:2], batch[:, 2:], noise.to(painter.device)))
    results = []
    for k, (top, left, side, lesion) in enumerate(plans):
        values = painted[k:k + 1].float()
        if side != painter.patch:
            values = F.interpolate(values, size=(side, side), mode="bilinear", align_corners=False)
        results.append((top, left, from_unit(painter.intensity, values[0, 0].cpu().numpy()), lesion))
    return results


def _composite(image: np.ndarray, labels: np.ndarray | None, painted: np.ndarray, lesion: np.ndarray, top: int,
               left: int) -> None:
    """Blend the painted crop into `image` by the lesion's feather (the source's very values where
    the weight is 0) and write the lesion's labels into `labels` (unless None: a healthy repaint),
    both in place, in the crop's window."""
    inside, local = window(image.shape, top, left, lesion.shape[0])
    weight, region = lesion_weight(lesion > 0)[local], image[inside]
    image[inside] = np.where(weight > 0, weight * painted[local] + (1 - weight) * region, region)
    placed = lesion[local]
    if labels is not None:
        labels[inside] = np.where(placed > 0, placed, labels[inside])


# ------------------------------------------------------------------------------- the verb

@dataclass
class _Request:
    boxes: list[list[float]] | None
    boxes_from: Path | None
    jitter: Jitter
    positions: str
    per_image: int
    lesion_size: tuple[int, int] | None


def paint_lesions(run: str | Path, n: int, out: str | Path, *, into: str | Path | None = None, split: str = "train",
                  label: str | None = None, boxes: list[list[float]] | None = None,
                  boxes_from: str | Path | None = None, jitter: str | None = None, positions: str = "real",
                  per_image: int = 1, lesion_size: tuple[int, int] | None = None, healthy: float = 0.0,
                  seed: int = 0, batch: int = 32, overwrite: bool = False, progress: bool = True,
                  source_map: str | Path | None = None) -> Path:
    """`n` real slices of `into` (default: the run's training data; its `split`, slices without
    lesions) with lesions painted in; returns `out`, a synthetic dataset folder. A `healthy` share
    of the images (spread evenly over the seeds) get healthy tissue painted into the same kind of
    boxes instead, labelled the set's other class: the control for augmentation experiments."""
    run_dir, out = Path(run), Path(out)
    record = read_run(run_dir)
    source = Dataset.load(into or record.data["path"])
    target = check_source_map_target(source_map, out, overwrite)
    pool = [s for s in _hosts(record, source, split) if not s.boxes]
    if not pool:
        raise UserError(f"{source.root}: no '{split}' slice without lesions to paint into; choose --split or --into")
    lesion_label = label or _lesion_label(source)
    labels = (lesion_label, _healthy_label(source, lesion_label) if healthy else None)
    request = _Request(boxes, Path(boxes_from) if boxes_from else None,
                       Jitter.parse(PAPER_JITTER if jitter is None else jitter), positions, per_image, lesion_size)
    lesions, rows = _lesion_source(record, request.boxes_from, source)
    bank = lesion_bank(lesions, rows)
    layouts = [r.boxes for r in rows if r.boxes]
    if not bank or (not boxes and not layouts):
        raise UserError(f"{lesions.root}: no slice has a lesion mask to take lesion shapes and layouts from; pass "
                        "--boxes-from a dataset with lesion masks")
    painter = load_painter(run_dir, default_device())
    if healthy and not painter.healthy_share:
        raise UserError(f"{painter.file}: this run did not learn healthy tissue, so it cannot paint the control "
                        "class; drop --healthy, or train it again with this pathosynth version")
    links: list[dict] = []
    with DatasetWriter(out, _info(source, out, run_dir, seed, labels, painter.model_name),
                       overwrite=overwrite) as writer:
        bar = tqdm(total=n, desc="paint", unit="img", disable=not progress)
        for start in range(0, n, batch):
            chunk = [(seed + i, _is_healthy(i, healthy)) for i in range(start, min(start + batch, n))]
            _paint_chunk(painter, source, pool, writer, chunk, (bank, layouts), request, labels, run_dir, links)
            bar.update(len(chunk))
        bar.close()
        done = writer.commit(SplitPlan())
    if target:
        write_source_map(target, done, links)
    return done


def _is_run_data(record, dataset: Dataset) -> bool:
    """Whether `dataset` is the folder the run trained on."""
    return Path(record.data["path"]).resolve() == Path(dataset.root).resolve()


def _hosts(record, source: Dataset, split: str) -> list[Sample]:
    """The slices of `split` that may be painted into. In the run's own data and split, only the
    patients it learned from (its low-data subset): an augmentation experiment's classifier then
    sees no patient through the painted slices that it does not see as a real one."""
    config = record.config
    if _is_run_data(record, source) and (config.get("split") or "") == split:
        return source.select(split=split or None, train_patients=config.get("train_patients"),
                             subset_seed=int(config.get("subset_seed") or 0))
    return source.select(split=split or None)


def _lesion_source(record, boxes_from: Path | None, hosts: Dataset) -> tuple[Dataset, list[Sample]]:
    """Where lesion shapes and layouts come from: `boxes_from` (its slices with masks), or the
    lesions the run learned from (its data, split and low-data subset), never another split's.
    The hosts' dataset is reused when it is that data (a manifest of thousands of rows is slow to read)."""
    if boxes_from:
        dataset = Dataset.load(boxes_from)
        return dataset, [s for s in dataset.samples if s.mask]
    config = record.config
    dataset = hosts if _is_run_data(record, hosts) else Dataset.load(record.data["path"])
    return dataset, lesion_samples(dataset, config.get("split") or "train", config.get("train_patients"),
                                   int(config.get("subset_seed") or 0))


def _is_healthy(index: int, share: float) -> bool:
    """Whether image `index` is a healthy repaint: exactly round-down(n x share) of the first n
    images are, spread evenly (the same images for every n)."""
    return int((index + 1) * share + 1e-9) > int(index * share + 1e-9)


def _healthy_label(source: Dataset, lesion_label: str) -> str:
    others = [c for c in source.info.classes if c != lesion_label]
    if len(others) != 1:
        raise UserError(f"{source.root / 'dataset.json'}: --healthy labels the repainted slices with the set's other "
                        f"class, but beside '{lesion_label}' it has {len(others)} ({', '.join(others) or 'none'}); "
                        "use a two-class set")
    return others[0]


def _lesion_label(source: Dataset) -> str:
    """The class the source set's lesion slices carry (the most common among slices with boxes)."""
    counts: dict[str, int] = {}
    for sample in source.samples:
        if sample.boxes:
            counts[sample.label] = counts.get(sample.label, 0) + 1
    if not counts:
        raise UserError(f"{source.root}: no slice has lesion boxes, so the lesion class is unknown; pass --label")
    return max(sorted(counts), key=counts.get)


def _info(source: Dataset, out: Path, run_dir: Path, seed: int, labels: tuple[str, str | None],
          model: str) -> DatasetInfo:
    info = source.info
    return DatasetInfo(name=out.name, modality=info.modality, dimensionality=2,
                       classes=sorted(set(info.classes) | {labels[0]}), channels=info.channels,
                       intensity_unit=info.intensity_unit, png_slope=info.png_slope, png_intercept=info.png_intercept,
                       source={"synthetic": True, "generator": model, "run": str(run_dir.resolve()),
                               "seed": seed, "pathosynth": __version__})


def _paint_chunk(painter: Painter, source: Dataset, pool: list[Sample], writer: DatasetWriter,
                 chunk: list[tuple[int, bool]], lesions: tuple[list, list], request: _Request,
                 labels: tuple[str, str | None], run_dir: Path, links: list) -> None:
    """Paint and write one batch of images, each (seed, healthy repaint or not)."""
    bank, layouts = lesions
    seeds, healthy = [seed for seed, _ in chunk], [flag for _, flag in chunk]
    samples, images, chosen = [], [], []
    for seed in seeds:
        sample, image, layout = _source_and_layout(source, pool, seed, layouts, request)
        samples.append(sample), images.append(image), chosen.append(layout)
    painted, masks = paint(painter, images, chosen, seeds, bank, healthy)
    for sample, seed, flag, image, mask, layout in zip(samples, seeds, healthy, painted, masks, chosen):
        sid = f"synthetic-{seed:08d}"
        links.append({"synthetic": sid, "source_sample": sample.id, "source_patient": sample.patient_id})
        condition = {"healthy_boxes" if flag else "boxes": layout, "positions": request.positions}
        row = Sample(id=sid, patient_id=sid, image="", label=labels[1] if flag else labels[0], split="train",
                     boxes=[] if flag else layout,
                     synthetic={"model": painter.model_name, "run": str(run_dir.resolve()),
                                "checkpoint": str(painter.file.relative_to(run_dir)),
                                "checkpoint_sha256": painter.sha256, "step": painter.step, "seed": seed,
                                "condition": condition})
        spacing = tuple(sample.spacing or (1.0, 1.0))
        writer.add(row, MedicalImage(image, spacing, (0.0, 0.0), plain_direction(2)), mask=mask)


def _source_and_layout(source: Dataset, pool: list[Sample], seed: int, layouts: list, request: _Request):
    """The source slice of image `seed` and its boxes: a slice of the pool drawn with the seed, drawn
    again (up to 20 times) when no box fits inside its organ."""
    rng = random.Random(seed)
    for attempt in range(20):
        sample = pool[rng.randrange(len(pool))]
        image = source.read(sample)[0].astype(np.float32)
        layout = _layout(image, seed * 31 + attempt, layouts, request)
        if layout:
            return sample, image, layout
    raise UserError(f"{source.root}: the lesion boxes do not fit inside the organ of 20 source slices in a row; "
                    "pass smaller boxes (--boxes, --lesion-size) or other slices (--into, --split)")


def _layout(image: np.ndarray, seed: int, layouts: list, request: _Request) -> list[list[float]]:
    """The boxes one image gets (see the module's docstring); [] when none fits the organ."""
    shape = image.shape
    if request.boxes:
        for box in request.boxes:
            if not box_is_inside(box, shape):
                raise UserError(f"box {format_boxes([box])} is not inside the {shape[1]}x{shape[0]} slice")
        return [list(map(float, b)) for b in request.boxes]
    rng = random.Random(seed)
    organ = organ_mask(image)
    if request.positions == "random":
        sizes = [_size(rng, layouts, request.lesion_size) for _ in range(request.per_image)]
        return random_boxes(organ, sizes, np.random.default_rng(seed))
    for _ in range(20):  # redraw when the jitter or the organ's shape leaves a box outside
        layout = request.jitter.apply(layouts[rng.randrange(len(layouts))], shape[0], rng)
        if layout and all(_inside_fraction(organ, box) >= INSIDE for box in layout):
            return layout
    return []


def _size(rng: random.Random, layouts: list, lesion_size: tuple[int, int] | None) -> tuple[int, int]:
    if lesion_size:
        side = rng.randint(*lesion_size)
        return side, side
    box = rng.choice([b for layout in layouts for b in layout])
    return max(2, int(round(box[2] - box[0]))), max(2, int(round(box[3] - box[1])))


def _inside_fraction(organ: np.ndarray, box: list[float]) -> float:
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    area = max((x1 - x0) * (y1 - y0), 1)
    return float(organ[max(y0, 0):y1, max(x0, 0):x1].sum()) / area
