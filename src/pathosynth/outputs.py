"""Output folders that appear only when complete (DESIGN.md: no half-written output).

Every verb that writes a folder builds it under a temporary name beside the target and renames it
at the end, so a crash, a Ctrl-C or a user error leaves either the old folder or nothing.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pathosynth.errors import UserError


def refuse_existing(out: Path, overwrite: bool) -> None:
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists; choose another --out or pass --overwrite")


@contextmanager
def building(out: str | Path, overwrite: bool = False, *, resumable: bool = False) -> Iterator[Path]:
    """Yield an empty folder to fill; when the block ends normally it becomes `out`.

    `resumable`: the folder is `OUT.partial` and survives an interruption or an error, so a rerun
    of the same command finds what was finished (the caller decides what to reuse); otherwise it
    is private to this process and removed whatever happens.
    """
    out = Path(out)
    refuse_existing(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.partial") if resumable else out.parent / f".{out.name}.partial-{os.getpid()}"
    if not resumable:
        shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(exist_ok=True)
    try:
        yield tmp
        if out.exists():
            shutil.rmtree(out)
        tmp.rename(out)
    finally:
        if not resumable:
            shutil.rmtree(tmp, ignore_errors=True)
