"""Cases for reader studies: which samples to show, and the one way every case is rendered.

A Visual Turing Test is only blinded if nothing but the pixels can tell a real image from a
synthetic one. Real and synthetic images arrive in different file formats (16-bit PNG, 8-bit PNG,
NIfTI), sizes and spacings, so every case is rendered once, when a study is created, by
`render_array` and encoded by `canonical_png`; the app serves those bytes and nothing else.

Layout (fixed, so image dimensions never depend on the input):

- 2D case: ``CANVAS x CANVAS`` (512 x 512) 8-bit grey. The first channel, windowed to 8 bits,
  resized bilinearly with its physical aspect kept (spacing) to fit the canvas and centred on black.
- 3D case: ``MONTAGE_WIDTH x MONTAGE_HEIGHT`` (768 x 256) 8-bit grey: three ``PANEL x PANEL``
  squares on one row, left to right axial (rows y, columns x), coronal (rows z, columns x) and
  sagittal (rows z, columns y), each through the centre of the first box (the volume centre when
  there is none), each fitted with its physical aspect and centred on black. In the coronal and
  sagittal panels the highest slice index is at the top (superior up for an axial stack in the
  usual inferior-to-superior order).

Encoding: stored, not compressed (zlib level 0). A compressed PNG's size follows its content, and
in one study the byte size alone told real from synthetic cases; stored, a case's size depends only
on the canvas and the colour mode, so every case of a study has the same length. Teaching images,
which need no blinding (all synthetic and marked so), may ask for compression.

Windowing: CT in HU gets the lung window (level -600, width 1500 -> [-1350, 150] HU); anything else
the image's own 1st-99th percentile (for a volume: over the whole first channel, so the three
panels share one window).

No torch here: the web app imports this module.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from pathosynth.data.dataset import Dataset, Sample
from pathosynth.errors import UserError

CANVAS = 512
PANEL = CANVAS // 2
MONTAGE_WIDTH = 3 * PANEL
MONTAGE_HEIGHT = PANEL
LUNG_WINDOW_LEVEL = -600.0
LUNG_WINDOW_WIDTH = 1500.0
PERCENTILE_WINDOW = (1.0, 99.0)
STORED_LEVEL = 0  # the blinded default: the file's size is a function of its dimensions only
COMPRESSED_LEVEL = 6
# Fixed colours so that an outlined teaching image looks the same every time it is made.
OUTLINE_COLOURS = ((255, 59, 48), (255, 204, 0), (52, 199, 89), (0, 122, 255))
OUTLINE_WIDTH = 2
ORIGINS = ("real", "synthetic")


@dataclass
class CaseSource:
    """Where a case comes from: enough to render it again and to score the reader's answer."""

    dataset: str  # absolute path of the dataset folder
    sample_id: str
    origin: str  # 'real' or 'synthetic': the ground truth of a Visual Turing Test
    label: str
    boxes: list = field(default_factory=list)
    attributes: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> CaseSource:
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


# ----------------------------------------------------------------------------- picking cases


def folder_origin(dataset: Dataset | str | Path) -> str:
    """'synthetic' when every sample has provenance, 'real' when none has; a mix is refused,
    since a study's ground truth is taken per folder."""
    dataset = dataset if isinstance(dataset, Dataset) else Dataset.load(dataset)
    synthetic = sum(sample.synthetic is not None for sample in dataset.samples)
    if not dataset.samples:
        raise UserError(f"{dataset.root} has no samples; choose a dataset folder with images in it")
    if synthetic == len(dataset.samples):
        return "synthetic"
    if synthetic == 0:
        return "real"
    raise UserError(f"{dataset.root} mixes real and synthetic samples ({synthetic} synthetic of "
                    f"{len(dataset.samples)}); keep real and synthetic images in separate dataset folders")


def pick_cases(folder: str | Path, counts: dict[str, int], seed: int,
               split: str | None = None) -> list[CaseSource]:
    """Draw ``counts[label]`` samples of each label without replacement, one per patient first.

    Labels are drawn in sorted order so the result depends on the counts, not on the dict's
    order; the cases come back grouped by label, and the caller shuffles the study.
    """
    dataset = Dataset.load(folder)
    origin = folder_origin(dataset)
    root = str(Path(folder).resolve())
    rng = np.random.default_rng(seed)
    cases = []
    for label in sorted(counts):
        wanted = _checked_count(dataset, label, counts[label], split)
        for sample in _draw_spread_over_patients(dataset.select(split, label), wanted, rng):
            cases.append(CaseSource(dataset=root, sample_id=sample.id, origin=origin, label=sample.label,
                                    boxes=[list(box) for box in sample.boxes],
                                    attributes=dict(sample.attributes)))
    return cases


