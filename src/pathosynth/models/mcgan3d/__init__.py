"""3D MCGAN, the nodule inpainter (METHODS.md section 4): its config section and family declaration.
The networks and tensor helpers are in `networks.py`, the training step in `step.py`."""

from __future__ import annotations

from dataclasses import dataclass

from pathosynth.errors import UserError
from pathosynth.models.family import Adversarial, Family, require_at_least_one
from pathosynth.models.mcgan3d.networks import MCGANDiscriminators, MCGANGenerator
from pathosynth.models.mcgan3d.step import MCGANStep


@dataclass
class MCGAN3DConfig(Adversarial):
    """`resolution` (shared) is the VOI's side; the nodule box is the inpainted centre."""

    gp_weight: float = 10.0  # the nodule discriminator's gradient penalty (WGAN-GP)
    unet_widths: tuple[int, ...] = (16, 32, 64, 128)  # the generator's channels per level
    width: int = 16  # both discriminators' first channels
    nodule_box: int = 32
    label_flip: float = 1 / 3  # swap real/synthetic targets of the context D this often (the paper's 1/3)
    flips: bool = True  # random left-right / front-back flips of the training VOIs

    def check(self, config) -> None:
        super().check(config)
        require_at_least_one(self, "width")
        side, box = config.resolution, self.nodule_box
        if side < 16 or side % 16:
            raise UserError(f"3D MCGAN's VOI side (--resolution) must be a multiple of 16 (four halvings), got {side}")
        if not 0 < box < side or box % 2:
            raise UserError(f"the nodule box ({box}) must be even and smaller than the VOI ({side}); "
                            "the papers use 32 in 64")
        if len(self.unet_widths) != 4:
            raise UserError("3D MCGAN's U-Net has 4 levels; give 4 generator widths")
        if config.boxes or config.classes == "conditional" or config.label:
            raise UserError("3D MCGAN is conditioned on nodule size and attenuation, not on boxes or classes: "
                            "drop --boxes, --classes and --label")
        if not 0.0 <= self.label_flip < 0.5:
            raise UserError(f"label-flip must be in [0, 0.5), got {self.label_flip}")


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    own = config.family
    return dict(voi_size=config.resolution, box=own.nodule_box, widths=list(own.unet_widths))


def _discriminators(config, channels: int, num_classes: int) -> MCGANDiscriminators:
    return MCGANDiscriminators(voi_size=config.resolution, box=config.family.nodule_box, width=config.family.width)


# 3D MCGAN: context D least squares + nodule D WGAN-GP, Adam 2e-4; L1 off by default (it raised
# realism but hurt detection); targets flipped once in three; flips.
MCGAN3D = Family(
    name="mcgan3d", spatial_dims=3, config=MCGAN3DConfig, step=MCGANStep, generator_class=MCGANGenerator,
    generator_kwargs=_generator_kwargs, discriminator=_discriminators, generation="nodules",
    training=dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), classes="none", resolution=64),
    presets={"paper": dict(unet_widths=(64, 128, 256, 512), width=64, batch=16, steps=6_000_000,
                           notes={"steps": "6,000,000 steps, batch 16, Adam 2e-4 (thesis section 6)",
                                  "betas": "not stated; pix2pix's (0.5, 0.999)"}),
             "small": dict(unet_widths=(16, 32, 64, 128), width=16, batch=4, steps=2000, sample_every=250,
                           checkpoint_every=250),
             "tiny": dict(resolution=16, nodule_box=8, unet_widths=(4, 8, 8, 8), width=4, batch=2)})
