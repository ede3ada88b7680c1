"""What a generator family declares, in its own file: its typed config section with its presets,
how its networks are built, its training step, its conditioning. The registry (`models/__init__.py`)
maps a name to one `Family`; the config, the training loop and generation ask the family instead of
comparing its name. Torch-free, so that configs can be read without loading networks.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from pathosynth.errors import UserError

if TYPE_CHECKING:  # torch: for the type checker only
    from pathosynth.training.step import TrainingStep

BoxUse = Literal["never", "optional", "required"]
# what `generate` does with a run: draw whole images, place nodules into CT scans, paint lesions
# into real slices
Generation = Literal["images", "nodules", "lesions"]
Loss = Literal["nonsaturating", "wasserstein", "wgan-gp", "least-squares"]


def flag(name: str) -> str:
    """A config field as the CLI spells it."""
    return name.replace("_", "-")


def require_at_least_one(section: Any, *names: str) -> None:
    for name in names:
        if getattr(section, name) < 1:
            raise UserError(f"{flag(name)} must be at least 1, got {getattr(section, name)}")


# ----------------------------------------------------------------------- config sections
# A family's section holds the settings only it (or its kind) reads; the settings every family
# shares are `config.TrainConfig`'s. A CLI option that is not a field of the chosen family's section
# is refused, so no family silently ignores a setting.

@dataclass
class Adversarial:
    """What every GAN family's objective reads."""

    critic_steps: int = 1  # discriminator updates per generator update
    gp_weight: float = 0.0  # gradient penalty
    l1_weight: float = 0.0  # L1 to the real image with the same conditions (pix2pix)

    def check(self, config: Any) -> None:
        require_at_least_one(self, "critic_steps")
        if not (math.isfinite(self.l1_weight) and self.l1_weight >= 0):
            raise UserError(f"l1-weight must be a finite number >= 0, got {self.l1_weight}")


@dataclass
class ImageGAN(Adversarial):
    """The 2D GANs' shared step (`training/adversarial.py`): losses, clipping, drift, augmentation."""

    loss: Loss = "nonsaturating"
    clip: float = 0.0  # WGAN weight clipping bound (0: off)
    drift_weight: float = 0.0
    random_crop: int = 0  # random crop shifting real images 0..N px (full resolution): PGGAN's augmentation
    diffaugment: str = ""  # DiffAugment policy for D, e.g. "brightness,contrast,translation,cutout"

    def check(self, config: Any) -> None:
        super().check(config)
        resolution = config.resolution  # the image GANs halve it down to 4 x 4
        if 2 ** round(math.log2(resolution)) != resolution:
            raise UserError(f"resolution {resolution} is not a power of two >= 8; use e.g. 64, 128 or 256")
        if self.diffaugment:
            from pathosynth.training.augment import parse_policy  # torch: only when a policy is given

            try:
                parse_policy(self.diffaugment)
            except ValueError as exc:
                raise UserError(f"--diffaugment: {exc}") from exc


@dataclass
class LesionPainting:
    """What the 2D lesion painters share (inpaint2d, diffusion-inpaint): the patches they learn from
    (`training/lesion_patches.py`) and how generation blends (`generate/lesions.py`)."""

    margin: int = 6  # px kept free around the box in the patch; pixels farther from the box never change
    # patches that are lesion-free slices with a lesion-shaped hole and no labels: the painter also
    # learns healthy tissue, the control class (`generate --healthy`)
    healthy_share: float = 0.25

    def check(self, config: Any) -> None:
        if self.margin < 4:  # the lesion's feather reaches 4 px
            raise UserError(f"margin must be at least 4 px (the lesion's feather), got {self.margin}")
        if not 0 <= self.healthy_share < 1:
            raise UserError(f"healthy_share must be in [0, 1), got {self.healthy_share}")
        if config.resolution < 2 * self.margin + 8:
            raise UserError(f"the painter's patch (--resolution {config.resolution}) leaves no room for a box and "
                            f"its {self.margin} px margin; e.g. 96")
        if config.classes == "conditional" or config.label:
            raise UserError("the lesion painters learn lesions from their masks, not classes: drop --classes and "
                            "--label")


# ------------------------------------------------------------------------------- the family

@dataclass(frozen=True)
class Family:
    name: str
    spatial_dims: int  # 2: images; 3: VOIs
    config: type  # the family's config section (a dataclass; its defaults hold the family's settings)
    step: type[TrainingStep]  # its training step (training/step.py), which the one loop calls
    generator_class: type
    generator_kwargs: Callable[[Any, int, int], dict]  # (config, channels, classes) -> the rebuild recipe
    presets: dict[str, dict[str, Any]]  # values of "paper", "small", "tiny" (shared or own fields)
    # (config, channels, classes) -> the network, for the families that train against one
    discriminator: Callable[[Any, int, int], Any] | None = None
    training: dict[str, Any] = field(default_factory=dict)  # its values of the shared settings, every preset
    boxes: BoxUse = "never"  # conditioning on a box image
    grows: bool = False  # progressive growing: its step runs stages and fade-ins
    generation: Generation = "images"
    box_presets: dict[str, dict[str, Any]] = field(default_factory=dict)  # extra values with --boxes

    def preset_values(self, preset: str, common: dict[str, Any], boxes: bool) -> dict[str, Any]:
        """Its training values, then the preset's shared values, then its own, then its box preset."""
        values = {**self.training, **common, **self.presets.get(preset, {})}
        if boxes:
            values.update(self.box_presets.get(preset, {}))
        return values
