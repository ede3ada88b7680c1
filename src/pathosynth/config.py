"""Typed training configs and their named presets (DESIGN.md: configs in code, saved as JSON).

`paper` reproduces the papers' settings (METHODS.md sections 1-3, 5), `small` trains in minutes on
a 2-core CPU, `tiny` is for tests. A preset fills every field; the CLI then overrides single fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pathosynth.errors import UserError
from pathosynth.models import FAMILIES, family

MODELS = tuple(FAMILIES)
PRESETS = ("paper", "small", "tiny")
CLASS_MODES = ("conditional", "separate", "none")
LOSSES = ("nonsaturating", "wasserstein", "wgan-gp", "least-squares")
OPTIMIZERS = ("adam", "rmsprop")


@dataclass
class TrainConfig:
    model: str = "dcgan"
    preset: str = "small"
    data: str = ""
    split: str = "train"
    # "conditional": one GAN with the label as input; "separate": one GAN per class, as the papers
    # train them; "none": labels ignored (with `label`, only that class's images are used).
    classes: str = "conditional"
    label: str | None = None
    boxes: bool = False  # conditioned on a box image: CPGGAN, or the U-Net image-to-image baseline
    resolution: int = 64
    latent_dim: int = 100
    width: int = 32  # channels at the finest level (PGGAN: at the full-resolution stage)
    max_width: int = 512  # PGGAN: cap on the coarse stages' channels
    unet_widths: tuple[int, ...] = (16, 32, 64, 128)
    batch: int = 64
    steps: int = 2000  # generator updates
    critic_steps: int = 1  # discriminator updates per generator update
    loss: str = "nonsaturating"
    optimizer: str = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
    clip: float = 0.0  # WGAN weight clipping bound (0: off)
    gp_weight: float = 0.0
    drift_weight: float = 0.0
    l1_weight: float = 0.0  # U-Net baseline: L1 to the real image with the same boxes (pix2pix)
    phase_steps: int = 0  # PGGAN: steps per fade-in and per stabilisation phase (0: no growing)
    random_crop: int = 0  # PGGAN's augmentation: random crop shifting real images 0..N px (full res)
    diffaugment: str = ""  # DiffAugment policy for D, e.g. "brightness,contrast,translation,cutout"
    # DCGAN/WGAN: spectral normalisation on every discriminator convolution (Miyato et al. 2018),
    # beyond the papers: on the brain phantom it cut the small DCGAN's mode collapse
    # (docs/benchmarks.md, "GAN quality").
    spectral_norm: bool = False
    # 3D MCGAN (METHODS section 4): `resolution` is the VOI's side, `unet_widths` the generator's,
    # `width` both discriminators'; the nodule box is the inpainted centre.
    nodule_box: int = 32
    label_flip: float = 0.0  # swap real/synthetic targets of the context D this often (1/3 in the paper)
    flips: bool = False  # random left-right / front-back flips of the training VOIs
    ema_decay: float = 0.999
    log_every: int = 10
    sample_every: int = 500
    checkpoint_every: int = 500
    seed: int = 0
    train_patients: int | None = None  # the low-data regime: this many patients of the split (data/splits.py)
    subset_seed: int = 0  # which patients; `evaluate classify` with the same two values uses the same ones
    amp: bool = True  # bfloat16 autocast, CUDA only
    channels_last: bool = True  # CUDA only
    notes: dict = field(default_factory=dict)  # where a preset's value comes from

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        for name in ("unet_widths", "betas"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values)


# ------------------------------------------------------------------------------------ presets

# Values every family shares under a preset; each family's own settings and presets are in its file
# (models/family.py), applied around these.
_COMMON: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {},
    "tiny": dict(resolution=16, width=4, max_width=8, latent_dim=8, unet_widths=(4, 8), batch=4, steps=4,
                 log_every=1, sample_every=2, checkpoint_every=2, ema_decay=0.9),
}


def preset_values(model: str, preset: str, boxes: bool = False) -> dict:
    chosen = family(model)
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    return chosen.preset_values(preset, _COMMON[preset], boxes)


def make_config(model: str, preset: str = "small", **overrides) -> TrainConfig:
    """The preset's config with `overrides` applied (None means: keep the preset's value)."""
    values = preset_values(model, preset, bool(overrides.get("boxes")))
    values.update({k: v for k, v in overrides.items() if v is not None})
    unknown = set(values) - {f.name for f in fields(TrainConfig)}
    if unknown:
        raise TypeError(f"unknown config field(s): {', '.join(sorted(unknown))}")
    config = TrainConfig(model=model, preset=preset, **values)
    check_config(config)
    return config


def check_config(config: TrainConfig) -> None:
    """Reject combinations no run could train, in one sentence each."""
    chosen = family(config.model)
    resolution = config.resolution
    # 3D families check their VOI side themselves
    if chosen.spatial_dims == 2 and (resolution < 8 or 2 ** round(math.log2(resolution)) != resolution):
        raise UserError(f"resolution {resolution} is not a power of two >= 8; use e.g. 64, 128 or 256")
    if config.classes not in CLASS_MODES:
        raise UserError(f"unknown --classes '{config.classes}'; choose one of {', '.join(CLASS_MODES)}")
    if config.loss not in LOSSES:
        raise UserError(f"unknown loss '{config.loss}'; choose one of {', '.join(LOSSES)}")
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{config.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
    chosen.check(config)
    if config.boxes and chosen.boxes == "never":
        boxed = " or ".join(name for name, f in FAMILIES.items() if f.boxes != "never")
        raise UserError(f"{config.model} has no box conditioning; use --model {boxed} (pggan with --boxes is CPGGAN)")
    if config.spectral_norm and "spectral_norm" not in chosen.options:
        owners = "/".join(name.upper() for name, f in FAMILIES.items() if "spectral_norm" in f.options)
        raise UserError(f"--spectral-norm is a {owners} option; {config.model} has its own normalisation "
                        "(PGGAN: equalised learning rate; U-Net GAN: batch norm): drop --spectral-norm")
    if config.label and config.classes != "none":
        raise UserError(f"--label trains on one class only, which --classes {config.classes} contradicts; "
                        "drop --classes or pass --classes none")
    for name in ("batch", "steps", "critic_steps", "log_every", "sample_every", "checkpoint_every", "width"):
        if getattr(config, name) < 1:
            raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if chosen.latent and config.latent_dim < 1:
        raise UserError(f"{config.model} draws images from a latent vector: latent-dim must be at least 1, "
                        f"got {config.latent_dim}")
    for name in ("lr_g", "lr_d"):
        if not (math.isfinite(getattr(config, name)) and getattr(config, name) > 0):
            raise UserError(f"{name.replace('_', '-')} must be a positive finite number, got {getattr(config, name)}")
    if not (math.isfinite(config.l1_weight) and config.l1_weight >= 0):
        raise UserError(f"l1-weight must be a finite number >= 0, got {config.l1_weight}")
    if config.train_patients is not None and config.train_patients < 1:
        raise UserError(f"train-patients must be at least 1, got {config.train_patients}")
    if config.train_patients and chosen.spatial_dims == 3:
        raise UserError("--train-patients draws a low-data subset for the 2D experiments; 3D MCGAN trains on "
                        "every VOI of its split: drop --train-patients")
    if not 0 <= config.seed < 2**31:
        raise UserError(f"seed must be in [0, 2**31), got {config.seed}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise UserError(f"ema-decay must be in [0, 1), got {config.ema_decay}")
    if config.diffaugment:
        from pathosynth.training.augment import parse_policy

        try:
            parse_policy(config.diffaugment)
        except ValueError as exc:
            raise UserError(f"--diffaugment: {exc}") from exc
