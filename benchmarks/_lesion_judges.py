"""The judges behind benchmarks/inpaint_quality.py: slice loading at a judge's size, a lesion
segmenter (MONAI 2D U-Net), the box hit rule, Dice, the "untouched far from the boxes" check and
lesion-crop diversity.

Boxes are [x0, y0, x1, y1] in pixels of the stored slice (max exclusive), as in the dataset
manifest; the segmenter works at a fraction of the slice's side and its probability is brought back
to the slice's pixels before any box is judged, so real and generated lesions are judged alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathosynth.data.dataset import Dataset, Sample

# ------------------------------------------------------------------------------------ slices


def pooled(image: np.ndarray, size: int) -> torch.Tensor:
    """A (H, W) slice as a (1, size, size) tensor by area averaging (the slices are square, 256 px)."""
    tensor = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    return F.interpolate(tensor, size=(size, size), mode="area")[0]


def load_slices(dataset: Dataset, samples: list[Sample], size: int, masks: bool = False
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images (N, 1, size, size) in the data's unit and, with `masks`, the lesion fraction per pixel
    (mask > 0, area-averaged); slices are pooled as they are read, so a whole split fits in memory."""
    images, fractions = [], []
    for sample in samples:
        image = dataset.read(sample)[0]
        images.append(pooled(image, size))
        if masks:
            mask = dataset.read_mask(sample)
            lesion = np.zeros(image.shape, np.float32) if mask is None else (mask > 0).astype(np.float32)
            fractions.append(pooled(lesion, size))
    x = torch.stack(images) if images else torch.zeros((0, 1, size, size))
    return x, (torch.stack(fractions) if masks and fractions else None)


def lesion_label(dataset: Dataset) -> str:
    """The class of the slices with lesion boxes (the most common one)."""
    labels = [s.label for s in dataset.samples if s.boxes]
    return max(sorted(set(labels)), key=labels.count)


# --------------------------------------------------------------------------------- segmenter


