"""Errors a user can cause.

The CLI turns a `UserError` into one line on stderr and a non-zero exit, without a traceback.
Anything else that escapes is a bug in pathosynth and keeps its traceback.
"""

from __future__ import annotations

from pathlib import Path


class UserError(Exception):
    """Something the user can fix: a bad path, a corrupt file, an inconsistent annotation."""


class BadInputError(UserError):
    """One input file or case is unusable; importers may skip it with --skip-bad."""

    def __init__(self, path: str | Path, problem: str, fix: str):
        self.path = str(path)
        self.problem = problem
        self.fix = fix
        super().__init__(f"{self.path}: {problem}; {fix}")
