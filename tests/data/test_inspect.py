import csv
import json
from collections import Counter

import numpy as np
from PIL import Image

from pathosynth.data.dataset import Dataset
from pathosynth.data.importers.folder import FolderOptions, import_folder
from pathosynth.data.importers.luna16 import Luna16Options, import_luna16
from pathosynth.data.inspect import dataset_info, format_info, pick_samples, show_dataset
from pathosynth.data.splits import SplitPlan
from tests.layouts import make_folder_layout, make_luna_layout


def test_info_counts_match_the_manifest(tmp_path):
    make_folder_layout(tmp_path / "src", n_patients=8)
    root = import_folder(tmp_path / "src", tmp_path / "ds", FolderOptions(), SplitPlan(seed=1), progress=False)
    summary = dataset_info(root, progress=False)
    rows = list(csv.DictReader((root / "manifest.csv").open()))
    expected = Counter((r["split"], r["label"]) for r in rows)
    assert {(s, label): n for s, c in summary["counts"].items() for label, n in c.items()} == dict(expected)
    assert summary["patients"] == {s: len({r["patient_id"] for r in rows if r["split"] == s})
                                   for s in summary["counts"]}
    pixels = np.concatenate([np.asarray(Image.open(root / r["image"]), np.float64).ravel() for r in rows])
    assert summary["intensity"]["min"] == pixels.min() and summary["intensity"]["max"] == pixels.max()
    assert summary["intensity"]["mean"] == np.float64(pixels.mean()).item() or \
        abs(summary["intensity"]["mean"] - pixels.mean()) < 1e-6 * pixels.mean()
    assert summary["boxes"]["total"] == sum(bool(r["boxes"]) for r in rows)
    assert summary["boxes"]["extent_px"]["x"]["median"] == 15
    json.dumps(summary)
    assert "fracture" in format_info(summary)


def test_show_writes_a_grid_and_picks_every_class(tmp_path):
    make_folder_layout(tmp_path / "src", n_patients=8)
    root = import_folder(tmp_path / "src", tmp_path / "ds", FolderOptions(), SplitPlan(), progress=False)
    dataset = Dataset.load(root)
    picked = pick_samples(dataset, 4, None, None, seed=0)
    assert Counter(s.label for s in picked) == {"fracture": 2, "normal": 2}
    out = show_dataset(root, tmp_path / "grid.png", n=6)
    with Image.open(out) as image:
        assert image.size[0] > 300 and image.size[1] > 150
    assert not list(tmp_path.glob(".grid*"))


def test_info_and_show_volumes(tmp_path):
    make_luna_layout(tmp_path / "src")
    root = import_luna16(tmp_path / "src", tmp_path / "ds", Luna16Options(kind="scans"), SplitPlan(), progress=False)
    summary = dataset_info(root, progress=False)
    assert summary["attributes"]["size"] == {"large": 1, "medium": 1, "small": 1}
    assert summary["intensity"]["min"] == -850 and summary["intensity"]["max"] == 40
    assert set(summary["boxes"]["extent_px"]) == {"x", "y", "z"}
    assert show_dataset(root, tmp_path / "scans.png").is_file()