def _checked_count(dataset: Dataset, label: str, wanted: int, split: str | None) -> int:
    if label not in dataset.info.classes:
        raise UserError(f"{dataset.root} has no label '{label}'; use one of: "
                        f"{', '.join(dataset.info.classes)}")
    if int(wanted) != wanted or wanted < 0:
        raise UserError(f"{dataset.root}: asked for {wanted} '{label}' samples; ask for a whole number >= 0")
    available = len(dataset.select(split, label))
    if wanted > available:
        where = f" in split '{split}'" if split is not None else ""
        raise UserError(f"{dataset.root} has {available} '{label}' samples{where}, asked for {wanted}; "
                        f"ask for at most {available}")
    return int(wanted)


def _draw_spread_over_patients(candidates: list[Sample], wanted: int,
                               rng: np.random.Generator) -> list[Sample]:
    """Round robin over shuffled patients: round r takes each patient's r-th (shuffled) sample,
    so a patient gives a second slice only once every patient has given one."""
    by_patient: dict[str, list[Sample]] = defaultdict(list)
    for sample in sorted(candidates, key=lambda s: s.id):  # manifest order must not matter
        by_patient[sample.patient_id].append(sample)
    queues = {patient: [samples[i] for i in rng.permutation(len(samples))]
              for patient, samples in sorted(by_patient.items())}
    picked: list[Sample] = []
    round_index = 0
    while len(picked) < wanted:
        patients = sorted(p for p, queue in queues.items() if len(queue) > round_index)
        for index in rng.permutation(len(patients)):
            if len(picked) == wanted:
                break
            picked.append(queues[patients[index]][round_index])
        round_index += 1
    return picked


# ----------------------------------------------------------------------------- rendering sources


def render_sample(source: CaseSource) -> bytes:
    """The canonical PNG of one case, without boxes drawn."""
    return render_sources([source])[0]


def render_sources(sources: list[CaseSource]) -> list[bytes]:
    """Render many cases, opening each dataset folder once."""
    opened: dict[str, tuple[Dataset, dict[str, Sample]]] = {}
    rendered = []
    for source in sources:
        if source.dataset not in opened:
            dataset = Dataset.load(source.dataset)
            opened[source.dataset] = (dataset, {sample.id: sample for sample in dataset.samples})
        dataset, samples = opened[source.dataset]
        rendered.append(_render_from(dataset, samples, source))
    return rendered


def _render_from(dataset: Dataset, samples: dict[str, Sample], source: CaseSource) -> bytes:
    sample = samples.get(source.sample_id)
    if sample is None:
        raise UserError(f"{dataset.root} no longer has sample '{source.sample_id}'; "
                        "restore the folder or create the study again")
    actual_origin = "synthetic" if sample.synthetic is not None else "real"
    if actual_origin != source.origin:
        # the study's answer key would be wrong: refuse rather than score readers against it
        raise UserError(f"{dataset.root}: sample '{source.sample_id}' is {actual_origin} but the study "
                        f"recorded it as {source.origin}; create the study again")
    info = dataset.info
    return render_array(dataset.read(sample), dimensionality=info.dimensionality,
                        intensity_unit=info.intensity_unit, modality=info.modality,
                        spacing=sample.spacing or info.spacing, boxes=source.boxes, outline=False)


# ----------------------------------------------------------------------------- the renderer


def render_array(array: np.ndarray, *, dimensionality: int, intensity_unit: str, modality: str,
                 spacing: list[float] | tuple[float, ...] | None = None,
                 boxes: list[list[float]] | None = None, outline: bool = False, compress: bool = False) -> bytes:
    """The one renderer: [c,] (z,) y, x in the intensity unit -> canonical PNG (layout: module doc).

    `boxes` choose the 3D planes (first box's centre) and, with `outline`, are drawn in colour
    (RGB; teaching feedback only). Without `outline` the result is always 8-bit grey. `compress`
    only where the size may depend on the content (see `canonical_png`).
    """
    image = _first_channel(np.asarray(array), dimensionality)
    spacing = tuple(float(s) for s in spacing) if spacing is not None else (1.0,) * dimensionality
    if len(spacing) != dimensionality:
        raise ValueError(f"{len(spacing)} spacings for a {dimensionality}D image")
    low, high = display_window(image, intensity_unit=intensity_unit, modality=modality)
    grey = _to_grey_levels(image, low, high)
    boxes = [list(box) for box in boxes or []]
    if dimensionality == 2:
        canvas, placements = _render_2d(grey, spacing, boxes)
    else:
        canvas, placements = _render_3d(grey, spacing, boxes)
    if not outline:
        return canonical_png(canvas, compress=compress)
    return canonical_png(_draw_outlines(canvas, placements), compress=compress)


