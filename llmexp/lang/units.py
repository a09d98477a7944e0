"""The units table of a study: read from its CSV (typed by `columns`) or from rows written in
the study, checked for a usable, unique key. Part of the validator (`validate.py`): each
function takes the `Validator` and reports through it."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from llmexp import spec
from llmexp.data import read_table, resolve_path
from llmexp.errors import DataError
from llmexp.errors import did_you_mean as suggest
from llmexp.lang import ast
from llmexp.lang.money import DECIMAL_MARKS, column_formats, inline_negative_money, units_decimal

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator


def units_table(v: Validator) -> spec.Units | None:
    """The units table (from its CSV or its inline rows) with a unique key. None, with
    `units_failed` set, when the table is unusable: later checks that need it stay quiet
    instead of reporting follow-on errors."""
    decl = v.one(ast.UnitsDecl, "units", 'units products from "data/products.csv"')
    if decl is None:
        v.units_failed = True
        return None
    table = _csv_units(v, decl) if decl.source is not None else _inline_units(v, decl)
    if table is None:
        v.units_failed = True
        return None
    rows, columns = table
    key = _units_key(v, decl, rows, columns)
    if key is None:
        return None
    if decl.source is None:
        units_decimal(v, decl)  # (only a CSV has a decimal mark to declare)
        inline_negative_money(v, decl, columns)
    return spec.Units(
        name=decl.name,
        key=key,
        columns=cast(dict[str, spec.ColumnType], columns),
        rows=tuple(rows),
        source=decl.source.value if decl.source else None,
        money_formats=column_formats(v, decl),
        decimal=decl.decimal.value if decl.decimal is not None and decl.decimal.value in DECIMAL_MARKS else ".",
    )

def _csv_units(v: Validator, decl: ast.UnitsDecl) -> tuple[list[dict], dict[str, str]] | None:
    """Rows and column types of a units CSV, read with the declared column types."""
    assert decl.source is not None
    declared = {}
    for column in decl.columns:
        if column.name in declared:
            v.error(f"column '{column.name}' is typed twice", column.pos)
        declared[column.name] = column.type
    try:
        path = resolve_path(decl.source.value, v.study_dir)
        types, rows = read_table(path, decl.source.value, declared, decimal=units_decimal(v, decl))
    except DataError as exc:
        v.error(str(exc), decl.source.pos)
        return None
    return rows, types

def _inline_units(v: Validator, decl: ast.UnitsDecl) -> tuple[list[dict], dict[str, str]] | None:
    """Rows and column types of a table written in the study (`row product "A", price 2`):
    every row must set the same fields once; types are inferred, then `columns` may
    narrow them (e.g. a number to money). None when the rows do not agree."""
    errors_before = len(v.problems)
    rows = _inline_rows(v, decl)
    if len(v.problems) > errors_before:  # rows do not agree: the table is unusable
        return None
    columns = _inline_column_types(v, decl, rows)
    _type_inline_columns(v, decl, rows, columns)
    if len(v.problems) > errors_before:
        return None
    for row in rows:  # whole numbers as int, as a CSV's integer column reads
        for name, coltype in columns.items():
            if coltype == "integer":
                row[name] = int(row[name])
    return rows, columns

def _inline_rows(v: Validator, decl: ast.UnitsDecl) -> list[dict]:
    rows = []
    first_fields = [n.name for n, _ in decl.rows[0]]
    for index, row in enumerate(decl.rows, start=1):
        names = [n.name for n, _ in row]
        dupes = [n for n, c in Counter(names).items() if c > 1]
        if dupes:
            v.error(f"row {index} sets '{dupes[0]}' twice", row[0][0].pos)
        elif sorted(names) != sorted(first_fields):
            v.error(
                f"row {index} has fields {', '.join(names)} but row 1 has {', '.join(first_fields)}",
                row[0][0].pos,
            )
        rows.append({n.name: lit.value for n, lit in row})
    return rows

def _inline_column_types(v: Validator, decl: ast.UnitsDecl, rows: list[dict]) -> dict[str, str]:
    columns: dict[str, str] = {}
    for name in (n.name for n, _ in decl.rows[0]):
        values = [r.get(name) for r in rows]
        if all(isinstance(v, str) for v in values):
            columns[name] = "text"
        elif all(isinstance(v, bool) for v in values):
            columns[name] = "boolean"
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            columns[name] = "integer" if all(float(cast(float, v)).is_integer() for v in values) else "number"
        else:
            v.error(f"column '{name}' mixes text and numbers across rows", decl.pos)
            columns[name] = "text"
    return columns

def _type_inline_columns(v: Validator, decl: ast.UnitsDecl, rows: list[dict], columns: dict[str, str]) -> None:
    """`columns price: money` types inline fields too, when their values fit the type."""
    typed = set()
    for column in decl.columns:
        if column.name in typed:
            v.error(f"column '{column.name}' is typed twice", column.pos)
        typed.add(column.name)
        if column.name not in columns:
            v.error(f"no column '{column.name}' in the rows", column.pos, suggest(column.name, columns))
        elif not _fits(columns[column.name], column.type, [r[column.name] for r in rows]):
            v.error(f"column '{column.name}' holds {columns[column.name]} values; it cannot be {column.type}", column.pos)
        else:
            columns[column.name] = column.type

def _units_key(v: Validator, decl: ast.UnitsDecl, rows: list[dict], columns: dict[str, str]) -> str | None:
    """The key column (declared, else the first), checked to exist and be unique."""
    key = decl.key.name if decl.key else next(iter(columns), None)
    if decl.key and key not in columns:
        v.error(f"key column '{key}' is not in the table", decl.key.pos, suggest(str(key), columns))
        v.units_failed = True
        return None
    if key is None:
        v.error("the units table has no columns", decl.pos)
        return None
    seen: dict[Any, int] = {}
    for index, row in enumerate(rows, start=1):
        value = row.get(key)
        if value in seen:
            v.error(
                f"units key '{key}' repeats value {value!r} (rows {seen[value]} and {index}); keys must be unique",
                decl.pos,
            )
            break
        seen[value] = index
    return key


def _fits(inferred: str, declared: str, values: list) -> bool:
    """Whether inline values of an inferred type can be typed as declared."""
    if declared == inferred:
        return True
    if declared in ("number", "money"):
        return inferred in ("number", "integer", "money")
    if declared == "integer":
        return inferred in ("number", "integer") and all(float(v).is_integer() for v in values)
    return False

