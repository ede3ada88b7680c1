"""The data side of `pathosynth evaluate classify`: loading the real and synthetic sets, the leakage
checks, the class-balanced choice of synthetic images and of images for classic-DA copies, and
the images as tensors.

**Leakage checks** (each refusal is a `UserError` naming the file and the fix; each warning is
returned as a note that the CLI prints and results.json keeps):

- the real set: its manifest's patient-level split (a patient in two splits is refused, by
  `Dataset.load`); it must have train, val and test images, both classes in train and test, be 2D,
  and not be a synthetic set itself;
- a synthetic set: every image must be marked synthetic (dataset.json `source.synthetic` and each
  row's `synthetic` provenance); it must not carry any patient id of the real set; its classes
  must be the real set's;
- what its GAN saw: the provenance names the run folder (`pathosynth generate` writes it in
  dataset.json and in every row); the run's config.json names the dataset and the split the GAN
  was trained on. A GAN trained on the real set's test split, or on all its splits, is refused;
  on its val split, warned about (model selection then sees images the GAN learnt from). A GAN
  trained on other data is refused if that data shares patients with the real test split and
  warned about otherwise; an unreachable run or dataset is warned about (the check cannot be made);
- pixel-identical images: a synthetic image used for training that equals a real val or test image
  is refused; one that equals a real training image is warned about (see `pathosynth curate audit`
  for near-copies).

**Images.** Every image is padded to square (with its minimum), resized to the preset's size
(bilinear, antialiased when shrinking; as the GAN training and the quality benchmark load images),
then each channel is scaled by its own 1st and 99th percentiles: (x - p1) / (p99 - p1), not clipped,
so the background is about 0 (the classic-DA fill value) and bright lesions stay above 1. The same
rule for real and synthetic images: a GAN's brightness offset is not a cue. Kept as float16.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.preprocess import pad_to_square
from pathosynth.errors import UserError

SPLITS = ("train", "val", "test")
_NEGATIVE_WORDS = ("non", "no-", "no_", "normal", "healthy", "negative", "benign", "absent")


def manifest_sha256(root: Path) -> str:
    return hashlib.sha256((Path(root) / "manifest.csv").read_bytes()).hexdigest()


def choose_positive(classes: list[str], positive: str | None, where: Path) -> tuple[str, str]:
    """(positive, negative) of a two-class set: `positive` if given; else the one class whose
    name does not read as a negative (non-tumour, no-nodule, normal, ...); else the second class."""
    if len(classes) != 2:
        raise UserError(f"{where / 'dataset.json'}: classify needs exactly two classes, found "
                        f"{len(classes)} ({', '.join(classes)}); import a two-class dataset")
    if positive is not None:
        if positive not in classes:
            raise UserError(f"--positive '{positive}' is not a class of {where}; use one of {', '.join(classes)}")
        return positive, next(c for c in classes if c != positive)
    negative_like = [c for c in classes if c.lower().startswith(_NEGATIVE_WORDS)]
    if len(negative_like) == 1:
        negative = negative_like[0]
        return next(c for c in classes if c != negative), negative
    return classes[1], classes[0]


# ------------------------------------------------------------------------------------------ sets


@dataclass
class RealSet:
    path: Path
    dataset: Dataset
    sha256: str
    positive: str
    negative: str
    splits: dict[str, list[Sample]]
    train_patients: int | None = None  # the low-data regime: the classifiers train on this many patients
    subset_seed: int = 0

    def labels(self, split: str) -> np.ndarray:
        return np.array([s.label == self.positive for s in self.splits[split]], dtype=np.int64)

    def describe(self) -> dict:
        return {"path": str(self.path.resolve()), "manifest_sha256": self.sha256, "positive": self.positive,
                "negative": self.negative,
                "images": {split: {"total": len(samples), self.positive: int(self.labels(split).sum()),
                                   self.negative: int(len(samples) - self.labels(split).sum())}
                           for split, samples in self.splits.items()},
                "patients": {split: len({s.patient_id for s in samples}) for split, samples in self.splits.items()},
                "train_patients": self.train_patients, "subset_seed": self.subset_seed}


@dataclass
class SyntheticSet:
    name: str
    path: Path
    dataset: Dataset
    sha256: str
    notes: list[str] = field(default_factory=list)
    provenance: list[dict] = field(default_factory=list)

    def describe(self) -> dict:
        counts = Counter(s.label for s in self.dataset.samples)
        return {"name": self.name, "path": str(self.path.resolve()), "manifest_sha256": self.sha256,
                "images": dict(sorted(counts.items())), "gan_training": self.provenance}


def _is_synthetic(dataset: Dataset) -> tuple[bool, int]:
    unmarked = sum(1 for s in dataset.samples if not s.synthetic)
    return bool(dataset.info.source.get("synthetic")) and unmarked == 0, unmarked


def load_real(path: str | Path, positive: str | None = None, train_patients: int | None = None,
              subset_seed: int = 0) -> RealSet:
    path = Path(path)
    dataset = Dataset.load(path)  # refuses a patient found in two splits, naming the manifest
    manifest = path / "manifest.csv"
    if dataset.info.dimensionality != 2:
        raise UserError(f"{path / 'dataset.json'}: a {dataset.info.dimensionality}D dataset; classify trains 2D "
                        "classifiers: use a 2D dataset folder (slices, radiographs)")
    if dataset.info.source.get("synthetic") or any(s.synthetic for s in dataset.samples):
        raise UserError(f"{manifest}: --real points to a synthetic set; pass the real dataset folder as --real "
                        "and the synthetic one as --synthetic")
    pos, neg = choose_positive(list(dataset.info.classes), positive, path)
    splits = {split: dataset.select(split=split, train_patients=train_patients if split == "train" else None,
                                    subset_seed=subset_seed) for split in SPLITS}
    missing = [split for split, samples in splits.items() if not samples]
    if missing:
        raise UserError(f"{manifest}: no {', '.join(missing)} images; classify needs patient-level train, val "
                        "and test splits: re-create the dataset with --split (e.g. 0.7,0.15,0.15)")
    for split in ("train", "test"):
        present = {s.label for s in splits[split]}
        if present != {pos, neg}:
            absent = ", ".join(sorted({pos, neg} - present))
            raise UserError(f"{manifest}: the {split} split has no '{absent}' images; both classes are needed "
                            "there: re-split the dataset (another --seed or --split-file)"
                            + (", or draw more --train-patients (or another --subset-seed)" if train_patients else ""))
    return RealSet(path, dataset, manifest_sha256(path), pos, neg, splits, train_patients, subset_seed)


def load_synthetic(path: str | Path, real: RealSet) -> SyntheticSet:
    path = Path(path)
    dataset = Dataset.load(path)
    manifest = path / "manifest.csv"
    marked, unmarked = _is_synthetic(dataset)
    if not marked:
        what = (f"{unmarked} of its {len(dataset.samples)} rows have no synthetic provenance" if unmarked
                else "its dataset.json does not mark it synthetic (source.synthetic)")
        raise UserError(f"{manifest}: not a synthetic set ({what}); pass sets made by `pathosynth generate` "
                        "as --synthetic (real data belongs in --real)")
    if dataset.info.dimensionality != 2:
        raise UserError(f"{path / 'dataset.json'}: a {dataset.info.dimensionality}D dataset; use a 2D synthetic set")
    if len(dataset.info.channels) != len(real.dataset.info.channels):
        raise UserError(f"{path / 'dataset.json'}: {len(dataset.info.channels)} channel(s) where the real set "
                        f"has {len(real.dataset.info.channels)}; generate with a GAN trained on the real set")
    unknown = sorted({s.label for s in dataset.samples} - {real.positive, real.negative})
    if unknown:
        raise UserError(f"{manifest}: label(s) {', '.join(unknown)} are not classes of the real set "
                        f"({real.positive}, {real.negative}); generate images of those two classes")
    real_patients = {s.patient_id for s in real.dataset.samples}
    shared = sorted({s.patient_id for s in dataset.samples} & real_patients)
    if shared:
        raise UserError(f"{manifest}: {len(shared)} image(s) carry patient ids of the real set (e.g. {shared[0]}): "
                        "a synthetic set must not hold patients' images or identifiers; check that it is "
                        "really generated")
    synthetic = SyntheticSet(path.name, path, dataset, manifest_sha256(path))
    _check_gan_training(synthetic, real)
    return synthetic


# ------------------------------------------------------------------------------------ provenance


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _run_records(run: Path) -> list[tuple[Path, dict]] | None:
    """The run folder's training records: itself, or its per-class runs (class-separate GANs)."""
    top = _read_json(run / "config.json")
    if top is None:
        return None
    if top.get("separate"):
        records = []
        for relative in dict(top["separate"]).values():
            sub = _read_json(run / relative / "config.json")
            if sub is None:
                return None
            records.append((run / relative, sub))
        return records
    return [(run, top)]


