"""The built-in chest CT phantom, written in the LUNA16 layout (size="tiny" keeps this fast)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from pathosynth.data.phantoms.chest_ct import (
    ATTENUATIONS,
    SLICE_THICKNESSES,
    Phantom,
    make_chest_ct,
    series_uid,
    write_luna16_layout,
)
from pathosynth.data.readers import read_image

SEED = 7
N_PATIENTS = 3
HEADER = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "attenuation"]


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("luna16")
    calls = []
    uids = write_luna16_layout(out, N_PATIENTS, SEED, size="tiny",
                               progress=lambda done, total: calls.append((done, total)))
    assert calls == [(i + 1, N_PATIENTS) for i in range(N_PATIENTS)]
    return out, uids


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "annotations.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def _all_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_exist_with_dicom_like_uids(layout):
    out, uids = layout
    assert uids == [series_uid(p, SEED) for p in range(N_PATIENTS)]
    assert len(set(uids)) == N_PATIENTS
    for uid in uids:
        assert re.fullmatch(r"1\.3\.6\.1\.4\.1\.99999\.\d+\.\d+", uid)
        assert (out / "subset0" / f"{uid}.mhd").is_file()
        assert (out / "subset0" / f"{uid}.raw").is_file()
    assert sorted(p.name for p in (out / "subset0").iterdir()) == sorted(
        [f"{u}.mhd" for u in uids] + [f"{u}.raw" for u in uids])


def test_metaimage_header_is_luna16_like(layout):
    out, uids = layout
    for uid in uids:
        header = dict(line.split(" = ", 1) for line in
                      (out / "subset0" / f"{uid}.mhd").read_text().splitlines())
        assert header["ElementType"] == "MET_SHORT"
        assert header["CompressedData"] == "False"
        assert [float(v) for v in header["TransformMatrix"].split()] == [1, 0, 0, 0, 1, 0, 0, 0, 1]
        assert header["ElementDataFile"] == f"{uid}.raw"
        dims = [int(v) for v in header["DimSize"].split()]
        assert (out / "subset0" / f"{uid}.raw").stat().st_size == 2 * int(np.prod(dims))


def test_annotations_header_and_values(layout):
    out, uids = layout
    with open(out / "annotations.csv", newline="") as handle:
        assert next(csv.reader(handle)) == HEADER
    rows = _rows(out)
    assert rows, "the test seed should give at least one nodule"
    for row in rows:
        assert row["seriesuid"] in uids
        assert row["attenuation"] in ATTENUATIONS
        assert 3.0 <= float(row["diameter_mm"]) <= 35.0
        for key in ("coordX", "coordY", "coordZ"):
            assert np.isfinite(float(row[key]))


def test_nodule_centres_map_onto_nodules(layout):
    out, uids = layout
    rows = _rows(out)
    assert rows
    for row in rows:
        image = read_image(out / "subset0" / f"{row['seriesuid']}.mhd")
        a = image.array.astype(float)
        world = np.array([float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])])
        index = image.world_to_index(world)  # array order: z, y, x
        assert np.all(index >= -0.5) and np.all(index <= np.array(a.shape) - 0.5), (row, index)
        iz, iy, ix = np.rint(index).astype(int)
        centre = a[iz, iy, ix]
        local = a[iz, max(iy - 1, 0):iy + 2, max(ix - 1, 0):ix + 2].mean()
        # normal lung around the nodule: a shell a few mm outside it, lung-range voxels only
        zz, yy, xx = np.indices(a.shape)
        dist = np.sqrt((((np.stack([zz, yy, xx], -1) - index) * np.array(image.spacing)) ** 2).sum(-1))
        radius = float(row["diameter_mm"]) / 2
        shell = (dist > radius + 3) & (dist < radius + 8) & (a < -600)
        assert shell.sum() > 10
        background = float(np.median(a[shell]))
        assert background < -700
        if row["attenuation"] in ("solid", "part-solid"):
            assert centre > -750, row
        assert local - background > 50, (row, local, background)


def test_hounsfield_range_is_plausible(layout):
    out, uids = layout
    for uid in uids:
        image = read_image(out / "subset0" / f"{uid}.mhd")
        a = image.array
        assert a.dtype == np.int16
        assert a.min() >= -1100
        assert a.max() <= 3071
        corners = np.concatenate([a[:, :4, :4].ravel(), a[:, :4, -4:].ravel()])
        assert abs(float(np.median(corners)) + 1000) < 40  # air outside the patient
        frac = lambda lo, hi: float(((a >= lo) & (a < hi)).mean())  # noqa: E731
        assert frac(-950, -750) > 0.05  # lung
        assert frac(-150, 100) > 0.05  # fat, muscle, heart, liver
        assert frac(250, 3072) > 0.002  # bone
        assert image.spacing[0] in SLICE_THICKNESSES


def test_same_seed_same_bytes_other_seed_other_bytes(layout, tmp_path):
    out, uids = layout
    again = tmp_path / "again"
    assert write_luna16_layout(again, N_PATIENTS, SEED, size="tiny") == uids
    assert _all_bytes(again) == _all_bytes(out)
    other = tmp_path / "other"
    other_uids = write_luna16_layout(other, 1, SEED + 1, size="tiny")
    assert other_uids != uids[:1]
    first = (out / "subset0" / f"{uids[0]}.raw").read_bytes()
    assert (other / "subset0" / f"{other_uids[0]}.raw").read_bytes() != first


def test_make_chest_ct_matches_written_file(layout):
    out, uids = layout
    image, nodules = make_chest_ct(SEED, 1, size="tiny")
    read = read_image(out / "subset0" / f"{uids[1]}.mhd")
    assert np.array_equal(read.array, image.array)
    assert np.allclose(read.spacing, image.spacing)
    assert np.allclose(read.origin, image.origin, atol=1e-3)
    assert np.allclose(read.direction, image.direction)
    assert len([r for r in _rows(out) if r["seriesuid"] == uids[1]]) == len(nodules)


def test_default_acquisition_varies_per_patient():
    spacings, thicknesses = set(), set()
    for patient in range(40):
        phantom = Phantom(np.random.default_rng([SEED, patient]), "default")
        nz, ny, nx = phantom.grid.shape
        sz, sy, sx = phantom.spacing_zyx
        assert 1.1 <= sx <= 1.5 and sx == sy
        assert sz in SLICE_THICKNESSES
        assert 280 <= nx * sx <= 320
        assert 145 <= nz * sz <= 205
        spacings.add(sx)
        thicknesses.add(sz)
    assert len(spacings) > 20 and len(thicknesses) >= 4


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError):
        write_luna16_layout(tmp_path, 1, 0, size="huge")
    with pytest.raises(ValueError):
        write_luna16_layout(tmp_path, -1, 0)
    with pytest.raises(ValueError):
        write_luna16_layout(tmp_path, 1, -3)
