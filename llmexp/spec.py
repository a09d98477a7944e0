"""The validated study specification: the one input of every later stage.

A `Study` is built from a `.study` file by `llmexp.lang` (parse -> AST -> checks) and is
plain data: printable, JSON-serialisable, hashable and comparable, so two designs can be
diffed and a run can record exactly what it ran.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

ColumnType = Literal["text", "number", "integer", "money", "boolean"]
AnswerType = Literal["binary", "categorical", "likert", "number", "money", "probability"]
Mode = Literal["blind", "unblinded", "within", "aggregate"]
Assignment = Literal["between", "within"]
Scalar = Union[bool, int, float, str]

MODES: tuple[str, ...] = ("blind", "unblinded", "within", "aggregate")
ANALYSES: tuple[str, ...] = (
    "demand_curve",
    "effects",
    "leakage",
    "focalism",
    "baseline",
    "range",
    "refute",
)
DEFAULT_MODEL = "llmexp/gemma3-270m"


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Expr(Frozen):
    """A small arithmetic expression over unit/persona fields and the treatment `level`.

    Kept as data (never Python code) so a study file cannot execute anything.
    op: num | str | ref (a field name such as `products.regular_price`) | level |
    add | sub | mul | div | neg.
    """

    op: Literal["num", "str", "ref", "level", "add", "sub", "mul", "div", "neg"]
    value: Optional[Union[float, str]] = None
    args: tuple["Expr", ...] = ()


class AnswerSpec(Frozen):
    """What a question accepts, so prompts can state it and answers can be parsed."""

    type: AnswerType
    labels: tuple[str, ...] = ()  # binary: (positive, negative); categorical/likert labels
    low: Optional[float] = None  # likert/number/money range
    high: Optional[float] = None


class Distribution(Frozen):
    """How a persona attribute is drawn."""

    kind: Literal["fixed", "choice", "uniform", "normal"]
    values: tuple[Scalar, ...] = ()  # fixed: one value; choice: the options
    weights: tuple[float, ...] = ()  # choice weights (normalised), empty = equal
    low: Optional[float] = None
    high: Optional[float] = None
    mean: Optional[float] = None
    sd: Optional[float] = None
    integer: bool = False


class PersonaAttribute(Frozen):
    name: str
    distribution: Distribution


class Persona(Frozen):
    """A population of simulated respondents; `count` are drawn per cell."""

    name: str
    count: int = 1
    attributes: tuple[PersonaAttribute, ...] = ()
    rows: Optional[tuple[dict[str, Scalar], ...]] = None  # from a CSV instead of draws
    source: Optional[str] = None
    describe: Optional[str] = None  # template introducing the persona


class Units(Frozen):
    """The things the experiment is about (e.g. 40 products), one row each."""

    name: str
    key: str
    columns: dict[str, ColumnType]
    rows: tuple[dict[str, Scalar], ...]
    source: Optional[str] = None  # CSV path relative to the study file


class Treatment(Frozen):
    """A manipulated factor: its levels and how a level becomes the shown value."""

    name: str
    levels: tuple[Scalar, ...]
    value: Optional[Expr] = None  # None: the shown value is the level itself
    value_type: ColumnType = "number"
    assignment: Assignment = "between"
    unit_dependent: bool = False  # value references a unit field


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
    value: Optional[Expr] = None
    value_type: ColumnType = "text"
    probe: Optional[Probe] = None
    text: Optional[str] = None


class Outcome(Frozen):
    name: str
    answer: AnswerSpec
    question: str


class Design(Frozen):
    """One arm of the design comparison: a blinding mode plus what it pins down."""

    name: str
    mode: Mode
    persona: Optional[str] = None
    pins: dict[str, Expr] = Field(default_factory=dict)  # covariate -> value stated
    split: tuple[tuple[float, float], ...] = ()  # aggregate: level ranges asked separately
    probes: bool = True  # ask the probes too (between-prompt modes only)


class ModelSpec(Frozen):
    name: str
    params: dict[str, Scalar] = Field(default_factory=dict)  # temperature, max_tokens, ...
    replicates: int = 1
    rpm: Optional[float] = None
    tpm: Optional[float] = None


class Baseline(Frozen):
    """Human data to compare with: individual rows or per-cell aggregates."""

    source: str
    unit_column: Optional[str] = None
    treatments: dict[str, str] = Field(default_factory=dict)  # treatment -> column of levels
    outcomes: dict[str, str] = Field(default_factory=dict)  # outcome -> column
    n_column: Optional[str] = None  # present: rows are per-cell aggregates
    retest: dict[str, str] = Field(default_factory=dict)  # outcome -> retest column
    where: dict[str, Scalar] = Field(default_factory=dict)
    rows: tuple[dict[str, Scalar], ...] = ()


class Study(Frozen):
    name: str
    description: str = ""
    seed: int = 0
    source_file: Optional[str] = None
    units: Units
    personas: tuple[Persona, ...] = ()
    treatments: tuple[Treatment, ...]
    cells: Optional[tuple[dict[str, Scalar], ...]] = None  # None: full factorial
    covariates: tuple[Covariate, ...] = ()
    outcomes: tuple[Outcome, ...]
    context: str
    designs: tuple[Design, ...]
    models: tuple[ModelSpec, ...]
    baseline: Optional[Baseline] = None
    analyses: tuple[str, ...] = ()

    def to_json(self) -> str:
        """Canonical JSON (sorted keys): what the study hash is taken over."""
        data = self.model_dump(mode="json", exclude={"source_file"})
        return json.dumps(data, sort_keys=True, separators=(",", ":"))

    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    # lookups used by the compiler and analysis
    def treatment(self, name: str) -> Treatment:
        return next(t for t in self.treatments if t.name == name)

    def covariate(self, name: str) -> Covariate:
        return next(c for c in self.covariates if c.name == name)

    def outcome(self, name: str) -> Outcome:
        return next(o for o in self.outcomes if o.name == name)

    def persona(self, name: str) -> Persona:
        return next(p for p in self.personas if p.name == name)

    def design(self, name: str) -> Design:
        return next(d for d in self.designs if d.name == name)

    def with_models(self, models: list[ModelSpec]) -> "Study":
        return self.model_copy(update={"models": tuple(models)})


def canonical(obj: Any) -> str:
    """Compact sorted JSON used for hashes and table cells."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
