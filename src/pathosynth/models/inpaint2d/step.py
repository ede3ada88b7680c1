"""The 2D lesion inpainter's step (the pix2pix recipe on patches around real lesions).

A step cuts, from each training slice of the batch, a patch around its largest lesion at the
slice's own pixel size (resized only when the lesion and its margin do not fit), the box at a random
place in the patch, flipped at random. The hole is the box and its feathered margin; the generator
sees the patch outside the hole, the hole, the box and noise, and paints the hole and the lesion's
mask. What is judged is exactly what generation writes: the feathered composite. Losses:
- adversarial (hinge; a PatchGAN on patch, hole and mask; the same random translation for real and
  composite, as DiffAugment);
- L1 in the ring between box and hole edge: healthy tissue the hole cut away comes back;
- L1 in the box, and L1 of the 4x4-pooled composite in the box: the lesion's coarse layout (core,
  rim) follows the real one while the GAN draws the texture;
- the mask: binary cross-entropy and Dice in the hole against the real lesion mask.
Every random draw comes from the torch RNG the checkpoint keeps, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathosynth.generate.placement.slices import box_distance, feather, plan_patch
from pathosynth.models.inpaint2d.networks import generator_inputs
from pathosynth.training.lesions import LesionSet, load_lesion_set
from pathosynth.training.step import GANStep

GRID_PATCHES = 16  # grid: 16 real patches, each above its inpainted version


def cut(image: torch.Tensor, top: int, left: int, side: int) -> torch.Tensor:
    """image[..., top:top+side, left:left+side], zero (air) where the crop leaves the image."""
    out = image.new_zeros((*image.shape[:-2], side, side))
    height, width = image.shape[-2:]
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(top + side, height), min(left + side, width)
    if y1 > y0 and x1 > x0:
        out[..., y0 - top:y1 - top, x0 - left:x1 - left] = image[..., y0:y1, x0:x1]
    return out


def patch_maps(box: list[int], top: int, left: int, side: int, margin: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(blend weight, box) maps of a crop, (side, side) float32."""
    local = [box[0] - left, box[1] - top, box[2] - left, box[3] - top]
    distance = box_distance((side, side), local)
    return torch.from_numpy(feather(distance, margin=margin)), torch.from_numpy((distance == 0).astype(np.float32))


