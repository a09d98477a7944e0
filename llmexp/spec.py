"""The validated study specification: the one input of every later stage.

A `Study` is built from a `.study` file by `llmexp.lang` (parse -> AST -> checks) and is
plain data: printable, JSON-serialisable, hashable and comparable, so two designs can be
diffed and a run can record exactly what it ran.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

from llmexp.seeding import canonical, text_hash  # noqa: F401  (canonical re-exported: many callers import it from here)

ColumnType = Literal["text", "number", "integer", "money", "boolean"]
AnswerType = str  # a registered answer type name (llmexp.answers); the language checks it against the registry
Mode = str  # a registered mode name (llmexp.modes); the language checks it against the registry
Assignment = Literal["between", "within"]
Scalar = bool | int | float | str

DEFAULT_MODEL = "llmexp/gemma3-270m"


class Frozen(BaseModel):
    """Base of every spec node: immutable, no unknown fields, hashable by value.

    pydantic's generated hash hashes the field values as they are, which raises TypeError
    for the dict and tuple-of-dict fields (rows, params, pins). Hashing a frozen copy of
    the values instead keeps `a == b` implying `hash(a) == hash(b)` (1 and 1.0 hash alike,
    as they compare alike), so studies and designs can be set members and dict keys.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # Fields added after v0.1 whose default leaves a study meaning what it meant before.
    # At their default they are left out of the canonical JSON (`Study.to_json`), so every
    # existing study keeps its hash and its runs stay resumable (tests/golden pins them).
    # A subclass lists its own: `_added_fields: ClassVar[frozenset[str]] = frozenset({...})`.
    _added_fields: ClassVar[frozenset[str]] = frozenset()

    def __hash__(self) -> int:
        return hash((type(self).__name__, _hashable(self.__dict__)))

    @model_serializer(mode="wrap")
    def _drop_added_defaults(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        if not self._added_fields or not isinstance(data, dict):
            return data
        fields = type(self).model_fields
        return {k: v for k, v in data.items() if not (k in self._added_fields and getattr(self, k) == fields[k].default)}

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        """Data tables (units, persona or baseline rows) print as their size, not every row."""
        for name, value in super().__repr_args__():
            yield name, (_RowCount(len(value)) if _is_rows(value) else value)


class Expr(Frozen):
    """A small arithmetic expression over unit/persona fields and the treatment `level`.

    Kept as data (never Python code) so a study file cannot execute anything.
    op: num | str | ref (a field name such as `products.regular_price`) | level |
    add | sub | mul | div | neg.
    """

    op: Literal["num", "str", "ref", "level", "add", "sub", "mul", "div", "neg"]
    value: float | str | None = None
    args: tuple[Expr, ...] = ()

    def describe(self) -> str:
        """Readable form (`(unit.regular_price * level)`), for messages and printed specs."""
        if self.op == "num":
            return format_number(self.value)  # type: ignore[arg-type]
        if self.op == "str":
            return repr(self.value)
        if self.op == "ref":
            return str(self.value)
        if self.op == "level":
            return "level"
        if self.op == "neg":
            return f"-{self.args[0].describe()}"
        symbol = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[self.op]
        return f"({self.args[0].describe()} {symbol} {self.args[1].describe()})"


class AnswerSpec(Frozen):
    """What a question accepts, so prompts can state it and answers can be parsed."""

    type: AnswerType
    labels: tuple[str, ...] = ()  # binary: (positive, negative); categorical/likert labels
    low: float | None = None  # likert/number/money range
    high: float | None = None
    # number/money: whether the prompt states the range (`valid LOW to HIGH` hides it; the
    # old `LOW to HIGH` and `valid ... shown` state it); answers outside it are invalid either way
    shown: bool = True
    low_ref: str | None = None  # a bound read per unit from this column (`valid questions.min_value to ...`)
    high_ref: str | None = None
    # categorical: per label, the cells it is shown in ({treatment: level}; {} = every cell)
    shown_if: tuple[dict[str, Scalar], ...] = ()
    # a trial's answer showing some of the options: each shown label's value (its index in
    # the outcome's full list), so answers compare across cells; empty: the label's index
    label_values: tuple[float, ...] = ()

    # one set for the class (H2's range fields and H1's option fields)
    _added_fields: ClassVar[frozenset[str]] = frozenset({"shown", "low_ref", "high_ref", "shown_if", "label_values"})


class Distribution(Frozen):
    """How a persona attribute is drawn."""

    kind: Literal["fixed", "choice", "uniform", "normal"]
    values: tuple[Scalar, ...] = ()  # fixed: one value; choice: the options
    weights: tuple[float, ...] = ()  # choice weights (normalised), empty = equal
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    sd: float | None = None
    integer: bool = False


class PersonaAttribute(Frozen):
    name: str
    distribution: Distribution


class Persona(Frozen):
    """A population of simulated respondents; `count` are drawn per cell."""

    name: str
    count: int = 1
    attributes: tuple[PersonaAttribute, ...] = ()
    rows: tuple[dict[str, Scalar], ...] | None = None  # from a CSV instead of draws
    source: str | None = None
    describe: str | None = None  # template introducing the persona
    # CSV rows: `without replacement` never puts one row twice in a cell (seeded sample)
    replacement: bool = True
    # CSV rows: `quota COLUMN value share%, ...`: each cell's count split by these shares
    quota_column: str | None = None
    quota: tuple[tuple[Scalar, float], ...] = ()  # (value, share in (0, 1]); shares add up to 1

    _added_fields: ClassVar[frozenset[str]] = frozenset({"replacement", "quota_column", "quota"})

    def quota_pool(self, value: Scalar) -> list[int]:
        """The indices of the rows whose quota column holds `value` (numbers compare as
        numbers, anything else as text)."""
        return [i for i, row in enumerate(self.rows or ()) if same_scalar(row.get(self.quota_column or ""), value)]

    def quota_counts(self) -> list[int]:
        """How many of a cell's `count` respondents each quota value gets: the shares times
        the count, rounded by largest remainder (ties to the value listed first) so they add
        up to the count."""
        exact = [share * self.count for _, share in self.quota]
        counts = [int(x) for x in exact]
        by_remainder = sorted(range(len(exact)), key=lambda i: (-(exact[i] - counts[i]), i))
        for i in by_remainder[: self.count - sum(counts)]:
            counts[i] += 1
        return counts


class Units(Frozen):
    """The things the experiment is about (e.g. 40 products), one row each."""

    name: str
    key: str
    columns: dict[str, ColumnType]
    rows: tuple[dict[str, Scalar], ...]
    source: str | None = None  # CSV path relative to the study file
    money_formats: dict[str, str] = {}  # money column -> display format ("$15", "15 EUR"); absent: $15.00
    decimal: str = "."  # the CSV's decimal mark in money cells (`decimal ","`)

    _added_fields: ClassVar[frozenset[str]] = frozenset({"money_formats", "decimal"})


class Treatment(Frozen):
    """A manipulated factor: its levels and how a level becomes the shown value."""

    name: str
    levels: tuple[Scalar, ...]
    value: Expr | None = None  # None: the shown value is the level itself
    value_type: ColumnType = "number"
    assignment: Assignment = "between"
    unit_dependent: bool = False  # value references a unit field
    # per level (same order as `levels`, which are then labels): its value, a literal or a
    # unit column (`ref`); empty: each level is its own value
    level_values: tuple[Expr, ...] = ()
    description: str | None = None  # the noun phrase design statements use instead of the name
    money_format: str | None = None  # money values read as this writes 15 ("$15", "15 EUR"); None: $15.00

    _added_fields: ClassVar[frozenset[str]] = frozenset({"level_values", "description", "money_format"})


class Probe(Frozen):
    question: str  # fill-in-the-blank template
    answer: AnswerSpec


class Covariate(Frozen):
    """A variable that should not move with the treatment.

    specified: stated in the prompt (value given). unspecified: kept out of the prompt,
    optionally with a probe that elicits what the model imagines for it. `text` is the
    sentence used whenever the covariate is stated (always for specified ones, or when a
    design pins an unspecified one).
    """

    name: str
    specified: bool
    value: Expr | None = None
    value_type: ColumnType = "text"
    probe: Probe | None = None
    text: str | None = None


class Outcome(Frozen):
    name: str
    answer: AnswerSpec
    question: str


class Check(Frozen):
    """An attention or manipulation check: a question with labelled options and the one
    answer a respondent who attended gives (`expect`). Asked inside a `sequence`, like an
    outcome; a respondent who answers anything else is excluded from the analyses."""

    name: str
    answer: AnswerSpec
    question: str
    expect: str


class QuestionSequence(Frozen):
    """Outcomes and checks asked of one respondent in one conversation, in this order:
    each step sees the earlier questions and the model's own earlier answers."""

    name: str
    steps: tuple[str, ...]  # outcome and check names


class Design(Frozen):
    """One arm of the design comparison: a blinding mode plus what it pins down."""

    name: str
    mode: Mode
    persona: str | None = None
    pins: dict[str, Expr] = Field(default_factory=dict)  # covariate -> value stated
    split: tuple[tuple[float, float], ...] = ()  # aggregate: level ranges asked separately
    probes: bool = True  # ask the probes too (between-prompt modes only)


class ModelSpec(Frozen):
    name: str
    params: dict[str, Scalar] = Field(default_factory=dict)  # temperature, max_tokens, ...
    replicates: int = 1
    rpm: float | None = None
    tpm: float | None = None
    # `max_tokens MODE N`: the completion budget of one mode's trials (overrides params)
    mode_max_tokens: dict[str, int] = {}

    _added_fields: ClassVar[frozenset[str]] = frozenset({"mode_max_tokens"})


class Baseline(Frozen):
    """Human data to compare with: individual rows or per-cell aggregates."""

    source: str
    unit_column: str | None = None
    treatments: dict[str, str] = Field(default_factory=dict)  # treatment -> column of levels
    outcomes: dict[str, str] = Field(default_factory=dict)  # outcome -> column
    n_column: str | None = None  # present: rows are per-cell aggregates
    retest: dict[str, str] = Field(default_factory=dict)  # outcome -> retest column
    where: dict[str, Scalar] = Field(default_factory=dict)
    rows: tuple[dict[str, Scalar], ...] = ()
    # categorical outcomes (`option COLUMN`): the column naming the option each row's share is of
    option_column: str | None = None
    # `compare effect OUTCOME = COLUMN`: outcome -> the column holding the human Cohen's d per unit
    effects: dict[str, str] = {}

    _added_fields: ClassVar[frozenset[str]] = frozenset({"option_column", "effects"})


class Study(Frozen):
    name: str
    description: str = ""
    seed: int = 0
    source_file: str | None = None
    units: Units
    personas: tuple[Persona, ...] = ()
    treatments: tuple[Treatment, ...]
    cells: tuple[dict[str, Scalar], ...] | None = None  # None: full factorial
    covariates: tuple[Covariate, ...] = ()
    outcomes: tuple[Outcome, ...]
    context: str
    designs: tuple[Design, ...]
    models: tuple[ModelSpec, ...]
    baseline: Baseline | None = None
    analyses: tuple[str, ...] = ()  # registered analysis names (llmexp.analysis); the language checks them
    sequences: tuple[QuestionSequence, ...] = ()  # questions asked in one conversation (none: each alone)
    checks: tuple[Check, ...] = ()  # attention/manipulation checks (asked inside sequences)

    _added_fields: ClassVar[frozenset[str]] = frozenset({"sequences", "checks"})

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): what the study hash is taken over."""
        data = self.model_dump(mode="json", exclude={"source_file"})
        return canonical(data)

    def hash(self) -> str:
        return text_hash(self.to_json())

    # the study as a value you print and compare (DeclareDesign's design objects)
    def __repr__(self) -> str:
        """One line naming the study's shape: pydantic's field dump runs to 100,000s of characters."""
        return f"Study({self.name!r}, {self._shape()}, hash {self.hash()})"

    def __str__(self) -> str:
        return self.summary()

    def _shape(self) -> str:
        treatments = _count(len(self.treatments), "treatment")
        if self.cells is not None:
            treatments += f", {_count(len(self.cells), 'cell')}"
        elif len(self.treatments) == 1:
            treatments += f" x {_count(len(self.treatments[0].levels), 'level')}"
        elif self.treatments:
            treatments += f" ({' x '.join(str(len(t.levels)) for t in self.treatments)} levels)"
        return ", ".join(
            [_count(len(self.units.rows), "unit"), treatments, _count(len(self.designs), "design"), _count(len(self.models), "model")]
        )

    def summary(self) -> str:
        """A few readable lines: what varies, what is asked, in which designs, of which models."""
        lines = [f"study {self.name!r} (seed {self.seed}, hash {self.hash()})"]
        if self.description:
            lines.append(f"  {_short(self.description, 100)}")
        rows = [("units", [_units_line(self.units)])]
        rows.append(("personas", [_persona_line(p) for p in self.personas]))
        rows.append(("treatments", [_treatment_line(t) for t in self.treatments]))
        if self.cells is not None:
            rows.append(("cells", [f"{len(self.cells)} listed (not the full factorial)"]))
        rows.append(("covariates", [_covariate_line(c) for c in self.covariates]))
        rows.append(("outcomes", [f"{o.name}: {_answer_text(o.answer)}" for o in self.outcomes]))
        rows.append(("designs", [_design_line(d) for d in self.designs]))
        rows.append(("models", [_model_line(m) for m in self.models]))
        rows.append(("baseline", [_baseline_line(self.baseline)] if self.baseline else []))
        rows.append(("analyses", [", ".join(self.analyses)] if self.analyses else []))
        rows.append(("sequences", [f"{q.name}: {', '.join(q.steps)}" for q in self.sequences]))
        rows.append(("checks", [f"{c.name}: {_answer_text(c.answer)}, expect {c.expect!r}" for c in self.checks]))
        for label, items in rows:
            for i, item in enumerate(items):
                lines.append(f"  {label if i == 0 else '':<11} {item}")
        return "\n".join(lines)

    # lookups used by the compiler and analysis
    def treatment(self, name: str) -> Treatment:
        return next(t for t in self.treatments if t.name == name)

    def covariate(self, name: str) -> Covariate:
        return next(c for c in self.covariates if c.name == name)

    def outcome(self, name: str) -> Outcome:
        return next(o for o in self.outcomes if o.name == name)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def sequence_of(self, name: str) -> QuestionSequence | None:
        """The sequence an outcome or check is asked in (None: asked on its own)."""
        return next((q for q in self.sequences if name in q.steps), None)

    def persona(self, name: str) -> Persona:
        return next(p for p in self.personas if p.name == name)

    def design(self, name: str) -> Design:
        return next(d for d in self.designs if d.name == name)

    def with_models(self, models: list[ModelSpec]) -> Study:
        return self.model_copy(update={"models": tuple(models)})


def same_scalar(a: Any, b: Any) -> bool:
    """Whether two table values are the same: numbers compare as numbers, anything else as text."""
    numbers = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (a, b))
    return abs(float(a) - float(b)) < 1e-9 if numbers else str(a) == str(b)


def format_number(value: float) -> str:
    """A number as a study or prompt shows it: no trailing zeros, at most 4 decimals."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.4f}".rstrip("0").rstrip(".")


