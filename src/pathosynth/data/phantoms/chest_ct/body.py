"""The body outline and wall (skin, subcutaneous fat, chest-wall muscle) and the patient table.

Shapes are functions of the polar angle around the body axis, given as (cos, sin) arrays;
``sin < 0`` is anterior."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .geometry import superellipse_radius

if TYPE_CHECKING:
    from .phantom import Phantom


@dataclass(frozen=True)
class Habitus:
    """Body build of one patient. Lengths are mm, already scaled by `k`."""

    k: float
    half_width: float
    half_depth_front: float
    half_depth_back: float
    squareness: float  # superellipse exponent: 2 is an ellipse
    wobble: list  # (amplitude, order, phase) of small harmonic dents in the outline
    fat0: float  # typical subcutaneous fat thickness
    fat_wobble: tuple[float, float]
    pectoral: float
    paraspinal: float

    @classmethod
    def draw(cls, rng: np.random.Generator, k: float) -> Habitus:
        def U(a: float, b: float) -> float:
            return float(rng.uniform(a, b))

        def N(sd: float) -> float:
            return float(rng.normal(0.0, sd))

        # one latent "build" drives body size and subcutaneous fat
        build = U(0, 1)

        def jitter(sd):
            return min(1.0, max(0.0, build + N(sd)))

        half_width = (118 + 22 * jitter(0.15)) * k
        half_depth_front = (94 + 16 * jitter(0.2)) * k
        half_depth_back = (90 + 16 * jitter(0.2)) * k
        squareness = U(2.0, 2.6)
        wobble = [(N(0.012), m, U(0, 2 * np.pi)) for m in range(2, 6)]
        fat0 = (4 + 22 * build ** 1.3 + U(0, 4)) * k
        fat_wobble = (U(0, 0.2), U(0, 2 * np.pi))
        pectoral = U(4, 10)
        paraspinal = U(26, 34)
        return cls(k, half_width, half_depth_front, half_depth_back, squareness, wobble, fat0,
                   fat_wobble, pectoral, paraspinal)

    def body_radius(self, cos_t, sin_t):
        R = superellipse_radius(cos_t, sin_t, self.half_width, self.half_depth_front,
                                self.half_depth_back, self.squareness)
        th = np.arctan2(sin_t, cos_t)
        w = 1.0
        for amp, m, ph in self.wobble:
            w = w + amp * np.cos(m * th + ph)
        return R * w

    def fat_thickness(self, cos_t, sin_t):
        lat = cos_t * cos_t
        ant = np.maximum(0, -sin_t)
        post = np.maximum(0, sin_t)
        th = np.arctan2(sin_t, cos_t)
        amp, ph = self.fat_wobble
        t = self.fat0 * (0.75 + 0.45 * lat + 0.15 * post - 0.3 * ant * (1 - lat)
                         + amp * np.cos(2 * th + ph))
        return np.maximum(t, 2 * self.k)

    def wall_thickness(self, cos_t, sin_t):
        ant = np.maximum(0, -sin_t)
        post = np.maximum(0, sin_t)
        pect = self.pectoral * ant * np.abs(cos_t) * 2  # pectoral muscles, anterolateral
        back = 8 * post ** 2 + self.paraspinal * post ** 10  # thickest at the midline
        return (11 + pect + back) * self.k


def cavity_radius_at(ph: Phantom, theta: float, zi: int) -> float:
    """Radius of the rib cage's inner surface at polar angle theta on slice zi."""
    hab = ph.habitus
    c, s = np.array(np.cos(theta)), np.array(np.sin(theta))
    R = float(hab.body_radius(c, s))
    T = float(hab.fat_thickness(c, s) + hab.wall_thickness(c, s))
    return float(ph.gc[zi]) * (float(ph.gb[zi]) * R - T)


