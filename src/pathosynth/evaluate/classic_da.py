"""Classic data augmentation as in the two-step GAN paper (METHODS section 2).

"A random combination of horizontal/vertical flipping, rotation up to 10 degrees, width/height
shift up to 8%, shearing up to 8%, zooming up to 8%, and constant filling of points outside the
input boundaries" -- the paper's Keras `ImageDataGenerator` settings. Every image gets its own
draw of all of them at once, as Keras draws them:

- horizontal flip and vertical flip, each with probability 1/2;
- rotation by an angle uniform in [-10, 10] degrees;
- shift by a fraction uniform in [-0.08, 0.08] of the width (x) and, independently, of the height (y);
- shear by a factor uniform in [-0.08, 0.08] (x moves by factor * y: "8%" read as a shear of
  8% of the distance from the centre, about 4.6 degrees; Keras's own `shear_range` is in degrees,
  where 0.08 would be a no-op, which is not what the paper reports);
- zoom by factors uniform in [0.92, 1.08], drawn independently for x and y (as Keras does);
- points that come from outside the input get the constant `fill` (0: the background of an image
  normalised by its 1st percentile, see `evaluate/classify_data.py`); bilinear interpolation.

Implementation: one affine matrix per image, about the image centre, applied to the whole batch
with `torch.nn.functional.affine_grid` + `grid_sample` (MONAI's `RandAffine` does the same per
image; a batch in one call is what makes the papers' "+N augmented copies" cheap to build). The
geometry is written out in `forward_matrices` so that the tests can check it on known images.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ClassicDA:
    """The ranges of the paper's classic augmentation (degrees; fractions of the image side)."""

    rotation: float = 10.0
    shift: float = 0.08
    shear: float = 0.08
    zoom: float = 0.08
    horizontal_flip: bool = True
    vertical_flip: bool = True
    fill: float = 0.0

    def describe(self) -> dict:
        return {**asdict(self), "implementation": "torch affine_grid + grid_sample (bilinear), per-image draws, "
                "about the image centre; shear as a factor (x += k * y)"}

    def draw(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Random parameters for `n` images: each a tensor (n,)."""

        def uniform(low: float, high: float) -> torch.Tensor:
            return low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64)

        flip_x = torch.rand(n, generator=generator) < 0.5
        flip_y = torch.rand(n, generator=generator) < 0.5
        return {
            "flip_x": flip_x & self.horizontal_flip,
            "flip_y": flip_y & self.vertical_flip,
            "angle": uniform(-self.rotation, self.rotation),
            "shift_x": uniform(-self.shift, self.shift),
            "shift_y": uniform(-self.shift, self.shift),
            "shear": uniform(-self.shear, self.shear),
            "zoom_x": uniform(1 - self.zoom, 1 + self.zoom),
            "zoom_y": uniform(1 - self.zoom, 1 + self.zoom),
        }

    def apply(self, images: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Transform (N, C, H, W) images with the given parameters (see `draw`)."""
        forward = forward_matrices(params)  # (n, 3, 3) in normalised centred coordinates
        inverse = torch.linalg.inv(forward)[:, :2, :].to(images.dtype)
        grid = F.affine_grid(inverse, list(images.shape), align_corners=False)
        # grid_sample pads with 0; shift the values so that 0 is the fill value, then back
        out = F.grid_sample(images - self.fill, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return out + self.fill

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return self.apply(images, self.draw(images.shape[0], generator))


def forward_matrices(params: dict[str, torch.Tensor]) -> torch.Tensor:
    """Where each image's content goes: p_out = T @ p_in, (n, 3, 3) homogeneous matrices in
    affine_grid's coordinates (x to the right, y down, both from -1 to 1 across the image, so a
    shift by a fraction f of the side is 2 f). T = shift . rotation . shear . zoom . flip: the
    image is flipped, zoomed, sheared and rotated about its centre, then shifted. A positive angle
    turns the content clockwise on screen (y points down)."""
    n = params["angle"].shape[0]
    eye = torch.eye(3, dtype=torch.float64).repeat(n, 1, 1)
    flip = eye.clone()
    flip[:, 0, 0] = torch.where(params["flip_x"], -1.0, 1.0)
    flip[:, 1, 1] = torch.where(params["flip_y"], -1.0, 1.0)
    zoom = eye.clone()
    zoom[:, 0, 0] = params["zoom_x"]
    zoom[:, 1, 1] = params["zoom_y"]
    shear = eye.clone()
    shear[:, 0, 1] = params["shear"]
    angle = params["angle"] * math.pi / 180
    rotation = eye.clone()
    rotation[:, 0, 0] = torch.cos(angle)
    rotation[:, 0, 1] = -torch.sin(angle)
    rotation[:, 1, 0] = torch.sin(angle)
    rotation[:, 1, 1] = torch.cos(angle)
    shift = eye.clone()
    shift[:, 0, 2] = 2 * params["shift_x"]
    shift[:, 1, 2] = 2 * params["shift_y"]
    return shift @ rotation @ shear @ zoom @ flip


def augmented_copies(images: torch.Tensor, sources: torch.Tensor, da: ClassicDA, seed: int,
                     batch: int = 256) -> torch.Tensor:
    """`len(sources)` augmented copies: copy i is `images[sources[i]]` with its own random draw.
    The same seed gives the same copies (the draws come from one generator, in order)."""
    generator = torch.Generator().manual_seed(seed)
    out = torch.empty((len(sources), *images.shape[1:]), dtype=images.dtype)
    for start in range(0, len(sources), batch):
        index = sources[start:start + batch]
        out[start:start + len(index)] = da(images[index].float(), generator).to(images.dtype)
    return out
