"""Temporary names for atomic writes, and the removal of those a killed process left behind.

Writers that build a file or folder under a temporary name and rename it when complete use
`temporary_name`: `.NAME.tmp-PID` beside the target (`.NAME.partial-PID` for folders). Single files
go through `contracts.replacing`, which adds the flush to disk. A SIGKILL between the two leaves
the temporary behind; `remove_stale_temporaries` deletes those whose process is gone, and the
training loop, `outputs.building`, the dataset writer, `data show` and `evaluate classify` call it
when they start.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

_TEMPORARY = re.compile(r"^\.(?P<name>.+)\.(?:tmp|partial)-(?P<pid>\d+)(?:\.[A-Za-z0-9]+)?$")


def temporary_name(path: Path, kind: str = "tmp", suffix: str = "") -> Path:
    """The name `path` is written under before it is renamed into place; `suffix` (e.g. ".png")
    for writers that choose the format from the name."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}{suffix}")


def remove_stale_temporaries(folder: Path, of: str | None = None) -> list[Path]:
    """Delete the temporaries in `folder` whose writing process no longer runs; returns them.
    `of`: only those of the target with this name (in a folder that is not pathosynth's alone)."""
    removed: list[Path] = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _TEMPORARY.match(entry.name)
        if match is None or _running(int(match["pid"])) or (of is not None and match["name"] != of):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def _running(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: alive
        return True
    return True
