"""Validation of an answer's range clause: `number valid LOW to HIGH [shown]`.

The range answers are checked against is separate from what the prompt says: `valid`
keeps it out of every prompt (a stated range is itself an anchor), `shown` states it, and a
bound may be read per unit from a numeric unit column (`valid questions.min_value to
questions.max_value`). The old form `number LOW to HIGH` still validates and states the
range (prompts unchanged); the lint here suggests `valid`. Kept beside `validate.py`, which
calls `range_fields` for every answer it builds (outcomes, probes, checks).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmexp.answers import AnswerType
from llmexp.errors import did_you_mean
from llmexp.lang import ast
from llmexp.spec import format_number

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator

NUMERIC_COLUMNS = ("number", "integer", "money")


def range_fields(v: Validator, node: ast.AnswerNode, atype: AnswerType, where: str) -> dict[str, Any] | None:
    """The AnswerSpec fields the range clause adds (`shown`, `low_ref`, `high_ref`), {} for
    the old form; None after reporting an error."""
    if not node.valid:
        _lint_stated(v, node, atype, where)
        return {}
    if not atype.range_hideable:  # the grammar spells `valid` for number and money only
        v.error(f"{where}: a {node.type} answer has no range to validate", node.pos)
        return None
    fields: dict[str, Any] = {} if node.shown else {"shown": False}
    refs = [(end, ref) for end, ref in (("low", node.low_ref), ("high", node.high_ref)) if ref is not None]
    if refs and node.shown:
        v.error(
            f"{where}: a range read from unit columns cannot be shown (it differs per unit)",
            node.pos,
            'drop `shown` and state it in the question, e.g. "(between {min_value} and {max_value})"',
        )
        return None
    for end, ref in refs:
        column = _bound_column(v, ref, where)
        if column is None:
            return None
        fields[f"{end}_ref"] = column
    if refs and not _nonempty_per_unit(v, node, fields, where):
        return None
    return fields


def _bound_column(v: Validator, ref: ast.Named, where: str) -> str | None:
    """The unit column a bound names, when it is a numeric unit column (else reported)."""
    target = v.namespace.resolve(ref.name)
    if target is None and v.units_failed:
        return None  # most likely a column of the unreadable units table (reported)
    if target is None or target.kind != "unit":
        columns = [f"{v.namespace.units_name}.{c}" for c in v.namespace.unit_columns]
        v.error(
            f"{where}: '{ref.name}' is not a unit column; a range bound is a number or a numeric unit column",
            ref.pos,
            did_you_mean(ref.name, columns),
        )
        return None
    units = v.units_value
    coltype = units.columns.get(target.name) if units is not None else None
    if coltype not in NUMERIC_COLUMNS:
        v.error(f"{where}: unit column '{target.name}' holds {coltype} values; a range bound must be a number column", ref.pos)
        return None
    return target.name


def _nonempty_per_unit(v: Validator, node: ast.AnswerNode, fields: dict[str, Any], where: str) -> bool:
    """Every unit's range holds a number (its low below its high); the first that does not is reported."""
    units = v.units_value
    if units is None:
        return False
    for row in units.rows:
        low = row[fields["low_ref"]] if "low_ref" in fields else node.low
        high = row[fields["high_ref"]] if "high_ref" in fields else node.high
        if low is None or high is None:
            v.error(f"{where}: unit '{row[units.key]}' has no value for a range bound", node.pos)
            return False
        if float(high) <= float(low):
            v.error(
                f"{where}: the range is empty for unit '{row[units.key]}' ({format_number(float(low))} to {format_number(float(high))})",
                node.pos,
            )
            return False
    return True


def _lint_stated(v: Validator, node: ast.AnswerNode, atype: AnswerType, where: str) -> None:
    """The old `number LOW to HIGH` states its range in the prompt: say how to keep it out."""
    if node.low is None or node.high is None or not atype.range_hideable:
        return
    span = f"{format_number(node.low)} to {format_number(node.high)}"
    v.warn(
        f"{where}: `{node.type} {span}` states its range in the prompt; write `{node.type} valid {span}` to validate it without showing it",
        node.pos,
        f"or `{node.type} valid {span} shown` to keep stating it",
    )
