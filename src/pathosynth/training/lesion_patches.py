"""The patches a 2D lesion painter learns from, shared by the painter families (inpaint2d, the
diffusion painter): a patch around a training slice's largest lesion, or, for `healthy_share` of
them, a lesion-free slice with a lesion-shaped hole and no labels (training/lesions.py).

A patch is cut at the slice's own pixel size (resized only when the lesion and the margin do not
fit), the lesion at a random place in the patch, flipped at random. The painter sees (patch,
weight, labels): the weight is the lesion's feather (1 px full, fading to 4 px), the hole where it is
above 0. Every random draw comes from the torch RNG the checkpoint keeps, so a resumed run
continues exactly.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from pathosynth.generate.placement.slices import crop, label_channels, lesion_weight, plan_patch
from pathosynth.training.lesions import LesionSet, load_lesion_set

GRID_PATCHES = 16  # sample grids: 16 real patches, each above its painted version


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


def painter_inputs(patch: torch.Tensor, weight: torch.Tensor, labels: torch.Tensor, noise: torch.Tensor
                   ) -> torch.Tensor:
    """The painter's input: what it may see (the patch outside the hole), the hole, what to paint."""
    hole = (weight > 0).to(patch.dtype)
    return torch.cat([patch * (1 - hole), hole, labels, noise * hole], 1)


class LesionPatches:
    """Batches of (patch, weight, labels) from a LesionSet, on `device`."""

    def __init__(self, data: LesionSet, config, device: torch.device):
        """`config`: the run's; its resolution is the patch side, its family section (`LesionPainting`)
        gives the margin and the healthy share, its seed the grid's patches and noise."""
        seed = config.seed
        self.data, self.patch, self.device = data, config.resolution, device
        self.margin, self.healthy_share = config.family.margin, config.family.healthy_share
        picks = torch.randperm(len(data.boxes), generator=torch.Generator().manual_seed(seed))
        self.fixed = self.batch(picks[:GRID_PATCHES].tolist(), offsets=None, flips=False)
        self.fixed_noise = torch.randn(self.fixed[0].shape, generator=torch.Generator().manual_seed(seed))

    @property
    def learns_healthy(self) -> bool:
        return bool(self.data.holes) and self.healthy_share > 0

    def draw(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A training batch for these lesion slices: some swapped for healthy holes, random offsets, flips."""
        holes = self._draw_holes(len(indices))
        return self.batch(indices, torch.rand(len(indices), 2), flips=True, holes=holes)

    def batch(self, indices: list[int], offsets: torch.Tensor | None, flips: bool, holes: list[int] | None = None):
        """(patch, weight, labels) batches, (N, 1, P, P), (N, 1, P, P), (N, K, P, P), for these
        slices; where `holes` holds a hole's index (not -1), that lesion-free slice and hole instead."""
        data = self.data
        rows = []
        for k, i in enumerate(indices):
            offset = None if offsets is None else (float(offsets[k, 0]), float(offsets[k, 1]))
            hole = -1 if holes is None else holes[k]
            source, box = (data.images[i, 0], data.boxes[i]) if hole < 0 else self._hole(hole)
            top, left, side = plan_patch(box, self.patch, self.margin, offset=offset)
            image = crop(source.numpy(), top, left, side).astype(np.float32)
            lesion = crop(self._hole_map(hole, source.shape) if hole >= 0 else data.lesions[i, 0].numpy(),
                          top, left, side)
            rows.append(torch.from_numpy(patch_inputs(image, lesion, data.labels, self.patch, healthy=hole >= 0)))
        batch = torch.stack(rows)
        if flips:  # left-right and up-down, each with probability 1/2
            for axis in (-1, -2):
                flip = torch.rand(batch.shape[0]) < 0.5
                batch = torch.where(flip[:, None, None, None], batch.flip(axis), batch)
        batch = batch.to(self.device)
        return batch[:, :1], batch[:, 1:2], batch[:, 2:]

    def _hole(self, hole: int) -> tuple[torch.Tensor, list[int]]:
        slice_index, box, _ = self.data.holes[hole]
        assert self.data.healthy is not None
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
        healthy = torch.rand(count) < self.healthy_share
        picks = torch.randint(len(self.data.holes), (count,))
        return torch.where(healthy, picks, -1).tolist()

    @torch.no_grad()
    def grid(self, model: torch.nn.Module) -> tuple[torch.Tensor, None, int]:
        """The sample grid: rows of 8 real patches, each row above the same patches painted."""
        patch, weight, labels = self.fixed
        painted = model(painter_inputs(patch, weight, labels, self.fixed_noise.to(self.device)))
        composite = weight * painted + (1 - weight) * patch
        rows = [t for k in range(0, GRID_PATCHES, 8) for t in (patch[k:k + 8], composite[k:k + 8])]
        return torch.cat(rows) * 2 - 1, None, 8

    def export_extras(self) -> dict:
        """What generation needs to paint with the exported painter (generate/lesions.py)."""
        return {"patch": self.patch, "margin": self.margin, "labels": list(self.data.labels),
                "healthy_share": self.healthy_share if self.learns_healthy else 0.0,
                "intensity": vars(self.data.intensity), "spacing_mm": self.data.spacing}


class PaintsLesions:
    """What both lesion painter steps (inpaint2d, diffusion-inpaint) share, listed first among their
    bases: the training set, group norm only when settling, the sample grid and what generation
    needs from the export; the step sets `self.patches`."""

    patches: LesionPatches

    @staticmethod
    def load_data(config, progress: bool) -> LesionSet:
        return load_lesion_set(config, progress=progress)

    def settle(self, model: torch.nn.Module, phase: dict) -> None:
        model.eval()  # group norm only: no running statistics to fix

    def grid(self, model: torch.nn.Module, phase: dict) -> tuple[torch.Tensor, None, int]:
        return self.patches.grid(model)

    def export_extras(self) -> dict:
        return self.patches.export_extras()
