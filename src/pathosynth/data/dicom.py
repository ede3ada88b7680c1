"""Read DICOM into `MedicalImage` under the axis convention of `image.py`.

A folder is one series: its direct files are read, DICOMDIRs and non-image files are skipped, and
the frames are stacked along the slice normal into ``[z, y, x]``. One ``.dcm`` file is a 2D
``[y, x]`` image, or a ``[z, y, x]`` volume when it holds several frames (classic multi-frame or
Enhanced CT/MR with functional groups).

Values are modality values (RescaleSlope/Intercept applied, so CT is in HU): integer slopes and
intercepts give int16 (or int32 where int16 is too narrow), anything else float32. Colour images
(RGB, YBR, palette) are reduced to luminance (ITU-R 601 weights) like the PNG/TIFF reader does.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pathosynth.data.image import MedicalImage, plain_direction
from pathosynth.data.readers import REPAIR_HINT, _short
from pathosynth.errors import BadInputError

SERIES_HINT = "point at a folder that holds the .dcm files of exactly one series"
_DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
# Only names like these are read with force=True when the 'DICM' preamble is missing (old
# ACR-NEMA style files): forcing a .txt or .json through the parser would only yield garbage.
_FORCE_SUFFIXES = ("", ".dcm", ".dicom", ".ima")
# Positions are decimal strings of a few digits and scanners jitter slice positions a little;
# gaps within this fraction of the mean are one stack, larger deviations mean missing slices.
_GAP_TOLERANCE = 0.1
_SAME_POSITION_MM = 0.01


@dataclass
class _Slice:
    pixels: np.ndarray  # stored values of one frame, [y, x]
    slope: float
    intercept: float
    position: np.ndarray | None  # ImagePositionPatient
    orientation: np.ndarray | None  # ImageOrientationPatient: row cosines, then column cosines
    pixel_spacing: tuple[float, float] | None  # (between rows, between columns)
    gap: float | None  # SpacingBetweenSlices, else SliceThickness
    instance: int | None
    label: str  # file name, and frame number in a multi-frame file


def read_dicom_file(path: Path) -> MedicalImage:
    path = Path(path)
    ds = _read_dataset(path)
    if ds is None:
        raise BadInputError(path, "is not a DICOM file", REPAIR_HINT)
    slices = _slices_of(ds, path)
    if len(slices) == 1:
        return _image_2d(slices[0])
    return _stack(slices, path, stored_order=True)


def read_dicom_series(folder: Path) -> MedicalImage:
    folder = Path(folder)
    images: list[tuple[Path, object]] = []
    without_pixels = 0
    for path in sorted(p for p in folder.iterdir() if p.is_file() and p.name.upper() != "DICOMDIR"):
        ds = _read_dataset(path)
        if ds is None or ds.get("SOPClassUID") == _DICOMDIR_SOP_CLASS:
            continue
        if not any(k in ds for k in _PIXEL_KEYWORDS):
            without_pixels += 1  # reports, RT plans, presentation states sit beside images
            continue
        images.append((path, ds))
    if not images:
        extra = f" (only {without_pixels} DICOM files without pixel data)" if without_pixels else ""
        raise BadInputError(folder, f"holds no DICOM image files{extra}", SERIES_HINT)
    series: dict[str, list[Path]] = {}
    for path, ds in images:
        uid = str(ds.get("SeriesInstanceUID", "") or "(no SeriesInstanceUID)")
        series.setdefault(uid, []).append(path)
    if len(series) > 1:
        listing = ", ".join(f"{uid} ({len(paths)} files)" for uid, paths in series.items())
        raise BadInputError(folder, f"holds {len(series)} series: {listing}",
                            "move each series into a folder of its own and read one folder per series")
    slices = [s for path, ds in images for s in _slices_of(ds, path)]
    return _stack(slices, folder, stored_order=len(images) == 1)


def _read_dataset(path: Path):
    """The dataset, or None when the file is not DICOM at all."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        return pydicom.dcmread(path, force=False)
    except InvalidDicomError:
        if path.suffix.lower() not in _FORCE_SUFFIXES:
            return None
    except Exception as exc:  # truncated or corrupt: pydicom raises many types
        raise BadInputError(path, f"cannot be read as DICOM ({_short(exc)})", REPAIR_HINT) from exc
    try:
        ds = pydicom.dcmread(path, force=True)
    except Exception:
        return None
    # A forced parse of a non-DICOM file "succeeds" with nonsense tags; a real one has a SOP class.
    return ds if "SOPClassUID" in ds else None


