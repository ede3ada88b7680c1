"""The demo's chest CT step: a small 3D MCGAN (with the paper's optional L1 term) trained on the
built-in nodule VOIs, then one nodule of each of the nine size x attenuation kinds placed into a
held-out phantom scan, with a preview.

On a CPU the 64^3 VOIs at 1 mm are averaged down to 32^3 at 2 mm (a 32 mm nodule box still holds
the largest phantom nodules): eight times fewer voxels, so the step takes minutes, not hours. The
run is a demonstration of the pipeline, not of nodule quality (docs/benchmarks.md has that).
"""

from __future__ import annotations

from pathlib import Path

import click
import numpy as np

from pathosynth.config import make_config
from pathosynth.data.dataset import Dataset
from pathosynth.data.readers import read_image
from pathosynth.demo.runs import train_or_resume
from pathosynth.generate.nodules import place_nodules
from pathosynth.data.nodules import ATTENUATIONS, SIZES
from pathosynth.generate.placement import lung_mask, random_lung_positions

DEMO_STEPS = 1000
# pix2pix's L1 to the real nodule (the paper's optional term, off in the presets): at a few hundred
# steps without it the boxes are still speckle; with it the nodules are smooth and blend in after
# 1,000 steps (the paper found it costs diversity, which a preview does not need).
DEMO_L1 = 100.0


def run_demo_ct(out: Path, vois: Path, scans: Path, *, seed: int, tiny: bool, progress: bool) -> Path:
    config = (make_config("mcgan3d", "tiny", data=str(vois), seed=seed) if tiny else
              make_config("mcgan3d", "small", data=str(vois), seed=seed, resolution=32, nodule_box=16,
                          steps=DEMO_STEPS, l1_weight=DEMO_L1, checkpoint_every=250, sample_every=250))
    run_dir = out / "runs" / "chest-mcgan3d"
    train_or_resume(config, run_dir, progress)
    placed = out / "chest-ct-synthetic-nodules"
    if not (placed / "nodules.json").is_file():
        scan_path = _held_out_scan(scans)
        scan = read_image(scan_path)
        rng = np.random.default_rng(seed)
        kinds = [(size, attenuation) for size in SIZES for attenuation in ATTENUATIONS]
        centres = random_lung_positions(scan, lung_mask(scan), len(kinds), rng, margin_mm=10.0, path=scan_path)
        at = [",".join(f"{v:.3f}" for v in scan.index_to_world(centre)) + ",world" for centre in centres]
        place_nodules(run_dir, scan_path, placed, at=at, sizes=[k[0] for k in kinds],
                      attenuations=[k[1] for k in kinds], seed=seed, overwrite=True, progress=progress)
    click.echo(f"chest-ct-synthetic-nodules: nine nodules (3 sizes x 3 attenuations) placed by {run_dir}\n"
               f"  preview: {placed / 'preview.png'}")
    return placed


def _held_out_scan(scans: Path) -> Path:
    dataset = Dataset.load(scans)
    held = dataset.select(split="test") or dataset.select(split="val") or dataset.select()
    return scans / held[0].image
