"""The one training loop, for every GAN family and conditioning (issue 3).

A step is `critic_steps` discriminator updates followed by one generator update. Everything random
(batch order, latents, augmentation, gradient-penalty mixing, dropout) comes from RNGs whose
states the checkpoint holds, so a resumed run continues bit for bit where the checkpoint was taken.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from pathosynth.config import TrainConfig, check_config
from pathosynth.contracts import RUN_FORMAT, RUN_RECORD, read_run, write_json_atomic
from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from pathosynth.runtime import free_cores, software_versions, usable_cores
from pathosynth.tempfiles import remove_stale_temporaries
from pathosynth.training import checkpoint as ckpt
from pathosynth.training import distributed
from pathosynth.training.run import Run

class TrainingDiverged(UserError):
    """A loss became NaN or infinite; the last good checkpoint is left as it was."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM: a checkpoint of the last finished step was written."""


def train(config: TrainConfig, out: str | Path, *, resume: bool = False, progress: bool = True,
          stop_after: int | None = None) -> Path:
    """Train into the run folder `out` (one sub-run per class with classes="separate").

    `stop_after` ends the run early after that many steps, with a checkpoint, as an interruption
    would: tests use it to check that resuming is exact.
    """
    check_config(config)
    out = Path(out)
    processes = distributed.start()
    existed = out.exists()
    try:
        if config.classes == "separate":
            return _train_separate(config, out, processes, resume, progress, stop_after)
        return _train_run(config, out, processes, resume, progress, stop_after)
    except BaseException:
        if not resume and processes.is_main and not _holds_checkpoint(out):
            _discard_unfinished(out, existed)
        raise
    finally:
        distributed.stop(processes)


def _holds_checkpoint(out: Path) -> bool:
    return out.is_dir() and any(out.rglob(ckpt.FULL_STATE))


def _discard_unfinished(out: Path, existed: bool) -> None:
    """A new run that failed before its first checkpoint has nothing to resume: remove what it
    wrote (config.json, log.txt), so the same command can simply be run again."""
    if not out.is_dir():
        return
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for entry in out.iterdir():  # the folder was there, empty (_check_fresh): keep it empty
        shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)


def resume_run(out: str | Path, progress: bool = True, **overrides) -> Path:
    """Continue the run in `out` from its last checkpoint; `overrides` (e.g. steps=) extend it."""
    out = Path(out)
    config = read_run_config(out)
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    return train(config, out, resume=True, progress=progress)


def read_run_config(out: Path) -> TrainConfig:
    return TrainConfig.from_json(read_run(out).config)


# ------------------------------------------------------------------------------ run folders

def _check_fresh(out: Path) -> None:
    if out.exists() and any(out.iterdir()):
        raise UserError(f"{out} already holds a run; continue it with `pathosynth train --resume {out}` "
                        "or choose another --out")


def _train_separate(config, out, processes, resume, progress, stop_after) -> Path:
    """The papers' class-separate training: one complete run per class, under out/by-class/."""
    if not resume and processes.is_main:
        _check_fresh(out)
    classes = Dataset.load(config.data).info.classes
    runs = {name: f"by-class/{name}" for name in classes}
    if processes.is_main and not resume:
        write_json_atomic(out / RUN_RECORD, {"format": RUN_FORMAT, "config": config.to_json(), "separate": runs,
                                             "versions": software_versions(processes.device)})
    for name, relative in runs.items():
        _train_run(replace(config, classes="none", label=name), out / relative, processes,
                   resume and (out / relative / "config.json").is_file(), progress, stop_after)
    return out


# ------------------------------------------------------------------------------- the loop

