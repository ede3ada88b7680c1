"""Phantom datasets end to end: through the importers, deterministic to the byte."""

import hashlib
import json

import pytest

from pathosynth.data.dataset import Dataset
from pathosynth.data.importers.brats import import_brats
from pathosynth.data.phantoms import brain_import_options, build_phantom
from pathosynth.data.splits import SplitPlan
from pathosynth.errors import UserError

PATIENTS = {"brain-mr": 3, "brain-metastases": 3, "chest-ct": 3, "radiograph": 6}


def _hashes(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kind", sorted(PATIENTS))
def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, kind):
    first = build_phantom(kind, tmp_path / "a" / kind, seed=4, patients=PATIENTS[kind], tiny=True, progress=False)
    again = build_phantom(kind, tmp_path / "b" / kind, seed=4, patients=PATIENTS[kind], tiny=True, progress=False)
    other = build_phantom(kind, tmp_path / "c" / kind, seed=5, patients=PATIENTS[kind], tiny=True, progress=False)
    assert _hashes(first) == _hashes(again)
    images = {k: v for k, v in _hashes(first).items() if k.startswith("images/")}
    assert images and images != {k: v for k, v in _hashes(other).items() if k.startswith("images/")}
    dataset = Dataset.load(first)
    assert dataset.info.source["importer"] in ("brats", "luna16", "folder")
    assert all(s.synthetic is None for s in dataset.samples)


def test_kept_raw_layout_imports_to_the_same_dataset(tmp_path):
    built = build_phantom("brain-mr", tmp_path / "bm", seed=2, patients=2, tiny=True, keep_raw=tmp_path / "raw",
                          progress=False)
    assert sorted(p.name for p in (tmp_path / "raw" / "HGG").iterdir()) == ["PHANTOM_BRAIN_0000", "PHANTOM_BRAIN_0001"]
    again = import_brats(tmp_path / "raw", tmp_path / "bm", brain_import_options("brain-mr", tiny=True),
                         SplitPlan(seed=2), overwrite=True, progress=False)
    assert again == built
    info = json.loads((built / "dataset.json").read_text())
    assert info["classes"] == ["non-tumour", "tumour"] and info["channels"] == ["t1ce"]


def test_phantom_refuses_to_overwrite_and_unknown_kind(tmp_path):
    (tmp_path / "x").mkdir()
    with pytest.raises(UserError, match="already exists"):
        build_phantom("radiograph", tmp_path / "x", tiny=True, progress=False)
    with pytest.raises(UserError, match="unknown phantom"):
        build_phantom("knee-mr", tmp_path / "y", progress=False)
