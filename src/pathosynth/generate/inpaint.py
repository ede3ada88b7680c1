"""A trained 3D MCGAN run as a function: a VOI in HU and a condition in, the inpainted nodule box out.

The same run, seed and condition always give the same nodule: the noise box and the generator's
dropout (its randomness) are both drawn from the seed, on the CPU-independent seeded generators.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pathosynth.errors import UserError
from pathosynth.models import FAMILIES, build_generator
from pathosynth.data.nodules import ATTENUATIONS, SIZES
from pathosynth.models.mcgan3d.networks import centre_slices, condition_vector, generator_input, noise_box_input
from pathosynth.runtime import default_device
from pathosynth.training import checkpoint as ckpt
from pathosynth.contracts import Intensity


@dataclass
class Inpainter:
    model: torch.nn.Module
    name: str  # the family it was trained as (the run's model)
    file: Path
    sha256: str
    step: int
    voi_size: int
    box: int
    spacing_mm: float  # VOI voxel size the run was trained at
    intensity: Intensity
    device: torch.device

    @torch.no_grad()
    def __call__(self, voi_hu: np.ndarray, size: str, attenuation: str, seed: int) -> np.ndarray:
        """The generated central box (box^3, HU) for a VOI of voi_size^3 at spacing_mm."""
        check_condition(size, attenuation)
        if voi_hu.shape != (self.voi_size,) * 3:
            raise ValueError(f"VOI must be {self.voi_size}^3, got {voi_hu.shape}")
        low, high = self.intensity.low_clip, self.intensity.high_clip
        voi = self.intensity.normalise(torch.from_numpy(np.clip(voi_hu, low, high).astype(np.float32)))[None, None]
        # the noise from a CPU generator: the same seed gives the same noise box on any device
        noise_voi = noise_box_input(voi, self.box, generator=torch.Generator().manual_seed(int(seed))).to(self.device)
        conditions = condition_vector(size, attenuation)[None].to(self.device)
        x = generator_input(noise_voi, conditions)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(int(seed))
            generated = self.model(x)
        block = generated[(0, 0) + centre_slices(self.voi_size, self.box, 3)]
        return self.intensity.restore(block.float().cpu().numpy()).astype(np.float32)


def check_condition(size: str, attenuation: str) -> None:
    if size not in SIZES:
        raise UserError(f"unknown --size '{size}'; choose one of {', '.join(SIZES)}")
    if attenuation not in ATTENUATIONS:
        raise UserError(f"unknown --attenuation '{attenuation}'; choose one of {', '.join(ATTENUATIONS)}")


def load_inpainter(run: str | Path, device: torch.device | None = None) -> Inpainter:
    run = Path(run)
    path = run / "checkpoints" / ckpt.GENERATOR
    payload = ckpt.load_checkpoint(path)
    name = str(payload.get("model"))
    if payload.get("kind") != "generator" or name not in FAMILIES or FAMILIES[name].spatial_dims != 3:
        raise UserError(f"{run}: a {payload.get('model', 'unknown')} run; placing nodules into CT needs a 3D "
                        "MCGAN run (`pathosynth train --model mcgan3d --data VOIS ...`)")
    device = device or default_device()
    try:
        model = build_generator(name, payload["generator_kwargs"])
        model.load_state_dict(payload["weights"])
        voi = payload["voi"]
        intensity = Intensity(**payload["intensity"])
    except (KeyError, RuntimeError, TypeError) as exc:
        raise UserError(f"{path}: the weights do not fit the recorded model ({exc}); "
                        "train the run again with this pathosynth version") from exc
    spacing = voi.get("spacing_mm") or [1.0, 1.0, 1.0]
    if len(set(round(s, 6) for s in spacing)) != 1:
        raise UserError(f"{path}: the run was trained on anisotropic VOIs ({spacing} mm); train on isotropic "
                        "VOIs (`pathosynth data import luna16 --kind vois` resamples to 1 mm)")
    return Inpainter(model.to(device).eval(), name, path, ckpt.sha256(path), int(payload.get("step", 0)),
                     int(voi["size"]), int(voi["box"]), float(spacing[0]), intensity, device)
