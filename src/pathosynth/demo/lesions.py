"""The demo's generator step: the 2D lesion inpainter trained on the glioma set's low-data patients,
then two synthetic sets painted into those patients' lesion-free slices.

Why the inpainter: at the demo's CPU budget the whole-image GANs made one image per class
(DCGAN) or squares of noise (the U-Net box GAN), while painting lesions into real slices is what
reaches the issue-17 bars here (docs/benchmarks.md) and what raised sensitivity in recent work.
The run trains on the same seeded training patients as the classification experiment's
classifiers and paints only into them, so the experiment's extra images bring no other patient.

- `brain-synthetic`: slices with a lesion painted at a real layout (the papers' jitter), and, in
  the real training set's class balance, slices repainted with healthy tissue in the same kind of
  boxes (the non-tumour class), the images the experiment adds;
- `brain-synthetic-boxes`: two lesions at random places inside the brain of each slice, of sides
  drawn evenly from 8 to 40 px (larger than most real ones): lesions where the user asks.

A finished run or synthetic set is reused, a started run resumes from its checkpoint, so an
interrupted demo continues where it stopped.
"""

from __future__ import annotations

from pathlib import Path

import click

from pathosynth.config import make_config
from pathosynth.data.dataset import Dataset
from pathosynth.data.inspect import show_dataset
from pathosynth.demo.runs import train_or_resume
from pathosynth.generate import generate

RUN = "brain-inpaint"
STEPS = 600
# the experiment adds as many images as there are real training slices (about 620 for 8 patients):
# 1,200 leave room for the real class balance
IMAGES, TINY_IMAGES = 1200, 64
BOXES_IMAGES = 24
BOXES_SIZES = (8, 40)  # px, box side; the phantom's real lesion boxes: 1-129 px, median about 12


def healthy_share(brain: Path, train_patients: int, seed: int) -> float:
    """The share of lesion-free slices among the experiment's real training slices."""
    samples = Dataset.load(brain).select(split="train", train_patients=train_patients, subset_seed=seed)
    return sum(1 for s in samples if not s.boxes) / max(len(samples), 1)


def _finished(folder: Path, images: int) -> bool:
    manifest = folder / "manifest.csv"
    return manifest.is_file() and len(manifest.read_text().strip().splitlines()) - 1 == images


def run_demo_lesions(out: Path, *, seed: int, tiny: bool, train_patients: int, progress: bool) -> list[Path]:
    brain = out / "brain-mr"
    config = make_config("inpaint2d", "tiny" if tiny else "small", data=str(brain), seed=seed,
                         steps=None if tiny else STEPS, train_patients=train_patients, subset_seed=seed)
    run_dir = out / "runs" / RUN
    train_or_resume(config, run_dir, progress)
    images = TINY_IMAGES if tiny else IMAGES
    share = healthy_share(brain, train_patients, seed)
    sets = (("brain-synthetic", images, dict(healthy=share),
             f"{images} slices, {share:.0%} repainted without a lesion (the real training balance)"),
            ("brain-synthetic-boxes", BOXES_IMAGES,
             dict(positions="random", per_image=2, lesion_size=None if tiny else BOXES_SIZES),
             "two lesions at random places in each slice"))
    previews = []
    for name, count, options, what in sets:
        synthetic = out / name
        if not _finished(synthetic, count):  # absent, or made by an older demo with another image count
            generate(run_dir, count, synthetic, seed=seed, overwrite=True, progress=progress, **options)
        preview = show_dataset(synthetic, out / f"{name}-preview.png", n=24 if not tiny else 8, seed=seed)
        click.echo(f"{name}: {what}, painted by {run_dir}\n  preview: {preview}")
        previews.append(preview)
    return previews
