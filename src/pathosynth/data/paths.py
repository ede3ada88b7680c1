"""Looking up a path a user typed or a table listed.

`Path.exists()` and `Path.is_dir()` raise for a name longer than the file system allows, a loop
of links or a parent folder without permission; `kind_of` turns those into a `BadInputError`
that names the path, so a mistyped path ends in one sentence instead of a traceback.
"""

from __future__ import annotations

import stat
from pathlib import Path

from pathosynth.errors import BadInputError


def kind_of(path: str | Path) -> str | None:
    """'dir', 'file' (anything else that is there), or None when nothing is there (links followed)."""
    try:
        mode = Path(path).stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise BadInputError(path, f"cannot be looked up ({exc.strerror or exc})",
                            "check the path (its length, links and the permissions of its folders)") from exc
    return "dir" if stat.S_ISDIR(mode) else "file"
