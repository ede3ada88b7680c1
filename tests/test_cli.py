"""The CLI as a user meets it: a real process, its exit code, its stderr, the files it leaves."""

import json
import subprocess
import sys

from pathosynth.data.dataset import Dataset
from pathosynth.data.phantoms import KINDS
from pathosynth.models import FAMILIES
from tests.layouts import make_brats_layout, make_folder_layout


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "pathosynth", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=600)


def test_help_lists_every_verb():
    result = run("--help")
    assert result.returncode == 0
    for verb in ("demo", "data", "train", "generate", "curate", "evaluate", "report"):
        assert verb in result.stdout
    evaluate = run("evaluate", "--help").stdout
    for verb in ("classify", "images", "tsne"):
        assert verb in evaluate
    data = run("data", "--help").stdout
    for verb in ("import", "phantom", "info", "show"):
        assert verb in data
    imports = run("data", "import", "--help").stdout
    for layout in ("brats", "luna16", "folder"):
        assert layout in imports
    train = run("train", "--help").stdout
    for model in FAMILIES:  # the CLI's choice list (help text) must name every registered family
        assert model in train
    phantoms = run("data", "phantom", "--help").stdout
    for kind in KINDS:  # the CLI's choice list is spelled apart from the registry of builders
        assert kind in phantoms


def _assert_clean_failure(result, *needles):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0]


def test_user_errors_are_one_line_without_traceback(tmp_path):
    _assert_clean_failure(run("data", "info", str(tmp_path / "nowhere")), "nowhere", "not a pathosynth dataset")
    (tmp_path / "empty").mkdir()
    _assert_clean_failure(run("data", "import", "brats", str(tmp_path / "empty"), "--out", str(tmp_path / "o")),
                          "no BraTS case found")
    _assert_clean_failure(run("data", "import", "folder", str(tmp_path / "empty"), "--out", str(tmp_path / "o")),
                          "labels.csv", "not found")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]


