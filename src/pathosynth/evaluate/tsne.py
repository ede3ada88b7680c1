"""t-SNE of real, classic-DA and synthetic images (`pathosynth evaluate tsne`), as in the papers.

The two-step GAN paper (METHODS 2) plots t-SNE of 300 images per category (real, real with classic
DA, each GAN), perplexity 100, 1,000 iterations; the fracture paper (METHODS 5) plots real vs
synthetic per class to show mode collapse (a synthetic cloud covering only part of the real one)
or a lack of diversity. Here: one embedding per class, whose points are `per_class` images of
each category:

- `real`: the real dataset's training split (seeded random choice);
- `classic DA` (`--classic-da`): other training images (an independent seeded choice) each
  transformed once with the papers' classic augmentation (`evaluate/classic_da.py`: random flips,
  rotation up to 10 degrees, shift / shear / zoom up to 8%, constant fill), after per-image
  intensity scaling so that the fill is the background;
- each synthetic set (`--synthetic`, repeatable): its images of that class.

Points: `pixel` (default; the images themselves: resized to 64 x 64, each scaled by its own 1st and
99th percentiles) or `encoder` (the pooled features of the small CNN that `evaluate images` trains
on the training split's labels). Both are reduced to 50 dimensions by PCA (usual before t-SNE; it
changes little and makes it fast), then embedded by scikit-learn's TSNE (Barnes-Hut, PCA
initialisation, learning rate "auto", `random_state` = the seed: the same inputs and seed give the
same coordinates). The perplexity is capped at (points - 1) / 3 (t-SNE looks at 3 x perplexity
neighbours), with a note, when a class has few images.

Output folder (written as OUT.partial-PID, renamed when complete): `tsne-<class>.png` per class,
`tsne.png` (all classes side by side), `tsne.json` (every point's set, id and coordinates, the
settings, counts, notes, versions) and `tsne.md` (a short summary for reports).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from pathosynth.data.dataset import Dataset, Sample
from pathosynth.data.splits import SPLITS
from pathosynth.errors import UserError
from pathosynth.evaluate.classic_da import ClassicDA
from pathosynth.evaluate.features import ENCODER, PIXEL, PixelFeatures, normalise_intensity, read_batches
from pathosynth.evaluate.images import (
    ImageMetricsSettings,
    check_classes,
    open_dataset,
    set_names,
    stable_rng,
    train_encoder,
)
from pathosynth.outputs import building, refuse_existing
from pathosynth.runtime import software_versions

TSNE_FORMAT = "pathosynth-tsne"
TSNE_VERSION = 1
TSNE_SPACES = (PIXEL, ENCODER)
REAL = "real"
CLASSIC_DA = "classic DA"
PIXEL_SIZE = 64
PCA_DIMENSIONS = 50
MIN_ITERATIONS = 250  # scikit-learn's lower limit for max_iter
# colours by category: real first, classic DA second, then the synthetic sets
COLOURS = ("#1f1f1f", "#8c8c8c", "#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#17becf", "#e377c2")


@dataclass
class TsneSettings:
    per_class: int = 300
    perplexity: float = 100.0
    iterations: int = 1000
    features: str = PIXEL
    classic_da: bool = False
    split: str = "train"
    seed: int = 0
    encoder_epochs: int = 5
    batch_size: int = 64

    def check(self) -> None:
        if self.features not in TSNE_SPACES:
            raise UserError(f"--features '{self.features}': give pixel or encoder")
        if self.per_class < 2:
            raise UserError(f"--per-class {self.per_class}: give at least 2")
        if self.perplexity <= 0:
            raise UserError(f"--perplexity {self.perplexity}: give a positive number (the papers used 100)")
        if self.iterations < MIN_ITERATIONS:
            raise UserError(f"--iterations {self.iterations}: scikit-learn's t-SNE needs at least {MIN_ITERATIONS} "
                            "(the papers used 1000)")
        if self.split not in SPLITS:
            raise UserError(f"--split '{self.split}': give one of {', '.join(SPLITS)}")
        if self.encoder_epochs < 1 or self.batch_size < 1:
            raise UserError("--encoder-epochs and --batch must be at least 1")


@dataclass
class _Category:
    name: str
    dataset: Dataset
    samples: list[Sample]
    da_seed: int | None = None  # classic DA: transform the images with this seed


def _pick(samples: Sequence[Sample], n: int, seed: int, *tags: str) -> list[Sample]:
    samples = list(samples)
    if len(samples) <= n:
        return samples
    keep = np.sort(stable_rng(seed, *tags).choice(len(samples), n, replace=False))
    return [samples[i] for i in keep]


def _file_name(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", label).strip("_") or "class"


def evaluate_tsne(real: str | Path, synthetic: Sequence[str | Path] = (), out: str | Path = "tsne",
                  settings: TsneSettings | None = None, *, overwrite: bool = False, progress: bool = True) -> dict:
    """t-SNE per class of real, (optionally) classic-DA and each synthetic set's images; writes `out`
    and returns the content of tsne.json."""
    started = time.perf_counter()
    settings = settings or TsneSettings()
    settings.check()
    out = Path(out)
    refuse_existing(out, overwrite)
    sets = _open_sets(real, synthetic, settings)
    notes: list[str] = []
    embedding_input = {label: _categories(sets, label, settings, notes) for label in sets.classes}
    tick = time.perf_counter()
    encoder = None
    if settings.features == ENCODER:
        metrics_settings = ImageMetricsSettings(features=(ENCODER,), split=settings.split, seed=settings.seed,
                                                encoder_epochs=settings.encoder_epochs, batch_size=settings.batch_size)
        encoder = train_encoder(sets.real, sets.train, sets.classes, metrics_settings, progress)
    features = _features(embedding_input, encoder or PixelFeatures(size=PIXEL_SIZE), settings, progress)
    timings = {"features": time.perf_counter() - tick}
    tick = time.perf_counter()
    embeddings = {label: _embedding(label, embedding_input[label], features[label], settings, notes)
                  for label in tqdm(sets.classes, desc="t-SNE: embedding", unit="class", disable=not progress)}
    timings["t-SNE"] = time.perf_counter() - tick
    timings["total"] = time.perf_counter() - started
    report = _tsne_record(sets, settings, encoder, embeddings, notes, timings)
    _write(out, report, report["categories"])
    return report


@dataclass
class _Sets:
    real: Dataset
    synthetic: list[Dataset]
    names: list[str]  # the synthetic sets' names, as the figures and tsne.json show them
    train: list
    classes: list[str]


def _open_sets(real: str | Path, synthetic: Sequence[str | Path], settings: TsneSettings) -> _Sets:
    real_ds = open_dataset(real, "--real")
    syn_paths = [Path(p) for p in synthetic]
    syn_ds = [open_dataset(p, "--synthetic") for p in syn_paths]
    train = real_ds.select(split=settings.split)
    if not train:
        present = sorted({s.split for s in real_ds.samples})
        raise UserError(f"{real_ds.root}: no image in the '{settings.split}' split (splits present: "
                        f"{', '.join(present)}); pass --split with a split it has")
    classes = [c for c in real_ds.info.classes if any(s.label == c for s in train)]
    classes += sorted({s.label for s in train} - set(classes))
    for dataset in syn_ds:
        check_classes(classes, dataset)
        if len(dataset.info.channels) != len(real_ds.info.channels):
            raise UserError(f"{dataset.root} has {len(dataset.info.channels)} channel(s) but {real_ds.root} has "
                            f"{len(real_ds.info.channels)}; compare a synthetic set generated from this dataset")
    names = [f"synthetic: {n}" if n in (REAL, CLASSIC_DA) else n for n in set_names(syn_paths)]
    return _Sets(real_ds, syn_ds, names, train, classes)


def _categories(sets: _Sets, label: str, settings: TsneSettings, notes: list[str]) -> list[_Category]:
    """The points of one class: real images, classic-DA copies of others, each synthetic set's images."""
    pool = [s for s in sets.train if s.label == label]
    real_pick = _pick(pool, settings.per_class, settings.seed, "tsne-real", label)
    categories = [_Category(REAL, sets.real, real_pick)]
    if len(real_pick) < settings.per_class:
        notes.append(f"class '{label}': only {len(real_pick)} real {settings.split} images (asked for "
                     f"{settings.per_class})")
    if settings.classic_da:
        # an independent choice of source images; as many copies as real points
        sources = _pick(pool, len(real_pick), settings.seed, "tsne-classic-da", label)
        categories.append(_Category(CLASSIC_DA, sets.real, sources,
                                    da_seed=int(stable_rng(settings.seed, "tsne-da", label).integers(2**31))))
    for name, dataset in zip(sets.names, sets.synthetic):
        mine = [s for s in dataset.samples if s.label == label]
        if not mine:
            notes.append(f"class '{label}': {name} has no image of this class")
            continue
        picked = _pick(mine, settings.per_class, settings.seed, "tsne-synthetic", name, label)
        if len(picked) < settings.per_class:
            notes.append(f"class '{label}': {name} has only {len(picked)} images (asked for {settings.per_class})")
        categories.append(_Category(name, dataset, picked))
    return categories


