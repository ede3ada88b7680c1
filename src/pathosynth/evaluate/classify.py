"""`pathosynth evaluate classify`: does synthetic data help a tumour classifier? The papers' setups.

Setups (METHODS section 2, two-step GAN paper, Table 1), each trained `repeats` times, from scratch
and/or ImageNet-pretrained, selected on the real val split and tested once on the real test split:

- `real`: the real train split only (the baseline every other row is tested against);
- `classic`: real + N classic-DA images, augmented copies of real training images (see below);
- `gan:NAME`: real + N images of the synthetic set NAME (one row per --synthetic folder);
- `classic+gan:NAME`: real + the same N classic-DA images + the same N synthetic images;
- `synthetic-only:NAME`: synthetic images only, as many as there are real training images (or
  all there are), class-balanced; tested on real images (the train-on-synthetic test).

**Extra images.** N = round(ratio x real training images), class-balanced (half per class) as
each synthetic set allows, drawn in a seeded order (the same seed picks the same images; a
smaller N picks a subset of a larger N's images). When a synthetic set holds fewer than N
images, N is lowered to that for every row, so that the classic and GAN rows always add the same
number of images (the papers' +200k classic vs +200k GAN). Classic DA follows the papers too:
a fixed set of N augmented copies of real training images (half per class, every image copied
once before any twice), made once per run from the seed (`evaluate/classic_da.py`), not on-the-fly
augmentation: that keeps "classic" and "gan" rows equal in size and epoch length, and lets
"classic+gan" be exactly the union of the two.

**Repeats and seeds.** Repeat r (0-based) trains with seed `seed * 1000 + r` in every setup (network
initialisation, dropout, batch order); the data (synthetic choice, classic copies) are fixed for
a run. Same seed, same thread count, CPU: the same numbers.

**Statistics** (`evaluate/stats.py`, `classify_stats.py`), on the real test split, the positive class
= 1. The primary answer (METHODS section 10): ROC AUC, and sensitivity at a fixed operating point: the
specificity the real-only model reaches on the validation split at 0.5 (averaged over its repeats)
is the target, each trained model gets its own threshold reaching it on its validation negatives,
and that threshold is applied unchanged to the test split. Secondary: threshold 0.5 on the
probability. Extra images are added in the real training class balance. `classify_headline.py`
turns the results into sentences that say "not established" unless the data show an effect.

- point: each metric (sensitivity, specificity, accuracy, ROC AUC, average precision) is computed
  for every repeat and averaged over the repeats; `sd` is their standard deviation (n - 1);
- 95% interval: percentile bootstrap over test *patients* (`patient_bootstrap`, 2,000 resamples in
  the paper and small presets): each resample draws patients with replacement, takes all their
  slices, computes the metric for every repeat and averages over the repeats. It describes the
  uncertainty from the finite test set of the repeat-averaged metric; the repeats' spread is `sd`.
  The same resamples (same seed) for every row;
- paired tests against `real` with the same initialisation, on the repeats' *ensemble* (each test
  image's probability averaged over the repeats, positive at >= 0.5): McNemar on the positives
  (sensitivity) and on the negatives (specificity), DeLong on the ensemble scores for the AUC.
  The ensemble's own sensitivity/specificity/AUC are in results.json beside the tests.

**Output** (built in OUT.partial, renamed to OUT when complete): config.json, results.json (every
number; all but `timing` reproducible), table.md (the papers' Table 1 layout, sensitivity first),
roc.png, predictions.csv, and cells/ (each finished (setup, initialisation, repeat) cell's test
scores and training history; a rerun of the same command reuses every cell whose configuration
is unchanged, so an interrupted run resumes where it stopped).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from pathosynth import __version__
from pathosynth.contracts import write_json_atomic
from pathosynth.errors import UserError
from pathosynth.evaluate import stats
from pathosynth.evaluate.classic_da import ClassicDA, augmented_copies
from pathosynth.evaluate.classifiers import (
    default_device,
    describe_network,
    fit,
    get_settings,
    predict,
)
from pathosynth.evaluate.classify_data import (
    RealSet,
    SyntheticSet,
    classic_sources,
    diversity_against_real,
    exact_copies,
    image_hashes,
    load_images,
    load_real,
    load_synthetic,
    select_synthetic,
    training_shares,
)
from pathosynth.evaluate.classify_stats import FORMAT, THRESHOLD, statistics
from pathosynth.runtime import configure_torch_threads, software_versions
from pathosynth.tempfiles import remove_stale_temporaries

SETUPS = ("real", "classic", "gan", "classic+gan", "synthetic-only")
PRETRAINED = {"no": (False,), "yes": (True,), "both": (False, True)}
CELL_FORMAT = 2  # bump when a change makes old cells' numbers invalid (2: validation scores kept)


class ClassifyInterrupted(KeyboardInterrupt):
    """Ctrl-C during the experiment: finished cells are kept for a rerun to reuse."""


@dataclass(frozen=True)
class Row:
    """One setup row: `kind` is one of SETUPS; `synthetic` names the synthetic set it uses."""

    kind: str
    synthetic: str | None = None

    @property
    def id(self) -> str:
        return f"{self.kind}:{self.synthetic}" if self.synthetic else self.kind


def parse_setups(text: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    names = [s.strip() for s in text.split(",")] if isinstance(text, str) else list(text)
    names = list(dict.fromkeys(n for n in names if n))
    unknown = [n for n in names if n not in SETUPS]
    if unknown or not names:
        raise UserError(f"--setups: unknown setup {', '.join(unknown) or '(none given)'}; give a comma list of "
                        f"{','.join(SETUPS)}")
    return tuple(n for n in SETUPS if n in names)


# ------------------------------------------------------------------------------------ the runner


def classify(real: str | Path, synthetic: list[str | Path] | tuple = (), out: str | Path = "classify", *,
             setups: str | tuple[str, ...] = SETUPS, pretrained: str = "no", preset: str = "small", repeats: int = 2,
             ratio: float = 1.0, seed: int = 0, positive: str | None = None, overwrite: bool = False,
             progress: bool = True, threads: int | None = None, bootstrap: int | None = None,
             max_epochs: int | None = None, train_patients: int | None = None, subset_seed: int = 0) -> dict:
    """Run the classification experiment and write OUT; returns the results (results.json's content)."""
    started = time.perf_counter()
    settings = get_settings(preset, n_boot=bootstrap, max_epochs=max_epochs)
    kinds = parse_setups(setups)
    _check_arguments(kinds, pretrained, repeats, settings, synthetic, ratio)
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; choose another --out or pass --overwrite")
    real_set, synthetic_sets, notes = _load_sets(real, synthetic, positive, train_patients, subset_seed)
    rows = _rows(kinds, synthetic_sets)
    choice = _choose_extra_images(real_set, synthetic_sets, rows, ratio, seed, notes)
    tensors, labels, real_hashes = _real_images(real_set, settings.size, progress, notes)
    synthetic_images = _synthetic_images(real_set, synthetic_sets, choice.selections, settings.size,
                                         tensors["train"].shape[1], real_hashes, progress, notes)
    diversity = _diversity(synthetic_images, tensors["train"], seed, notes)
    da = ClassicDA()
    classic = None
    if any(r.kind in ("classic", "classic+gan") for r in rows):
        sources = torch.from_numpy(classic_sources(real_set.labels("train"), choice.extra, seed))
        classic = {"x": augmented_copies(tensors["train"], sources, da, seed), "y": labels["train"][sources],
                   "sources": sources}
    options = PRETRAINED[pretrained]
    device = default_device()
    previous = _read_json(partial / "config.json") if partial.is_dir() else None
    threads = _threads(threads, previous) if device.type == "cpu" else torch.get_num_threads()
    data_key = {"real": real_set.sha256, "train_patients": [train_patients, subset_seed],
                "synthetic": {s.name: s.sha256 for s in synthetic_sets},
                "positive": real_set.positive, "settings": settings.describe(), "seed": seed,
                "extra_images": choice.extra, "classic_da": da.describe(), "cell_format": CELL_FORMAT}
    config = _experiment_config(real_set, synthetic_sets, rows, choice, settings, da, options, pretrained, repeats,
                                ratio, seed, threads, device, data_key)
    _prepare_partial(partial, out, overwrite, config)
    cells = [(p, r, row) for p in options for r in range(repeats) for row in rows]
    done: dict[tuple, dict] = {}
    try:
        timing = _run_cells(cells, done, partial, data_key, settings, tensors, labels, classic, synthetic_images,
                            real_set, seed, threads, device, progress)
        results = statistics(real_set, rows, options, repeats, done, settings, seed)
        results.update(notes=notes, synthetic_diversity=diversity, extra_images=config["extra_images"],
                       synthetic_used=config["synthetic_used"],
                       timing={"total_seconds": round(time.perf_counter() - started, 1), "cells": timing,
                               "threads": threads})
        _write_outputs(results, config, done, real_set, rows, options, repeats, choice.extra, partial)
    except KeyboardInterrupt:
        raise ClassifyInterrupted(f"interrupted: {len(done)} of {len(cells)} cells are saved in {partial}; run the "
                                  "same command again to resume from them") from None
    if out.exists():
        shutil.rmtree(out)
    partial.rename(out)
    return results


def _check_arguments(kinds, pretrained: str, repeats: int, settings, synthetic, ratio: float) -> None:
    if pretrained not in PRETRAINED:
        raise UserError(f"--pretrained '{pretrained}': choose no, yes or both")
    if repeats < 1:
        raise UserError(f"--repeats must be at least 1, got {repeats}")
    if settings.n_boot < 100:
        raise UserError(f"--bootstrap must be at least 100 resamples, got {settings.n_boot}")
    if settings.max_epochs < 1:
        raise UserError(f"--max-epochs must be at least 1, got {settings.max_epochs}")
    gan_kinds = [k for k in kinds if k in ("gan", "classic+gan", "synthetic-only")]
    if gan_kinds and not synthetic:
        raise UserError(f"the setup(s) {', '.join(gan_kinds)} need --synthetic DIR (a set from `pathosynth "
                        "generate`); or choose --setups real,classic")
    if any(k in ("classic", "gan", "classic+gan") for k in kinds) and not (ratio > 0 and math.isfinite(ratio)):
        raise UserError(f"--ratio must be a positive number of extra images per real training image, got {ratio}")


def _load_sets(real, synthetic, positive, train_patients, subset_seed) -> tuple[RealSet, list[SyntheticSet], list]:
    """The real set and the synthetic ones, with the leakage checks of `classify_data`."""
    real_set = load_real(real, positive, train_patients, subset_seed)
    synthetic_sets: list[SyntheticSet] = []
    for path in synthetic:
        made = load_synthetic(path, real_set)
        if any(s.name == made.name for s in synthetic_sets):
            raise UserError(f"{path}: two --synthetic folders are named '{made.name}'; rows are named by folder: "
                            "rename one")
        synthetic_sets.append(made)
    return real_set, synthetic_sets, [note for s in synthetic_sets for note in s.notes]


@dataclass
class _ExtraImages:
    requested: int  # ratio x real training images
    extra: int  # what every classic and GAN row adds (fewer when a synthetic set is smaller)
    n_real: int
    selections: dict[str, dict[str, list]]  # {set: {"gan" | "synthetic-only": samples}}


def _choose_extra_images(real_set: RealSet, synthetic_sets: list[SyntheticSet], rows: list[Row], ratio: float,
                         seed: int, notes: list[str]) -> _ExtraImages:
    """How many extra images each DA row adds and which synthetic ones, in the real training class
    balance; drops a synthetic-only row whose set has one class. Says in `notes` where it had to."""
    classes = [real_set.positive, real_set.negative]
    n_real = len(real_set.splits["train"])
    requested = int(round(ratio * n_real)) if ratio > 0 else 0
    extra = requested
    gan_sets = [s for s in synthetic_sets if any(r.synthetic == s.name and r.kind != "synthetic-only" for r in rows)]
    if gan_sets and requested > min(len(s.dataset.samples) for s in gan_sets):
        extra = min(len(s.dataset.samples) for s in gan_sets)
        notes.append(f"--ratio {ratio:g} asks for {requested} extra images per setup, but the smallest synthetic set "
                     f"holds {extra}: every classic and GAN row adds {extra} (ratio {extra / n_real:.3g})")
    selections: dict[str, dict[str, list]] = {}
    by_label = training_shares(real_set.labels("train"))
    shares = {real_set.positive: by_label[1], real_set.negative: by_label[0]}
    for s in synthetic_sets:
        wanted = Row("synthetic-only", s.name) in rows
        chosen = {"gan": select_synthetic(s.dataset.samples, classes, extra, seed, shares) if s in gan_sets else [],
                  "synthetic-only": select_synthetic(s.dataset.samples, classes, n_real, seed, shares) if wanted
                  else []}
        selections[s.name] = chosen
        _note_class_balance(s.name, chosen["gan"], real_set, shares, notes)
        if wanted:
            only = chosen["synthetic-only"]
            if len({x.label for x in only}) < 2:
                rows.remove(Row("synthetic-only", s.name))
                notes.append(f"{s.name}: holds images of one class only; the synthetic-only row needs both and "
                             "is left out")
            elif len(only) < n_real:
                notes.append(f"{s.name}: synthetic-only trains on all {len(only)} images (fewer than the {n_real} real "
                             "training images)")
    return _ExtraImages(requested, extra, n_real, selections)


def _note_class_balance(name: str, picked: list, real_set: RealSet, shares: dict, notes: list[str]) -> None:
    counts = {c: sum(1 for x in picked if x.label == c) for c in (real_set.positive, real_set.negative)}
    expected = round(shares[real_set.positive] * len(picked))
    if picked and abs(counts[real_set.positive] - expected) > 1:
        notes.append(f"{name}: the set cannot give {len(picked)} images in the real training balance "
                     f"({shares[real_set.positive]:.0%} {real_set.positive}): GAN rows add "
                     + ", ".join(f"{n} {c}" for c, n in counts.items())
                     + f" ({counts[real_set.positive] / len(picked):.1%} {real_set.positive}), which shifts "
                     "the class balance")


def _real_images(real_set: RealSet, size: int, progress: bool, notes: list[str]):
    """Each split's images and labels as tensors, and their pixel hashes (notes name duplicated slices)."""
    tensors = {split: load_images(real_set.dataset, real_set.splits[split], size, progress=progress,
                                  desc=f"reading real {split}") for split in ("train", "val", "test")}
    labels = {split: torch.from_numpy(real_set.labels(split)) for split in tensors}
    real_hashes = {split: {h: s.id for h, s in zip(image_hashes(tensors[split]), real_set.splits[split]) if h}
                   for split in ("train", "val", "test")}
    for split in ("val", "test"):
        leaked = sorted(set(real_hashes[split]) & set(real_hashes["train"]))
        if leaked:
            notes.append(f"{real_set.path}: {len(leaked)} {split} image(s) are pixel-identical to training images "
                         f"(e.g. {real_hashes[split][leaked[0]]} = {real_hashes['train'][leaked[0]]}); "
                         "duplicated slices across patients inflate the results")
    return tensors, labels, real_hashes


def _synthetic_images(real_set: RealSet, synthetic_sets: list[SyntheticSet], selections: dict, size: int,
                      channels: int, real_hashes: dict, progress: bool, notes: list[str]) -> dict[str, dict]:
    """The chosen synthetic images as tensors; a copy of a real val or test image is refused."""
    synthetic_images: dict[str, dict] = {}
    for s in synthetic_sets:
        union = {x.id: x for key in ("gan", "synthetic-only") for x in selections[s.name][key]}
        samples = sorted(union.values(), key=lambda x: x.id)
        images = load_images(s.dataset, samples, size, progress=progress, desc=f"reading {s.name}",
                             channels=channels)
        copies = exact_copies(images, samples, real_hashes)
        for split in ("test", "val"):
            if copies.get(split):
                first = copies[split][0]
                raise UserError(f"{s.path / 'manifest.csv'}: {len(copies[split])} synthetic image(s) are "
                                f"pixel-identical to real {split} images (e.g. {first[0]} = {first[1]}): the "
                                f"{split} images would be trained on; remove them (and check how the set was made)")
        if copies.get("train"):
            notes.append(f"{s.name}: {len(copies['train'])} synthetic image(s) are pixel-identical to real training "
                         "images (memorised copies); run `pathosynth curate audit` and consider discarding them")
        index = {x.id: i for i, x in enumerate(samples)}
        synthetic_images[s.name] = {
            "x": images, "y": torch.tensor([int(x.label == real_set.positive) for x in samples]),
            "gan": torch.tensor([index[x.id] for x in selections[s.name]["gan"]], dtype=torch.int64),
            "synthetic-only": torch.tensor([index[x.id] for x in selections[s.name]["synthetic-only"]],
                                           dtype=torch.int64)}
    return synthetic_images


def _diversity(synthetic_images: dict[str, dict], real_train: torch.Tensor, seed: int, notes: list[str]) -> dict:
    diversity = {}
    for name, data in synthetic_images.items():
        used = data["gan"] if len(data["gan"]) else data["synthetic-only"]
        diversity[name] = diversity_against_real(data["x"][used], real_train, seed)
        if diversity[name]["collapsed"]:
            notes.append(f"{name}: collapsed: {diversity[name]['distinct_images']} distinct of "
                         f"{diversity[name]['images']} images, spread {diversity[name]['spread_ratio']:.2f} x the real "
                         "training images'; no gain from it can be read as a gain from varied synthetic data")
    return diversity


def _experiment_config(real_set, synthetic_sets, rows, choice: _ExtraImages, settings, da, options, pretrained: str,
                       repeats: int, ratio: float, seed: int, threads: int, device, data_key: dict) -> dict:
    classes = [real_set.positive, real_set.negative]
    return {
        "format": FORMAT, "pathosynth": __version__,
        "real": real_set.describe(), "synthetic": [s.describe() for s in synthetic_sets],
        "setups": [r.id for r in rows], "pretrained": pretrained, "repeats": repeats, "ratio": ratio, "seed": seed,
        "threshold": THRESHOLD, "preset": settings.describe(),
        "networks": {("pretrained" if p else "scratch"): describe_network(settings, p) for p in options},
        "extra_images": {"requested": choice.requested, "used": choice.extra, "real_training_images": choice.n_real},
        "synthetic_used": {name: {key: _label_counts(picked, classes) for key, picked in chosen.items()}
                           for name, chosen in choice.selections.items()},
        "classic_da": {**da.describe(), "copies": choice.extra, "mode": "fixed augmented copies, made once per run"},
        "seeds": {"cell": "seed * 1000 + repeat (initialisation, dropout, batch order)",
                  "synthetic_choice": "seed", "classic_copies": "seed", "bootstrap": "seed"},
        "threads": threads, "device": str(device),
        "versions": software_versions(device),
        "command": " ".join(sys.argv), "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": _digest(data_key),
    }


def _prepare_partial(partial: Path, out: Path, overwrite: bool, config: dict) -> None:
    """OUT.partial with its cells folder and config; --overwrite carries unchanged cells over."""
    fresh = not partial.is_dir()
    for folder in (partial, partial / "cells"):
        remove_stale_temporaries(folder)  # left by a run that was killed while writing
    (partial / "cells").mkdir(parents=True, exist_ok=True)
    if fresh and overwrite and (out / "cells").is_dir():
        for old in (out / "cells").glob("*.json"):  # --overwrite: unchanged cells need no retraining
            shutil.copy2(old, partial / "cells" / old.name)
    _write_json(config, partial / "config.json")


def _run_cells(cells, done, partial, data_key, settings, tensors, labels, classic, synthetic_images, real_set,
               seed, threads, device, progress) -> dict:
    """Train (or reuse) every (initialisation, repeat, setup) cell; fills `done`, returns the timing."""
    from tqdm import tqdm

    timing = {}
    test_ids = [s.id for s in real_set.splits["test"]]
    names = set()
    for number, (p, repeat, row) in enumerate(cells, 1):
        key = _cell_name(row, p, repeat)
        names.add(f"{key}.json")
        fingerprint = _digest({**data_key, "row": row.id, "pretrained": p, "repeat": repeat})
        path = partial / "cells" / f"{key}.json"
        cell = _read_json(path)
        if cell and cell.get("fingerprint") == fingerprint and cell.get("test_ids") == test_ids:
            timing[key] = {"seconds": cell["seconds"], "reused": True}
        else:
            x, y = _training_set(row, tensors["train"], labels["train"], classic, synthetic_images)
            desc = f"[{number}/{len(cells)}] {row.id} {'pretrained' if p else 'scratch'} r{repeat + 1}"
            cell_start = time.perf_counter()
            model, history = fit(settings, p, x, y, tensors["val"], labels["val"], seed * 1000 + repeat,
                                 progress=progress, desc=desc, device=device)
            scores = predict(model, tensors["test"], device=device)
            val_scores = predict(model, tensors["val"], device=device)  # fixes the operating point
            seconds = time.perf_counter() - cell_start
            cell = {"fingerprint": fingerprint, "row": row.id, "pretrained": p, "repeat": repeat,
                    "seed": seed * 1000 + repeat, "threads": threads, "training_images": _label_counts_tensor(y),
                    "epochs": len(history), "best_epoch": max(h["best_epoch"] for h in history),
                    "history": history, "test_ids": test_ids, "scores": [float(v) for v in scores],
                    "val_scores": [float(v) for v in val_scores],
                    "seconds": round(seconds, 3)}
            _write_json(cell, path)
            timing[key] = {"seconds": cell["seconds"], "reused": False}
            if progress:
                tqdm.write(f"{desc}: {cell['epochs']} epochs (best {cell['best_epoch']}), {seconds:.0f} s, "
                           f"test AUC {stats.roc_auc(real_set.labels('test'), scores):.3f}")
        done[(p, repeat, row.id)] = cell
    for stale in (partial / "cells").glob("*.json"):  # cells of another configuration
        if stale.name not in names:
            stale.unlink()
    return timing


def _write_outputs(results, config, cells, real_set, rows, options, repeats, extra, folder: Path) -> None:
    from pathosynth.evaluate.tables import plot_roc, setup_name, write_table

    _write_json(results, folder / "results.json")
    write_table(results, config, folder / "table.md")
    curves = {p: [(f"{setup_name(entry, extra)}: AUC {entry['metrics']['roc_auc']['mean']:.3f}",
                   np.mean([cells[(p, r, entry["setup"])]["scores"] for r in range(repeats)], 0))
                  for entry in group["rows"]]
              for p, group in zip(options, results["groups"])}
    plot_roc(curves, real_set.labels("test"), folder / "roc.png",
             titles={p: "ImageNet-pretrained (EfficientNet-Lite0)" if p else
                     f"from scratch ({'ResNet-50' if config['preset']['network'] == 'resnet50' else 'small ResNet'})"
                     for p in options})
    _write_predictions(real_set, rows, options, repeats, cells, folder / "predictions.csv")


def _rows(kinds: tuple[str, ...], synthetic_sets: list[SyntheticSet]) -> list[Row]:
    rows = []
    for kind in kinds:
        if kind in ("real", "classic"):
            rows.append(Row(kind))
        else:
            rows.extend(Row(kind, s.name) for s in synthetic_sets)
    return rows


def _training_set(row: Row, x: torch.Tensor, y: torch.Tensor, classic: dict | None, synthetic: dict):
    parts_x, parts_y = [], []
    if row.kind != "synthetic-only":
        parts_x.append(x)
        parts_y.append(y)
    if row.kind in ("classic", "classic+gan"):
        parts_x.append(classic["x"])
        parts_y.append(classic["y"])
    if row.kind in ("gan", "classic+gan", "synthetic-only"):
        data = synthetic[row.synthetic]
        index = data["synthetic-only" if row.kind == "synthetic-only" else "gan"]
        parts_x.append(data["x"][index])
        parts_y.append(data["y"][index])
    return torch.cat(parts_x), torch.cat(parts_y)


def _cell_name(row: Row, pretrained: bool, repeat: int) -> str:
    name = row.id.replace(":", "__").replace("+", "-plus-")
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return f"{safe}__{'pretrained' if pretrained else 'scratch'}__r{repeat}"


def _label_counts(samples: list, classes: list[str]) -> dict[str, int]:
    counts = {c: sum(1 for s in samples if s.label == c) for c in classes}
    return {"total": len(samples), **counts}


def _label_counts_tensor(y: torch.Tensor) -> dict[str, int]:
    return {"total": int(len(y)), "positive": int(y.sum()), "negative": int(len(y) - y.sum())}


def _threads(requested: int | None, previous: dict | None) -> int:
    """Torch threads: --threads, else PATHOSYNTH_THREADS, else a resumed run's own count (CPU
    results depend on it), else the free cores."""
    recorded = previous.get("threads") if previous else None
    if requested is None and not os.environ.get("PATHOSYNTH_THREADS") and recorded:
        requested = int(recorded)
    return configure_torch_threads(requested)




def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(payload: dict, path: Path) -> None:
    write_json_atomic(path, payload, allow_nan=True)


def _write_predictions(real: RealSet, rows: list[Row], options, repeats: int, cells: dict, path: Path) -> None:
    samples = real.splits["test"]
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["setup", "pretrained", "repeat", "image_id", "patient_id", "label", "score"])
        for p in options:
            for row in rows:
                for r in range(repeats):
                    for sample, score in zip(samples, cells[(p, r, row.id)]["scores"]):
                        writer.writerow([row.id, "yes" if p else "no", r, sample.id, sample.patient_id, sample.label,
                                         f"{score:.9g}"])
