"""Conditions in, images + labels + provenance out: a trained run -> a synthetic dataset folder.

The folder follows the same contract as imported data (data/dataset.py), so a synthetic set is
usable anywhere a real one is. Image i gets seed `seed + i`; its latent comes from that seed alone
and the generator runs in eval mode, so the same model, seed and condition always give the same
image, whatever the batch it was made in. Every row records its model, the generator file's
sha256, its seed and its condition; every file is marked synthetic in its own metadata, and no
file names a source: no patient's identifier (each image is its own "patient", `synthetic-<seed>`),
no training-data name or path (the set is named after its own folder). Box layouts drawn from the
training data are copied as numbers only, jittered, without the image or patient they came from.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathosynth import __version__
from pathosynth.contracts import RunRecord, read_run
from pathosynth.data.boxes import box_image, box_is_inside, format_boxes
from pathosynth.data.dataset import Dataset, DatasetInfo, DatasetWriter, Sample
from pathosynth.data.image import MedicalImage, plain_direction
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError
from pathosynth.models import build_generator
from pathosynth.latents import latents_for_seeds
from pathosynth.runtime import default_device
from pathosynth.training import checkpoint as ckpt
from pathosynth.training.data import boxes_at_resolution

UNLABELLED = "unlabelled"
PAPER_JITTER = "flip,shift=0.1,zoom=0.1"  # CPGGAN's box augmentation at generation (METHODS section 3)


@dataclass
class Jitter:
    """Random flips, shift and zoom applied to a box layout as to the whole image (Keras-style:
    shift as a fraction of the image side, zoom about the image centre)."""

    flip: bool = False
    shift: float = 0.0
    zoom: float = 0.0

    @classmethod
    def parse(cls, text: str | None) -> Jitter:
        jitter = cls()
        for part in (text or "").split(","):
            name, _, value = part.strip().partition("=")
            if not name:
                continue
            try:
                if name == "flip" and not value:
                    jitter.flip = True
                elif name in ("shift", "zoom") and value:
                    amount = float(value)
                    if not 0 <= amount < 1:
                        raise ValueError
                    setattr(jitter, name, amount)
                else:
                    raise ValueError
            except ValueError:
                raise UserError(f"--jitter '{text}': cannot read '{part.strip()}'; write it like "
                                f"{PAPER_JITTER} (shift and zoom are fractions below 1)") from None
        return jitter

    def apply(self, boxes: list[list[float]], size: int, rng: random.Random) -> list[list[float]]:
        flip_x = self.flip and rng.random() < 0.5
        flip_y = self.flip and rng.random() < 0.5
        dx, dy = (rng.uniform(-self.shift, self.shift) * size for _ in range(2))
        zoom = rng.uniform(1 - self.zoom, 1 + self.zoom)
        centre = size / 2
        moved = []
        for x0, y0, x1, y1 in boxes:
            if flip_x:
                x0, x1 = size - x1, size - x0
            if flip_y:
                y0, y1 = size - y1, size - y0
            x0, x1 = ((v - centre) * zoom + centre + dx for v in (x0, x1))
            y0, y1 = ((v - centre) * zoom + centre + dy for v in (y0, y1))
            box = [round(min(max(v, 0.0), size), 2) for v in (x0, y0, x1, y1)]
            # keep a box unless the border cut it to a sliver (under 1 px, or under its own size)
            if box[2] - box[0] >= min(1.0, x1 - x0) and box[3] - box[1] >= min(1.0, y1 - y0) > 0:
                moved.append(box)
        return moved


@dataclass
class _Generator:
    model: torch.nn.Module
    file: Path
    sha256: str
    record: dict
    phase: dict


def load_generators(record: RunRecord, device: torch.device) -> dict[str | None, _Generator]:
    """The run's generators: {None: the one} or, for a class-separate run, {class: its own}."""
    return {name: load_generator(folder, device) for name, folder in record.generator_folders.items()}


