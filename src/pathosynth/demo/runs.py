"""Train a demo run, or resume it, or reuse it when finished: an interrupted demo continues."""

from __future__ import annotations

from pathlib import Path

import click
import torch

from pathosynth.models import family
from pathosynth.training.checkpoint import FULL_STATE
from pathosynth.training.loop import resume_run, train


def train_or_resume(config, run_dir: Path, progress: bool) -> None:
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
