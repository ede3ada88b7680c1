"""One run's state for the training loop (`loop.py`): networks, optimizers, EMA, RNG states, the
2D families' step, checkpoints and sample grids. 3D MCGAN's run (`mcgan_run.py`) builds on it;
neither imports the loop, which picks the run by the family's spatial dimensions.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path

import torch

from pathosynth.config import TrainConfig
from pathosynth.models import build_discriminator, build_generator, family, generator_kwargs, latents_for_seeds
from pathosynth.training import checkpoint as ckpt
from pathosynth.training import distributed
from pathosynth.training.batches import BatchSampler, draw_batch
from pathosynth.training.data import TrainingSet
from pathosynth.training.ema import EMA, standing_statistics
from pathosynth.training.objectives import CriticObjective, augmenter, conditions, generator_loss
from pathosynth.training.samples import COLUMNS, ROWS, grid_png, to_full_resolution
from pathosynth.training.schedule import growth_phase, real_at_stage

SAMPLE_SEED_OFFSET = 1_000_003  # grid latents: a seed range no generated image of the run uses


class Run:
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
