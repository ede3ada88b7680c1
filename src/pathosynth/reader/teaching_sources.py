"""Where teaching cases come from, and what makes a case typical or atypical (METHODS.md 5 and 6).

A trainee asks for a pathology (a class, optionally a lesion box or a nodule's size and
attenuation) and gets a synthetic case; a quiz mixes typical and atypical cases, because GANs make
typical images and experts need atypical ones. Two sources share the `CaseMaker` interface:

- `PoolMaker` (here): draws from a dataset folder of pre-generated synthetic images;
- `pathosynth.generate.teaching.RunMaker` (torch side, outside this package): generates on demand from a
  trained run.

The typicality rule (`TYPICAL_RULE`) is judged against a `Reference`, a summary of real training
data: box areas and centres as fractions of the image, class shares and attribute shares.

numpy only: this module is imported by the web app, which must never import torch (not even through
`pathosynth.generate` or the training code).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from pathosynth.data.dataset import SYNTHETIC_MARK, Dataset, Sample
from pathosynth.errors import UserError

# The attributes a trainee may ask for; they are TeachingRequest's fields of the same names.
ATTRIBUTE_KEYS = ("size", "attenuation")
UNLABELLED = "unlabelled"  # pathosynth.generate's label for images of a run trained without labels
PERCENTILE_RANGE = (10.0, 90.0)
RARE_SHARE = 0.10
# Percentiles of fewer boxes than this say nothing about what is typical; the box rule is then off.
MIN_REFERENCE_BOXES = 5
TYPICAL_RULE = (
    "A case is atypical when a lesion box's area (volume in 3D) or centre position, as fractions of "
    "the image, lies outside the 10th-90th percentile range of the real reference boxes, or when its "
    "class, one of its attribute values (size, attenuation) or their combination occurs in fewer than "
    "10% of the real reference samples."
)


# ------------------------------------------------------------------------------- the interface

@dataclass
class TeachingRequest:
    """What a trainee asks for. `box` is in pixel coordinates of the made image (project box
    convention, `pathosynth.data.boxes`); `size`/`attenuation` apply to 3D nodules."""

    label: str | None = None
    box: list[float] | None = None
    size: str | None = None
    attenuation: str | None = None
    seed: int = 0

    def wanted_attributes(self) -> dict[str, str]:
        return {key: getattr(self, key) for key in ATTRIBUTE_KEYS if getattr(self, key) is not None}

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class TeachingCase:
    """One synthetic case, ready to render: array [c, (z,) y, x] float32 in `intensity_unit`."""

    array: np.ndarray
    dimensionality: int
    modality: str
    intensity_unit: str
    spacing: list[float] | None
    label: str
    boxes: list[list[float]]
    attributes: dict  # includes "atypical_because": the rule's reasons, [] for a typical case
    typical: bool
    provenance: dict  # "source": "run" or "pool", model, checkpoint_sha256 or pool + sample_id, seed, condition
    mark: str = SYNTHETIC_MARK  # what to show beside the image: it is synthetic

    def metadata(self) -> dict:
        """Everything but the pixels, JSON-able (asdict would deep-copy the array too)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "array"}


@runtime_checkable
class CaseMaker(Protocol):
    def describe(self) -> dict:
        """JSON-able: dimensionality, modality, classes, accepts_box, attributes (vocabulary),
        image_size, typical_rule, can_make_atypical, reference."""

    def make(self, request: TeachingRequest) -> TeachingCase:
        """A case as asked for; the same request (seed included) always gives the same case."""

    def quiz_case(self, seed: int, atypical: bool) -> TeachingCase:
        """A typical or an atypical case (by `TYPICAL_RULE`) of the maker's choosing."""


# ------------------------------------------------------------------------------ box geometry

def box_iou(a: list[float], b: list[float]) -> float:
    """Intersection over union of two boxes of the same dimensionality (0 when disjoint)."""
    if len(a) != len(b):
        return 0.0
    dims = len(a) // 2
    a_lo, a_hi = np.asarray(a[:dims], float), np.asarray(a[dims:], float)
    b_lo, b_hi = np.asarray(b[:dims], float), np.asarray(b[dims:], float)
    inter = float(np.prod(np.clip(np.minimum(a_hi, b_hi) - np.maximum(a_lo, b_lo), 0, None)))
    union = float(np.prod(a_hi - a_lo) + np.prod(b_hi - b_lo)) - inter
    return inter / union if union > 0 else 0.0