# --- the study as a value: hashing, summary lines, diff ------------------------------------


def _hashable(value: Any) -> Any:
    """A hashable stand-in equal exactly when the value is (dicts compare unordered)."""
    if isinstance(value, dict):
        return frozenset((k, _hashable(v)) for k, v in value.items())
    if isinstance(value, (tuple, list)):
        return tuple(_hashable(v) for v in value)
    return value  # scalars and nested Frozen nodes hash themselves


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _short(text: str, limit: int = 40) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expr_text(expr: Expr) -> str:
    text = expr.describe()
    return text[1:-1] if expr.op in ("add", "sub", "mul", "div") else text


def _scalar_text(value: Any) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return format_number(value)
    return str(value)


def _values_text(values: tuple, limit: int = 6) -> str:
    shown = [_short(_scalar_text(v), 30) for v in values]
    if len(shown) > limit:
        shown = shown[: limit - 2] + ["...", shown[-1]]
    return ", ".join(shown)


def _answer_text(answer: AnswerSpec) -> str:
    text = answer.type
    if answer.labels:
        text += " " + " / ".join(f'"{label}"' for label in answer.labels)
    low = answer.low_ref or (None if answer.low is None else _scalar_text(answer.low))
    high = answer.high_ref or (None if answer.high is None else _scalar_text(answer.high))
    if low is not None or high is not None:
        hidden = not answer.shown or answer.low_ref or answer.high_ref
        text += f" {'valid ' if hidden else ''}{low} to {high}"
    return text