def load_generator(run_dir: Path, device: torch.device) -> _Generator:
    path = run_dir / "checkpoints" / ckpt.GENERATOR
    payload = ckpt.load_checkpoint(path)
    if payload.get("kind") != "generator":
        raise UserError(f"{path}: not a generator file; point to a run folder made by `pathosynth train`")
    try:
        model = build_generator(payload["model"], payload["generator_kwargs"])
        model.load_state_dict(payload["weights"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: the weights do not fit the recorded model ({exc}); "
                        "train the run again with this pathosynth version") from exc
    return _Generator(model.to(device).eval(), path, ckpt.sha256(path), payload, dict(payload.get("phase") or {}))


def _training_boxes(dataset_dir: Path, label: str | None, resolution: int, required: bool = True
                    ) -> list[list[list[float]]]:
    """Every image's boxes from a dataset folder, in pixels of the generated image (the training
    resolution): padded to square and scaled, as the training data were."""
    dataset = Dataset.load(dataset_dir)
    layouts = []
    for sample in dataset.select(label=None if label == UNLABELLED else label):
        if not sample.boxes:
            continue
        size = dataset.info.image_size
        if size is None:
            size = list(dataset.read(sample).shape[-2:])
        height, width = size[-2:]
        layouts.append(boxes_at_resolution(sample.boxes, height, width, resolution))
    if not layouts and required:
        raise UserError(f"{dataset_dir}: no image{' of class ' + label if label else ''} has boxes to "
                        "take; pass --boxes or another --boxes-from")
    return layouts


def generate_images(run: str | Path, n: int, out: str | Path, *, label: str | None = None,
                    boxes: list[list[float]] | None = None, boxes_from: str | Path | None = None,
                    jitter: str | None = None, seed: int = 0, batch: int = 64, overwrite: bool = False,
                    progress: bool = True) -> Path:
    """Write `n` synthetic images made by the run in `run` to the dataset folder `out`.

    Labels: `label`, or, for a class-conditional or class-separate run without one, the classes in
    turn. Boxes (box-conditioned runs only): `boxes` for every image, or layouts drawn from the
    dataset `boxes_from` (default: the run's training data) moved by `jitter` (default: the paper's
    flip, 10% shift, 10% zoom). Boxes are in pixels of the generated image.
    """
    job = _open_run(Path(run), n, batch)
    labels = _labels(job, label, n)
    layouts = _layouts(job, labels, label, boxes, boxes_from, jitter, seed)
    return _write(job, out, labels, layouts, seed, batch, overwrite, progress)


@dataclass
class _Job:
    """A trained 2D run, read once: its generators and what generation needs to know of it."""

    run_dir: Path
    record: RunRecord
    device: torch.device
    generators: dict
    classes: list[str]

    @property
    def config(self) -> dict:
        return self.record.config

    @property
    def conditional(self) -> bool:
        return self.config["classes"] == "conditional"

    @property
    def resolution(self) -> int:
        return int(self.config["resolution"])

    @property
    def box_model(self) -> bool:
        return bool(self.config.get("boxes"))


def _open_run(run_dir: Path, n: int, batch: int) -> _Job:
    record = read_run(run_dir)
    if n < 1:
        raise UserError(f"--n must be at least 1, got {n}")
    if batch < 1:
        raise UserError(f"--batch must be at least 1, got {batch}")
    device = default_device()
    generators = load_generators(record, device)
    classes = list(record.separate) if record.separate else list(record.data["classes"])
    return _Job(run_dir, record, device, generators, classes)


def _labels(job: _Job, label: str | None, n: int) -> list[str]:
    if label is not None and label not in job.classes:
        raise UserError(f"unknown label '{label}' for {job.run_dir}; it knows {', '.join(job.classes)}")
    if job.record.separate or job.conditional:
        return [label] * n if label else [job.classes[i % len(job.classes)] for i in range(n)]
    trained_label = job.config.get("label")
    if label and trained_label and label != trained_label:
        raise UserError(f"{job.run_dir} was trained on '{trained_label}' images only; drop --label or "
                        f"pass --label {trained_label}")
    if label and not trained_label:
        raise UserError(f"{job.run_dir} was trained without labels; it cannot make '{label}' images on "
                        "request: train with --classes conditional or separate")
    return [trained_label or UNLABELLED] * n


def _layouts(job: _Job, labels: list[str], label: str | None, boxes, boxes_from, jitter: str | None,
             seed: int) -> list[list[list[float]]]:
    """Each image's boxes: the given ones, or layouts drawn from a dataset, jittered; none without boxes."""
    n, resolution = len(labels), job.resolution
    if not job.box_model:
        if boxes or boxes_from or jitter:
            raise UserError(f"{job.run_dir} is not box-conditioned ({job.config['model']} without --boxes); "
                            "train a box-conditioned run (--model pggan --boxes, or unet-cgan) to place lesions")
        return [[] for _ in range(n)]
    if boxes and boxes_from:
        raise UserError("pass --boxes or --boxes-from, not both")
    if boxes:
        for box in boxes:
            if not box_is_inside(box, (resolution, resolution)):
                raise UserError(f"box {format_boxes([box])} is not inside the {resolution}x{resolution} "
                                f"generated image; give x0,y0,x1,y1 with 0 <= x0 < x1 <= {resolution} "
                                f"and 0 <= y0 < y1 <= {resolution}")
        layouts = [list(map(list, boxes)) for _ in range(n)]
        return _jittered(layouts, Jitter.parse(jitter), resolution, seed, repeat=False) if jitter else layouts
    source = Path(boxes_from) if boxes_from else Path(job.record.data["path"])
    if not boxes_from and not (source / "dataset.json").is_file():
        raise UserError(f"{job.run_dir} takes its box layouts from its training data at {source}, which "
                        "is gone; pass --boxes or --boxes-from DIR")
    # Each class draws layouts from its own images: a class whose images have no boxes
    # (e.g. non-tumour) is generated without boxes.
    pools = {name: _training_boxes(source, name, resolution, required=False) for name in set(labels)}
    if not any(pools.values()):
        raise UserError(f"{source}: no image{' of class ' + label if label else ''} has boxes to take; "
                        "pass --boxes or another --boxes-from")
    rng = random.Random(seed)
    picks = [pools[name][rng.randrange(len(pools[name]))] if pools[name] else [] for name in labels]
    return _jittered(picks, Jitter.parse(PAPER_JITTER if jitter is None else jitter), resolution, seed, repeat=True)


def _dataset_info(job: _Job, out: str | Path, labels: list[str], seed: int) -> DatasetInfo:
    data, intensity = job.record.data, job.record.intensity
    info = DatasetInfo(
        # named after its own folder, as imported sets are: the training data's name or path is a
        # source's, and stays out (DESIGN.md); the run's record keeps it for whoever holds the run
        name=Path(out).name, modality=data.get("modality", "OT"), dimensionality=2,
        classes=sorted(set(job.classes) | set(labels)), channels=data["channels"],
        intensity_unit=data.get("intensity_unit", "arbitrary"),
        png_slope=data.get("png_slope", 1.0), png_intercept=data.get("png_intercept", 0.0),
        source={"synthetic": True, "generator": job.config["model"], "run": str(job.run_dir.resolve()),
                "seed": seed, "pathosynth": __version__})
    if info.png_slope == 1.0 and info.png_intercept == 0.0:
        # a 16-bit PNG mapping of the data's range, so values keep their unit
        info.png_intercept = intensity.low_clip
        info.png_slope = max(intensity.high_clip - intensity.low_clip, 1e-12) / 65535
    return info


def _write(job: _Job, out: str | Path, labels: list[str], layouts, seed: int, batch: int, overwrite: bool,
           progress: bool) -> Path:
    n = len(labels)
    order = sorted(range(n), key=lambda i: (str(labels[i]), i))  # one generator at a time
    with DatasetWriter(out, _dataset_info(job, out, labels, seed), overwrite=overwrite) as writer:
        bar = tqdm(total=n, desc="generate", unit="img", disable=not progress)
        for start in range(0, n, batch):
            chunk = order[start:start + batch]
            by_generator: dict = {}
            for i in chunk:
                by_generator.setdefault(labels[i] if job.record.separate else None, []).append(i)
            for key, indices in by_generator.items():
                _write_chunk(job, writer, job.generators[key], indices, labels, layouts, seed)
            bar.update(len(chunk))
        bar.close()
        return writer.commit(SplitPlan())


def _write_chunk(job: _Job, writer: DatasetWriter, made: _Generator, indices: list[int], labels: list[str],
                 layouts, seed: int) -> None:
    conditional, box_model, separate = job.conditional, job.box_model, bool(job.record.separate)
    images = run_generator(made, [seed + i for i in indices],
                           [job.classes.index(labels[i]) for i in indices] if conditional else None,
                           [layouts[i] for i in indices] if box_model else None, job.resolution, job.device)
    spacing = tuple(job.record.data.get("spacing") or (1.0, 1.0))
    for i, image in zip(indices, images):
        values = job.record.intensity.restore(image)
        array = values[0] if values.shape[0] == 1 else values
        sample = Sample(id=f"synthetic-{seed + i:08d}", patient_id=f"synthetic-{seed + i:08d}",
                        image="", label=labels[i], split="train", boxes=layouts[i],
                        synthetic={"model": job.config["model"], "run": str(job.run_dir.resolve()),
                                   "checkpoint": str(made.file.relative_to(job.run_dir)),
                                   "checkpoint_sha256": made.sha256,
                                   "step": made.record.get("step"), "seed": seed + i,
                                   "condition": {"label": labels[i] if (conditional or separate) else None,
                                                 "boxes": layouts[i] if box_model else None}})
        writer.add(sample, MedicalImage(array.astype(np.float32), spacing, (0.0, 0.0), plain_direction(2)))


def _jittered(layouts, jitter: Jitter, resolution: int, seed: int, repeat: bool):
    rng = random.Random(seed + 7919)
    moved = []
    for layout in layouts:
        if not layout:
            moved.append([])
            continue
        for _ in range(20 if repeat else 1):  # redraw when the jitter pushed every box out
            result = jitter.apply(layout, resolution, rng)
            if result:
                break
        moved.append(result)
    return moved


@torch.no_grad()
def run_generator(made: _Generator, seeds: list[int], labels: list[int] | None,
                   layouts: list[list[list[float]]] | None, resolution: int, device) -> list[np.ndarray]:
    z = latents_for_seeds(made.model, seeds, device)
    kwargs: dict = {}
    if labels is not None:
        kwargs["labels"] = torch.tensor(labels, dtype=torch.int64, device=device)
    if layouts is not None:
        kwargs["boxes"] = torch.from_numpy(box_image(layouts, resolution)).to(device)
    images = made.model(z, **kwargs, **made.phase).float()
    if not torch.isfinite(images).all():
        raise UserError(f"{made.file}: the generator makes NaN or infinite pixels (its training diverged); "
                        "train the run again with a lower learning rate, or resume it from an earlier checkpoint")
    if images.shape[-1] != resolution:  # a PGGAN exported before it reached full size
        images = torch.nn.functional.interpolate(images, size=(resolution, resolution), mode="nearest")
    return list(images.cpu().numpy())
