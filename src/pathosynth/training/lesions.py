"""The 2D lesion inpainter's training set: the slices that hold a lesion, at native resolution,
with the label map of each slice's largest lesion and its box.

The painter learns to paint a lesion's tissue from its label map (e.g. BraTS oedema, enhancing
rim, necrotic core) and the tissue around it, so it trains on the slices whose masks show a lesion;
it paints the largest connected lesion (fragments of a few pixels are not what it should learn).
It also learns to paint healthy tissue into a lesion-shaped hole with no labels (`healthy_share` of
its patches): the slices without lesions, each with holes at seeded places inside the organ. That
gives the control class of an augmentation experiment (slices repainted without a lesion), so a
classifier cannot learn "painted texture" as the sign of a tumour.
Slices are not resized: a patch around the lesion is cut at the slice's own pixel size. The same
selection gives generation its bank of lesion shapes (`lesion_samples`, `main_lesion`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import ndimage
from tqdm import tqdm

from pathosynth.contracts import Intensity
from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from pathosynth.generate.placement.slices import organ_mask, random_boxes

if TYPE_CHECKING:
    from pathosynth.config import TrainConfig


@dataclass
class LesionSet:
    images: torch.Tensor  # (N, 1, H, W) float16, normalised to [0, 1] (the data's clip range)
    lesions: torch.Tensor  # (N, 1, H, W) uint8: the largest lesion's labels, 0 elsewhere
    boxes: list[list[int]]  # per slice, the largest lesion's tight box [x0, y0, x1, y1) in px
    labels: list[int]  # the lesion label values, in channel order
    classes: list[str]
    channels: list[str]
    intensity: Intensity  # maps [-1, 1] to the data's unit; [0, 1] here is (normalised + 1) / 2
    spacing: list[float] | None
    healthy: torch.Tensor | None = None  # (M, 1, H, W) float16 slices without lesions, [0, 1]
    holes: list[tuple[int, list[int], int]] = field(default_factory=list)  # (healthy slice, box, lesion)


def main_lesion(mask: np.ndarray) -> tuple[np.ndarray, list[int]] | None:
    """The largest 8-connected lesion component's labels (0 elsewhere) and its tight box
    [x0, y0, x1, y1), or None without a lesion."""
    components, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))
    if count == 0:
        return None
    sizes = ndimage.sum(mask > 0, components, index=np.arange(1, count + 1))
    largest = components == 1 + int(np.argmax(sizes))
    ys, xs = np.nonzero(largest)
    return np.where(largest, mask, 0).astype(np.uint8), [int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                                                          int(ys.max()) + 1]


def lesion_samples(dataset: Dataset, split: str, train_patients: int | None, subset_seed: int) -> list:
    """The samples a run trains on (its split, its low-data subset) that have a mask."""
    return [s for s in dataset.select(split=split or None, train_patients=train_patients, subset_seed=subset_seed)
            if s.mask]


def load_lesion_set(config: TrainConfig, progress: bool = True) -> LesionSet:
    dataset = Dataset.load(config.data)
    info = dataset.info
    if info.dimensionality != 2 or len(info.channels) != 1:
        raise UserError(f"{config.data}: the 2D lesion inpainter trains on one-channel 2D slices with lesion "
                        f"masks; this set is {info.dimensionality}D with {len(info.channels)} channel(s)")
    images, lesions, boxes, spacings = [], [], [], set()
    samples = lesion_samples(dataset, config.split, config.train_patients, config.subset_seed)
    for sample in tqdm(samples, desc="reading", unit="img", disable=not progress, leave=False):
        found = main_lesion(dataset.read_mask(sample))
        if found is None:
            continue
        images.append(dataset.read(sample)[0].astype(np.float32))
        lesions.append(found[0])
        boxes.append(found[1])
        if sample.spacing:
            spacings.add(tuple(round(s, 6) for s in sample.spacing))
    if not images:
        raise UserError(f"{config.data}: no '{config.split}' slice has a lesion mask; the lesion inpainter learns "
                        "lesions from their masks: import the masks (e.g. BraTS segmentations)")
    if len({image.shape for image in images}) != 1:
        raise UserError(f"{config.data}: the slices differ in size; the lesion inpainter needs one slice size "
                        "(import with a common size, e.g. the BraTS importer's padding)")
    stacked, maps = np.stack(images), np.stack(lesions)
    intensity = _intensity(stacked)
    unit = to_unit(intensity, stacked)
    values = sorted(int(v) for v in np.unique(maps) if v)
    data = LesionSet(images=torch.from_numpy(unit.astype(np.float16))[:, None],
                     lesions=torch.from_numpy(maps)[:, None], boxes=boxes, labels=values, classes=list(info.classes),
                     channels=list(info.channels), intensity=intensity,
                     spacing=list(spacings.pop()) if len(spacings) == 1 else None)
    if config.family.healthy_share > 0:
        _add_healthy(data, dataset, config, progress)
    return data


def _add_healthy(data: LesionSet, dataset: Dataset, config: TrainConfig, progress: bool) -> None:
    """Slices without lesions (at most as many as the lesion slices, seeded), each with
    HOLES_PER_SLICE holes: a training lesion's box size at a random place inside the organ."""
    rng = np.random.default_rng([config.seed, 17])
    samples = [s for s in dataset.select(split=config.split or None, train_patients=config.train_patients,
                                         subset_seed=config.subset_seed) if not s.boxes]
    samples = [samples[i] for i in sorted(rng.permutation(len(samples))[:len(data.boxes)])]
    shape = tuple(data.images.shape[-2:])
    slices = []
    for sample in tqdm(samples, desc="reading lesion-free", unit="img", disable=not progress, leave=False):
        image = dataset.read(sample)[0].astype(np.float32)
        if image.shape != shape:
            continue
        organ = organ_mask(image)
        for _ in range(HOLES_PER_SLICE):
            j = int(rng.integers(len(data.boxes)))
            x0, y0, x1, y1 = data.boxes[j]
            placed = random_boxes(organ, [(x1 - x0, y1 - y0)], rng)
            if placed:
                data.holes.append((len(slices), [int(v) for v in placed[0]], j))
        slices.append(to_unit(data.intensity, image).astype(np.float16))
    if slices:
        data.healthy = torch.from_numpy(np.stack(slices))[:, None]


HOLES_PER_SLICE = 2


def to_unit(intensity: Intensity, values: np.ndarray) -> np.ndarray:
    """The data's unit -> [0, 1], the painter's scale (air 0), for training and generation alike."""
    return np.clip((intensity.normalise(values) + 1.0) / 2.0, 0.0, 1.0)


def from_unit(intensity: Intensity, unit: np.ndarray) -> np.ndarray:
    return intensity.restore(unit * 2.0 - 1.0)


def _intensity(images: np.ndarray) -> Intensity:
    """The data's own range: background (the minimum) to the 99.9th percentile, so that air is 0 in
    [0, 1] (the patch's padding value) and bright lesion rims are not clipped."""
    low = float(images.min())
    high = float(np.percentile(images[:: max(1, len(images) // 64)], 99.9))
    if high <= low:
        high = low + 1.0
    return Intensity(mid=(low + high) / 2, half=(high - low) / 2, low_clip=low, high_clip=high)