def _slices_of(ds, path: Path) -> list[_Slice]:
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise BadInputError(path, "holds no pixel data (it is not an image: a report, RT plan or "
                            "similar)", "point at the image files of the series")
    frames = _decode(ds, path)
    per_frame = ds.get("PerFrameFunctionalGroupsSequence") or []
    shared = ds.get("SharedFunctionalGroupsSequence") or []
    single = len(frames) == 1
    offsets = ds.get("GridFrameOffsetVector")
    if single or not hasattr(offsets, "__len__"):
        offsets = None
    else:
        offsets = _vector(offsets, len(frames), path, "GridFrameOffsetVector")
    top = _vector(ds.get("ImagePositionPatient"), 3, path, "ImagePositionPatient")
    slices = []
    for i, pixels in enumerate(frames):
        # Enhanced objects keep geometry per frame, then shared, and classic ones at the top level.
        groups = [g for g in (per_frame[i] if i < len(per_frame) else None, shared[0] if shared else None)
                  if g is not None]
        spacing = _find(ds, groups, "PixelMeasuresSequence", "PixelSpacing") or ds.get("ImagerPixelSpacing")
        gap = _find(ds, groups, "PixelMeasuresSequence", "SpacingBetweenSlices")
        gap = gap if gap is not None else _find(ds, groups, "PixelMeasuresSequence", "SliceThickness")
        slope = _find(ds, groups, "PixelValueTransformationSequence", "RescaleSlope")
        intercept = _find(ds, groups, "PixelValueTransformationSequence", "RescaleIntercept")
        orientation = _vector(_find(ds, groups, "PlaneOrientationSequence", "ImageOrientationPatient"),
                              6, path, "ImageOrientationPatient")
        # A classic multi-frame file has one top-level position: that of its first frame. The
        # others follow from GridFrameOffsetVector (RT dose, NM), else they are unknown.
        position = _vector(_find(ds, groups, "PlanePositionSequence", "ImagePositionPatient",
                                 top_level=single or i == 0), 3, path, "ImagePositionPatient")
        if position is None and top is not None and orientation is not None and offsets is not None:
            position = top + (offsets[i] - offsets[0]) * _direction(orientation)[:, 0]
        instance = ds.get("InstanceNumber") if single else None
        slices.append(_Slice(
            pixels=pixels,
            slope=_number(slope, path, "RescaleSlope") if slope is not None else 1.0,
            intercept=_number(intercept, path, "RescaleIntercept") if intercept is not None else 0.0,
            position=position,
            orientation=orientation,
            pixel_spacing=tuple(_vector(spacing, 2, path, "PixelSpacing")) if spacing else None,
            gap=abs(_number(gap, path, "SpacingBetweenSlices")) if gap is not None else None,
            instance=None if _empty(instance) else int(instance),
            label=path.name if single else f"{path.name} frame {i + 1}",
        ))
    return slices


def _find(ds, groups: list, sequence: str, keyword: str, top_level: bool = True):
    for group in groups:
        items = group.get(sequence)
        if items and not _empty(items[0].get(keyword)):
            return items[0].get(keyword)
    value = ds.get(keyword) if top_level else None
    return None if _empty(value) else value


