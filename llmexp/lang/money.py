"""Validation of how money is read and shown: `decimal ","` on a units statement, a money
column's or treatment's display `format "$15"`, and no negative amount where a price is
expected.

A money cell that reads as the other decimal mark ("3,49" read as 349) silently changes the
experiment, so the CSV reader is strict (`llmexp.data.money`) and `decimal ","` is the only
way to read decimal commas. Kept beside `validate.py`, which calls these for the units and
treatment statements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from llmexp import expr as ex
from llmexp import spec
from llmexp.lang import ast

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator

DECIMAL_MARKS = (".", ",")


def units_decimal(v: Validator, decl: ast.UnitsDecl) -> str:
    """The decimal mark of the units CSV's money cells ("." unless `decimal ","`)."""
    if decl.decimal is None:
        return "."
    mark = decl.decimal.value
    if mark not in DECIMAL_MARKS:
        v.error(f'decimal must be "," or "." (the decimal mark of the money cells), got "{mark}"', decl.decimal.pos)
        return "."
    if decl.source is None:
        v.error('decimal applies to money cells read from a CSV; inline rows write numbers with "."', decl.decimal.pos)
    return mark


def column_formats(v: Validator, decl: ast.UnitsDecl) -> dict[str, str]:
    """Money column -> display format from `columns price: money format "$15"`."""
    formats: dict[str, str] = {}
    for column in decl.columns:
        if column.format is None:
            continue
        if column.type != "money":
            v.error(f"column '{column.name}': format applies to money columns, not {column.type}", column.format.pos)
            continue
        problem = ex.money_format_error(column.format.value)
        if problem:
            v.error(problem, column.format.pos)
            continue
        formats[column.name] = column.format.value
    return formats


def inline_negative_money(v: Validator, decl: ast.UnitsDecl, columns: dict[str, str]) -> None:
    """A negative amount in an inline money column is an error, as in a CSV."""
    for index, row in enumerate(decl.rows, start=1):
        for name, literal in row:
            value = literal.value
            if columns.get(name.name) == "money" and isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
                v.error(
                    f"row {index}: '{name.name}' is a negative amount ({ex.format_number(value)}) where a price is expected",
                    literal.pos,
                    "type the column number if it may be negative",
                )
                return


def treatment_format(v: Validator, decl: ast.TreatmentDecl, value_type: str, value: spec.Expr | None = None) -> str | None:
    """A treatment's money display format (`format "15 EUR"`); without one, the format of
    the money unit column its value is computed from; else None (the default $15.00)."""
    if decl.money_format is None:
        formats = v.units_value.money_formats if v.units_value is not None else {}
        return ex.inherited_money_format(value, formats) if value_type == "money" else None
    if value_type != "money":
        v.error(f"treatment '{decl.name}': format applies to money values (add `as money`)", decl.money_format.pos)
        return None
    problem = ex.money_format_error(decl.money_format.value)
    if problem:
        v.error(problem, decl.money_format.pos)
        return None
    return decl.money_format.value
