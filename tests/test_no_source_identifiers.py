"""Nothing `pathosynth generate` writes names a source (DESIGN.md: synthetic images never carry
identifiers of a source patient).

Real inputs are built from the phantoms and given the identifiers real data carries: LUNA16 series
uids as file names, patient tags in MetaImage and NIfTI headers, a DICOM series full of patient,
study and institution tags, folders named after patients. Every generate path then runs through the
CLI (in this process, with `sys.argv` as a shell would set it, since the command line is a place a
path can leak into), and every byte of every file under --out is searched for every identifier and
source path: JSON, CSV, image headers (gzip unpacked), PNG text chunks and the file names too.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest

from pathosynth.config import make_config
from pathosynth.data.readers import read_image
from pathosynth.data.writers import write_nifti
from pathosynth.errors import UserError
from pathosynth.generate.nodules import augment_scans
from pathosynth.generate.placement import lung_mask
from pathosynth.training.loop import train

MARK = uuid.uuid4().hex[:10]  # in every made-up identifier and source folder name, so no match is chance
PATIENT = {  # the tags of a real CT series that identify its patient, study and site
    "PatientName": f"DOE^JANE^{MARK}", "PatientID": f"PID{MARK}", "PatientBirthDate": "19450317",
    "AccessionNumber": f"A{MARK}", "InstitutionName": f"Saint Example Hospital {MARK}",
    "InstitutionAddress": f"1 Example Road {MARK}", "ReferringPhysicianName": f"HOUSE^GREGORY^{MARK}",
    "StudyDate": "19870623", "SeriesDate": "19870623", "StudyID": f"S{MARK}", "StationName": f"CT{MARK}",
    "OperatorsName": f"TECH^{MARK}", "StudyDescription": f"CHEST {MARK}",
}


# ------------------------------------------------------------------------------ the inputs

@pytest.fixture(scope="module")
def sources(tmp_path_factory, tiny_brain, tiny_chest):
    """Copies of the phantoms under folders named like a site's, plus a NIfTI and a DICOM series
    of one chest scan carrying the patient's tags."""
    root = tmp_path_factory.mktemp("site-data")
    brain = shutil.copytree(tiny_brain, root / f"brain-mr-{MARK}")
    info = json.loads((brain / "dataset.json").read_text())  # named after its folder, as an import names it
    (brain / "dataset.json").write_text(json.dumps({**info, "name": brain.name}))
    luna = shutil.copytree(tiny_chest[1], root / f"luna16-{MARK}")
    scan_file = min((luna / "subset0").glob("*.mhd"))
    _tag_metaimage(scan_file)
    scan = read_image(scan_file)
    nifti = root / f"{PATIENT['PatientID']}_chest.nii.gz"
    write_nifti(nifti, scan, description=PATIENT["PatientName"])
    dicom = root / f"{PATIENT['PatientID']}_{PATIENT['StudyDate']}"
    tags = _write_dicom_series(dicom, scan)
    return {"brain": brain, "luna": luna, "mhd": scan_file, "nifti": nifti, "dicom": dicom, "dicom_tags": tags,
            "root": root}


def _tag_metaimage(path: Path) -> None:
    """Patient fields in a MetaImage header, as some converters write them."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(path))
    for key in ("PatientName", "PatientID", "StudyDate"):
        image.SetMetaData(key, PATIENT[key])
    sitk.WriteImage(image, str(path))
    assert PATIENT["PatientID"] in path.read_text()


def _write_dicom_series(folder: Path, scan) -> list[str]:
    """One CT slice per file, named by its SOP instance uid as PACS exports do; returns every
    identifying value written."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

    folder.mkdir(parents=True)
    study, series, frame = generate_uid(), generate_uid(), generate_uid()
    rows, columns = scan.array.shape[1:]
    written = [study, series, frame, *PATIENT.values()]
    for k, pixels in enumerate(scan.array.astype(np.int16)):
        sop = generate_uid()
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = CTImageStorage, sop
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(folder / f"{sop}.dcm", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, sop, "CT"
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
        for key, value in PATIENT.items():
            setattr(ds, key, value)
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [f"{v:.4f}" for v in scan.index_to_world(np.array([k, 0.0, 0.0]))]
        ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*scan.direction[:, 2], *scan.direction[:, 1])]
        ds.PixelSpacing = [f"{scan.spacing[1]:.6f}", f"{scan.spacing[2]:.6f}"]
        ds.SliceThickness = f"{scan.spacing[0]:.6f}"
        ds.RescaleSlope, ds.RescaleIntercept = "1", "0"
        ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.PhotometricInterpretation = rows, columns, 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"{sop}.dcm", enforce_file_format=True)
        written.append(sop)
    assert np.array_equal(read_image(folder).array, scan.array)  # the series reads back as the scan
    return written


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sources, tiny_chest):
    root = tmp_path_factory.mktemp("runs")
    brain = str(sources["brain"])
    return {
        "dcgan": train(make_config("dcgan", "tiny", data=brain), root / "dcgan", progress=False),
        "cpggan": train(make_config("pggan", "tiny", data=brain, boxes=True), root / "cpggan", progress=False),
        "mcgan": train(make_config("mcgan3d", "tiny", data=str(tiny_chest[0]), steps=4), root / "mcgan",
                       progress=False),
    }