def _units_line(units: Units) -> str:
    line = f"{units.name}: {_count(len(units.rows), 'row')} keyed by {units.key}"
    return line + (f" (from {units.source})" if units.source else "")


def _persona_line(persona: Persona) -> str:
    if persona.rows is not None:
        drawn = f"{_count(len(persona.rows), 'row')} from {persona.source or 'a table'}"
        drawn += "" if persona.replacement else " without replacement"
        drawn += f", quota on {persona.quota_column}" if persona.quota else ""
    else:
        drawn = "attributes " + (", ".join(a.name for a in persona.attributes) or "none")
    return f"{persona.name}: {persona.count} per cell, {drawn}"


def _treatment_line(treatment: Treatment) -> str:
    line = f"{treatment.name}: {_count(len(treatment.levels), 'level')} {_values_text(treatment.levels)} ({treatment.assignment})"
    return line + (f", shown as {_expr_text(treatment.value)}" if treatment.value is not None else "")


def _covariate_line(covariate: Covariate) -> str:
    if covariate.specified:
        return f"{covariate.name}: specified" + (f" = {_expr_text(covariate.value)}" if covariate.value is not None else "")
    probe = f", probe as {covariate.probe.answer.type}" if covariate.probe else ", no probe"
    return f"{covariate.name}: unspecified{probe}"


