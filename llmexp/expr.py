"""Evaluating and describing the study language's small arithmetic expressions.

Expressions are data (`llmexp.spec.Expr`), never Python code. References are normalised
by the validator to `unit.<column>`, `persona.<attribute>` or `treatment.<name>`; `level`
stands for the treatment level being rendered.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from llmexp.spec import Expr, format_number  # format_number: re-exported, prompts use ex.format_number


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


def format_value(value: Any, value_type: str) -> str:
    """How a value reads in a prompt: money as $1.23, numbers without noise."""
    if value is None:
        return ""
    if isinstance(value, bool) or value_type == "boolean":
        return "yes" if value else "no"
    if value_type == "money" and isinstance(value, (int, float)):
        return f"${value:,.2f}"
    if value_type == "integer" and isinstance(value, (int, float)):
        return str(int(round(value)))
    if isinstance(value, float):
        return f"{value:,.2f}".rstrip("0").rstrip(".") if abs(value) >= 1000 else format_number(round(value, 2))
    return str(value)