def box_measures(box: list[float], spatial_shape: tuple[int, ...]) -> tuple[float, np.ndarray]:
    """(area as a fraction of the image, centre as fractions per axis x, y(, z)).

    Measured in the image centre-padded to a square (cube): the frame the GANs train and generate
    in, so a real non-square slice and a generated square one are compared alike.
    """
    dims = len(spatial_shape)
    extent = np.asarray(spatial_shape[::-1], float)  # x, y(, z)
    side = float(extent.max())
    offsets = (side - extent) // 2  # as pad_to_square pads
    low = np.asarray(box[:dims], float) + offsets
    high = np.asarray(box[dims:], float) + offsets
    area = float(np.prod(high - low)) / side ** dims
    return area, (low + high) / 2 / side


def check_box(box, spatial_shape: tuple[int, ...]) -> list[float]:
    """The box as floats, or UserError when it is not a box inside an image of `spatial_shape`."""
    dims = len(spatial_shape)
    size_text = "x".join(str(n) for n in spatial_shape[::-1])
    names = "x0,y0,x1,y1" if dims == 2 else "x0,y0,z0,x1,y1,z1"
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        values = []
    if len(values) != 2 * dims or not all(np.isfinite(values)):
        raise UserError(f"a box on this {size_text} image is {2 * dims} numbers {names}, not {box!r}")
    low, high = np.asarray(values[:dims]), np.asarray(values[dims:])
    if not (np.all(low >= 0) and np.all(high <= np.asarray(spatial_shape[::-1])) and np.all(high > low)):
        raise UserError(f"box {values} is not inside the {size_text} image; give {names} with each minimum "
                        f"at least 0 and below its maximum, and each maximum at most the image's side")
    return values


# ----------------------------------------------------------------------------- typicality

@dataclass
class CaseFacts:
    """What the typicality rule looks at in one case (or one reference sample)."""

    label: str | None  # None: unlabelled, the class rule does not apply
    boxes: list[list[float]]
    attributes: dict
    spatial_shape: tuple[int, ...]


@dataclass
class Reference:
    """Real training data summarised for the typicality rule."""

    source: str
    samples: int
    label_share: dict[str, float]
    attribute_share: dict[str, dict[str, float]]  # among the samples that carry the attribute
    combination_share: dict[str, float]  # joint values of ATTRIBUTE_KEYS, among samples with all of them
    areas: np.ndarray  # one per reference box
    centres: np.ndarray  # (boxes, dims), x, y(, z)
    split: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def box_rule(self) -> bool:
        return len(self.areas) >= MIN_REFERENCE_BOXES

    def area_range(self) -> tuple[float, float]:
        low, high = np.percentile(self.areas, PERCENTILE_RANGE)
        return float(low), float(high)

    def centre_range(self) -> np.ndarray:
        """(dims, 2): the 10th and 90th percentile of the centre along x, y(, z)."""
        return np.percentile(self.centres, PERCENTILE_RANGE, axis=0).T

    def summary(self) -> dict:
        out = {"source": self.source, "split": self.split, "samples": self.samples, "boxes": int(len(self.areas)),
               "box_rule": self.box_rule, "class_share": _rounded(self.label_share),
               "attribute_share": {k: _rounded(v) for k, v in self.attribute_share.items()}, "notes": self.notes}
        if self.box_rule:
            out["area_range"] = [round(v, 6) for v in self.area_range()]
            out["centre_range_xyz"] = [[round(float(v), 6) for v in row] for row in self.centre_range()]
        return out


