"""The one axis convention every reader returns and every writer accepts.

- Arrays are indexed in numpy/SimpleITK order: ``[y, x]`` for a 2D image (row, column) and
  ``[z, y, x]`` for a volume (slice, row, column). A leading channel axis, when present, is
  ``[c, ...]``.
- ``spacing`` is in millimetres and listed in the same order as the array axes.
- ``origin`` is the world position (LPS, mm, ``(x, y, z)`` = right-to-Left, anterior-to-Posterior,
  inferior-to-Superior) of the centre of the first voxel.
- ``direction`` is a matrix whose column ``j`` is the LPS unit vector along array axis ``j``, so the
  world position of index ``i`` (array order) is ``origin + direction @ (i * spacing)``.

Without a patient frame (PNG, TIFF, arrays made in code) the direction is the plain one: array
axis ``j`` runs along world axis ``dims - 1 - j`` (``x`` is the last array axis), origin zero.
For an axial volume that is ``[[0, 0, 1], [0, 1, 0], [1, 0, 0]]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class MedicalImage:
    array: np.ndarray
    spacing: tuple[float, ...]
    origin: tuple[float, ...] = field(default=())
    direction: np.ndarray | None = None

    def __post_init__(self) -> None:
        dims = len(self.spacing)
        if self.array.ndim not in (dims, dims + 1):
            raise ValueError(f"array of shape {self.array.shape} does not match {dims} spacings")
        if not self.origin:
            self.origin = (0.0,) * dims
        if self.direction is None:
            self.direction = plain_direction(dims)

    @property
    def spatial_dims(self) -> int:
        return len(self.spacing)

    @property
    def spatial_shape(self) -> tuple[int, ...]:
        return tuple(self.array.shape[-self.spatial_dims:])

    def index_to_world(self, index: np.ndarray) -> np.ndarray:
        """World (LPS mm) positions of array-order indices, shape (..., dims)."""
        index = np.asarray(index, dtype=float)
        return np.asarray(self.origin) + (index * np.asarray(self.spacing)) @ self.direction.T

    def world_to_index(self, world: np.ndarray) -> np.ndarray:
        """Continuous array-order indices of LPS mm positions, shape (..., dims)."""
        world = np.asarray(world, dtype=float)
        local = (world - np.asarray(self.origin)) @ np.linalg.inv(self.direction).T
        return local / np.asarray(self.spacing)


def plain_direction(dims: int) -> np.ndarray:
    """Array axis j along world axis dims-1-j: the frame of an image with no header geometry."""
    return np.eye(dims)[::-1].copy()