@contextmanager
def _interruptible():
    """Ctrl-C / SIGTERM set a flag that the loop checks between steps, so a checkpoint is never
    taken halfway through an update."""
    state = {"stop": False}
    if threading_main():
        def handler(signum, frame):
            state["stop"] = True
        previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    else:
        previous = {}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _threads(processes, recorded: int | None = None) -> int:
    """Torch threads for this process: the free cores (shared among local processes), or on a
    resume the run's own count, because CPU kernels reduce in a thread-count-dependent order: a
    run continued with other threads would not continue bit for bit. PATHOSYNTH_THREADS wins."""
    if recorded and not os.environ.get("PATHOSYNTH_THREADS"):
        threads = int(recorded)
    else:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", processes.world))
        threads = max(1, free_cores() // max(1, local))
    torch.set_num_threads(threads)
    return threads


def _train_run(config: TrainConfig, out: Path, processes, resume: bool, progress: bool,
               stop_after: int | None) -> Path:
    main = processes.is_main
    resume, recorded_threads = _open_run_folder(out, processes, resume)
    on_cpu = processes.device.type == "cpu"
    threads = _threads(processes, recorded_threads) if on_cpu else torch.get_num_threads()
    # read (and check) the checkpoint before the data: a wrong run folder fails at once
    state = ckpt.load_checkpoint(out / "checkpoints" / ckpt.FULL_STATE) if resume else None
    torch.manual_seed(config.seed * 1000 + processes.rank)
    run = Run(config, out, processes, progress and main)
    if state is not None:
        _resume_state(run, state, out / "checkpoints" / ckpt.FULL_STATE)
        del state
    elif main:
        write_json_atomic(out / RUN_RECORD, _run_record(config, run, threads))
    log = _Log(out, main, resume, run.step)
    _announce(log, run, resume, threads, recorded_threads)
    bar = tqdm(total=config.steps, initial=run.step, unit="step", desc=f"train {config.model}",
               disable=not (progress and main), dynamic_ncols=True)
    try:
        with _interruptible() as interrupt:
            _steps(run, log, bar, interrupt, stop_after)
    finally:
        bar.close()
    log.line(f"stopped at step {run.step} of {config.steps}")
    return out


def _open_run_folder(out: Path, processes, resume: bool) -> tuple[bool, int | None]:
    """Whether there is a checkpoint to resume, and the thread count the run was started with."""
    if processes.is_main:
        for folder in (out, out / "checkpoints", out / "samples"):
            remove_stale_temporaries(folder)  # left by a run that was killed while writing
    if not resume:
        if processes.is_main:
            _check_fresh(out)
        return False, None
    recorded_threads = read_run(out).get("threads")
    # killed before its first checkpoint: start again, from the same seed
    return (out / "checkpoints" / ckpt.FULL_STATE).is_file(), recorded_threads


def _announce(log: _Log, run: Run, resume: bool, threads: int, recorded_threads: int | None) -> None:
    config, processes = run.config, run.processes
    on_cpu = processes.device.type == "cpu"
    log.line(f"{'resumed at' if resume else 'started'} step {run.step} of {config.steps}: {config.model}, "
             f"{len(run.data.images)} images, {processes.world} process(es), {processes.device}, {threads} thread(s)")
    if resume and on_cpu and recorded_threads and threads != recorded_threads:
        log.line(f"note: the run started with {recorded_threads} thread(s) and continues with {threads} "
                 "(PATHOSYNTH_THREADS): the continuation is not bit-identical to an uninterrupted run")
    cores = usable_cores()
    if on_cpu and threads > cores:
        log.line(f"note: {threads} threads on {cores} core(s) is slow; PATHOSYNTH_THREADS={cores} is faster, "
                 "at the cost of a continuation that is not bit-identical")


def _steps(run: Run, log: _Log, bar: tqdm, interrupt: dict, stop_after: int | None) -> None:
    """Train until the planned step, `stop_after`, or an interruption; log, checkpoint and grid on the way."""
    config, out = run.config, run.out
    window = _Window(run)
    while run.step < config.steps:
        window.add(run.train_step())
        bar.update(1)
        at_end = run.step == config.steps or (stop_after is not None and run.step >= stop_after)
        checkpoint_due = run.step % config.checkpoint_every == 0 or at_end
        stopping = distributed.any_true(interrupt["stop"], run.processes)
        if run.step % config.log_every == 0 or checkpoint_due or stopping:
            record = window.close(log)
            bar.set_postfix_str(run.trainer.progress_text(record), refresh=False)
        if checkpoint_due or stopping:  # before the grid: nothing after it can cost the checkpoint
            run.save()
            window.last_good = run.step
        if run.processes.is_main and (run.step % config.sample_every == 0 or at_end):
            run.sample_grid()
        if stopping:
            log.line(f"interrupted at step {run.step}; checkpoint written")
            raise TrainingInterrupted(f"interrupted at step {run.step}; the checkpoint is written: continue "
                                      f"with `pathosynth train --resume {out}`")
        if at_end:
            break


class _Window:
    """The losses of the steps since the last log line: their means go to stats.jsonl, and a NaN or
    infinite mean on any process stops the run with the last good checkpoint named."""

    def __init__(self, run: Run):
        self.run = run
        self.last_good = run.step
        self._reset()

    def _reset(self) -> None:
        self.sum: torch.Tensor | None = None
        self.steps = 0
        self.start = time.perf_counter()

    def add(self, parts: torch.Tensor) -> None:
        self.sum = parts if self.sum is None else self.sum + parts
        self.steps += 1

    def close(self, log: _Log) -> dict:
        run = self.run
        assert self.sum is not None, "closed a window of no steps"
        means: torch.Tensor = self.sum / self.steps
        if distributed.any_true(not bool(torch.isfinite(means).all()), run.processes):
            message = self._diverged(means)
            log.line(message)
            raise TrainingDiverged(message)
        record = _stats(run, means, self.steps, time.perf_counter() - self.start)
        log.stats(record)
        self._reset()
        return record

    def _diverged(self, means: torch.Tensor) -> str:
        run, out = self.run, self.run.out
        bad = [n for n, v in zip(run.loss_names, means.tolist()) if not torch.isfinite(torch.tensor(v))]
        kept = (f"the last good checkpoint (step {self.last_good}) in {out / 'checkpoints'} is intact: "
                f"resume it with a lower learning rate (`pathosynth train --resume {out} --lr-d ... "
                f"--lr-g ...`)" if (out / "checkpoints" / ckpt.FULL_STATE).is_file() else
                "no checkpoint had been written yet: train again with a lower learning rate "
                "(--lr-d/--lr-g)")
        return (f"training diverged between steps {run.step - self.steps + 1} and {run.step}: "
                f"{', '.join(bad)} became NaN or infinite; {kept}")


def _resume_state(run: Run, state: dict, path: Path) -> None:
    try:
        run.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise UserError(f"{path}: the checkpoint does not fit the networks of {path.parent.parent / 'config.json'} "
                        f"({type(exc).__name__}); resume from the run folder it was written in") from exc


def _stats(run: Run, means: torch.Tensor, steps: int, seconds: float) -> dict:
    phase = run.phase(run.step - 1)  # the step just trained
    images = steps * run.config.batch * run.processes.world * run.trainer.passes_per_step
    record = {"step": run.step, "images_shown": run.step * run.config.batch * run.processes.world}
    record.update({name: round(float(v), 6) for name, v in zip(run.loss_names, means.tolist())})
    record.update({"stage": phase.get("stage"), "alpha": round(phase["alpha"], 4) if phase else None,
                   "seconds": round(seconds, 3),
                   # images through G per second, real + generated, over the window
                   "images_per_s": round(steps * run.config.batch * run.processes.world / max(seconds, 1e-9), 2),
                   "network_images_per_s": round(images / max(seconds, 1e-9), 2)})
    return record


def _run_record(config: TrainConfig, run: Run, threads: int) -> dict:
    data = run.data
    source = Dataset.load(config.data).info
    return {"format": RUN_FORMAT, "config": config.to_json(),
            "data": {"path": str(Path(config.data).resolve()), "name": source.name, "modality": source.modality,
                     "classes": data.classes, "channels": data.channels, "images": len(data.images),
                     "intensity_unit": source.intensity_unit, "intensity": vars(data.intensity),
                     "spacing": data.spacing, "png_slope": source.png_slope,
                     "png_intercept": source.png_intercept},
            "generator": {"model": config.model, "kwargs": run.trainer.generator_kwargs},
            "seeds": {"seed": config.seed, "torch": "seed * 1000 + rank", "batch_order": "seed"},
            "processes": run.processes.world, "threads": threads,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "versions": software_versions(run.device)}


class _Log:
    """log.txt (human) and stats.jsonl (one JSON record per logged step), rank 0 only. On resume
    the records after the checkpoint's step are dropped: they will be recomputed identically."""

    def __init__(self, out: Path, main: bool, resume: bool, step: int):
        self.main = main
        self.text = out / "log.txt"
        self.jsonl = out / "stats.jsonl"
        if main and resume and self.jsonl.is_file():
            kept = [line for line in self.jsonl.read_text().splitlines()
                    if line.strip() and json.loads(line).get("step", 0) <= step]
            self.jsonl.write_text("".join(line + "\n" for line in kept))

    def line(self, message: str) -> None:
        if self.main:
            stamp = datetime.now(timezone.utc).isoformat(timespec="seconds")
            with self.text.open("a") as handle:
                handle.write(f"{stamp} {message}\n")

    def stats(self, record: dict) -> None:
        if self.main:
            with self.jsonl.open("a") as handle:
                handle.write(json.dumps(record) + "\n")