def reference_from_facts(facts: list[CaseFacts], source: str, *, use_boxes: bool = True,
                         split: str | None = None) -> Reference:
    labels = Counter(f.label for f in facts if f.label is not None)
    labelled = sum(labels.values())
    attribute_share = {}
    for key in ATTRIBUTE_KEYS:
        values = Counter(str(f.attributes[key]) for f in facts if f.attributes.get(key) is not None)
        if values:
            attribute_share[key] = _shares(values)
    combination_keys = [key for key in ATTRIBUTE_KEYS if key in attribute_share]
    combinations = Counter(_combination(f.attributes, combination_keys) for f in facts if len(combination_keys) > 1
                           and all(f.attributes.get(k) is not None for k in combination_keys))
    areas, centres = [], []
    dims = len(facts[0].spatial_shape) if facts else 2
    for fact in facts if use_boxes else []:
        for box in fact.boxes:
            area, centre = box_measures(box, fact.spatial_shape)
            areas.append(area)
            centres.append(centre)
    notes = [] if use_boxes else ["box rule off: the reference boxes do not describe where lesions lie"]
    return Reference(source=source, samples=len(facts),
                     label_share={k: v / labelled for k, v in labels.items()} if labelled else {},
                     attribute_share=attribute_share, combination_share=_shares(combinations) if combinations else {},
                     areas=np.asarray(areas, float), centres=np.asarray(centres, float).reshape(-1, dims),
                     split=split, notes=notes)


def dataset_facts(path: str | Path, split: str | None = "train") -> tuple[list[CaseFacts], str | None]:
    """The facts of a dataset folder's samples in `split` (all samples when that split is empty),
    and the split actually used."""
    dataset = Dataset.load(path)
    samples = dataset.select(split=split)
    if split is not None and not samples:
        samples, split = dataset.samples, None
    return [_sample_facts(dataset, s) for s in samples], split


def real_dataset_facts(path: str | Path, split: str | None = "train") -> tuple[list[CaseFacts], str | None]:
    """`dataset_facts` of a folder of real images (UserError if any sample is synthetic)."""
    synthetic = [s.id for s in Dataset.load(path).samples if s.synthetic]
    if synthetic:
        raise UserError(f"{path}: {len(synthetic)} of its samples are synthetic (the first: {synthetic[0]}); "
                        "typicality is judged against real data, so give the real training dataset as the reference")
    return dataset_facts(path, split)


def reference_from_dataset(path: str | Path, split: str | None = "train", *, use_boxes: bool = True) -> Reference:
    """The reference of real data in the dataset folder `path` (UserError if any sample is synthetic)."""
    facts, used = real_dataset_facts(path, split)
    return reference_from_facts(facts, str(Path(path)), use_boxes=use_boxes, split=used)


def atypical_reasons(reference: Reference, facts: CaseFacts) -> list[str]:
    """Why `facts` is atypical under TYPICAL_RULE, one sentence per reason; [] when typical."""
    reasons = []
    if facts.label is not None and facts.label != UNLABELLED and reference.label_share:
        share = reference.label_share.get(facts.label, 0.0)
        if share < RARE_SHARE:
            reasons.append(f"class '{facts.label}' is rare: {share:.0%} of the reference samples")
    rare_attribute = False
    for key in ATTRIBUTE_KEYS:
        value, shares = facts.attributes.get(key), reference.attribute_share.get(key)
        if value is None or not shares:
            continue
        share = shares.get(str(value), 0.0)
        if share < RARE_SHARE:
            rare_attribute = True
            reasons.append(f"{key} '{value}' is rare: {share:.0%} of the reference samples")
    keys = [key for key in ATTRIBUTE_KEYS if key in reference.attribute_share]
    # the joint rule adds a reason only when no single value explains it already
    if len(keys) > 1 and reference.combination_share and not rare_attribute \
            and all(facts.attributes.get(k) is not None for k in keys):
        combination = _combination(facts.attributes, keys)
        share = reference.combination_share.get(combination, 0.0)
        if share < RARE_SHARE:
            reasons.append(f"the combination {combination} is rare: {share:.0%} of the reference samples")
    if reference.box_rule:
        for number, box in enumerate(facts.boxes, start=1):
            prefix = f"box {number}: " if len(facts.boxes) > 1 else ""
            reasons += [prefix + reason for reason in _box_reasons(reference, box, facts.spatial_shape)]
    return reasons


def _box_reasons(reference: Reference, box: list[float], spatial_shape: tuple[int, ...]) -> list[str]:
    area, centre = box_measures(box, spatial_shape)
    low, high = reference.area_range()
    reasons = []
    what = "volume" if len(spatial_shape) == 3 else "area"
    if area < low:
        reasons.append(f"box {what} {area:.2%} of the image is below the reference's 10th percentile ({low:.2%})")
    elif area > high:
        reasons.append(f"box {what} {area:.2%} of the image is above the reference's 90th percentile ({high:.2%})")
    for axis, value, (lo, hi) in zip("xyz", centre, reference.centre_range()):
        if value < lo or value > hi:
            reasons.append(f"box centre {axis} at {value:.0%} of the image lies outside the reference's "
                           f"10th-90th percentile range ({lo:.0%}-{hi:.0%})")
    return reasons


