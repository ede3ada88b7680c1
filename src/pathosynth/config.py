"""Typed training configs and their named presets (DESIGN.md: configs in code, saved as JSON).

`paper` reproduces the papers' settings (METHODS.md sections 1-3, 5), `small` trains in minutes on
a 2-core CPU, `tiny` is for tests. A preset fills every field; the CLI then overrides single fields.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

from pathosynth.errors import UserError
from pathosynth.models import FAMILIES, family
from pathosynth.models.family import flag, require_at_least_one

MODELS = tuple(FAMILIES)
Preset = Literal["paper", "small", "tiny"]
ClassMode = Literal["conditional", "separate", "none"]
Optimizer = Literal["adam", "rmsprop"]
PRESETS: tuple[str, ...] = get_args(Preset)


@dataclass
class TrainConfig:
    """The settings every family shares; `family` is the chosen family's own typed section
    (`models/<family>.py`)."""

    model: str
    family: Any  # the dataclass instance of FAMILIES[model].config
    preset: Preset = "small"
    data: str = ""
    split: str = "train"
    # "conditional": one GAN with the label as input; "separate": one GAN per class, as the papers
    # train them; "none": labels ignored (with `label`, only that class's images are used).
    classes: ClassMode = "conditional"
    label: str | None = None
    boxes: bool = False  # conditioned on a box image: CPGGAN, or the U-Net image-to-image baseline
    resolution: int = 64  # image side in px (3D: the VOI's side)
    batch: int = 64
    steps: int = 2000  # generator updates
    optimizer: Optimizer = "adam"
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    betas: tuple[float, float] = (0.5, 0.999)
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
        """A run's config.json; runs written before the families had sections hold one flat dict."""
        section_class = family(data["model"]).config
        section = data.get("family", data)  # the flat layout: the family's fields among the shared ones
        return cls(family=section_class(**_known(section_class, section)), **_known(cls, data, exclude="family"))


def _known(dataclass_type: type, values: dict, exclude: str = "") -> dict:
    """The values that are fields of `dataclass_type` (JSON lists back to tuples)."""
    names = {f.name for f in fields(dataclass_type)} - {exclude}
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items() if k in names}


def shared_fields() -> set[str]:
    return {f.name for f in fields(TrainConfig)} - {"model", "family", "preset"}


# ------------------------------------------------------------------------------------ presets

# Values under a preset for every family that has the field; each family's own settings and presets
# are in its file (models/family.py), applied around these.
_COMMON: dict[str, dict[str, Any]] = {
    "paper": {},
    "small": {},
    "tiny": dict(resolution=16, width=4, max_width=8, latent_dim=8, unet_widths=(4, 8), batch=4, steps=4,
                 log_every=1, sample_every=2, checkpoint_every=2, ema_decay=0.9),
}


def make_config(model: str, preset: str = "small", **overrides) -> TrainConfig:
    """The preset's config with `overrides` applied (None means: keep the preset's value)."""
    chosen = family(model)
    if preset not in PRESETS:
        raise UserError(f"unknown preset '{preset}'; choose one of {', '.join(PRESETS)}")
    own, shared = {f.name for f in fields(chosen.config)}, shared_fields()
    common = {k: v for k, v in _COMMON[preset].items() if k in own | shared}
    values = chosen.preset_values(preset, common, bool(overrides.get("boxes")))
    given = {k: v for k, v in overrides.items() if v is not None}
    _refuse_foreign(model, set(given) - own - shared)
    values.update(given)
    stray = set(values) - own - shared
    if stray:  # a family's preset naming a field nobody has: a bug in the family's file
        raise TypeError(f"{model} presets name unknown config field(s): {', '.join(sorted(stray))}")
    section = chosen.config(**{k: v for k, v in values.items() if k in own})
    config = TrainConfig(model=model, family=section, preset=preset,  # type: ignore[arg-type]
                         **{k: v for k, v in values.items() if k in shared})
    check_config(config)
    return config


def _refuse_foreign(model: str, names: set[str]) -> None:
    """Settings of other families: one sentence naming whose they are."""
    for name in sorted(names):
        owners = [other for other, f in FAMILIES.items() if name in {x.name for x in fields(f.config)}]
        if not owners:
            raise TypeError(f"unknown config field: {name}")
        raise UserError(f"--{flag(name)} is a {'/'.join(o.upper() for o in owners)} option; {model} has no such "
                        f"setting: drop --{flag(name)}")


def check_config(config: TrainConfig) -> None:
    """Reject combinations no run could train, in one sentence each."""
    chosen = family(config.model)
    _check_choices(config)
    _check_choices(config.family)
    if config.resolution < 8:
        raise UserError(f"resolution must be at least 8, got {config.resolution}")
    config.family.check(config)  # including what sizes its networks take
    if config.boxes and chosen.boxes == "never":
        boxed = " or ".join(name for name, f in FAMILIES.items() if f.boxes != "never")
        raise UserError(f"{config.model} has no box conditioning; use --model {boxed} (pggan with --boxes is CPGGAN)")
    if config.label and config.classes != "none":
        raise UserError(f"--label trains on one class only, which --classes {config.classes} contradicts; "
                        "drop --classes or pass --classes none")
    require_at_least_one(config, "batch", "steps", "log_every", "sample_every", "checkpoint_every")
    for name in ("lr_g", "lr_d"):
        if not (math.isfinite(getattr(config, name)) and getattr(config, name) > 0):
            raise UserError(f"{flag(name)} must be a positive finite number, got {getattr(config, name)}")
    if config.train_patients is not None and config.train_patients < 1:
        raise UserError(f"train-patients must be at least 1, got {config.train_patients}")
    if config.train_patients and chosen.spatial_dims == 3:
        raise UserError("--train-patients draws a low-data subset for the 2D experiments; 3D MCGAN trains on "
                        "every VOI of its split: drop --train-patients")
    if not 0 <= config.seed < 2**31:
        raise UserError(f"seed must be in [0, 2**31), got {config.seed}")
    if not 0.0 <= config.ema_decay < 1.0:
        raise UserError(f"ema-decay must be in [0, 1), got {config.ema_decay}")


def _check_choices(section: Any) -> None:
    """Every Literal-typed field of a config section holds one of its choices."""
    for name, hint in get_type_hints(type(section)).items():
        choices = get_args(hint) if get_origin(hint) is Literal else ()
        if choices and getattr(section, name) not in choices:
            raise UserError(f"unknown --{flag(name)} '{getattr(section, name)}'; choose one of {', '.join(choices)}")
