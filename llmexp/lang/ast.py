"""The abstract syntax tree of a `.study` file: plain dataclasses carrying positions.

The parser produces these; `llmexp.lang.validate` checks them and builds the `Study`.
Every node keeps the line and column it came from so errors can point at it.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Pos:
    line: int
    column: int


@dataclass
class Str:
    """A string literal with where it starts, so template-field errors can be located."""

    value: str
    raw: str
    pos: Pos

    def offset_pos(self, index: int) -> Pos:
        """Position of character `index` of `value` in the file (approximate if escapes).
        The index tables are built once per string, so locating every one of many field
        errors in one long string costs a lookup each, not a rescan (which was quadratic)."""
        if self.raw.startswith('"""'):
            return self._long_offset_pos(index)
        starts = self._raw_starts
        raw_index = starts[min(index, len(starts) - 1)]
        newlines = bisect.bisect_left(self._raw_newlines, raw_index)  # newlines before raw_index
        if newlines:
            return Pos(self.pos.line + newlines, raw_index - self._raw_newlines[newlines - 1])
        return Pos(self.pos.line, self.pos.column + raw_index)

    @functools.cached_property
    def _raw_starts(self) -> list[int]:
        """Where each character of `value` starts in `raw` (escapes take two), and the end."""
        raw, i, starts = self.raw, 1, [1]
        while i < len(raw):
            i += 2 if raw[i] == "\\" else 1
            starts.append(i)
        return starts

    @functools.cached_property
    def _raw_newlines(self) -> list[int]:
        return [i for i, ch in enumerate(self.raw) if ch == "\n"]

    @functools.cached_property
    def _long_lines(self) -> tuple[int, list[str], list[str], list[int]]:
        """(skipped first newline, raw lines, value lines, value newline offsets)."""
        inner = self.raw[3:-3]
        skipped = 1 if inner.startswith("\n") else 0
        newlines = [i for i, ch in enumerate(self.value) if ch == "\n"]
        return skipped, inner[skipped:].split("\n"), self.value.split("\n"), newlines

    def _long_offset_pos(self, index: int) -> Pos:
        """A triple-quoted value lost its first newline and its common indent (dedent):
        map the value's line and column back to the file's."""
        skipped, raw_lines, value_lines, newlines = self._long_lines
        value_line = bisect.bisect_left(newlines, index)  # newlines before index
        value_column = index - (newlines[value_line - 1] + 1 if value_line else 0)
        raw_line = raw_lines[min(value_line, len(raw_lines) - 1)]
        dedented = value_lines[min(value_line, len(value_lines) - 1)]
        margin = len(raw_line) - len(raw_line.lstrip()) - (len(dedented) - len(dedented.lstrip()))
        line = self.pos.line + skipped + value_line
        if skipped == 0 and value_line == 0:  # on the line of the opening quotes
            return Pos(line, self.pos.column + 3 + margin + value_column)
        return Pos(line, margin + value_column + 1)


@dataclass
class Literal:
    value: Any  # str | float | bool
    pos: Pos
    is_int: bool = False
    source: Str | None = None  # the string it was written as (level texts are templates)


@dataclass
class LevelItem:
    """A treatment level given a label (`"gain" = "..."`) or read per unit from a column
    (`questions.low_anchor`, labelled by the column name unless a label is given)."""

    pos: Pos
    label: Literal | None = None  # None: the column's name
    value: Literal | None = None  # a literal value, or
    column: ExprNode | None = None  # a unit column (a `ref`)


@dataclass
class OptionCondition:
    """`if decoy = "present"` after an answer option: shown only in those cells."""

    treatment: Named
    level: Literal


@dataclass
class ExprNode:
    op: str  # num str ref level levels add sub mul div neg
    pos: Pos
    value: Any = None
    args: list[ExprNode] = field(default_factory=list)
    levels: list[Literal | LevelItem] | None = None  # for op == "levels"


@dataclass
class AnswerNode:
    type: str
    pos: Pos
    labels: list[Str] = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    valid: bool = False  # written `valid LOW to HIGH` (else the old `LOW to HIGH`, stated in the prompt)
    shown: bool = True  # the range is stated in the prompt
    low_ref: Named | None = None  # a bound read per unit from a column (`questions.min_value`)
    high_ref: Named | None = None
    conditions: list[OptionCondition | None] = field(default_factory=list)  # per label (categorical)


