import csv

import numpy as np
import pytest

from pathosynth.data.importers.luna16 import read_annotations
from pathosynth.generate.placement import COLUMNS, NoduleAnnotation, write_luna16_csv
from tests.generate.placement.frames import oblique_scan


def test_annotations_round_trip_through_the_luna16_reader(tmp_path, chest):
    scan, nodules = chest
    tilted = oblique_scan()
    rows = [NoduleAnnotation.at_index(tilted, "1.2.3", np.array([10.5, 12.25, 30.0]), 7.5, "ggn"),
            NoduleAnnotation("1.2.4", nodules[0].world, nodules[0].diameter_mm, nodules[0].attenuation, False),
            {"seriesuid": "1.2.4", "world": (1.0, -2.0, -300.0), "diameter_mm": 22.0}]
    path = write_luna16_csv(tmp_path / "out" / "annotations.csv", rows)
    back = read_annotations(path)
    assert [n.seriesuid for n in back] == ["1.2.3", "1.2.4", "1.2.4"]
    # the first was placed by index on an oblique scan: its world centre is that index's
    np.testing.assert_allclose(tilted.world_to_index(np.array(back[0].world)), [10.5, 12.25, 30.0], atol=1e-5)
    np.testing.assert_allclose(back[1].world, nodules[0].world, atol=1e-6)
    assert [n.attenuation for n in back] == ["ggn", nodules[0].attenuation, None]
    assert [n.diameter_mm for n in back] == pytest.approx([7.5, nodules[0].diameter_mm, 22.0], abs=1e-4)
    with path.open(newline="") as handle:
        table = list(csv.DictReader(handle))
    assert tuple(table[0]) == COLUMNS
    assert [r["size"] for r in table] == ["small", "small", "large"]
    assert [r["synthetic"] for r in table] == ["true", "false", "true"]
    assert sorted(p.name for p in path.parent.iterdir()) == ["annotations.csv"]  # no temporary left


def test_a_bad_row_leaves_the_previous_file_untouched(tmp_path):
    path = write_luna16_csv(tmp_path / "a.csv", [NoduleAnnotation("1", (0.0, 0.0, 0.0), 5.0)])
    before = path.read_bytes()
    for bad in (NoduleAnnotation("1", (0.0, 0.0, 0.0), 5.0, "cavitary"),
                NoduleAnnotation("1", (float("nan"), 0.0, 0.0), 5.0), NoduleAnnotation("1", (0, 0, 0), 0.0)):
        with pytest.raises(ValueError):
            write_luna16_csv(path, [NoduleAnnotation("2", (1.0, 1.0, 1.0), 6.0), bad])
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]
