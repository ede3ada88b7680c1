"""Paint 2D lesions into real slices with a trained lesion inpainter (`--model inpaint2d`).

Each synthetic image i (seed `seed + i`) is a real slice drawn from the source pool (by default the
slices without lesions of the run's training data, split `train`) with lesions painted into boxes:
- `boxes`: the same boxes for every image (px of the slice);
- positions "real": a real lesion layout of the hosts' split (or of `boxes_from`), moved by the papers'
  jitter (flip, shift 10%, zoom 10%), kept when every box lies inside the organ;
- positions "random": `per_image` boxes at random places inside the organ, of the real lesions'
  sizes or of `lesion_size` (px, min-max: sizes outside the training range, atypical cases).
Pixels farther than the margin from every painted box are the source slice's own, bit for bit. Each
row carries its boxes, the painted lesions' mask, its seed and provenance (run, generator sha256,
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
from pathosynth.generate.placement.slices import blend, box_distance, feather, organ_mask, plan_patch, random_boxes
from pathosynth.models import build_generator
from pathosynth.models.inpaint2d.networks import generator_inputs
from pathosynth.outputs import check_source_map_target, write_source_map
from pathosynth.runtime import default_device
from pathosynth.training import checkpoint as ckpt

INSIDE = 0.95  # a real layout's box must lie this much inside the organ


@dataclass
class Painter:
    """A trained inpainter and what it needs to paint into slices of the data's unit."""

    model: torch.nn.Module
    file: Path
    sha256: str
    step: int
    patch: int
    margin: int
    intensity: Intensity
    device: torch.device

    def to_unit(self, values: np.ndarray) -> np.ndarray:
        return np.clip((self.intensity.normalise(values) + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)

    def from_unit(self, unit: np.ndarray) -> np.ndarray:
        return self.intensity.restore(unit * 2.0 - 1.0)


def load_painter(run_dir: Path, device: torch.device) -> Painter:
    path = run_dir / "checkpoints" / ckpt.GENERATOR
    payload = ckpt.load_checkpoint(path)
    try:
        model = build_generator(payload["model"], payload["generator_kwargs"])
        model.load_state_dict(payload["weights"])
        intensity = Intensity(**payload["intensity"])
        patch, margin = int(payload["patch"]), int(payload["margin"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: the weights do not fit the recorded model ({exc}); "
                        "train the run again with this pathosynth version") from exc
    return Painter(model.to(device).eval(), path, ckpt.sha256(path), int(payload.get("step", 0)), patch, margin,
                   intensity, device)


@torch.no_grad()
def paint(painter: Painter, slices: list[np.ndarray], layouts: list[list[list[float]]], seeds: list[int]
          ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each slice (H, W, the data's unit) with a lesion painted into each box of its layout, one box
    after another (a box sees the lesions painted before it); and the painted lesions' masks."""
    out = [s.copy() for s in slices]
    masks = [np.zeros(s.shape, dtype=bool) for s in slices]
    rngs = [torch.Generator().manual_seed(int(seed)) for seed in seeds]
    for round_ in range(max((len(layout) for layout in layouts), default=0)):
        which = [i for i, layout in enumerate(layouts) if len(layout) > round_]
        for i, (image, probability) in zip(which, _paint_boxes(painter, [out[i] for i in which],
                                                               [layouts[i][round_] for i in which],
                                                               [rngs[i] for i in which])):
            box = layouts[i][round_]
            out[i] = blend(out[i], image, box, margin=painter.margin)
            masks[i] |= (box_distance(out[i].shape, box) == 0) & (probability > 0.5)  # a box is its lesion's
    return out, masks


def _paint_boxes(painter: Painter, slices: list[np.ndarray], boxes: list[list[float]], rngs: list[torch.Generator]):
    """Per slice: the painted patch pasted into a full-size array (data unit) and the mask probability."""
    crops, plans = [], []
    for image, box in zip(slices, boxes):
        top, left, side = plan_patch(box, painter.patch, painter.margin)
        local = [box[0] - left, box[1] - top, box[2] - left, box[3] - top]
        distance = box_distance((side, side), local)
        maps = np.stack([_cut(painter.to_unit(image), top, left, side), feather(distance, margin=painter.margin),
                         (distance == 0).astype(np.float32)])
        crop = torch.from_numpy(maps)[None]
        if side != painter.patch:
            crop = F.interpolate(crop, size=(painter.patch, painter.patch), mode="area")
            crop[:, 2] = (crop[:, 2] > 0.5).float()
        crops.append(crop[0])
        plans.append((top, left, side))
    batch = torch.stack(crops).to(painter.device)
    noise = torch.stack([torch.randn((1, painter.patch, painter.patch), generator=rng) for rng in rngs])
    inputs = generator_inputs(batch[:, :1], batch[:, 1:2], batch[:, 2:3], noise.to(painter.device))
    painted, logit = painter.model(inputs)
    results = []
    for k, (image, (top, left, side)) in enumerate(zip(slices, plans)):
        values, probability = painted[k:k + 1].float(), torch.sigmoid(logit[k:k + 1].float())
        if side != painter.patch:
            values = F.interpolate(values, size=(side, side), mode="bilinear", align_corners=False)
            probability = F.interpolate(probability, size=(side, side), mode="bilinear", align_corners=False)
        results.append((_paste(image.shape, painter.from_unit(values[0, 0].cpu().numpy()), top, left),
                        _paste(image.shape, probability[0, 0].cpu().numpy(), top, left)))
    return results


def _cut(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    out = np.zeros((side, side), dtype=np.float32)  # air (0 in [0, 1]) outside the slice
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, image.shape[0]), min(left + side, image.shape[1])
    out[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    return out


def _paste(shape: tuple[int, ...], block: np.ndarray, top: int, left: int) -> np.ndarray:
    out = np.zeros(shape, dtype=np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + block.shape[0], shape[0]), min(left + block.shape[1], shape[1])
    out[y0:y1, x0:x1] = block[y0 - top:y1 - top, x0 - left:x1 - left]
    return out


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
                  per_image: int = 1, lesion_size: tuple[int, int] | None = None, seed: int = 0, batch: int = 32,
                  overwrite: bool = False, progress: bool = True, source_map: str | Path | None = None) -> Path:
    """`n` real slices of `into` (default: the run's training data; its `split`, slices without
    lesions) with lesions painted in; returns `out`, a synthetic dataset folder."""
    run_dir, out = Path(run), Path(out)
    record = read_run(run_dir)
    source = Dataset.load(into or record.data["path"])
    target = check_source_map_target(source_map, out, overwrite)
    pool = [s for s in source.select(split=split or None) if not s.boxes]
    if not pool:
        raise UserError(f"{source.root}: no '{split}' slice without lesions to paint into; choose --split or --into")
    lesion_label = label or _lesion_label(source)
    request = _Request(boxes, Path(boxes_from) if boxes_from else None,
                       Jitter.parse(PAPER_JITTER if jitter is None else jitter), positions, per_image, lesion_size)
    # layouts from the hosts' own split unless asked otherwise: no test lesion's geometry in training data
    reference = Dataset.load(request.boxes_from).samples if request.boxes_from else source.select(split=split or None)
    layouts = [s.boxes for s in reference if s.boxes]
    if not boxes and not layouts:
        raise UserError(f"{request.boxes_from or source.root}: no slice has lesion boxes to take layouts or sizes "
                        "from; pass --boxes or --boxes-from")
    painter = load_painter(run_dir, default_device())
    links: list[dict] = []
    with DatasetWriter(out, _info(source, out, run_dir, seed, lesion_label), overwrite=overwrite) as writer:
        bar = tqdm(total=n, desc="paint", unit="img", disable=not progress)
        for start in range(0, n, batch):
            chunk = [seed + i for i in range(start, min(start + batch, n))]
            _paint_chunk(painter, source, pool, writer, chunk, layouts, request, lesion_label, run_dir, links)
            bar.update(len(chunk))
        bar.close()
        done = writer.commit(SplitPlan())
    if target:
        write_source_map(target, done, links)
    return done


def _lesion_label(source: Dataset) -> str:
    """The class the source set's lesion slices carry (the most common among slices with boxes)."""
    counts: dict[str, int] = {}
    for sample in source.samples:
        if sample.boxes:
            counts[sample.label] = counts.get(sample.label, 0) + 1
    if not counts:
        raise UserError(f"{source.root}: no slice has lesion boxes, so the lesion class is unknown; pass --label")
    return max(sorted(counts), key=counts.get)


def _info(source: Dataset, out: Path, run_dir: Path, seed: int, lesion_label: str) -> DatasetInfo:
    info = source.info
    return DatasetInfo(name=out.name, modality=info.modality, dimensionality=2,
                       classes=sorted(set(info.classes) | {lesion_label}), channels=info.channels,
                       intensity_unit=info.intensity_unit, png_slope=info.png_slope, png_intercept=info.png_intercept,
                       source={"synthetic": True, "generator": "inpaint2d", "run": str(run_dir.resolve()),
                               "seed": seed, "pathosynth": __version__})


def _paint_chunk(painter: Painter, source: Dataset, pool: list[Sample], writer: DatasetWriter, seeds: list[int],
                 layouts: list, request: _Request, lesion_label: str, run_dir: Path, links: list) -> None:
    samples, images, chosen = [], [], []
    for seed in seeds:
        sample, image, layout = _source_and_layout(source, pool, seed, layouts, request)
        samples.append(sample), images.append(image), chosen.append(layout)
    painted, masks = paint(painter, images, chosen, seeds)
    for sample, seed, image, mask, layout in zip(samples, seeds, painted, masks, chosen):
        sid = f"synthetic-{seed:08d}"
        links.append({"synthetic": sid, "source_sample": sample.id, "source_patient": sample.patient_id})
        row = Sample(id=sid, patient_id=sid, image="", label=lesion_label, split="train",
                     boxes=layout, synthetic={"model": "inpaint2d", "run": str(run_dir.resolve()),
                                              "checkpoint": str(painter.file.relative_to(run_dir)),
                                              "checkpoint_sha256": painter.sha256, "step": painter.step, "seed": seed,
                                              "condition": {"boxes": layout, "positions": request.positions}})
        spacing = tuple(sample.spacing or (1.0, 1.0))
        writer.add(row, MedicalImage(image, spacing, (0.0, 0.0), plain_direction(2)), mask=mask.astype(np.uint8))


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