def test_truncated_nifti_fails_cleanly_and_skip_bad_imports_the_rest(tmp_path):
    make_brats_layout(tmp_path / "src", n_cases=3)
    victim = tmp_path / "src" / "Case_001" / "Case_001_t1ce.nii.gz"
    content = victim.read_bytes()
    victim.write_bytes(content[: len(content) // 2])
    args = ["data", "import", "brats", str(tmp_path / "src"), "--slices", "0-19", "--pad-to", "0", "--quiet"]
    result = run(*args, "--out", str(tmp_path / "ds"))
    _assert_clean_failure(result, "Case_001_t1ce.nii.gz", "--skip-bad")
    assert not (tmp_path / "ds").exists() and not list(tmp_path.glob(".ds*"))
    result = run(*args, "--out", str(tmp_path / "ds"), "--skip-bad")
    assert result.returncode == 0, result.stderr
    assert "Case_001_t1ce.nii.gz" in (tmp_path / "ds" / "skipped.csv").read_text()
    info = run("data", "info", str(tmp_path / "ds"), "--quiet")
    assert info.returncode == 0 and "non-tumour" in info.stdout
    show = run("data", "show", str(tmp_path / "ds"), "--out", str(tmp_path / "grid.png"))
    assert show.returncode == 0 and (tmp_path / "grid.png").stat().st_size > 1000


def test_folder_import_with_split_file(tmp_path):
    make_folder_layout(tmp_path / "src", n_patients=3)
    split_file = tmp_path / "splits.csv"
    split_file.write_text("patient_id,split\nP0,train\nP1,test\n")
    args = ["data", "import", "folder", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet",
            "--split-file", str(split_file)]
    _assert_clean_failure(run(*args), "does not list 1 patient", "P2")
    split_file.write_text("patient_id,split\nP0,train\nP1,test\nP2,val\n")
    assert run(*args).returncode == 0
    manifest = (tmp_path / "ds" / "manifest.csv").read_text()
    assert ",P2,val," in manifest and ",P0,train," in manifest


def test_tiny_demo_builds_every_dataset_with_info_and_preview_and_resumes(tmp_path):
    result = run("demo", "--tiny", "--quiet", "--out", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    for name in ("brain-mr", "brain-metastases", "chest-ct", "chest-ct-scans", "radiograph"):
        assert (tmp_path / "demo" / name / "manifest.csv").is_file()
        assert (tmp_path / "demo" / f"{name}-info.txt").read_text().startswith(name)
        assert (tmp_path / "demo" / f"{name}-preview.png").stat().st_size > 5000
    for name in ("brain-synthetic", "brain-synthetic-boxes"):
        assert (tmp_path / "demo" / name / "manifest.csv").is_file()
        assert (tmp_path / "demo" / f"{name}-preview.png").stat().st_size > 5000
    assert (tmp_path / "demo" / "runs" / "brain-inpaint" / "checkpoints" / "generator.pt").is_file()
    # the experiment's inpainter and classifiers see the same low-data subset; the painted set holds
    # both classes (lesions, and healthy repaints), the boxes set two lesions per slice
    inpaint = json.loads((tmp_path / "demo" / "runs" / "brain-inpaint" / "config.json").read_text())
    experiment = json.loads((tmp_path / "demo" / "brain-classify" / "config.json").read_text())
    assert inpaint["config"]["train_patients"] == experiment["real"]["train_patients"] == 2
    assert inpaint["config"]["subset_seed"] == experiment["real"]["subset_seed"]
    painted = Dataset.load(tmp_path / "demo" / "brain-synthetic").samples
    assert {s.label for s in painted} == {"tumour", "non-tumour"}
    assert all(bool(s.boxes) == (s.label == "tumour") for s in painted)
    per_slice = [len(s.boxes) for s in Dataset.load(tmp_path / "demo" / "brain-synthetic-boxes").samples]
    assert set(per_slice) <= {1, 2} and 2 in per_slice  # a second box that does not fit the brain is left out
    nodules = tmp_path / "demo" / "chest-ct-synthetic-nodules"
    assert (nodules / "preview.png").is_file() and len(list(nodules.glob("2.25.*.nii.gz"))) == 1
    placed = json.loads((nodules / "nodules.json").read_text())["scans"][0]["nodules"]
    kinds = {(n["size"], n["attenuation"]) for n in placed}
    assert len(kinds) == 9
    # the evaluation steps and the report that ties them together
    for name, marker in (("brain-audit", "audit.json"), ("brain-classify", "results.json"),
                         ("brain-image-metrics", "image-metrics.json"), ("brain-tsne", "tsne.json")):
        assert (tmp_path / "demo" / name / marker).is_file()
    page = (tmp_path / "demo" / "report" / "report.html").read_text()
    assert "on top of classic DA" in page and "Checklist" in page and "Memorization audit" in page
    assert "open the report:" in result.stdout and "on top of classic DA" in result.stdout
    again = run("demo", "--tiny", "--quiet", "--out", str(tmp_path / "demo"))
    assert again.returncode == 0 and again.stdout.count("reusing") >= 9


def test_ctrl_c_leaves_no_half_written_dataset(tmp_path):
    import signal
    import time

    process = subprocess.Popen([sys.executable, "-m", "pathosynth", "data", "phantom", "brain-mr", "--quiet",
                                "--patients", "40", "--out", str(tmp_path / "bm")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               # a runner started in the background (`cmd &`) ignores SIGINT, and children
                               # inherit that: give this child the default, as a terminal's command has
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    time.sleep(4)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(tmp_path.iterdir()) == []


def test_dicom_without_pixel_data_in_a_folder_import(tmp_path):
    import pydicom

    from tests.data.test_dicom import PYDICOM_FILES
    from tests.layouts import write_labels

    (tmp_path / "src").mkdir()
    ds = pydicom.dcmread(PYDICOM_FILES / "CT_small.dcm")
    del ds.PixelData
    ds.save_as(tmp_path / "src" / "empty.dcm")
    write_labels(tmp_path / "src" / "labels.csv", [{"file": "empty.dcm", "label": "normal"}])
    result = run("data", "import", "folder", str(tmp_path / "src"), "--out", str(tmp_path / "ds"), "--quiet")
    _assert_clean_failure(result, "empty.dcm", "no pixel data")
    assert not (tmp_path / "ds").exists()
