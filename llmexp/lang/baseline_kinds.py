"""Baselines that are not one number per cell, checked before any run.

Two kinds (the analysis is `llmexp.analysis.baseline_kinds`):

- a categorical outcome compared per option: ``option COLUMN`` names the column holding each
  row's option, the compared column holds the share choosing it in the row's cell and
  ``count COLUMN`` that cell's n. Without it the analysis could only compare the mean option
  index (A=0, B=1, C=2), which means nothing, so `check` refuses it;
- a standardised effect per unit: ``compare effect OUTCOME = COLUMN``, the column holding the
  human Cohen's d of the treatment contrast (last level minus first) for each unit.

Kept beside `validate.py`, whose baseline check calls these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmexp import answers, spec
from llmexp.lang import ast

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator

EFFECT = "effect"  # the one comparison kind: `compare effect OUTCOME = COLUMN`


def effect_comparisons(v: Validator, decl: ast.BaselineDecl, outcomes) -> dict[str, str]:
    """`compare effect OUTCOME = COLUMN` clauses as {outcome: column}, each checked."""
    from llmexp.lang.validate import suggest

    by_name = {o.name: o for o in outcomes}
    found: dict[str, str] = {}
    for kind, (left, right) in decl.compare_kind:
        if kind.name != EFFECT:
            v.error(
                f"compare: unknown comparison '{kind.name}'; write `compare OUTCOME = COLUMN` (cells) or "
                "`compare effect OUTCOME = COLUMN` (Cohen's d per unit)",
                kind.pos,
                suggest(kind.name, [EFFECT]),
            )
            continue
        out = by_name.get(left.name)
        if out is None:
            v.error(f"compare effect: '{left.name}' is not an outcome", left.pos, suggest(left.name, list(by_name)))
        elif answers.get(out.answer).categorical:
            v.error(
                f"compare effect: '{left.name}' is categorical and has no Cohen's d; compare the share of each option "
                "with `compare OUTCOME = COLUMN` and `option COLUMN`",
                left.pos,
            )
        else:
            found[left.name] = right.name
    return found


def _shown(values: list[Any], limit: int = 5) -> str:
    return ", ".join(repr(x) for x in values[:limit]) + (", ..." if len(values) > limit else "")


def check_options(
    v: Validator, decl: ast.BaselineDecl, rows: list[dict], outcomes, outcome_map: dict[str, str], treatment_map: dict[str, str]
) -> str | None:
    """The option column of categorical comparisons (None when there is none to use)."""
    categorical = [o for o in outcomes if o.name in outcome_map and answers.get(o.answer).categorical]
    if decl.option is None:
        for out in categorical:
            v.error(
                f"compare: '{out.name}' is a categorical outcome: name the column holding each row's option with "
                "`option COLUMN` (each row then holds the share choosing that option in its cell, and "
                "`count COLUMN` the cell's n)",
                decl.pos,
            )
        return None
    if not categorical:
        v.error(
            f"option '{decl.option.name}': no compared outcome is categorical (option names the column holding "
            "the option of a categorical outcome's share)",
            decl.option.pos,
        )
        return None
    if decl.count is None:
        v.error("option needs `count COLUMN`: each row holds the share choosing one option in a cell, and count the cell's n", decl.option.pos)
        return None
    column = decl.option.name
    for out in categorical:
        labels = list(answers.get(out.answer).labels)
        values = sorted({str(r[column]) for r in rows})
        off = [x for x in values if x not in labels]
        if off and len(off) == len(values):
            v.error(
                f"baseline column '{column}' matches no option of '{out.name}' (its values: {_shown(off)}; the options: {_shown(labels)})",
                decl.option.pos,
            )
            return None
        if off:
            v.warn(f"baseline rows for options that '{out.name}' does not have are ignored: {_shown(off)}", decl.option.pos)
        _warn_not_offered(v, decl, rows, out, column, treatment_map)
    return column


def _warn_not_offered(v: Validator, decl: ast.BaselineDecl, rows: list[dict], out, column: str, treatment_map: dict[str, str]) -> None:
    """Human rows for an option the study does not offer in that row's condition (`"C" if
    decoy = "present"`) are left out of the comparison, not compared with a share of 0."""
    labels = list(answers.get(out.answer).labels)
    shown_if = getattr(out.answer, "shown_if", ()) or ()
    ignored = set()
    for r in rows:
        k = labels.index(str(r[column])) if str(r[column]) in labels else None
        condition = shown_if[k] if k is not None and k < len(shown_if) else {}
        for tname, level in condition.items():
            col = treatment_map.get(tname)
            if col is not None and not spec.same_scalar(r[col], level):
                ignored.add(f"{r[column]!r} at {tname} = {spec.format_number(r[col]) if isinstance(r[col], float) else r[col]}")
    if ignored:
        v.warn(
            f"baseline rows for options not offered in their condition are ignored: {', '.join(sorted(ignored))}",
            decl.option.pos if decl.option else decl.pos,
        )


def check_effect_rows(v: Validator, decl: ast.BaselineDecl, rows: list[dict], unit_column: str | None, effect_map: dict[str, str]) -> None:
    """One published effect per unit (per baseline without a unit column), and a number."""
    for out, column in effect_map.items():
        seen: dict[str, int] = {}
        for r in rows:
            unit = str(r[unit_column]) if unit_column else "all"
            seen[unit] = seen.get(unit, 0) + 1
            value = r[column]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
                v.error(f"baseline column '{column}' holds {value!r} for unit '{unit}': the effect of '{out}' must be a number", decl.pos)
                return
        twice = [u for u, k in seen.items() if k > 1]
        if twice:
            v.error(
                f"baseline: {seen[twice[0]]} rows give the effect of '{out}' for unit '{twice[0]}' (one row per unit; "
                "`match unit = COLUMN` names the unit, `where` keeps one row)",
                decl.pos,
            )
