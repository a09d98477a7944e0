"""Validation of how persona rows are sampled: `without replacement` and `quota`.

    persona people from "data/people.csv" count 50 without replacement
      quota gender "F" 50%, "M" 50%

Rows are drawn per cell (per unit and between-subject levels), seeded by the study seed.
`without replacement` never puts one row twice in a cell, so the count may not exceed the
rows (or, with a quota, a value's rows); a quota splits each cell's count by the shares
(largest remainder, `Persona.quota_counts`). Kept beside `validate.py`, which calls
`sampling_fields` for every persona statement.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmexp import spec
from llmexp.errors import did_you_mean
from llmexp.lang import ast

if TYPE_CHECKING:  # the validator imports this module
    from llmexp.lang.validate import Validator


def sampling_fields(v: Validator, decl: ast.PersonaDecl, rows: tuple[dict, ...] | None, count: int) -> dict[str, Any]:
    """The Persona fields of `without replacement` and `quota` ({} when neither is given);
    each problem is reported at its clause."""
    if decl.replacement and decl.quota is None:
        return {}
    if rows is None:
        v.error(f"persona '{decl.name}': without replacement and quota apply to rows read from a CSV (from \"people.csv\")", decl.pos)
        return {}
    fields: dict[str, Any] = {}
    source = decl.source.value if decl.source else "the table"
    if not decl.replacement:
        fields["replacement"] = False
        if count > len(rows):
            where = decl.count.pos if decl.count else decl.pos
            v.error(f"persona '{decl.name}': count {count} without replacement needs {count} rows per cell; {source} has {len(rows)}", where)
            return {}
    if decl.quota is not None:
        quota = _quota(v, decl, rows, count, source)
        if quota is None:
            return {}
        fields.update(quota)
    return fields


def _quota(v: Validator, decl: ast.PersonaDecl, rows: tuple[dict, ...], count: int, source: str) -> dict[str, Any] | None:
    assert decl.quota is not None
    column, shares = decl.quota
    if column.name not in rows[0]:
        v.error(
            f"persona '{decl.name}': quota column '{column.name}' is not a column of {source}",
            column.pos,
            did_you_mean(column.name, rows[0]),
        )
        return None
    probe = spec.Persona(name=decl.name, rows=rows, quota_column=column.name)
    pairs: list[tuple[Any, float]] = []
    for value, share in shares:
        if not probe.quota_pool(value.value):
            v.error(f"persona '{decl.name}': no row of {source} has {column.name} = {value.value!r}", value.pos)
            return None
        if any(spec.same_scalar(value.value, seen) for seen, _ in pairs):
            v.error(f"persona '{decl.name}': quota lists {value.value!r} twice", value.pos)
            return None
        if share.value <= 0:
            v.error(f"persona '{decl.name}': a quota share must be above 0%", share.pos)
            return None
        pairs.append((value.value, share.value / 100.0))
    total = sum(share for _, share in pairs) * 100
    if abs(total - 100) > 1e-6:
        v.error(f"persona '{decl.name}': quota shares add up to {total:g}%, not 100%", column.pos)
        return None
    built = spec.Persona(name=decl.name, count=max(count, 1), rows=rows, quota_column=column.name, quota=tuple(pairs))
    if not decl.replacement:
        for (value, _), needed in zip(pairs, built.quota_counts(), strict=True):
            available = len(built.quota_pool(value))
            if needed > available:
                v.error(
                    f"persona '{decl.name}': quota {column.name} = {value!r} needs {needed} rows per cell "
                    f"without replacement; {source} has {available}",
                    column.pos,
                )
                return None
    return {"quota_column": column.name, "quota": tuple(pairs)}