def _decode(ds, path: Path) -> np.ndarray:
    """Stored pixel values as [frame, y, x], colour reduced to luminance."""
    from pydicom.pixels import apply_color_lut, get_decoder

    syntax = ds.file_meta.get("TransferSyntaxUID")
    if syntax is not None and syntax.is_transfer_syntax and syntax.is_compressed:
        try:
            available = get_decoder(syntax).is_available
        except NotImplementedError:
            available = False
        if not available:
            raise BadInputError(
                path, f"is compressed as {syntax.name} ({syntax}) and no decoder for it is installed",
                "decompress it first, e.g. `gdcmconv --raw in.dcm out.dcm` or `dcmdjpeg in.dcm out.dcm`, "
                "or install pylibjpeg with its plugins")
    palette = ds.get("PhotometricInterpretation") == "PALETTE COLOR"
    try:
        pixels = ds.pixel_array  # YBR is converted to RGB by pydicom
        if palette:
            pixels = apply_color_lut(pixels, ds)
    except Exception as exc:  # truncated pixel data, bad lengths, decoder failures
        raise BadInputError(path, f"has pixel data that cannot be decoded ({_short(exc)})",
                            REPAIR_HINT) from exc
    if palette or int(ds.get("SamplesPerPixel") or 1) == 3:
        pixels = np.rint(pixels @ np.array([0.299, 0.587, 0.114])).astype(pixels.dtype)
    elif ds.get("PhotometricInterpretation") == "MONOCHROME1":
        # MONOCHROME1 shows low values white (common in CR/DX); invert so bone is bright everywhere
        if int(ds.get("PixelRepresentation") or 0) == 0:
            pixels = ((1 << int(ds.get("BitsStored") or 16)) - 1 - pixels.astype(np.int64)).astype(pixels.dtype)
        else:
            pixels = np.invert(pixels)
    return pixels if pixels.ndim == 3 else pixels[None]


def _image_2d(one: _Slice) -> MedicalImage:
    spacing = one.pixel_spacing or (1.0, 1.0)
    origin, direction = (), None
    if one.orientation is not None and one.position is not None:
        frame = _direction(one.orientation)
        # A 2D image keeps the in-plane part of its geometry only when the plane is axial,
        # the same projection read_nifti makes for a 2D NIfTI.
        if abs(abs(frame[2, 0]) - 1.0) < 1e-3:
            origin, direction = tuple(float(v) for v in one.position[:2]), frame[:2, 1:]
    return MedicalImage(_rescale([one])[0], tuple(float(v) for v in spacing), origin, direction)


def _stack(slices: list[_Slice], where: Path, stored_order: bool) -> MedicalImage:
    first = slices[0]
    if any(s.pixels.shape != first.pixels.shape for s in slices):
        sizes = sorted({f"{s.pixels.shape[1]}x{s.pixels.shape[0]}" for s in slices})
        raise BadInputError(where, f"has slices of different sizes ({', '.join(sizes)})", SERIES_HINT)
    spacings = {s.pixel_spacing for s in slices}
    if len(spacings) > 1 and not all(p and np.allclose(p, first.pixel_spacing, rtol=1e-3) for p in spacings):
        listing = ", ".join(sorted(map(str, spacings)))
        raise BadInputError(where, f"has slices with different pixel spacings ({listing})", SERIES_HINT)
    orientation = first.orientation
    if any(s.orientation is None for s in slices):
        orientation = None
    elif any(not np.allclose(s.orientation, orientation, atol=1e-4) for s in slices):
        raise BadInputError(where, "has slices with different orientations (a localizer, or a radial "
                            "or multi-stack acquisition)",
                            "keep only the slices of one parallel stack in the folder")
    direction = _direction(orientation) if orientation is not None else plain_direction(3)
    in_plane = first.pixel_spacing or (1.0, 1.0)
    gap = first.gap or 1.0

    if orientation is not None and all(s.position is not None for s in slices):
        normal = direction[:, 0]
        depth = np.array([s.position @ normal for s in slices])
        order = np.argsort(depth, kind="stable")
        steps = np.diff(depth[order])
        if (steps < _SAME_POSITION_MM).any():
            k = int(np.argmax(steps < _SAME_POSITION_MM))
            pair = _names(slices, order[k:k + 2])
            raise BadInputError(where, f"has two slices at the same position ({pair}): duplicated files, "
                                "or several echoes, phases or time points in one series",
                                "keep one slice per position, one volume per folder")
        if len(slices) > 1:
            gap = float(depth[order[-1]] - depth[order[0]]) / (len(slices) - 1)
            if np.abs(steps - gap).max() > _GAP_TOLERANCE * gap:
                k = int(np.abs(steps - gap).argmax())
                raise BadInputError(
                    where, f"has unevenly spaced slices (gaps of {steps.min():.4g} to {steps.max():.4g} mm, "
                    f"e.g. {steps[k]:.4g} mm between {_names(slices, order[k:k + 2])})",
                    "make sure no slice is missing, or resample the series to even spacing")
            # Positions must run along the normal, else one origin and direction cannot place them.
            positions = np.array([slices[i].position for i in order])
            along = positions[0] + np.outer(depth[order] - depth[order[0]], normal)
            drift = np.linalg.norm(positions - along, axis=1).max()
            if drift > 0.1 * min(in_plane):
                raise BadInputError(where, f"has slices that drift {drift:.3g} mm sideways along the stack "
                                    "(gantry tilt or a sheared stack)",
                                    "resample it to a rectilinear grid first (dcm2niix corrects gantry tilt)")
    elif stored_order:
        order = np.arange(len(slices))
    elif all(s.instance is not None for s in slices):
        numbers = np.array([s.instance for s in slices])
        order = np.argsort(numbers, kind="stable")
        if (np.diff(numbers[order]) == 0).any():
            k = int(np.argmax(np.diff(numbers[order]) == 0))
            raise BadInputError(where, f"has two slices with InstanceNumber {numbers[order[k]]} and no "
                                f"positions ({_names(slices, order[k:k + 2])})",
                                "keep one slice per position, one volume per folder")
    else:
        raise BadInputError(where, "has slices without ImagePositionPatient or InstanceNumber, so their "
                            "order is unknown", "re-export the series with its positions")
    start = slices[order[0]].position
    origin = tuple(float(v) for v in start) if start is not None else (0.0, 0.0, 0.0)
    array = _rescale([slices[i] for i in order])
    return MedicalImage(array, (gap, float(in_plane[0]), float(in_plane[1])), origin, direction)


