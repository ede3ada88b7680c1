"""The geometry of putting a generated nodule into a real scan (3D MCGAN, METHODS.md section 4).

Positions (`position`), moving 1 mm blocks between a scan and the generator's grid (`voi`), where
nodules may go (`lungs`) and how placed nodules are annotated (`annotations`). The generator
itself is not here: callers pass its output (a block in HU) to `paste_block`. Positions between
these functions are continuous array-order indices ``(z, y, x)`` of the scan; users type
``x,y,z`` voxels or ``x,y,z,world`` LPS mm, converted once by `parse_position`.
"""

from .annotations import COLUMNS, NoduleAnnotation, write_luna16_csv
from .lungs import (AIR_LIKE_HU, check_inside_lungs, distance_to_boundary_mm, lung_mask,
                    random_lung_positions)
from .position import (check_spacing, describe_extent, format_position, is_inside, jitter_position,
                       parse_position, position_units)
from .voi import extract_voi, nodule_box, paste_block

__all__ = ["AIR_LIKE_HU", "COLUMNS", "NoduleAnnotation", "check_inside_lungs", "check_spacing",
           "describe_extent", "distance_to_boundary_mm", "extract_voi", "format_position", "is_inside",
           "jitter_position", "lung_mask", "nodule_box", "parse_position", "paste_block",
           "position_units", "random_lung_positions", "write_luna16_csv"]