def _check_gan_training(synthetic: SyntheticSet, real: RealSet) -> None:
    runs = {str(s.synthetic.get("run")) for s in synthetic.dataset.samples if s.synthetic.get("run")}
    if synthetic.dataset.info.source.get("run"):
        runs.add(str(synthetic.dataset.info.source["run"]))
    where = synthetic.path / "manifest.csv"
    if not runs:
        synthetic.notes.append(f"{synthetic.name}: the provenance names no GAN run, so what the GAN was trained "
                               "on cannot be checked; make sure it never saw the real val/test patients")
        return
    real_path = real.path.resolve()
    for run in sorted(runs):
        records = _run_records(Path(run))
        if records is None:
            synthetic.notes.append(f"{synthetic.name}: its GAN's run folder {run} is not readable here, so what "
                                   "the GAN was trained on cannot be checked; make sure it never saw the real "
                                   "val/test patients")
            continue
        for run_dir, record in records:
            config = record.get("config") or {}
            data_path = (record.get("data") or {}).get("path") or config.get("data")
            split = config.get("split", "train") or ""
            label = config.get("label")
            entry = {"run": str(run_dir), "data": data_path, "split": split or "all", "label": label}
            synthetic.provenance.append(entry)
            _judge_gan_data(synthetic, real, real_path, run_dir, record, data_path, split, label, where)