def lesion_segmenter(prior: float = 0.02) -> nn.Module:
    """A small MONAI 2D U-Net (16-128 channels, one residual unit per level, batch norm): large
    enough to outline a glioma with its oedema at 128 px, small enough to train in minutes on one
    thread. The output starts at the lesion prior (the last convolution's bias): started at 0.5
    everywhere, Adam spent ~1,000 steps walking the background logit down to -4 before learning
    anything about lesions (and instance norm, MONAI's default, was slower still)."""
    from monai.networks.nets import UNet

    model = UNet(spatial_dims=2, in_channels=1, out_channels=1, channels=(16, 32, 64, 128), strides=(2, 2, 2),
                 num_res_units=1, norm="batch")
    last = [m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m.out_channels == 1][-1]
    with torch.no_grad():
        last.bias.fill_(math.log(prior / (1.0 - prior)))
    return model


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice over the whole batch: per slice, the lesion-free half of the batch (Dice 0 whatever
    is predicted but nothing) would drive every probability to 0."""
    probability = torch.sigmoid(logits)
    return 1.0 - (2.0 * (probability * target).sum() + 1.0) / (probability.sum() + target.sum() + 1.0)


def train_segmenter(x: torch.Tensor, masks: torch.Tensor, seed: int, steps: int, batch: int = 16,
                    lr: float = 2e-3) -> nn.Module:
    """BCE + soft Dice against the lesion fraction per pixel. Half of each batch are slices with a
    lesion (drawn with replacement): otherwise the many lesion-free slices teach "no lesion
    anywhere". Random left-right flips; the learning rate decays to 0 (cosine) so the last steps
    do not swing the detector between over- and under-calling."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    has_lesion = masks.flatten(1).sum(1) > 0
    pos, neg = torch.nonzero(has_lesion).flatten(), torch.nonzero(~has_lesion).flatten()
    model = lesion_segmenter()
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, max(steps, 1))
    for _ in range(steps):
        index = torch.cat([pos[torch.randint(len(pos), (batch // 2,), generator=generator)],
                           neg[torch.randint(len(neg), (batch - batch // 2,), generator=generator)]])
        images, target = x[index], masks[index]
        flip = torch.rand(len(index), generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        target = torch.where(flip[:, None, None, None], target.flip(-1), target)
        logits = model(images)
        loss = F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return model.eval()


@torch.no_grad()
def lesion_probability(model: nn.Module, x: torch.Tensor, side: int, batch: int = 32) -> np.ndarray:
    """(N, side, side) lesion probability at the slices' own pixels (bilinear from the judge's size)."""
    out = []
    for i in range(0, len(x), batch):
        logits = F.interpolate(model(x[i:i + batch]), size=(side, side), mode="bilinear", align_corners=False)
        out.append(torch.sigmoid(logits)[:, 0].numpy().astype(np.float32))
    return np.concatenate(out) if out else np.zeros((0, side, side), np.float32)


# ------------------------------------------------------------------------------------- boxes


@dataclass
class HitRule:
    """A lesion is found in a box when the segmenter's probability is above `threshold` on at least
    `fraction` of the box's pixels or on at least `pixels` of them, whichever is fewer (a big
    glioma box is found by a 20 px core, a 6 x 8 px satellite by 5 px)."""

    threshold: float = 0.5
    fraction: float = 0.10
    pixels: int = 20

    def needed(self, area: int) -> int:
        return max(1, min(self.pixels, math.ceil(self.fraction * area)))

    def describe(self) -> str:
        return (f"probability > {self.threshold} on >= {self.fraction:.0%} of the box's pixels or >= {self.pixels} "
                "px of it, whichever is fewer")


def box_slices(box: list[float], shape: tuple[int, int], grow: int = 0) -> tuple[slice, slice]:
    """Rows and columns of the pixels the box touches (the enclosing integer box), grown by `grow`."""
    x0, y0 = max(0, math.floor(box[0]) - grow), max(0, math.floor(box[1]) - grow)
    x1, y1 = min(shape[1], math.ceil(box[2]) + grow), min(shape[0], math.ceil(box[3]) + grow)
    return slice(y0, y1), slice(x0, x1)


def largest_box(boxes: list[list[float]]) -> list[float]:
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def box_hit(probability: np.ndarray, box: list[float], rule: HitRule) -> bool:
    rows, cols = box_slices(box, probability.shape)
    inside = probability[rows, cols]
    return bool(inside.size and (inside > rule.threshold).sum() >= rule.needed(inside.size))


def region(boxes: list[list[float]], shape: tuple[int, int], grow: int) -> np.ndarray:
    out = np.zeros(shape, dtype=bool)
    for box in boxes:
        out[box_slices(box, shape, grow)] = True
    return out


def dice(found: np.ndarray, truth: np.ndarray) -> float:
    """Dice of two boolean arrays; NaN when both are empty (nothing to agree on)."""
    total = int(found.sum()) + int(truth.sum())
    return float("nan") if total == 0 else 2.0 * float((found & truth).sum()) / total


def far_from_boxes(shape: tuple[int, int], boxes: list[list[float]], margin: int) -> np.ndarray:
    """Pixels whose Chebyshev distance to every box (its enclosing integer box) is more than `margin`:
    computed here, not by the package, so the check does not share the code it checks."""
    yy, xx = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    far = np.ones(shape, dtype=bool)
    for box in boxes:
        x0, y0, x1, y1 = math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3])
        dy = np.maximum(np.maximum(y0 - yy, yy - (y1 - 1)), 0)
        dx = np.maximum(np.maximum(x0 - xx, xx - (x1 - 1)), 0)
        far &= np.maximum(dy, dx) > margin
    return far


def bit_identical(a: np.ndarray, b: np.ndarray) -> bool:
    """The same bits (not merely equal floats: -0.0 and 0.0 differ here)."""
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


# --------------------------------------------------------------------------------- diversity


def lesion_crop(image: np.ndarray, box: list[float], side: int = 32) -> np.ndarray:
    """The box's pixels resized to side x side (bilinear; the crop's own scale, not the slice's)."""
    rows, cols = box_slices(box, image.shape)
    crop = torch.from_numpy(np.ascontiguousarray(image[rows, cols], dtype=np.float32))[None, None]
    return F.interpolate(crop, size=(side, side), mode="bilinear", align_corners=False)[0, 0].numpy()


def mean_pairwise_l2(crops: list[np.ndarray], seed: int = 0, pairs: int = 2000) -> float:
    """Mean L2 distance (RMS per pixel) between random pairs of different crops: how varied the
    lesions are across images. NaN with fewer than two crops."""
    if len(crops) < 2:
        return float("nan")
    flat = np.stack([c.ravel() for c in crops])
    rng = np.random.default_rng(seed)
    first, second = rng.integers(len(flat), size=(2, pairs))
    keep = first != second
    return float(np.sqrt(((flat[first[keep]] - flat[second[keep]]) ** 2).mean(axis=1)).mean())
