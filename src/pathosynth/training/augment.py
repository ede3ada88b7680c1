"""Differentiable augmentation for the discriminator (DiffAugment, Zhao et al. 2020).

GANs trained on a few hundred medical images let the discriminator memorise the training set.
DiffAugment applies the *same kind* of random transform to real and generated images before the
discriminator sees them; because every transform is differentiable in its input, the generator's
gradient passes through it, and the generator is never pushed to produce augmented-looking images.

Every op works on a float tensor (N, C, *spatial): (N, C, H, W) or (N, C, D, H, W) (any number of
spatial axes for the geometric ops). Each sample gets its own random parameters, drawn from the
optional `torch.Generator` (the global RNG if None) in the order documented by the `draw_*`
functions, so a seeded generator reproduces a run. Parameters are drawn on the generator's device
and moved to the input's, so a CPU generator gives the same draws for CPU and GPU tensors.
Each op also accepts its parameters explicitly (`shift=`, `factor=`, `corner=`), which is what
`diff_augment` uses to transform conditioning images identically.

Intensity ops (for grey images; no saturation or colour ops):
  brightness   x + b,                          b ~ U[-max_shift, max_shift) per sample
  contrast     (x - mean) * f + mean,          f ~ U[1 - max_change, 1 + max_change) per sample,
               mean over all channels and voxels of that sample
Geometric ops:
  translation  integer shift along every spatial axis, independently drawn from
               [-round(ratio * size), round(ratio * size)], zero fill
  cutout       zero one box of round(ratio * size) along every spatial axis (a square / cube for a
               square / cubic image), placed wholly inside the image (unlike the reference code,
               which lets it overhang the border: here the zeroed volume is the same every time)

Conditions (`diff_augment(x, policy, generator, *conditions)`), e.g. CPGGAN's bounding-box image:
  translation  applied, with the same shift: it moves the scene, and the condition says where in the
               scene the lesion is, so it must move with it or the pair stops agreeing.
  cutout       NOT applied by default (`mask_conditions=True` applies the same box). Cutout occludes
               the image, it does not change the scene: the lesion is still where the box says. Zero
               in a box/mask condition means "no lesion here", so zeroing it would state something
               false, and would show the discriminator holed boxes the generator is never given.
               Real and fake pairs get the same occlusion either way, so nothing leaks.
  brightness, contrast  never: conditions are geometric labels, not intensities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F

DEFAULT_POLICY = "brightness,contrast,translation,cutout"


def _check(x: torch.Tensor, min_dim: int) -> None:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected a floating-point tensor, got {getattr(x, 'dtype', type(x))}")
    if x.dim() < min_dim:
        raise ValueError(f"expected a tensor (N, C, *spatial) with at least {min_dim} dims, got shape {tuple(x.shape)}")


def _rand(n: int, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    device = generator.device if generator is not None else x.device
    return torch.rand(n, generator=generator, device=device, dtype=x.dtype).to(x.device)


def _per_sample(values: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    values = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if values.shape != (x.shape[0],):
        raise ValueError(f"{name} must have shape ({x.shape[0]},), got {tuple(values.shape)}")
    return values.view((-1,) + (1,) * (x.dim() - 1))


def _per_axis(values: torch.Tensor, x: torch.Tensor, name: str) -> torch.Tensor:
    values = torch.as_tensor(values, device=x.device).long()
    expected = (x.shape[0], x.dim() - 2)
    if values.shape != expected:
        raise ValueError(f"{name} must have shape {expected} (sample, spatial axis), got {tuple(values.shape)}")
    return values


def _axis_index(x: torch.Tensor, axis: int) -> torch.Tensor:
    """arange over `axis`, shaped to broadcast against x: (1, ..., size, ..., 1)."""
    shape = [1] * x.dim()
    shape[axis] = x.shape[axis]
    return torch.arange(x.shape[axis], device=x.device).view(shape)


# ---------------------------------------------------------------------------------------- draws

def draw_brightness(x: torch.Tensor, generator: torch.Generator | None = None, *,
                    max_shift: float = 0.5) -> torch.Tensor:
    """Additive shifts (N,), uniform in [-max_shift, max_shift): one `rand(N)` draw."""
    _check(x, 2)
    return (2 * _rand(x.shape[0], x, generator) - 1) * max_shift


def draw_contrast(x: torch.Tensor, generator: torch.Generator | None = None, *,
                  max_change: float = 0.5) -> torch.Tensor:
    """Scale factors (N,), uniform in [1 - max_change, 1 + max_change): one `rand(N)` draw."""
    _check(x, 2)
    return 1 + (2 * _rand(x.shape[0], x, generator) - 1) * max_change


def max_translation(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def cutout_size(size: int, ratio: float) -> int:
    return int(size * ratio + 0.5)


def draw_translation(x: torch.Tensor, generator: torch.Generator | None = None, *,
                     ratio: float = 0.125) -> torch.Tensor:
    """Integer shifts (N, spatial axes): axis k uniform on [-m_k, m_k], m_k = round(ratio * size_k).

    One `rand(N)` draw per spatial axis, in axis order.
    """
    _check(x, 3)
    columns = []
    for size in x.shape[2:]:
        limit = max_translation(size, ratio)
        u = _rand(x.shape[0], x, generator)
        columns.append((u * (2 * limit + 1)).floor().long().clamp(max=2 * limit) - limit)
    return torch.stack(columns, dim=1)


def draw_cutout(x: torch.Tensor, generator: torch.Generator | None = None, *,
                ratio: float = 0.5) -> torch.Tensor:
    """First corner (N, spatial axes) of the cut box: axis k uniform on [0, size_k - cut_k].

    One `rand(N)` draw per spatial axis, in axis order.
    """
    _check(x, 3)
    columns = []
    for size in x.shape[2:]:
        positions = size - cutout_size(size, ratio) + 1
        u = _rand(x.shape[0], x, generator)
        columns.append((u * positions).floor().long().clamp(max=positions - 1))
    return torch.stack(columns, dim=1)


# ------------------------------------------------------------------------------------------ ops

def brightness(x: torch.Tensor, generator: torch.Generator | None = None, *, max_shift: float = 0.5,
               shift: torch.Tensor | None = None) -> torch.Tensor:
    """x + b per sample (b from `draw_brightness` unless `shift` (N,) is given)."""
    if shift is None:
        shift = draw_brightness(x, generator, max_shift=max_shift)
    return x + _per_sample(shift, x, "shift")


def contrast(x: torch.Tensor, generator: torch.Generator | None = None, *, max_change: float = 0.5,
             factor: torch.Tensor | None = None) -> torch.Tensor:
    """(x - mean) * f + mean per sample, mean over all of the sample's channels and voxels."""
    if factor is None:
        factor = draw_contrast(x, generator, max_change=max_change)
    mean = x.mean(dim=tuple(range(1, x.dim())), keepdim=True)
    return (x - mean) * _per_sample(factor, x, "factor") + mean