def _features(embedding_input: dict[str, list[_Category]], extractor, settings: TsneSettings,
              progress: bool) -> dict[str, dict[str, np.ndarray]]:
    total = sum(len(c.samples) for cats in embedding_input.values() for c in cats)
    features: dict[str, dict[str, np.ndarray]] = {}
    with tqdm(total=total, desc="t-SNE: features", unit="img", disable=not progress) as bar:
        for label, categories in embedding_input.items():
            for category in categories:
                parts = []
                generator = None if category.da_seed is None else torch.Generator().manual_seed(category.da_seed)
                for chunk, images in read_batches(category.dataset, category.samples, settings.batch_size):
                    if generator is not None:
                        images = ClassicDA()(normalise_intensity(images), generator)
                    parts.append(extractor(images))
                    bar.update(len(chunk))
                features.setdefault(label, {})[category.name] = np.concatenate(parts)
    return features


def _embedding(label: str, categories: list[_Category], features: dict[str, np.ndarray], settings: TsneSettings,
               notes: list[str]) -> dict:
    stacked = np.concatenate([features[c.name] for c in categories]).astype(np.float64)
    coordinates, used, reduced = embed(stacked, settings.perplexity, settings.iterations, settings.seed)
    if used < settings.perplexity:
        notes.append(f"class '{label}': perplexity {settings.perplexity:g} capped to {used:.4g} for "
                     f"{len(stacked)} points ((points - 1) / 3)")
    points, start = {}, 0
    for category in categories:
        n = len(category.samples)
        points[category.name] = {"ids": [s.id for s in category.samples],
                                 "x": coordinates[start:start + n, 0].tolist(),
                                 "y": coordinates[start:start + n, 1].tolist()}
        start += n
    return {"points": points, "counts": {name: len(p["ids"]) for name, p in points.items()},
            "perplexity": used, "pca_dimensions": reduced}