@pytest.fixture(scope="module")
def identifiers(sources, tiny_chest) -> set[str]:
    """Every source identifier and path an output could carry."""
    found: set[str] = set(sources["dicom_tags"])
    for dataset in (sources["brain"], tiny_chest[0]):
        for row in _rows(dataset / "manifest.csv"):
            found |= {row["id"], row["patient_id"], Path(row["image"]).name}
        found.add(json.loads((dataset / "dataset.json").read_text())["name"])
    found |= {row["seriesuid"] for row in _rows(sources["luna"] / "annotations.csv")}
    for path in [p for p in sources["root"].rglob("*")] + [sources["root"]]:
        found |= {str(path), str(path.resolve()), path.name, path.name.split(".nii")[0], path.stem}
    # too short or too generic to be an identifier (and bound to occur in any output)
    generic = {"subset0", "images", "masks", "manifest", "annotations", "dataset", "dataset.json", "manifest.csv",
               "annotations.csv"}
    return {text for text in found if len(text) >= 6 and text not in generic}


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------------------ the search

def _contents(path: Path) -> list[bytes]:
    """A file's bytes as stored and as read: gzip unpacked, PNG text chunks decoded."""
    data = path.read_bytes()
    contents = [data]
    if data[:2] == b"\x1f\x8b":
        contents.append(gzip.decompress(data))
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        from PIL import Image

        with Image.open(path) as image:
            image.load()
            contents.append(json.dumps(dict(image.text), default=str).encode())
    return contents


def _leaks(out: Path, identifiers: set[str], logged: str = "") -> list[str]:
    assert out.is_dir() and any(out.iterdir())
    leaks = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        where = str(path.relative_to(out))
        leaks += [f"file name {where}: {text}" for text in identifiers if text in where]
        for content in _contents(path):
            leaks += [f"{where}: {text}" for text in identifiers if text.encode() in content]
    leaks += [f"console: {text}" for text in identifiers if text in logged]
    partials = [p.name for p in out.parent.iterdir() if p.name.startswith((f"{out.name}.", f".{out.name}."))]
    assert not partials, partials
    return sorted(set(leaks))


def _generate(monkeypatch, capsys, *args) -> str:
    """`pathosynth generate ARGS`, in this process, with the command line a shell would give it."""
    from pathosynth.cli import main

    argv = ["pathosynth", "generate", *map(str, args), "--quiet"]
    monkeypatch.setattr(sys, "argv", argv)
    main(argv[1:])
    captured = capsys.readouterr()
    return captured.out + captured.err


def _lung_position(scan_file: Path) -> str:
    """The deepest lung voxel of the scan, in world mm (the same place in every format of it)."""
    from scipy import ndimage

    scan = read_image(scan_file)
    depth = ndimage.distance_transform_edt(lung_mask(scan), sampling=scan.spacing)
    index = np.array(np.unravel_index(int(np.argmax(depth)), depth.shape), dtype=float)
    return ",".join(f"{v:.4f}" for v in scan.index_to_world(index)) + ",world"


# ------------------------------------------------------------------------------ the tests

