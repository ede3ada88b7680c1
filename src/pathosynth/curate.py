"""Curation of synthetic sets: the memorization audit (`pathosynth curate audit`).

A GAN trained on a small dataset can reproduce its training images. The audit finds, for every
synthetic image, its nearest training image (the `train` split of the real dataset: what the GAN
saw) in each feature space, and flags it as a near-copy when it is closer than new images of the
same kind usually are.

"Usually" is measured on the held-out real images (the `val` and `test` splits by default). They
come from other patients, so their distances to the nearest training image describe images that
are similar to the training data (same anatomy, same scanner) but certainly not copied from it.

**Threshold rule.** With m feature spaces and a target false-flag rate of `percentile` % for new
images, each space's threshold is the (`percentile` / m)-th percentile of the held-out images'
nearest-train distances in that space (numpy's linear interpolation), and an image is flagged
when its distance is at or below the threshold in any space. The split of the rate across spaces
(Bonferroni) keeps the share of genuinely new images that get flagged at about `percentile` % or
below;
the audit measures it on the held-out images themselves, both in-sample and cross-fitted
(thresholds from one half of the held-out patients, rate on the other half, and vice versa), and
reports it beside the synthetic flag rate: a synthetic rate well above it means memorization.

**What makes a copy a copy.** The search is made hard to defeat by the usual light changes:

- every image is normalised by its own 1st/99th percentiles (evaluate/features.py), so brightness
  and contrast changes do not matter;
- every space compares against the training images *and their left-right mirror images*;
- the pixel space (a 64 x 64 grid by default) is tolerant to small shifts: the distance to a
  training image is the smallest RMS difference over all integer shifts up to `max_shift` of the
  side (10%: 6 grid px), on the overlap of the two grids (coarse to fine: every shift on 2x2-averaged
  grids, then the 3 x 3 full-resolution shifts around the best). Only 2 x `candidates` training
  images (mirror images included) per query get this exact comparison: the `candidates` nearest
  after a slight blur (aligned look-alikes) and the `candidates` nearest by Fourier magnitudes
  (which a shift on a plain background leaves unchanged), so a copy, shifted or not, ranks at the
  top of one of the two lists (every planted copy in the tests did). For an image that copies
  nothing, a training image outside the lists can be slightly nearer after shifting (3 of 17
  held-out phantom slices checked against a full search, by under 5%); this affects held-out and
  synthetic images alike;
- mild pixel noise is averaged out by the downsampling to the grid (and barely moves the RMS).

Distances: pixel space, RMS difference of the normalised [0, 1] grids; imagenet space, cosine
distance (1 - cosine similarity) of the EfficientNet-Lite0 features.

Output folder (written under a temporary name and renamed when complete): `audit.json` and
`closest-pairs.png` (the closest synthetic/train pairs side by side, the training image mirrored
and shifted as it matched).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathosynth import __version__
from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.splits import SPLITS
from pathosynth.errors import UserError
from pathosynth.evaluate.features import (
    IMAGENET,
    PIXEL,
    FeatureExtractor,
    ImageNetFeatures,
    PixelFeatures,
    extract_features,
    nearest_neighbours,
    open_2d_dataset,
)
from pathosynth.outputs import building, refuse_existing

AUDIT_FORMAT = "pathosynth-audit"
AUDIT_VERSION = 1
# a set painted by the lesion inpainter is real outside its boxes: what its flags mean
PAINTED_NOTE = ("painted into real slices (a lesion inpainter's set): outside its boxes each image is a real "
                "slice, so one painted into a training patient's slice is a near-copy of that slice by design, "
                "and each lesion's shape is a training lesion's mask; the flags measure that, not a generator's "
                "memory. The set carries its host patients' anatomy: share it only as you would share those real "
                "slices")
SMALL_HELD_OUT = 50  # below this many held-out images a low percentile is little more than the minimum


@dataclass
class AuditSettings:
    features: tuple[str, ...] = (PIXEL, IMAGENET)
    held_out_splits: tuple[str, ...] = ("val", "test")
    percentile: float = 1.0  # target share (%) of genuinely new images flagged, over all spaces
    pixel_size: int = 64  # side of the pixel-space grid
    max_shift: float = 0.1  # shifts searched in the pixel space, as a fraction of the side
    candidates: int = 10  # training images (mirrored ones included) refined by the shift search
    imagenet_channels: str = "mean"  # multi-channel images: average the channels' features, or "first"
    gallery: int = 16  # pairs in closest-pairs.png
    batch_size: int = 64

    def check(self) -> None:
        unknown = [name for name in self.features if name not in (PIXEL, IMAGENET)]
        if unknown or not self.features:
            raise UserError(f"--features '{','.join(self.features)}': give pixel, imagenet or both")
        bad = [s for s in self.held_out_splits if s not in SPLITS or s == "train"]
        if bad or not self.held_out_splits:
            raise UserError(f"--held-out-split '{','.join(self.held_out_splits)}': held-out splits must be "
                            "val and/or test (the train split is what the GAN saw); write e.g. val,test")
        if not 0 < self.percentile < 50:
            raise UserError(f"--percentile {self.percentile}: give a low percentile between 0 and 50 (e.g. 1)")
        if self.pixel_size < 8:
            raise UserError(f"--pixel-size {self.pixel_size}: give at least 8")
        if not 0 <= self.max_shift < 0.5:
            raise UserError(f"--max-shift {self.max_shift}: give a fraction of the image side in [0, 0.5)")
        if self.gallery < 0 or self.batch_size < 1:
            raise UserError("--batch must be at least 1 and --gallery at least 0")
        if self.candidates < 1:
            raise UserError(f"candidates must be at least 1, got {self.candidates}")

    @property
    def shift_radius(self) -> int:
        return int(round(self.max_shift * self.pixel_size))


# --------------------------------------------------------------------------------------------------
# search


@dataclass
class Matches:
    """Nearest reference image of every query in one feature space."""

    distance: np.ndarray  # (n,)
    index: np.ndarray  # (n,) into the training images
    mirrored: np.ndarray  # (n,) bool: the match is the training image's mirror image
    shift: np.ndarray | None = None  # (n, 2) dy, dx in grid px: query(y, x) ~ train(y - dy, x - dx)


def blur(grids: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Separable Gaussian blur of (N, C, H, W), replicate borders."""
    radius = max(1, int(math.ceil(2 * sigma)))
    taps = torch.exp(-0.5 * (torch.arange(-radius, radius + 1, dtype=grids.dtype) / sigma) ** 2)
    taps = taps / taps.sum()
    n, c, h, w = grids.shape
    x = grids.reshape(n * c, 1, h, w)
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="replicate"), taps.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode="replicate"), taps.view(1, 1, -1, 1))
    return x.reshape(n, c, h, w)


