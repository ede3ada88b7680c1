"""Every check an imported value must pass, in one place.

Importers read their inputs with `read_checked`, find listed files with `listed_file` (found
ones pass `inside_folder`), parse table cells with `number` and `label`, convert arrays with
`exact_cast` and refuse repeats with `require_unique`; `DatasetWriter` runs `output_folder` and,
on everything it stores, `file_name`, `label`, `check_image`, `check_boxes` and `label_map`. A new
importer that goes through those two doors inherits every check. The rule behind each: a value that cannot be what
it claims (a NaN pixel, an infinite diameter, a label of 0.5, a path out of the source folder)
is refused with a sentence that names the file and the fix, never rounded, clipped or wrapped
into something that looks valid.

Problems with one input (a file, a case, a table row) are `BadInputError`, which `--skip-bad`
skips; problems with a whole table (two rows naming one file) are `UserError`.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from pathlib import Path

import numpy as np

from pathosynth.data.boxes import box_problem
from pathosynth.data.image import MedicalImage
from pathosynth.data.paths import kind_of
from pathosynth.data.readers import read_image
from pathosynth.errors import BadInputError, UserError

MAX_LABEL = 65535  # label maps are stored as 8- or 16-bit images
_MAX_NAME = 200  # an id becomes a file name (plus a suffix); file systems allow 255 bytes
_SHOWN = 5  # offending values quoted in a message


def read_checked(path: str | Path, *, labels: bool = False) -> MedicalImage:
    """`read_image`, then `check_image`; with `labels`, the array becomes a checked label map."""
    image = read_image(path)
    if labels:
        image.array = label_map(image.array, path)
    check_image(image, path)
    return image


def check_image(image: MedicalImage, source: str | Path) -> None:
    """Pixels real and finite, no empty axis, spacing positive and finite, orientation usable."""
    array = image.array
    if array.size == 0:
        raise BadInputError(source, f"has no pixels (shape {array.shape})", "re-export the image")
    if np.iscomplexobj(array):
        raise BadInputError(source, "has complex pixel values", "store magnitude images")
    if np.issubdtype(array.dtype, np.floating):
        _check_finite(array, source)
    _check_geometry(image, source)


def _check_finite(array: np.ndarray, source: str | Path) -> None:
    finite = np.isfinite(array)
    if finite.all():
        return
    nan = int(np.isnan(array).sum())
    infinite = int(finite.size - finite.sum()) - nan
    raise BadInputError(source, f"has non-finite pixel values ({nan} NaN, {infinite} infinite)",
                        "replace them with real values (e.g. the background) and re-export the image")


def _check_geometry(image: MedicalImage, source: str | Path) -> None:
    spacing = np.asarray(image.spacing, dtype=float)
    if not (np.all(np.isfinite(spacing)) and np.all(spacing > 0)):
        shown = ", ".join(f"{s:g}" for s in spacing)
        raise BadInputError(source, f"has voxel spacing ({shown}) mm in its header",
                            "fix the header: every spacing must be a positive number of mm")
    direction = np.asarray(image.direction, dtype=float)
    if not (np.all(np.isfinite(image.origin)) and np.all(np.isfinite(direction))
            and abs(np.linalg.det(direction)) > 1e-6):
        raise BadInputError(source, "has an unusable origin or orientation in its header (not finite, "
                            "or axes that are parallel)", "fix the header's origin and direction")


def label_map(array: np.ndarray, source: str | Path) -> np.ndarray:
    """The labels as uint8 (all <= 255) or uint16, keeping every value.

    Labels must be non-negative integers, whatever the file's dtype: a float segmentation of
    whole numbers is fine, but 0.5 or -1 would turn into a label by rounding or wrapping, and
    label 256 in uint8 would become 0 (background).
    """
    if array.dtype == bool:
        return array.astype(np.uint8)
    if np.iscomplexobj(array) or not np.issubdtype(array.dtype, np.number):
        raise BadInputError(source, f"holds {array.dtype} values, not labels", "store labels as integers")
    invalid = array[~_whole_non_negative(array)]
    if invalid.size:
        shown = ", ".join(f"{v:g}" for v in np.unique(invalid)[:_SHOWN])
        raise BadInputError(source, f"has {invalid.size} voxel(s) whose label is not a non-negative "
                            f"integer (values {shown})",
                            "fix the segmentation: 0 is background, labels are whole numbers 1, 2, ...")
    top = int(array.max()) if array.size else 0
    if top > MAX_LABEL:
        raise BadInputError(source, f"has label {top}", f"use labels up to {MAX_LABEL}")
    return exact_cast(array, np.uint8 if top <= 255 else np.uint16, source)


def _whole_non_negative(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.integer):
        return array >= 0
    return np.isfinite(array) & (array >= 0) & (array == np.floor(array))


def exact_cast(array: np.ndarray, dtype, source: str | Path,
               fix: str = "check the file's values and unit") -> np.ndarray:
    """`array` as `dtype`, refusing values that dtype cannot hold rather than wrapping (40000 as
    int16 is -25536), clipping, truncating 2.5 to 2, or overflowing to inf (1e39 as float32)."""
    target = np.dtype(dtype)
    if array.dtype == target or array.size == 0:
        return array.astype(target, copy=False)
    problem = _cast_problem(array, target)
    if problem:
        raise BadInputError(source, f"{problem}, which {target.name} cannot hold", fix)
    return array.astype(target)


def _cast_problem(array: np.ndarray, target: np.dtype) -> str | None:
    if np.issubdtype(array.dtype, np.inexact) and not np.all(np.isfinite(array)):
        return "has non-finite values"
    low, high = array.min().item(), array.max().item()
    if np.issubdtype(target, np.integer):
        if np.issubdtype(array.dtype, np.inexact) and not np.all(array == np.floor(array)):
            return "has fractional values"
        limits = np.iinfo(target)
        in_range = limits.min <= low and high <= limits.max
    else:
        limit = float(np.finfo(target).max)
        in_range = -limit <= low and high <= limit
    return None if in_range else f"has values from {low:g} to {high:g}"


def number(text: str, where: str | Path, name: str, *, above: float | None = None,
           at_most: float | None = None, unit: str = "") -> float:
    """A finite number from a table cell. float() also accepts 'nan', 'inf' and '1e999'; an
    infinite nodule diameter once became a box over the whole scan."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        value = math.nan
    in_range = math.isfinite(value) and (above is None or value > above) and (at_most is None or value <= at_most)
    if not in_range:
        bounds = [f"above {above:g}" if above is not None else "",
                  f"at most {at_most:g}" if at_most is not None else ""]
        wanted = " and ".join(b for b in bounds if b)
        raise BadInputError(where, f"{name} is '{text}'",
                            f"give a finite number{' ' + wanted if wanted else ''}{' ' + unit if unit else ''}")
    return value