def test_the_identifier_search_finds_what_a_careless_output_would_hold(tmp_path, sources, identifiers):
    out = tmp_path / "careless"
    out.mkdir()
    (out / "nodules.json").write_text(json.dumps({"command": f"pathosynth generate --ct {sources['dicom']}"}))
    gzip_file = tmp_path / "header.nii.gz"
    write_nifti(gzip_file, read_image(sources["mhd"]), description=PATIENT["PatientName"])
    shutil.copy(gzip_file, out / "scan.nii.gz")
    leaks = _leaks(out, identifiers)
    assert any(str(sources["dicom"]) in leak for leak in leaks)
    assert any(leak.startswith("scan.nii.gz") and PATIENT["PatientName"] in leak for leak in leaks)


@pytest.mark.parametrize("kind", ["images", "boxes"])
def test_2d_synthetic_sets_name_no_training_data(tmp_path, monkeypatch, capsys, runs, identifiers, kind):
    # the box-conditioned run draws its layouts from its training data, read by path
    run = runs["dcgan" if kind == "images" else "cpggan"]
    out = tmp_path / "synthetic"
    logged = _generate(monkeypatch, capsys, run, "--n", 4, "--out", out)
    assert _leaks(out, identifiers, logged) == []
    manifest = _rows(out / "manifest.csv")
    assert len(manifest) == 4 and all(json.loads(row["synthetic"])["checkpoint_sha256"] for row in manifest)
    if kind == "boxes":
        assert any(row["boxes"] for row in manifest)


@pytest.mark.parametrize("kind", ["mhd", "nifti", "dicom"])
def test_a_nodule_placed_into_one_scan_names_no_source(tmp_path, monkeypatch, capsys, sources, runs, identifiers,
                                                       kind):
    out = tmp_path / "placed"
    at = _lung_position(sources["mhd"])  # world mm: the same place in every format of the scan
    logged = _generate(monkeypatch, capsys, runs["mcgan"], "--ct", sources[kind], f"--at={at}", "--size", "small",
                       "--attenuation", "solid", "--out", out)
    assert _leaks(out, identifiers, logged) == []
    record = json.loads((out / "nodules.json").read_text())
    (scan,) = record["scans"]
    assert scan["uid"].startswith("2.25.") and (out / scan["file"]).is_file()
    assert len(record["checkpoint_sha256"]) == 64 and record["settings"]["seed"] == 0  # provenance kept
    assert not np.array_equal(read_image(out / scan["file"]).array, read_image(sources["mhd"]).array)


@pytest.mark.parametrize("positions", ["real", "random"])
def test_an_augmented_luna16_folder_names_no_source(tmp_path, monkeypatch, capsys, sources, runs, identifiers,
                                                    positions):
    out = tmp_path / "augmented"
    logged = _generate(monkeypatch, capsys, runs["mcgan"], "--scans", sources["luna"], "--positions", positions,
                       "--out", out)
    assert _leaks(out, identifiers, logged) == []
    record = json.loads((out / "nodules.json").read_text())
    uids = [scan["uid"] for scan in record["scans"]]
    assert uids and all(uid.startswith("2.25.") for uid in uids) and len(set(uids)) == len(uids)
    assert {row["seriesuid"] for row in _rows(out / "annotations.csv")} <= set(uids)


def test_the_link_to_the_sources_is_written_only_on_request_and_never_inside_out(tmp_path, monkeypatch, capsys,
                                                                                  sources, runs, identifiers):
    out, kept = tmp_path / "augmented", tmp_path / "private" / "source-map.json"
    with pytest.raises(UserError, match="inside --out"):
        augment_scans(runs["mcgan"], sources["luna"], out, source_map=out / "map.json", progress=False)
    assert not out.exists()
    logged = _generate(monkeypatch, capsys, runs["mcgan"], "--scans", sources["luna"], "--keep-source-map", kept,
                       "--out", out)
    assert _leaks(out, identifiers, logged) == []
    record = json.loads((out / "nodules.json").read_text())
    links = json.loads(kept.read_text())["scans"]
    real = {row["seriesuid"] for row in _rows(sources["luna"] / "annotations.csv")}
    assert {link["synthetic_uid"] for link in links} == {scan["uid"] for scan in record["scans"]}
    assert {link["source_uid"] for link in links} == real
    for link in links:
        assert Path(link["source"]).stem == link["source_uid"] and len(link["source_sha256"]) == 64
        assert (out / link["synthetic_file"]).is_file() and link["replaced_nodules"]