def draw_body(ph: Phantom) -> None:
    """Paint skin, fat and muscle; keep the polar maps and the depth inside the rib cage
    (`cav_depth`, > 0 inside) for the organs drawn later."""
    g, k, hab = ph.grid, ph.k, ph.habitus
    U = ph.uniform
    X, Y = g.X, g.Y
    s = g.Z / np.float32(ph.Lz)
    ph.s = s
    r2 = np.hypot(X[None, :], Y[:, None]).astype(np.float32)
    rs = np.maximum(r2, np.float32(1e-3))
    cos_t, sin_t = X[None, :] / rs, Y[:, None] / rs
    ph.r2, ph.cos_t, ph.sin_t = r2, cos_t, sin_t
    R = hab.body_radius(cos_t, sin_t).astype(np.float32)
    ph.gb = (1 + U(0.0, 0.07) * (s - 0.5)).astype(np.float32)  # wider towards the axillae
    # the cavity (rib cage) narrows towards the first ribs; the wall thickens there
    ph.gc = (1 - 0.15 * np.clip((s - 0.7) / 0.3, 0, 1) ** 2).astype(np.float32)
    ph.y_flat = hab.half_depth_back * U(0.9, 0.97)
    t_fat = hab.fat_thickness(cos_t, sin_t).astype(np.float32)
    t_wall = hab.wall_thickness(cos_t, sin_t).astype(np.float32)
    ph.R2d, ph.T2d, ph.W2d = R, t_fat + t_wall, t_wall

    depth = ph.gb[:, None, None] * R[None]  # body surface radius, then depth below it
    cav = depth - (t_fat + t_wall)[None]
    cav *= ph.gc[:, None, None]
    cav -= r2[None]
    ph.cav_depth = cav
    depth -= r2[None]
    np.minimum(depth, (ph.y_flat - Y)[None, :, None], out=depth)  # flat back on the table

    img = ph.img
    body = depth > 0
    ph.body = body
    img[body] = 40.0 + ph.normal(3)  # skin
    ph.fat_hu = -95 + ph.normal(6)
    img[depth > 1.8 * k] = ph.fat_hu
    ph.muscle_hu = 45 + ph.normal(4)
    img[depth > t_fat[None]] = ph.muscle_hu
    # fat planes between the superficial and the deep muscles, posterolaterally
    back = slice(int(np.searchsorted(Y, 0.0)), None)
    plane = np.abs(depth[:, back] - (t_fat + 0.45 * t_wall)[None, back]) < 1.2 * k
    plane &= (np.maximum(sin_t, 0) * np.abs(cos_t) > 0.25)[None, back]
    plane &= cav[:, back] < -4 * k
    img[:, back][plane] = ph.fat_hu * 0.8


def draw_table(ph: Phantom) -> None:
    """The patient table: a curved carbon board with dense skins and a foam core."""
    g, k = ph.grid, ph.k
    U = ph.uniform
    X, Y = g.X, g.Y
    xs = X / (150 * k)
    top = ph.y_flat + U(1, 4) * k - U(4, 10) * k * xs ** 2  # curves up at the sides
    thick = U(14, 26) * k * (1 - 0.35 * xs ** 2)
    yy = Y[:, None] - top[None, :]
    table = np.full((g.shape[1], g.shape[2]), np.nan, dtype=np.float32)
    table[(yy >= 0) & (yy < 3 * k)] = -900  # thin mattress
    board = (yy >= 3 * k) & (yy < 3 * k + thick[None, :])
    table[board] = -940
    skin = U(1.5, 2.5) * k
    table[board & ((yy < 3 * k + skin) | (yy >= 3 * k + thick[None, :] - skin))] = U(100, 350)
    rows = np.flatnonzero(~np.isnan(table).all(axis=1))
    if len(rows):
        # fancy indexing copies: write the rows back after painting them
        sub = ph.img[:, rows]
        t = table[rows]
        np.copyto(sub, t[None], where=~np.isnan(t)[None] & ~ph.body[:, rows])
        ph.img[:, rows] = sub