def translation(x: torch.Tensor, generator: torch.Generator | None = None, *, ratio: float = 0.125,
                shift: torch.Tensor | None = None) -> torch.Tensor:
    """out[n, c, i] = x[n, c, i - shift[n]] where that lies inside the image, else 0.

    Implemented as zero padding plus one gather per spatial axis, so the gradient w.r.t. x is exact.
    """
    _check(x, 3)
    if shift is None:
        shift = draw_translation(x, generator, ratio=ratio)
    shift = _per_axis(shift, x, "shift")
    pad = int(shift.abs().max()) if shift.numel() else 0
    if pad == 0:
        return x.clone()
    out = F.pad(x, (pad, pad) * (x.dim() - 2))
    for k in range(x.dim() - 2):
        axis = k + 2
        size = x.shape[axis]
        view = [1] * x.dim()
        view[0] = x.shape[0]
        index = _axis_index(x, axis) - shift[:, k].view(view) + pad
        target = list(out.shape)
        target[axis] = size
        out = torch.gather(out, axis, index.expand(target))
    return out


def cutout_mask(x: torch.Tensor, corner: torch.Tensor, *, ratio: float = 0.5) -> torch.Tensor:
    """Mask (N, 1, *spatial) in x's dtype: 0 inside each sample's box, 1 elsewhere."""
    _check(x, 3)
    corner = _per_axis(corner, x, "corner")
    inside = torch.ones((x.shape[0], 1) + tuple(x.shape[2:]), dtype=torch.bool, device=x.device)
    for k, size in enumerate(x.shape[2:]):
        axis = k + 2
        view = [1] * x.dim()
        view[0] = x.shape[0]
        start = corner[:, k].view(view)
        position = _axis_index(x, axis)
        inside = inside & (position >= start) & (position < start + cutout_size(size, ratio))
    return (~inside).to(x.dtype)