def _judge_gan_data(synthetic, real, real_path, run_dir, record, data_path, split, label, where) -> None:
    said = f"{synthetic.name}: its GAN ({run_dir})"
    what = f"the '{split}' split" if split else "every split"
    fix = "train the GAN on the real set's train split (`pathosynth train --split train`) and generate again"
    same = False
    other: Dataset | None = None
    if data_path and Path(data_path).resolve() == real_path:
        same = True
    elif data_path and (Path(data_path) / "manifest.csv").is_file():
        if manifest_sha256(Path(data_path)) == real.sha256:
            same = True
        else:
            try:
                other = Dataset.load(data_path)
            except UserError as error:
                synthetic.notes.append(f"{said} was trained on {data_path}, which cannot be read ({error}); "
                                       "what it saw cannot be checked")
                return
    if same:
        if split in ("", "test"):
            raise UserError(f"{where}: {said} was trained on {what} of the real set {real.path}, which includes "
                            f"the test patients; {fix}")
        if split == "val":
            synthetic.notes.append(f"{said} was trained on the real val split, which selects the classifiers: "
                                   "model selection sees images the GAN learnt from; prefer a GAN trained on train")
        elif split != "train":
            synthetic.notes.append(f"{said} was trained on the '{split}' split of the real set, not on train")
        if not _same_patients(synthetic, real, record, said):
            return
        trained = (record.get("data") or {}).get("images")
        now = len(_gan_samples(real, record, split, label))
        # a lesion painter learns from the slices with lesions (and some without): no count to compare
        if trained is not None and int(trained) != now and _draws_whole_images(record):
            synthetic.notes.append(f"{said} saw {trained} images of the real set's {what}, which now holds {now}: "
                                   "the real set changed since (re-split?); its test patients may have been seen")
        return
    if other is None:
        synthetic.notes.append(f"{said} was trained on {data_path or 'an unrecorded dataset'}, which is not the real "
                               "set and not readable here: whether it saw the real test patients cannot be checked")
        return
    seen = {s.patient_id for s in other.select(split=split or None, label=label)}
    for check in ("test", "val"):
        overlap = sorted(seen & {s.patient_id for s in real.splits[check]})
        if overlap and check == "test":
            raise UserError(f"{where}: {said} was trained on {data_path} ({what}), which holds {len(overlap)} "
                            f"patient(s) of the real test split (e.g. {overlap[0]}); {fix}")
        if overlap:
            synthetic.notes.append(f"{said} was trained on {data_path}, which holds {len(overlap)} patient(s) of the "
                                   "real val split: model selection sees images the GAN learnt from")
    synthetic.notes.append(f"{said} was trained on other data ({data_path}), not on the real set's train split; "
                           "no real val/test patient is in it, but the rows measure that data's GAN, not "
                           "augmentation from this training set alone")


def _draws_whole_images(record: dict) -> bool:
    from pathosynth.models import FAMILIES

    model = (record.get("config") or {}).get("model")
    return model not in FAMILIES or FAMILIES[model].generation == "images"


