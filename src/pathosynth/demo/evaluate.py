"""The demo's last steps on the built-in brain MR set: audit the painted slices for near-copies, run
the classification experiment (real / classic DA / inpainting DA / both / synthetic only; three
repeats each), image metrics and t-SNE, and assemble everything into one report.

Each step's folder appears only when complete and is reused by a rerun; the classification
experiment also resumes from its finished cells, so an interrupted demo continues where it stopped.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from pathosynth.curate import AuditSettings, audit
from pathosynth.evaluate.classify import classify
from pathosynth.evaluate.images import ImageMetricsSettings, evaluate_images
from pathosynth.evaluate.tsne import TsneSettings, evaluate_tsne
from pathosynth.evaluate.classify_headline import headline_sentences
from pathosynth.report import report


def _step(folder: Path, marker: str, what: str) -> bool:
    """True when the step must run; says so when a finished folder is reused."""
    if (folder / marker).is_file():
        click.echo(f"{folder.name}: reusing the finished {what} in {folder}")
        return False
    click.echo(f"{folder.name}: {what}")
    return True


def run_demo_evaluation(out: Path, brain: Path, synthetic: Path, report_inputs: list[Path], *, seed: int,
                        tiny: bool, train_patients: int, progress: bool) -> Path:
    """Audit, experiment, metrics, t-SNE, then the report over them and `report_inputs` (the real
    sets, the runs and the synthetic sets). The experiment's classifiers train on `train_patients`
    training patients drawn with `seed`, the ones the synthetic set's generator saw. Returns the report
    folder."""
    audit_dir, classify_dir = out / "brain-audit", out / "brain-classify"
    images_dir, tsne_dir = out / "brain-image-metrics", out / "brain-tsne"
    if _step(audit_dir, "audit.json", "memorization audit of the synthetic images against the training patients"):
        # pixel space only: it caught every planted copy in the tests, and the ImageNet space would
        # add minutes of CPU time to the demo (`pathosynth curate audit` uses both by default)
        result = audit(brain, synthetic, audit_dir, AuditSettings(features=("pixel",)), progress=progress)
        summary = result["summary"]
        click.echo(f"  {summary['synthetic_flagged']} of {summary['synthetic_images']} synthetic images flagged "
                   f"as near-copies (held-out real images: {summary['held_out_flag_rate']:.1%})")
        for note in result["notes"]:
            click.echo(f"  note: {note}")
    if _step(classify_dir, "results.json", "classification experiment (real / classic DA / GAN DA / both / "
                                           "synthetic only)"):
        classify(brain, [synthetic], classify_dir, preset="tiny" if tiny else "small", repeats=1 if tiny else 3,
                 seed=seed, train_patients=train_patients, subset_seed=seed, progress=progress)
    if _step(images_dir, "image-metrics.json", "image metrics (Frechet distance, KID, precision/recall)"):
        # fewer images and KID subsets than the verb's defaults keep this step near a minute
        evaluate_images(brain, [synthetic], images_dir,
                        ImageMetricsSettings(features=("encoder", "radiomics"), seed=seed,
                                             max_images=200 if tiny else 600, kid_subsets=20),
                        progress=progress)
    if _step(tsne_dir, "tsne.json", "t-SNE of real, classic-DA and synthetic images"):
        evaluate_tsne(brain, [synthetic], tsne_dir,
                      TsneSettings(seed=seed, classic_da=True, per_class=30 if tiny else 300), progress=progress)
    report_dir = out / "report"
    report([*report_inputs, audit_dir, classify_dir, images_dir, tsne_dir], report_dir,
           title="pathosynth demo: brain MR tumour augmentation", seed=seed, overwrite=True)
    for sentence in headline_sentences(json.loads((classify_dir / "results.json").read_text())):
        click.echo(sentence)
    return report_dir
