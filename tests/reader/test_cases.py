"""Reader-study cases: blinded canonical rendering and seeded, patient-spread picking."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from tests.reader.folders import write_folder
from pathosynth.reader.cases import (
    CANVAS, MONTAGE_HEIGHT, MONTAGE_WIDTH, PANEL, CaseSource, canonical_png, folder_origin, pick_cases,
    plane_centre, render_array, render_sample, render_sources,
)

CRITICAL_CHUNKS = {"IHDR", "IDAT", "IEND"}


# ----------------------------------------------------------------------------- helpers


def png_chunks(data: bytes) -> list[str]:
    """Chunk types of a PNG, read independently of Pillow (checks the signature and every CRC)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG signature"
    chunks, offset = [], 8
    while offset < len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert crc == zlib.crc32(kind + body), f"bad CRC in {kind!r}"
        chunks.append(kind.decode("ascii"))
        offset += 12 + length
    return chunks


def decode(data: bytes) -> tuple[np.ndarray, str]:
    image = Image.open(io.BytesIO(data))
    return np.asarray(image), image.mode


def assert_canonical(data: bytes) -> None:
    chunks = png_chunks(data)
    assert chunks[0] == "IHDR" and chunks[-1] == "IEND" and set(chunks) <= CRITICAL_CHUNKS, chunks
    pixels, _ = decode(data)
    assert canonical_png(pixels) == data  # the encoded size is a function of the pixels alone


def source_of(folder: Path, sample_id: str = "s0") -> CaseSource:
    dataset = Dataset.load(folder)
    sample = next(s for s in dataset.samples if s.id == sample_id)
    return CaseSource(dataset=str(folder.resolve()), sample_id=sample.id, origin=folder_origin(dataset),
                      label=sample.label, boxes=sample.boxes, attributes=sample.attributes)


def one_sentence_naming(message: str, folder: Path) -> bool:
    rest = message.replace(str(folder), "<folder>")
    return str(folder) in message and "\n" not in message and ". " not in rest and not rest.endswith(".")


def content_extent(pixels: np.ndarray) -> tuple[int, int, int, int]:
    """(top, left, height, width) of the non-black part."""
    rows, columns = np.nonzero(pixels)
    return (int(rows.min()), int(columns.min()), int(rows.max() - rows.min() + 1),
            int(columns.max() - columns.min() + 1))


# ----------------------------------------------------------------------------- blinding


CONTENTS = {
    # name: (modality, unit, PNG intercept: value = stored 16-bit value + intercept)
    "MR": ("MR", "arbitrary", 0.0),
    "CT-HU": ("CT", "HU", -1024.0),
}


@pytest.mark.parametrize("kind", sorted(CONTENTS))
def test_same_pixels_render_to_the_same_bytes_whatever_the_file_format_and_provenance(tmp_path, kind):
    modality, unit, intercept = CONTENTS[kind]
    rng = np.random.default_rng(3)
    values = rng.integers(0, 256, (64, 64)).astype(np.float32) * (6 if unit == "HU" else 1) + intercept
    box = [[10, 12, 30, 40]]
    stored = (values - intercept).astype(np.uint16)
    real = write_folder(tmp_path / "real", [("s0", "P0", "tumour", stored, box, "test")],
                        modality=modality, unit=unit, intercept=intercept)
    nifti = write_folder(tmp_path / "synthetic-nifti", [("s0", "S0", "tumour", values, box, "test")],
                         synthetic=True, modality=modality, unit=unit)
    folders = {"16-bit PNG": real, "NIfTI": nifti}
    if intercept == 0.0:  # an 8-bit PNG holds these values only without an offset
        folders["8-bit PNG"] = write_folder(
            tmp_path / "synthetic-png8", [("s0", "S0", "tumour", values.astype(np.uint8), box, "test")],
            synthetic=True, modality=modality, unit=unit)

    stored_modes = {name: Image.open(folder / Dataset.load(folder).samples[0].image).mode
                    for name, folder in folders.items() if name != "NIfTI"}
    assert stored_modes == {"16-bit PNG": "I;16", **({"8-bit PNG": "L"} if "8-bit PNG" in folders else {})}
    assert Dataset.load(nifti).samples[0].image.endswith(".nii.gz")
    assert [folder_origin(Dataset.load(f)) for f in folders.values()] == ["real"] + ["synthetic"] * (len(folders) - 1)

    rendered = {name: render_sample(source_of(folder)) for name, folder in folders.items()}
    assert len(set(rendered.values())) == 1, "file format or provenance leaks into the rendered bytes"
    (data,) = set(rendered.values())
    assert_canonical(data)
    # no box drawn: the same as rendering the pixels without boxes
    assert data == render_array(values[None], dimensionality=2, intensity_unit=unit, modality=modality)