def draw_atypical_box(reference: Reference, spatial_shape: tuple[int, ...], rng: np.random.Generator,
                      tries: int = 2000) -> list[int]:
    """A whole-pixel box inside the image that the box rule calls atypical (unusual size or
    position). Sides are at most half the image's, so an 'atypical' box is still a lesion, not the
    whole image."""
    if not reference.box_rule:
        raise UserError(f"{reference.source} has fewer than {MIN_REFERENCE_BOXES} lesion boxes, so no box can be "
                        "called atypical; use a reference with more annotated lesions")
    extent = [int(n) for n in spatial_shape[::-1]]  # x, y(, z)
    for _ in range(tries):
        sides = [int(rng.integers(1, max(1, n // 2) + 1)) for n in extent]
        lows = [int(rng.integers(0, n - side + 1)) for n, side in zip(extent, sides)]
        box = lows + [low + side for low, side in zip(lows, sides)]
        if _box_reasons(reference, box, spatial_shape):
            return box
    raise UserError(f"no box in the {'x'.join(map(str, extent))} image lies outside the typical range of "
                    f"{reference.source}; the reference boxes already cover every size and position")


def is_rare_label(reference: Reference, label: str) -> bool:
    return bool(reference.label_share) and label != UNLABELLED and reference.label_share.get(label, 0.0) < RARE_SHARE


def check_attribute(key: str, value: str, vocabulary: dict[str, list[str]]) -> None:
    """UserError unless `value` is one of the maker's values for `key`."""
    choices = vocabulary.get(key)
    if not choices:
        raise UserError(f"these cases have no {key}; ask without one")
    if value not in choices:
        raise UserError(f"unknown {key} '{value}'; choose one of {', '.join(choices)}")


def check_label(label: str, classes: list[str]) -> None:
    if label not in classes:
        raise UserError(f"unknown class '{label}'; choose one of {', '.join(classes)}")


def _combination(attributes: dict, keys: list[str]) -> str:
    return ", ".join(f"{key}={attributes[key]}" for key in keys)


def _shares(counts: Counter) -> dict[str, float]:
    total = sum(counts.values())
    return {key: value / total for key, value in sorted(counts.items())}


def _rounded(shares: dict[str, float]) -> dict[str, float]:
    return {key: round(value, 4) for key, value in shares.items()}


def _sample_facts(dataset: Dataset, sample: Sample) -> CaseFacts:
    size = dataset.info.image_size
    shape = tuple(size) if size else tuple(dataset.read(sample).shape[1:])  # only when sizes differ
    return CaseFacts(sample.label, [list(b) for b in sample.boxes], dict(sample.attributes), shape)


# ---------------------------------------------------------------------------- the pool

class PoolMaker:
    """Teaching cases drawn from a dataset folder of synthetic images (`pathosynth generate`).

    Typicality is judged against `reference`, a real dataset folder (its `reference_split`, all
    samples when that split is empty); without one, against the pool itself, which then says only
    what is unusual for this generator.
    """

    def __init__(self, pool: str | Path, reference: str | Path | None = None, reference_split: str | None = "train"):
        self.root = Path(pool)
        self.dataset = Dataset.load(self.root)
        self.samples = sorted(self.dataset.samples, key=lambda s: s.id)
        if not self.samples:
            raise UserError(f"{self.root}: the dataset has no samples; generate a pool with `pathosynth generate`")
        real = [s.id for s in self.samples if not s.synthetic]
        if real:
            raise UserError(f"{self.root}: {len(real)} of its samples are real images (the first: {real[0]}); teaching "
                            "cases must be synthetic, so give a folder made by `pathosynth generate`")
        self.facts = [_sample_facts(self.dataset, s) for s in self.samples]
        if reference is not None:
            self.reference = reference_from_dataset(reference, reference_split)
        else:
            self.reference = reference_from_facts(self.facts, f"{self.root} (the pool itself: no real reference given)")
        self.reasons = [atypical_reasons(self.reference, facts) for facts in self.facts]
        self.vocabulary = self._vocabulary()

    def describe(self) -> dict:
        info = self.dataset.info
        atypical = sum(1 for r in self.reasons if r)
        return {"source": "pool", "path": str(self.root), "synthetic": True, "mark": SYNTHETIC_MARK,
                "dimensionality": info.dimensionality, "modality": info.modality, "intensity_unit": info.intensity_unit,
                "classes": sorted({s.label for s in self.samples}), "accepts_box": any(s.boxes for s in self.samples),
                "attributes": self.vocabulary, "image_size": info.image_size, "typical_rule": TYPICAL_RULE,
                "cases": len(self.samples), "typical_cases": len(self.samples) - atypical, "atypical_cases": atypical,
                "can_make_atypical": atypical > 0, "reference": self.reference.summary()}

    def make(self, request: TeachingRequest) -> TeachingCase:
        wanted = request.wanted_attributes()
        if request.label is not None:
            check_label(request.label, sorted({s.label for s in self.samples}))
        for key, value in wanted.items():
            check_attribute(key, value, self.vocabulary)
        box = self._checked_box(request.box) if request.box is not None else None
        candidates = [i for i, s in enumerate(self.samples)
                      if (request.label is None or s.label == request.label)
                      and all(str(s.attributes.get(k)) == v for k, v in wanted.items())]
        if not candidates:
            asked = ", ".join([f"class '{request.label}'"] * (request.label is not None)
                              + [f"{k} '{v}'" for k, v in wanted.items()])
            raise UserError(f"{self.root}: the pool holds no case of {asked}; ask for another or generate more")
        rng = np.random.default_rng(request.seed)
        match_iou = None
        if box is None:
            pick = candidates[int(rng.integers(len(candidates)))]
        else:
            ious = np.asarray([max((box_iou(box, b) for b in self.samples[i].boxes), default=0.0) for i in candidates])
            best = [c for c, v in zip(candidates, ious) if v >= ious.max() - 1e-12]
            pick = best[int(rng.integers(len(best)))]  # ties broken by the seed
            match_iou = float(ious.max())
        return self._case(pick, request.seed, {"request": request.to_json(), "match_iou": match_iou})

    def quiz_case(self, seed: int, atypical: bool) -> TeachingCase:
        part = [i for i, reasons in enumerate(self.reasons) if bool(reasons) == bool(atypical)]
        if not part:
            kind = "atypical" if atypical else "typical"
            raise UserError(f"{self.root}: the pool holds no {kind} case by the rule; generate more cases "
                            f"or quiz with {'no' if atypical else 'only'} atypical cases")
        pick = part[int(np.random.default_rng(seed).integers(len(part)))]
        return self._case(pick, seed, {"quiz": {"atypical": bool(atypical)}})

    def _case(self, index: int, seed: int, extra: dict) -> TeachingCase:
        sample, reasons = self.samples[index], self.reasons[index]
        synthetic = sample.synthetic or {}
        info = self.dataset.info
        provenance = {"source": "pool", "pool": str(self.root.resolve()), "sample_id": sample.id,
                      "model": synthetic.get("model"), "checkpoint_sha256": synthetic.get("checkpoint_sha256"),
                      "seed": seed, "sample_seed": synthetic.get("seed"), "condition": synthetic.get("condition"),
                      "sample_provenance": synthetic, **extra}
        return TeachingCase(array=self.dataset.read(sample).astype(np.float32), dimensionality=info.dimensionality,
                            modality=info.modality, intensity_unit=info.intensity_unit,
                            spacing=list(sample.spacing or info.spacing or []) or None, label=sample.label,
                            boxes=[list(b) for b in sample.boxes],
                            attributes={**sample.attributes, "atypical_because": list(reasons)},
                            typical=not reasons, provenance=provenance)

    def _checked_box(self, box) -> list[float]:
        if not any(s.boxes for s in self.samples):
            raise UserError(f"{self.root}: the pool's cases have no lesion boxes; ask without a box")
        return check_box(box, self.facts[0].spatial_shape)

    def _vocabulary(self) -> dict[str, list[str]]:
        declared = self.dataset.info.attributes
        vocabulary = {}
        for key in ATTRIBUTE_KEYS:
            present = sorted({str(s.attributes[key]) for s in self.samples if s.attributes.get(key) is not None})
            if present:
                order = [v for v in declared.get(key, []) if v in present]
                vocabulary[key] = order + [v for v in present if v not in order]
        return vocabulary
