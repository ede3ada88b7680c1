"""The 2D lesion painter's step: paint a real lesion's tissue back from its label map and its
surroundings (pix2pix-style, on patches at the slices' own pixel size).

A step cuts, from each training slice of the batch, a patch around its largest lesion (resized only
when the lesion and the margin do not fit), the lesion at a random place in the patch, flipped at
random. The hole is the lesion and its feather (1 px full, fading to 4 px); the painter sees the
patch outside the hole, the hole, the lesion's labels and noise. What is judged is exactly what
generation writes: the feathered composite. Losses: L1 in the hole (label -> tissue is nearly
deterministic, so L1 converges in minutes) and a weak hinge term from a PatchGAN on (patch, hole,
labels) after the same random shift for real and composite (DiffAugment translation), for grain.
Every random draw comes from the torch RNG the checkpoint keeps, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathosynth.generate.placement.slices import crop, label_channels, lesion_weight, plan_patch
from pathosynth.models.inpaint2d.networks import painter_inputs
from pathosynth.training.lesions import LesionSet, load_lesion_set
from pathosynth.training.step import GANStep

GRID_PATCHES = 16  # grid: 16 real patches, each above its painted version


def patch_inputs(image: np.ndarray, lesion: np.ndarray, labels: list[int], patch: int,
                 healthy: bool = False) -> np.ndarray:
    """(patch, weight, label channels...) of one crop at the painter's size, float32 (2 + K, P, P).
    A crop larger than the painter's patch is averaged down; its labels are taken nearest. With
    `healthy`, the lesion is only the hole's shape: its label channels are zero (healthy tissue)."""
    side = image.shape[-1]
    if side != patch:
        image = F.interpolate(torch.from_numpy(image)[None, None], size=(patch, patch), mode="area")[0, 0].numpy()
        pick = np.arange(patch) * side // patch
        lesion = lesion[np.ix_(pick, pick)]
    channels = label_channels(lesion, labels)
    return np.concatenate([image[None], lesion_weight(lesion > 0)[None], 0 * channels if healthy else channels])