def cutout(x: torch.Tensor, generator: torch.Generator | None = None, *, ratio: float = 0.5,
           corner: torch.Tensor | None = None) -> torch.Tensor:
    """Zero one box of round(ratio * size) per spatial axis in every sample (all channels)."""
    _check(x, 3)
    if corner is None:
        corner = draw_cutout(x, generator, ratio=ratio)
    return x * cutout_mask(x, corner, ratio=ratio)


# --------------------------------------------------------------------------------------- policy

OPS = ("brightness", "contrast", "translation", "cutout")


def parse_policy(policy: str | Sequence[str]) -> tuple[str, ...]:
    """'brightness, translation' or ['brightness', 'translation'] -> names; '' means no augmentation."""
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = tuple(name.strip() for name in names if name.strip())
    unknown = [name for name in names if name not in OPS]
    if unknown:
        raise ValueError(f"unknown DiffAugment op(s) {', '.join(map(repr, unknown))}; "
                         f"valid ops are: {', '.join(OPS)}")
    return names


def diff_augment(x: torch.Tensor, policy: str | Sequence[str] = DEFAULT_POLICY,
                 generator: torch.Generator | None = None, *conditions: torch.Tensor,
                 mask_conditions: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
    """Apply the ops of `policy` in order, each with fresh per-sample parameters.

    Conditions (same N and spatial shape as x, any channels) get the same translation, and the same
    cutout only if `mask_conditions`; intensity ops never touch them (see the module docstring).
    Returns the augmented x alone when no conditions are passed, else the tuple (x, *conditions).
    Apply it to real and generated batches alike (separate calls draw separate parameters).
    """
    ops = parse_policy(policy)
    _check(x, 2)
    for i, condition in enumerate(conditions):
        _check(condition, 2)
        if condition.shape[0] != x.shape[0] or condition.shape[2:] != x.shape[2:]:
            raise ValueError(f"condition {i} has shape {tuple(condition.shape)}; it needs x's batch size and "
                             f"spatial shape {(x.shape[0], '*') + tuple(x.shape[2:])}")
    conditions = list(conditions)
    for op in ops:
        if op == "brightness":
            x = brightness(x, generator)
        elif op == "contrast":
            x = contrast(x, generator)
        elif op == "translation":
            shift = draw_translation(x, generator)
            x = translation(x, shift=shift)
            conditions = [translation(c, shift=shift) for c in conditions]
        elif op == "cutout":
            corner = draw_cutout(x, generator)
            x = cutout(x, corner=corner)
            if mask_conditions:
                conditions = [cutout(c, corner=corner) for c in conditions]
    return (x, *conditions) if conditions else x


class DiffAugment:
    """`diff_augment` with the policy checked once: `DiffAugment("translation,cutout", g)(x, box)`."""

    def __init__(self, policy: str | Sequence[str] = DEFAULT_POLICY, generator: torch.Generator | None = None,
                 *, mask_conditions: bool = False):
        self.ops = parse_policy(policy)
        self.generator = generator
        self.mask_conditions = mask_conditions

    def __call__(self, x: torch.Tensor, *conditions: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        return diff_augment(x, self.ops, self.generator, *conditions, mask_conditions=self.mask_conditions)

    def __repr__(self) -> str:
        return f"DiffAugment({','.join(self.ops)!r}, mask_conditions={self.mask_conditions})"