def label(text: str, classes: Iterable[str], where: str | Path) -> str:
    classes = list(classes)
    if not text:
        raise BadInputError(where, "has no label", f"fill in one of {', '.join(classes)}")
    if text not in classes:
        raise BadInputError(where, f"unknown label '{text}'", f"use one of {', '.join(classes)} or add it to --classes")
    return text


def file_name(text: str, where: str | Path, what: str = "id") -> str:
    """Refuse an id that cannot be one file name: ids become `images/<id>.png`, and an id read from
    a header (a DICOM SeriesInstanceUID '../../x') must not write outside the dataset."""
    bad = (not text or text in (".", "..") or len(text.encode("utf-8", "surrogatepass")) > _MAX_NAME
           or any(c in "/\\" or ord(c) < 32 or ord(c) == 127 for c in text))
    if bad:
        raise BadInputError(where, f"gives the {what} {text!r}, which cannot be a file name",
                            f"use 1-{_MAX_NAME} bytes without / \\ or control characters")
    return text


def inside_folder(path: Path, root: Path, where: str | Path, listed: str = "",
                  folder: str = "source folder") -> Path:
    """`path` with symlinks resolved, refused unless it lies in `root`: a row like '../x.png' or
    '/home/x.png', or a link out of the folder, would put a file into the dataset that the source
    folder does not hold."""
    resolved, base = path.resolve(), root.resolve()
    if not resolved.is_relative_to(base):
        shown = f"'{listed}' " if listed else ""
        raise BadInputError(where, f"{shown}resolves to {resolved}, outside the {folder} {base}",
                            f"copy the file into the {folder} and name it relative to that folder")
    return resolved


def listed_file(root: Path, listed: str, where: str) -> Path:
    """The file a table row names, relative to `root`: named, inside `root`, and there."""
    if not listed:
        raise BadInputError(where, "has no file name", "fill in the file's path relative to the source folder")
    path = root / listed
    inside_folder(path, root, where, listed=listed)
    if kind_of(path) is None:
        raise BadInputError(path, f"is listed on {where} but does not exist", "fix the file name or drop the row")
    return path


def require_unique(items: Iterable[tuple[Hashable, str]], clash: str, fix: str) -> None:
    """Refuse the first key met twice. `items` are (key, where it occurs); the message reads
    '<first place> and <second place> <clash> <key>; <fix>'."""
    first_seen: dict[Hashable, str] = {}
    for key, where in items:
        if key in first_seen:
            raise UserError(f"{first_seen[key]} and {where} {clash} {key}; {fix}")
        first_seen[key] = where


def check_boxes(boxes: list[list[float]], spatial_shape: tuple[int, ...], where: str | Path) -> None:
    for box in boxes:
        problem = box_problem(box, spatial_shape)
        if problem:
            raise BadInputError(where, problem, "write boxes as x0,y0,x1,y1 in pixels (3D: x0,y0,z0,x1,y1,z1), "
                                "min corner below max corner, inside the image")


def output_folder(out: Path, inputs: Iterable[str | Path]) -> None:
    """Refuse an --out that is not a folder to be, or that is or holds an input: --overwrite
    replaces --out, which would delete the input."""
    target = out.resolve()
    for source in inputs:
        if Path(source).resolve().is_relative_to(target):
            raise UserError(f"{out}: is or holds the input {source}, which --overwrite would delete; "
                            "choose another --out")
    if kind_of(out) == "file":
        raise UserError(f"{out}: is a file; choose a folder name for --out")
    existing = next(p for p in (out.parent, *out.parent.parents) if kind_of(p) is not None)
    if kind_of(existing) != "dir":
        raise UserError(f"{out}: cannot be created because {existing} is a file; choose another --out")
