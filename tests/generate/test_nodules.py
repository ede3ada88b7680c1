"""Placing 3D MCGAN nodules into whole CT scans, from the CLI: files, geometry, annotations, errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

from pathosynth.config import make_config
from pathosynth.data.importers.luna16 import read_annotations
from pathosynth.data.readers import read_image
from pathosynth.data.writers import write_image
from pathosynth.generate.placement import lung_mask
from pathosynth.training.loop import train


def run(*args):
    return subprocess.run([sys.executable, "-m", "pathosynth", *args], capture_output=True, text=True, timeout=600)


def _assert_clean_failure(result, *needles):
    assert result.returncode == 1, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert "Traceback" not in result.stderr and len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def mcgan_run(tiny_chest, tmp_path_factory):
    return train(make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), steps=4),
                 tmp_path_factory.mktemp("mcgan") / "run", progress=False)


@pytest.fixture(scope="module")
def scan_path(tiny_chest):
    return sorted((tiny_chest[1] / "subset0").glob("*.mhd"))[0]


def _lung_voxel_xyz(path):
    """A voxel well inside the lungs, as x,y,z text (an independent pick: the deepest lung voxel)."""
    from scipy import ndimage

    scan = read_image(path)
    depth = ndimage.distance_transform_edt(lung_mask(scan), sampling=scan.spacing)
    z, y, x = np.unravel_index(int(np.argmax(depth)), depth.shape)
    return f"{x},{y},{z}", np.array([z, y, x])


def test_a_nodule_is_placed_at_the_voxel_asked_for_in_a_scan_of_the_same_format_and_geometry(
        tmp_path, mcgan_run, scan_path):
    at, index = _lung_voxel_xyz(scan_path)
    out = tmp_path / "placed"
    result = run("generate", str(mcgan_run), "--ct", str(scan_path), "--at", at, "--size", "medium",
                 "--attenuation", "ggn", "--out", str(out), "--quiet")
    assert result.returncode == 0, result.stderr
    volumes = list(out.glob("*.mhd"))
    assert len(volumes) == 1 and (out / "preview.png").is_file()
    source_uid = scan_path.stem
    assert source_uid not in volumes[0].name and volumes[0].name.startswith("2.25.")  # no source identifier
    header = volumes[0].with_suffix(".mhd").read_text()
    assert "SYNTHETIC" in header and source_uid not in header
    before, after = read_image(scan_path), read_image(volumes[0])
    assert after.array.shape == before.array.shape and after.array.dtype == before.array.dtype
    np.testing.assert_allclose(after.spacing, before.spacing)
    np.testing.assert_allclose(after.origin, before.origin)
    np.testing.assert_allclose(after.direction, before.direction)
    record = json.loads((out / "nodules.json").read_text())
    nodule = record["scans"][0]["nodules"][0]
    assert (nodule["size"], nodule["attenuation"]) == ("medium", "ggn")
    assert record["synthetic"] is True and len(record["checkpoint_sha256"]) == 64
    # only the pasted box changed
    x0, y0, z0, x1, y1, z1 = nodule["pasted_box"]
    outside = np.ones(before.array.shape, bool)
    outside[z0:z1, y0:y1, x0:x1] = False
    assert np.array_equal(after.array[outside], before.array[outside])
    assert not np.array_equal(after.array[~outside], before.array[~outside])
    # the annotation's world centre is the requested voxel, and its box contains it
    (annotation,) = read_annotations(out / "annotations.csv")
    np.testing.assert_allclose(annotation.world, before.index_to_world(index), atol=1e-4)
    bx0, by0, bz0, bx1, by1, bz1 = nodule["box"]
    assert bx0 <= index[2] < bx1 and by0 <= index[1] < by1 and bz0 <= index[0] < bz1


def test_world_and_voxel_positions_place_the_same_nodule_and_the_same_seed_the_same_voxels(
        tmp_path, mcgan_run, scan_path):
    at, index = _lung_voxel_xyz(scan_path)
    world = read_image(scan_path).index_to_world(index)
    outputs = {}
    for name, position, seed in (("voxel", at, "0"), ("world", ",".join(f"{v:.6f}" for v in world) + ",world", "0"),
                                 ("other-seed", at, "1")):
        out = tmp_path / name
        result = run("generate", str(mcgan_run), "--ct", str(scan_path), "--at", position, "--size", "small",
                     "--attenuation", "solid", "--seed", seed, "--out", str(out), "--quiet")
        assert result.returncode == 0, result.stderr
        outputs[name] = read_image(next(out.glob("*.mhd"))).array
    assert np.array_equal(outputs["voxel"], outputs["world"])
    assert not np.array_equal(outputs["voxel"], outputs["other-seed"])


def _sources(source_map):
    """synthetic uid -> (source series uid, copy), from the source map (OUT itself names no source)."""
    return {link["synthetic_uid"]: (link["source_uid"], link["copy"])
            for link in json.loads(source_map.read_text())["scans"]}


def test_a_luna16_folder_is_augmented_k_fold_at_jittered_real_positions_and_reimports(
        tmp_path, mcgan_run, tiny_chest):
    from pathosynth.generate.nodules import augment_scans

    raw = tiny_chest[1]
    real = read_annotations(raw / "annotations.csv")
    scans_with_nodules = {n.seriesuid for n in real}
    out = tmp_path / "augmented"
    augment_scans(mcgan_run, raw, out, copies=2, source_map=tmp_path / "map.json", progress=False)
    assert len(list((out / "subset0").glob("*.mhd"))) == 2 * len(scans_with_nodules)
    made = read_annotations(out / "annotations.csv")
    assert len(made) == 2 * len(real)
    record = json.loads((out / "nodules.json").read_text())
    sources = _sources(tmp_path / "map.json")
    assert sorted(sources.values()) == sorted((uid, copy) for uid in scans_with_nodules for copy in (0, 1))
    for scan in record["scans"]:
        source = sources[scan["uid"]][0]
        originals = [n for n in real if n.seriesuid == source]
        for nodule in scan["nodules"]:
            # each replaces a real nodule, moved by at most 10% of its diameter per axis (paper protocol)
            moved = np.array(nodule["centre_world_mm"])
            nearest = min(originals, key=lambda n: np.abs(np.array(n.world) - moved).max())
            assert np.abs(np.array(nearest.world) - moved).max() <= 0.1 * nearest.diameter_mm + 1e-3
            assert 0.9 - 1e-9 <= nodule["zoom"] <= 1.1 + 1e-9
            assert nodule["size"] == nearest.size and nodule["attenuation"] == nearest.attenuation
            assert nodule["replaces_real_nodule"] is True
    imported = run("data", "import", "luna16", str(out), "--out", str(tmp_path / "imported"), "--kind", "scans",
                   "--quiet")
    assert imported.returncode == 0, imported.stderr


def test_random_positions_add_rare_combinations_inside_the_lungs_and_keep_the_real_nodules(
        tmp_path, mcgan_run, tiny_chest):
    from pathosynth.generate.nodules import augment_scans

    raw = tiny_chest[1]
    out = tmp_path / "random"
    augment_scans(mcgan_run, raw, out, positions="random", per_scan=2, size="large", attenuation="ggn",
                  source_map=tmp_path / "map.json", progress=False)
    record = json.loads((out / "nodules.json").read_text())
    scans = {p.stem: p for p in (raw / "subset0").glob("*.mhd")}
    assert len(record["scans"]) == len(scans)
    sources = _sources(tmp_path / "map.json")
    for scan in record["scans"]:
        source = read_image(scans[sources[scan["uid"]][0]])
        mask = lung_mask(source)
        assert len(scan["nodules"]) == 2
        for nodule in scan["nodules"]:
            assert (nodule["size"], nodule["attenuation"]) == ("large", "ggn")
            x, y, z = (int(round(v)) for v in nodule["centre_voxel_xyz"])
            assert mask[z, y, x]
    rows = read_annotations(out / "annotations.csv")
    real = read_annotations(raw / "annotations.csv")
    assert len(rows) == len(real) + 2 * len(scans)


def test_an_interrupted_augmentation_resumes_to_the_same_result(tmp_path, mcgan_run, tiny_chest, monkeypatch):
    from pathosynth.generate import nodules as generate_ct

    raw = tiny_chest[1]
    straight = generate_ct.augment_scans(mcgan_run, raw, tmp_path / "straight", copies=2, progress=False,
                                         source_map=tmp_path / "straight.json")
    calls = {"n": 0}
    original = generate_ct.place_one

    def interrupt_on_the_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(*args, **kwargs)

    monkeypatch.setattr(generate_ct, "place_one", interrupt_on_the_fourth)
    with pytest.raises(KeyboardInterrupt):
        generate_ct.augment_scans(mcgan_run, raw, tmp_path / "resumed", copies=2, progress=False)
    partial = tmp_path / "resumed.partial"
    assert not (tmp_path / "resumed").exists() and partial.is_dir()
    # what the partial folder keeps to resume names no source either
    kept = b"".join(p.name.encode() + p.read_bytes() for p in partial.rglob("*") if p.is_file())
    source_uids = {source for source, _ in _sources(tmp_path / "straight.json").values()}
    assert (partial / "jobs.jsonl").is_file() and str(raw.resolve()).encode() not in kept
    assert not any(uid.encode() in kept for uid in source_uids)
    finished_before = {json.loads(line)["uid"] for line in (partial / "jobs.jsonl").read_text().splitlines()}
    monkeypatch.setattr(generate_ct, "place_one", original)
    resumed = generate_ct.augment_scans(mcgan_run, raw, tmp_path / "resumed", copies=2, progress=False,
                                        source_map=tmp_path / "resumed.json")
    # the same scans and nodules, under fresh uids: compare them by the source and copy they came from
    maps = {name: _sources(tmp_path / f"{name}.json") for name in ("straight", "resumed")}
    assert sorted(maps["straight"].values()) == sorted(maps["resumed"].values())
    assert finished_before <= maps["resumed"].keys()  # the finished scans kept the uids they were given

    def by_source(folder, name):
        rows = sorted((maps[name][row.seriesuid], row.world, row.diameter_mm, row.attenuation)
                      for row in read_annotations(folder / "annotations.csv"))
        volumes = {maps[name][uid]: (folder / "subset0" / f"{uid}.raw").read_bytes() for uid in maps[name]}
        return rows, volumes

    assert by_source(straight, "straight") == by_source(resumed, "resumed")


def test_bad_positions_conditions_runs_and_volumes_end_in_one_clear_sentence(
        tmp_path, mcgan_run, scan_path, tiny_brain):
    at, _ = _lung_voxel_xyz(scan_path)
    common = ("--size", "small", "--attenuation", "solid", "--out", str(tmp_path / "out"), "--quiet")
    _assert_clean_failure(run("generate", str(mcgan_run), "--ct", str(scan_path), "--at", "500,5,5", *common),
                          "--at", "outside")
    _assert_clean_failure(run("generate", str(mcgan_run), "--ct", str(scan_path), "--at", "1,1,1", *common),
                          "lungs")
    _assert_clean_failure(run("generate", str(mcgan_run), "--ct", str(scan_path), "--at", at, "--size", "huge",
                              "--attenuation", "solid", "--out", str(tmp_path / "out")), "huge", "small, medium, large")
    _assert_clean_failure(run("generate", str(mcgan_run), "--ct", str(scan_path), "--at", at, "--size", "small",
                              "--attenuation", "calcified", "--out", str(tmp_path / "out")), "calcified")
    _assert_clean_failure(run("generate", str(mcgan_run), "--n", "4", "--out", str(tmp_path / "out")), "--ct")
    # a scan far too coarse along z for a 1 mm nodule
    coarse = read_image(scan_path)
    coarse.spacing = (8.0, *coarse.spacing[1:])
    write_image(tmp_path / "coarse.nii.gz", coarse)
    _assert_clean_failure(run("generate", str(mcgan_run), "--ct", str(tmp_path / "coarse.nii.gz"), "--at", at,
                              *common), "coarse.nii.gz", "resample")
    damaged = tmp_path / "damaged.nii.gz"
    damaged.write_bytes(b"not a volume at all")
    _assert_clean_failure(run("generate", str(mcgan_run), "--ct", str(damaged), "--at", at, *common), "damaged.nii.gz")
    assert not (tmp_path / "out").exists()
    # a 2D run cannot place nodules
    brain_run = train(make_config("dcgan", "tiny", data=str(tiny_brain), steps=1), tmp_path / "dcgan", progress=False)
    _assert_clean_failure(run("generate", str(brain_run), "--ct", str(scan_path), "--at", at, *common),
                          "not a 3D MCGAN run")


@pytest.mark.parametrize("diameter", [6.0, 12.0, 24.0])
@pytest.mark.parametrize("nodule_hu", [40.0, -550.0])  # solid, ground glass
def test_the_measured_diameter_of_a_drawn_sphere_crossed_by_a_vessel(diameter, nodule_hu):
    from pathosynth.generate.nodules import measure_diameter

    side = 32
    z, y, x = np.indices((side,) * 3) - side // 2  # 1 mm voxels, centre voxel at 0
    block = np.full((side,) * 3, -850.0)
    block[np.sqrt(z ** 2 + y ** 2 + x ** 2) <= diameter / 2] = nodule_hu
    block[(np.sqrt(y ** 2 + (x - 2) ** 2) <= 1.5)] = 30.0  # a vessel running through, along z
    assert abs(measure_diameter(block, 1.0) - diameter) <= 1.0
    assert abs(measure_diameter(block, 0.5) - diameter / 2) <= 0.5  # the same voxels, half the spacing
    assert measure_diameter(np.full((side,) * 3, -850.0), 1.0) is None  # nothing there
