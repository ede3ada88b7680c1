"""Checkpoint files: written atomically, read without unpickling code.

A full training state (`checkpoints/last.pt`) holds models, optimizers, EMA, RNG states, the batch
order and the step, so `--resume` continues exactly. The generator-only file
(`checkpoints/generator.pt`) holds the EMA generator's weights and the plain-data recipe to rebuild
it. Both hold only tensors and plain Python values, so `torch.load(weights_only=True)` reads them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from pathosynth.contracts import replacing
from pathosynth.errors import UserError

FULL_STATE = "last.pt"
GENERATOR = "generator.pt"
FORMAT = "pathosynth-checkpoint"


def save_atomic(payload: dict, path: Path) -> None:
    """`torch.save` through `contracts.replacing`: a crash or kill at any moment leaves either the
    old file or the new one, never half of one."""
    with replacing(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict:
    if not path.is_file():
        raise UserError(f"{path}: no checkpoint; train first (`pathosynth train`) or check the run folder")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        raise UserError(f"{path}: the checkpoint is damaged or not a pathosynth checkpoint "
                        f"({type(exc).__name__}); resume from an intact copy or train again") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise UserError(f"{path}: not a pathosynth checkpoint; point to a run folder made by `pathosynth train`")
    _check_family(path, payload)
    return payload


def _check_family(path: Path, payload: dict) -> None:
    """A checkpoint copied into another family's run folder would be built as one family and run
    as the other: compare it with the run's config.json before anything is built from it."""
    record = path.parent.parent / "config.json"
    try:
        expected = json.loads(record.read_text())["config"]["model"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no readable run record beside it: read_run reports that where a run is required
    found = payload.get("model") or (payload.get("config") or {}).get("model")
    if found != expected:
        raise UserError(f"{path}: a {found} checkpoint in a {expected} run folder ({record} says {expected}); "
                        "put the checkpoint back in its own run folder or train this run again")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
