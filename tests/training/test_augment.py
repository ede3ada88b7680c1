"""DiffAugment ops against direct formulations: numpy shifts with zero fill, explicit boxes, closed forms."""

import numpy as np
import pytest
import torch

from pathosynth.training import augment
from pathosynth.training.augment import DiffAugment, diff_augment


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def shift_zero_fill(array: np.ndarray, shifts) -> np.ndarray:
    """np.roll along the trailing axes, with the wrapped-around entries zeroed."""
    out = array.copy()
    spatial = array.ndim - len(shifts)
    for k, s in enumerate(shifts):
        axis = spatial + k
        out = np.roll(out, s, axis=axis)
        index = [slice(None)] * array.ndim
        index[axis] = slice(0, s) if s >= 0 else slice(array.shape[axis] + s, None)
        out[tuple(index)] = 0
    return out


OPS = ["brightness", "contrast", "translation", "cutout"]
SHAPES = [(3, 1, 16, 16), (2, 2, 8, 12, 10)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("policy", OPS + [augment.DEFAULT_POLICY])
def test_shape_dtype_and_gradient(policy, shape):
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(shape, generator=seeded(0), dtype=dtype).requires_grad_(True)
        out = diff_augment(x, policy, seeded(1))
        assert out.shape == x.shape and out.dtype == dtype
        out.sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("policy", OPS + [augment.DEFAULT_POLICY])
def test_fixed_generator_reproduces_and_other_seeds_differ(policy):
    x = torch.randn(8, 1, 32, 32, generator=seeded(0))
    first = diff_augment(x, policy, seeded(5))
    torch.testing.assert_close(diff_augment(x, policy, seeded(5)), first, rtol=0, atol=0)
    assert not torch.equal(diff_augment(x, policy, seeded(6)), first)
    assert not torch.equal(first, x)


def test_samples_get_their_own_parameters():
    x = torch.zeros(16, 1, 8, 8)
    assert augment.brightness(x, seeded(0)).flatten(1)[:, 0].unique().numel() == 16
    assert augment.draw_translation(x, seeded(0)).unique(dim=0).shape[0] > 1
    assert augment.draw_cutout(x, seeded(0)).unique(dim=0).shape[0] > 1


@pytest.mark.parametrize("shape", [(6, 1, 9, 7), (4, 1, 5, 6, 7)])
def test_translation_moves_a_bright_pixel_by_the_drawn_shift(shape):
    n, spatial = shape[0], shape[2:]
    x = torch.zeros(shape, dtype=torch.float64)
    centre = tuple(size // 2 for size in spatial)
    x[(slice(None), 0) + centre] = 1.0
    ratio = 0.25
    shifts = augment.draw_translation(x, seeded(3), ratio=ratio)
    limits = torch.tensor([augment.max_translation(size, ratio) for size in spatial])
    assert (shifts.abs() <= limits).all() and shifts.abs().sum() > 0
    out = augment.translation(x, seeded(3), ratio=ratio)
    for i in range(n):
        s = shifts[i].tolist()
        expected = shift_zero_fill(x[i].numpy(), s)
        np.testing.assert_array_equal(out[i].numpy(), expected)
        where = tuple(c + d for c, d in zip(centre, s))
        assert out[(i, 0) + where] == 1.0 and out[i].sum() == 1.0


@pytest.mark.parametrize("shape", [(6, 1, 16, 16), (3, 1, 8, 16, 8)])
def test_diff_augment_translates_conditions_identically(shape):
    n, spatial = shape[0], shape[2:]
    x = torch.rand(shape, generator=seeded(0), dtype=torch.float64)
    box = (torch.rand((n, 2) + spatial, generator=seeded(1), dtype=torch.float64) > 0.5).double()
    shifts = augment.draw_translation(x, seeded(4))
    assert shifts.abs().sum() > 0
    out, out_box = diff_augment(x, "translation", seeded(4), box)
    for i in range(n):
        s = shifts[i].tolist()
        np.testing.assert_array_equal(out[i].numpy(), shift_zero_fill(x[i].numpy(), s))
        np.testing.assert_array_equal(out_box[i].numpy(), shift_zero_fill(box[i].numpy(), s))


@pytest.mark.parametrize("shape,ratio", [((8, 2, 16, 16), 0.5), ((5, 1, 10, 14), 0.3), ((4, 1, 6, 8, 10), 0.5)])
def test_cutout_zeros_exactly_one_box_of_the_stated_size(shape, ratio):
    spatial = shape[2:]
    x = torch.rand(shape, generator=seeded(0)) + 1  # never zero
    sizes = [augment.cutout_size(size, ratio) for size in spatial]
    corners = augment.draw_cutout(x, seeded(2), ratio=ratio)
    out = augment.cutout(x, seeded(2), ratio=ratio)
    for i in range(shape[0]):
        expected = x[i].clone()
        box = tuple(slice(c, c + s) for c, s in zip(corners[i].tolist(), sizes))
        assert all(b.stop <= size for b, size in zip(box, spatial))
        expected[(slice(None),) + box] = 0
        torch.testing.assert_close(out[i], expected, rtol=0, atol=0)
        assert int((out[i] == 0).sum()) == shape[1] * int(np.prod(sizes))


def test_cutout_on_conditions_is_optional_and_translation_is_not():
    x = torch.rand(4, 1, 16, 16, generator=seeded(0)) + 1
    box = torch.ones(4, 1, 16, 16)
    out, kept = diff_augment(x, "cutout", seeded(1), box)
    torch.testing.assert_close(kept, box)
    out_masked, masked = diff_augment(x, "cutout", seeded(1), box, mask_conditions=True)
    torch.testing.assert_close(out_masked, out)
    torch.testing.assert_close(masked == 0, out == 0)
    # intensity ops leave conditions alone
    _, untouched = DiffAugment("brightness,contrast", seeded(1))(x, box)
    torch.testing.assert_close(untouched, box)


@pytest.mark.parametrize("shape", SHAPES)
def test_brightness_and_contrast_match_direct_formulas(shape):
    x = torch.randn(shape, generator=seeded(0), dtype=torch.float64)
    view = (-1,) + (1,) * (len(shape) - 1)
    b = augment.draw_brightness(x, seeded(7), max_shift=0.3)
    assert (b.abs() <= 0.3).all()
    torch.testing.assert_close(augment.brightness(x, seeded(7), max_shift=0.3), x + b.view(view))
    f = augment.draw_contrast(x, seeded(8))
    assert ((f >= 0.5) & (f < 1.5)).all()
    out = augment.contrast(x, seeded(8))
    for i in range(shape[0]):
        mean = x[i].mean()
        torch.testing.assert_close(out[i], (x[i] - mean) * f[i] + mean)
        # structure is kept: per-image mean unchanged, deviations scaled by f, ranking unchanged
        torch.testing.assert_close(out[i].mean(), mean)
        torch.testing.assert_close(out[i].std(), x[i].std() * f[i])
        assert torch.equal(out[i].flatten().argsort(), x[i].flatten().argsort())
        # brightness keeps every difference between voxels
        shifted = augment.brightness(x, seeded(7), max_shift=0.3)[i]
        torch.testing.assert_close(shifted - shifted.mean(), x[i] - x[i].mean())


def test_policy_applies_ops_in_order_from_one_generator():
    x = torch.randn(4, 1, 12, 12, generator=seeded(0))
    g = seeded(9)
    expected = augment.cutout(augment.translation(augment.contrast(x, g), g), g)
    torch.testing.assert_close(diff_augment(x, "contrast, translation ,cutout", seeded(9)), expected)
    torch.testing.assert_close(DiffAugment(["contrast", "translation", "cutout"], seeded(9))(x), expected)
    assert diff_augment(x, "") is x


def test_unknown_policy_lists_valid_ops():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="'color'.*brightness, contrast, translation, cutout"):
        diff_augment(x, "translation,color")
    with pytest.raises(ValueError, match="valid ops are"):
        DiffAugment("saturation")


def test_conditions_must_match_batch_and_spatial_shape():
    x = torch.zeros(2, 1, 8, 8)
    with pytest.raises(ValueError, match="condition 0"):
        diff_augment(x, "translation", None, torch.zeros(2, 1, 8, 9))


@pytest.mark.parametrize("shape", [(2, 1, 5, 4), (2, 1, 3, 4, 3)])
def test_ops_pass_gradcheck(shape):
    x = torch.randn(shape, generator=seeded(0), dtype=torch.float64, requires_grad=True)
    shift = augment.draw_translation(x, seeded(1), ratio=0.4)
    corner = augment.draw_cutout(x, seeded(1))
    for op in (lambda t: augment.brightness(t, seeded(2)), lambda t: augment.contrast(t, seeded(2)),
               lambda t: augment.translation(t, shift=shift), lambda t: augment.cutout(t, corner=corner)):
        assert torch.autograd.gradcheck(op, (x,))
