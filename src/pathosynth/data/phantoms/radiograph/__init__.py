"""A two-class hip radiograph phantom: AP hip crops with and without a proximal femoral fracture.

Each image is a projection: 2D path lengths through analytic shapes (a femur built from a sphere,
a tapered neck, trochanters and a tubular shaft with cortex, trabecular texture and a marrow canal;
a hemipelvis with acetabular roof, teardrop, pubic and ischial rami around the obturator foramen;
a soft-tissue body with a subcutaneous fat layer, fat planes and bowel gas) are turned into line
integrals of attenuation, then into a processed radiograph: quantum noise, detector blur, dynamic
range compression, a film-like look-up table and 12-bit detector values (0..4095), bone bright.

Every image shows a *left* hip in the usual display (patient's right on the viewer's left), so the
femoral head is on the left of the crop and the greater trochanter on the right; the right hip of a
patient is drawn as its mirror image, as hip-fracture papers do before training.

Fractures (femoral neck: subcapital to basicervical; intertrochanteric) are made by cutting the
femur along a jagged line into a proximal and a distal fragment and moving the distal one: a
displaced fracture (about 42%) shortens and angulates, an impacted one (28%) pushes the fragments
into each other (a sclerotic band), a subtle one (30%) leaves a hairline gap of a fraction of a
millimetre. A fracture plane oblique to the beam projects as a band rather than a line, so many
subtle fractures are barely visible. Normal hips carry look-alikes (the physeal scar, the
intertrochanteric crest, fat planes crossing the neck, the leg's rotation), so the label cannot be
read off one simple cue; a small CNN at 64 px finds most displaced and impacted fractures and few
of the subtle ones.

Modules, in the order an image is made: ``patient`` (per-patient anatomy), ``femur`` and
``trabecular`` (the femur's shape, texture and look-alikes), ``fracture`` (the cut and the moved
fragment), ``pelvis``, ``soft_tissue``, ``render`` (one crop's line integrals) and ``exposure``
(detector and display).
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Callable

import numpy as np

from pathosynth.data.phantoms.radiograph.patient import draw_patient
from pathosynth.data.phantoms.radiograph.render import FOV_MM, render_hip
from pathosynth.data.writers import write_png

__all__ = ["FOV_MM", "write_folder_layout"]

_P_TWO_IMAGES = 0.7         # a patient gives a left and a right crop, otherwise one of them
_P_FRACTURE_PATIENT = 0.58  # a patient with a fracture has it on one side: about 34% of images


def write_folder_layout(out_dir: Path, n_patients: int, seed: int, *, size: int = 256,
                        progress: Callable[[], object] | None = None) -> list[str]:
    """Write hip radiographs as PNG files plus out_dir/labels.csv; return the patient ids.

    ``out_dir/images/P0003_left.png`` etc. are 16-bit grey PNGs with 12-bit values (0..4095).
    ``labels.csv`` has the columns ``file,label,patient_id,boxes``: the file relative to out_dir,
    ``normal`` or ``fracture``, ``PHANTOM_HIP_0003``, and for fractures the box
    ``x0,y0,x1,y1`` (columns, rows; x1 and y1 exclusive) around the fracture line, several boxes
    separated by ``;``. Patient ``i`` draws only from ``np.random.default_rng([seed, i])``, so
    the same seed gives byte-identical files. ``progress`` is called with no arguments once per
    patient.
    """
    if isinstance(n_patients, bool) or not isinstance(n_patients, (int, np.integer)) or n_patients < 0:
        raise ValueError(f"n_patients must be a non-negative integer, got {n_patients!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 16:
        raise ValueError(f"size must be an integer of at least 16 pixels, got {size!r}")
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, str, str]] = []
    ids: list[str] = []
    for index in range(int(n_patients)):
        rng = np.random.default_rng([int(seed), index])
        patient_id = f"PHANTOM_HIP_{index:04d}"
        patient = draw_patient(rng)
        sides = ["left", "right"] if rng.random() < _P_TWO_IMAGES else [str(rng.choice(["left", "right"]))]
        fractured_side = str(rng.choice(sides)) if rng.random() < _P_FRACTURE_PATIENT else None
        for side in sides:
            image, boxes = render_hip(rng, patient, side, side == fractured_side, int(size))
            name = f"images/P{index:04d}_{side}.png"
            write_png(out_dir / name, image)
            label = "fracture" if boxes else "normal"
            rows.append((name, label, patient_id, ";".join(",".join(str(v) for v in b) for b in boxes)))
        ids.append(patient_id)
        if progress is not None:
            progress()
    with open(out_dir / "labels.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["file", "label", "patient_id", "boxes"])
        writer.writerows(rows)
    return ids
