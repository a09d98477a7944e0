"""Whether a human baseline can be compared with the study at all, checked before any run.

A baseline whose rows match no study cell (a level column whose values are none of the
treatment's levels, or no row matching a unit and every level at once) would only be found
by `analyze`, after the money is spent: it is an error at `check`, located at the baseline
statement. Values that match partly stay a warning (those rows are ignored). Kept beside
`validate.py`, which calls `check_baseline_cells` from its baseline check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmexp import spec
from llmexp.lang import ast

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator


def _shown(values: list[Any], limit: int = 5) -> str:
    text = ", ".join(spec.format_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else repr(v) for v in values[:limit])
    return text + (", ..." if len(values) > limit else "")


def check_baseline_cells(
    v: Validator,
    decl: ast.BaselineDecl,
    rows: list[dict],
    treatments: dict[str, spec.Treatment],
    treatment_map: dict[str, str],
    unit_keys: set[str] | None,
    unit_column: str | None,
) -> None:
    """Report a baseline that matches no study cell (error) or matches only partly (warning)."""
    matched_all = True
    for tname, column in treatment_map.items():
        levels = treatments[tname].levels
        values = sorted({r[column] for r in rows}, key=str)
        off = [x for x in values if not any(spec.same_scalar(x, level) for level in levels)]
        if off and len(off) == len(values):
            v.error(
                f"baseline column '{column}' matches no level of '{tname}' (its values: {_shown(off)}; the levels: {_shown(list(levels))})",
                decl.pos,
            )
            matched_all = False
        elif off:
            v.warn(f"baseline column '{column}' has values that are not levels of '{tname}': {off[:5]}", decl.pos)

    def unit_known(row: dict) -> bool:
        return unit_keys is None or not unit_column or str(row[unit_column]) in unit_keys

    if not matched_all or not any(unit_known(r) for r in rows):
        return  # reported above (levels) or by the unit check

    def in_study(row: dict) -> bool:
        levels_known = (any(spec.same_scalar(row[c], level) for level in treatments[t].levels) for t, c in treatment_map.items())
        return unit_known(row) and all(levels_known)

    if not any(in_study(r) for r in rows):
        v.error("baseline: no row matches a study cell (a unit and a level of every treatment in one row)", decl.pos)
