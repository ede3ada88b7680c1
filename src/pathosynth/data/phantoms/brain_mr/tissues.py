"""The tissue labels of the phantom's internal label map and their BraTS segmentation labels."""

from __future__ import annotations

import numpy as np

AIR, SKIN, FAT, MUSCLE, BONE, MARROW, CSF, GM, WM, DGM = range(10)
# The tumour tissues come last, so ``label >= OEDEMA`` is the test for tumour.
DURA, SINUS, CHOROID, WMH, OEDEMA, ENHANCING, NECROSIS, NONENH = range(10, 18)
TISSUE_NAMES = ("air", "skin", "fat", "muscle", "bone", "marrow", "csf", "grey_matter",
                "white_matter", "deep_grey", "dura", "venous_sinus", "choroid_plexus",
                "wm_hyperintensity", "oedema", "enhancing", "necrosis", "non_enhancing")
N_TISSUES = len(TISSUE_NAMES)

# BraTS labels: 1 necrotic or non-enhancing core, 2 oedema, 4 enhancing tumour.
SEG_OF_TISSUE = np.zeros(N_TISSUES, dtype=np.uint8)
SEG_OF_TISSUE[[NECROSIS, NONENH]] = 1
SEG_OF_TISSUE[OEDEMA] = 2
SEG_OF_TISSUE[ENHANCING] = 4
