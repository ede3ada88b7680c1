"""The torch-free folder contracts: the run record and the one atomic writer."""

import json
import subprocess
import sys

import pytest

from pathosynth.contracts import RUN_FORMAT, read_run, replacing, write_json_atomic
from pathosynth.errors import UserError


def test_reading_a_run_folder_does_not_import_torch():
    code = ("import sys; import pathosynth.contracts as c; "
            "assert 'torch' not in sys.modules and 'pathosynth.training.loop' not in sys.modules, sorted(sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "record.json"
    write_json_atomic(target, {"a": 1})
    with pytest.raises(RuntimeError):
        with replacing(target) as tmp:
            tmp.write_text('{"a": ')  # half written, then the writer fails
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]


def test_replacing_keeps_a_suffix_for_writers_that_pick_the_format_from_the_name(tmp_path):
    with replacing(tmp_path / "grid.png", suffix=".png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path and tmp.name.startswith(".grid.png.tmp-")
        tmp.write_bytes(b"\x89PNG")
    assert (tmp_path / "grid.png").read_bytes() == b"\x89PNG"


def test_run_record_of_a_class_separate_run_reads_its_sub_runs_data(tmp_path):
    data = {"classes": ["non-tumour", "tumour"], "intensity": {"mid": 0.5, "half": 0.5, "low_clip": 0.0,
                                                                 "high_clip": 1.0}}
    write_json_atomic(tmp_path / "config.json", {"format": RUN_FORMAT, "config": {"model": "dcgan"},
                                                 "separate": {"tumour": "by-class/tumour"}})
    write_json_atomic(tmp_path / "by-class" / "tumour" / "config.json",
                      {"format": RUN_FORMAT, "config": {"model": "dcgan"}, "data": data})
    record = read_run(tmp_path)
    assert record.model == "dcgan" and record.data == data
    assert record.generator_folders == {"tumour": tmp_path / "by-class" / "tumour"}
    assert record.intensity.restore(2.0) == 1.0  # clipped to the data's range


@pytest.mark.parametrize("content", [None, "{not json", json.dumps({"format": "something-else"})])
def test_a_folder_that_is_not_a_run_is_one_clear_error(tmp_path, content):
    if content is not None:
        (tmp_path / "config.json").write_text(content)
    with pytest.raises(UserError, match="pathosynth train|train the run again"):
        read_run(tmp_path)