def _tsne_record(sets: _Sets, settings: TsneSettings, encoder, embeddings: dict, notes: list[str],
                 timings: dict[str, float]) -> dict:
    categories_order = [REAL] + ([CLASSIC_DA] if settings.classic_da else []) + sets.names
    if encoder:
        points = (f"encoder: {encoder.network.dim} pooled features of a small CNN trained on the real "
                  f"{settings.split} labels")
    else:
        points = f"pixels: {PIXEL_SIZE} x {PIXEL_SIZE}, each image scaled by its own 1st/99th percentiles to [0, 1]"
    return {
        "format": TSNE_FORMAT,
        "format_version": TSNE_VERSION,
        "created_with": software_versions(),
        "settings": asdict(settings),
        "real": {"path": str(sets.real.root.resolve()), "split": settings.split, "classes": sets.classes},
        "synthetic": [{"name": name, "path": str(d.root.resolve())} for name, d in zip(sets.names, sets.synthetic)],
        "categories": categories_order,
        "features": f"{points}; PCA to at most {PCA_DIMENSIONS} dimensions",
        "encoder": encoder.describe() if encoder else None,
        "classic_da": _describe_da() if settings.classic_da else None,
        "tsne": {"implementation": "sklearn.manifold.TSNE", "method": "barnes_hut", "init": "pca",
                 "learning_rate": "auto", "max_iter": settings.iterations, "random_state": settings.seed},
        "embeddings": embeddings,
        "notes": notes,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }


def _describe_da() -> dict:
    return {**ClassicDA().describe(), "applied_to": "training images scaled by their own 1st/99th percentiles "
            "to [0, 1] (so the fill, 0, is the background)"}


def embed(features: np.ndarray, perplexity: float, iterations: int, seed: int) -> tuple[np.ndarray, float, int]:
    """(coordinates (n, 2), the perplexity used, PCA dimensions) for rows of `features`."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    n = len(features)
    if n < 4:
        raise UserError(f"t-SNE needs at least 4 images per class, got {n}; use a larger dataset or --per-class")
    dims = min(PCA_DIMENSIONS, n - 1, features.shape[1])
    reduced = features
    if features.shape[1] > dims:
        reduced = PCA(n_components=dims, svd_solver="full").fit_transform(features)
    used = float(min(perplexity, (n - 1) / 3))
    tsne = TSNE(n_components=2, perplexity=used, max_iter=iterations, init="pca", learning_rate="auto",
                random_state=seed)
    return tsne.fit_transform(reduced), used, int(dims)


def _plot(axis, embedding: dict, order: Sequence[str], title: str) -> None:
    for i, name in enumerate(order):
        points = embedding["points"].get(name)
        if not points:
            continue
        axis.scatter(points["x"], points["y"], s=6, alpha=0.65, color=COLOURS[i % len(COLOURS)], linewidths=0,
                     label=f"{name} ({len(points['ids'])})")
    axis.set_title(title, fontsize=9)
    axis.set_xticks([])
    axis.set_yticks([])
    axis.legend(fontsize=7, markerscale=2, loc="best", frameon=False)


def format_markdown(report: dict, order: Sequence[str]) -> str:
    """A short summary: what was embedded, how many points per class and category, the notes."""
    settings = report["settings"]
    lines = ["# t-SNE", "",
             f"One embedding per class of {settings['per_class']} images per category: real "
             f"{settings['split']} images" + (", real training images with the papers' classic augmentation"
                                              if settings["classic_da"] else "")
             + (", and each synthetic set" if report["synthetic"] else "")
             + f". Points: {report['features']}. scikit-learn TSNE, {settings['iterations']} iterations, "
             f"random_state {settings['seed']}. Figures: tsne.png (all classes), tsne-<class>.png; every "
             "coordinate is in tsne.json.", "",
             "| class | perplexity | " + " | ".join(order) + " |",
             "| --- | ---: | " + " | ".join("---:" for _ in order) + " |"]
    for label, embedding in report["embeddings"].items():
        counts = " | ".join(str(embedding["counts"].get(name, 0)) for name in order)
        lines.append(f"| {label} | {embedding['perplexity']:.4g} | {counts} |")
    if report["notes"]:
        lines += ["", "Notes:", ""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def _write(out: Path, report: dict, order: Sequence[str]) -> None:
    from matplotlib.figure import Figure

    with building(out, overwrite=True) as tmp:  # the caller ran refuse_existing before the long work
        embeddings = report["embeddings"]
        for label, embedding in embeddings.items():
            figure = Figure(figsize=(5, 5))
            title = f"t-SNE, class {label} (perplexity {embedding['perplexity']:.3g})"
            _plot(figure.subplots(), embedding, order, title)
            figure.tight_layout()
            figure.savefig(tmp / f"tsne-{_file_name(label)}.png", dpi=120)
        figure = Figure(figsize=(4.6 * len(embeddings), 4.8))
        axes = figure.subplots(1, len(embeddings), squeeze=False)[0]
        for axis, (label, embedding) in zip(axes, embeddings.items()):
            _plot(axis, embedding, order, f"{label} (perplexity {embedding['perplexity']:.3g})")
        figure.suptitle(f"t-SNE per class: {report['features']}", fontsize=8)
        figure.tight_layout()
        figure.savefig(tmp / "tsne.png", dpi=120)
        (tmp / "tsne.json").write_text(json.dumps(report, indent=1) + "\n")
        (tmp / "tsne.md").write_text(format_markdown(report, order))
