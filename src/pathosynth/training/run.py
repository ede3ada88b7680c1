"""One run's state for the training loop (`loop.py`): the family's step (`step.py`), the step
counter, the batch order, EMA, RNG states, checkpoints and sample grids. It does not import the
loop; the family says which step it trains with.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pathosynth.config import TrainConfig
from pathosynth.models import family
from pathosynth.training import checkpoint as ckpt
from pathosynth.training import distributed
from pathosynth.training.batches import BatchSampler
from pathosynth.training.ema import EMA
from pathosynth.training.samples import COLUMNS, grid_png
from pathosynth.training.step import TrainingStep


class Run:
    """The state of one run: the family's step, EMA, batch order, RNGs, and the run folder's files."""

    def __init__(self, config: TrainConfig, out: Path, processes, progress: bool, data=None):
        """`data`: the step's training set, if already loaded (benchmarks reuse one across runs)."""
        self.config, self.out, self.processes = config, out, processes
        self.device = processes.device
        self.cuda = self.device.type == "cuda"
        chosen = family(config.model)
        self.data = chosen.step.load_data(config, progress) if data is None else data
        self.sampler = BatchSampler(len(self.data.images), config.batch, config.seed, processes.rank, processes.world)
        self.trainer: TrainingStep = chosen.step(config, chosen, self.data, processes, self.sampler)
        self.ema = EMA(self.trainer.generator, config.ema_decay)
        self.loss_names = self.trainer.loss_names
        self.step = 0
        self._ema_ready_at = -1

    def train_step(self) -> torch.Tensor:
        parts = self.trainer(self.step)
        self.ema.update(self.trainer.generator, self.step)
        self.step += 1
        return parts

    def phase(self, step: int | None = None) -> dict:
        """The generator's phase at `step` (default: the step about to be trained)."""
        return self.trainer.phase(self.step if step is None else step)

    # ------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> dict:
        rng = {"torch": torch.get_rng_state()}
        if self.cuda:
            rng["cuda"] = torch.cuda.get_rng_state(self.device)
        rngs = distributed.gather(rng, self.processes)
        parts = {name: part.state_dict() for name, part in self.trainer.parts().items()}
        return {"format": ckpt.FORMAT, "step": self.step, "config": self.config.to_json(), **parts,
                "ema": self.ema.model.state_dict(), "sampler": self.sampler.state_dict(), "rng": rngs,
                "world": self.processes.world}

    def load_state_dict(self, state: dict) -> None:
        parts = self.trainer.parts()
        for name, part in parts.items():
            part.load_state_dict(state[name])
        self.ema.model.load_state_dict(state["ema"])
        for name, lr in self.trainer.learning_rates().items():
            for group in parts[name].param_groups:
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
                "generator_kwargs": self.trainer.generator_kwargs, "phase": phase, "step": self.step,
                "classes": self.trainer.classes,
                "weights": {k: v.detach().cpu().contiguous() for k, v in self.ema.model.state_dict().items()},
                **self.trainer.export_extras()}

    def _ready_ema(self) -> dict:
        """Standing batch-norm statistics for the EMA generator at this step (once per step: the
        grid and the export often fall on the same step); returns the phase to run it at."""
        phase = self.phase()
        if self._ema_ready_at != self.step:
            self.trainer.settle(self.ema.model, phase)
            self._ema_ready_at = self.step
        return phase

    def sample_grid(self) -> None:
        phase = self._ready_ema()
        images, boxes, columns = self.trainer.grid(self.ema.model, phase)
        grid_png(images, self.out / "samples" / f"step-{self.step:07d}.png", boxes, columns=columns or COLUMNS)


