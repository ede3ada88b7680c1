"""Typed training configs and their named presets (DESIGN.md: configs in code, saved as JSON).

`paper` reproduces the papers' settings (METHODS.md sections 1-3, 5), `small` trains in minutes on
a 2-core CPU, `tiny` is for tests. A preset fills every field; the CLI then overrides single fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from pathosynth.errors import UserError

MODELS = ("dcgan", "wgan", "pggan", "unet-cgan", "mcgan3d")
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

_FAMILY: dict[str, dict[str, Any]] = {
    # DCGAN of the thesis (section 3): Adam 2e-4, batch 64, half-width filters.
    "dcgan": dict(loss="nonsaturating", optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                  critic_steps=1, latent_dim=100),
    # WGAN of the thesis: same networks, RMSprop 5e-5, weight clipping, 5 critic steps.
    "wgan": dict(loss="wasserstein", optimizer="rmsprop", lr_g=5e-5, lr_d=5e-5, clip=0.01,
                 critic_steps=5, latent_dim=100),
    # PGGAN (section 4): WGAN-GP with drift, Adam 1e-3 (0, 0.99).
    "pggan": dict(loss="wgan-gp", optimizer="adam", lr_g=1e-3, lr_d=1e-3, betas=(0.0, 0.99),
                  gp_weight=10.0, drift_weight=1e-3, critic_steps=1),
    # pix2pix-style image-to-image baseline: non-saturating + L1, Adam 2e-4 (0.5, 0.999).
    "unet-cgan": dict(loss="nonsaturating", optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                      critic_steps=1, l1_weight=100.0, latent_dim=1, boxes=True, classes="none"),
    # 3D MCGAN: context D least squares + nodule D WGAN-GP (`loss` names the context D's), Adam 2e-4;
    # L1 off by default (it raised realism but hurt detection); targets flipped once in three; flips.
    "mcgan3d": dict(loss="least-squares", optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999),
                    critic_steps=1, gp_weight=10.0, l1_weight=0.0, latent_dim=0, classes="none",
                    label_flip=1 / 3, flips=True, resolution=64, nodule_box=32),
}

_PAPER: dict[str, dict[str, Any]] = {
    "dcgan": dict(resolution=128, width=32, batch=64, steps=100_000,
                  notes={"steps": "not stated in the thesis; 100k generator updates"}),
    "wgan": dict(resolution=128, width=32, batch=64, steps=100_000,
                 notes={"steps": "not stated in the thesis; 100k generator updates"}),
    # 100 epochs of the paper's 8,429 training images at batch 16 = 52,681 steps, over the 13
    # phases of growing 4 -> 256 (stage 4x4, then a fade-in and a stabilisation per doubling).
    "pggan": dict(resolution=256, width=64, max_width=512, latent_dim=512, batch=16, steps=52_681,
                  phase_steps=4_053, random_crop=15, classes="separate",
                  notes={"steps": "100 epochs x 8,429 images / batch 16 (two-step GAN paper)"}),
    "unet-cgan": dict(resolution=256, unet_widths=(64, 128, 256, 512, 512), batch=1, steps=200_000,
                      notes={"steps": "not stated in the thesis; pix2pix-like schedule"}),
    "mcgan3d": dict(unet_widths=(64, 128, 256, 512), width=64, batch=16, steps=6_000_000,
                    notes={"steps": "6,000,000 steps, batch 16, Adam 2e-4 (thesis section 6)",
                           "betas": "not stated; pix2pix's (0.5, 0.999)"}),
}
# CPGGAN (section 3) differs from the two-step PGGAN in batch, learning rate and length.
_PAPER_CPGGAN: dict[str, Any] = dict(batch=4, lr_g=2e-4, lr_d=2e-4, steps=3_000_000, phase_steps=230_769, classes="none",
                     notes={"steps": "3,000,000 steps, batch 4, Adam 2e-4 (thesis section 5)"})

_SMALL: dict[str, dict[str, Any]] = {
    "dcgan": dict(resolution=64, width=32, batch=32, steps=3000, sample_every=500, checkpoint_every=500,
                  diffaugment="translation,cutout"),
    "wgan": dict(resolution=64, width=32, batch=32, steps=1000, sample_every=250, checkpoint_every=250),
    # Narrow channels: a full-width PGGAN is unusable on a CPU.
    "pggan": dict(resolution=64, width=16, max_width=64, latent_dim=64, batch=16, steps=2400,
                  phase_steps=240, random_crop=4, sample_every=400, checkpoint_every=400),
    "unet-cgan": dict(resolution=64, unet_widths=(16, 32, 64, 128), batch=16, steps=1500, sample_every=500,
                      checkpoint_every=500),
    "mcgan3d": dict(unet_widths=(16, 32, 64, 128), width=16, batch=4, steps=2000, sample_every=250,
                    checkpoint_every=250),
}

_TINY: dict[str, Any] = dict(resolution=16, width=4, max_width=8, latent_dim=8, unet_widths=(4, 8), batch=4, steps=4,
             log_every=1, sample_every=2, checkpoint_every=2, ema_decay=0.9)
_TINY_PGGAN: dict[str, Any] = dict(phase_steps=1)
_TINY_MCGAN: dict[str, Any] = dict(resolution=16, nodule_box=8, unet_widths=(4, 8, 8, 8), width=4, batch=2)


def preset_values(model: str, preset: str, boxes: bool = False) -> dict:
    if model not in MODELS:
        raise UserError(f"unknown model '{model}'; choose one of {', '.join(MODELS)}")
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    values = dict(_FAMILY[model])
    if preset == "paper":
        values.update(_PAPER[model])
        if model == "pggan" and boxes:
            values.update(_PAPER_CPGGAN)
    elif preset == "small":
        values.update(_SMALL[model])
    else:
        values.update(_TINY)
        if model == "pggan":
            values.update(_TINY_PGGAN)
        if model == "mcgan3d":
            values.update(_TINY_MCGAN)
    return values


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
    if config.model not in MODELS:
        raise UserError(f"unknown model '{config.model}'; choose one of {', '.join(MODELS)}")
    resolution = config.resolution
    # 3D MCGAN's VOI side need only be a multiple of 16 (_check_mcgan)
    if config.model != "mcgan3d" and (resolution < 8 or 2 ** round(math.log2(resolution)) != resolution):
        raise UserError(f"resolution {resolution} is not a power of two >= 8; use e.g. 64, 128 or 256")
    if config.classes not in CLASS_MODES:
        raise UserError(f"unknown --classes '{config.classes}'; choose one of {', '.join(CLASS_MODES)}")
    if config.loss not in LOSSES:
        raise UserError(f"unknown loss '{config.loss}'; choose one of {', '.join(LOSSES)}")
    if config.optimizer not in OPTIMIZERS:
        raise UserError(f"unknown optimizer '{config.optimizer}'; choose one of {', '.join(OPTIMIZERS)}")
    if config.model == "unet-cgan":
        if not config.boxes:
            raise UserError("unet-cgan turns box images into images: it needs --boxes")
        if config.classes == "conditional":
            raise UserError("unet-cgan is conditioned on boxes only; use --classes separate or none")
    if config.model == "mcgan3d":
        _check_mcgan(config)
    if config.boxes and config.model in ("dcgan", "wgan"):
        raise UserError(f"{config.model} has no box conditioning; use --model pggan (CPGGAN) or unet-cgan")
    if config.spectral_norm and config.model not in ("dcgan", "wgan"):
        raise UserError(f"--spectral-norm is a DCGAN/WGAN option; {config.model} has its own normalisation "
                        "(PGGAN: equalised learning rate; U-Net GAN: batch norm): drop --spectral-norm")
    if config.label and config.classes != "none":
        raise UserError(f"--label trains on one class only, which --classes {config.classes} contradicts; "
                        "drop --classes or pass --classes none")
    if config.model == "unet-cgan" and resolution % 2 ** (len(config.unet_widths) - 1):
        raise UserError(f"resolution {resolution} is too small for a U-Net of {len(config.unet_widths)} levels")
    for name in ("batch", "steps", "critic_steps", "log_every", "sample_every", "checkpoint_every", "width"):
        if getattr(config, name) < 1:
            raise UserError(f"{name.replace('_', '-')} must be at least 1, got {getattr(config, name)}")
    if config.model in ("dcgan", "wgan", "pggan") and config.latent_dim < 1:
        raise UserError(f"{config.model} draws images from a latent vector: latent-dim must be at least 1, "
                        f"got {config.latent_dim}")
    for name in ("lr_g", "lr_d"):
        if not (math.isfinite(getattr(config, name)) and getattr(config, name) > 0):
            raise UserError(f"{name.replace('_', '-')} must be a positive finite number, got {getattr(config, name)}")
    if not (math.isfinite(config.l1_weight) and config.l1_weight >= 0):
        raise UserError(f"l1-weight must be a finite number >= 0, got {config.l1_weight}")
    if config.train_patients is not None and config.train_patients < 1:
        raise UserError(f"train-patients must be at least 1, got {config.train_patients}")
    if config.train_patients and config.model == "mcgan3d":
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


def _check_mcgan(config: TrainConfig) -> None:
    side, box = config.resolution, config.nodule_box
    if side < 16 or side % 16:
        raise UserError(f"3D MCGAN's VOI side (--resolution) must be a multiple of 16 (four halvings), got {side}")
    if not 0 < box < side or box % 2:
        raise UserError(f"the nodule box ({box}) must be even and smaller than the VOI ({side}); "
                        "the papers use 32 in 64")
    if len(config.unet_widths) != 4:
        raise UserError("3D MCGAN's U-Net has 4 levels; give 4 generator widths")
    if config.boxes or config.classes == "conditional" or config.label:
        raise UserError("3D MCGAN is conditioned on nodule size and attenuation, not on boxes or classes: "
                        "drop --boxes, --classes and --label")
    if not 0.0 <= config.label_flip < 0.5:
        raise UserError(f"label-flip must be in [0, 0.5), got {config.label_flip}")
