"""`pathosynth report FOLDER... --out DIR`: one HTML and Markdown report from the folders the other
verbs write, with a checklist of what was done in the spirit of CLAIM.

Each FOLDER is recognised by what it holds: a dataset (`dataset.json`: real or synthetic), a
training run (`config.json` of format pathosynth-run), a memorization audit (`audit.json`), a
classification experiment (`evaluate classify`: `results.json` + `table.md`), image metrics
(`evaluate images`: `image-metrics.json`) or a t-SNE (`evaluate tsne`: `tsne.json`). Nothing is
recomputed: every number in the report is read from those folders, so it traces back to their
configs and seeds. Figures are copied into OUT/figures; OUT is written under a temporary name and
renamed when complete.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pathosynth import __version__
from pathosynth.data.dataset import Dataset
from pathosynth.data.inspect import show_dataset
from pathosynth.errors import UserError
from pathosynth.evaluate.classify_headline import headline_questions, headline_sentences
from pathosynth.outputs import building, refuse_existing
from pathosynth.report.render import Block, Checklist, Heading, Image, Paragraph, Table, markdown_blocks, \
    to_html, to_markdown

KINDS = ("real", "run", "synthetic", "audit", "classify", "images", "tsne")  # the flow's order


def folder_kind(path: Path) -> str:
    """Which verb wrote `path`, from the files it holds."""
    if not path.is_dir():
        raise UserError(f"{path}: no such folder; give folders written by pathosynth verbs")
    if (path / "dataset.json").is_file():
        source = _json(path / "dataset.json").get("source") or {}
        return "synthetic" if source.get("synthetic") else "real"
    config = path / "config.json"
    if config.is_file():
        try:
            if json.loads(config.read_text()).get("format") == "pathosynth-run":
                return "run"
        except ValueError as exc:
            raise UserError(f"{config}: not valid JSON ({exc}); re-create the folder") from exc
    for kind, marker in (("audit", "audit.json"), ("images", "image-metrics.json"), ("tsne", "tsne.json")):
        if (path / marker).is_file():
            return kind
    if (path / "results.json").is_file() and (path / "table.md").is_file():
        return "classify"
    raise UserError(f"{path}: not a folder written by pathosynth (no dataset.json, run config.json, audit.json, "
                    "results.json + table.md, image-metrics.json or tsne.json); check the path")


@dataclass
class _Report:
    out: Path  # the folder being written (temporary name)
    blocks: list[Block] = field(default_factory=list)
    facts: dict = field(default_factory=lambda: defaultdict(list))
    figures: int = 0

    def figure(self, source: Path, caption: str) -> None:
        """Copy a PNG into figures/ and show it."""
        self.figures += 1
        name = f"figures/{self.figures:02d}-{source.name}"
        shutil.copyfile(source, self.out / name)
        self.blocks.append(Image(name, caption))


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot be read as JSON ({exc}); re-create it with its verb") from exc


# ------------------------------------------------------------------------------- sections


def _dataset_section(report: _Report, path: Path, seed: int) -> None:
    dataset = Dataset.load(path)  # refuses a manifest whose patients sit in two splits
    info = dataset.info
    synthetic = bool(info.source.get("synthetic")) or any(s.synthetic for s in dataset.samples)
    counts: dict[str, Counter] = defaultdict(Counter)
    patients: dict[str, set] = defaultdict(set)
    for sample in dataset.samples:
        split = sample.split or "(none)"
        counts[split][sample.label] += 1
        patients[split].add(sample.patient_id)
    kind = "synthetic" if synthetic else "real"
    report.blocks.append(Heading(f"{'Synthetic' if synthetic else 'Real'} dataset: {info.name} (`{path}`)"))
    report.blocks.append(Paragraph(f"{info.modality}, {info.dimensionality}D, channels {', '.join(info.channels)}, "
                                   f"intensity {info.intensity_unit}; {len(dataset.samples)} images."))
    header = ["split", "patients", *info.classes, "images"]
    rows = [[split, "" if synthetic else str(len(patients[split])), *(str(counts[split][c]) for c in info.classes),
             str(sum(counts[split].values()))] for split in sorted(counts)]
    report.blocks.append(Table(header, rows))
    if synthetic:
        source = info.source
        seeds = [s.synthetic.get("seed") for s in dataset.samples if s.synthetic]
        marked = all(s.synthetic for s in dataset.samples)
        report.blocks.append(Paragraph(
            f"Generated by {source.get('generator', '?')} from run `{source.get('run', '?')}`; every image marked "
            f"synthetic: {marked}; image seeds {min(seeds)}-{max(seeds)}." if seeds else "No image seeds recorded."))
        report.facts["synthetic"].append({"path": str(path), "marked": all(s.synthetic for s in dataset.samples)
                                          and bool(info.source.get("synthetic")),
                                          "seeded": len(seeds) == len(dataset.samples)})
    else:
        report.facts["real"].append({"path": str(path), "splits": sorted(counts),
                                     "patients": {k: len(v) for k, v in patients.items()}})
    if info.dimensionality == 2:
        preview = report.out / "figures" / f"preview-{kind}-{path.name}.png"
        show_dataset(path, preview, n=16, seed=seed)
        report.figures += 1
        report.blocks.append(Image(f"figures/{preview.name}", f"{kind} images from {info.name}, boxes drawn"))


def _run_section(report: _Report, path: Path) -> None:
    config = _json(path / "config.json")
    settings = config.get("config", {})
    last = {}
    stats = path / "stats.jsonl"
    if stats.is_file():
        lines = stats.read_text().strip().splitlines()
        last = json.loads(lines[-1]) if lines else {}
    report.blocks.append(Heading(f"GAN training run: `{path}`"))
    condition = ", ".join(part for part in (
        f"classes {settings.get('classes')}" if settings.get("classes") else "",
        "box-conditioned" if settings.get("boxes") else "",
        f"label {settings['label']}" if settings.get("label") else "") if part)
    rows = [["model", f"{settings.get('model')} ({condition})" if condition else str(settings.get("model"))],
            ["preset, resolution", f"{settings.get('preset')}, {settings.get('resolution')} px"],
            ["steps done / planned", f"{last.get('step', 0)} / {settings.get('steps')}"],
            ["images shown", str(last.get("images_shown", ""))],
            ["data, split", f"`{settings.get('data')}`, {settings.get('split')}"],
            ["seed, torch threads", f"{settings.get('seed')}, {config.get('threads')}"],
            ["command", f"`{config.get('command', '')}`"],
            ["versions", ", ".join(f"{k} {v}" for k, v in config.get("versions", {}).items())]]
    report.blocks.append(Table(["setting", "value"], rows))
    samples = sorted((path / "samples").glob("*.png"))
    if samples:
        report.figure(samples[-1], f"samples of `{path.name}` at its last grid ({samples[-1].stem}), fixed latents")
    report.facts["runs"].append({"path": str(path), "split": settings.get("split"), "seed": settings.get("seed"),
                                 "versions": bool(config.get("versions"))})


def _audit_section(report: _Report, path: Path) -> None:
    audit = _json(path / "audit.json")
    summary = audit.get("summary", {})
    report.blocks.append(Heading(f"Memorization audit: `{path}`"))
    cross = summary.get("held_out_flag_rate_cross_fitted")
    report.blocks.append(Paragraph(
        f"{summary.get('synthetic_flagged')} of {summary.get('synthetic_images')} synthetic images flagged as "
        f"near-copies of a training image ({_percent(summary.get('synthetic_flag_rate'))}); held-out real images "
        f"(other patients) flagged at the same thresholds: {_percent(summary.get('held_out_flag_rate'))}"
        + (f" (cross-fitted {_percent(cross)})" if cross is not None else "")
        + ". A synthetic rate well above the held-out rate means the GAN copies patients."))
    for note in audit.get("notes", []):
        report.blocks.append(Paragraph(f"Note: {note}"))
    if (path / "closest-pairs.png").is_file():
        report.figure(path / "closest-pairs.png", "closest synthetic / training pairs (synthetic left)")
    report.facts["audit"].append({"path": str(path), "rate": summary.get("synthetic_flag_rate"),
                                  "held_out": summary.get("held_out_flag_rate")})


def _markdown_section(report: _Report, path: Path, kind: str, markdown: str, title: str) -> None:
    report.blocks.append(Heading(f"{title}: `{path}`"))
    if (path / markdown).is_file():
        report.blocks += markdown_blocks((path / markdown).read_text())
    for png in sorted(path.glob("*.png")):
        report.figure(png, f"{title.lower()}: {png.stem}")
    report.facts[kind].append({"path": str(path)})


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _checklist(facts: dict) -> Checklist:
    real, synthetic, runs = facts["real"], facts["synthetic"], facts["runs"]
    items = [
        ("Real data described (modality, classes, patients and images per split)", bool(real) or None, ""),
        ("Splits by patient: no patient in two splits (checked when each dataset was read)", bool(real) or None,
         "; ".join(f"{r['path']}: {', '.join(f'{k} {v}' for k, v in r['patients'].items())} patients" for r in real)),
        ("A held-out test split, separate from validation", all({"val", "test"} <= set(r["splits"]) for r in real)
         if real else None, ""),
        ("GANs trained on the training split only", all(r["split"] == "train" for r in runs) if runs else None,
         ", ".join(f"{Path(r['path']).name}: {r['split']}" for r in runs)),
        ("Training configs, seeds and software versions recorded", all(r["versions"] for r in runs) if runs else None,
         ""),
        ("Every synthetic image marked synthetic", all(s["marked"] for s in synthetic) if synthetic else None, ""),
        ("Every synthetic image has its own seed and provenance", all(s["seeded"] for s in synthetic)
         if synthetic else None, ""),
        ("Memorization audit against the training patients", bool(facts["audit"]) or None, ""),
        ("Downstream experiment: repeats, patient-level intervals, paired tests against real only",
         bool(facts["classify"]) or None, ""),
        *_classify_checks(facts["classify"]),
        ("Image metrics with a real-vs-real reference", bool(facts["images"]) or None, ""),
        ("t-SNE of real vs synthetic images", bool(facts["tsne"]) or None, ""),
    ]
    return Checklist(items)


# Differences a test split should be able to detect (80% power) before its answer can settle anything
POWER_BARS = {"roc_auc": (0.05, "0.05 AUC", 1.0), "sensitivity_at_fixed_specificity": (0.10, "10 sensitivity points",
                                                                                      100.0)}


def _classify_checks(experiments: list[dict]) -> list[tuple[str, bool | None, str]]:
    """Checklist items that can fail: a competent judge, synthetic sets that are not collapsed, and a
    test split large enough to detect the differences that matter."""
    if not experiments:
        return []
    groups = [g for e in experiments for g in e["results"].get("groups", [])]
    competence = [g["competence"] for g in groups if g.get("competence")]
    diversity = {name: d for e in experiments for name, d in (e["results"].get("synthetic_diversity") or {}).items()}
    # the power of the comparisons the headline answers (train-on-synthetic-only is another question)
    mdds = {name: [d[name]["mdd"] for g in groups for _, d, _ in headline_questions(g)
                   if d.get(name) and math.isfinite(d[name].get("mdd", math.nan))] for name in POWER_BARS}
    return [
        ("Real-only classifier competent to judge (test AUC >= its floor)",
         all(c["competent"] for c in competence) if competence else None,
         "; ".join(f"AUC {c['real_auc']:.3f} (floor {c['floor']:.2f})" for c in competence)),
        ("Synthetic sets varied, not collapsed (distinct images; spread against the real training images)",
         not any(d["collapsed"] for d in diversity.values()) if diversity else None,
         "; ".join(f"{name}: {d['distinct_images']} distinct of {d['images']}, spread x{d['spread_ratio']:.2f}"
                   for name, d in diversity.items())),
        ("Test split powered: enough patients, and detects " + " and ".join(text for _, text, _ in POWER_BARS.values())
         + " at 80% power", _powered(experiments, mdds),
         "; ".join([f"{e['results']['test']['patients']} test patients" for e in experiments]
                   + [f"{name}: detects {max(values) * POWER_BARS[name][2]:.3g} or more"
                      for name, values in mdds.items() if values])),
        ("Two or more training runs per setup: an effect must clear the spread between runs (the same seed on "
         "another CPU trains other models)", all(e["results"].get("repeats", 1) >= 2 for e in experiments),
         "; ".join(f"{e['results'].get('repeats', 1)} run(s) per setup" for e in experiments)),
    ]


def _powered(experiments: list[dict], mdds: dict[str, list[float]]) -> bool | None:
    enough = all(e["results"]["test"]["patients"] >= e["results"]["test"].get("minimum_patients", 0)
                 for e in experiments)
    if not enough:
        return False
    if not any(mdds.values()):
        return None
    return all(max(values) <= POWER_BARS[name][0] for name, values in mdds.items() if values)


# ----------------------------------------------------------------------------------- main


def report(folders: list[str | Path], out: str | Path, *, title: str = "pathosynth report", seed: int = 0,
           overwrite: bool = False) -> Path:
    """Write OUT/report.html, OUT/report.md, OUT/report.json and OUT/figures/; returns OUT."""
    out = Path(out)
    if not folders:
        raise UserError("give at least one folder to report on (datasets, runs, audits, evaluate outputs)")
    refuse_existing(out, overwrite)
    kinds = [(Path(folder), folder_kind(Path(folder))) for folder in folders]
    with building(out, overwrite=True) as tmp:
        (tmp / "figures").mkdir()
        body = _Report(tmp)
        for kind in KINDS:  # the flow's order, whatever the order given
            for path, found in kinds:
                if found != kind:
                    continue
                if kind in ("real", "synthetic"):
                    _dataset_section(body, path, seed)
                elif kind == "run":
                    _run_section(body, path)
                elif kind == "audit":
                    _audit_section(body, path)
                elif kind == "classify":
                    _markdown_section(body, path, kind, "table.md", "Classification experiment")
                    results = _json(path / "results.json")
                    body.facts["classify"][-1]["results"] = results
                    answers = headline_sentences(results)
                    body.facts["answers"] += answers
                    body.blocks += [Paragraph(f"**{answer}**") for answer in answers]
                elif kind == "images":
                    _markdown_section(body, path, kind, "image-metrics.md", "Image metrics")
                else:
                    _markdown_section(body, path, kind, "tsne.md", "t-SNE")
        created = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        intro: list[Block] = [
            Paragraph(f"Written {created} by pathosynth {__version__} from {len(kinds)} folder(s). Every number "
                      "below is read from those folders (their configs hold the seeds and versions); nothing "
                      "was recomputed."),
            *[Paragraph(f"**{answer}**") for answer in body.facts["answers"]],
            Heading("Checklist"), _checklist(body.facts)]
        blocks = intro + body.blocks
        (tmp / "report.md").write_text(to_markdown(title, blocks))
        (tmp / "report.html").write_text(to_html(title, blocks))
        (tmp / "report.json").write_text(json.dumps({"created": created, "pathosynth": __version__,
                                                    "folders": [{"path": str(p), "kind": k} for p, k in kinds],
                                                    "facts": body.facts}, indent=2) + "\n")
    return out
