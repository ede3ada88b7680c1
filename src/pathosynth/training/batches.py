"""Batches drawn from the in-memory training set, in an order that a checkpoint can restore.

Each epoch is a fresh permutation from the sampler's own seeded RNG. With several processes
(DDP), every process draws the same permutation and takes its own slice of each global batch,
so the processes together see each image once per epoch, as DistributedSampler would.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pathosynth.training.data import TrainingSet


class BatchSampler:
    def __init__(self, size: int, batch: int, seed: int, rank: int = 0, world: int = 1):
        self.size, self.batch, self.rank, self.world = size, batch, rank, world
        self.rng = torch.Generator().manual_seed(seed)
        self.order = torch.randperm(size, generator=self.rng)
        self.position = 0

    def next_indices(self) -> torch.Tensor:
        chosen = []
        needed = self.batch * self.world
        while needed:
            if self.position >= self.size:
                self.order = torch.randperm(self.size, generator=self.rng)
                self.position = 0
            take = min(needed, self.size - self.position)
            chosen.append(self.order[self.position:self.position + take])
            self.position += take
            needed -= take
        everyone = torch.cat(chosen)
        return everyone[self.rank * self.batch:(self.rank + 1) * self.batch]

    def state_dict(self) -> dict:
        return {"rng": self.rng.get_state(), "order": self.order.clone(), "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.rng.set_state(state["rng"])
        self.order = state["order"].clone()
        self.position = int(state["position"])


def random_crop(images: torch.Tensor, box_images: torch.Tensor | None, max_shift: int
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """PGGAN's augmentation: pad by `max_shift` (edge values) and crop back at a random offset,
    so each image moves by 0..max_shift px along each axis; its box image moves with it."""
    if max_shift <= 0:
        return images, box_images
    n, _, height, width = images.shape
    offsets = torch.randint(0, 2 * max_shift + 1, (n, 2))
    dy, dx = offsets[:, 0], offsets[:, 1]
    batch = torch.arange(n)

    def crop(x: torch.Tensor, mode: str) -> torch.Tensor:
        padded = F.pad(x, (max_shift,) * 4, mode=mode)
        # Every crop of every image as a view (N, C, 2s+1, 2s+1, H, W); one gather picks each
        # image's own (a Python loop over the batch was 1.5-3x slower).
        windows = padded.unfold(2, height, 1).unfold(3, width, 1)
        return windows[batch, :, dy, dx]

    return crop(images, "replicate"), (crop(box_images, "constant") if box_images is not None else None)


def draw_batch(data: TrainingSet, sampler: BatchSampler, crop_px: int, device: torch.device):
    """(images, labels, box_images or None) for the next batch, augmented, on `device`."""
    indices = sampler.next_indices()
    images = data.images[indices]
    box_images = data.box_images[indices] if data.box_images is not None else None
    images, box_images = random_crop(images, box_images, crop_px)
    labels = data.labels[indices]
    return (images.to(device, non_blocking=True), labels.to(device),
            box_images.to(device) if box_images is not None else None)