class InpaintStep(GANStep):
    loss_names = ("loss_d", "loss_g", "adversarial_g", "ring", "box", "coarse", "mask")
    classes: list[str] = []

    def __init__(self, config, family, data, processes, sampler):
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.patch = config.resolution
        picks = torch.randperm(len(data.boxes), generator=torch.Generator().manual_seed(config.seed))
        self.fixed = self._patches(picks[:GRID_PATCHES].tolist(), offsets=None, flips=False)
        self.fixed_noise = torch.randn(self.fixed[0].shape, generator=torch.Generator().manual_seed(config.seed))

    @staticmethod
    def load_data(config, progress: bool) -> Any:
        return load_lesion_set(config, progress=progress)

    def _patches(self, indices: list[int], offsets: torch.Tensor | None, flips: bool):
        """(patch, mask, weight, box) batches of (N, 1, P, P) for these slices."""
        data: LesionSet = self.data
        rows = []
        for k, i in enumerate(indices):
            box = data.boxes[i]
            offset = None if offsets is None else (float(offsets[k, 0]), float(offsets[k, 1]))
            top, left, side = plan_patch(box, self.patch, self.settings.margin, offset=offset)
            weight, box_map = patch_maps(box, top, left, side, self.settings.margin)
            row = torch.stack([cut(data.images[i, 0].float(), top, left, side),
                               cut(data.masks[i, 0].float(), top, left, side), weight, box_map])
            if side != self.patch:  # a lesion too big for the patch: its surroundings, resized
                row = F.interpolate(row[None], size=(self.patch, self.patch), mode="area")[0]
                row[1], row[3] = (row[1] > 0.5).float(), (row[3] > 0.5).float()
            rows.append(row)
        batch = torch.stack(rows)
        if flips:  # left-right and up-down, each with probability 1/2
            for axis in (-1, -2):
                flip = torch.rand(batch.shape[0]) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(axis), batch)
        return tuple(t[:, None].to(self.device) for t in batch.unbind(1))

    def _translate(self, *maps: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
        return torch.roll(torch.cat(maps, 1), shift, (2, 3))

    def __call__(self, step: int) -> torch.Tensor:
        s = self.settings
        indices = self.sampler.next_indices().tolist()
        patch, mask, weight, box = self._patches(indices, torch.rand(len(indices), 2), flips=True)
        hole = (weight > 0).float()
        with self.autocast:
            painted, logit = self.generator_ddp(generator_inputs(patch, weight, box, torch.randn_like(patch)))
        painted, logit = painted.float(), logit.float()
        composite = weight * painted + (1 - weight) * patch
        painted_mask = torch.sigmoid(logit) * hole
        shifts = [tuple(int(v) for v in torch.randint(-s.translation, s.translation + 1, (2,))) for _ in range(3)]
        self.discriminator.requires_grad_(True)
        loss_d = (F.relu(1 - self.discriminator(self._translate(patch, hole, mask, shift=shifts[0]))).mean()
                  + F.relu(1 + self.discriminator(self._translate(composite.detach(), hole, painted_mask.detach(),
                                                                  shift=shifts[1]))).mean())
        self.update_discriminator(loss_d)
        self.discriminator.requires_grad_(False)
        adversarial = -self.discriminator(self._translate(composite, hole, painted_mask, shift=shifts[2])).mean()
        terms = self._reconstruction(patch, mask, painted, composite, logit, painted_mask, hole, box)
        loss_g = (s.adversarial_weight * adversarial + s.ring_weight * terms[0] + s.box_weight * terms[1]
                  + s.coarse_weight * terms[2] + s.mask_weight * terms[3])
        self.update_generator(loss_g)
        return torch.stack([loss_d, loss_g, adversarial, *terms]).detach().float()

    @staticmethod
    def _reconstruction(patch, mask, painted, composite, logit, painted_mask, hole, box) -> list[torch.Tensor]:
        """L1 in the ring and in the box, L1 of the pooled composite in the box, mask BCE + Dice."""
        ring = hole * (1 - box)
        ring_l1 = (ring * (painted - patch).abs()).sum() / ring.sum().clamp(min=1)
        box_l1 = (box * (painted - patch).abs()).sum() / box.sum().clamp(min=1)
        pooled_box = F.avg_pool2d(box, 4)
        coarse = ((pooled_box * (F.avg_pool2d(composite, 4) - F.avg_pool2d(patch, 4)).abs()).sum()
                  / pooled_box.sum().clamp(min=1))
        dice = 1 - (2 * (painted_mask * mask).sum() + 1) / (painted_mask.sum() + mask.sum() + 1)
        mask_loss = F.binary_cross_entropy_with_logits(logit, mask, weight=hole) + dice
        return [ring_l1, box_l1, coarse, mask_loss]

    def settle(self, model: nn.Module, phase: dict) -> None:
        model.eval()  # group norm only

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        patch, _, weight, box = self.fixed
        with torch.no_grad():
            painted, _ = model(generator_inputs(patch, weight, box, self.fixed_noise.to(self.device)))
        composite = weight * painted + (1 - weight) * patch
        rows = [t for k in range(0, GRID_PATCHES, 8) for t in (patch[k:k + 8], composite[k:k + 8])]
        return torch.cat(rows) * 2 - 1, None, 8

    def export_extras(self) -> dict:
        s = self.settings
        return {"patch": self.patch, "margin": s.margin, "intensity": vars(self.data.intensity),
                "spacing_mm": self.data.spacing}
