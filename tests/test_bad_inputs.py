"""Bad inputs for every verb, as a careless or hostile user gives them: each must end in one line
that starts with "error:", a non-zero exit, no traceback, and no output folder. (The importers'
bad files are in tests/data/test_bad_inputs.py; the web app's in tests/reader.)"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from pathosynth.cli import main

OUT = "OUT"  # replaced by the row's output path


def run_cli(args, capsys) -> tuple[int, str]:
    try:
        main([str(a) for a in args])
        code = 0
    except SystemExit as stop:
        code = stop.code
    return code, capsys.readouterr().err


def assert_clean_failure(code, err, *needles):
    assert code not in (0, None), err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def places(tmp_path_factory, tiny_brain, teaching_runs):
    """Real inputs to make bad requests with: a dataset, a 2D run, a 3D run, a run folder whose
    checkpoints belong to another family, a damaged dataset.json and a stray folder."""
    root = tmp_path_factory.mktemp("bad-inputs")
    swapped = root / "swapped-run"
    shutil.copytree(teaching_runs["dcgan"], swapped)
    shutil.rmtree(swapped / "checkpoints")
    shutil.copytree(teaching_runs["cpggan"] / "checkpoints", swapped / "checkpoints")
    diverged = root / "diverged-run"  # a generator whose weights went NaN
    shutil.copytree(teaching_runs["dcgan"], diverged)
    exported = torch.load(diverged / "checkpoints" / "generator.pt", weights_only=True)
    exported["weights"] = {k: v.float().fill_(float("nan")) if v.is_floating_point() else v
                           for k, v in exported["weights"].items()}
    torch.save(exported, diverged / "checkpoints" / "generator.pt")
    damaged = root / "damaged"
    damaged.mkdir()
    (damaged / "dataset.json").write_text("{not json")
    (root / "stray").mkdir()
    (root / "a-file.txt").write_text("text")
    return {"DATA": tiny_brain, "RUN": teaching_runs["dcgan"], "RUN3D": teaching_runs["mcgan"],
            "SWAPPED": swapped, "DIVERGED": diverged, "DAMAGED": damaged, "STRAY": root / "stray",
            "FILE": root / "a-file.txt", "MISSING": root / "missing"}


ROWS = [
    # demo
    (["demo", "--seed", "-1", "--out", OUT], "--seed"),
    (["demo", "--seed", str(2**70), "--out", OUT], "--seed"),
    # data phantom / info / show
    (["data", "phantom", "brain-mr", "--patients", "0", "--out", OUT], "--patients"),
    (["data", "phantom", "brain-mr", "--seed", str(2**40), "--out", OUT], "--seed"),
    (["data", "phantom", "lungs", "--out", OUT], "lungs"),
    (["data", "info", "MISSING"], "missing"),
    (["data", "info", "DAMAGED"], "damaged"),
    (["data", "info", "FILE"], "a-file.txt"),
    (["data", "show", "DATA", "-n", "0", "--out", OUT + ".png"], "-n"),
    (["data", "show", "DATA", "--label", "fracture", "--out", OUT + ".png"], "fracture"),
    (["data", "show", "DATA", "--channel", "-1", "--out", OUT + ".png"], "--channel"),
    # train
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--seed", str(2**70)], "--seed"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--lr-g", "-1"], "--lr-g"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--lr-g", "nan"], "--lr-g"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--lr-d", "inf"], "--lr-d"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--width", "0"], "--width"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--latent-dim", "0"], "--latent-dim"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--batch", "1"], "--batch"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--steps", "0"], "--steps"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--resolution", "48"], "power of two"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--l1-weight", "-2"], "--l1-weight"),
    (["train", "--model", "gan9", "--data", "DATA", "--out", OUT], "--model"),
    (["train", "--model", "dcgan", "--data", "MISSING", "--out", OUT], "missing"),
    (["train", "--model", "dcgan", "--data", "DAMAGED", "--out", OUT], "damaged"),
    (["train", "--model", "dcgan", "--data", "DATA", "--out", OUT, "--boxes"], "dcgan has no box"),
    (["train", "--model", "mcgan3d", "--data", "DATA", "--out", OUT], "2D MR dataset"),
    (["train", "--resume", "MISSING"], "missing"),
    (["train", "--resume", "SWAPPED", "--steps", "99"], "a pggan checkpoint in a dcgan run folder"),
    # generate
    (["generate", "MISSING", "--n", "2", "--out", OUT], "missing"),
    (["generate", "STRAY", "--n", "2", "--out", OUT], "stray"),
    (["generate", "RUN", "--n", "0", "--out", OUT], "--n"),
    (["generate", "RUN", "--n", "2", "--seed", "-5", "--out", OUT], "--seed"),
    (["generate", "RUN", "--n", "2", "--batch", "0", "--out", OUT], "--batch"),
    (["generate", "RUN", "--n", "2", "--label", "fracture", "--out", OUT], "fracture"),
    (["generate", "RUN", "--n", "2", "--ct", "FILE", "--out", OUT], "not a 3D MCGAN run"),
    (["generate", "SWAPPED", "--n", "2", "--out", OUT], "a pggan checkpoint in a dcgan run folder"),
    (["generate", "DIVERGED", "--n", "2", "--quiet", "--out", OUT], "NaN or infinite pixels"),
    (["generate", "RUN3D", "--ct", "MISSING", "--at", "1,1,1", "--size", "small", "--attenuation", "solid",
      "--out", OUT], "missing"),
    (["generate", "RUN3D", "--ct", "FILE", "--at", "1,1,1", "--size", "huge", "--attenuation", "solid",
      "--out", OUT], "huge"),
    (["generate", "RUN3D", "--scans", "STRAY", "--copies", "0", "--out", OUT], "--copies"),
    (["generate", "RUN3D", "--n", "3", "--out", OUT], "3D MCGAN run"),
    # curate audit
    (["curate", "audit", "--train", "MISSING", "--synthetic", "DATA", "--out", OUT], "missing"),
    (["curate", "audit", "--train", "DATA", "--synthetic", "STRAY", "--out", OUT], "stray"),
    (["curate", "audit", "--train", "DATA", "--synthetic", "DATA", "--percentile", "0", "--out", OUT],
     "--percentile"),
    (["curate", "audit", "--train", "DATA", "--synthetic", "DATA", "--features", "telepathy", "--out", OUT],
     "telepathy"),
    # evaluate
    (["evaluate", "classify", "--real", "MISSING", "--setups", "real", "--out", OUT], "missing"),
    (["evaluate", "classify", "--real", "DATA", "--repeats", "0", "--out", OUT], "--repeats"),
    (["evaluate", "classify", "--real", "DATA", "--setups", "real,magic", "--out", OUT], "magic"),
    (["evaluate", "classify", "--real", "DATA", "--ratio", "nan", "--out", OUT], "--ratio"),
    (["evaluate", "classify", "--real", "DATA", "--synthetic", "STRAY", "--out", OUT], "stray"),
    (["evaluate", "images", "--real", "DATA", "--synthetic", "DATA", "--features", "smell", "--out", OUT], "smell"),
    (["evaluate", "images", "--real", "DATA", "--synthetic", "DATA", "--max-images", "1", "--out", OUT],
     "--max-images"),
    (["evaluate", "tsne", "--real", "DATA", "--iterations", "10", "--out", OUT], "--iterations"),
    (["evaluate", "tsne", "--real", "DATA", "--perplexity", "nan", "--out", OUT], "--perplexity"),
    (["evaluate", "tsne", "--real", "MISSING", "--out", OUT], "missing"),
    # report
    (["report", "MISSING", "--out", OUT], "missing"),
    (["report", "STRAY", "--out", OUT], "stray"),
    (["report", "DATA", "--seed", "-1", "--out", OUT], "--seed"),
    # the web app (more in tests/reader/test_cli_serve.py)
    (["serve", "--port", "70000", "--db", f"sqlite:///{OUT}"], "--port"),
    (["serve", "--cases-per-minute", "0", "--db", f"sqlite:///{OUT}"], "--cases-per-minute"),
    (["serve", "--data-root", "FILE", "--db", f"sqlite:///{OUT}"], "--data-root"),
    (["admin", "", "--db", f"sqlite:///{OUT}"], "name"),
    (["admin", "x\x00y", "--db", f"sqlite:///{OUT}"], "name"),
]


@pytest.mark.parametrize("args, needle", ROWS, ids=[" ".join(row[0][:3]) + f" #{i}" for i, row in enumerate(ROWS)])
def test_bad_input_is_one_sentence_with_no_output(args, needle, places, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATHOSYNTH_ADMIN_PASSWORD", "long enough")  # `admin` would ask on the terminal
    out = tmp_path / "out"
    resolved = [str(places.get(a, a)).replace(OUT, str(out)) if isinstance(a, str) else a for a in args]
    code, err = run_cli(resolved, capsys)
    assert_clean_failure(code, err, needle)
    assert not out.exists() and not out.with_suffix(".png").exists()
    assert not list(tmp_path.glob(".out*")) and not list(tmp_path.glob("out.partial*"))


def test_a_failure_before_the_first_checkpoint_leaves_no_run_folder(tiny_brain, tmp_path, monkeypatch):
    from pathosynth.config import make_config
    from pathosynth.training import loop
    from pathosynth.training.run import Run

    def broken_step(self):
        raise RuntimeError("a fault in the first step")

    monkeypatch.setattr(Run, "train_step", broken_step)
    out = tmp_path / "run"
    with pytest.raises(RuntimeError, match="first step"):
        loop.train(make_config("dcgan", "tiny", data=str(tiny_brain)), out, progress=False)
    assert not out.exists()  # so the same command can simply be run again


def _dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    return finished.pid


def test_temporaries_of_a_killed_writer_are_removed_when_the_run_continues(teaching_runs, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(teaching_runs["dcgan"], run)
    dead, alive = _dead_pid(), os.getppid()
    stale = [run / "checkpoints" / f".last.pt.tmp-{dead}", run / f".config.json.tmp-{dead}",
             run / "samples" / f".step-0000004.png.tmp-{dead}"]
    busy = run / "checkpoints" / f".generator.pt.tmp-{alive}"  # another process is writing it now
    for path in [*stale, busy]:
        path.write_bytes(b"x" * 1000)
    steps = int(__import__("json").loads((run / "config.json").read_text())["config"]["steps"])
    code, err = run_cli(["train", "--resume", run, "--steps", steps + 1, "--quiet"], capsys)
    assert code == 0, err
    assert [path.exists() for path in stale] == [False] * len(stale)
    assert busy.exists()


def test_seeds_at_the_top_of_the_range_work(tiny_brain, tmp_path, capsys):
    out = tmp_path / "ds"
    code, err = run_cli(["data", "show", tiny_brain, "-n", "2", "--seed", 2**31 - 1, "--out", out.with_suffix(".png")],
                        capsys)
    assert code == 0, err
    assert out.with_suffix(".png").is_file()
    assert Path(out.with_suffix(".png")).stat().st_size > 0


def test_a_killed_verb_s_temporary_folder_is_removed_by_the_next_run(tiny_brain, tmp_path, capsys):
    dead = _dead_pid()
    ours, other = tmp_path / f".rep.partial-{dead}", tmp_path / f".unrelated.partial-{dead}"
    for folder in (ours, other):
        folder.mkdir()
        (folder / "half-written.png").write_bytes(b"x")
    code, err = run_cli(["report", tiny_brain, "--out", tmp_path / "rep"], capsys)
    assert code == 0, err
    assert (tmp_path / "rep" / "report.html").is_file()
    assert not ours.exists()
    assert other.exists()  # another target's temporary is not this command's to remove
