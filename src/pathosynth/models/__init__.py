"""The generator families and their registry: a family is its file or folder (config section,
presets, networks, training step: `models/family.py`) plus one line in FAMILIES.

A generator is rebuilt at generation time from ``(model, generator_kwargs)`` alone, which is what
the exported weights file records.
"""

from __future__ import annotations

from torch import nn

from pathosynth.errors import UserError
from pathosynth.models.dcgan import DCGAN, WGAN
from pathosynth.models.diffusion import DIFFUSION
from pathosynth.models.diffusion_inpaint import DIFFUSION_INPAINT
from pathosynth.models.family import Family
from pathosynth.models.inpaint2d import INPAINT2D
from pathosynth.models.mcgan3d import MCGAN3D
from pathosynth.models.pggan import PGGAN
from pathosynth.models.unet_cgan import UNET_CGAN

# The registry: one line per family; everything else finds a family here.
FAMILIES: dict[str, Family] = {family.name: family for family in (
    DCGAN,
    WGAN,
    PGGAN,
    UNET_CGAN,
    MCGAN3D,
    DIFFUSION,
    INPAINT2D,
    DIFFUSION_INPAINT,
)}


def family(name: str) -> Family:
    if name not in FAMILIES:
        raise UserError(f"unknown model '{name}'; choose one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def build_generator(model: str, kwargs: dict) -> nn.Module:
    return family(model).generator_class(**kwargs)
