"""Sample grids: the EMA generator on fixed latents and conditions, so grids from different steps
of a run show the same "patients" maturing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from pathosynth.contracts import replacing
from pathosynth.latents import latents_for_seeds

COLUMNS = 8
ROWS = 4
BOX_COLOUR = (255, 64, 64)
SAMPLE_SEED_OFFSET = 1_000_003  # grid latents: a seed range no generated image of the run uses


def grid_latents(generator: torch.nn.Module, seed: int, device: torch.device) -> torch.Tensor:
    """The latents of a run's sample grid: the same at every grid, and never an image's."""
    seeds = [SAMPLE_SEED_OFFSET + seed * 10_000 + i for i in range(COLUMNS * ROWS)]
    return latents_for_seeds(generator, seeds, device)


def grid_labels(num_classes: int, device: torch.device) -> torch.Tensor | None:
    """One class per grid row, in turn (None without classes)."""
    n = COLUMNS * ROWS
    return torch.arange(n, device=device) // COLUMNS % num_classes if num_classes else None


def grid_png(images: torch.Tensor, path: Path, boxes: list[list[list[float]]] | None = None,
             columns: int = COLUMNS) -> None:
    """Tile normalised images (N, C, H, W; about [-1, 1], first channel shown) into a PNG, boxes
    outlined, written atomically."""
    images = images.detach().float().cpu()
    pixels = ((images[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    n, height, width = pixels.shape
    rows = -(-n // columns)
    canvas = Image.new("RGB", (columns * (width + 2), rows * (height + 2)), (0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for i in range(n):
        left, top = (i % columns) * (width + 2) + 1, (i // columns) * (height + 2) + 1
        canvas.paste(Image.fromarray(np.ascontiguousarray(pixels[i])).convert("RGB"), (left, top))
        for box in (boxes[i] if boxes else []):
            x0, y0, x1, y1 = box
            # boxes under a pixel wide (small lesions at 64 px) still get a one-pixel outline
            draw.rectangle([left + x0, top + y0, left + max(x0, x1 - 1), top + max(y0, y1 - 1)],
                           outline=BOX_COLOUR)
    with replacing(path) as tmp:
        canvas.save(tmp, format="PNG")


def to_full_resolution(images: torch.Tensor, resolution: int) -> torch.Tensor:
    """PGGAN's early stages make small images: show them at the final size."""
    if images.shape[-1] == resolution:
        return images
    return F.interpolate(images, size=(resolution, resolution), mode="nearest")
