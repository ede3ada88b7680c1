"""The small judges behind benchmarks/gan_quality.py: image loading, a CNN classifier, a lesion
segmenter and the box-placement hit test.

Everything here works at one size (64 px by default, the `small` preset's training resolution)
on single images of shape [c, y, x]; nothing here imports the GAN code, so the judges are the
same for real and generated images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from torch import nn

from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.preprocess import pad_to_square

# ------------------------------------------------------------------------------------ images


@dataclass
class Images:
    """A set of images at `size` px with their labels, boxes (px at `size`) and masks."""

    x: torch.Tensor  # (N, C, size, size), normalised (see normalise)
    raw: torch.Tensor  # (N, C, size, size) in the dataset's intensity unit
    labels: list[str]
    boxes: list[list[list[float]]]
    masks: torch.Tensor | None  # (N, 1, size, size) tumour fraction per pixel, real data only
    patients: list[str]


def load_images(dataset: Dataset, samples: list[Sample], size: int = 64, masks: bool = False) -> Images:
    """Read, pad to square and resize as `pathosynth.training.data.load_training_set` does
    (bilinear with antialiasing when shrinking), so real images look to the judges as they
    looked to the GAN. Boxes and masks follow the same geometry."""
    images, all_boxes, all_masks = [], [], []
    for sample in samples:
        array = dataset.read(sample)
        side = max(array.shape[-2:])
        top = left = 0
        if array.shape[-2] != array.shape[-1]:
            array, (top, left) = pad_to_square(array, side, value=float(array.min()))
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
        if side != size:
            tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=side > size,
                                   align_corners=False)
        images.append(tensor[0])
        scale = size / side
        all_boxes.append([[(b[0] + left) * scale, (b[1] + top) * scale, (b[2] + left) * scale,
                           (b[3] + top) * scale] for b in sample.boxes])
        if masks:
            mask = dataset.read_mask(sample)
            mask = np.zeros(array.shape[-2:], np.float32) if mask is None else (mask > 0).astype(np.float32)
            if mask.shape[-2] != mask.shape[-1]:
                mask, _ = pad_to_square(mask, side, value=0.0)
            # area averaging: a pixel holds the fraction of it that is tumour
            all_masks.append(F.interpolate(torch.from_numpy(mask)[None, None], size=(size, size), mode="area")[0])
    raw = torch.stack(images)
    return Images(x=normalise(raw), raw=raw, labels=[s.label for s in samples], boxes=all_boxes,
                  masks=torch.stack(all_masks) if masks else None, patients=[s.patient_id for s in samples])


def blurred(images: Images, sigma: float) -> Images:
    """The same images smoothed by a Gaussian of `sigma` px in-plane (a diagnostic: how much of
    a generator's gap to real images is its high-frequency texture)."""
    raw = torch.from_numpy(ndimage.gaussian_filter(images.raw.numpy(), (0, 0, sigma, sigma)))
    return Images(x=normalise(raw), raw=raw, labels=images.labels, boxes=images.boxes, masks=images.masks,
                  patients=images.patients)


def normalise(images: torch.Tensor) -> torch.Tensor:
    """Divide each image by its own 99th percentile: the same rule for real and synthetic images,
    so a GAN's overall brightness offset is not a cue, and bright pathology stays above 1."""
    scale = images.flatten(1).quantile(0.99, dim=1).clamp_min(1e-6)
    return images / scale[:, None, None, None]


# -------------------------------------------------------------------------------- classifier


def small_cnn(channels: int = 1) -> nn.Module:
    """The difficulty test's classifier (tests/data/test_phantom_difficulty.py): three conv
    layers and a global max pool, so a small bright lesion anywhere can raise the score."""
    return nn.Sequential(
        nn.Conv2d(channels, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Linear(32, 1),
    )


def train_classifier(x: torch.Tensor, positive: torch.Tensor, seed: int, steps: int, batch: int = 64,
                     lr: float = 2e-3, weight_decay: float = 0.05) -> nn.Module:
    """Train on (x, positive) for a fixed number of steps. Each batch is half positive, half
    negative (drawn with replacement), so the 2:1 imbalance of the real split and the 1:1 of a
    synthetic set give the same training problem, and the same step count gives both the same
    budget whatever their size. Augmentation (left-right flips, +-4 px shifts, +-15% intensity)
    and weight decay: without them the real-trained CNN learned each training patient's look
    and ranked the 6 test patients barely above chance (pooled AUC 0.51 -> 0.64, 3 seeds)."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    pos, neg = torch.nonzero(positive).flatten(), torch.nonzero(~positive).flatten()
    if len(pos) == 0 or len(neg) == 0:
        raise ValueError("the training set needs images of both classes")
    model = small_cnn(x.shape[1])
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    targets = torch.cat([torch.ones(batch // 2), torch.zeros(batch - batch // 2)])
    for _ in range(steps):
        index = torch.cat([pos[torch.randint(len(pos), (batch // 2,), generator=generator)],
                           neg[torch.randint(len(neg), (batch - batch // 2,), generator=generator)]])
        images = x[index]
        flip = torch.rand(len(index), generator=generator) < 0.5
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        shift_y, shift_x = torch.randint(-4, 5, (2,), generator=generator).tolist()
        images = torch.roll(images, (shift_y, shift_x), dims=(2, 3))  # the background is ~0: rolling is a shift
        images = images * (0.85 + 0.3 * torch.rand(len(index), 1, 1, 1, generator=generator))
        loss = F.binary_cross_entropy_with_logits(model(images)[:, 0], targets)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    return model.eval()


@torch.no_grad()
def scores(model: nn.Module, x: torch.Tensor, batch: int = 256) -> torch.Tensor:
    return torch.cat([model(x[i:i + batch])[:, 0] for i in range(0, len(x), batch)])


def test_classifier(model: nn.Module, x: torch.Tensor, positive: torch.Tensor) -> dict:
    """ROC AUC, and sensitivity and specificity at probability 0.5 (logit 0): with balanced
    batches 0.5 is the natural operating point, and it needs no real data to choose, which a
    classifier trained on synthetic images only should not get."""
    logits = scores(model, x)
    predicted, truth = logits > 0, positive.bool()
    return {"auc": float(roc_auc_score(truth.numpy(), logits.numpy())),
            "sensitivity": (predicted & truth).sum().item() / max(truth.sum().item(), 1),
            "specificity": (~predicted & ~truth).sum().item() / max((~truth).sum().item(), 1)}


# --------------------------------------------------------------------------------- segmenter


def small_segmenter(channels: int = 1, width: int = 24) -> nn.Module:
    """A per-pixel tumour detector: one step down to half resolution, a few (dilated) convolutions,
    back up to full size. Its field of view is ~25 px at 64 px: enough for a ring or blob and its
    surroundings, too little to learn where in the head tumours usually are (a detector with a
    ~40 px view marked the middle of noisy GAN images as tumour whatever the box). Batch norm:
    without it training sat for hundreds of steps on "no tumour anywhere"."""
    def block(c_in: int, c_out: int, **conv) -> list[nn.Module]:
        return [nn.Conv2d(c_in, c_out, 3, **conv), nn.BatchNorm2d(c_out), nn.ReLU()]

    return nn.Sequential(
        *block(channels, 16, padding=1), *block(16, width, stride=2, padding=1),
        *block(width, width, padding=2, dilation=2), *block(width, width, padding=2, dilation=2),
        *block(width, width, padding=1),
        nn.Conv2d(width, 1, 1), nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
    )


def train_segmenter(x: torch.Tensor, masks: torch.Tensor, seed: int, steps: int, batch: int = 32,
                    lr: float = 3e-3) -> nn.Module:
    """Pixel-wise BCE against the tumour fraction of each pixel (the real masks at this size).
    Tumour pixels are ~0.4% of all pixels, so half of each batch are images with tumour and
    tumour pixels weigh 2x; the learning rate decays to 0 (cosine) so that the last steps do
    not swing the detector between seeing tumour everywhere and nowhere."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    has_tumour = masks.flatten(1).sum(1) > 0
    pos, neg = torch.nonzero(has_tumour).flatten(), torch.nonzero(~has_tumour).flatten()
    model = small_segmenter(x.shape[1])
    optimiser = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, steps)
    pos_weight = torch.tensor(2.0)
    for step in range(steps):
        index = torch.cat([pos[torch.randint(len(pos), (batch // 2,), generator=generator)],
                           neg[torch.randint(len(neg), (batch - batch // 2,), generator=generator)]])
        images, target = x[index], masks[index]
        if step % 2:
            images, target = images.flip(-1), target.flip(-1)
        loss = F.binary_cross_entropy_with_logits(model(images), target, pos_weight=pos_weight)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
    return model.eval()


def probability_threshold(probability: np.ndarray, brains: list[np.ndarray], healthy: list[int],
                          percentile: float = 99.99) -> float:
    """Calibrate the segmenter on real healthy brains: a pixel is lesion when its tumour
    probability is above what all but 0.01% of healthy brain pixels reach. (A fixed 0.5 moved
    with every training detail; this does not.)"""
    values = np.concatenate([probability[i][brains[i]] for i in healthy])
    return float(np.percentile(values, percentile))


@torch.no_grad()
def tumour_probability(model: nn.Module, x: torch.Tensor, batch: int = 256) -> np.ndarray:
    return torch.cat([torch.sigmoid(model(x[i:i + batch]))[:, 0] for i in range(0, len(x), batch)]).numpy()


# ----------------------------------------------------------------------------- box hit test


def diversity(x: torch.Tensor, seed: int = 0, pairs: int = 2000) -> dict:
    """How varied a set of images is: the mean RMS difference between random pairs (normalised
    images) and the spread (std) of the head's area fraction. A collapsed generator scores far
    below the real images on both; the area catches the commonest collapse on brain MR, every
    sample being the same slice level."""
    flat = x.flatten(1)
    rng = np.random.default_rng(seed)
    first, second = rng.integers(len(flat), size=(2, pairs))
    keep = first != second
    rms = (flat[first[keep]] - flat[second[keep]]).pow(2).mean(dim=1).sqrt().mean()
    head = (flat > 0.1).float().mean(dim=1)
    return {"pairwise_rms": float(rms), "head_area_std": float(head.std())}


def brain_mask(image: np.ndarray) -> np.ndarray:
    """The head (above 10% of the image's maximum, holes filled) eroded by a quarter of its
    radius: what is left is the brain without scalp fat and skull marrow, which are as bright as
    an enhancing rim on T1c and would otherwise dominate any intensity comparison."""
    head = ndimage.binary_fill_holes(image > 0.1 * image.max())
    radius = np.sqrt(head.sum() / np.pi)
    return ndimage.binary_erosion(head, iterations=max(2, int(round(0.25 * radius))))


def box_region(boxes: list[list[float]], size: int, dilate: int) -> np.ndarray:
    """Pixels covered by the boxes (corners, max exclusive), grown by `dilate` px on every side."""
    region = np.zeros((size, size), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        region[max(0, int(np.floor(y0)) - dilate):min(size, int(np.ceil(y1)) + dilate),
               max(0, int(np.floor(x0)) - dilate):min(size, int(np.ceil(x1)) + dilate)] = True
    return region


def largest_box(boxes: list[list[float]]) -> list[float]:
    return max(boxes, key=lambda b: (b[2] - b[0]) * (b[3] - b[1]))


def box_side(box: list[float]) -> float:
    return min(box[2] - box[0], box[3] - box[1])


@dataclass
class HitRule:
    """A lesion is found in a box when at least `min_pixels` lesion pixels lie in the box (grown
    by `dilate` px) and the box's lesion-pixel density is at least `enrichment` times that of the
    rest of the brain (the brain outside every requested box): lesion pixels that are everywhere
    (noise, a bright artefact all over) do not count as a placed tumour. 8 px (a 3x3 blob at
    64 px): with 4, look-alikes in healthy brains made 12% false hits, with 8 about 3%."""

    dilate: int = 2
    min_pixels: int = 8
    enrichment: float = 3.0


def box_hit(lesion: np.ndarray, brain: np.ndarray, box: list[float], all_boxes: list[list[float]],
            rule: HitRule) -> bool:
    size = lesion.shape[-1]
    inside = box_region([box], size, rule.dilate) & brain
    rest = brain & ~box_region(all_boxes, size, rule.dilate)
    if inside.sum() == 0 or rest.sum() == 0:
        return False
    found = lesion[inside].sum()
    return bool(found >= rule.min_pixels and found / inside.sum() >= rule.enrichment * lesion[rest].mean())


def moved_box(box: list[float], true_region: np.ndarray, brain: np.ndarray, rng: np.random.Generator,
              tries: int = 300, max_overlap: float = 0.25) -> list[float] | None:
    """The box put at a random wrong place: at least 60% inside the brain, overlapping the true
    (grown) boxes by at most `max_overlap` of its area; the least-overlapping of `tries` draws,
    or None when a big box has no such place in this brain."""
    size = brain.shape[-1]
    width, height = box[2] - box[0], box[3] - box[1]
    best, best_overlap = None, max_overlap
    for _ in range(tries):
        x0, y0 = rng.uniform(0, size - width), rng.uniform(0, size - height)
        candidate = [x0, y0, x0 + width, y0 + height]
        region = box_region([candidate], size, 0)
        if (region & brain).sum() < 0.6 * region.sum():
            continue
        overlap = (region & true_region).sum() / region.sum()
        if overlap <= best_overlap:
            best, best_overlap = candidate, overlap
            if overlap == 0:
                break
    return best


def other_layout(index: int, layouts: list[list[list[float]]], candidates: list[int], size: int,
                 dilate: int, rng: np.random.Generator, tries: int = 50,
                 max_overlap: float = 0.25) -> list[list[float]] | None:
    """The requested layout of another image whose largest box lies (mostly) away from this
    image's boxes: where the generator was *not* asked to put a tumour, drawn from the same
    distribution of places as the requests. A detector or a generator that marks the usual
    tumour places whatever the request hits these as often as the requested ones."""
    own = box_region(layouts[index], size, dilate)
    for _ in range(tries):
        j = candidates[int(rng.integers(len(candidates)))]
        region = box_region([largest_box(layouts[j])], size, 0)
        if j != index and (region & own).sum() <= max_overlap * region.sum():
            return layouts[j]
    return None


def bright_threshold(raw: np.ndarray, healthy: list[int]) -> float:
    """Calibrate the intensity detector on real healthy brains: the 99.5th percentile of
    intensity / the brain's 75th percentile (about white matter) over non-tumour images, so at
    most 0.5% of healthy brain pixels count as lesion."""
    ratios = []
    for i in healthy:
        image = raw[i]
        brain = brain_mask(image)
        ratios.append(image[brain] / max(np.percentile(image[brain], 75), 1e-6))
    return float(np.percentile(np.concatenate(ratios), 99.5))


def bright_lesion(image: np.ndarray, brain: np.ndarray, threshold: float) -> np.ndarray:
    """Pixels brighter than `threshold` x the brain's 75th percentile: the enhancing tumour."""
    reference = max(np.percentile(image[brain], 75), 1e-6) if brain.any() else 1.0
    return (image / reference > threshold) & brain
