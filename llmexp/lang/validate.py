"""AST -> validated `Study`, with every static check the language promises.

All problems are collected (not only the first) and raised together as a `StudyError`;
warnings (lint) are returned beside the study. Data files are read here, relative to the
study file and never outside its folder tree.
"""

from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError

from llmexp import answers, modes, spec
from llmexp import expr as ex
from llmexp.data import read_table, resolve_path
from llmexp.errors import DataError, Problem, StudyError, did_you_mean
from llmexp.fields import Namespace
from llmexp.lang import AnalysisCatalogue, CustomParams, ast, no_custom_params
from llmexp.lang import levels as level_checks
from llmexp.lang.baseline import check_baseline_cells
from llmexp.lang.baseline_kinds import check_effect_rows, check_options, effect_comparisons
from llmexp.lang.models import model_specs
from llmexp.lang.money import treatment_format
from llmexp.lang.ranges import range_fields
from llmexp.lang.sampling import sampling_fields
from llmexp.lang.sequences import sequences_and_checks, sequential_mode
from llmexp.lang.units import units_table
from llmexp.templates import TemplateError, fields

LEAKY_WORDS = re.compile(
    r"\b(treatment|control group|condition \d+|conditions?|randomi[sz]\w*|experiment\w*|levels?)\b",
    re.IGNORECASE,
)


suggest = did_you_mean  # the validator's name for it (other lang modules import it from here)


