"""The folder contracts, without torch: the run folder's record as a typed object, the intensity
mapping a run keeps, and ONE way to write a file so that a crash never leaves half of it.

Generation, inpainting, teaching cases, the CLI and the report read a run folder through
`read_run` and never import the training loop; every writer of a single file goes through
`replacing` (or its `write_text_atomic` / `write_json_atomic` shorthands).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pathosynth.errors import UserError
from pathosynth.tempfiles import temporary_name

RUN_FORMAT = "pathosynth-run"
RUN_RECORD = "config.json"  # in a run folder: format, resolved config, data facts, seeds, versions


# ------------------------------------------------------------------------------ atomic files

@contextmanager
def replacing(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `path` to write to; when the block ends without an error the
    file is flushed to disk and renamed over `path`, so a crash or kill at any moment leaves the old
    file or the new one, never half of one. The temporary is removed on an error. `suffix` (e.g.
    ".png") for writers that pick a format from the name."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path, suffix=suffix)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text)


def write_json_atomic(path: Path, payload, *, allow_nan: bool = False) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, allow_nan=allow_nan) + "\n")


# ------------------------------------------------------------------------------- intensity

@dataclass
class Intensity:
    """value = normalised * half + mid, clipped to [low_clip, high_clip] (the data's own range).
    Works on numpy arrays and torch tensors alike (plain arithmetic)."""

    mid: float
    half: float
    low_clip: float
    high_clip: float

    def normalise(self, values):
        return (values - self.mid) / self.half

    def restore(self, values):
        import numpy as np

        return np.clip(values * self.half + self.mid, self.low_clip, self.high_clip)


# ------------------------------------------------------------------------------- run folders

@dataclass(frozen=True)
class RunRecord:
    """A trained run folder's `config.json`, read and checked once. A class-separate run's record
    names its per-class sub-runs; `data` is then the first sub-run's (they share the data)."""

    path: Path
    raw: dict

    @property
    def config(self) -> dict:
        return self.raw["config"]

    @property
    def model(self) -> str:
        return self.config["model"]

    @property
    def separate(self) -> dict[str, str] | None:
        """{class: sub-run folder relative to the run} for a class-separate run, else None."""
        return self.raw.get("separate") or None

    @cached_property  # a class-separate run reads its sub-run's record once
    def data(self) -> dict:
        if self.separate:
            return read_run(self.path / next(iter(self.separate.values()))).raw["data"]
        return self.raw["data"]

    @property
    def generator_folders(self) -> dict[str | None, Path]:
        """{class: run folder holding its generator}; {None: the run} unless class-separate."""
        if self.separate:
            return {name: self.path / relative for name, relative in self.separate.items()}
        return {None: self.path}

    @cached_property
    def intensity(self) -> Intensity:
        return Intensity(**self.data["intensity"])

    def get(self, key: str, default=None):
        return self.raw.get(key, default)


def read_run(out: Path) -> RunRecord:
    out = Path(out)
    path = out / RUN_RECORD
    if not path.is_file():
        raise UserError(f"{out}: not a run folder (no {RUN_RECORD}); train one with `pathosynth train`")
    try:
        run = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path}: damaged ({exc}); train the run again") from exc
    if not isinstance(run, dict) or run.get("format") != RUN_FORMAT:
        raise UserError(f"{path}: not a pathosynth run; point to a folder made by `pathosynth train`")
    return RunRecord(out, run)
