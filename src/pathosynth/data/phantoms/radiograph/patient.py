"""What one patient keeps on both hips: size, femoral shape, bone density and body habitus."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Patient:
    head_radius: float      # mm
    offset: float           # femoral offset: head centre to shaft axis, mm
    neck_shaft: float       # degrees
    shaft_tilt: float       # anatomical axis against the image vertical, degrees
    bmd: float              # 0.2 (severe osteoporosis) .. 1.0 (young, dense)
    fat: float              # subcutaneous fat, mm
    body_depth: float       # AP soft-tissue thickness at the hip, mm
    lateral_skin: float     # skin this far lateral of the greater trochanter, mm
    ce_angle: float         # centre-edge angle of the acetabulum, degrees
    joint_space: float      # mm


def draw_patient(rng: np.random.Generator) -> Patient:
    return Patient(
        head_radius=float(np.clip(rng.normal(23.0, 1.6), 19.5, 27.0)),
        offset=float(np.clip(rng.normal(40.0, 3.5), 31.0, 49.0)),
        neck_shaft=float(np.clip(rng.normal(129.0, 4.5), 117.0, 142.0)),
        shaft_tilt=float(np.clip(rng.normal(7.0, 1.5), 3.0, 11.0)),
        bmd=float(rng.uniform(0.2, 1.0)),
        fat=float(rng.uniform(6.0, 40.0)),
        body_depth=float(rng.uniform(170.0, 250.0)),
        lateral_skin=float(rng.uniform(45.0, 100.0)),
        ce_angle=float(np.clip(rng.normal(31.0, 5.0), 18.0, 42.0)),
        joint_space=float(rng.uniform(2.0, 5.0)),
    )