class Validator:
    def __init__(self, tree: ast.StudyFile, analyses: AnalysisCatalogue, custom_params: CustomParams = no_custom_params):
        self.tree = tree
        self.catalogue = analyses  # analysis name -> rule, from the caller (see llmexp.lang)
        self.custom_params = custom_params  # model name -> takes params beyond litellm's (idem)
        self.file = tree.path
        self.study_dir = Path(tree.path).resolve().parent if tree.path and tree.path != "<study>" else Path.cwd()
        self.problems: list[Problem] = []
        self.units_failed = False  # the units table could not be read: unit names are unknown
        self.treatment_specs: list[spec.Treatment] = []  # the valid treatments, once checked
        self.units_value: spec.Units | None = None  # the validated units (set by build)
        self.by_type: dict[type, list] = {}
        for statement in tree.statements:
            self.by_type.setdefault(type(statement), []).append(statement)

    # ------------------------------------------------------------------ reporting
    def error(self, message: str, pos: ast.Pos | None = None, hint: str | None = None) -> None:
        line, column = (pos.line, pos.column) if pos and pos.line else (None, None)
        self.problems.append(Problem(message, self.file, line, column, hint))

    def warn(self, message: str, pos: ast.Pos | None = None, hint: str | None = None) -> None:
        line, column = (pos.line, pos.column) if pos and pos.line else (None, None)
        self.problems.append(Problem(message, self.file, line, column, hint, severity="warning"))

    def lint_article(self, name: str, description: ast.Str) -> None:
        """Prompts put "The" before a treatment's description ("The {description} shown to
        each respondent"): one starting with an article reads "The the ..."."""
        text = description.value.strip()
        first = text.split(None, 1)[0]
        if first.lower() in ("the", "a", "an"):
            self.warn(f"treatment '{name}': the description starts with '{first}': prompts say "
                      f'"The {text} shown to each respondent" (drop \'{first}\')', description.pos)

    def has_errors(self) -> bool:
        return any(p.severity == "error" for p in self.problems)

    def all(self, kind) -> list:
        return self.by_type.get(kind, [])

    def one(self, kind, what: str, example: str, required: bool = True):
        items = self.all(kind)
        if not items:
            if required:
                self.error(f"missing {what} statement (e.g. {example})", ast.Pos(1, 1))
            return None
        for extra in items[1:]:
            self.error(f"a study has one {what} statement; this one repeats it", extra.pos)
        return items[0]

    # ------------------------------------------------------------------ main
    def build(self) -> tuple[spec.Study | None, list[Problem]]:
        study_decl = self.one(ast.StudyDecl, "study", 'study "my-study" seed 1')
        units = self.units()
        self.units_value = units  # read by the range and sampling checks (llmexp.lang.ranges)
        personas = self.personas(units)
        self.namespace = Namespace(
            units_name=units.name if units else "units",
            unit_columns=list(units.columns) if units else [],
        )
        self.check_unique_names()
        treatments = self.treatments(units)
        # Every declared treatment name stays known, valid or not, so an invalid treatment
        # is reported once and not again at each place that uses it.
        self.namespace.treatments = [t.name for t in self.all(ast.TreatmentDecl)]
        covariate_decls = self.all(ast.CovariateDecl)
        self.namespace.covariates = [c.name for c in covariate_decls]
        # Persona attributes are known names too, so using one outside `describe` gets the
        # specific error, not "unknown field"; a name that is also a unit column, treatment
        # or covariate keeps meaning that.
        taken = set(self.namespace.unit_columns) | set(self.namespace.treatments) | set(self.namespace.covariates)
        self.namespace.persona_attributes = sorted(
            {a for p in personas.values() for a in [x.name for x in p.attributes] + list((p.rows or [{}])[0])} - taken
        )
        cells = self.cells(treatments)
        covariates = self.covariates(units, treatments)
        outcomes = self.outcomes()
        sequences, checks = sequences_and_checks(self, outcomes)
        context = self.context(treatments, covariates, outcomes)
        designs = self.designs(personas, covariates, treatments, outcomes, units)
        models = self.models()
        baseline = self.baseline(units, treatments, outcomes)
        analyses = self.analyses(dict(
            units=units, personas=tuple(personas.values()), treatments=tuple(treatments), cells=cells,
            covariates=tuple(covariates), outcomes=tuple(outcomes), context=context,
            designs=tuple(designs), models=tuple(models), baseline=baseline))
        self.lint(designs, covariates, context, outcomes)

        if any(p.severity == "error" for p in self.problems):
            return None, self.problems
        try:
            study = spec.Study(
                name=study_decl.name.value,
                description=study_decl.description.value if study_decl.description else "",
                seed=int(study_decl.seed.value) if study_decl.seed else 0,
                source_file=self.file,
                units=cast(spec.Units, units),  # None only after an error, returned above
                personas=tuple(personas.values()),
                treatments=tuple(treatments),
                cells=cells,
                covariates=tuple(covariates),
                outcomes=tuple(outcomes),
                context=context,
                designs=tuple(designs),
                models=tuple(models),
                baseline=baseline,
                analyses=tuple(analyses),
                sequences=tuple(sequences),
                checks=tuple(checks),
            )
        except ValidationError as exc:  # a gap in the checks above; still no traceback
            for err in exc.errors():
                self.error(f"invalid study ({'.'.join(map(str, err['loc']))}: {err['msg']})")
            return None, self.problems
        return study, self.problems

    # ------------------------------------------------------------------ names
    def check_unique_names(self) -> None:
        seen: dict[str, tuple[str, ast.Pos]] = {}
        groups = [
            ("treatment", self.all(ast.TreatmentDecl)),
            ("covariate", self.all(ast.CovariateDecl)),
            ("outcome", self.all(ast.OutcomeDecl)),
            ("check", self.all(ast.CheckDecl)),
            ("persona", self.all(ast.PersonaDecl)),
        ]
        for kind, decls in groups:
            for decl in decls:
                if decl.name in seen:
                    other_kind, other_pos = seen[decl.name]
                    self.error(
                        f"'{decl.name}' is already defined as {_article(other_kind)} {other_kind} at line {other_pos.line}",
                        decl.pos,
                    )
                else:
                    seen[decl.name] = (kind, decl.pos)
                if decl.name in ("level", "persona", self.namespace.units_name) and kind != "persona":
                    self.error(f"'{decl.name}' is a reserved name; choose another", decl.pos)

    # ------------------------------------------------------------------ units
    def units(self) -> spec.Units | None:
        return units_table(self)  # llmexp/lang/units.py

    # ------------------------------------------------------------------ personas
    def personas(self, units: spec.Units | None) -> dict[str, spec.Persona]:
        result: dict[str, spec.Persona] = {}
        for decl in self.all(ast.PersonaDecl):
            attributes = []
            seen = set()
            for name, dist in decl.attributes:
                if name.name in seen:
                    self.error(f"persona attribute '{name.name}' is defined twice", name.pos)
                seen.add(name.name)
                built = self.distribution(name, dist)
                if built is not None:
                    attributes.append(spec.PersonaAttribute(name=name.name, distribution=built))
            rows = None
            if decl.source is not None:
                if decl.attributes:
                    self.error("a persona comes either from a CSV or from attribute draws, not both", decl.pos)
                try:
                    path = resolve_path(decl.source.value, self.study_dir)
                    _, table = read_table(path, decl.source.value)
                    rows = tuple(table)
                except DataError as exc:
                    self.error(str(exc), decl.source.pos)
                    continue
            elif not decl.attributes:
                self.error(f"persona '{decl.name}' has no attributes (e.g. age: uniform 18 to 80 integer)", decl.pos)
            count = int(decl.count.value) if decl.count else 1
            if count < 1:
                self.error("count must be at least 1", decl.count.pos)
            names = [a.name for a in attributes] + (list(rows[0]) if rows else [])
            if decl.describe is not None:
                persona_ns = Namespace(
                    units_name=units.name if units else "units",
                    unit_columns=list(units.columns) if units else [],
                    persona_attributes=names,
                )
                self.check_template(decl.describe, persona_ns, "a persona description", allow_persona=True)
            result[decl.name] = spec.Persona(
                name=decl.name,
                count=max(count, 1),
                attributes=tuple(attributes),
                rows=rows,
                source=decl.source.value if decl.source else None,
                describe=decl.describe.value if decl.describe else None,
                **sampling_fields(self, decl, rows, count),  # without replacement, quota (llmexp.lang.sampling)
            )
        return result

    def distribution(self, name: ast.Named, dist: ast.DistNode) -> spec.Distribution | None:
        if dist.kind == "fixed":
            return spec.Distribution(kind="fixed", values=(dist.values[0].value,))
        if dist.kind == "choice":
            values = [v.value for v in dist.values]
            if len(set(map(repr, values))) != len(values):
                self.error(f"'{name.name}' lists the same option twice", dist.pos)
            given = [w for w in dist.weights if w is not None]
            if given and len(given) != len(values):
                self.error(f"'{name.name}': give a weight to every option or to none", dist.pos)
                return None
            if any(w < 0 for w in given):
                self.error(f"'{name.name}': weights cannot be negative", dist.pos)
                return None
            if given and sum(given) <= 0:
                self.error(f"'{name.name}': weights add up to zero", dist.pos)
                return None
            weights = tuple(w / sum(given) for w in given) if given else ()
            return spec.Distribution(kind="choice", values=tuple(values), weights=weights)
        if dist.kind == "uniform":
            assert dist.low is not None and dist.high is not None  # the grammar's uniform rule sets both
            if dist.high <= dist.low:
                self.error(f"'{name.name}': uniform range {dist.low:g} to {dist.high:g} is empty", dist.pos)
                return None
            return spec.Distribution(kind="uniform", low=dist.low, high=dist.high, integer=dist.integer)
        if dist.sd is None or dist.sd <= 0:
            self.error(f"'{name.name}': sd must be positive", dist.pos)
            return None
        return spec.Distribution(kind="normal", mean=dist.mean, sd=dist.sd, integer=dist.integer)

    # ------------------------------------------------------------------ expressions
    def expr(self, node: ast.ExprNode, allowed: set[str], where: str, allow_levels: bool = False) -> spec.Expr | None:
        """Normalise an expression: refs become `unit.x` / `treatment.x`; levels(...) -> level."""
        if node.op == "num":
            return spec.Expr(op="num", value=node.value)
        if node.op == "str":
            return spec.Expr(op="str", value=node.value)
        if node.op == "levels":
            if not allow_levels:
                self.error(f"levels(...) can only appear in a treatment, not in {where}", node.pos)
                return None
            return spec.Expr(op="level")
        if node.op == "ref":
            target = self.namespace.resolve(node.value)
            if target is None and self.units_failed:
                return None  # most likely a column of the unreadable units table (reported)
            if target is None or target.kind not in allowed:
                kinds = " or ".join(sorted(allowed)) or "nothing"
                options = [n for n in self.namespace.all_names() if getattr(self.namespace.resolve(n), "kind", None) in allowed]
                self.error(
                    f"'{node.value}' is not a {kinds} field usable in {where}",
                    node.pos,
                    suggest(node.value, options),
                )
                return None
            return spec.Expr(op="ref", value=target.key)
        args = [self.expr(a, allowed, where, allow_levels) for a in node.args]
        present = [a for a in args if a is not None]
        if len(present) != len(args):
            return None
        return spec.Expr(op=cast(Any, node.op), args=tuple(present))

    def count_levels(self, node: ast.ExprNode) -> list[ast.ExprNode]:
        found = [node] if node.op == "levels" else []
        for arg in node.args:
            found += self.count_levels(arg)
        return found

    # ------------------------------------------------------------------ treatments
    def treatments(self, units: spec.Units | None) -> list[spec.Treatment]:
        decls = self.all(ast.TreatmentDecl)
        if not decls:
            self.error("missing treatment statement (e.g. treatment price = levels(1, 2, 3))", ast.Pos(1, 1))
        result = []
        for decl in decls:
            level_nodes = self.count_levels(decl.expr)
            if len(level_nodes) != 1:
                self.error(
                    f"treatment '{decl.name}' must contain exactly one levels(...) (found {len(level_nodes)})",
                    decl.pos,
                    "e.g. treatment price = products.regular_price * levels(0 to 2 step 0.2)",
                )
                continue
            parsed = self.level_list(decl, level_nodes[0], units)
            if parsed is None:
                continue
            levels, level_values, level_type = parsed
            value = self.expr(decl.expr, {"unit"}, f"treatment '{decl.name}'", allow_levels=True)
            if value is None:
                continue
            is_bare = value.op == "level"
            types = {f"unit.{c}": t for c, t in (units.columns.items() if units else [])}
            types["level"] = level_type
            value_type = decl.as_type or ex.result_type(value, types)
            if decl.description is not None and not decl.description.value.strip():
                self.error(f"treatment '{decl.name}': the description cannot be empty", decl.description.pos)
            elif decl.description is not None:
                self.lint_article(decl.name, decl.description)
            treatment = spec.Treatment(
                name=decl.name,
                levels=tuple(levels),
                value=None if is_bare else value,
                value_type=cast(spec.ColumnType, value_type if not (is_bare and not decl.as_type) else (decl.as_type or types["level"])),
                assignment=decl.assignment,
                unit_dependent=bool(ex.references(value)) or any(v.op == "ref" for v in level_values),
                level_values=tuple(level_values),
                description=decl.description.value.strip() if decl.description else None,
                money_format=treatment_format(
                    self, decl, value_type if not (is_bare and not decl.as_type) else (decl.as_type or types["level"]), value
                ),
            )
            if units is not None and not is_bare:
                self.check_evaluates(value, units, treatment, decl)
            result.append(treatment)
        self.treatment_specs = result  # the outcomes' option conditions name their levels
        return result

    def level_list(self, decl: ast.TreatmentDecl, node: ast.ExprNode, units: spec.Units | None):
        """(levels, level values, level type) of `levels(...)`: see `llmexp.lang.levels`."""
        return level_checks.level_list(self, decl, node, units)

    def check_evaluates(self, value: spec.Expr, units: spec.Units, treatment: spec.Treatment, decl) -> None:
        for index, row in enumerate(units.rows, start=1):
            env = {f"unit.{k}": v for k, v in row.items()}
            for level in treatment.levels:
                env["level"] = ex.level_value(treatment, level, row)
                try:
                    ex.evaluate(value, env)
                except ex.ExprError as exc:
                    self.error(
                        f"treatment '{decl.name}' cannot be computed for unit row {index} at level {level!r}: {exc}",
                        decl.pos,
                    )
                    return

    # ------------------------------------------------------------------ cells
    def cells(self, treatments: list[spec.Treatment]) -> tuple[dict, ...] | None:
        decls = self.all(ast.CellDecl)
        if not decls:
            return None
        by_name = {t.name: t for t in treatments}
        cells, seen = [], set()
        for decl in decls:
            cell = {}
            for name, literal in decl.assigns:
                treatment = by_name.get(name.name)
                if treatment is None:
                    self.error(f"'{name.name}' is not a treatment", name.pos, suggest(name.name, by_name))
                    continue
                if name.name in cell:
                    self.error(f"cell sets '{name.name}' twice", name.pos)
                matched = [level for level in treatment.levels if level_checks.level_equal(literal.value, level)]
                if not matched:
                    shown = ", ".join(map(str, treatment.levels[:8]))
                    self.error(f"{literal.value!r} is not a level of '{name.name}' (levels: {shown})", literal.pos or name.pos)
                    continue
                cell[name.name] = matched[0]
            missing = [t for t in by_name if t not in cell]
            if missing and len(cell) == len(decl.assigns):  # (a bad assignment is reported already)
                self.error(f"cell does not set {', '.join(missing)}; a listed cell sets every treatment", decl.pos)
            key = tuple(sorted(cell.items(), key=lambda kv: kv[0]))
            if key in seen:
                self.error("this cell is listed twice", decl.pos)
            seen.add(key)
            cells.append(cell)
        return tuple(cells)

    # ------------------------------------------------------------------ covariates
    def covariates(self, units: spec.Units | None, treatments: list[spec.Treatment]) -> list[spec.Covariate]:
        result = []
        specified_ns = self.namespace
        unit_types = {f"unit.{c}": t for c, t in (units.columns.items() if units else [])}
        for decl in self.all(ast.CovariateDecl):
            value, value_type = None, "text"
            if decl.specified:
                value = self.expr(decl.expr, {"unit", "treatment"}, f"covariate '{decl.name}'")
                if value is None:
                    continue
                treatment_refs = [r for r in ex.references(value) if r.startswith("treatment.")]
                if treatment_refs:
                    self.warn(
                        f"specified covariate '{decl.name}' is computed from treatment "
                        f"'{treatment_refs[0].split('.', 1)[1]}': it moves with the treatment, so it is not held fixed",
                        decl.pos,
                    )
                types = dict(unit_types)
                types.update({f"treatment.{t.name}": t.value_type for t in treatments})
                value_type = ex.result_type(value, types)
            probe = None
            if decl.probe is not None:
                if decl.specified:
                    self.error(
                        f"'{decl.name}' is specified (stated in the prompt); only unspecified covariates are probed",
                        decl.probe.pos,
                    )
                answer = self.answer(decl.probe.answer, f"probe of '{decl.name}'")
                self.check_template(decl.probe.question, specified_ns, f"the probe of '{decl.name}'", forbid_unspecified=decl.name)
                if answer is not None:
                    probe = spec.Probe(question=decl.probe.question.value, answer=answer)
            if decl.text is not None:
                self.check_template(decl.text, specified_ns, f"the text of '{decl.name}'", forbid_unspecified=decl.name, own=decl.name)
            result.append(
                spec.Covariate(
                    name=decl.name,
                    specified=decl.specified,
                    value=value,
                    value_type=cast(spec.ColumnType, value_type),
                    probe=probe,
                    text=decl.text.value if decl.text else None,
                )
            )
        return result

    # ------------------------------------------------------------------ outcomes
    def answer(self, node: ast.AnswerNode, where: str, outcome: bool = False) -> spec.AnswerSpec | None:
        labels = tuple(s.value for s in node.labels)
        if not outcome:  # probes and checks ask the same options of everyone
            level_checks.refuse_conditions(self, node, where)
        if any(not label.strip() for label in labels):
            self.error(f"{where}: labels cannot be empty", node.pos)
            return None
        if len(set(label.lower() for label in labels)) != len(labels):
            self.error(f"{where}: labels must differ", node.pos)
            return None
        atype = answers.find(node.type)  # each answer type checks its own declaration
        if atype is None:
            self.error(f"{where}: unknown answer type '{node.type}'", node.pos, f"known: {', '.join(answers.names())}")
            return None
        problem = atype.spec_error(labels, node.low, node.high)
        if problem:
            self.error(f"{where}: {problem}", node.pos)
            return None
        low, high = atype.spec_range(node.low, node.high)
        extra = range_fields(self, node, atype, where)  # `valid LOW to HIGH [shown]`, per-unit bounds
        if extra is None:
            return None
        return spec.AnswerSpec(type=node.type, labels=labels, low=low, high=high, **extra)

    def outcomes(self) -> list[spec.Outcome]:
        decls = self.all(ast.OutcomeDecl)
        if not decls:
            self.error('missing outcome statement (e.g. outcome purchase: binary "purchase" / "not purchase" question "...")', ast.Pos(1, 1))
        result = []
        for decl in decls:
            answer = self.answer(decl.answer, f"outcome '{decl.name}'", outcome=True)
            self.check_template(decl.question, self.namespace, f"the question of '{decl.name}'", forbid_unspecified=True)
            for label in decl.answer.labels:  # option texts are templates too, rendered per trial
                self.check_template(label, self.namespace, f"the options of '{decl.name}'", forbid_unspecified=True)
            if answer is not None:
                answer = level_checks.option_conditions(self, decl.answer, answer, self.treatment_specs, f"outcome '{decl.name}'")
                result.append(spec.Outcome(name=decl.name, answer=answer, question=decl.question.value))
        return result

    # ------------------------------------------------------------------ templates
    def check_template(
        self,
        text: ast.Str,
        namespace: Namespace,
        where: str,
        forbid_unspecified=True,
        own: str | None = None,
        allow_persona: bool = False,
    ) -> list[str] | None:
        """Check a template's fields; returns the resolved keys (kind.name), or None when
        the template itself is malformed (reported)."""
        try:
            used = fields(text.value)
        except TemplateError as exc:
            self.error(f"in {where}: {exc}", text.offset_pos(exc.index))
            return None
        keys = []
        unspecified = {c.name for c in self.all(ast.CovariateDecl) if not c.specified}
        for name, index in used:
            target = namespace.resolve(name)
            pos = text.offset_pos(index)
            if target is None:
                if not self.units_failed:  # else most likely a column of the unreadable units table
                    self.error(f"unknown field {{{name}}} in {where}", pos, suggest(name, namespace.all_names()))
                continue
            if target.kind == "covariate" and target.name in unspecified and forbid_unspecified and target.name != own:
                self.error(
                    f"{{{name}}} in {where}: '{name}' is unspecified, so it must stay out of the prompt",
                    pos,
                    "declare it `specified`, or pin it in a design with `with " + name + " = ...`",
                )
                continue
            if target.kind == "persona" and not allow_persona:
                self.error(f"{{{name}}} in {where}: persona attributes belong in the persona's describe text", pos)
                continue
            keys.append(target.key)
        return keys

    def context(self, treatments, covariates, outcomes) -> str:
        decl = self.one(ast.ContextDecl, "context", 'context "You see {product} priced at {price}."')
        if decl is None:
            return ""
        checked = self.check_template(decl.text, self.namespace, "the context")
        if checked is None:  # the context itself is broken (reported): no use checking what it shows
            return decl.text.value
        keys = set(checked)
        for outcome_decl in self.all(ast.OutcomeDecl):
            with contextlib.suppress(TemplateError):  # a broken question is reported where it is checked
                keys |= {t.key for n, _ in fields(outcome_decl.question.value) if (t := self.namespace.resolve(n)) is not None}
        for treatment in treatments:
            if self.units_failed:
                break
            if f"treatment.{treatment.name}" not in keys:
                self.error(
                    f"treatment '{treatment.name}' is never shown: use {{{treatment.name}}} in the context or a question",
                    decl.pos,
                )
        for covariate in covariates:
            if covariate.specified and covariate.text is None and f"covariate.{covariate.name}" not in keys:
                self.error(
                    f"specified covariate '{covariate.name}' is never stated: give it text \"...\" or use {{{covariate.name}}} in the context",
                    decl.pos,
                )
        return decl.text.value

    # ------------------------------------------------------------------ designs
    def designs(self, personas, covariates, treatments, outcomes, units) -> list[spec.Design]:
        pending: list[tuple[ast.Pos, dict]] = []
        for decl in self.all(ast.ModesDecl):
            for named in decl.modes:
                if self.mode_named(named) is not None:
                    pending.append((named.pos, dict(name=named.name, mode=named.name)))
        by_cov = {c.name: c for c in covariates}
        for decl in self.all(ast.DesignDecl):
            mode = self.mode_named(decl.mode)
            if mode is not None and decl.sequential is not None:
                mode = sequential_mode(self, decl, mode)
            if mode is None:
                continue
            item: dict[str, Any] = dict(name=decl.name, mode=mode.name, probes=decl.probes)
            if decl.persona is not None:
                if decl.persona.name not in personas:
                    self.error(f"no persona named '{decl.persona.name}'", decl.persona.pos, suggest(decl.persona.name, personas))
                elif not mode.accepts_persona:
                    self.error(mode.persona_refusal or f"a {mode.name} design cannot take a persona", decl.persona.pos)
                else:
                    item["persona"] = decl.persona.name
            pins = {}
            for name, node in decl.pins:
                covariate = by_cov.get(name.name)
                if covariate is None:
                    self.error(f"'{name.name}' is not a covariate", name.pos, suggest(name.name, by_cov))
                    continue
                if covariate.specified:
                    self.error(f"'{name.name}' is already specified in every prompt; pin only unspecified covariates", name.pos)
                    continue
                if covariate.text is None:
                    self.error(
                        f"pinning '{name.name}' needs a sentence to state it: add text \"...{{{name.name}}}...\" to the covariate",
                        name.pos,
                    )
                    continue
                value = self.expr(node, {"unit"}, f"the pin of '{name.name}'")
                if value is not None:
                    pins[name.name] = value
            item["pins"] = pins
            if decl.split:
                self.design_split(decl, mode, treatments, item)
            pending.append((decl.pos, item))
        if not pending:
            fallback = modes.default().name
            pending.append((ast.Pos(1, 1), dict(name=fallback, mode=fallback)))
        designs: list = []
        seen: dict[str, Any] = {}
        for pos, item in pending:
            if item["name"] in seen:
                self.error(f"design '{item['name']}' is defined twice (first at line {seen[item['name']].line})", pos)
                continue
            seen[item["name"]] = pos
            if modes.get(item["mode"]).population:
                for outcome in outcomes:
                    if not answers.get(outcome.answer).aggregable():
                        self.error(
                            f"{item['mode']} mode asks for one number per condition; {outcome.answer.type} outcome '{outcome.name}' "
                            f"has {len(outcome.answer.labels)} labels",
                            pos,
                            "use a binary outcome or a separate study per label",
                        )
            designs.append(spec.Design(**item))
        return designs

    def mode_named(self, named: ast.Named) -> type[modes.Mode] | None:
        """The registered mode a design names; an unknown name is reported where it stands."""
        if named.name in modes.MODES:
            return modes.get(named.name)
        expected = ", ".join(f'"{name}"' for name in modes.names())
        hint = did_you_mean(named.name, modes.names(), cutoff=0.7)  # as the parser's keyword hint
        self.error(f"unexpected name '{named.name}'; expected {expected}", named.pos, hint)
        return None

    def design_split(self, decl: ast.DesignDecl, mode: type[modes.Mode], treatments, item: dict[str, Any]) -> None:
        """`split`: only in a mode that can split, over one numeric treatment, each part
        holding at least two levels."""
        if not mode.can_split:
            splitting = " or ".join(modes.with_capability("can_split"))
            self.error(f"split applies to {splitting} designs only (the range-sensitivity check)", decl.pos)
        elif len(treatments) != 1 or not all(isinstance(v, (int, float)) for v in treatments[0].levels):
            self.error("split needs exactly one numeric treatment", decl.pos)
        else:
            levels = treatments[0].levels
            for low, high in decl.split:
                inside = [v for v in levels if low - 1e-9 <= v <= high + 1e-9]
                if high <= low or len(inside) < 2:
                    self.error(f"split part {low:g} to {high:g} holds fewer than two levels", decl.pos)
            item["split"] = tuple(decl.split)

    # ------------------------------------------------------------------ models
    def models(self) -> list[spec.ModelSpec]:
        return model_specs(self)  # llmexp/lang/models.py

    # ------------------------------------------------------------------ baseline
    def baseline(self, units, treatments, outcomes) -> spec.Baseline | None:
        decl = self.one(ast.BaselineDecl, "baseline", "", required=False)
        if decl is None:
            return None
        t_names = {t.name: t for t in treatments}
        o_names = {o.name for o in outcomes}
        unit_column, treatment_map = None, {}
        for left, right in decl.match:
            if left.name == "unit":
                unit_column = right.name
            elif left.name in t_names:
                treatment_map[left.name] = right.name
            elif left.name in {t.name for t in self.all(ast.TreatmentDecl)}:
                continue  # a declared treatment that failed its own checks (reported there)
            else:
                self.error(f"match: '{left.name}' is neither 'unit' nor a treatment", left.pos, suggest(left.name, list(t_names) + ["unit"]))
        outcome_map = {}
        for left, right in decl.compare:
            if left.name not in o_names:
                self.error(f"compare: '{left.name}' is not an outcome", left.pos, suggest(left.name, o_names))
            outcome_map[left.name] = right.name
        retest_map = {left.name: right.name for left, right in decl.retest}
        effect_map = effect_comparisons(self, decl, outcomes)  # llmexp.lang.baseline_kinds
        if not outcome_map and not effect_map and not decl.compare_kind:
            self.error("baseline needs `compare OUTCOME = COLUMN` to say which column holds the human answer", decl.pos)
        for name in t_names:
            if name not in treatment_map and (outcome_map or not decl.compare_kind):  # an effect per unit needs no level column
                self.error(f"baseline needs `match {name} = COLUMN` (the column holding the level of '{name}')", decl.pos)
        required = [c for c in [unit_column, *treatment_map.values(), *outcome_map.values(), *retest_map.values(), *effect_map.values()] if c]
        for one in (decl.count, decl.option):
            if one:
                required.append(one.name)
        required += [n.name for n, _ in decl.where]
        try:
            path = resolve_path(decl.source.value, self.study_dir)
            _, rows = read_table(path, decl.source.value, required=tuple(required))
        except DataError as exc:
            self.error(str(exc), decl.source.pos)
            return None
        where = {n.name: lit.value for n, lit in decl.where}
        kept = [r for r in rows if all(_same(r.get(k), v) for k, v in where.items())]
        if not kept:
            self.error(f"baseline: no rows match the where filter ({where})", decl.pos)
            return None
        if units is not None and unit_column:
            keys = {str(r[units.key]) for r in units.rows}
            unknown = sorted({str(r[unit_column]) for r in kept} - keys)
            if len(unknown) == len({str(r[unit_column]) for r in kept}):
                self.error(f"baseline: no value of column '{unit_column}' matches a unit key ({units.key})", decl.pos)
            elif unknown:
                self.warn(f"baseline rows for units not in the study are ignored: {', '.join(unknown[:5])}", decl.pos)
        unit_keys = {str(r[units.key]) for r in units.rows} if units is not None else None
        check_baseline_cells(self, decl, kept, t_names, treatment_map, unit_keys, unit_column)  # llmexp.lang.baseline
        option_column = check_options(self, decl, kept, outcomes, outcome_map, treatment_map)  # llmexp.lang.baseline_kinds
        check_effect_rows(self, decl, kept, unit_column, effect_map)
        return spec.Baseline(
            source=decl.source.value,
            unit_column=unit_column,
            treatments=treatment_map,
            outcomes=outcome_map,
            n_column=decl.count.name if decl.count else None,
            retest=retest_map,
            where=where,
            rows=tuple(kept),
            option_column=option_column,
            effects=effect_map,
        )

    # ------------------------------------------------------------------ analyses
    def analyses(self, parts: dict[str, Any]) -> list[str]:
        """The `analyze` names, each known to the catalogue and able to run on the study
        built from `parts` (every validated field but `analyses`)."""
        result: list[str] = []
        known = list(self.catalogue)
        for decl in self.all(ast.AnalyzeDecl):
            for name in decl.names:
                if name.name not in self.catalogue:
                    self.error(f"unknown analysis '{name.name}'", name.pos, suggest(name.name, known) or f"choose from {', '.join(known)}")
                    continue
                if self.has_errors():
                    continue  # a reason now is likely a consequence of the errors already reported
                reason = self.unsupported(name.name, parts)
                if reason:
                    self.error(f"analysis '{name.name}' cannot run on this study: {reason}", name.pos)
                    continue
                if name.name not in result:
                    result.append(name.name)
        return result

    def unsupported(self, name: str, parts: dict[str, Any]) -> str | None:
        """Why analysis `name` cannot run, as the analysis itself judges a partial study (the
        fields are validated already, so it is assembled without re-validating them)."""
        return self.catalogue[name].unsupported(spec.Study.model_construct(**parts))

    # ------------------------------------------------------------------ lint
    def lint(self, designs, covariates, context, outcomes) -> None:
        level_checks.lint_descriptions(self, designs)
        if any(modes.get(d.mode).blind for d in designs):
            for decl in self.all(ast.CovariateDecl):
                if not decl.specified and decl.probe is None:
                    self.warn(
                        f"unspecified covariate '{decl.name}' has no probe: nothing will show whether it leaks in blind prompts",
                        decl.pos,
                        'add probe "..." as number',
                    )
            texts = [d.text for d in self.all(ast.ContextDecl)] + [o.question for o in self.all(ast.OutcomeDecl)]
            texts += [c.text for c in self.all(ast.CovariateDecl) if c.text is not None]
            texts += [c.probe.question for c in self.all(ast.CovariateDecl) if c.probe is not None]  # asked blind too
            for text in texts:
                for match in LEAKY_WORDS.finditer(text.value):
                    self.warn(
                        f"'{match.group(0)}' in a prompt text may reveal the design to a blind respondent",
                        text.offset_pos(match.start()),
                        "blind prompts should read like a real situation; unblinded designs state the design for you",
                    )


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) < 1e-9
    return str(a) == str(b)


def validate(tree: ast.StudyFile, *, analyses: AnalysisCatalogue,
             custom_params: CustomParams = no_custom_params) -> tuple[spec.Study, list[Problem]]:
    """Validate an AST; returns (study, warnings) or raises StudyError with every problem.

    `analyses` is the catalogue the ``analyze`` names are checked against (required: see
    `llmexp.lang.check_study`)."""
    study, problems = Validator(tree, analyses, custom_params).build()
    # In file order (statements are checked stage by stage, not top to bottom).
    problems = sorted(problems, key=lambda p: (p.line is None, p.line or 0, p.column or 0))
    errors = [p for p in problems if p.severity == "error"]
    if errors or study is None:
        raise StudyError(problems)
    return study, problems
