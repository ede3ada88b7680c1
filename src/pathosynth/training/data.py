"""A dataset folder's training split, in memory, at the training resolution.

Small medical datasets fit in memory (4,000 slices at 64x64 are 66 MB), so the loop samples
batches from tensors instead of re-reading files. Intensities are mapped to about [-1, 1] by the
training images' 0.5th-99.5th percentile range; the mapping is kept in the run folder so that
generated images are written back in the dataset's own unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathosynth.contracts import Intensity
from pathosynth.data.boxes import box_image
from pathosynth.data.dataset import Dataset
from pathosynth.data.preprocess import pad_to_square
from pathosynth.errors import UserError

if TYPE_CHECKING:
    from pathosynth.config import TrainConfig


@dataclass
class TrainingSet:
    images: torch.Tensor  # (N, C, R, R), normalised
    labels: torch.Tensor  # (N,) int64 index into classes
    boxes: list[list[list[float]]]  # per image, pixels at the training resolution
    box_images: torch.Tensor | None  # (N, 1, R, R) when box-conditioned
    classes: list[str]
    channels: list[str]
    intensity: Intensity
    spacing: list[float] | None  # mm per pixel at the training resolution, when shared


def load_training_set(config: TrainConfig, progress: bool = True) -> TrainingSet:
    dataset = Dataset.load(config.data)
    info = dataset.info
    if info.dimensionality != 2:
        raise UserError(f"{config.data}: a {info.dimensionality}D dataset; the 2D GANs train on 2D "
                        "images (slices, radiographs): import 2D data or use a 2D phantom")
    if config.label and config.label not in info.classes:
        raise UserError(f"{config.data}: unknown label '{config.label}'; this dataset's classes are "
                        f"{', '.join(info.classes)}")
    # the low-data subset is drawn from the whole split, whatever --label, as `evaluate classify` does
    samples = dataset.select(split=config.split or None, label=config.label, train_patients=config.train_patients,
                             subset_seed=config.subset_seed)
    if not samples:
        raise UserError(f"{config.data}: no '{config.split}' images"
                        f"{' of class ' + config.label if config.label else ''}; check --split and --label")
    resolution = config.resolution
    images, all_boxes, spacings = [], [], set()
    for sample in tqdm(samples, desc="reading", unit="img", disable=not progress, leave=False):
        array = dataset.read(sample)
        height, width = array.shape[-2:]
        side = max(height, width)
        if height != width:
            array, _ = pad_to_square(array, side, value=float(array.min()))
        scale = resolution / side
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
        if side != resolution:
            tensor = F.interpolate(tensor, size=(resolution, resolution), mode="bilinear",
                                   antialias=side > resolution, align_corners=False)
        images.append(tensor[0])
        all_boxes.append(boxes_at_resolution(sample.boxes, height, width, resolution))
        if sample.spacing:
            spacings.add(tuple(round(s / scale, 6) for s in sample.spacing))
    stacked = torch.stack(images)
    if not torch.isfinite(stacked).all():
        raise UserError(f"{config.data}: some images hold NaN or infinite values; re-import the dataset")
    intensity = _intensity_range(stacked)
    label_index = {name: i for i, name in enumerate(info.classes)}
    labels = torch.tensor([label_index[s.label] for s in samples], dtype=torch.int64)
    if config.boxes and not any(all_boxes):
        raise UserError(f"{config.data}: no image has boxes, so a box-conditioned model cannot learn "
                        "where lesions go; import boxes (masks or a boxes column) or drop --boxes")
    return TrainingSet(images=intensity.normalise(stacked), labels=labels, boxes=all_boxes,
                       box_images=torch.from_numpy(box_image(all_boxes, resolution)) if config.boxes else None,
                       classes=list(info.classes), channels=list(info.channels), intensity=intensity,
                       spacing=list(spacings.pop()) if len(spacings) == 1 else None)


def boxes_at_resolution(boxes: list[list[float]], height: int, width: int, resolution: int
                        ) -> list[list[float]]:
    """Boxes of a height x width image in pixels of the square training image: centre-padded to
    square (as `pad_to_square` pads) and scaled to `resolution`."""
    side = max(height, width)
    top, left = (side - height) // 2, (side - width) // 2
    scale = resolution / side
    return [[(b[0] + left) * scale, (b[1] + top) * scale, (b[2] + left) * scale, (b[3] + top) * scale]
            for b in boxes]


def _intensity_range(images: torch.Tensor) -> Intensity:
    # A strided subsample keeps the percentile cheap on thousands of images.
    values = images.flatten()[:: max(1, images.numel() // 4_000_000)].double()
    low, high = torch.quantile(values, torch.tensor([0.005, 0.995], dtype=torch.float64)).tolist()
    if high <= low:
        low, high = float(images.min()), float(images.max())
    if high <= low:
        high = low + 1.0
    return Intensity(mid=(low + high) / 2, half=(high - low) / 2, low_clip=float(images.min()),
                     high_clip=float(images.max()))
