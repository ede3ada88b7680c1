"""Output folders that appear only when complete (DESIGN.md: no half-written output).

Every verb that writes a folder builds it under a temporary name beside the target and renames it
at the end, so a crash, a Ctrl-C or a user error leaves either the old folder or nothing.

What goes into a synthetic folder never names its sources (DESIGN.md: synthetic images never carry
identifiers of a source patient): outputs are named by fresh random uids, and the link back to the
sources is written only on request, to a separate source map outside the folder.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pathosynth.contracts import write_json_atomic
from pathosynth.errors import UserError
from pathosynth.tempfiles import remove_stale_temporaries, temporary_name


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
    remove_stale_temporaries(out.parent, of=out.name)  # left by a run of this command that was killed
    tmp = out.with_name(f"{out.name}.partial") if resumable else temporary_name(out, "partial")
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


# ------------------------------------------------------------- no source identifiers out

SOURCE_MAP_FORMAT = "pathosynth-source-map"
SOURCE_MAP_WARNING = ("This file links synthetic outputs to the source scans they were made from, and so to "
                      "patients. Keep it with the source data; never share it with the synthetic set.")


def new_synthetic_uid() -> str:
    """A fresh DICOM UUID-derived uid (PS3.5 B.2: "2.25." + a random UUID as an integer).

    Random rather than derived from the source: any function of the source (its uid, a hash of its
    file) can be recomputed by whoever holds the source data, which would make the name a lookup key
    back to the patient."""
    return "2.25." + str(uuid.uuid4().int)


def check_source_map_target(source_map: str | Path | None, out: str | Path, overwrite: bool) -> Path | None:
    """The path where the source map may go: never inside `out` (nor its partial twin), so the
    synthetic folder can be shared whole; refused when it exists, unless `overwrite`."""
    if source_map is None:
        return None
    target, out = Path(source_map).resolve(), Path(out).resolve()
    for folder in (out, out.with_name(f"{out.name}.partial")):
        if target == folder or folder in target.parents:
            raise UserError(f"--keep-source-map {source_map}: it lies inside --out {out}, the folder meant to be "
                            "shared; write it elsewhere, next to the source data")
    if target.exists() and not overwrite:
        raise UserError(f"--keep-source-map {source_map} already exists; choose another file or pass --overwrite")
    return target


def write_source_map(target: Path, out: str | Path, scans: list[dict]) -> None:
    """Write the source -> synthetic table the user asked for, atomically (temp name, then rename)."""
    payload = {"format": SOURCE_MAP_FORMAT, "warning": SOURCE_MAP_WARNING, "synthetic_folder": str(Path(out).resolve()),
               "scans": scans}
    write_json_atomic(target, payload)