def _design_line(design: Design) -> str:
    parts = [design.mode]
    if design.persona:
        parts.append(f"persona {design.persona}")
    parts += [f"{name} = {_expr_text(value)}" for name, value in design.pins.items()]
    if design.split:
        parts.append("split " + ", ".join(f"{_scalar_text(lo)}-{_scalar_text(hi)}" for lo, hi in design.split))
    if not design.probes:
        parts.append("without probes")
    return f"{design.name}: {', '.join(parts)}"


def _model_line(model: ModelSpec) -> str:
    params = " ".join([f"{k}={_scalar_text(v)}" for k, v in model.params.items()] + [f"max_tokens {m}={n}" for m, n in model.mode_max_tokens.items()])
    limits = "".join(f", {name} {_scalar_text(v)}" for name, v in (("rpm", model.rpm), ("tpm", model.tpm)) if v is not None)
    return f"{model.name}{' ' + params if params else ''}, {_count(model.replicates, 'replicate')}{limits}"


def _baseline_line(baseline: Baseline) -> str:
    kind = "cell aggregates" if baseline.n_column else "rows"
    compared = ", ".join([f"{o} vs {col}" for o, col in baseline.outcomes.items()]
                         + [f"{o} effect (Cohen's d) vs {col}" for o, col in baseline.effects.items()])
    retest = f", retest {', '.join(baseline.retest.values())}" if baseline.retest else ""
    options = f", options in {baseline.option_column}" if baseline.option_column else ""
    return f"{baseline.source}: {len(baseline.rows)} {kind}, {compared}{options}{retest}"