def _rms_at(queries: torch.Tensor, candidates: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """RMS difference of query(y, x) and candidate(y - dy, x - dx) over their overlap (all channels)."""
    h, w = queries.shape[-2:]
    q = queries[..., max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)]
    c = candidates[..., max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return (q - c).square().mean((-3, -2, -1)).sqrt()


def shifted_rms(queries: torch.Tensor, candidates: torch.Tensor, radius: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Smallest RMS difference of each query/candidate pair over the integer shifts |dy|, |dx| <= radius,
    computed on the overlap of the two images.

    queries (P, C, H, W), candidates (P, C, H, W) -> (best (P,), shift (P, 2)), where shift (dy, dx)
    means query(y, x) was compared with candidate(y - dy, x - dx). Coarse to fine when the radius
    is above 2: all shifts on 2x2-averaged grids first, then the 3 x 3 full-resolution shifts
    around the best coarse one.
    """
    p = len(queries)
    best = torch.full((p,), math.inf, dtype=queries.dtype)
    found = torch.zeros(p, 2, dtype=torch.int64)

    def consider(rows: torch.Tensor | slice, dy: int, dx: int, q=queries, c=candidates, into=(best, found)):
        rms = _rms_at(q[rows], c[rows], dy, dx)
        target, where = into
        better = rms < target[rows]
        index = torch.arange(p)[rows][better]
        target[index] = rms[better]
        where[index] = torch.tensor([dy, dx])

    if radius <= 2 or min(queries.shape[-2:]) < 8:
        for dy in range(-radius, radius + 1):
            for dx in range(-radius, radius + 1):
                consider(slice(None), dy, dx)
        return best, found
    coarse_q, coarse_c = F.avg_pool2d(queries, 2), F.avg_pool2d(candidates, 2)
    coarse_best = torch.full((p,), math.inf, dtype=queries.dtype)
    centre = torch.zeros(p, 2, dtype=torch.int64)
    r = (radius + 1) // 2
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            consider(slice(None), dy, dx, coarse_q, coarse_c, (coarse_best, centre))
    centre = 2 * centre
    for cy, cx in torch.unique(centre, dim=0).tolist():
        rows = torch.nonzero((centre[:, 0] == cy) & (centre[:, 1] == cx)).flatten()
        for dy in range(max(cy - 1, -radius), min(cy + 1, radius) + 1):
            for dx in range(max(cx - 1, -radius), min(cx + 1, radius) + 1):
                consider(rows, dy, dx)
    return best, found


def spectrum(grids: torch.Tensor, keep: float = 0.5) -> torch.Tensor:
    """Shift-invariant descriptor: magnitudes of the grids' 2D Fourier transform (the lower `keep`
    of the frequencies along each axis), flattened. A shift of content on a plain background only
    changes the phases."""
    magnitude = torch.fft.rfft2(grids, norm="ortho").abs()
    h = grids.shape[-2]
    band = max(1, int(h * keep / 2))
    rows = torch.cat([torch.arange(0, band + 1), torch.arange(h - band, h)]).unique()
    return magnitude[..., rows, :band + 1].flatten(1)


def pixel_matches(query_grids: np.ndarray, train_grids: np.ndarray, radius: int, candidates: int = 10,
                  chunk: int = 64, progress: bool = False, desc: str = "pixel search") -> Matches:
    """Nearest training image (or mirror image) of every query in the pixel space, shift-tolerant.

    Candidates: the `candidates` nearest reference grids after a slight blur (near-aligned matches)
    and the `candidates` nearest by Fourier magnitudes (shifted matches); each is then compared
    exactly over all shifts up to `radius` (`shifted_rms`).
    """
    train = torch.from_numpy(np.ascontiguousarray(train_grids, dtype=np.float32))
    reference = torch.cat([train, train.flip(-1)])  # entry j >= n_train: mirror of j - n_train
    queries = torch.from_numpy(np.ascontiguousarray(query_grids, dtype=np.float32))
    _, near = nearest_neighbours(blur(queries).flatten(1).numpy(), blur(reference).flatten(1).numpy(),
                                 k=candidates)
    if radius > 0:
        _, shifted = nearest_neighbours(spectrum(queries).numpy(), spectrum(reference).numpy(), k=candidates)
        near = np.concatenate([near, shifted], axis=1)
    k = near.shape[1]
    distance = np.empty(len(queries))
    entry = np.empty(len(queries), dtype=np.int64)
    shifts = np.empty((len(queries), 2), dtype=np.int64)
    for start in tqdm(range(0, len(queries), chunk), desc=desc, unit="chunk", disable=not progress):
        q = queries[start:start + chunk]
        idx = torch.from_numpy(near[start:start + chunk])
        pairs_q = q[:, None].expand(-1, k, *q.shape[1:]).reshape(-1, *q.shape[1:])
        best, shift = shifted_rms(pairs_q, reference[idx.flatten()], radius)
        best, shift = best.view(len(q), k), shift.view(len(q), k, 2)
        pick = best.argmin(1)
        rows = torch.arange(len(q))
        distance[start:start + len(q)] = best[rows, pick].double().numpy()
        entry[start:start + len(q)] = idx[rows, pick].numpy()
        shifts[start:start + len(q)] = shift[rows, pick].numpy()
    n_train = len(train)
    return Matches(distance, entry % n_train, entry >= n_train, shifts)


def feature_matches(queries: np.ndarray, train: np.ndarray, train_mirrored: np.ndarray,
                    metric: str = "cosine") -> Matches:
    """Nearest training image (or mirror image) of every query row, exact."""
    reference = np.concatenate([train, train_mirrored]).astype(np.float64)
    distance, entry = nearest_neighbours(np.asarray(queries, np.float64), reference, k=1, metric=metric)
    n_train = len(train)
    return Matches(distance[:, 0], entry[:, 0] % n_train, entry[:, 0] >= n_train)


# --------------------------------------------------------------------------------------------------
# calibration


def calibrate_thresholds(held_out: dict[str, np.ndarray], percentile: float) -> dict[str, float]:
    """Per space: the (percentile / m)-th percentile of the held-out nearest-train distances."""
    share = percentile / len(held_out)
    return {space: float(np.percentile(d, share)) for space, d in held_out.items()}


def flags(distances: dict[str, np.ndarray], thresholds: dict[str, float]) -> dict[str, np.ndarray]:
    """Per space: distance at or below its threshold."""
    return {space: distances[space] <= thresholds[space] for space in thresholds}


def any_flag(per_space: dict[str, np.ndarray]) -> np.ndarray:
    return np.logical_or.reduce(list(per_space.values()))


def cross_fitted_rate(held_out: dict[str, np.ndarray], patients: Sequence[str], percentile: float) -> float | None:
    """Share of held-out images flagged by thresholds calibrated on the other half of the patients."""
    unique = sorted(set(patients))
    if len(unique) < 2:
        return None
    fold_of = {p: i % 2 for i, p in enumerate(unique)}
    fold = np.array([fold_of[p] for p in patients])
    flagged = 0
    for f in (0, 1):
        other = {s: d[fold != f] for s, d in held_out.items()}
        mine = {s: d[fold == f] for s, d in held_out.items()}
        flagged += int(any_flag(flags(mine, calibrate_thresholds(other, percentile))).sum())
    return flagged / len(patients)


# --------------------------------------------------------------------------------------------------
# the audit


@dataclass
class _Set:
    dataset: Dataset
    samples: list[Sample]
    features: dict[str, np.ndarray] = field(default_factory=dict)


def audit(train: str | Path, synthetic: str | Path, out: str | Path, settings: AuditSettings | None = None, *,
          overwrite: bool = False, progress: bool = True) -> dict:
    """Audit the synthetic dataset folder against the real one's training split; write `out`.

    Returns the content of audit.json.
    """
    settings = settings or AuditSettings()
    settings.check()
    out = Path(out)
    refuse_existing(out, overwrite)
    real = open_2d_dataset(train, "--train", "the memorization audit compares")
    fake = open_2d_dataset(synthetic, "--synthetic", "the memorization audit compares")
    train_set = _Set(real, real.select(split="train"))
    held_set = _Set(real, [s for s in real.samples if s.split in settings.held_out_splits])
    syn_set = _Set(fake, list(fake.samples))
    present = sorted({s.split for s in real.samples})
    if not train_set.samples:
        raise UserError(f"{real.root}: no image in the train split (splits present: {', '.join(present) or 'none'}); "
                        "give --train the real dataset folder the GAN was trained on")
    if not held_set.samples:
        raise UserError(f"{real.root}: no image in the held-out split(s) {','.join(settings.held_out_splits)} "
                        f"(splits present: {', '.join(present)}); pass --held-out-split with the splits it has, "
                        "or re-split the dataset by patient")
    if not syn_set.samples:
        raise UserError(f"{fake.root}: the synthetic set has no images; make some with `pathosynth generate`")
    if len(real.info.channels) != len(fake.info.channels):
        raise UserError(f"{fake.root} has {len(fake.info.channels)} channel(s) ({', '.join(fake.info.channels)}) "
                        f"but {real.root} has {len(real.info.channels)} ({', '.join(real.info.channels)}); "
                        "audit a synthetic set generated from this dataset")

    extractors: list[FeatureExtractor] = [
        PixelFeatures(size=settings.pixel_size) if name == PIXEL
        else ImageNetFeatures(channels=settings.imagenet_channels) for name in settings.features]
    # training images are also compared mirrored; the pixel space flips its grids itself (pixel_matches)
    mirror = [name for name in settings.features if name != PIXEL]
    for label, subset in (("train", train_set), ("held-out", held_set), ("synthetic", syn_set)):
        subset.features = extract_features(subset.dataset, subset.samples, extractors,
                                           mirrored=mirror if subset is train_set else (),
                                           batch_size=settings.batch_size, progress=progress,
                                           desc=f"audit: {label}")

    held_matches = _match(held_set, train_set, settings, progress, "held-out")
    syn_matches = _match(syn_set, train_set, settings, progress, "synthetic")
    held_distances = {space: m.distance for space, m in held_matches.items()}
    syn_distances = {space: m.distance for space, m in syn_matches.items()}
    thresholds = calibrate_thresholds(held_distances, settings.percentile)
    held_flags = flags(held_distances, thresholds)
    syn_flags = flags(syn_distances, thresholds)
    report = _report(train_set, held_set, syn_set, held_matches, syn_matches, held_flags, syn_flags, thresholds,
                     settings)

    with building(out, overwrite=True) as tmp:  # refuse_existing ran above, before the long work
        (tmp / "audit.json").write_text(json.dumps(report, indent=2) + "\n")
        closest_pairs_figure(report, train_set.dataset, syn_set.dataset, tmp / "closest-pairs.png",
                             settings.gallery, settings.pixel_size)
    return report


def _match(queries: _Set, train: _Set, settings: AuditSettings, progress: bool, label: str) -> dict[str, Matches]:
    matches = {}
    for space in settings.features:
        if space == PIXEL:
            side = settings.pixel_size
            shape = (-1, train.features[PIXEL].shape[1] // (side * side), side, side)
            matches[space] = pixel_matches(queries.features[PIXEL].reshape(shape), train.features[PIXEL].reshape(shape),
                                           settings.shift_radius, settings.candidates, progress=progress,
                                           desc=f"audit: pixel search ({label})")
        else:
            matches[space] = feature_matches(queries.features[space], train.features[space],
                                             train.features[f"{space}-mirrored"], metric="cosine")
    return matches


def _rate(count: int, total: int) -> float:
    return count / total if total else float("nan")


def _entries(subset: _Set, train: _Set, matches: dict[str, Matches], per_space: dict[str, np.ndarray],
             settings: AuditSettings, with_split: bool) -> list[dict]:
    flagged = any_flag(per_space)
    entries = []
    for i, sample in enumerate(subset.samples):
        nearest = {}
        for space, m in matches.items():
            match = train.samples[int(m.index[i])]
            item = {"train_id": match.id, "patient_id": match.patient_id, "distance": float(m.distance[i]),
                    "mirrored": bool(m.mirrored[i]), "flagged": bool(per_space[space][i])}
            if m.shift is not None:
                item["shift_grid_px"] = [int(v) for v in m.shift[i]]
            nearest[space] = item
        entry = {"id": sample.id, "label": sample.label}
        if with_split:
            entry.update(patient_id=sample.patient_id, split=sample.split)
        entry.update(flagged=bool(flagged[i]), nearest=nearest)
        entries.append(entry)
    return entries


def _painted_into_real_slices(dataset: Dataset) -> bool:
    from pathosynth.models import FAMILIES

    generator = (dataset.info.source or {}).get("generator")
    return generator in FAMILIES and FAMILIES[generator].generation == "lesions"


def _report(train: _Set, held: _Set, syn: _Set, held_matches, syn_matches, held_flags, syn_flags, thresholds,
            settings: AuditSettings) -> dict:
    n_syn, n_held = len(syn.samples), len(held.samples)
    syn_any, held_any = any_flag(syn_flags), any_flag(held_flags)
    held_patients = [s.patient_id for s in held.samples]
    held_distances = {space: m.distance for space, m in held_matches.items()}
    cross = cross_fitted_rate(held_distances, held_patients, settings.percentile)
    notes = []
    if n_held < SMALL_HELD_OUT:
        notes.append(f"only {n_held} held-out images: the thresholds are rough (a low percentile of few "
                     "distances is close to their minimum)")
    if not any(s.synthetic for s in syn.samples):
        notes.append(f"no row of {syn.dataset.root} has synthetic provenance: is it really a synthetic set "
                     "(from `pathosynth generate`)?")
    if _painted_into_real_slices(syn.dataset):
        notes.append(PAINTED_NOTE)
    for space, t in thresholds.items():
        if t <= 0:
            notes.append(f"{space}: the threshold is 0 because held-out images have exact duplicates among the "
                         "training images (e.g. blank images); only exact duplicates are flagged in this space")
    by_label: dict[str, list[int]] = {}
    for sample, flagged in zip(syn.samples, syn_any):
        counts = by_label.setdefault(sample.label, [0, 0])
        counts[0] += int(flagged)
        counts[1] += 1
    summary = {
        "synthetic_images": n_syn,
        "synthetic_flagged": int(syn_any.sum()),
        "synthetic_flag_rate": _rate(int(syn_any.sum()), n_syn),
        "synthetic_flagged_by_space": {s: int(f.sum()) for s, f in syn_flags.items()},
        "synthetic_flagged_by_label": {label: {"flagged": c[0], "images": c[1], "rate": _rate(c[0], c[1])}
                                       for label, c in sorted(by_label.items())},
        "held_out_images": n_held,
        "held_out_flagged": int(held_any.sum()),
        "held_out_flag_rate": _rate(int(held_any.sum()), n_held),
        "held_out_flag_rate_cross_fitted": cross,
        "expected_flag_rate_for_new_images": settings.percentile / 100,
        "excess_flag_rate": _rate(int(syn_any.sum()), n_syn) - _rate(int(held_any.sum()), n_held),
    }
    distance_summary = {}
    for space in thresholds:
        h, s = held_matches[space].distance, syn_matches[space].distance
        distance_summary[space] = {
            "held_out": {"min": float(h.min()), "p1": float(np.percentile(h, 1)), "p5": float(np.percentile(h, 5)),
                         "median": float(np.median(h))},
            "synthetic": {"min": float(s.min()), "p1": float(np.percentile(s, 1)), "p5": float(np.percentile(s, 5)),
                          "median": float(np.median(s))},
        }
    m = len(thresholds)
    return {
        "format": AUDIT_FORMAT,
        "format_version": AUDIT_VERSION,
        "created_with": {"pathosynth": __version__},
        "train": {"path": str(train.dataset.root.resolve()), "split": "train", "images": len(train.samples),
                  "patients": len({s.patient_id for s in train.samples})},
        "held_out": {"path": str(held.dataset.root.resolve()), "splits": list(settings.held_out_splits),
                     "images": n_held, "patients": len(set(held_patients))},
        "synthetic": {"path": str(syn.dataset.root.resolve()), "images": n_syn,
                      "with_provenance": sum(s.synthetic is not None for s in syn.samples)},
        "settings": {**asdict(settings), "features": list(settings.features),
                     "held_out_splits": list(settings.held_out_splits),
                     "shift_radius_grid_px": settings.shift_radius, "mirrored_training_images": True},
        "distances": {PIXEL: "RMS difference of the per-image normalised [0, 1] grids (pixel_size^2, all "
                             "channels), smallest over shifts up to shift_radius_grid_px and over mirroring",
                      IMAGENET: "cosine distance of EfficientNet-Lite0 ImageNet features (channels "
                                f"{settings.imagenet_channels}), smallest over mirroring"},
        "rule": (f"a synthetic image is a near-copy when, in any of the {m} feature space(s), its distance to the "
                 f"nearest training image is at or below that space's threshold: the {settings.percentile / m:g}th "
                 "percentile of the held-out real images' nearest-training distances (held-out images are other "
                 f"patients: similar but not copied), so that about {settings.percentile:g}% of new images are "
                 "flagged"),
        "thresholds": thresholds,
        "threshold_percentile_per_space": settings.percentile / m,
        "summary": summary,
        "distance_summary": distance_summary,
        "notes": notes,
        "images": _entries(syn, train, syn_matches, syn_flags, settings, with_split=False),
        "held_out_images": _entries(held, train, held_matches, held_flags, settings, with_split=True),
    }


# --------------------------------------------------------------------------------------------------
# gallery


def _display(array: np.ndarray) -> np.ndarray:
    image = array[0].astype(np.float64)
    low, high = np.percentile(image, [0.5, 99.5])
    return np.clip((image - low) / max(high - low, 1e-12), 0, 1)


def _aligned(train_image: np.ndarray, mirrored: bool, shift_grid: Sequence[int] | None, grid: int) -> np.ndarray:
    """The training image as it matched: mirrored and moved by the shift (converted to its pixels)."""
    image = train_image[:, ::-1] if mirrored else train_image
    if shift_grid is None or not any(shift_grid):
        return image
    h, w = image.shape
    dy, dx = round(shift_grid[0] * h / grid), round(shift_grid[1] * w / grid)
    moved = np.zeros_like(image)
    moved[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return moved


def closest_pairs_figure(report: dict, train: Dataset, synthetic: Dataset, path: Path, count: int, grid: int) -> Path:
    """The `count` synthetic images closest to a training image (by the first feature space's distance),
    each beside its nearest training image."""
    from matplotlib.figure import Figure

    spaces = list(report["thresholds"])
    primary = spaces[0]
    entries = sorted(report["images"], key=lambda e: tuple(e["nearest"][s]["distance"] for s in spaces))[:count]
    pairs_per_row = 4
    rows = max(1, -(-len(entries) // pairs_per_row))
    columns = 2 * min(max(len(entries), 1), pairs_per_row)
    figure = Figure(figsize=(1.9 * columns, 2.35 * rows + 0.5))
    axes = figure.subplots(rows, columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    synthetic_by_id = {s.id: s for s in synthetic.samples}
    train_by_id = {s.id: s for s in train.samples}
    for i, entry in enumerate(entries):
        row, column = i // pairs_per_row, 2 * (i % pairs_per_row)
        axis_s, axis_t = axes[row, column], axes[row, column + 1]
        match = entry["nearest"][primary]
        syn_image = _display(synthetic.read(synthetic_by_id[entry["id"]]))
        train_image = _aligned(_display(train.read(train_by_id[match["train_id"]])), match["mirrored"],
                               match.get("shift_grid_px"), grid)
        axis_s.imshow(syn_image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        axis_t.imshow(train_image, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
        colour = "#d70015" if entry["flagged"] else "black"
        axis_s.set_title(f"{_short(entry['id'])}\n{'NEAR-COPY' if entry['flagged'] else 'synthetic'}",
                         fontsize=6.5, color=colour)
        distances = ", ".join(f"{s[:3]} {entry['nearest'][s]['distance']:.3g}" for s in spaces)
        how = " mirrored" if match["mirrored"] else ""
        axis_t.set_title(f"train {_short(match['train_id'])}{how}\n{distances}", fontsize=6.5, color=colour)
    thresholds = ", ".join(f"{s} {t:.3g}" for s, t in report["thresholds"].items())
    figure.suptitle(f"closest synthetic / training pairs (by {primary} distance); thresholds: {thresholds}",
                    fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    return path


def _short(text: str, size: int = 22) -> str:
    return text if len(text) <= size else "..." + text[-(size - 3):]
