"""CSV exports, written in one place so that every export gets the same defence.

Reader names, questionnaire answers and trainee answers are typed by people outside the admin's
control, and the admin opens the export in a spreadsheet. A spreadsheet runs a cell that starts
with `=`, `+`, `-`, `@`, a tab or a carriage return as a formula (`=HYPERLINK(...)` can leak data or
lure a click), so such text cells get a leading single quote (OWASP's rule for CSV injection).
Numbers are left as numbers: a negative value is data, not a formula, and must stay computable.
"""

from __future__ import annotations

import csv
import io

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value):
    """`value` unchanged, unless it is text a spreadsheet would run as a formula: then quoted."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_text(rows: list[dict], columns: list[str]) -> str:
    """The rows as CSV (a header, then one line per row; cells quoted where the csv module needs)."""
    buffer = io.StringIO()
    # CRLF line ends (RFC 4180): the csv module quotes a cell holding any character of the line end,
    # so with "\n" alone a carriage return inside an answer would go out bare and break the row
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({key: spreadsheet_safe(value) for key, value in row.items()} for row in rows)
    return buffer.getvalue()
