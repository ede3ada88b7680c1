"""The 2D lesion inpainter (issue 17): lesions painted into any real slice at any box, with their
masks, by a painter learned from patches around real lesions at the slices' own pixel size.

Two parts. The lesion's shape, with its sub-regions (e.g. BraTS oedema, enhancing rim, necrotic
core), is a label map from the training lesions, flipped and transposed at random and resized to
fill the requested box (shape and mask-conditioned synthesis, as in Shin et al. 2018 and
DiffTumor); the tissue is painted by a learned painter from the labels and the surroundings. A
painter asked to invent the structure from a box alone (a box-conditioned GAN tried first) passed
the numeric bars with striped, rim-less lesions after 1,800 CPU steps; with the labels given,
label -> tissue is nearly deterministic and the lesions show rim, core and oedema within minutes.
Like 3D MCGAN it paints into real surroundings instead of drawing whole images, which is what made
synthetic data help at small compute (METHODS.md sections 4 and 8). `resolution` (shared) is the
patch side the painter sees. Networks in `networks.py`, the step in `step.py`; generation into
slices in `generate/lesions.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pathosynth.errors import UserError
from pathosynth.models.family import Family, LesionPainting, require_at_least_one
from pathosynth.models.inpaint2d.networks import LesionPainter, PatchDiscriminator
from pathosynth.models.inpaint2d.step import InpaintStep


@dataclass
class Inpaint2DConfig(LesionPainting):
    widths: tuple[int, ...] = (32, 64, 128, 192)  # the painter body's channels per level (half resolution)
    head: int = 16  # channels of the full-resolution head
    critic_widths: tuple[int, ...] = (32, 64, 128, 192)
    l1_weight: float = 10.0  # L1 in the hole
    adversarial_weight: float = 0.2  # the hinge term: grain, not structure
    translation: int = 6  # px of the random shift shown to the discriminator (DiffAugment translation)

    def check(self, config) -> None:
        super().check(config)
        require_at_least_one(self, "head")
        if config.resolution % 2 ** (len(self.widths) + 1):
            raise UserError(f"the inpainter's patch (--resolution {config.resolution}) must be divisible by "
                            f"{2 ** (len(self.widths) + 1)}; e.g. 96")


def _generator_kwargs(config, channels: int, num_classes: int) -> dict:
    # the label count is the data's: the step passes it in through `num_classes`
    return dict(patch=config.resolution, labels=num_classes, widths=list(config.family.widths),
                head=config.family.head)


def _discriminator(config, channels: int, num_classes: int) -> PatchDiscriminator:
    return PatchDiscriminator(widths=tuple(config.family.critic_widths), cin=2 + num_classes)


INPAINT2D = Family(
    name="inpaint2d", spatial_dims=2, config=Inpaint2DConfig, step=InpaintStep, generator_class=LesionPainter,
    generator_kwargs=_generator_kwargs, discriminator=_discriminator, boxes="required", generation="lesions",
    training=dict(optimizer="adam", lr_g=2e-4, lr_d=2e-4, betas=(0.5, 0.999), boxes=True, classes="none",
                  resolution=96, ema_decay=0.995),
    presets={"paper": dict(batch=16, steps=20_000, notes={"steps": "no paper: the small preset, longer"}),
             "small": dict(batch=16, steps=2000, sample_every=250, checkpoint_every=250),
             "tiny": dict(resolution=32, widths=(4, 8), head=4, critic_widths=(4, 8, 8, 8), batch=2,
                          margin=4)})