def _direction(orientation: np.ndarray) -> np.ndarray:
    """Columns: slice normal (array z), column direction (array y), row direction (array x)."""
    row = orientation[:3] / np.linalg.norm(orientation[:3])
    column = orientation[3:] / np.linalg.norm(orientation[3:])
    normal = np.cross(row, column)
    return np.column_stack([normal / np.linalg.norm(normal), column, row])


def _rescale(slices: list[_Slice]) -> np.ndarray:
    """Modality values: int16 (int32 where the values need it) when slope and intercept are whole
    numbers, else float32."""
    whole = all(float(s.slope).is_integer() and float(s.intercept).is_integer() for s in slices)
    if not whole or any(s.pixels.dtype.kind == "f" for s in slices):
        return np.stack([s.pixels * s.slope + s.intercept for s in slices]).astype(np.float32)
    ends = [int(v) * int(s.slope) + int(s.intercept)
            for s in slices for v in (s.pixels.min(), s.pixels.max())]
    dtype = next((t for t in (np.int16, np.int32)
                  if np.iinfo(t).min <= min(ends) and max(ends) <= np.iinfo(t).max), np.float64)
    out = np.empty((len(slices),) + slices[0].pixels.shape, dtype=dtype)
    for k, s in enumerate(slices):
        out[k] = s.pixels.astype(np.int64) * int(s.slope) + int(s.intercept)
    return out


def _empty(value) -> bool:
    return value is None or (hasattr(value, "__len__") and len(value) == 0)


def _number(value, path: Path, keyword: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise BadInputError(path, f"has an unreadable {keyword} {value!r}", REPAIR_HINT) from exc


def _vector(value, size: int, path: Path, keyword: str) -> np.ndarray | None:
    if _empty(value):
        return None
    try:
        numbers = np.array([float(v) for v in value], dtype=float)
    except (TypeError, ValueError) as exc:
        raise BadInputError(path, f"has an unreadable {keyword} {value!r}", REPAIR_HINT) from exc
    if numbers.shape != (size,) or not np.isfinite(numbers).all():
        raise BadInputError(path, f"has a {keyword} of {len(numbers)} values where {size} are needed",
                            REPAIR_HINT)
    return numbers


def _names(slices: list[_Slice], indices) -> str:
    return " and ".join(slices[i].label for i in indices)
