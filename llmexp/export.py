"""Tables written for spreadsheets: CSV cells that cannot run as formulas.

A CSV opened in Excel, LibreOffice or Google Sheets runs a cell that begins with `=`, `+`,
`-` or `@` (and, in some, a tab or carriage return) as a formula: `=HYPERLINK(...)` or
`=cmd|' /C calc'!A0` in a unit's name or in a model's answer would run on the reader's
machine. Following the OWASP rule, `neutralise(value)` prefixes such a text cell with an
apostrophe, which spreadsheets show as text. Numbers stay numbers: a cell that is a number
(including a negative one, or a number written as text such as "-0.5") is left alone, and
so is every non-text column. Every CSV llmexp writes goes through `csv_safe(frame)`
(`llmexp results --export`, the analysis tables); parquet and JSON keep values as they are.
"""

from __future__ import annotations

import re
from typing import Any

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def neutralise(value: Any) -> Any:
    """`value`, with a leading apostrophe when it is text a spreadsheet would run as a formula."""
    if not isinstance(value, str) or not value.startswith(FORMULA_PREFIXES):
        return value
    if _NUMBER.fullmatch(value):
        return value
    return "'" + value


def csv_safe(frame: Any) -> Any:
    """A copy of a pandas DataFrame whose text cells are neutralised (other columns, and the
    column names unless they are formulas, unchanged)."""
    out = frame.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype) in ("string", "str"):
            out[col] = out[col].map(neutralise)
    out.columns = [neutralise(c) for c in out.columns]
    return out
