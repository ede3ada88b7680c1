"""The pulmonary trees: arteries with their bronchi from each hilum, veins from the left
atrium, grown generation by generation inside the lung mask."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .geometry import unit

if TYPE_CHECKING:
    from .phantom import Phantom

# root directions of the lobar and segmental arteries and of the pulmonary veins, for the
# left lung (x is mirrored on the right); y is posterior, z superior
_ARTERY_ROOTS = np.array([(0.45, -0.15, 0.9), (0.8, -0.55, -0.25), (0.45, 0.35, -0.85),
                          (0.6, 0.8, -0.05), (0.7, -0.2, 0.35), (0.5, -0.6, 0.5),
                          (0.3, 0.9, -0.45), (0.35, 0.85, 0.35)])
_ARTERY_RADII = np.array([4.4, 3.4, 4.8, 3.4, 3.0, 3.0, 3.6, 3.2])
_VEIN_ROOTS = np.array([(0.7, -0.3, 0.65), (0.75, 0.2, -0.6), (0.95, -0.25, -0.1),
                        (0.6, 0.7, -0.2), (0.3, 0.9, -0.5)])
_VEIN_RADII = np.array([4.2, 4.6, 3.4, 3.2, 3.6])


def grow_trees(ph: Phantom) -> None:
    """Set `lung_vessels` (p0, p1, r0, r1) and `lung_airways` (p0, p1, r0, r1, wall): arrays
    of tube pieces."""
    k, kz = ph.k, ph.kz
    rng = ph.rng
    zf = min(1.0, kz / k)
    vessels, airways = [], []

    def fan(n, sgn, r_lo, r_hi):
        """n random root directions spread over the lateral half-space of one side."""
        d = rng.normal(0, 1, (n, 3))
        d[:, 0] = sgn * np.abs(d[:, 0]) * 0.8
        d[:, 1] += 0.6  # the dependent, posterior lung is the largest part
        d[:, 2] = (d[:, 2] - 0.3) * zf
        return unit(d), rng.uniform(r_lo, r_hi, n) * k

    for side, sgn in (("R", -1), ("L", 1)):
        lobar = _ARTERY_ROOTS.copy()
        lobar[:, 0] *= sgn
        lobar[:, 2] *= zf
        d0 = unit(lobar + rng.normal(0, 0.12, lobar.shape))
        r0 = _ARTERY_RADII * k * rng.uniform(0.9, 1.1, 8)
        d1, r1 = fan(int(rng.integers(16, 22)), sgn, 1.5, 2.8)
        dirs, radii = np.concatenate([d0, d1]), np.concatenate([r0, r1])
        roots = [(ph.hila[side], d, float(r), ph.main_bronchi[side])
                 for d, r in zip(dirs, radii)]
        v, a = _grow(ph, roots, bronchi=True)
        vessels.append(v)
        airways.append(a)
        veins = _VEIN_ROOTS.copy()
        veins[:, 0] *= sgn
        veins[:, 2] *= zf
        d0 = unit(veins + rng.normal(0, 0.12, veins.shape))
        r0 = _VEIN_RADII * k * rng.uniform(0.9, 1.1, 5)
        d1, r1 = fan(int(rng.integers(12, 18)), sgn, 1.5, 2.8)
        la = ph.left_atrium + np.array([sgn * 10 * k, 0, 0])
        dirs, radii = np.concatenate([d0, d1]), np.concatenate([r0, r1])
        v, _ = _grow(ph, [(la, d, float(r), None) for d, r in zip(dirs, radii)], bronchi=False)
        vessels.append(v)
    ph.lung_vessels = tuple(np.concatenate([v[i] for v in vessels]) for i in range(4))
    ph.lung_airways = tuple(np.concatenate([a[i] for a in airways]) for i in range(5))


def _grow(ph: Phantom, roots, bronchi: bool):
    """Grow branching tube trees from mediastinal roots into the lung, one generation at a
    time for all tips together. Bronchi run beside the arteries, continuous across branches.
    Returns vessel pieces (p0, p1, r0, r1) and airway pieces (p0, p1, r0, r1, wall) as
    arrays."""
    rng, g, k = ph.rng, ph.grid, ph.k
    lung = ph.lung
    vessels: tuple[list, ...] = ([], [], [], [])
    airways: tuple[list, ...] = ([], [], [], [], [])
    vp0, vp1, vr0, vr1 = vessels
    ap0, ap1, ar0, ar1, aw = airways
    # live tips: position, direction, radius, bronchus position, bronchus side vector
    P, D, R, B, W = _root_tips(ph, roots, bronchi, vessels, airways)
    bounces = np.zeros(len(P), dtype=int)
    r_min = 0.4
    total = 0
    for _gen in range(80):
        n = len(P)
        if n == 0 or total > 16000:
            break
        L = np.clip(R * rng.uniform(2.0, 3.5, n) + 1.5, 2.0, 20 * k)
        q = P + D * L[:, None]
        mid = P + D * (0.5 * L)[:, None]
        in_mid = g.lookup(lung, mid)
        ok = in_mid & g.lookup(lung, q)
        keep = ok
        r_end = R * 0.96
        perp = W - (W * D).sum(1, keepdims=True) * D
        bend = q + unit(perp) * (1.9 * R + 0.6)[:, None]
        idx = np.flatnonzero(keep)
        vp0.append(P[idx]), vp1.append(q[idx]), vr0.append(R[idx]), vr1.append(r_end[idx])
        if bronchi:
            rb = 0.9 * R[idx]
            wall = np.maximum(0.5, 0.2 * rb)
            sel = rb - wall >= 0.6
            j = idx[sel]
            ap0.append(B[j]), ap1.append(bend[j])
            ar0.append(rb[sel]), ar1.append(0.95 * rb[sel])
            aw.append(wall[sel])
        total += len(idx)
        # tips that would leave the lung turn back inwards (twice at most) or end
        turn = ~ok & (bounces < 2)
        Pt, Rt, Wt, Bt, bt = P[turn], R[turn] * 0.9, W[turn], B[turn], bounces[turn] + 1
        inward = -unit(Pt - _tree_centre(ph, Pt))
        Dt = unit(0.4 * D[turn] + inward + rng.normal(0, 0.5, Pt.shape))
        # branching: a major continuation and a minor side branch
        m = len(idx)
        Pn, Dn, Rn = q[idx], D[idx], r_end[idx]
        Wn, Bn = W[idx], bend[idx]
        e = unit(np.cross(Dn, rng.normal(0, 1, (m, 3))))
        a1 = np.radians(rng.uniform(5, 25, m))[:, None]
        a2 = np.radians(rng.uniform(35, 75, m))[:, None]
        outward = unit(Pn - _tree_centre(ph, Pn))
        d1 = unit(Dn * np.cos(a1) + e * np.sin(a1) + 0.2 * outward)
        d2 = unit(Dn * np.cos(a2) - e * np.sin(a2) + 0.2 * outward)
        r1 = Rn * rng.uniform(0.88, 0.97, m)
        r2 = Rn * rng.uniform(0.5, 0.75, m)
        P = np.concatenate([Pn, Pn, Pt])
        D = np.concatenate([d1, d2, Dt])
        R = np.concatenate([r1, r2, Rt])
        W = np.concatenate([Wn, Wn, Wt])
        B = np.concatenate([Bn, Bn, Bt])
        bounces = np.concatenate([bounces[idx], np.zeros(m, dtype=int), bt])
        live = R >= r_min
        P, D, R, W, B, bounces = P[live], D[live], R[live], W[live], B[live], bounces[live]
    return ((_stack(vp0, 3), _stack(vp1, 3), _stack(vr0, 1), _stack(vr1, 1)),
            (_stack(ap0, 3), _stack(ap1, 3), _stack(ar0, 1), _stack(ar1, 1), _stack(aw, 1)))


def _root_tips(ph: Phantom, roots, bronchi: bool, vessels: tuple[list, ...], airways: tuple[list, ...]):
    """The root pieces across the hila (appended to `vessels` and `airways`) and the tips they
    leave inside the lung: positions, directions, radii, bronchus positions, bronchus side vectors."""
    rng, g, k = ph.rng, ph.grid, ph.k
    vp0, vp1, vr0, vr1 = vessels
    ap0, ap1, ar0, ar1, aw = airways
    P, D, R, B, W = [], [], [], [], []
    ts = np.arange(0, 36 * k, 1.5 * k)
    for start, d, r, bstart in roots:
        # march along d until well inside the lung: the root piece crosses the hilum; a
        # direction that does not reach the lung soon is swung round (a few tries)
        for _try in range(6):
            pts = start[None] + ts[:, None] * d[None]
            ok = g.lookup(ph.lung, pts) & g.lookup(ph.lung, pts + 4 * k * d[None])
            hit = np.flatnonzero(ok)
            if len(hit):
                break
            d = unit(d + rng.normal(0, 0.6, 3))
        else:
            continue
        end = pts[hit[0]] + 2 * k * d
        vp0.append(start[None]), vp1.append(end[None]), vr0.append([r * 1.1]), vr1.append([r])
        w = unit(np.cross(d, [0.0, 0.0, 1.0]) + rng.normal(0, 0.3, 3))
        off = unit(w - np.dot(w, d) * d) * (1.9 * r + 0.6)
        if bronchi and bstart is not None and r > 1.2:
            ap0.append(bstart[None]), ap1.append((end + off)[None])
            ar0.append([1.2 * r]), ar1.append([0.95 * r]), aw.append([max(0.6, 0.2 * r)])
        P.append(end)
        D.append(d)
        R.append(r)
        B.append(end + off)
        W.append(w)
    return tuple(np.array(a, dtype=float) for a in (P, D, R, B, W))


def _stack(parts: list, width: int) -> np.ndarray:
    """Pieces appended generation by generation, as one array ((N, 3) points or (N,) radii)."""
    if not parts:
        return np.zeros((0, 3) if width == 3 else (0,))
    return np.concatenate([np.asarray(a, dtype=float).reshape(-1, width) for a in parts]
                          ).reshape((-1, 3) if width == 3 else (-1,))


def _tree_centre(ph: Phantom, pts: np.ndarray) -> np.ndarray:
    """The hilum on each point's side: what "inward" and "outward" mean for a tip."""
    left = pts[:, 0] >= ph.x_mid
    return np.where(left[:, None], ph.hila["L"][None], ph.hila["R"][None])
