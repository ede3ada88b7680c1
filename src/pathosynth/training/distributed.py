"""Several processes (GPUs, nodes) through `torchrun` + DistributedDataParallel; one process otherwise.

`torchrun --nproc_per_node=K -m pathosynth train ...` sets RANK / WORLD_SIZE / LOCAL_RANK; each
process then trains on its slice of every batch and DDP averages the gradients. Rank 0 alone
logs, draws samples and writes checkpoints. NCCL on GPUs, gloo on CPUs (what the tests use).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel


@dataclass
class Processes:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def start() -> Processes:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Processes(rank, world, local_rank, device)


def stop(processes: Processes) -> None:
    if processes.distributed and dist.is_initialized():
        dist.destroy_process_group()


def wrap(module: nn.Module, processes: Processes) -> nn.Module:
    if not processes.distributed:
        return module
    ids = [processes.local_rank] if processes.device.type == "cuda" else None
    # PGGAN leaves the stages it is not at without gradients.
    return DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)


def any_true(flag: bool, processes: Processes) -> bool:
    """True on every process when `flag` is true on any (so all stop together)."""
    if not processes.distributed:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=processes.device)
    dist.all_reduce(value)
    return bool(value.item() > 0)


def barrier(processes: Processes) -> None:
    if processes.distributed:
        dist.barrier()


def gather(value: dict, processes: Processes) -> list[dict]:
    """Every process's `value`, in rank order (e.g. the RNG states a checkpoint keeps)."""
    if not processes.distributed:
        return [value]
    everyone: list = [None] * processes.world
    dist.all_gather_object(everyone, value)
    return everyone