def _gan_samples(real: RealSet, record: dict, split: str, label: str | None) -> list[Sample]:
    """The real images the run's config says its GAN trained on."""
    config = record.get("config") or {}
    return real.dataset.select(split=split or None, label=label, train_patients=config.get("train_patients"),
                               subset_seed=int(config.get("subset_seed") or 0))


def _same_patients(synthetic: SyntheticSet, real: RealSet, record: dict, said: str) -> bool:
    """In the low-data regime the GAN must see the classifiers' patients and no others: a GAN trained
    on more patients brings real information the real-only row never had."""
    config = record.get("config") or {}
    gan = (config.get("train_patients"), int(config.get("subset_seed") or 0) if config.get("train_patients") else 0)
    ours = (real.train_patients, real.subset_seed if real.train_patients else 0)
    if gan == ours:
        return True
    seen = {s.patient_id for s in _gan_samples(real, record, config.get("split", "train") or "", None)}
    extra = seen - {s.patient_id for s in real.splits["train"]}
    described = f"{gan[0]} patients (subset seed {gan[1]})" if gan[0] else "every training patient"
    synthetic.notes.append(
        f"{said} was trained on {described}, the classifiers on "
        + (f"{ours[0]} (subset seed {ours[1]})" if ours[0] else "every training patient")
        + (f": it saw {len(extra)} training patient(s) the classifiers do not, so GAN rows carry real information "
           "the real-only row lacks; train the GAN with the same --train-patients and --subset-seed" if extra
           else ": the GAN saw fewer patients than the classifiers"))
    return False


# -------------------------------------------------------------------------------------- choosing


def class_counts(available: dict[str, int], total: int, shares: dict[str, float]) -> dict[str, int]:
    """Split `total` over the classes in proportion to `shares` (the real training balance, so that
    adding images does not shift it), by largest remainders; a class with too few images gives all
    it has and the others make up the rest (the shift is then stated by the caller)."""
    weights = {c: shares.get(c, 0.0) for c in available}
    norm = sum(weights.values()) or 1.0
    exact = {c: total * w / norm for c, w in weights.items()}
    counts = {c: math.floor(v) for c, v in exact.items()}
    for c in sorted(available, key=lambda c: (counts[c] - exact[c], c))[:total - sum(counts.values())]:
        counts[c] += 1
    short = sum(max(0, counts[c] - available[c]) for c in available)
    counts = {c: min(n, available[c]) for c, n in counts.items()}
    for c in sorted(available, key=lambda c: -weights[c]):  # the shortfall, to classes with images left
        extra = min(short, available[c] - counts[c])
        counts[c] += extra
        short -= extra
    return counts


def training_shares(labels: np.ndarray) -> dict[int, float]:
    """The real training split's class shares, by label (1 positive, 0 negative)."""
    return {1: float(labels.mean()), 0: float(1 - labels.mean())} if len(labels) else {1: 0.5, 0: 0.5}


def _shuffled(items: list, seed: int, salt: str) -> list:
    digest = int.from_bytes(hashlib.sha256(salt.encode()).digest()[:4], "little")
    order = np.random.default_rng([seed, digest]).permutation(len(items))
    return [items[i] for i in order]


def select_synthetic(samples: list[Sample], classes: list[str], count: int, seed: int,
                     shares: dict[str, float]) -> list[Sample]:
    """`count` synthetic images (or all there are) in the class `shares` as the set allows; each
    class's images in a seeded order, so a smaller count is a prefix of a larger one (same seed)."""
    pools = {c: _shuffled(sorted((s for s in samples if s.label == c), key=lambda s: s.id), seed, f"synthetic-{c}")
             for c in classes}
    counts = class_counts({c: len(p) for c, p in pools.items()}, count, shares)
    return [s for c in classes for s in pools[c][:counts[c]]]