@dataclass(frozen=True)
class Change:
    """One difference between two studies: where (a field path) and what (`old -> new`, `+ x`, `- x`)."""

    path: str
    text: str

    def __str__(self) -> str:
        return f"{self.path}: {self.text}"


@dataclass(frozen=True)
class StudyDiff:
    """What differs between two studies, one `Change` per field path; falsy when they are equal.

    The basis of "what changed since this run": print it, or test `if diff(a, b):`.
    """

    changes: tuple[Change, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __len__(self) -> int:
        return len(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    @property
    def paths(self) -> tuple[str, ...]:
        return tuple(c.path for c in self.changes)

    def __str__(self) -> str:
        return "\n".join(str(c) for c in self.changes) if self.changes else "no differences"

    def __repr__(self) -> str:
        if not self.changes:
            return "StudyDiff(no differences)"
        return f"StudyDiff({_count(len(self.changes), 'change')}:\n" + "\n".join(f"  {c}" for c in self.changes) + ")"


# Spec lists whose items are told apart by name: a change reads `designs[competitor_fixed].probes`.
# Models are compared by position: a study may list one model twice with different params.
NAMED_LISTS = ("personas", "treatments", "covariates", "outcomes", "designs", "sequences", "checks")


def diff(a: Study, b: Study) -> StudyDiff:
    """Name every field path where `b` differs from `a` (`models[0].params.temperature: 1 -> 0.7`,
    `designs: + competitor_fixed`, `units.rows: 40 -> 6 rows`); empty exactly when `a == b`."""
    for value in (a, b):
        if not isinstance(value, Study):  # else a typo compares a study with anything and "differs"
            raise TypeError(f"diff compares two studies (llmexp.load(path)), not a {type(value).__name__}")
    changes: list[Change] = []
    _diff_value("", a, b, changes)
    return StudyDiff(tuple(changes))


def _diff_value(path: str, old: Any, new: Any, out: list[Change]) -> None:
    if old == new:
        return
    if isinstance(old, Frozen) and type(old) is type(new) and not isinstance(old, Expr):
        for field in type(old).model_fields:
            _diff_value(f"{path}.{field}" if path else field, getattr(old, field), getattr(new, field), out)
    elif isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new:
                out.append(Change(f"{path}.{key}", f"- {_value_text(old[key])}"))
            elif key not in old:
                out.append(Change(f"{path}.{key}", f"+ {_value_text(new[key])}"))
            else:
                _diff_value(f"{path}.{key}", old[key], new[key], out)
    elif _is_rows(old) and _is_rows(new):
        if len(old) != len(new):
            out.append(Change(path, f"{len(old)} -> {_count(len(new), 'row')}"))
        else:
            changed = sum(x != y for x, y in zip(old, new, strict=True))
            out.append(Change(path, f"{changed} of {_count(len(new), 'row')} changed"))
    elif _is_nodes(old) and _is_nodes(new):
        _diff_nodes(path, old, new, out)
    elif path == "analyses":
        _diff_names(path, list(old), list(new), out)
    else:
        out.append(Change(path, f"{_value_text(old)} -> {_value_text(new)}"))


def _diff_nodes(path: str, old: tuple, new: tuple, out: list[Change]) -> None:
    """Lists of spec nodes: by name for the named lists (additions, removals, reordering,
    then each common item), otherwise position by position."""
    old_names, new_names = [n.name for n in old], [n.name for n in new]
    unique = len(set(old_names)) == len(old_names) and len(set(new_names)) == len(new_names)
    if path.rsplit(".", 1)[-1] in NAMED_LISTS and unique:
        _diff_names(path, old_names, new_names, out)
        for item in old:
            if item.name in new_names:
                _diff_value(f"{path}[{item.name}]", item, new[new_names.index(item.name)], out)
        return
    for i, (x, y) in enumerate(zip(old, new, strict=False)):  # the longer list's tail is added or removed below
        _diff_value(f"{path}[{i}]", x, y, out)
    out += [Change(path, f"- {_value_text(x)}") for x in old[len(new):]]
    out += [Change(path, f"+ {_value_text(y)}") for y in new[len(old):]]


class _RowCount:
    """Stands in for a table's rows in a node's repr."""

    def __init__(self, n: int):
        self.n = n

    def __repr__(self) -> str:
        return f"<{_count(self.n, 'row')}>"


def _diff_names(path: str, old: list[str], new: list[str], out: list[Change]) -> None:
    """Additions, removals and a change of order in a list of distinct names."""
    out += [Change(path, f"- {n}") for n in old if n not in new]
    out += [Change(path, f"+ {n}") for n in new if n not in old]
    kept_old, kept_new = [n for n in old if n in new], [n for n in new if n in old]
    if kept_old != kept_new:
        out.append(Change(path, f"order {', '.join(kept_old)} -> {', '.join(kept_new)}"))


def _is_rows(value: Any) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(v, dict) for v in value)


def _is_nodes(value: Any) -> bool:
    return isinstance(value, tuple) and all(isinstance(v, Frozen) and hasattr(v, "name") for v in value)


def _value_text(value: Any) -> str:
    """A short rendering of one side of a change."""
    if value is None:
        return "none"
    if isinstance(value, Expr):
        return _expr_text(value)
    if isinstance(value, Frozen):
        return str(getattr(value, "name", None) or getattr(value, "source", None) or type(value).__name__)
    if isinstance(value, str):
        return repr(_short(value))
    if isinstance(value, tuple):
        if _is_rows(value):
            return _count(len(value), "row")
        return "(" + _values_text(tuple(_value_text(v) if isinstance(v, tuple) else v for v in value)) + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value_text(v)}" for k, v in value.items()) + "}"
    return _scalar_text(value)