class InpaintStep(GANStep):
    loss_names = ("loss_d", "loss_g", "adversarial_g", "l1")
    classes: list[str] = []

    def __init__(self, config, family, data, processes, sampler):
        self.labels = list(data.labels)
        self.num_classes = len(self.labels)  # GANStep builds the networks with one channel per label
        super().__init__(config, family, data, processes, sampler)
        self.settings = config.family
        self.patch = config.resolution
        picks = torch.randperm(len(data.boxes), generator=torch.Generator().manual_seed(config.seed))
        self.fixed = self._patches(picks[:GRID_PATCHES].tolist(), offsets=None, flips=False)
        self.fixed_noise = torch.randn(self.fixed[0].shape, generator=torch.Generator().manual_seed(config.seed))

    @staticmethod
    def load_data(config, progress: bool) -> Any:
        return load_lesion_set(config, progress=progress)

    @property
    def passes_per_step(self) -> int:
        return 2  # one discriminator update, then one painter update

    def _patches(self, indices: list[int], offsets: torch.Tensor | None, flips: bool, holes: list[int] | None = None):
        """(patch, weight, labels) batches, (N, 1, P, P), (N, 1, P, P), (N, K, P, P), for these
        slices; where `holes` holds a hole's index (not -1), that lesion-free slice and hole instead."""
        data: LesionSet = self.data
        rows = []
        for k, i in enumerate(indices):
            offset = None if offsets is None else (float(offsets[k, 0]), float(offsets[k, 1]))
            hole = -1 if holes is None else holes[k]
            source, box = (data.images[i, 0], data.boxes[i]) if hole < 0 else self._hole(hole)
            top, left, side = plan_patch(box, self.patch, self.settings.margin, offset=offset)
            image = crop(source.numpy(), top, left, side).astype(np.float32)
            lesion = crop(self._hole_map(hole, source.shape) if hole >= 0 else data.lesions[i, 0].numpy(),
                          top, left, side)
            rows.append(torch.from_numpy(patch_inputs(image, lesion, self.labels, self.patch, healthy=hole >= 0)))
        batch = torch.stack(rows)
        if flips:  # left-right and up-down, each with probability 1/2
            for axis in (-1, -2):
                flip = torch.rand(batch.shape[0]) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(axis), batch)
        batch = batch.to(self.device)
        return batch[:, :1], batch[:, 1:2], batch[:, 2:]

    def _hole(self, hole: int) -> tuple[torch.Tensor, list[int]]:
        slice_index, box, _ = self.data.holes[hole]
        return self.data.healthy[slice_index, 0], box

    def _hole_map(self, hole: int, shape: tuple[int, ...]) -> np.ndarray:
        """The hole's lesion shape (the training lesion whose size it has) placed at its box."""
        _, (x0, y0, x1, y1), lesion_index = self.data.holes[hole]
        bx0, by0, bx1, by1 = self.data.boxes[lesion_index]
        hole_map = np.zeros(shape, dtype=np.uint8)
        hole_map[y0:y1, x0:x1] = self.data.lesions[lesion_index, 0, by0:by1, bx0:bx1].numpy()
        return hole_map

    def _draw_holes(self, count: int) -> list[int] | None:
        """Which of the batch's patches are lesion-free holes instead (healthy_share of them)."""
        if not self.data.holes:
            return None
        healthy = torch.rand(count) < self.settings.healthy_share
        picks = torch.randint(len(self.data.holes), (count,))
        return torch.where(healthy, picks, -1).tolist()

    def __call__(self, step: int) -> torch.Tensor:
        s = self.settings
        indices = self.sampler.next_indices().tolist()
        holes = self._draw_holes(len(indices))
        patch, weight, labels = self._patches(indices, torch.rand(len(indices), 2), flips=True, holes=holes)
        hole = (weight > 0).float()
        with self.autocast:
            painted = self.generator_ddp(painter_inputs(patch, weight, labels, torch.randn_like(patch))).float()
        composite = weight * painted + (1 - weight) * patch
        shifts = [tuple(int(v) for v in torch.randint(-s.translation, s.translation + 1, (2,))) for _ in range(3)]

        def judged(image: torch.Tensor, shift: tuple[int, ...]) -> torch.Tensor:
            return self.discriminator(torch.roll(torch.cat([image, hole, labels], 1), shift, (2, 3)))

        self.discriminator.requires_grad_(True)
        loss_d = F.relu(1 - judged(patch, shifts[0])).mean() + F.relu(1 + judged(composite.detach(), shifts[1])).mean()
        self.update_discriminator(loss_d)
        self.discriminator.requires_grad_(False)
        adversarial = -judged(composite, shifts[2]).mean()
        l1 = (hole * (painted - patch).abs()).sum() / hole.sum().clamp(min=1)
        loss_g = s.adversarial_weight * adversarial + s.l1_weight * l1
        self.update_generator(loss_g)
        return torch.stack([loss_d, loss_g, adversarial, l1]).detach().float()

    def settle(self, model: nn.Module, phase: dict) -> None:
        model.eval()  # group norm only

    def grid(self, model: nn.Module, phase: dict) -> tuple[torch.Tensor, list | None, int | None]:
        patch, weight, labels = self.fixed
        with torch.no_grad():
            painted = model(painter_inputs(patch, weight, labels, self.fixed_noise.to(self.device)))
        composite = weight * painted + (1 - weight) * patch
        rows = [t for k in range(0, GRID_PATCHES, 8) for t in (patch[k:k + 8], composite[k:k + 8])]
        return torch.cat(rows) * 2 - 1, None, 8

    def export_extras(self) -> dict:
        return {"patch": self.patch, "margin": self.settings.margin, "labels": self.labels,
                "healthy_share": self.settings.healthy_share if self.data.holes else 0.0,
                "intensity": vars(self.data.intensity), "spacing_mm": self.data.spacing}