def test_rendered_cases_carry_only_critical_chunks_though_their_sources_carry_text(tmp_path):
    values = np.random.default_rng(0).integers(0, 256, (40, 40)).astype(np.uint8)
    folder = write_folder(tmp_path / "syn", [("s0", "S0", "healthy", values, [], "test")], synthetic=True)
    source_file = (folder / Dataset.load(folder).samples[0].image).read_bytes()
    assert "tEXt" in png_chunks(source_file)  # the writer marks synthetic PNGs; the chunk reader sees it
    data = render_sample(source_of(folder))
    assert_canonical(data)
    assert "tEXt" not in png_chunks(data)
    outlined = render_array(values[None].astype(np.float32), dimensionality=2, intensity_unit="arbitrary",
                            modality="MR", boxes=[[5, 5, 20, 20]], outline=True)
    assert_canonical(outlined)


def test_every_2d_case_lands_on_one_canvas_with_its_aspect_kept(tmp_path):
    rng = np.random.default_rng(1)
    square = rng.integers(1, 60000, (64, 64)).astype(np.uint16)
    tall = rng.random((96, 80)).astype(np.float32) + 0.5
    real = write_folder(tmp_path / "real", [("s0", "P0", "healthy", square, [], "test")])
    synthetic = write_folder(tmp_path / "syn", [("s0", "S0", "healthy", tall, [], "test")], synthetic=True)
    renders = [decode(render_sample(source_of(f))) for f in (real, synthetic)]
    assert [(pixels.shape, mode) for pixels, mode in renders] == [((CANVAS, CANVAS), "L")] * 2
    assert content_extent(renders[0][0]) == (0, 0, CANVAS, CANVAS)
    width = round(80 * CANVAS / 96)
    assert content_extent(renders[1][0]) == (0, (CANVAS - width) // 2, CANVAS, width)
    # rows twice as far apart as columns: the image is twice as tall as wide on screen
    spaced, _ = decode(render_array(tall[:64, :64][None], dimensionality=2, intensity_unit="arbitrary",
                                    modality="MR", spacing=[2.0, 1.0]))
    assert content_extent(spaced) == (0, CANVAS // 4, CANVAS, CANVAS // 2)


def test_rendering_is_deterministic_and_batch_rendering_matches_single(tmp_path):
    rng = np.random.default_rng(2)
    rows = [(f"s{i}", f"P{i}", "healthy", rng.integers(0, 65535, (32, 48)).astype(np.uint16), [], "test")
            for i in range(3)]
    folder = write_folder(tmp_path / "real", rows)
    sources = [source_of(folder, f"s{i}") for i in range(3)]
    first, again = render_sources(sources), render_sources(sources)
    assert first == again == [render_sample(s) for s in sources]
    assert len(set(first)) == 3


def test_case_source_survives_a_json_round_trip():
    source = CaseSource(dataset="/data/real", sample_id="s1", origin="real", label="tumour",
                        boxes=[[1, 2, 3, 4]], attributes={"grade": "HGG"})
    assert CaseSource.from_json(json.loads(json.dumps(source.to_json()))) == source


def test_render_sample_refuses_a_changed_folder(tmp_path):
    folder = write_folder(tmp_path / "real", [("s0", "P0", "healthy", np.ones((8, 8), np.uint8), [], "test")])
    wrong_origin = source_of(folder)
    wrong_origin.origin = "synthetic"
    with pytest.raises(UserError, match="is real but the study recorded it as synthetic"):
        render_sample(wrong_origin)
    gone = source_of(folder)
    gone.sample_id = "s9"
    with pytest.raises(UserError, match="no longer has sample 's9'"):
        render_sample(gone)


def test_cases_module_does_not_import_torch():
    code = "import sys, pathosynth.reader.cases; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_canonical_png_takes_only_8_bit_grey_or_rgb():
    with pytest.raises(ValueError):
        canonical_png(np.zeros((4, 4), np.uint16))
    with pytest.raises(ValueError):
        canonical_png(np.zeros((4, 4, 4), np.uint8))
    assert decode(canonical_png(np.zeros((4, 5, 3), np.uint8)))[1] == "RGB"


# ----------------------------------------------------------------------------- windowing


def test_ct_in_hu_gets_the_lung_window():
    hu = np.tile(np.linspace(-2000, 500, CANVAS, dtype=np.float32), (CANVAS, 1))
    pixels, mode = decode(render_array(hu[None], dimensionality=2, intensity_unit="HU", modality="CT"))
    assert mode == "L"
    expected = np.rint(np.clip((hu.astype(np.float64) + 1350) / 1500, 0, 1) * 255)
    assert np.abs(pixels.astype(int) - expected).max() <= 1
    assert np.all(pixels[hu <= -1350] == 0) and np.all(pixels[hu >= 150] == 255)
    assert 0 < pixels[hu > -1340].min() and pixels[hu < 140].max() < 255
    flat, _ = decode(render_array(np.full((1, 16, 16), -600.0), dimensionality=2, intensity_unit="HU", modality="CT"))
    assert np.all(flat == 128)  # the window's level is mid-grey (127.5 rounds to even)


def test_other_images_get_their_own_1st_to_99th_percentile():
    values = np.random.default_rng(4).gamma(2.0, 50.0, (CANVAS, CANVAS)).astype(np.float32)
    low, high = np.percentile(values.astype(np.float64), [1, 99])
    expected = np.rint(np.clip((values - low) / (high - low), 0, 1) * 255)
    for unit, modality in (("arbitrary", "MR"), ("normalised [0, 1]", "CT")):
        pixels, _ = decode(render_array(values[None], dimensionality=2, intensity_unit=unit, modality=modality))
        assert np.abs(pixels.astype(int) - expected).max() <= 1
        assert np.mean(pixels == 0) == pytest.approx(0.01, abs=0.002)
        assert np.mean(pixels == 255) == pytest.approx(0.01, abs=0.002)


# ----------------------------------------------------------------------------- 3D montage


def blob_volume(shape=(16, 16, 16), centre=(5, 9, 11)) -> np.ndarray:
    z, y, x = np.indices(shape)
    distance2 = (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2
    return (-1000 + 1100 * np.exp(-distance2 / (2 * 1.5 ** 2))).astype(np.float32)[None]


def test_3d_montage_has_a_fixed_size_and_shows_the_box_centre_in_all_three_planes():
    volume = blob_volume()
    box = [9, 7, 3, 14, 12, 8]  # centre (x, y, z) = (11.5, 9.5, 5.5): voxel (z, y, x) = (5, 9, 11)
    assert plane_centre(volume.shape[1:], [box]) == (5, 9, 11)
    assert plane_centre(volume.shape[1:], []) == (8, 8, 8)
    data = render_array(volume, dimensionality=3, intensity_unit="HU", modality="CT", boxes=[box])
    assert_canonical(data)
    pixels, mode = decode(data)
    assert pixels.shape == (MONTAGE_HEIGHT, MONTAGE_WIDTH) == (256, 768) and mode == "L"
    scale = PANEL / 16
    expected = {  # (row, column) of the blob's voxel centre in each panel; slices go up the screen
        "axial": ((9 + 0.5) * scale, (11 + 0.5) * scale),
        "coronal": ((16 - 5 - 0.5) * scale, (11 + 0.5) * scale),
        "sagittal": ((16 - 5 - 0.5) * scale, (9 + 0.5) * scale),
    }
    for index, (name, (row, column)) in enumerate(expected.items()):
        panel = pixels[:, index * PANEL:(index + 1) * PANEL]
        found = np.unravel_index(np.argmax(panel), panel.shape)
        assert abs(found[0] - row) <= 3 and abs(found[1] - column) <= 3, (name, found, (row, column))
    centred = render_array(volume, dimensionality=3, intensity_unit="HU", modality="CT")
    assert decode(centred)[0].shape == pixels.shape and centred != data


def test_3d_panels_keep_the_physical_aspect():
    volume = np.zeros((1, 8, 16, 16), np.float32)  # 0 HU everywhere: visible on black
    thick, _ = decode(render_array(volume, dimensionality=3, intensity_unit="HU", modality="CT",
                                   spacing=[2.0, 1.0, 1.0]))
    thin, _ = decode(render_array(volume, dimensionality=3, intensity_unit="HU", modality="CT"))
    assert thick.shape == thin.shape == (MONTAGE_HEIGHT, MONTAGE_WIDTH)
    for index in range(3):
        assert content_extent(thick[:, index * PANEL:(index + 1) * PANEL]) == (0, 0, PANEL, PANEL)
    assert content_extent(thin[:, :PANEL]) == (0, 0, PANEL, PANEL)
    for index in (1, 2):  # 8 slices of 1 mm under 16 mm: half as tall, centred
        assert content_extent(thin[:, index * PANEL:(index + 1) * PANEL]) == (PANEL // 4, 0, PANEL // 2, PANEL)


def test_3d_phantom_cases_render_on_the_montage(tiny_chest):
    vois, _ = tiny_chest
    cases = pick_cases(vois, {"nodule": 2}, seed=0)
    for data in render_sources(cases):
        assert_canonical(data)
        pixels, mode = decode(data)
        assert pixels.shape == (MONTAGE_HEIGHT, MONTAGE_WIDTH) and mode == "L"


# ----------------------------------------------------------------------------- outlines


def is_coloured(rgb: np.ndarray) -> np.ndarray:
    return (rgb[..., 0] != rgb[..., 1]) | (rgb[..., 1] != rgb[..., 2])


def test_outline_draws_coloured_box_edges_only_when_asked():
    image = np.random.default_rng(5).random((1, 64, 64)).astype(np.float32)
    box = [10, 20, 30, 40]  # columns 10..29, rows 20..39 -> canvas 80..239, 160..319
    plain, plain_mode = decode(render_array(image, dimensionality=2, intensity_unit="arbitrary", modality="MR",
                                            boxes=[box]))
    rgb, mode = decode(render_array(image, dimensionality=2, intensity_unit="arbitrary", modality="MR",
                                    boxes=[box], outline=True))
    assert (plain_mode, mode) == ("L", "RGB") and rgb.shape == (CANVAS, CANVAS, 3)
    coloured = is_coloured(rgb)
    for row, column in ((200, 80), (200, 239), (160, 150), (319, 150)):
        assert coloured[row, column], (row, column)
    assert not coloured[240, 160] and not coloured[100, 400]
    rows, columns = np.nonzero(coloured)
    assert (rows.min(), rows.max(), columns.min(), columns.max()) == (160, 319, 80, 239)
    np.testing.assert_array_equal(rgb[~coloured][:, 0], plain[~coloured])


def test_outline_on_a_volume_shows_the_box_in_every_panel():
    rgb, mode = decode(render_array(blob_volume(), dimensionality=3, intensity_unit="HU", modality="CT",
                                    boxes=[[9, 7, 3, 14, 12, 8]], outline=True))
    assert mode == "RGB" and rgb.shape == (MONTAGE_HEIGHT, MONTAGE_WIDTH, 3)
    coloured = is_coloured(rgb)
    assert all(coloured[:, i * PANEL:(i + 1) * PANEL].any() for i in range(3))
    # coronal panel: z rows 3..7 are flipped to screen rows (16-8)..(16-3) slices of 16 px
    rows, _ = np.nonzero(coloured[:, PANEL:2 * PANEL])
    assert (rows.min(), rows.max()) == ((16 - 8) * 16, (16 - 3) * 16 - 1)


# ----------------------------------------------------------------------------- picking


@pytest.fixture(scope="module")
def slices_folder(tmp_path_factory) -> Path:
    """P0..P2 in 'test', P3 in 'train'; 10 slices each: 0-4 'tumour', 5-9 'healthy'."""
    rows = []
    for patient in range(4):
        for index in range(10):
            label = "tumour" if index < 5 else "healthy"
            rows.append((f"P{patient}_z{index:02d}", f"P{patient}", label,
                         np.full((4, 4), patient * 10 + index, np.uint8),
                         [[0, 0, 2, 2]] if label == "tumour" else [], "train" if patient == 3 else "test"))
    return write_folder(tmp_path_factory.mktemp("pick") / "slices", rows)


def patients_of(folder: Path, cases: list[CaseSource]) -> list[str]:
    patient = {s.id: s.patient_id for s in Dataset.load(folder).samples}
    return [patient[case.sample_id] for case in cases]


def test_pick_cases_honours_counts_and_split_and_records_the_source(slices_folder):
    cases = pick_cases(slices_folder, {"tumour": 4, "healthy": 2}, seed=0, split="test")
    assert Counter(c.label for c in cases) == {"tumour": 4, "healthy": 2}
    assert len({c.sample_id for c in cases}) == 6
    assert "P3" not in patients_of(slices_folder, cases)
    assert {c.origin for c in cases} == {"real"} and {c.dataset for c in cases} == {str(slices_folder.resolve())}
    assert all(c.boxes == [[0, 0, 2, 2]] for c in cases if c.label == "tumour")
    assert pick_cases(slices_folder, {"tumour": 0}, seed=0) == []
    assert len(pick_cases(slices_folder, {"tumour": 20}, seed=0)) == 20  # no split: all four patients


def test_pick_cases_is_seed_stable_and_seeds_differ(slices_folder):
    def picked(seed: int, counts: dict) -> list[str]:
        return [c.sample_id for c in pick_cases(slices_folder, counts, seed=seed, split="test")]

    assert picked(7, {"tumour": 3, "healthy": 3}) == picked(7, {"healthy": 3, "tumour": 3})
    assert len({tuple(picked(seed, {"tumour": 3})) for seed in range(6)}) > 1


def test_pick_cases_takes_distinct_patients_before_repeating_one(slices_folder):
    for seed in range(5):
        three = pick_cases(slices_folder, {"tumour": 3}, seed=seed, split="test")
        assert sorted(patients_of(slices_folder, three)) == ["P0", "P1", "P2"]
        seven = Counter(patients_of(slices_folder, pick_cases(slices_folder, {"tumour": 7}, seed=seed, split="test")))
        assert sorted(seven.values()) == [2, 2, 3]


def test_pick_cases_on_a_phantom_spreads_over_patients(tiny_brain):
    cases = pick_cases(tiny_brain, {"tumour": 4}, seed=1)
    assert len(set(patients_of(tiny_brain, cases))) == 4
    for data in render_sources(cases):
        assert decode(data)[0].shape == (CANVAS, CANVAS)


def test_pick_cases_errors_are_one_sentence_naming_the_folder(slices_folder, tmp_path):
    with pytest.raises(UserError) as unknown:
        pick_cases(slices_folder, {"nodule": 1}, seed=0)
    assert "use one of: healthy, tumour" in str(unknown.value)
    with pytest.raises(UserError) as too_few:
        pick_cases(slices_folder, {"tumour": 16}, seed=0, split="test")
    assert str(too_few.value) == (f"{slices_folder} has 15 'tumour' samples in split 'test', asked for 16; "
                                  "ask for at most 15")
    rows = [(f"s{i}", f"P{i}", "healthy", np.zeros((4, 4), np.uint8), [], "test") for i in range(3)]
    mixed = write_folder(tmp_path / "mixed", rows, synthetic_ids={"s1"})
    with pytest.raises(UserError) as mixed_error:
        pick_cases(mixed, {"healthy": 1}, seed=0)
    assert "mixes real and synthetic samples (1 synthetic of 3)" in str(mixed_error.value)
    with pytest.raises(UserError) as not_a_dataset:
        pick_cases(tmp_path, {"healthy": 1}, seed=0)
    for error, folder in ((unknown, slices_folder), (too_few, slices_folder), (mixed_error, mixed),
                          (not_a_dataset, tmp_path)):
        assert one_sentence_naming(str(error.value), folder), str(error.value)


def test_a_synthetic_folder_gives_synthetic_cases(tmp_path):
    rows = [(f"s{i}", f"S{i}", "tumour", np.zeros((4, 4), np.float32), [], "test") for i in range(3)]
    folder = write_folder(tmp_path / "syn", rows, synthetic=True)
    cases = pick_cases(folder, {"tumour": 2}, seed=0)
    assert {c.origin for c in cases} == {"synthetic"}
    assert folder_origin(folder) == "synthetic"
