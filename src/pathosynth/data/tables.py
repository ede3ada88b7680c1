"""The one reader of the CSV tables users bring: label tables, annotations, split files, manifests.

Tables come from Excel as often as from scripts, so the reader accepts what Excel writes: UTF-8
with or without a byte-order mark, UTF-16 with one ("Unicode text"), Windows-1252 (the "CSV"
of a Western-European Windows), and `;` or tab separators (locales whose decimal mark is a
comma). Header names are stripped of spaces. Anything it cannot read ends in one sentence that
names the file and says how to save it, never in a UnicodeDecodeError.
"""

from __future__ import annotations

import codecs
import csv
import io
from dataclasses import dataclass
from pathlib import Path

from pathosynth.data.paths import kind_of
from pathosynth.errors import UserError

SAVE_HINT = "save it as 'CSV UTF-8 (comma delimited)'"
_DELIMITERS = (",", ";", "\t")
# Tried in order when no byte-order mark says otherwise; latin-1 decodes any byte, so it is last.
_FALLBACK_ENCODINGS = ("utf-8", "cp1252", "latin-1")


@dataclass
class Table:
    path: Path
    columns: list[str]
    rows: list[tuple[int, dict[str, str]]]  # (line number in the file, cells stripped of spaces)
    encoding: str

    def where(self, line: int) -> str:
        return f"{self.path} line {line}"


def read_table(path: str | Path, required: tuple[str, ...], *, what: str = "table",
               where_to_give: str = "") -> Table:
    """Read a CSV whose header holds every column in `required`; the rows as stripped strings.
    `where_to_give` tells a user without the file how to name it (e.g. "give it with --csv")."""
    path = Path(path)
    if kind_of(path) != "file":
        raise UserError(f"{path}: {what} not found; {where_to_give or 'give the path of a CSV file'} "
                        f"(columns {','.join(required)})")
    text, encoding = decode_text(path)
    lines = text.splitlines()
    if not lines or not lines[0].strip():
        raise UserError(f"{path}: the {what} is empty; its first line must be the header "
                        f"{','.join(required)}")
    delimiter = _delimiter(lines[0], required)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [name.strip() for name in next(reader)]
    _check_header(path, columns, required, what)
    rows = []
    for cells in reader:
        if not any(cell.strip() for cell in cells):
            continue  # blank lines, and lines of empty cells as Excel leaves below a table
        if len(cells) > len(columns):
            raise UserError(f"{path} line {reader.line_num}: {len(cells)} cells but the header has "
                            f"{len(columns)}; quote cells that hold the separator, e.g. \"5,6,20,30\"")
        padded = cells + [""] * (len(columns) - len(cells))
        rows.append((reader.line_num, {name: cell.strip() for name, cell in zip(columns, padded)}))
    return Table(path, columns, rows, encoding)


def decode_text(path: Path) -> tuple[str, str]:
    """The file's text and the encoding it was read with (see the module docstring)."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror or exc}); check its permissions") from exc
    if raw.startswith(codecs.BOM_UTF8):
        candidates: tuple[str, ...] = ("utf-8-sig",)
    elif raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ("utf-16",)
    elif b"\x00" in raw:  # .xlsx, UTF-16 without a byte-order mark, or any other binary file
        raise UserError(f"{path}: is not a text CSV file (it holds binary data; an Excel workbook "
                        f"is not a CSV); {SAVE_HINT}")
    else:
        candidates = _FALLBACK_ENCODINGS
    for encoding in candidates:
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise UserError(f"{path}: its text does not match the byte-order mark at its start; {SAVE_HINT}")


def _delimiter(header: str, required: tuple[str, ...]) -> str:
    """The separator whose header cells hold the required columns; else the one most used."""
    for delimiter in _DELIMITERS:
        cells = {cell.strip().strip('"') for cell in header.split(delimiter)}
        if all(name in cells for name in required):
            return delimiter
    return max(_DELIMITERS, key=header.count)


def _check_header(path: Path, columns: list[str], required: tuple[str, ...], what: str) -> None:
    repeated = sorted({name for name in columns if name and columns.count(name) > 1})
    if repeated:
        raise UserError(f"{path}: column(s) {', '.join(repeated)} appear more than once in the header; "
                        "keep one of each")
    missing = [name for name in required if name not in columns]
    if missing:
        found = ", ".join(name for name in columns if name) or "none"
        raise UserError(f"{path}: missing column(s) {', '.join(missing)} (found: {found}); the {what} "
                        f"needs {','.join(required)} in its first line")