def display_window(image: np.ndarray, *, intensity_unit: str, modality: str) -> tuple[float, float]:
    """(low, high) in the intensity unit: lung window for CT in HU, else the 1st-99th percentile."""
    if modality.upper() == "CT" and intensity_unit == "HU":
        return (LUNG_WINDOW_LEVEL - LUNG_WINDOW_WIDTH / 2, LUNG_WINDOW_LEVEL + LUNG_WINDOW_WIDTH / 2)
    finite = image[np.isfinite(image)]
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, PERCENTILE_WINDOW))
    # a flat image has no contrast to show: it renders black rather than dividing by zero
    return low, (high if high > low else low + 1.0)


def _first_channel(array: np.ndarray, dimensionality: int) -> np.ndarray:
    if dimensionality not in (2, 3):
        raise ValueError(f"dimensionality must be 2 or 3, got {dimensionality}")
    if array.ndim == dimensionality + 1:
        array = array[0]
    if array.ndim != dimensionality:
        raise ValueError(f"array of shape {array.shape} is not a [c,] {dimensionality}D image")
    return array.astype(np.float64)


def _to_grey_levels(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Window to float grey levels 0..255; rounding waits until after resizing."""
    scaled = (np.nan_to_num(image, nan=low) - low) / (high - low)
    return (np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.float32)


@dataclass(frozen=True)
class _Placement:
    """Where an array's rows and columns landed on the canvas, to draw boxes on it later."""

    top: int
    left: int
    height: int
    width: int
    rows: int
    columns: int

    def rectangle(self, column_low: float, row_low: float, column_high: float,
                  row_high: float) -> tuple[int, int, int, int]:
        """Canvas pixels (inclusive) covered by array rows/columns [low, high)."""
        x_scale, y_scale = self.width / self.columns, self.height / self.rows
        return (self.left + int(round(column_low * x_scale)), self.top + int(round(row_low * y_scale)),
                self.left + max(int(round(column_high * x_scale)) - 1, int(round(column_low * x_scale))),
                self.top + max(int(round(row_high * y_scale)) - 1, int(round(row_low * y_scale))))


def _fit_geometry(rows: int, columns: int, row_spacing: float, column_spacing: float,
                  side: int) -> tuple[int, int, int, int]:
    """(height, width, top, left) of an image fitted into a side x side square, physical aspect kept."""
    physical_height, physical_width = rows * row_spacing, columns * column_spacing
    scale = side / max(physical_height, physical_width)
    height = min(side, max(1, int(round(physical_height * scale))))
    width = min(side, max(1, int(round(physical_width * scale))))
    return height, width, (side - height) // 2, (side - width) // 2


def _fit(grey: np.ndarray, row_spacing: float, column_spacing: float, side: int) -> tuple[np.ndarray, int, int]:
    """Resize to fit a side x side square with the physical aspect kept; returns (pixels, top, left)."""
    from PIL import Image

    height, width, top, left = _fit_geometry(*grey.shape, row_spacing, column_spacing, side)
    resized = Image.fromarray(np.ascontiguousarray(grey, dtype=np.float32)).resize(
        (width, height), Image.Resampling.BILINEAR)
    pixels = np.clip(np.rint(np.asarray(resized, dtype=np.float32)), 0, 255).astype(np.uint8)
    return pixels, top, left


def canvas_rectangles(shape: tuple[int, ...], spacing: list[float] | tuple[float, ...] | None,
                      boxes: list[list[float]]) -> list[tuple[int, int, int, int]]:
    """Where a 2D image's boxes land on its rendered canvas: (x0, y0, x1, y1) canvas pixels,
    inclusive; for checking where a trainee clicked."""
    rows, columns = shape[-2:]
    row_spacing, column_spacing = (float(s) for s in spacing) if spacing else (1.0, 1.0)
    height, width, top, left = _fit_geometry(rows, columns, row_spacing, column_spacing, CANVAS)
    placement = _Placement(top, left, height, width, rows, columns)
    return [placement.rectangle(box[0], box[1], box[2], box[3]) for box in boxes]


def _render_2d(grey: np.ndarray, spacing: tuple[float, ...],
               boxes: list[list[float]]) -> tuple[np.ndarray, list[tuple[_Placement, list]]]:
    canvas = np.zeros((CANVAS, CANVAS), np.uint8)
    pixels, top, left = _fit(grey, spacing[0], spacing[1], CANVAS)
    canvas[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
    placement = _Placement(top, left, pixels.shape[0], pixels.shape[1], *grey.shape)
    rectangles = [placement.rectangle(box[0], box[1], box[2], box[3]) for box in boxes]
    return canvas, [(placement, rectangles)]


def plane_centre(shape: tuple[int, ...], boxes: list[list[float]]) -> tuple[int, int, int]:
    """(z, y, x) voxel through which the three planes pass: the voxel holding the first box's
    centre, or the volume's centre voxel."""
    if boxes:
        box = boxes[0]
        centre = [(box[2] + box[5]) / 2, (box[1] + box[4]) / 2, (box[0] + box[3]) / 2]
    else:
        centre = [n / 2 for n in shape]
    return tuple(int(min(max(np.floor(c), 0), n - 1)) for c, n in zip(centre, shape))  # type: ignore[return-value]


def _render_3d(grey: np.ndarray, spacing: tuple[float, ...],
               boxes: list[list[float]]) -> tuple[np.ndarray, list[tuple[_Placement, list]]]:
    z, y, x = plane_centre(grey.shape, boxes)
    depth = grey.shape[0]
    sz, sy, sx = spacing
    # each panel: (image rows x columns, row spacing, column spacing, box -> (col0, row0, col1, row1) or None)
    panels = [
        (grey[z], sy, sx, lambda b: (b[0], b[1], b[3], b[4]) if b[2] <= z < b[5] else None),
        (grey[::-1, y, :], sz, sx, lambda b: (b[0], depth - b[5], b[3], depth - b[2]) if b[1] <= y < b[4] else None),
        (grey[::-1, :, x], sz, sy, lambda b: (b[1], depth - b[5], b[4], depth - b[2]) if b[0] <= x < b[3] else None),
    ]
    canvas = np.zeros((MONTAGE_HEIGHT, MONTAGE_WIDTH), np.uint8)
    placed = []
    for index, (plane, row_spacing, column_spacing, project) in enumerate(panels):
        pixels, top, left = _fit(plane, row_spacing, column_spacing, PANEL)
        left += index * PANEL
        canvas[top:top + pixels.shape[0], left:left + pixels.shape[1]] = pixels
        placement = _Placement(top, left, pixels.shape[0], pixels.shape[1], *plane.shape)
        projected = [project(box) for box in boxes]
        placed.append((placement, [placement.rectangle(*p) for p in projected if p is not None]))
    return canvas, placed


def _draw_outlines(canvas: np.ndarray, placed: list[tuple[_Placement, list]]) -> np.ndarray:
    from PIL import Image, ImageDraw

    image = Image.fromarray(np.stack([canvas] * 3, axis=-1))
    draw = ImageDraw.Draw(image)
    for _, rectangles in placed:
        for index, rectangle in enumerate(rectangles):
            draw.rectangle(rectangle, outline=OUTLINE_COLOURS[index % len(OUTLINE_COLOURS)], width=OUTLINE_WIDTH)
    return np.asarray(image)


# ----------------------------------------------------------------------------- the encoder


def canonical_png(pixels: np.ndarray, *, compress: bool = False) -> bytes:
    """The single PNG encoder: 8-bit grey ([h, w] uint8) or RGB ([h, w, 3] uint8), a fixed zlib
    level, no optimisation pass and no ancillary chunks, so the bytes depend on the pixels alone.

    Stored by default, so that the length depends on the shape alone: a reader must not be able to
    tell cases apart by file size. `compress=True` is for images with nothing to hide (teaching)."""
    from PIL import Image

    pixels = np.asarray(pixels)
    is_grey = pixels.ndim == 2
    is_rgb = pixels.ndim == 3 and pixels.shape[2] == 3
    if pixels.dtype != np.uint8 or not (is_grey or is_rgb):
        raise ValueError(f"canonical_png takes [h, w] or [h, w, 3] uint8, got {pixels.dtype} {pixels.shape}")
    image = Image.fromarray(np.ascontiguousarray(pixels))
    buffer = io.BytesIO()
    # a fresh image carries no info dict, so Pillow writes IHDR, IDAT and IEND only
    level = COMPRESSED_LEVEL if compress else STORED_LEVEL
    image.save(buffer, format="PNG", compress_level=level, optimize=False)
    return buffer.getvalue()
