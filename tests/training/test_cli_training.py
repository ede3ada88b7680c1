"""`pathosynth train` / `generate` as a user meets them: real processes, kills, torchrun."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from tests.test_cli import _assert_clean_failure, run


def _train_args(data, out, *extra):
    return ["train", "--model", "dcgan", "--data", str(data), "--out", str(out), "--preset", "tiny", "--quiet",
            *extra]


def _final_weights(run_dir):
    state = torch.load(Path(run_dir) / "checkpoints" / "last.pt", weights_only=True)
    return state["step"], {f"{p}.{k}": v for p in ("generator", "discriminator", "ema") for k, v in state[p].items()}


def test_train_then_generate_from_the_cli(tmp_path, tiny_brain):
    trained = run(*_train_args(tiny_brain, tmp_path / "run"))
    assert trained.returncode == 0, trained.stderr
    made = run("generate", str(tmp_path / "run"), "--n", "4", "--label", "tumour", "--out", str(tmp_path / "syn"),
               "--quiet")
    assert made.returncode == 0, made.stderr
    rows = (tmp_path / "syn" / "manifest.csv").read_text().splitlines()
    assert len(rows) == 5 and all(",tumour," in row for row in rows[1:])


def test_killed_training_resumes_to_the_same_weights_as_an_uninterrupted_run(tmp_path, tiny_brain):
    steps = ["--steps", "400", "--checkpoint-every", "25", "--sample-every", "1000"]
    straight = run(*_train_args(tiny_brain, tmp_path / "straight", *steps))
    assert straight.returncode == 0, straight.stderr
    killed = tmp_path / "killed"
    process = subprocess.Popen([sys.executable, "-m", "pathosynth", *_train_args(tiny_brain, killed, *steps)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (killed / "checkpoints" / "last.pt").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # no chance to clean up: only atomic writes save the run
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL
    stopped_at, _ = _final_weights(killed)
    assert stopped_at < 400
    resumed = run("train", "--resume", str(killed), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    (a_step, a), (b_step, b) = _final_weights(tmp_path / "straight"), _final_weights(killed)
    assert a_step == b_step == 400
    assert all(torch.equal(a[name], b[name]) for name in a)
    steps_logged = [json.loads(line)["step"] for line in (killed / "stats.jsonl").read_text().splitlines()]
    assert steps_logged == sorted(set(steps_logged))  # no step logged twice after the resume


def test_ctrl_c_writes_a_checkpoint_and_says_how_to_resume(tmp_path, tiny_brain):
    out = tmp_path / "run"
    process = subprocess.Popen([sys.executable, "-m", "pathosynth",
                                *_train_args(tiny_brain, out, "--steps", "100000", "--checkpoint-every", "100000",
                                             "--sample-every", "100000")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "stats.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and f"--resume {out}" in stderr
    step, _ = _final_weights(out)
    assert 0 < step < 100000


def test_two_process_ddp_run_with_torchrun_and_gloo(tmp_path, tiny_brain):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).parent / "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PATHOSYNTH_THREADS": "2"}
    result = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", "-m", "pathosynth",
                             *_train_args(tiny_brain, out, "--steps", "6", "--checkpoint-every", "3")],
                            capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in (out / "log.txt").read_text()
    stats = [json.loads(line) for line in (out / "stats.jsonl").read_text().splitlines()]
    assert stats[-1]["step"] == 6 and stats[-1]["images_shown"] == 6 * 4 * 2  # batch 4 on each process
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert state["world"] == 2 and len(state["rng"]) == 2  # both processes' RNG streams are kept
    # DDP averaged the gradients: the result differs from a one-process run on half the data
    single = run(*_train_args(tiny_brain, tmp_path / "single", "--steps", "6"))
    assert single.returncode == 0, single.stderr
    _, one = _final_weights(tmp_path / "single")
    _, two = _final_weights(out)
    assert any(not torch.equal(one[k], two[k]) for k in one)


def test_training_errors_are_one_line(tmp_path, tiny_brain):
    _assert_clean_failure(run(*_train_args(tiny_brain, tmp_path / "a", "--resolution", "48")), "power of two")
    _assert_clean_failure(run(*_train_args(tiny_brain, tmp_path / "b", "--label", "cat")), "unknown label 'cat'")
    _assert_clean_failure(run(*_train_args(tmp_path / "nowhere", tmp_path / "c")), "not a pathosynth dataset")
    _assert_clean_failure(run("train", "--resume", str(tmp_path / "nothing")), "not a run folder")
    _assert_clean_failure(run("train", "--model", "dcgan"), "--data", "--out")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