def classic_sources(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Indices of the real training images to copy (then augment) `count` times, in the real
    training balance; each class's images in seeded passes, every image once before any twice."""
    picks = []
    present = {cls: count if (labels == cls).any() else 0 for cls in (1, 0)}  # copies repeat: no other limit
    counts = class_counts(present, count, training_shares(labels))
    for cls, n in ((1, counts[1]), (0, counts[0])):
        members = np.flatnonzero(labels == cls)
        chosen: list[int] = []
        passes = 0
        while len(chosen) < n and len(members):
            chosen.extend(_shuffled(members.tolist(), seed, f"classic-{cls}-{passes}"))
            passes += 1
        picks.extend(chosen[:n])
    return np.asarray(picks, dtype=np.int64)


# ---------------------------------------------------------------------------------------- images


def normalise_images(images: torch.Tensor) -> torch.Tensor:
    """Each channel of each image scaled by its own 1st/99th percentiles: (x - p1) / (p99 - p1)."""
    n, c = images.shape[:2]
    flat = images.reshape(n * c, -1).float()
    bounds = torch.quantile(flat, torch.tensor([0.01, 0.99]), dim=1)
    span = bounds[1] - bounds[0]
    scaled = torch.where(span[:, None] > 0, (flat - bounds[0][:, None]) / span.clamp_min(1e-12)[:, None],
                         torch.zeros_like(flat))
    return scaled.reshape(images.shape)


def load_images(dataset: Dataset, samples: list[Sample], size: int, *, progress: bool = True,
                desc: str = "reading", channels: int | None = None) -> torch.Tensor:
    """The samples as a float16 tensor (N, C, size, size), prepared as the module docstring says."""
    out = None
    for i, sample in enumerate(tqdm(samples, desc=desc, unit="img", disable=not progress, leave=False)):
        array = dataset.read(sample)
        if array.ndim != 3:
            raise UserError(f"{dataset.root / sample.image}: expected a 2D image, got shape {array.shape}; "
                            "re-create the dataset")
        channels = channels or array.shape[0]
        if array.shape[0] != channels:
            raise UserError(f"{dataset.root / sample.image}: {array.shape[0]} channel(s) where the other images "
                            f"have {channels}; every image needs the same channels")
        if not np.isfinite(array).all():
            raise UserError(f"{dataset.root / sample.image}: NaN or infinite values; re-create the dataset")
        side = max(array.shape[-2:])
        if array.shape[-2] != array.shape[-1]:
            array, _ = pad_to_square(array, side, value=float(array.min()))
        tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[None]
        if side != size:
            tensor = F.interpolate(tensor, size=(size, size), mode="bilinear", antialias=side > size,
                                   align_corners=False)
        if out is None:
            out = torch.empty((len(samples), channels, size, size), dtype=torch.float16)
        out[i] = normalise_images(tensor)[0].half()
    if out is None:
        return torch.empty((0, channels or 1, size, size), dtype=torch.float16)
    return out


def image_hashes(images: torch.Tensor) -> list[str | None]:
    """A hash of each prepared image's pixels; None for a flat image (blank images are not copies)."""
    hashes = []
    for image in images:
        hashes.append(None if bool((image == image.flatten()[0]).all())
                      else hashlib.sha1(image.numpy().tobytes()).hexdigest())
    return hashes


def exact_copies(synthetic: torch.Tensor, synthetic_samples: list[Sample], real_hashes: dict[str, dict[str, str]]
                 ) -> dict[str, list[tuple[str, str]]]:
    """Synthetic images whose prepared pixels equal a real image's: {split: [(synthetic id, real id)]}."""
    found: dict[str, list[tuple[str, str]]] = {}
    for sample, digest in zip(synthetic_samples, image_hashes(synthetic)):
        for split, table in real_hashes.items():
            if digest is not None and digest in table:
                found.setdefault(split, []).append((sample.id, table[digest]))
    return found


COLLAPSE_RATIO = 0.5  # synthetic images this much closer to each other than real ones are: a collapsed set


def spread(images: torch.Tensor, seed: int, pairs: int = 1000) -> float:
    """Mean distance between random pairs of distinct images (root mean square pixel difference of
    the normalised images): how varied a set is, comparable between sets of one size."""
    n = len(images)
    if n < 2:
        return 0.0
    rng = np.random.default_rng([seed, n])
    first = rng.integers(0, n, pairs)
    second = (first + rng.integers(1, n, pairs)) % n  # never the same image
    flat = images.reshape(n, -1).float()
    return float((flat[first] - flat[second]).pow(2).mean(1).sqrt().mean())


def diversity_against_real(synthetic: torch.Tensor, real: torch.Tensor, seed: int) -> dict:
    """Is the synthetic set as varied as the real training images? A set of copies of one image
    (mode collapse) has distinct share and spread ratio near 0."""
    distinct = len({h for h in image_hashes(synthetic)}) if len(synthetic) else 0
    ours, theirs = spread(synthetic, seed), spread(real, seed)
    ratio = ours / theirs if theirs > 0 else float("nan")
    return {"images": int(len(synthetic)), "distinct_images": distinct, "spread": ours, "real_spread": theirs,
            "spread_ratio": ratio, "collapsed": bool(len(synthetic) and (ratio < COLLAPSE_RATIO
                                                                      or distinct < COLLAPSE_RATIO * len(synthetic)))}
