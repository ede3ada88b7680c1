"""Brain metastases: several small, round, enhancing lesions with little oedema.

Haematogenous metastases lodge where arteries narrow, at the grey-white junction, so most
centres lie a few mm to ~2.5 cm below the brain's outer envelope; some are deep (basal ganglia,
deep white matter) and some in the cerebellum. Lesions are 3-26 mm across (log-uniform, so most
are small), round (little outline noise), solid-enhancing when small and mostly ring-enhancing
(a thin rim around a necrotic centre) from about 8 mm; their oedema is a thin collar, now and
then a wider one. They never touch each other, so on every slice each lesion is its own
connected component of the mask, and its box is that component's box.
"""

from __future__ import annotations

import numpy as np

from pathosynth.data.phantoms.brain_mr.head import Head

MAX_LESIONS = 20
DIAMETER_MM = (3.0, 26.0)
# Extra clearance between the outlines of two lesions (mm); the outline noise can swell a
# lesion to radius / 0.7 (see tumours.paint_tumours).
GAP_MM = 3.0
SWELL = 1.0 / 0.7


def plan_metastases(rng, head: Head) -> list[dict]:
    """Centre (head frame, mm), size and look of each metastasis; every patient has at least one."""
    count = min(1 + int(rng.negative_binomial(2.0, 0.22)), MAX_LESIONS)  # mean 8, median 7; 5% single
    min_r = max(DIAMETER_MM[0] / 2, 1.2 * max(head.vox))  # at least ~a voxel across
    gap = max(GAP_MM, 2.0 * max(head.vox))
    lesions: list[dict] = []
    for _ in range(count):
        radius = float(np.exp(rng.uniform(np.log(min_r), np.log(DIAMETER_MM[1] / 2))))
        look = _look(rng, radius)
        for _attempt in range(50):  # a crowded brain may not fit every lesion: drop the last
            centre = _site(rng, head, radius)
            if all(np.linalg.norm(centre - other["centre"]) > SWELL * (radius + other["radius"]) + gap
                   for other in lesions):
                lesions.append(dict(centre=centre, radius=radius, **look))
                break
    return lesions


def _look(rng, radius: float) -> dict:
    """Enhancement pattern, oedema, contrast and outline of one lesion."""
    ring = radius >= 4.0 and rng.random() < 0.75
    oedema = radius * rng.uniform(1.1, 1.5) + rng.uniform(0.0, 3.0)
    if rng.random() < 0.15:  # now and then oedema out of proportion to the lesion
        oedema = radius * rng.uniform(1.8, 2.6) + rng.uniform(2.0, 8.0)
    contrast = rng.uniform(0.6, 1.0) if rng.random() < 0.85 else rng.uniform(0.35, 0.6)
    return dict(kind="ring" if ring else "solid", rim_mm=rng.uniform(1.0, 2.5), oedema=oedema,
                contrast=contrast, necrosis=0.0, rough=rng.uniform(0.04, 0.15), push=rng.uniform(0.2, 0.5))


def _site(rng, head: Head, radius: float) -> np.ndarray:
    """A lesion centre: mostly at the grey-white junction, some deep, some in the cerebellum."""
    b_axes = np.asarray(head.brain_axes)
    while True:
        q = rng.normal(size=3)
        q /= np.linalg.norm(q)
        # No lesion in the midline fissure; the posterior fossa only behind the brainstem.
        if abs(q[2]) > 0.15 and q[0] > -0.8 and not (q[0] < -0.35 and q[1] < 0.2):
            break
    if rng.random() < 0.8:
        depth = rng.uniform(5.0, 25.0) + radius  # below the convexity: the grey-white junction
    else:
        depth = rng.uniform(25.0, 45.0)
    scale = max(1.0 - depth / float(b_axes.min()), 0.2)
    return q * scale * b_axes
