"""The demo's GAN step: train small pathology-aware GANs on the built-in brain sets and generate.

Two runs, both `small` preset at 64x64: a class-conditional DCGAN (tumour / non-tumour on request)
on the glioma set, trained on the same training patients as the classification experiment's
classifiers, and the box-conditioned U-Net GAN (lesions where the boxes say), the fastest
box-conditioned family on a CPU, on the metastasis set, the papers' detection data. A finished
run or synthetic set is reused, a started run resumes from its checkpoint, so an interrupted demo
continues where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click
import torch

from pathosynth.config import make_config
from pathosynth.data.inspect import show_dataset
from pathosynth.generate import generate
from pathosynth.models import family
from pathosynth.training.checkpoint import FULL_STATE
from pathosynth.training.loop import resume_run, train


@dataclass(frozen=True)
class DemoGAN:
    run: str
    synthetic: str
    data: str  # the demo's dataset folder it trains on
    model: str
    overrides: dict
    small_steps: int
    images: int
    tiny_images: int


DEMO_GANS = (
    # 1,200 images, half per class: the classification experiment adds as many as there are real
    # training slices (777, 65% tumour), in their class balance
    DemoGAN("brain-dcgan", "brain-synthetic", "brain-mr", "dcgan", {"classes": "conditional"}, 1500, 1200, 64),
    DemoGAN("brain-unet-boxes", "brain-synthetic-boxes", "brain-metastases", "unet-cgan",
            {"classes": "none", "label": "tumour"}, 600, 24, 24),
)
# The run whose images the classification experiment adds: it sees only the experiment's patients.
EXPERIMENT_GAN = "brain-dcgan"


def _train_or_resume(config, run_dir: Path, progress: bool) -> None:
    state = run_dir / "checkpoints" / FULL_STATE
    if state.is_file():
        step = int(torch.load(state, map_location="cpu", weights_only=True)["step"])
        if step >= config.steps:
            click.echo(f"{run_dir.name}: reusing the trained run {run_dir}")
            return
        click.echo(f"{run_dir.name}: resuming at step {step} of {config.steps}")
    if (run_dir / "config.json").is_file():
        resume_run(run_dir, progress=progress)
    else:
        size = f"{config.resolution}^3 VOIs" if family(config.model).spatial_dims == 3 else f"{config.resolution} px"
        click.echo(f"{run_dir.name}: training {config.model} ({config.steps} steps, {size})")
        train(config, run_dir, progress=progress)


def run_demo_gans(out: Path, *, seed: int, tiny: bool, train_patients: int, progress: bool) -> list[Path]:
    previews = []
    for spec in DEMO_GANS:
        preset = "tiny" if tiny else "small"
        subset = {"train_patients": train_patients, "subset_seed": seed} if spec.run == EXPERIMENT_GAN else {}
        config = make_config(spec.model, preset, data=str(out / spec.data), seed=seed,
                             steps=None if tiny else spec.small_steps, **spec.overrides, **subset)
        run_dir = out / "runs" / spec.run
        _train_or_resume(config, run_dir, progress)
        synthetic = out / spec.synthetic
        images = spec.tiny_images if tiny else spec.images
        manifest = synthetic / "manifest.csv"
        finished = manifest.is_file() and len(manifest.read_text().strip().splitlines()) - 1 == images
        if not finished:  # absent, or made by an older demo with another image count
            generate(run_dir, images, synthetic, seed=seed, overwrite=True, progress=progress)
        preview = show_dataset(synthetic, out / f"{spec.synthetic}-preview.png", n=24 if not tiny else 8,
                               seed=seed)
        click.echo(f"{spec.synthetic}: {images} synthetic images from {run_dir}\n  preview: {preview}")
        previews.append(preview)
    return previews
