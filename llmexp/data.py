"""Reading the CSV tables a study references (units, personas, human baselines).

Values are typed by column (text, number, integer, money, boolean). Every problem names
the file, the row (and its line in the file) and the column, never a bare exception.
"""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path
from typing import Any

from llmexp.errors import DataError

TRUE_WORDS = {"true", "yes", "1", "y", "t"}
FALSE_WORDS = {"false", "no", "0", "n", "f"}


def resolve_path(relative: str, study_dir: Path) -> Path:
    """Resolve a path from a study file, refusing anything outside the study's folder tree."""
    if "\x00" in relative:
        raise DataError(f"{relative!r} is not a usable file name (it contains a NUL character)")
    base = study_dir.resolve()
    try:
        path = (base / relative).resolve()
    except (OSError, ValueError) as exc:
        raise DataError(f"{relative!r} is not a usable file name ({exc})") from None
    if not path.is_relative_to(base):
        raise DataError(f'"{relative}" points outside the study\'s folder ({base}); copy the file next to the study')
    return path


# A money cell: digits with an optional thousands grouping and decimals, in the file's
# decimal mark ("." by default; `decimal ","` on the units for "1.234,50").
_MONEY = {
    ".": re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+"),
    ",": re.compile(r"\d{1,3}(?:\.\d{3})+(?:,\d+)?|\d+(?:,\d+)?|,\d+"),
}
_CURRENCY = "$€£ "


def money(text: str, decimal: str = ".") -> float:
    """A money cell as a number: "$1,234.50" (or "1.234,50 €" with `decimal ","`).

    Strict, because a misread price silently changes the experiment: a cell that reads as
    the other decimal mark ("3,49", "1.234,50") or a negative amount (where a price is
    expected) raises ValueError saying what to write instead."""
    raw = text.strip()
    body = raw.strip(_CURRENCY)
    if body.startswith("-") or raw.startswith("-"):
        raise ValueError(f"{raw!r} is a negative amount where a price is expected (type the column number if it may be negative)")
    other = "," if decimal == "." else "."
    if _MONEY[decimal].fullmatch(body):
        return float(body.replace(other, "").replace(",", "."))
    if _MONEY[other].fullmatch(body):
        fixed = body.replace(decimal, "").replace(",", ".")
        if decimal == ".":
            raise ValueError(f"{raw!r} reads as a decimal comma: write {fixed}, or add decimal \",\" to the units statement")
        raise ValueError(f"{raw!r} does not use the decimal comma the units declare (decimal \",\"): write {fixed.replace('.', ',')}")
    raise ValueError(f"{raw!r} is not a money amount")


def convert(text: str, coltype: str, decimal: str = "."):
    """Convert one CSV cell; raises ValueError with a short reason. `decimal`: the decimal
    mark of money cells."""
    value = text.strip()
    if coltype == "text":
        return value
    if value == "":
        raise ValueError("empty")
    if coltype == "boolean":
        low = value.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"{value!r} is not true/false")
    if coltype == "money":
        return money(value, decimal)
    try:
        number = float(value)
    except ValueError:
        kind = {"money": "a money amount", "integer": "a whole number"}.get(coltype, "a number")
        raise ValueError(f"{text.strip()!r} is not {kind}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise ValueError(f"{text.strip()!r} is not a finite number")
    if coltype == "integer":
        if not number.is_integer():
            raise ValueError(f"{text.strip()!r} is not a whole number")
        return int(number)
    return number


def infer_type(values: list[str]) -> str:
    """The narrowest type every non-empty value fits."""
    present = [v.strip() for v in values if v.strip() != ""]
    if not present:
        return "text"
    for coltype in ("integer", "number"):
        try:
            for v in present:
                convert(v, coltype)
            return coltype
        except ValueError:
            continue
    return "text"


def read_table(
    path: Path,
    shown_as: str,
    columns: dict[str, str] | None = None,
    required: tuple[str, ...] = (),
    decimal: str = ".",
) -> tuple[dict[str, str], list[dict]]:
    """Read a CSV into typed rows. `columns` types named columns; the rest are inferred;
    `decimal` is the decimal mark of money cells.

    Returns (column types, rows). Raises DataError naming file, row and column.
    """
    if not path.exists():
        raise DataError(f'{shown_as}: file not found (looked for {path})')
    if not path.is_file():
        raise DataError(f"{shown_as}: not a file (looked for {path})")
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            try:
                header = next(reader)
            except StopIteration:
                raise DataError(f"{shown_as}: the file is empty (no header row)") from None
            numbered = [(reader.line_num, row) for row in reader]  # line in the file, for messages
    except UnicodeDecodeError as exc:
        raise DataError(f"{shown_as}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise DataError(f"{shown_as}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise DataError(f"{shown_as}: cannot read ({exc.strerror or exc})") from None

    header = [h.strip() for h in header]
    duplicates = sorted(name for name, times in Counter(header).items() if times > 1)  # linear in columns
    if duplicates:
        raise DataError(f"{shown_as}: duplicate column(s) in header: {_first_names(duplicates)}")
    columns = dict(columns or {})
    header_names = set(header)
    for name in list(columns) + list(required):
        if name not in header_names:
            raise DataError(f"{shown_as}: no column '{name}' (columns are: {', '.join(header)})")
    numbered = [(line, r) for line, r in numbered if any(cell.strip() for cell in r)]
    raw_rows = [r for _, r in numbered]
    lines = [line for line, _ in numbered]
    if not raw_rows:
        raise DataError(f"{shown_as}: the table has a header but no rows")

    for index, row in enumerate(raw_rows, start=1):
        if len(row) != len(header):
            raise DataError(
                f"{shown_as}: row {index} (line {lines[index - 1]}) has {len(row)} fields but the header has {len(header)}"
            )
    types = {}
    for i, name in enumerate(header):
        types[name] = columns.get(name) or infer_type([r[i] for r in raw_rows])

    rows = []
    for index, row in enumerate(raw_rows, start=1):
        typed: dict[str, Any] = {}
        for name, cell in zip(header, row, strict=True):  # row lengths were checked above
            if cell.strip() == "" and name not in columns:
                typed[name] = None  # a blank in an undeclared column is a missing value
                continue
            try:
                typed[name] = convert(cell, types[name], decimal)
            except ValueError as exc:
                raise DataError(f"{shown_as}: row {index} (line {lines[index - 1]}), column '{name}': {exc}") from None
        rows.append(typed)
    return types, rows


NAMES_SHOWN = 20  # names listed in one error line before "and N more"


def _first_names(names: list[str]) -> str:
    """The first NAMES_SHOWN names, then how many more: an error line stays readable even
    for a header with thousands of repeated names."""
    shown = ", ".join(names[:NAMES_SHOWN])
    return shown if len(names) <= NAMES_SHOWN else f"{shown} and {len(names) - NAMES_SHOWN:,} more"
