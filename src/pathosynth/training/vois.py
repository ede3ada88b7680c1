"""A nodule-VOI dataset's training split, in memory, for 3D MCGAN (METHODS.md section 4).

The VOIs come from `pathosynth data import luna16 --kind vois` or the chest CT phantom: 64^3 at
1 mm around each nodule, with its size and attenuation classes as attributes. Intensities map a
fixed Hounsfield window to [-1, 1] instead of the 2D GANs' per-dataset percentiles: HU are
absolute, so the generated nodule can be pasted into any scan and mean the same tissue there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from pathosynth.contracts import Intensity

if TYPE_CHECKING:
    from pathosynth.config import TrainConfig

# Air (-1024) to dense soft tissue / cortical-bone onset (600): it holds air, ground glass
# (-700..-300), solid nodules and vessels (0..100) and the chest wall. Bone above it is clipped:
# a generated nodule box never needs to create bone, and a real VOI's bone must not be a value
# the tanh generator cannot reach (a free "real" cue for the discriminators).
HU_WINDOW = (-1024.0, 600.0)
VOI_INTENSITY = Intensity(mid=(HU_WINDOW[0] + HU_WINDOW[1]) / 2, half=(HU_WINDOW[1] - HU_WINDOW[0]) / 2,
                          low_clip=HU_WINDOW[0], high_clip=HU_WINDOW[1])


@dataclass
class VoiSet:
    images: torch.Tensor  # (N, 1, S, S, S), normalised to [-1, 1]
    conditions: torch.Tensor  # (N, 6): one-hot size, one-hot attenuation (models.mcgan3d.CONDITIONS)
    ids: list[str]
    classes: list[str]
    channels: list[str]
    intensity: Intensity
    spacing: list[float] | None  # mm per voxel at the training size


def load_voi_set(config: TrainConfig, progress: bool = True) -> VoiSet:
    from pathosynth.data.nodules import ATTENUATIONS, SIZES
    from pathosynth.models.mcgan3d.networks import condition_vector

    dataset = Dataset.load(config.data)
    info = dataset.info
    if info.dimensionality != 3 or info.modality != "CT":
        raise UserError(f"{config.data}: 3D MCGAN trains on chest CT nodule VOIs, this is a "
                        f"{info.dimensionality}D {info.modality} dataset; make one with `pathosynth data import "
                        "luna16 SRC --kind vois` or `pathosynth data phantom chest-ct`")
    samples = dataset.select(split=config.split or None)
    if not samples:
        raise UserError(f"{config.data}: no '{config.split}' VOIs; check --split")
    images, conditions = [], []
    for sample in tqdm(samples, desc="reading", unit="voi", disable=not progress, leave=False):
        size, attenuation = sample.attributes.get("size"), sample.attributes.get("attenuation")
        if size not in SIZES or attenuation not in ATTENUATIONS:
            raise UserError(f"{config.data}: VOI {sample.id} has size '{size}' and attenuation '{attenuation}'; "
                            f"3D MCGAN needs both ({', '.join(SIZES)}; {', '.join(ATTENUATIONS)}): import "
                            "annotations with an attenuation (or texture) column")
        array = dataset.read(sample)[0]  # one channel: CT
        if len(set(array.shape)) != 1:
            raise UserError(f"{config.data}: VOI {sample.id} has shape {array.shape}, not a cube; "
                            "import with `--kind vois`")
        images.append(_at_size(np.clip(array.astype(np.float32), *HU_WINDOW), config.resolution))
        conditions.append(condition_vector(size, attenuation))
    stacked = torch.stack(images)[:, None]
    if not torch.isfinite(stacked).all():
        raise UserError(f"{config.data}: some VOIs hold NaN or infinite values; re-import the dataset")
    side = array.shape[-1]  # the stored VOIs' side (all cubes of one size: the importer cut them)
    spacing = samples[0].spacing or info.spacing
    scale = side / config.resolution
    return VoiSet(images=VOI_INTENSITY.normalise(stacked), conditions=torch.stack(conditions),
                  ids=[s.id for s in samples], classes=list(info.classes), channels=list(info.channels),
                  intensity=VOI_INTENSITY, spacing=[float(s) * scale for s in spacing] if spacing else None)


def _at_size(array: np.ndarray, side: int) -> torch.Tensor:
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    if array.shape[0] == side:
        return tensor
    if array.shape[0] % side:
        raise UserError(f"VOIs of {array.shape[0]}^3 cannot be averaged down to --resolution {side}; "
                        f"use a divisor of {array.shape[0]}")
    return F.avg_pool3d(tensor[None, None], array.shape[0] // side)[0, 0]
