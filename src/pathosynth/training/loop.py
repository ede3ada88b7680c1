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
from contextlib import contextmanager, nullcontext
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

import torch
from tqdm import tqdm

from pathosynth.config import TrainConfig, check_config
from pathosynth.contracts import RUN_FORMAT, RUN_RECORD, read_run, write_json_atomic
from pathosynth.data.dataset import Dataset
from pathosynth.errors import UserError
from pathosynth.models import build_discriminator, build_generator, family, generator_kwargs, latents_for_seeds
from pathosynth.runtime import free_cores, software_versions, usable_cores
from pathosynth.tempfiles import remove_stale_temporaries
from pathosynth.training import checkpoint as ckpt
from pathosynth.training import distributed
from pathosynth.training.batches import BatchSampler, draw_batch
from pathosynth.training.data import TrainingSet, load_training_set
from pathosynth.training.ema import EMA, standing_statistics
from pathosynth.training.objectives import CriticObjective, augmenter, conditions, generator_loss
from pathosynth.training.samples import COLUMNS, ROWS, grid_png, to_full_resolution
from pathosynth.training.schedule import growth_phase, real_at_stage

SAMPLE_SEED_OFFSET = 1_000_003  # grid latents: a seed range no generated image of the run uses


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


class _Run:
    """The state of one run: networks, optimizers, RNGs, and the run folder's files."""

    loss_names = ("loss_d", "adversarial_d", "gradient_penalty", "drift", "loss_g", "adversarial_g")

    def __init__(self, config: TrainConfig, out: Path, processes, data: TrainingSet):
        self.config, self.out, self.processes, self.data = config, out, processes, data
        device = processes.device
        self.device = device
        self.cuda = device.type == "cuda"
        self._build_networks()
        self.generator.to(memory_format=self.memory_format)
        self.discriminator.to(memory_format=self.memory_format)
        self.ema = EMA(self.generator, config.ema_decay)
        self.opt_g = _optimizer(config, self.generator.parameters(), config.lr_g)
        self.opt_d = _optimizer(config, self.discriminator.parameters(), config.lr_d)
        self.generator_ddp = distributed.wrap(self.generator, processes)
        self.sampler = BatchSampler(len(data.images), config.batch, config.seed, processes.rank, processes.world)
        self.step = 0
        self._ema_ready_at = -1
        self.autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if (self.cuda and config.amp)
                         else nullcontext())
        self._fixed_conditions()

    def _build_networks(self) -> None:
        config, data = self.config, self.data
        self.num_classes = len(data.classes) if config.classes == "conditional" else 0
        channels = data.images.shape[1]
        self.g_kwargs = generator_kwargs(config, channels, self.num_classes)
        self.generator = build_generator(config.model, self.g_kwargs).to(self.device)
        self.discriminator = build_discriminator(config, channels, self.num_classes).to(self.device)
        self.memory_format = (torch.channels_last if (self.cuda and config.channels_last)
                              else torch.contiguous_format)
        self.critic = distributed.wrap(CriticObjective(self.discriminator, config), self.processes)
        self.augment = augmenter(config)
        self.levels = getattr(self.generator, "levels", 0) if family(config.model).grows else 0

    # -------------------------------------------------------------- conditions for the grids
    def _fixed_conditions(self) -> None:
        n = COLUMNS * ROWS
        seeds = [SAMPLE_SEED_OFFSET + self.config.seed * 10_000 + i for i in range(n)]
        self.fixed_z = latents_for_seeds(self.generator, seeds, self.device)
        self.fixed_labels = (torch.arange(n, device=self.device) // COLUMNS % self.num_classes
                             if self.num_classes else None)
        self.fixed_boxes, self.fixed_box_lists = None, None
        if self.data.box_images is not None:
            with_boxes = [i for i, b in enumerate(self.data.boxes) if b]
            rng = torch.Generator().manual_seed(self.config.seed)
            picks = [with_boxes[int(i)] for i in torch.randint(len(with_boxes), (n,), generator=rng)]
            self.fixed_boxes = self.data.box_images[picks].to(self.device)
            self.fixed_box_lists = [self.data.boxes[i] for i in picks]
            if self.num_classes:  # each box layout with its own image's class
                self.fixed_labels = self.data.labels[picks].to(self.device)

    def phase(self, step: int | None = None) -> dict:
        """PGGAN's stage and fade-in at `step` (default: the step about to be trained)."""
        if not family(self.config.model).grows:
            return {}
        stage, alpha = growth_phase(self.step if step is None else step, self.config.phase_steps, self.levels)
        return {"stage": stage, "alpha": alpha}

    # ------------------------------------------------------------------------------ updates
    def train_step(self) -> torch.Tensor:
        config, phase = self.config, self.phase()
        self.discriminator.requires_grad_(True)
        for critic_step in range(config.critic_steps):
            real, labels, boxes = draw_batch(self.data, self.sampler, config.random_crop, self.device)
            real = real.contiguous(memory_format=self.memory_format)
            labels = labels if self.num_classes else None
            if phase:
                real = real_at_stage(real, 4 * 2 ** phase["stage"], phase["alpha"])
            z = torch.randn(real.shape[0], *self.fixed_z.shape[1:], device=self.device)
            last = critic_step == config.critic_steps - 1
            # The last critic step's fakes are kept with their graph and reused for G's update
            # (as the DCGAN reference does): one generator forward per step instead of two.
            with torch.set_grad_enabled(last), self.autocast:
                fake = (self.generator_ddp if last else self.generator)(z, **conditions(labels, boxes), **phase)
            with self.autocast:
                d_parts = self.critic(real, fake.detach().float(), labels, boxes, phase)
            self.opt_d.zero_grad(set_to_none=True)
            d_parts[0].backward()
            self.opt_d.step()
            if config.clip:
                with torch.no_grad():
                    for p in self.discriminator.parameters():
                        p.clamp_(-config.clip, config.clip)
        self.discriminator.requires_grad_(False)
        with self.autocast:
            g_total, g_adv = generator_loss(config, self.discriminator, self.augment, fake.float(), real,
                                            labels, boxes, phase)
        self.opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        self.opt_g.step()
        self.ema.update(self.generator, self.step)
        self.step += 1
        return torch.cat([d_parts.detach().float(), torch.stack([g_total, g_adv]).detach().float()])

    # ------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.cuda:
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rngs = distributed.gather(rng, self.processes)
        return {"format": ckpt.FORMAT, "step": self.step, "config": self.config.to_json(),
                "generator": self.generator.state_dict(), "discriminator": self.discriminator.state_dict(),
                "ema": self.ema.model.state_dict(), "opt_g": self.opt_g.state_dict(),
                "opt_d": self.opt_d.state_dict(), "sampler": self.sampler.state_dict(), "rng": rngs,
                "world": self.processes.world}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.discriminator.load_state_dict(state["discriminator"])
        self.ema.model.load_state_dict(state["ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        for opt, lr in ((self.opt_g, self.config.lr_g), (self.opt_d, self.config.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr  # a resumed run may lower the learning rate
        self.sampler.load_state_dict(state["sampler"])
        self.step = int(state["step"])
        rngs = state["rng"]
        if int(state.get("world", 1)) == self.processes.world:
            mine = rngs[self.processes.rank]
            torch.set_rng_state(mine["torch"])
            if self.cuda and "cuda" in mine:
                torch.cuda.set_rng_state(mine["cuda"], self.device)
        else:  # another number of processes: the stream cannot continue exactly
            torch.manual_seed(self.config.seed * 1000 + self.step + self.processes.rank)

    def save(self) -> None:
        state = self.state_dict()  # every process takes part (RNG states are gathered)
        if not self.processes.is_main:
            return
        ckpt.save_atomic(state, self.out / "checkpoints" / ckpt.FULL_STATE)
        ckpt.save_atomic(self.export(), self.out / "checkpoints" / ckpt.GENERATOR)

    def export(self) -> dict:
        """The generator-only file: EMA weights with standing batch-norm statistics + how to rebuild."""
        phase = self._ready_ema()
        return {"format": ckpt.FORMAT, "kind": "generator", "model": self.config.model,
                "generator_kwargs": self.g_kwargs, "phase": phase, "step": self.step,
                "classes": self.data.classes if self.num_classes else [],
                "weights": {k: v.detach().cpu().contiguous() for k, v in self.ema.model.state_dict().items()}}

    def _ready_ema(self) -> dict:
        """Standing batch-norm statistics for the EMA generator at this step (once per step: the
        grid and the export often fall on the same step); returns the phase to run it at."""
        phase = self.phase()
        if self._ema_ready_at != self.step:
            standing_statistics(self.ema.model, lambda: self.ema.model(
                self.fixed_z, **conditions(self.fixed_labels, self.fixed_boxes), **phase))
            self._ema_ready_at = self.step
        return phase

    def sample_grid(self) -> None:
        phase = self._ready_ema()
        with torch.no_grad():
            images = self.ema.model(self.fixed_z, **conditions(self.fixed_labels, self.fixed_boxes), **phase)
        grid_png(to_full_resolution(images, self.config.resolution),
                 self.out / "samples" / f"step-{self.step:07d}.png", self.fixed_box_lists)


def _optimizer(config: TrainConfig, params, lr: float) -> torch.optim.Optimizer:
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr)
    return torch.optim.Adam(params, lr=lr, betas=tuple(config.betas), eps=1e-8)


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
    if main:
        for folder in (out, out / "checkpoints", out / "samples"):
            remove_stale_temporaries(folder)  # left by a run that was killed while writing
    recorded_threads = None
    if resume:
        recorded_threads = read_run(out).get("threads")
        if not (out / "checkpoints" / ckpt.FULL_STATE).is_file():
            resume = False  # killed before its first checkpoint: start again, from the same seed
    elif main:
        _check_fresh(out)
    on_cpu = processes.device.type == "cpu"
    threads = _threads(processes, recorded_threads) if on_cpu else torch.get_num_threads()
    # read (and check) the checkpoint before the data: a wrong run folder fails at once
    state = ckpt.load_checkpoint(out / "checkpoints" / ckpt.FULL_STATE) if resume else None
    torch.manual_seed(config.seed * 1000 + processes.rank)
    run = _new_run(config, out, processes, progress and main)
    data = run.data
    if resume:
        _resume_state(run, state, out / "checkpoints" / ckpt.FULL_STATE)
        del state
    elif main:
        write_json_atomic(out / RUN_RECORD, _run_record(config, run, threads))
    log = _Log(out, main, resume, run.step)
    log.line(f"{'resumed at' if resume else 'started'} step {run.step} of {config.steps}: {config.model}, "
             f"{len(data.images)} images, {processes.world} process(es), {processes.device}, {threads} thread(s)")
    if resume and on_cpu and recorded_threads and threads != recorded_threads:
        log.line(f"note: the run started with {recorded_threads} thread(s) and continues with {threads} "
                 "(PATHOSYNTH_THREADS): the continuation is not bit-identical to an uninterrupted run")
    cores = usable_cores()
    if on_cpu and threads > cores:
        log.line(f"note: {threads} threads on {cores} core(s) is slow; PATHOSYNTH_THREADS={cores} is faster, "
                 "at the cost of a continuation that is not bit-identical")
    bar = tqdm(total=config.steps, initial=run.step, unit="step", desc=f"train {config.model}",
               disable=not (progress and main), dynamic_ncols=True)
    window, window_start, window_steps = None, time.perf_counter(), 0
    last_good = run.step
    with _interruptible() as interrupt:
        while run.step < config.steps:
            parts = run.train_step()
            window = parts if window is None else window + parts
            window_steps += 1
            bar.update(1)
            at_end = run.step == config.steps or (stop_after is not None and run.step >= stop_after)
            checkpoint_due = run.step % config.checkpoint_every == 0 or at_end
            stopping = distributed.any_true(interrupt["stop"], processes)
            if run.step % config.log_every == 0 or checkpoint_due or stopping:
                means = (window / window_steps)
                distributed_bad = distributed.any_true(not bool(torch.isfinite(means).all()), processes)
                if distributed_bad:
                    bar.close()
                    bad = [n for n, v in zip(run.loss_names, means.tolist()) if not torch.isfinite(torch.tensor(v))]
                    kept = (f"the last good checkpoint (step {last_good}) in {out / 'checkpoints'} is intact: "
                            f"resume it with a lower learning rate (`pathosynth train --resume {out} --lr-d ... "
                            f"--lr-g ...`)" if (out / "checkpoints" / ckpt.FULL_STATE).is_file() else
                            "no checkpoint had been written yet: train again with a lower learning rate "
                            "(--lr-d/--lr-g)")
                    message = (f"training diverged between steps {run.step - window_steps + 1} and {run.step}: "
                               f"{', '.join(bad)} became NaN or infinite; {kept}")
                    log.line(message)
                    raise TrainingDiverged(message)
                elapsed = time.perf_counter() - window_start
                record = _stats(run, means, window_steps, elapsed)
                log.stats(record)
                bar.set_postfix_str(f"D {record['loss_d']:.3f} G {record['loss_g']:.3f} "
                                    f"{record['images_per_s']:.1f} img/s", refresh=False)
                window, window_start, window_steps = None, time.perf_counter(), 0
            if checkpoint_due or stopping:  # before the grid: nothing after it can cost the checkpoint
                run.save()
                last_good = run.step
            if main and (run.step % config.sample_every == 0 or at_end):
                run.sample_grid()
            if stopping:
                bar.close()
                log.line(f"interrupted at step {run.step}; checkpoint written")
                raise TrainingInterrupted(f"interrupted at step {run.step}; the checkpoint is written: continue "
                                          f"with `pathosynth train --resume {out}`")
            if at_end:
                break
    bar.close()
    log.line(f"stopped at step {run.step} of {config.steps}")
    return out


def _resume_state(run: _Run, state: dict, path: Path) -> None:
    try:
        run.load_state_dict(state)
    except (KeyError, RuntimeError, ValueError, TypeError, IndexError) as exc:
        raise UserError(f"{path}: the checkpoint does not fit the networks of {path.parent.parent / 'config.json'} "
                        f"({type(exc).__name__}); resume from the run folder it was written in") from exc


def _new_run(config: TrainConfig, out: Path, processes, progress: bool) -> _Run:
    if family(config.model).spatial_dims == 3:  # imported here: it builds on _Run
        from pathosynth.training.mcgan_run import MCGANRun
        from pathosynth.training.vois import load_voi_set

        return MCGANRun(config, out, processes, load_voi_set(config, progress=progress))
    return _Run(config, out, processes, load_training_set(config, progress=progress))


def _stats(run: _Run, means: torch.Tensor, steps: int, seconds: float) -> dict:
    phase = run.phase(run.step - 1)  # the step just trained
    images = steps * run.config.batch * run.processes.world * (run.config.critic_steps + 1)
    record = {"step": run.step, "images_shown": run.step * run.config.batch * run.processes.world}
    record.update({name: round(float(v), 6) for name, v in zip(run.loss_names, means.tolist())})
    record.update({"stage": phase.get("stage"), "alpha": round(phase["alpha"], 4) if phase else None,
                   "seconds": round(seconds, 3),
                   # images through G per second, real + generated, over the window
                   "images_per_s": round(steps * run.config.batch * run.processes.world / max(seconds, 1e-9), 2),
                   "network_images_per_s": round(images / max(seconds, 1e-9), 2)})
    return record


def _run_record(config: TrainConfig, run: _Run, threads: int) -> dict:
    data = run.data
    source = Dataset.load(config.data).info
    return {"format": RUN_FORMAT, "config": config.to_json(),
            "data": {"path": str(Path(config.data).resolve()), "name": source.name, "modality": source.modality,
                     "classes": data.classes, "channels": data.channels, "images": len(data.images),
                     "intensity_unit": source.intensity_unit, "intensity": vars(data.intensity),
                     "spacing": data.spacing, "png_slope": source.png_slope,
                     "png_intercept": source.png_intercept},
            "generator": {"model": config.model, "kwargs": run.g_kwargs},
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