@dataclass
class Named:
    name: str
    pos: Pos


@dataclass
class StudyDecl:
    name: Str
    pos: Pos
    description: Str | None = None
    seed: Literal | None = None


@dataclass
class ColumnDecl:
    name: str
    type: str
    pos: Pos
    format: Str | None = None  # money display format ("$15", "15 EUR")


@dataclass
class UnitsDecl:
    name: str
    pos: Pos
    source: Str | None = None
    key: Named | None = None
    columns: list[ColumnDecl] = field(default_factory=list)
    rows: list[list[tuple[Named, Literal]]] = field(default_factory=list)
    decimal: Str | None = None  # `decimal ","`: money cells of the CSV use a decimal comma


@dataclass
class DistNode:
    kind: str  # fixed choice uniform normal
    pos: Pos
    values: list[Literal] = field(default_factory=list)
    weights: list[float | None] = field(default_factory=list)
    low: float | None = None
    high: float | None = None
    mean: float | None = None
    sd: float | None = None
    integer: bool = False


@dataclass
class PersonaDecl:
    name: str
    pos: Pos
    source: Str | None = None
    count: Literal | None = None
    describe: Str | None = None
    attributes: list[tuple[Named, DistNode]] = field(default_factory=list)
    replacement: bool = True  # `without replacement`: no row twice in one cell
    quota: tuple[Named, list[tuple[Literal, Literal]]] | None = None  # column, (value, percent) pairs


@dataclass
class TreatmentDecl:
    name: str
    pos: Pos
    expr: ExprNode
    assignment: str = "between"
    as_type: str | None = None
    money_format: Str | None = None
    description: Str | None = None


@dataclass
class CellDecl:
    pos: Pos
    assigns: list[tuple[Named, Literal]]


@dataclass
class ProbeNode:
    question: Str
    answer: AnswerNode
    pos: Pos


@dataclass
class CovariateDecl:
    name: str
    pos: Pos
    specified: bool
    expr: ExprNode | None = None
    probe: ProbeNode | None = None
    text: Str | None = None


@dataclass
class OutcomeDecl:
    name: str
    pos: Pos
    answer: AnswerNode
    question: Str


@dataclass
class SequenceDecl:
    name: str
    pos: Pos
    steps: list[Named]


@dataclass
class CheckDecl:
    name: str
    pos: Pos
    answer: AnswerNode
    question: Str
    expect: Str


@dataclass
class ContextDecl:
    text: Str
    pos: Pos


@dataclass
class ModesDecl:
    modes: list[Named]
    pos: Pos


@dataclass
class DesignDecl:
    name: str
    pos: Pos
    mode: Named
    persona: Named | None = None
    pins: list[tuple[Named, ExprNode]] = field(default_factory=list)
    split: list[tuple[float, float]] = field(default_factory=list)
    probes: bool = True
    sequential: Pos | None = None  # `sequential`: where the clause stands


@dataclass
class ModelDecl:
    name: Str
    pos: Pos
    replicates: Literal | None = None
    params: list[tuple[Named, Literal]] = field(default_factory=list)
    mode_params: list[tuple[Named, Named, Literal]] = field(default_factory=list)  # max_tokens aggregate 40


@dataclass
class BaselineDecl:
    source: Str
    pos: Pos
    match: list[tuple[Named, Named]] = field(default_factory=list)
    compare: list[tuple[Named, Named]] = field(default_factory=list)
    retest: list[tuple[Named, Named]] = field(default_factory=list)
    count: Named | None = None
    where: list[tuple[Named, Literal]] = field(default_factory=list)
    compare_kind: list[tuple[Named, tuple[Named, Named]]] = field(default_factory=list)  # compare effect OUTCOME = COLUMN
    option: Named | None = None  # option COLUMN: the column naming each row's option (categorical outcomes)


@dataclass
class AnalyzeDecl:
    names: list[Named]
    pos: Pos


Statement = Any  # one of the *Decl classes above


@dataclass
class StudyFile:
    """The whole parsed file: its statements in order."""

    path: str
    statements: list[Statement]
