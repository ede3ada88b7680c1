"""The geometry of putting a generated lesion into a real 2D slice (the 2D lesion inpainter).

Boxes are [x0, y0, x1, y1] in slice pixels, max exclusive (as the dataset's boxes). A lesion fills
its box; the painted pixels are blended in by the lesion's feather (`lesion_weight`, 4 px), inside
the box's margin, so every pixel farther than the margin from every box is the source slice's own,
bit for bit. Where lesions may go: inside the organ (`organ_mask`: the body part of the slice, not
its background), whole boxes only, apart from each other and from the slice's own lesions.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

# the room kept around a box in the painter's patch, and the feather's default extent
FULL, MARGIN = 2, 6


def box_distance(shape: tuple[int, int], box: list[float]) -> np.ndarray:
    """Chebyshev distance (px) of every pixel to the box (0 inside)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    yy, xx = np.arange(shape[0])[:, None], np.arange(shape[1])[None, :]
    dy = np.maximum(np.maximum(y0 - yy, yy - (y1 - 1)), 0)
    dx = np.maximum(np.maximum(x0 - xx, xx - (x1 - 1)), 0)
    return np.maximum(dy, dx)


def feather(distance: np.ndarray, full: int = FULL, margin: int = MARGIN) -> np.ndarray:
    """Blend weight of the generated pixels: 1 to `full` px outside the box, 0 from `margin` px."""
    return np.clip((margin - distance) / float(margin - full), 0.0, 1.0).astype(np.float32)


def organ_mask(image: np.ndarray) -> np.ndarray:
    """The body part of a slice: above an Otsu threshold between background and tissue, holes
    filled, the largest connected piece (a brain, a chest). (H, W) bool."""
    values = image.astype(np.float64)
    threshold = _otsu(values)
    mask = ndimage.binary_fill_holes(values > threshold)
    labels, count = ndimage.label(mask)
    if count == 0:
        return mask
    sizes = ndimage.sum(mask, labels, index=np.arange(1, count + 1))
    return labels == 1 + int(np.argmax(sizes))


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    weight = np.cumsum(counts)
    mean = np.cumsum(counts * centres)
    total, grand = weight[-1], mean[-1]
    below, above = weight[:-1], total - weight[:-1]
    valid = (below > 0) & (above > 0)
    between = np.zeros_like(centres[:-1])
    between[valid] = (grand * below[valid] / total - mean[:-1][valid]) ** 2 / (below[valid] * above[valid])
    return float(edges[1 + int(np.argmax(between))]) if valid.any() else float(values.mean())


def random_boxes(organ: np.ndarray, sizes: list[tuple[int, int]], rng: np.random.Generator,
                 avoid: list[list[float]] = (), gap: int = MARGIN, tries: int = 200) -> list[list[float]]:
    """One box per (width, height) in `sizes`, wholly inside `organ`, at least `gap` px from each
    other and from `avoid` (the slice's own lesions); a size that does not fit is left out."""
    placed: list[list[float]] = []
    taken = np.zeros(organ.shape, dtype=bool)
    for box in avoid:
        taken |= box_distance(organ.shape, box) <= gap
    inside_integral = np.pad(organ.astype(np.int64), ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    for width, height in sizes:
        free = organ & ~taken
        ys, xs = np.nonzero(free)
        for _ in range(tries if len(ys) else 0):
            k = int(rng.integers(len(ys)))
            x0, y0 = int(xs[k]) - width // 2, int(ys[k]) - height // 2
            box = [x0, y0, x0 + width, y0 + height]
            if _box_inside(inside_integral, box, organ.shape) and not taken[y0:y0 + height, x0:x0 + width].any():
                placed.append([float(v) for v in box])
                taken |= box_distance(organ.shape, box) <= gap
                break
    return placed


def _box_inside(integral: np.ndarray, box: list[int], shape: tuple[int, ...]) -> bool:
    """Every pixel of the box is organ (a summed-area lookup)."""
    x0, y0, x1, y1 = box
    if x0 < 0 or y0 < 0 or x1 > shape[1] or y1 > shape[0]:
        return False
    inside = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return int(inside) == (x1 - x0) * (y1 - y0)


def window(shape: tuple[int, ...], top: int, left: int, side: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """The part of the side x side crop at (top, left) that lies inside an image of `shape`: its
    slices in the image, and the same pixels' slices in the crop."""
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + side, shape[0]), min(left + side, shape[1])
    return (slice(y0, y1), slice(x0, x1)), (slice(y0 - top, y1 - top), slice(x0 - left, x1 - left))


def crop(image: np.ndarray, top: int, left: int, side: int) -> np.ndarray:
    """image[top:top+side, left:left+side], zero (air) where the crop leaves the image."""
    out = np.zeros((side, side), dtype=image.dtype)
    inside, local = window(image.shape, top, left, side)
    out[local] = image[inside]
    return out


def plan_patch(box: list[float], patch: int, margin: int = MARGIN, context: int = 12,
               offset: tuple[float, float] | None = None) -> tuple[int, int, int]:
    """The square crop (top, left, side) the inpainter sees around `box`: `patch` px at the
    slice's own pixel size when the box and its margin fit, else the box, margin and `context` px
    (resized to `patch` by the caller). `offset` in [0, 1) per axis places the box inside the
    crop (training draws it; None: centred, as at generation)."""
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    need = max(x1 - x0, y1 - y0) + 2 * margin
    side = patch if need <= patch else need + 2 * context
    corner = []
    for axis, (low, high) in enumerate(((y0, y1), (x0, x1))):
        first, last = high + margin - side, low - margin  # the crop starts that keep the hole inside
        corner.append((first + last) // 2 if offset is None else first + int(offset[axis] * (last - first + 1)))
    return corner[0], corner[1], side


# the lesion's feather: painted pixels as they are up to 1 px outside the lesion, linear to the
# source slice's pixels at 4 px (inside the box's MARGIN, so the box's guarantee holds)
LESION_FULL, LESION_EDGE = 1, 4


def lesion_weight(lesion: np.ndarray) -> np.ndarray:
    """Blend weight of the painted pixels around a lesion mask (chessboard distance feather)."""
    if not lesion.any():
        return np.zeros(lesion.shape, dtype=np.float32)
    distance = ndimage.distance_transform_cdt(~lesion, metric="chessboard")
    return feather(distance, full=LESION_FULL, margin=LESION_EDGE)


def label_channels(lesion: np.ndarray, labels: list[int]) -> np.ndarray:
    """(..., H, W) label map -> (..., len(labels), H, W) float32 one-hot channels."""
    return np.stack([lesion == value for value in labels], -3).astype(np.float32)


def fit_shape(shape: np.ndarray, box: list[float], rng: np.random.Generator) -> np.ndarray:
    """A lesion label crop flipped and transposed at random, resized (nearest) to fill the box."""
    if rng.random() < 0.5:
        shape = shape[:, ::-1]
    if rng.random() < 0.5:
        shape = shape[::-1]
    if rng.random() < 0.5:
        shape = shape.T
    x0, y0, x1, y1 = (int(round(v)) for v in box)
    rows = np.arange(y1 - y0) * shape.shape[0] // (y1 - y0)
    columns = np.arange(x1 - x0) * shape.shape[1] // (x1 - x0)
    return shape[np.ix_(rows, columns)]
