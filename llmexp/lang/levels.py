"""Checks for labelled and column levels, level texts and condition-specific answer options.

Kept apart from `validate.py` (the statement-by-statement checks) because these constructs
share one idea: a level has a label (the cell id in trial ids, tables and figures) and a
value (what the prompt shows), and answer options can be tied to a level's label.

- `levels("gain" = "People who ...", "loss" = "...")`: labels "gain"/"loss", text values;
- `levels(questions.low_anchor, questions.high_anchor)`: one level per unit column, labelled
  by the column's name, the value read per unit (`"low" = questions.low_anchor` labels it);
- a level text is a template of unit fields (`{regular_price}`; `{{ }}` for a brace);
- `categorical "A", "B", "C" if decoy = "present"`: an option shown only in those cells.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from llmexp import modes, spec
from llmexp.errors import did_you_mean
from llmexp.lang import ast
from llmexp.lang.ranges import NUMERIC_COLUMNS
from llmexp.templates import TemplateError, fields

if TYPE_CHECKING:  # the validator calls in; this module never builds one
    from llmexp.lang.validate import Validator

NUMERIC = NUMERIC_COLUMNS  # column types a numeric level may come from
MIXED = "levels must be all numbers or all text (true/false are not levels)"


def level_list(v: Validator, decl: ast.TreatmentDecl, node: ast.ExprNode, units: spec.Units | None) -> tuple[list, list[spec.Expr], str] | None:
    """(levels, level values, the level's type) of a treatment's `levels(...)`, or None
    after reporting why not. Plain levels give no level values (each is its own value)."""
    items = node.levels or []
    if not items:
        v.error(f"treatment '{decl.name}' has no levels", node.pos)
        return None
    if not any(isinstance(i, ast.LevelItem) for i in items):
        return _plain(v, decl, node, items)
    plain = [i for i in items if not isinstance(i, ast.LevelItem)]
    if plain:
        v.error(f"treatment '{decl.name}': give every level a label (\"label\" = ...) or none", plain[0].pos)
        return None
    return _labelled(v, decl, node, [i for i in items if isinstance(i, ast.LevelItem)], units)


def _plain(v: Validator, decl: ast.TreatmentDecl, node: ast.ExprNode, items: list) -> tuple[list, list[spec.Expr], str] | None:
    levels = [lit.value for lit in items]
    repeated = [value for value, count in Counter(map(repr, levels)).items() if count > 1]
    if repeated:
        v.error(f"treatment '{decl.name}' lists level {repeated[0]} twice", node.pos)
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in levels)
    if not numeric and not all(isinstance(x, str) for x in levels):
        v.error(f"treatment '{decl.name}': {MIXED}", node.pos)
        return None
    for lit in items:
        if lit.source is not None:
            check_level_text(v, decl, lit.source)
    return levels, [], "number" if numeric else "text"


def _labelled(
    v: Validator, decl: ast.TreatmentDecl, node: ast.ExprNode, items: list[ast.LevelItem], units: spec.Units | None
) -> tuple[list, list[spec.Expr], str] | None:
    labels, values, types = [], [], []
    for item in items:
        if item.column is not None:
            ref = v.expr(item.column, {"unit"}, f"the levels of treatment '{decl.name}'")
            if ref is None:
                return None
            column = str(ref.value).split(".", 1)[1]
            labels.append(item.label.value if item.label else column)
            values.append(ref)
            types.append(units.columns[column] if units else "text")
            continue
        assert item.label is not None and item.value is not None  # the grammar gives both
        value = item.value.value
        if isinstance(value, bool):
            v.error(f"treatment '{decl.name}': {MIXED}", item.value.pos)
            return None
        if item.value.source is not None:
            check_level_text(v, decl, item.value.source)
        labels.append(item.label.value)
        values.append(spec.Expr(op="str", value=value) if isinstance(value, str) else spec.Expr(op="num", value=value))
        types.append("text" if isinstance(value, str) else "number")
    for label, item in zip(labels, items, strict=True):
        if not str(label).strip():
            v.error(f"treatment '{decl.name}': a level label cannot be empty", item.pos)
            return None
    repeated = [label for label, count in Counter(labels).items() if count > 1]
    if repeated:
        v.error(f"treatment '{decl.name}' has two levels labelled {repeated[0]!r}", node.pos)
        return None
    if _same_value_twice(v, decl, node, labels, values, units):
        return None
    if all(t in NUMERIC for t in types):
        return labels, values, types[0] if len(set(types)) == 1 else "number"
    if all(t not in NUMERIC for t in types):
        return labels, values, "text"
    v.error(f"treatment '{decl.name}': {MIXED}", node.pos)
    return None


def _same_value_twice(
    v: Validator, decl: ast.TreatmentDecl, node: ast.ExprNode, labels: list, values: list[spec.Expr], units: spec.Units | None
) -> bool:
    """Two levels with the same value for a unit (the same literal, the same column twice, or
    two columns equal in a row) would ask that unit the same question twice: one trial, not
    two conditions. Reported at the treatment, naming the unit (True when reported)."""
    rows = units.rows if units is not None and any(e.op == "ref" for e in values) else ({},)
    key = units.key if units is not None else None
    for row in rows:
        seen: dict[Any, Any] = {}
        for label, expr in zip(labels, values, strict=True):
            value = row.get(str(expr.value).split(".", 1)[1]) if expr.op == "ref" else expr.value
            same = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
            if same in seen:
                where = f" for unit {row.get(key)!r}" if expr.op == "ref" and key is not None else ""
                v.error(
                    f"treatment '{decl.name}': levels {seen[same]!r} and {label!r} have the same value{where} ({value!r}); "
                    "each level must differ, or the two conditions are one question",
                    node.pos,
                )
                return True
            seen[same] = label
    return False


def check_level_text(v: Validator, decl: ast.TreatmentDecl, text: ast.Str) -> None:
    """A level text is a template of the unit's fields (rendered per unit, before the
    treatment is shown): an unknown field, another kind of field or a stray brace is an error."""
    where = f"the levels of treatment '{decl.name}'"
    try:
        used = fields(text.value)
    except TemplateError as exc:
        v.error(f"in {where}: {exc}", text.offset_pos(exc.index))
        return
    names = [d.name for d in v.all(ast.TreatmentDecl)] + [c.name for c in v.all(ast.CovariateDecl)]
    for name, index in used:
        target = v.namespace.resolve(name)
        if target is not None and target.kind == "unit":
            continue
        if v.units_failed and target is None:
            continue  # most likely a column of the unreadable units table (reported)
        if target is None and name not in names:
            options = v.namespace.unit_columns + [f"{v.namespace.units_name}.{c}" for c in v.namespace.unit_columns]
            v.error(f"unknown field {{{name}}} in {where}", text.offset_pos(index), _suggest(name, options))
        else:
            v.error(f"{{{name}}} in {where}: a level text can only use unit fields", text.offset_pos(index))


def option_conditions(v: Validator, node: ast.AnswerNode, answer: spec.AnswerSpec, treatments: list[spec.Treatment], where: str) -> spec.AnswerSpec:
    """The answer with each option's cells (`shown_if`), checked against the treatments'
    levels; every cell must still show at least two options."""
    conditions = node.conditions or []
    if not any(c is not None for c in conditions):
        return answer
    by_name = {t.name: t for t in treatments}
    shown_if: list[dict[str, Any]] = []
    for condition in conditions:
        if condition is None:
            shown_if.append({})
            continue
        treatment = by_name.get(condition.treatment.name)
        if treatment is None:
            if condition.treatment.name not in [d.name for d in v.all(ast.TreatmentDecl)]:  # else reported with it
                v.error(
                    f"{where}: '{condition.treatment.name}' is not a treatment",
                    condition.treatment.pos,
                    _suggest(condition.treatment.name, by_name),
                )
            return answer
        matched = [level for level in treatment.levels if level_equal(condition.level.value, level)]
        if not matched:
            shown = ", ".join(repr(level) for level in treatment.levels[:8])
            v.error(f"{where}: {condition.level.value!r} is not a level of '{treatment.name}' (levels: {shown})", condition.level.pos)
            return answer
        shown_if.append({treatment.name: matched[0]})
    for name in sorted({t for cond in shown_if for t in cond}):
        for level in by_name[name].levels:
            count = sum(1 for cond in shown_if if cond.get(name, level) == level)
            if count < 2:
                shown = f"{count} option is" if count == 1 else f"{count} options are"
                v.error(f"{where}: where {name} = {level!r} only {shown} shown; an answer needs at least two", node.pos)
                return answer
    return answer.model_copy(update={"shown_if": tuple(shown_if)})


def level_equal(value: Any, level: Any) -> bool:
    """A listed value names a level: numbers match numbers, text matches text, never across."""

    def is_number(x: Any) -> bool:
        return isinstance(x, (int, float)) and not isinstance(x, bool)

    if is_number(value) and is_number(level):
        return abs(float(value) - float(level)) < 1e-9
    return isinstance(value, str) and isinstance(level, str) and value == level


_suggest = did_you_mean


def lint_descriptions(v: Validator, designs: list[spec.Design]) -> None:
    """A design that states the design names each treatment in its prompt ("The decoy shown
    to each respondent was drawn at random ..."). A treatment with labelled levels is named
    in the author's shorthand, like its labels: warn unless it has a description."""
    stating = [d for d in designs if modes.get(d.mode).states_design]
    if not stating:
        return
    decls = {d.name: d for d in v.all(ast.TreatmentDecl)}
    for treatment in v.treatment_specs:
        if treatment.level_values and treatment.description is None:
            v.warn(
                f"treatment '{treatment.name}' has labelled levels but no description: design '{stating[0].name}' "
                f"states the design and calls it '{treatment.name.replace('_', ' ')}' in its prompt",
                decls[treatment.name].pos,
                'add description "..." (a noun phrase, e.g. description "third option on the menu")',
            )


def refuse_conditions(v: Validator, node: ast.AnswerNode, where: str) -> None:
    """Only an outcome's options may depend on the condition (a probe or a check asks the
    same options of everyone): an `if` elsewhere is an error, not silently dropped."""
    condition = next((c for c in node.conditions or [] if c is not None), None)
    if condition is not None:
        v.error(f"{where}: only an outcome's options can depend on the condition ('if ...')", condition.treatment.pos)
