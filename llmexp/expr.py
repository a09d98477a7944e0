"""Evaluating and describing the study language's small arithmetic expressions.

Expressions are data (`llmexp.spec.Expr`), never Python code. References are normalised
by the validator to `unit.<column>`, `persona.<attribute>` or `treatment.<name>`; `level`
stands for the treatment level being rendered.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from llmexp.spec import Expr, Treatment, format_number  # format_number: re-exported, prompts use ex.format_number
from llmexp.templates import render


class ExprError(ValueError):
    """An expression cannot be evaluated for a given row (e.g. text times a number)."""


def evaluate(expr: Expr, env: Mapping[str, Any]) -> Any:
    op = expr.op
    if op in ("num", "str"):
        return expr.value
    if op == "ref":
        return env[str(expr.value)]
    if op == "level":
        return env["level"]
    if op == "neg":
        value = evaluate(expr.args[0], env)
        _require_number(value, "-")
        return -value
    left, right = (evaluate(a, env) for a in expr.args)
    symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
    if op == "add" and isinstance(left, str) and isinstance(right, str):
        return left + right
    _require_number(left, symbol)
    _require_number(right, symbol)
    if op == "add":
        return left + right
    if op == "sub":
        return left - right
    if op == "mul":
        return left * right
    if right == 0:
        raise ExprError("division by zero")
    return left / right


def level_value(treatment: Treatment, level: Any, unit: Mapping[str, Any], field: Callable[[str], str] | None = None) -> Any:
    """What `level` of `treatment` stands for with this unit, before the treatment's own
    expression: the labelled value (`"gain" = "..."`), the unit's cell of a column level
    (`questions.low_anchor`), or the level itself. A text value is a template: with `field`
    (a unit field's shown text) its `{fields}` and `{{ }}` are rendered."""
    value = level
    if treatment.level_values:
        expr = treatment.level_values[treatment.levels.index(level)]
        value = unit[str(expr.value).split(".", 1)[1]] if expr.op == "ref" else expr.value
    if field is not None and isinstance(value, str) and ("{" in value or "}" in value):
        return render(value, field)
    return value


def _require_number(value: Any, symbol: str) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ExprError(f"cannot use {value!r} with '{symbol}' (it is not a number)")


def references(expr: Expr) -> set[str]:
    found = {str(expr.value)} if expr.op == "ref" else set()
    for arg in expr.args:
        found |= references(arg)
    return found


def uses_level(expr: Expr) -> bool:
    return expr.op == "level" or any(uses_level(a) for a in expr.args)


def result_type(expr: Expr, types: Mapping[str, str]) -> str:
    """Static type of an expression given the types of the references."""
    op = expr.op
    if op == "num":
        return "integer" if float(expr.value or 0).is_integer() else "number"
    if op == "str":
        return "text"
    if op == "ref":
        return types.get(str(expr.value), "text")
    if op == "level":
        return types.get("level", "number")
    if op == "neg":
        return result_type(expr.args[0], types)
    kinds = [result_type(a, types) for a in expr.args]
    if "text" in kinds:
        return "text"
    if "money" in kinds:
        return "money"
    if op == "div" or "number" in kinds:
        return "number"
    return "integer"


def describe(expr: Expr) -> str:
    """Readable form, for messages and printed specs (the spec value prints itself)."""
    return expr.describe()


DEFAULT_MONEY_FORMAT = "$15.00"
# A money display format is the amount 15 written as the prompt should write every amount:
# text before and after it, and "15" (cents only when not whole), "15.00" or "15,00"
# (always cents; a decimal comma groups thousands with ".").
_MONEY_FORMAT = re.compile(r"([^0-9]*)15(?:([.,])00)?([^0-9]*)")


def money_format_error(example: str) -> str | None:
    """Why a money display format cannot be used, or None."""
    if _MONEY_FORMAT.fullmatch(example) is None:
        return f'money format "{example}" must write the amount 15 once, as in "$15", "$15.00", "15 EUR" or "15,00 €"'
    return None


def format_money(value: float, example: str | None = None) -> str:
    """An amount as `example` writes 15 ("$15.00" by default: "$1,234.50"); a negative
    amount reads "-$1.75", never "$-1.75"."""
    found = _MONEY_FORMAT.fullmatch(example or DEFAULT_MONEY_FORMAT) or _MONEY_FORMAT.fullmatch(DEFAULT_MONEY_FORMAT)
    assert found is not None
    before, mark, after = found.groups()
    amount = abs(float(value))
    digits = f"{amount:,.0f}" if mark is None and round(amount, 2).is_integer() else f"{amount:,.2f}"
    if mark == ",":  # 1.234,50
        digits = digits.replace(",", "\0").replace(".", ",").replace("\0", ".")
    negative = value < 0 and any(d not in "0,." for d in digits)
    return f"{'-' if negative else ''}{before}{digits}{after}"


def inherited_money_format(expr: Expr | None, formats: Mapping[str, str]) -> str | None:
    """The display format of a formatted money unit column an expression uses (the first
    by name: `items.price * 0.9` reads in the format of `price`), or None."""
    for ref in sorted(references(expr)) if expr is not None else []:
        if ref.startswith("unit.") and ref[5:] in formats:
            return formats[ref[5:]]
    return None


def format_value(value: Any, value_type: str, money_format: str | None = None) -> str:
    """How a value reads in a prompt: money as $1.23 (or as `money_format` writes 15),
    numbers without noise."""
    if value is None:
        return ""
    if isinstance(value, bool) or value_type == "boolean":
        return "yes" if value else "no"
    if value_type == "money" and isinstance(value, (int, float)):
        return format_money(value, money_format)
    if value_type == "integer" and isinstance(value, (int, float)):
        return str(int(round(value)))
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) >= 1000 else format_number(round(value, 2))
    return str(value)
