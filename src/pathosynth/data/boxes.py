"""Bounding boxes: the one convention, boxes from masks, parsing and validation.

A 2D box is ``[x_min, y_min, x_max, y_max]`` and a 3D box ``[x_min, y_min, z_min, x_max, y_max,
z_max]``, in pixel/voxel units of the stored image, where ``x`` is the column (last array axis),
``y`` the row and ``z`` the slice. Pixel ``i`` covers ``[i, i + 1)``, so a box around pixels 3..5
inclusive is ``[3, ..., 6, ...]`` and ``x_max - x_min`` is the width in pixels. This is MONAI's
"xyxy"/"xyzxyz" corner mode with x along the last array axis.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

BOX_CONVENTION = (
    "corners [x_min, y_min, (z_min,) x_max, y_max, (z_max)] in pixel units of the stored image; "
    "x = column (last array axis), y = row, z = slice; min inclusive, max exclusive"
)


def boxes_from_mask(mask: np.ndarray, min_size: int = 1) -> list[list[int]]:
    """One box per connected component of ``mask > 0`` with >= min_size pixels.

    Pixels touching by a corner belong together (8-/26-connectivity): a lesion's thin diagonal
    bridge should not split it into several boxes.
    """
    binary = mask > 0
    components, count = ndimage.label(binary, structure=np.ones((3,) * binary.ndim))
    if count == 0:
        return []
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    boxes = []
    for index, region in enumerate(ndimage.find_objects(components), start=1):
        if region is None or sizes[index] < min_size:
            continue
        lows = [s.start for s in region][::-1]  # array order -> x, y, z
        highs = [s.stop for s in region][::-1]
        boxes.append([int(v) for v in lows + highs])
    return sorted(boxes)


def box_is_inside(box: list[float], spatial_shape: tuple[int, ...]) -> bool:
    return box_problem(box, spatial_shape) is None


def box_problem(box: list[float], spatial_shape: tuple[int, ...]) -> str | None:
    """What is wrong with `box` in an image of `spatial_shape` (array order), or None."""
    dims = len(spatial_shape)
    if len(box) != 2 * dims:
        return f"box {box} has {len(box)} numbers, a {dims}D box needs {2 * dims}"
    try:
        values = np.asarray(box, dtype=float)
    except (TypeError, ValueError):
        return f"box {box} holds something that is not a number"
    if not np.all(np.isfinite(values)):
        return f"box {box} holds a non-finite number"
    lows, highs = values[:dims], values[dims:]
    if not np.all(highs > lows):
        return f"box {box} has a max corner that is not above its min corner"
    extent = np.asarray(spatial_shape[::-1], float)  # x, y, z extents
    if not (np.all(lows >= 0) and np.all(highs <= extent)):
        return f"box {box} is outside the {'x'.join(str(n) for n in spatial_shape[::-1])} image"
    return None


def parse_boxes(text: str, dims: int = 2) -> list[list[float]]:
    """Parse ``"x0,y0,x1,y1;x0,y0,x1,y1"`` (empty text: no boxes). Raises ValueError on bad text."""
    text = (text or "").strip()
    if not text:
        return []
    boxes = []
    for part in text.split(";"):
        if not part.strip():
            continue
        values = [float(v) for v in part.split(",")]
        if len(values) != 2 * dims:
            raise ValueError(f"'{part.strip()}' has {len(values)} numbers, a {dims}D box needs {2 * dims}")
        boxes.append([int(v) if v.is_integer() else v for v in values])
    return boxes


def format_boxes(boxes: list[list[float]]) -> str:
    return ";".join(",".join(_number(v) for v in box) for box in boxes)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def box_image(boxes: list[list[list[float]]], resolution: int) -> np.ndarray:
    """The box-conditioning image of CPGGAN and the U-Net GAN, (N, 1, R, R) float32: 1 inside any
    box of the sample, 0 elsewhere.

    ``boxes[n]`` holds sample n's boxes as ``[x_min, y_min, x_max, y_max]`` in pixels of the
    R x R image (x = column, max exclusive). A pixel is inside when its centre is, so integer
    boxes fill exactly columns x_min..x_max-1 and rows y_min..y_max-1; parts outside the image
    are clipped away.
    """
    centres = np.arange(resolution, dtype=np.float32) + 0.5
    image = np.zeros((len(boxes), 1, resolution, resolution), dtype=np.float32)
    for index, sample in enumerate(boxes):
        for box in sample:
            if len(box) != 4:
                raise ValueError(f"a 2D box is [x_min, y_min, x_max, y_max], got {box}")
            x0, y0, x1, y1 = (float(v) for v in box)
            columns = (centres >= x0) & (centres < x1)
            rows = (centres >= y0) & (centres < y1)
            image[index, 0][rows[:, None] & columns[None, :]] = 1.0
    return image
