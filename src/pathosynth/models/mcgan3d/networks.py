"""3D MCGAN: multi-conditional lung-nodule inpainting (METHODS.md section 4, thesis section 6).

A nodule VOI (64^3 in the paper) has its central box (32^3) replaced by uniform noise in
[-0.5, 0.5]; six one-hot conditions (size small/medium/large, attenuation solid/part-solid/GGN)
are tiled to the VOI's shape and concatenated, giving the 7-channel generator input. Three networks:

- ``MCGANGenerator``: a pix2pix-style U-Net (4 stride-2 4^3 convolutions down, batch norm on all
  but the first, LeakyReLU 0.2; 4 stride-2 4^3 transposed convolutions up, batch norm, ReLU; skips
  by concatenation; a 1^3 convolution + tanh out) that paints a nodule into the noise box. As in
  pix2pix there is no z vector: decoder dropout is the randomness, so it stays on at generation
  time (``AlwaysDropout``).
- ``ContextDiscriminator``: pix2pix's PatchGAN (MONAI's ``PatchDiscriminator``, batch norm) on the
  generator's input (noise-box VOI + tiled conditions) concatenated with a real or composited VOI,
  trained with least squares.
- ``NoduleDiscriminator``: a WGAN-GP critic on the box^3 nodule block concatenated with its tiled
  conditions; layer norm, not batch norm (see its docstring).
``MCGANDiscriminators`` holds the two discriminators as one module.

Both discriminators judge the generator's central box only, pasted into the real surroundings
(``paste_centre``), so whatever G paints outside the box is discarded and reaches no loss.

Networks and tensor helpers only: no training loop, no data I/O. Every class takes
``spatial_dims`` (3 by default; 2 gives the same networks on slices, for cheap tests).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from monai.networks.blocks import Convolution
from monai.networks.nets import PatchDiscriminator
from monai.networks.utils import normal_init
from torch import nn

from pathosynth.data.nodules import ATTENUATIONS, CONDITIONS, SIZES

LEAKY = ("LEAKYRELU", {"negative_slope": 0.2})
# GroupNorm with one group normalises each sample over (channels, space): layer norm for conv maps.
LAYER_NORM = ("GROUP", {"num_groups": 1})

def _check_spatial_dims(spatial_dims: int) -> int:
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}")
    return spatial_dims


def _shape_text(channels: int | str, side: int, spatial_dims: int) -> str:
    return f"(N, {channels}, {', '.join([str(side)] * spatial_dims)})"


def _check_cube(x: torch.Tensor, channels: int, side: int, spatial_dims: int, name: str) -> None:
    if x.dim() != 2 + spatial_dims or x.shape[1] != channels or any(s != side for s in x.shape[2:]):
        raise ValueError(f"{name} must have shape {_shape_text(channels, side, spatial_dims)}, "
                         f"got {tuple(x.shape)}")


# --- conditions -------------------------------------------------------------------------------

def condition_vector(size: str, attenuation: str) -> torch.Tensor:
    """The six-way condition, float (6,): one-hot size in [0:3], one-hot attenuation in [3:6]."""
    if size not in SIZES:
        raise ValueError(f"unknown nodule size {size!r}: choose one of {', '.join(SIZES)}")
    if attenuation not in ATTENUATIONS:
        raise ValueError(f"unknown nodule attenuation {attenuation!r}: choose one of {', '.join(ATTENUATIONS)}")
    vector = torch.zeros(len(CONDITIONS))
    vector[CONDITIONS.index(size)] = 1.0
    vector[CONDITIONS.index(attenuation)] = 1.0
    return vector


def tile_conditions(vectors: torch.Tensor, spatial_shape: tuple[int, ...]) -> torch.Tensor:
    """(N, 6) condition vectors -> (N, 6, *spatial_shape), constant over space.

    A broadcast view (no copy; do not write into it), differentiable w.r.t. ``vectors``.
    """
    if vectors.dim() != 2 or vectors.shape[1] != len(CONDITIONS):
        raise ValueError(f"condition vectors must have shape (N, {len(CONDITIONS)}) "
                         f"(see condition_vector), got {tuple(vectors.shape)}")
    spatial_shape = tuple(int(s) for s in spatial_shape)
    view = vectors.reshape(*vectors.shape, *(1,) * len(spatial_shape))
    return view.expand(*vectors.shape, *spatial_shape)


# --- the noise box ----------------------------------------------------------------------------

def centre_slices(size: int, box: int, spatial_dims: int) -> tuple[slice, ...]:
    """Slices of the central box^d block of a size^d cube: [size//2 - box//2, +box) per axis.

    Spatial axes only (no batch or channel slice): index a batch as ``x[(..., *slices)]``.
    """
    if not 1 <= box <= size:
        raise ValueError(f"the box side must be between 1 and the VOI side {size}, got {box}")
    start = size // 2 - box // 2
    return (slice(start, start + box),) * _check_spatial_dims(spatial_dims)


def _cube_side(x: torch.Tensor, name: str) -> int:
    """The side of a (N, C, S, S[, S]) cube batch; ValueError for anything else."""
    if x.dim() not in (4, 5) or len(set(x.shape[2:])) != 1:
        raise ValueError(f"{name} must be a batch of cubes (N, C, S, S, S) or squares (N, C, S, S), "
                         f"got {tuple(x.shape)}")
    return int(x.shape[2])


def centre_block(x: torch.Tensor, box: int) -> torch.Tensor:
    """The central box^d block of every sample and channel: (N, C, box^d). A view."""
    return x[(..., *centre_slices(_cube_side(x, "x"), box, x.dim() - 2))]


def noise_box_input(voi: torch.Tensor, box: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A copy of ``voi`` (N, C, S^d) whose central box^d block is uniform noise in [-0.5, 0.5).

    The paper found a noise box trains more robustly than a box of one constant value. Noise is
    drawn with ``generator`` when given (on its device, then moved), so a seeded generator fixes it.
    """
    slices = centre_slices(_cube_side(voi, "voi"), box, voi.dim() - 2)
    shape = (*voi.shape[:2], *(box,) * (voi.dim() - 2))
    device = generator.device if generator is not None else voi.device
    noise = torch.rand(shape, generator=generator, device=device, dtype=voi.dtype) - 0.5
    out = voi.clone()
    out[(..., *slices)] = noise.to(voi.device)
    return out


def paste_centre(context: torch.Tensor, block: torch.Tensor, box: int) -> torch.Tensor:
    """``context`` (N, C, S^d) with its central box^d block replaced by ``block`` (N, C, box^d).

    This is the VOI both discriminators' losses see: real surroundings, generated nodule. Out of
    place (clone, then assign), so gradients reach ``block`` and, outside the box, ``context``.
    """
    side = _cube_side(context, "context")
    expected = (*context.shape[:2], *(box,) * (context.dim() - 2))
    if tuple(block.shape) != expected:
        raise ValueError(f"block must have shape {expected} to fill the central {box}-box, "
                         f"got {tuple(block.shape)}")
    out = context.clone()
    out[(..., *centre_slices(side, box, context.dim() - 2))] = block.to(context.dtype)
    return out


def generator_input(noise_voi: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
    """The generator's 7-channel input: the noise-box VOI (N, 1, S^d) and its tiled (N, 6) conditions."""
    if noise_voi.dim() < 3 or noise_voi.shape[1] != 1 or conditions.shape[:1] != noise_voi.shape[:1]:
        raise ValueError(f"need a noise-box VOI (N, 1, S...) and (N, 6) conditions with the same N, "
                         f"got {tuple(noise_voi.shape)} and {tuple(conditions.shape)}")
    tiled = tile_conditions(conditions.to(noise_voi.dtype), tuple(noise_voi.shape[2:]))
    return torch.cat([noise_voi, tiled], dim=1)


# --- generator --------------------------------------------------------------------------------

class AlwaysDropout(nn.Module):
    """Dropout that drops in ``train()`` *and* ``eval()``: the generator's only source of randomness.

    Deliberately not an ``nn.Dropout`` (``_DropoutNd``): eval mode and the EMA's
    ``standing_statistics`` switch those off, which would make every sample for one input the
    same. Draws from torch's global RNG, so ``torch.manual_seed(s)`` before a forward fixes it.
    """

    def __init__(self, p: float):
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True) if self.p else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


def _down(spatial_dims: int, cin: int, cout: int, norm: bool) -> nn.Module:
    # Conv 4^d stride 2 padding 1 halves an even side; no bias where batch norm follows.
    return Convolution(spatial_dims, cin, cout, strides=2, kernel_size=4, padding=1, act=LEAKY,
                       norm="BATCH" if norm else None, bias=not norm, adn_ordering="NDA")


def _up(spatial_dims: int, cin: int, cout: int, dropout: float) -> nn.Module:
    # Transposed conv 4^d stride 2 padding 1 exactly doubles the side. Dropout sits between batch
    # norm and ReLU, pix2pix's order, which MONAI's ADN cannot express with our dropout module.
    conv = Convolution(spatial_dims, cin, cout, strides=2, kernel_size=4, is_transposed=True, padding=1,
                       output_padding=0, norm="BATCH", act=None, bias=False, adn_ordering="N")
    return nn.Sequential(conv, AlwaysDropout(dropout) if dropout else nn.Identity(), nn.ReLU())


class MCGANGenerator(nn.Module):
    """Noise-box VOI + 6 tiled conditions (N, 7, S^d) -> VOI (N, 1, S^d) in [-1, 1] (tanh).

    Encoder: ``len(widths)`` (4, as in the paper) stride-2 convolutions; batch norm on all but the
    first, LeakyReLU 0.2. Decoder: as many stride-2 transposed convolutions, batch norm, ReLU, each
    but the last concatenated with the encoder features of the same side. The last deconvolution
    keeps ``widths[0]`` channels and a 1^d convolution + tanh makes the output: so every
    deconvolution has batch norm and ReLU as the thesis states, and the output mixes widths[0]
    full-resolution features rather than being one raw deconvolution channel (costs widths[0]+1
    weights). Dropout ``dropout`` follows every decoder layer but the last (pix2pix drops in its
    innermost decoder layers only: dropping right before the linear output would turn into
    voxel-wise salt noise). It is always on (``AlwaysDropout``), so a fixed torch seed fixes the
    output and another seed changes it. Note: batch norm runs on the S/16 bottleneck, so a train-mode
    batch of one at S=16 (a 1^d bottleneck) is refused by PyTorch; eval mode is fine.

    Only the central ``box`` of the output is used (``centre_block``/``paste_centre``); ``box`` is
    stored for the training loop and the generator. ``latent_dim = 0``: no z vector.
    """

    latent_dim = 0

    def __init__(self, voi_size: int = 64, box: int = 32, widths: Sequence[int] = (32, 64, 128, 256),
                 dropout: float = 0.5, spatial_dims: int = 3):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        widths = tuple(int(w) for w in widths)
        if len(widths) < 2 or min(widths) < 1:
            raise ValueError(f"widths needs at least 2 positive levels, got {widths}")
        factor = 2 ** len(widths)
        if voi_size < factor or voi_size % factor:
            raise ValueError(f"voi_size must be a positive multiple of 2**{len(widths)} = {factor} "
                             f"({len(widths)} downsamplings), got {voi_size}")
        centre_slices(voi_size, box, spatial_dims)  # validates box
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.voi_size, self.box, self.widths, self.dropout = voi_size, box, widths, dropout
        self.in_channels = 1 + len(CONDITIONS)

        ins = (self.in_channels,) + widths[:-1]
        self.encoder = nn.ModuleList(_down(spatial_dims, cin, cout, norm=level > 0)
                                     for level, (cin, cout) in enumerate(zip(ins, widths)))
        # Decoder level k goes from the side of encoder level depth-1-k to that of level depth-2-k;
        # its input is the previous decoder output concatenated with the same-side encoder output.
        outs = tuple(reversed(widths[:-1])) + (widths[0],)
        dec_ins = (widths[-1],) + tuple(2 * c for c in outs[:-1])
        self.decoder = nn.ModuleList(_up(spatial_dims, cin, cout, dropout if k < len(widths) - 1 else 0.0)
                                     for k, (cin, cout) in enumerate(zip(dec_ins, outs)))
        self.output = Convolution(spatial_dims, widths[0], 1, kernel_size=1, conv_only=True, bias=True)
        self.apply(normal_init)  # pix2pix: N(0, 0.02) weights, N(1, 0.02) batch-norm scales

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 + self.spatial_dims or x.shape[1] != self.in_channels \
                or any(s != self.voi_size for s in x.shape[2:]):
            raise ValueError(
                f"MCGANGenerator expects {_shape_text(self.in_channels, self.voi_size, self.spatial_dims)}: "
                f"the noise-box VOI (1 channel) followed by the 6 tiled condition channels "
                f"(see generator_input), got {tuple(x.shape)}")
        skips = []
        for layer in self.encoder:
            x = layer(x)
            skips.append(x)
        skips.pop()  # the bottleneck feeds the decoder directly
        for layer in self.decoder:
            x = layer(x)
            if skips:
                x = torch.cat([x, skips.pop()], dim=1)
        return torch.tanh(self.output(x))


# --- discriminators ---------------------------------------------------------------------------

class ContextDiscriminator(nn.Module):
    """(generator input, real or composited VOI) -> least-squares patch scores (N, 1, P^d).

    pix2pix's discriminator judges (input, output) pairs; here the input is the generator's own:
    the noise-box VOI and its six tiled conditions (7 channels), so the conditions reach this
    discriminator too and it judges whether the nodule fits *these* surroundings *and* the classes
    asked for. MONAI's ``PatchDiscriminator`` (4^d convolutions, LeakyReLU 0.2, batch norm: fine
    here, least squares has no gradient penalty): ``layers`` stride-2 convolutions, so
    P = voi_size // 2**layers - 2 per side (voi 64, 3 layers: 6^3).
    """

    def __init__(self, voi_size: int = 64, width: int = 32, layers: int = 3, spatial_dims: int = 3):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        if voi_size // 2 ** layers - 2 < 1:
            raise ValueError(f"a {layers}-layer PatchGAN needs a VOI side >= {3 * 2 ** layers}, "
                             f"got {voi_size}: use fewer layers")
        self.voi_size, self.layers = voi_size, layers
        self.in_channels = 1 + len(CONDITIONS) + 1
        self.net = PatchDiscriminator(
            spatial_dims=spatial_dims, channels=width, in_channels=self.in_channels, out_channels=1,
            num_layers_d=layers, kernel_size=4, activation=LEAKY, norm="BATCH", bias=False, padding=1, dropout=0.0)

    @property
    def patches(self) -> int:
        """Patch scores along one side."""
        return self.voi_size // 2 ** self.layers - 2

    def forward(self, generator_input: torch.Tensor, voi: torch.Tensor) -> torch.Tensor:
        _check_cube(generator_input, 1 + len(CONDITIONS), self.voi_size, self.spatial_dims, "generator_input")
        _check_cube(voi, 1, self.voi_size, self.spatial_dims, "voi")
        # MONAI returns the intermediate features followed by the output: keep the output.
        return self.net(torch.cat([generator_input, voi.to(generator_input.dtype)], dim=1))[-1]


class NoduleDiscriminator(nn.Module):
    """(nodule block (N, 1, box^d), conditions (N, 6)) -> one WGAN-GP critic score per sample, (N,).

    The block and its tiled conditions (7 channels) go through stride-2 4^d convolutions, width
    doubling per layer, down to a side of 4 or less, then a linear layer. LeakyReLU 0.2. No batch
    norm: WGAN-GP penalises the gradient of each sample's score w.r.t. that sample, which batch
    norm mixes across the batch. Layer norm (GroupNorm with one group) on all but the first layer,
    as Gulrajani et al. suggest, rather than instance norm: instance norm would subtract each
    channel's per-sample mean, i.e. the overall density that tells solid from ground-glass nodules.
    """

    def __init__(self, box: int = 32, width: int = 32, spatial_dims: int = 3):
        super().__init__()
        self.spatial_dims = _check_spatial_dims(spatial_dims)
        if box < 2:
            raise ValueError(f"box must be >= 2, got {box}")
        self.box = box
        layers, side, cin, cout = [], box, 1 + len(CONDITIONS), width
        while not layers or side > 4:
            layers.append(Convolution(spatial_dims, cin, cout, strides=2, kernel_size=4, padding=1, act=LEAKY,
                                      norm=LAYER_NORM if layers else None, adn_ordering="NDA"))
            side, cin, cout = (side - 2) // 2 + 1, cout, cout * 2  # 4^d kernel, stride 2, padding 1
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(cin * side ** spatial_dims, 1)

    def forward(self, block: torch.Tensor, conditions: torch.Tensor) -> torch.Tensor:
        _check_cube(block, 1, self.box, self.spatial_dims, "block")
        if conditions.shape != (block.shape[0], len(CONDITIONS)):
            raise ValueError(f"conditions must have shape ({block.shape[0]}, {len(CONDITIONS)}), "
                             f"got {tuple(conditions.shape)}")
        tiled = tile_conditions(conditions.to(block.dtype), tuple(block.shape[2:]))
        return self.score(self.features(torch.cat([block, tiled], dim=1)).flatten(1)).squeeze(1)


def context_layers(voi_size: int, most: int = 3) -> int:
    """The deepest PatchGAN (at most ``most`` stride-2 layers, pix2pix's 3) leaving >= 1 patch per side."""
    layers = most
    while layers > 1 and voi_size // 2 ** layers - 2 < 1:
        layers -= 1
    return layers


class MCGANDiscriminators(nn.Module):
    """Both discriminators in one module, ``.context`` and ``.nodule``, so one optimiser, one
    checkpoint entry and one DDP wrapper hold them. No ``forward``: the training step calls each.

    ``width`` is both first-layer widths (the presets use the same for both); the context
    PatchGAN gets ``layers`` stride-2 layers, by default the deepest up to 3 that the VOI allows
    (``context_layers``: 3 at 64^3 and 32^3, 2 at 16^3).
    """

    def __init__(self, voi_size: int = 64, box: int = 32, width: int = 32, layers: int | None = None,
                 spatial_dims: int = 3):
        super().__init__()
        layers = context_layers(voi_size) if layers is None else layers
        self.context = ContextDiscriminator(voi_size, width, layers, spatial_dims)
        self.nodule = NoduleDiscriminator(box, width, spatial_dims)
