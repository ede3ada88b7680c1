"""Built-in brain MR phantoms with gliomas or metastases, written as BraTS-style case folders.

Each patient is a head built from smooth random fields: skin, subcutaneous fat, temporalis
muscle, a skull with dark cortical tables and patches of fatty diploe, extra-axial CSF, a folded
cortical grey-matter ribbon (sulci are the zero sheets of a radially stretched noise field),
white matter, deep grey nuclei, lateral and third ventricles with choroid plexus, the
interhemispheric fissure with the falx and the superior sagittal sinus, the Sylvian fissures,
and in the low slices a tentorium over a finely foliated cerebellum, the brainstem with the
fourth ventricle, the skull base with the orbits and the sphenoid sinus. The head's size, shape,
layer thicknesses, the ventricle size (atrophy) and the folding vary per patient, and the
anatomy changes along z (ventricles only in the middle slices).

Two cohorts (``COHORTS``), as the papers had two datasets:

- ``glioma`` (BraTS HGG, for classification): one high-grade glioma per patient, sometimes a
  second focus, with BraTS structure (necrotic or non-enhancing core, an irregular enhancing rim
  4-9 mm thick, vasogenic oedema that spreads along the white matter) pushing the ventricles and
  midline aside (``tumours.plan_gliomas``). Skull-stripped and registered (every head centred and
  upright), as BraTS is.
- ``metastases`` (for detection): several small, round, ring- or solid-enhancing lesions with
  little oedema, mostly at the grey-white junction (``metastases.plan_metastases``); the head
  keeps its skull and a random pose, as clinical scans do, and the seg marks only the lesions.

White-matter hyperintensities, enhancing venous sinuses and choroid plexus are look-alikes for a
classifier, and some tumours are faint.

The anatomy is computed once per patient as a tissue label per head voxel and then mapped to
each sequence's contrast (T1, contrast-enhanced T1, T2, FLAIR) with per-patient contrast
jitter, a faint 2-4 mm tissue texture, an in-plane partial-volume blur (0.75 mm) that softens
the label edges, a smooth multiplicative bias field and Rician noise. Air outside the head is
exactly 0, as in BraTS. The geometry is laid out for a 240 x 240 x 155 mm field and scaled to the
requested shape, so a small shape gives the same anatomy at a coarser resolution.

Arrays follow `pathosynth.data.image`: ``[z, y, x]``, z running inferior to superior, y anterior
to posterior (rows; anterior at the top of a plain display) and x right to left (columns: the
radiological display).

Modules, in the order a patient is built: ``head`` (shape, pose and the head voxels), ``anatomy``
(the label map: scalp and skull, then inside the dura ``surfaces`` for the fissures, ``cortex``,
``deep`` for nuclei, ventricles and brainstem, ``tumours`` or ``metastases``), ``contrast``
(labels to scanner values). ``fields`` and ``tissues`` are shared by all of them. Patient ``i``
is one stream of ``np.random.default_rng([seed, i, *cohort.stream])``, so the order of the draws
across these modules is part of the output: reordering them changes every file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pathosynth.data.image import MedicalImage
from pathosynth.data.phantoms.brain_mr.anatomy import label_map
from pathosynth.data.phantoms.brain_mr.contrast import (
    NOISE_LAGS,
    SEQUENCES,
    sequence_params,
    sequence_values,
)
from pathosynth.data.phantoms.brain_mr.fields import F32, smooth_field
from pathosynth.data.phantoms.brain_mr.head import Head
from pathosynth.data.phantoms.brain_mr.tissues import (
    ENHANCING,
    OEDEMA,
    SEG_OF_TISSUE,
    TISSUE_NAMES,
)
from pathosynth.data.writers import write_nifti

__all__ = ["CASE_PREFIX", "COHORTS", "SEQUENCES", "TISSUE_NAMES", "Cohort", "make_brain_patient",
           "tissue_map", "write_brats_cases"]


@dataclass(frozen=True)
class Cohort:
    """Which disease a set of phantom patients has, and how their cases are written."""

    disease: str  # "glioma" or "metastases": the tumour planner (anatomy.DISEASES)
    case_prefix: str
    skull_stripped: bool  # BraTS is skull-stripped; clinical metastasis scans are not
    registered: bool  # BraTS is rigidly registered to an atlas: every head centred and upright
    oedema_labelled: bool  # False: the seg marks only the lesions, one component per lesion
    stream: tuple[int, ...]  # appended to [seed, patient] to seed the patient's random stream


COHORTS = {
    "glioma": Cohort("glioma", "PHANTOM_BRAIN_", skull_stripped=True, registered=True, oedema_labelled=True,
                     stream=()),
    "metastases": Cohort("metastases", "PHANTOM_METS_", skull_stripped=False, registered=False,
                         oedema_labelled=False, stream=(1,)),
}
CASE_PREFIX = COHORTS["glioma"].case_prefix


def write_brats_cases(out_dir: Path, n_patients: int, seed: int, *,
                      shape: tuple[int, int, int] = (155, 240, 240),
                      sequences: Sequence[str] = SEQUENCES, disease: str = "glioma",
                      progress: Callable[[], object] | None = None) -> list[str]:
    """Write n_patients BraTS-style case folders under out_dir; return the case ids.

    Case ``PHANTOM_BRAIN_0007`` (gliomas; ``PHANTOM_METS_0007`` for metastases) is the folder
    ``out_dir/PHANTOM_BRAIN_0007/`` holding ``PHANTOM_BRAIN_0007_<sequence>.nii`` for each
    requested sequence and ``PHANTOM_BRAIN_0007_seg.nii`` (uint8, BraTS labels 0 background,
    1 necrotic/non-enhancing core, 2 oedema, 4 enhancing tumour; the metastasis seg leaves the
    oedema unlabelled). Images are int16, non-negative, air exactly 0, 1 mm spacing, ``[z, y, x]``
    with the plain direction; the glioma images are skull-stripped, as BraTS. Patient ``i`` draws
    only from ``np.random.default_rng([seed, i, *cohort.stream])``: the same seed writes
    byte-identical files, adding patients leaves the earlier ones unchanged, and a subset of
    sequences is the same images. ``progress`` is called once per finished patient.
    """
    if disease not in COHORTS:
        raise ValueError(f"disease must be one of {sorted(COHORTS)}, got {disease!r}")
    cohort = COHORTS[disease]
    out_dir = Path(out_dir)
    shape = tuple(int(s) for s in shape)
    if len(shape) != 3 or min(shape) < 8:
        raise ValueError(f"shape must be three sizes of at least 8, got {shape}")
    sequences = tuple(sequences)
    if any(s not in SEQUENCES for s in sequences) or len(set(sequences)) != len(sequences):
        raise ValueError(f"sequences must be distinct names from {SEQUENCES}, got {sequences}")
    if n_patients < 0:
        raise ValueError(f"n_patients must be >= 0, got {n_patients}")
    width = max(4, len(str(max(n_patients - 1, 0))))
    case_ids = []
    for index in range(n_patients):
        case = f"{cohort.case_prefix}{index:0{width}d}"
        images, seg = make_brain_patient(np.random.default_rng([seed, index, *cohort.stream]), shape, sequences,
                                         cohort)
        case_dir = out_dir / case
        case_dir.mkdir(parents=True, exist_ok=True)
        for name in sequences:
            write_nifti(case_dir / f"{case}_{name}.nii",
                        MedicalImage(images.pop(name), spacing=(1.0, 1.0, 1.0)))
        write_nifti(case_dir / f"{case}_seg.nii", MedicalImage(seg, spacing=(1.0, 1.0, 1.0)))
        del seg
        case_ids.append(case)
        if progress is not None:
            progress()
    return case_ids


def make_brain_patient(rng: np.random.Generator, shape: tuple[int, int, int],
                       sequences: Sequence[str] = SEQUENCES, cohort: Cohort = COHORTS["glioma"]
                       ) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One patient: ``{sequence: int16 [z, y, x]}`` and the uint8 BraTS segmentation ``[z, y, x]``.

    The arrays are Fortran-ordered views (x fastest in memory, the NIfTI layout), which the
    NIfTI writer stores without a transposing copy.
    """
    head = Head(rng, shape, cohort.registered)
    labels, blend, stripped = label_map(rng, head, cohort.disease)
    params = sequence_params(rng)
    bias = [head.field(rng, 90.0) for _ in range(2)]
    texture = head.field(rng, 6.0)  # faint tissue heterogeneity, the same on every sequence
    noise = rng.standard_normal(labels.size + NOISE_LAGS, dtype=F32)
    # Fine texture at 2-4 mm on the crop box, applied before the partial-volume blur.
    grain = smooth_field(rng, head.crop_shape, head.vox, 2.5)

    out_index = head.output_index()
    seg = np.zeros(shape[::-1], dtype=np.uint8)
    tumour = np.nonzero(labels >= (OEDEMA if cohort.oedema_labelled else ENHANCING))[0]
    seg.ravel()[out_index[tumour]] = SEG_OF_TISSUE[labels[tumour]]

    labels3 = np.zeros(head.crop_shape, dtype=np.uint8)
    labels3.ravel()[head.flat] = labels
    images = {}
    for name in sequences:
        values = sequence_values(params[name], labels3, labels, blend, head, bias, texture,
                                 noise, grain)
        if cohort.skull_stripped:
            values[~stripped] = 0
        out = np.zeros(shape[::-1], dtype=np.int16)
        out.ravel()[out_index] = values
        images[name] = out.T
    return images, seg.T


def tissue_map(seed: int, index: int, shape: tuple[int, int, int] = (155, 240, 240),
               disease: str = "glioma") -> np.ndarray:
    """The uint8 tissue labels ``[z, y, x]`` of patient ``index`` of ``seed`` (see TISSUE_NAMES).

    Ground truth for checks and debugging: it repeats the patient's anatomy draws and stops
    before the images. Skull-stripped voxels keep their labels.
    """
    shape = tuple(int(s) for s in shape)
    cohort = COHORTS[disease]
    rng = np.random.default_rng([seed, index, *cohort.stream])
    head = Head(rng, shape, cohort.registered)
    labels, _, _ = label_map(rng, head, disease)
    out = np.zeros(shape[::-1], dtype=np.uint8)
    out.ravel()[head.output_index()] = labels
    return out.T
