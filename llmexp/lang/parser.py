"""Text -> AST. Loads the lark grammar, turns parse trees into `llmexp.lang.ast` nodes,
and turns lark's exceptions into located, readable `Problem`s.

On a syntax error every statement is parsed again on its own (a statement starts at a
keyword that opens a line), so every broken statement is reported, not only the first, and
the work stays linear in the size of the file. Files over `MAX_STUDY_BYTES` are refused.
"""

from __future__ import annotations

import ast as pyast
import dataclasses
import functools
import re
from importlib import resources
from pathlib import Path
from typing import cast

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from llmexp import modes
from llmexp.errors import MAX_SHOWN_PROBLEMS, Problem, StudyError, did_you_mean
from llmexp.lang import ast

# The largest study file read (UTF-8 bytes): parsing is linear, but a study is a text for
# people to read; long texts and tables belong in CSV files (docs/language.md).
MAX_STUDY_BYTES = 5_000_000

STATEMENT_KEYWORDS = (
    "study",
    "units",
    "persona",
    "treatment",
    "cell",
    "specified",
    "unspecified",
    "outcome",
    "sequence",
    "check",
    "context",
    "modes",
    "design",
    "model",
    "baseline",
    "analyze",
)


def grammar_text() -> str:
    """The grammar, shipped inside the package next to this module."""
    return resources.files("llmexp.lang").joinpath("study.lark").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def parser() -> Lark:
    return Lark(grammar_text(), parser="lalr", propagate_positions=True, maybe_placeholders=False)


def _pos(item) -> ast.Pos:
    """Where a token or a rule (lark Meta) starts; the parser propagates positions, so both have one."""
    return ast.Pos(cast(int, item.line), cast(int, item.column))


class _UserError(Exception):
    """Raised inside the transformer for a construct that parses but cannot be meant."""

    def __init__(self, message: str, pos: ast.Pos):
        super().__init__(message)
        self.pos = pos


def _number(token: Token) -> float:
    return float(str(token))


def _integer(token: Token, what: str) -> int:
    value = float(str(token))
    if not value.is_integer():
        raise _UserError(f"{what} must be a whole number, got {token}", _pos(token))
    return int(value)


def _binary_rule(op: str):
    """A transformer method building the binary expression node `op` (add, sub, mul, div)."""

    def build(self, left, right):
        return ast.ExprNode(op, left.pos, args=[left, right])

    return build


def _ranged_rule(kind: str):
    """A transformer method building a `kind` answer with an optional low..high range."""

    @v_args(meta=True, inline=False)
    def build(self, meta, children):
        node = ast.AnswerNode(kind, _pos(meta))
        if children and isinstance(children[0], dict):  # `valid LOW to HIGH [shown]`
            for key, value in children[0].items():
                setattr(node, key, value)
        elif children:
            node.low, node.high = children[0]
        return node

    return build


@v_args(inline=True)
class ToAst(Transformer):
    """Builds AST nodes bottom-up. Clauses come back as (tag, payload) pairs."""

    def __init__(self):
        super().__init__()
        self.repeated: list[tuple[str, ast.Pos]] = []  # clauses given twice in one statement
        self._seen: dict[int, set[str]] = {}  # id(node) -> one-time clauses already set

    def _set_once(self, node, tag: str, payload, statement: str, pos: ast.Pos) -> None:
        """Set a one-time clause; a second one is reported, not silently taken."""
        seen = self._seen.setdefault(id(node), set())
        if tag in seen:
            word = {"assignment": "between/within", "as_type": "as", "source": "from", "persona": "with persona",
                    "replacement": "without replacement", "money_format": "format"}.get(tag, tag)
            self.repeated.append((f"{statement} gives '{word}' twice", pos))
            return
        seen.add(tag)
        setattr(node, tag, payload)

    # ---- tokens and small pieces
    def string(self, token):
        raw = str(token)
        try:
            if raw.startswith('"""'):
                value = raw[3:-3]
                if value.startswith("\n"):
                    value = value[1:]
                value = _dedent(value)
            else:
                value = pyast.literal_eval(raw)
        except (SyntaxError, ValueError) as exc:
            raise _UserError(f"invalid string {raw}: {exc}", _pos(token)) from None
        return ast.Str(value, raw, _pos(token))

    def signed(self, *tokens):
        number = tokens[-1]
        value = _number(number)
        if len(tokens) == 2:
            value = -value
        pos = _pos(tokens[0]) if len(tokens) == 2 else _pos(number)
        return ast.Literal(value, pos, is_int=float(value).is_integer() and "." not in str(number))

    @v_args(meta=True, inline=False)
    def true(self, meta, _children):
        return ast.Literal(True, _pos(meta))

    @v_args(meta=True, inline=False)
    def false(self, meta, _children):
        return ast.Literal(False, _pos(meta))

    def _literal(self, item):
        if isinstance(item, ast.Str):
            return ast.Literal(item.value, item.pos)
        return item

    # ---- study
    @v_args(meta=True, inline=False)
    def study(self, meta, children):
        name, *clauses = children
        node = ast.StudyDecl(name, _pos(meta))
        for tag, payload in clauses:
            self._set_once(node, tag, payload, "the study statement", node.pos)
        return node

    def description(self, text):
        return ("description", text)

    def seed(self, token):
        return ("seed", ast.Literal(_integer(token, "seed"), _pos(token), True))

    # ---- units
    @v_args(meta=True, inline=False)
    def units_csv(self, meta, children):
        name, source, *clauses = children
        node = ast.UnitsDecl(str(name), _pos(meta), source=source)
        for tag, payload in clauses:
            if tag in ("key", "decimal"):
                self._set_once(node, tag, payload, f"units '{node.name}'", node.pos)
            else:
                node.columns.extend(payload)
        return node

    @v_args(meta=True, inline=False)
    def units_inline(self, meta, children):
        name, *items = children
        rows = [item for item in items if isinstance(item, list)]
        node = ast.UnitsDecl(str(name), _pos(meta), rows=rows)
        for tag, payload in (item for item in items if isinstance(item, tuple)):
            if tag in ("key", "decimal"):
                self._set_once(node, tag, payload, f"units '{node.name}'", node.pos)
            else:
                node.columns.extend(payload)
        return node

    def key(self, name):
        return ("key", ast.Named(str(name), _pos(name)))

    def columns(self, *decls):
        return ("columns", list(decls))

    def column_decl(self, name, coltype, *money_format):
        return ast.ColumnDecl(str(name), coltype, _pos(name), format=money_format[0] if money_format else None)

    def column_format(self, text):
        return text

    def decimal(self, text):
        return ("decimal", text)

    def coltype(self, token):
        return str(token)

    def unit_row(self, *fields):
        return list(fields)

    def field_value(self, name, value):
        return (ast.Named(str(name), _pos(name)), self._literal(value))

    # ---- personas
    @v_args(meta=True, inline=False)
    def persona(self, meta, children):
        name, *clauses = children
        node = ast.PersonaDecl(str(name), _pos(meta))
        for tag, payload in clauses:
            if tag == "attribute":
                node.attributes.append(payload)
            else:
                self._set_once(node, tag, payload, f"persona '{node.name}'", node.pos)
        return node

    def persona_source(self, text):
        return ("source", text)

    def count(self, token):
        return ("count", ast.Literal(_integer(token, "count"), _pos(token), True))

    def describe(self, text):
        return ("describe", text)

    def without_replacement(self, *_):
        return ("replacement", False)

    def quota(self, name, *shares):
        return ("quota", (ast.Named(str(name), _pos(name)), list(shares)))

    def quota_share(self, value, share, _percent):
        return (self._literal(value), share)

    def attribute(self, name, dist):
        return ("attribute", (ast.Named(str(name), _pos(name)), dist))

    def fixed(self, value):
        value = self._literal(value)
        return ast.DistNode("fixed", value.pos, values=[value])

    @v_args(meta=True, inline=False)
    def choice(self, meta, children):
        values = [c[0] for c in children]
        weights = [c[1] for c in children]
        return ast.DistNode("choice", _pos(meta), values=values, weights=weights)

    def option(self, value, *weight):
        weight_value = None
        if weight:
            weight_value = weight[0].value
            if len(weight) == 2:  # a percent sign
                weight_value = weight_value / 100.0
        return (self._literal(value), weight_value)

    def uniform(self, low, high, *flag):
        return ast.DistNode("uniform", low.pos, low=low.value, high=high.value, integer=bool(flag))

    def normal(self, mean, sd, *flag):
        return ast.DistNode("normal", mean.pos, mean=mean.value, sd=sd.value, integer=bool(flag))

    def integer_flag(self, *_):
        return True

    # ---- treatments and expressions
    @v_args(meta=True, inline=False)
    def treatment(self, meta, children):
        name, expr, *clauses = children
        node = ast.TreatmentDecl(str(name), _pos(meta), expr)
        for tag, payload in clauses:
            self._set_once(node, tag, payload, f"treatment '{node.name}'", node.pos)
        return node

    def between(self, *_):
        return ("assignment", "between")

    def within(self, *_):
        return ("assignment", "within")

    def as_type(self, coltype):
        return ("as_type", coltype)

    def money_format(self, text):
        return ("money_format", text)

    def treatment_description(self, text):
        return ("description", text)

    def num(self, token):
        return ast.ExprNode("num", _pos(token), value=_number(token))

    def str(self, text):
        return ast.ExprNode("str", text.pos, value=text.value)

    def ref(self, *names):
        dotted = ".".join(str(n) for n in names)
        return ast.ExprNode("ref", _pos(names[0]), value=dotted)

    add = _binary_rule("add")
    sub = _binary_rule("sub")
    mul = _binary_rule("mul")
    div = _binary_rule("div")

    @v_args(meta=True, inline=False)
    def neg(self, meta, children):
        return ast.ExprNode("neg", _pos(meta), args=[children[0]])

    @v_args(meta=True, inline=False)
    def levels(self, meta, children):
        return ast.ExprNode("levels", _pos(meta), levels=children[0])

    def level_range(self, low, high, step):
        if step.value <= 0:
            raise _UserError(f"step must be positive, got {step.value:g}", step.pos)
        if high.value < low.value:
            raise _UserError(f"range {low.value:g} to {high.value:g} is empty", low.pos)
        count = int(round((high.value - low.value) / step.value))
        if count > 10_000:
            raise _UserError(f"range has {count + 1} levels; at most 10001 are allowed", low.pos)
        values = [round(low.value + i * step.value, 10) for i in range(count + 1)]
        if values[-1] < high.value - 1e-9 and values[-1] + step.value <= high.value + 1e-9:
            values.append(round(values[-1] + step.value, 10))
        return [ast.Literal(v, low.pos) for v in values]

    def level_list(self, *items):
        return [i if isinstance(i, ast.LevelItem) else self._level_literal(i) for i in items]

    def _level_literal(self, item):
        """A level literal keeps the string it was written as: its text is a template."""
        literal = self._literal(item)
        if isinstance(item, ast.Str):
            literal.source = item
        return literal

    def column_level(self, ref):
        return ast.LevelItem(ref.pos, column=ref)

    def labelled_level(self, label, value):
        item = ast.LevelItem(label.pos, label=self._literal(label))
        if isinstance(value, ast.ExprNode):
            item.column = value
        else:
            item.value = self._level_literal(value)
        return item

    @v_args(meta=True, inline=False)
    def cell(self, meta, children):
        return ast.CellDecl(_pos(meta), list(children))

    def cell_assign(self, name, value):
        return (ast.Named(str(name), _pos(name)), self._literal(value))

    # ---- covariates
    @v_args(meta=True, inline=False)
    def specified(self, meta, children):
        name, expr, *clauses = children
        node = ast.CovariateDecl(str(name), _pos(meta), specified=True, expr=expr)
        for tag, payload in clauses:
            self._set_once(node, tag, payload, f"covariate '{node.name}'", node.pos)
        return node

    @v_args(meta=True, inline=False)
    def unspecified(self, meta, children):
        name, *clauses = children
        node = ast.CovariateDecl(str(name), _pos(meta), specified=False)
        for tag, payload in clauses:
            self._set_once(node, tag, payload, f"covariate '{node.name}'", node.pos)
        return node

    def probe(self, question, answer):
        return ("probe", ast.ProbeNode(question, answer, question.pos))

    def text(self, value):
        return ("text", value)

    # ---- outcomes and answers
    @v_args(meta=True, inline=False)
    def outcome(self, meta, children):
        name, answer, question = children
        return ast.OutcomeDecl(str(name), _pos(meta), answer, question)

    @v_args(meta=True, inline=False)
    def sequence(self, meta, children):
        name, *steps = children
        return ast.SequenceDecl(str(name), _pos(meta), [ast.Named(str(s), _pos(s)) for s in steps])

    @v_args(meta=True, inline=False)
    def check(self, meta, children):
        name, answer, question, expect = children
        return ast.CheckDecl(str(name), _pos(meta), answer, question, expect)

    @v_args(meta=True, inline=False)
    def binary(self, meta, children):
        return ast.AnswerNode("binary", _pos(meta), labels=list(children))

    @v_args(meta=True, inline=False)
    def categorical(self, meta, children):
        node = ast.AnswerNode("categorical", _pos(meta), labels=[label for label, _ in children])
        node.conditions = [condition for _, condition in children]
        return node

    def option_label(self, label, *condition):
        """An option and the cells it is shown in (`if decoy = "present"`; None: all)."""
        if not condition:
            return (label, None)
        name, level = condition
        return (label, ast.OptionCondition(ast.Named(str(name), _pos(name)), self._literal(level)))

    @v_args(meta=True, inline=False)
    def likert(self, meta, children):
        low, high, *labels = children
        node = ast.AnswerNode("likert", _pos(meta), low=_integer(low, "likert low end"), high=_integer(high, "likert high end"))
        if labels:
            node.labels = labels[0]
        return node

    def likert_labels(self, *labels):
        return list(labels)

    number = _ranged_rule("number")
    money = _ranged_rule("money")
    probability = _ranged_rule("probability")

    def range(self, low, high):
        return (low.value, high.value)

    def valid_range(self, low, high, *shown):
        """`valid LOW to HIGH [shown]`: each bound a number or a unit column."""
        found: dict = {"valid": True, "shown": bool(shown)}
        for end, bound in (("low", low), ("high", high)):
            found[end if isinstance(bound, ast.Literal) else f"{end}_ref"] = bound.value if isinstance(bound, ast.Literal) else bound
        return found

    def range_bound(self, *items):
        if len(items) == 1:
            return items[0]  # a signed number
        return ast.Named(f"{items[0]}.{items[1]}", _pos(items[0]))

    def shown_flag(self, *_):
        return True

    @v_args(meta=True, inline=False)
    def context(self, meta, children):
        return ast.ContextDecl(children[0], _pos(meta))

    # ---- designs
    @v_args(meta=True, inline=False)
    def modes(self, meta, children):
        return ast.ModesDecl(list(children), _pos(meta))

    def mode_name(self, token):
        return ast.Named(str(token), _pos(token))

    @v_args(meta=True, inline=False)
    def design(self, meta, children):
        name, mode, *clauses = children
        node = ast.DesignDecl(str(name), _pos(meta), mode)
        for tag, payload in clauses:
            if tag == "pin":
                node.pins.append(payload)
            elif tag == "split":
                node.split.extend(payload)
            elif tag == "sequential_at":  # said twice means the same: no error
                node.sequential = node.sequential or payload
            else:
                self._set_once(node, tag, payload, f"design '{node.name}'", node.pos)
        return node

    def with_persona(self, name):
        return ("persona", ast.Named(str(name), _pos(name)))

    def with_pin(self, name, expr):
        return ("pin", (ast.Named(str(name), _pos(name)), expr))

    def split(self, *ranges):
        return ("split", list(ranges))

    def without_probes(self, *_):
        return ("probes", False)

    @v_args(meta=True, inline=False)
    def sequential_exposure(self, meta, _children):
        return ("sequential_at", _pos(meta))

    # ---- models
    @v_args(meta=True, inline=False)
    def model(self, meta, children):
        name, *clauses = children
        node = ast.ModelDecl(name, _pos(meta))
        for tag, payload in clauses:
            if tag == "param":
                node.params.append(payload)
            elif tag == "mode_param":
                node.mode_params.append(payload)
            else:
                self._set_once(node, "replicates", payload, f"model {name.value!r}", node.pos)
        return node

    def replicates(self, token):
        return ("replicates", ast.Literal(_integer(token, "replicates"), _pos(token), True))

    def param(self, name, value):
        return ("param", (ast.Named(str(name), _pos(name)), self._literal(value)))

    def mode_param(self, name, mode, value):
        return ("mode_param", (ast.Named(str(name), _pos(name)), mode, self._literal(value)))

    # ---- baseline
    @v_args(meta=True, inline=False)
    def baseline(self, meta, children):
        source, *clauses = children
        node = ast.BaselineDecl(source, _pos(meta))
        for tag, payload in clauses:
            if tag in ("count", "option"):
                self._set_once(node, tag, payload, "the baseline statement", node.pos)
            else:
                getattr(node, tag).extend(payload)
        return node

    def match(self, *maps):
        return ("match", list(maps))

    def compare(self, *maps):
        return ("compare", list(maps))

    def retest(self, *maps):
        return ("retest", list(maps))

    def compare_kind(self, kind, *maps):
        named = ast.Named(str(kind), _pos(kind))
        return ("compare_kind", [(named, m) for m in maps])

    def option_column(self, name):
        return ("option", ast.Named(str(name), _pos(name)))

    def count_column(self, name):
        return ("count", ast.Named(str(name), _pos(name)))

    def where(self, *assigns):
        return ("where", list(assigns))

    def mapping(self, left, right):
        return (ast.Named(str(left), _pos(left)), ast.Named(str(right), _pos(right)))

    # ---- analysis requests
    @v_args(meta=True, inline=False)
    def analyze(self, meta, children):
        return ast.AnalyzeDecl([ast.Named(str(n), _pos(n)) for n in children], _pos(meta))

    def start(self, *statements):
        return list(statements)


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).rstrip()


# ------------------------------------------------------------------ syntax errors

_FRIENDLY = {
    "NAME": "a name",
    "NUMBER": "a number",
    "STRING": "a quoted string",
    "LONG_STRING": "a quoted string",
    "PERCENT": "%",
    "$END": "end of file",
}


def _describe_terminal(name: str) -> str:
    if name in _FRIENDLY:
        return _FRIENDLY[name]
    try:
        pattern = parser().get_terminal(name).pattern
    except KeyError:
        return name.lower()
    if isinstance(pattern, lark.lexer.PatternStr):
        return f'"{pattern.value}"'
    return name.lower()


def _expected_text(expected: set[str]) -> tuple[str, list[str]]:
    described = {_describe_terminal(e) for e in expected if not e.startswith("__") and e != "MODE"}
    if "MODE" in expected:  # any name parses as a mode; the registered ones are what is expected
        described |= {f'"{name}"' for name in modes.names()}
    names = sorted(described)
    keywords = [n.strip('"') for n in names if n.startswith('"')]
    if len(names) > 12:
        statement_words = [k for k in keywords if k in STATEMENT_KEYWORDS]
        others = [n for n in names if n.strip('"') not in STATEMENT_KEYWORDS]
        if statement_words:
            others.append("a new statement")
        names = others
    return ", ".join(names), keywords


def _syntax_problem(exc: UnexpectedInput, text: str, filename: str, ending: str = "file") -> Problem:
    """`ending` names what ran out when the parser wanted more: the file, or (when one
    statement is parsed alone) the statement."""
    line, column = exc.line, exc.column
    hint = None
    if isinstance(exc, UnexpectedCharacters):
        at = exc.pos_in_stream if exc.pos_in_stream is not None else len(text)
        char = text[at] if at < len(text) else "?"
        expected, keywords = _expected_text(set(exc.allowed or ()))
        if char == '"':
            message = "unterminated string (a string must close on the same line; use \"\"\" for several lines)"
        else:
            message = f"unexpected character {char!r}"
            if expected:
                message += f"; expected {expected}"
    elif isinstance(exc, UnexpectedEOF):
        expected, keywords = _expected_text(set(exc.expected))
        message = f"unexpected end of {ending}; expected {expected}"
        line, column = _end_position(text)
    else:
        assert isinstance(exc, UnexpectedToken)
        token = exc.token
        expected, keywords = _expected_text(set(exc.accepts or exc.expected))
        if token.type == "$END":
            message = f"unexpected end of {ending}; expected {expected}"
            line, column = _end_position(text)
        else:
            message = f"unexpected {_token_text(token)}; expected {expected}"
        if token.type == "NAME" and keywords:
            hint = did_you_mean(token, keywords, cutoff=0.7) or hint
    return Problem(message, filename, line, column, hint)


def _token_text(token: Token) -> str:
    if token.type in ("STRING", "LONG_STRING"):  # one line: a problem is one line of output
        return "string " + str(token)[:40].replace("\r", "\\r").replace("\n", "\\n")
    if token.type == "NUMBER":
        return f"number {token}"
    if token.type == "NAME":
        return f"name '{token}'"
    return f"'{token}'"


def _end_position(text: str) -> tuple[int, int]:
    """Just after the last non-blank character: where the statement stopped short (an
    isolated statement is padded with blanks to the end of the file)."""
    lines = text.rstrip().split("\n")
    return len(lines), len(lines[-1]) + 1


# A statement keyword opening a line (after blanks), or the start of a string or comment.
_SCAN = re.compile(r'"""|"|#|^[ \t\r]*(' + "|".join(STATEMENT_KEYWORDS) + r")\b", re.MULTILINE)
_STRING_RUN = re.compile(r'[^"\\\n]*')  # the plain characters of a "..." string


def _statement_spans(text: str) -> list[tuple[int, int]]:
    """Start/end offsets of statements: keywords that open a line, outside strings.

    One pass over the text (regex jumps, no per-character Python loop). A "..." string that
    runs into a line break ends there, and the next line then does not count as a line start."""
    starts = []
    i, n = 0, len(text)
    no_line_start_at = -1  # the line after an unterminated "..." string
    while i < n:
        found = _SCAN.search(text, i)
        if found is None:
            break
        token, i = found.group(), found.start()
        if token.startswith('"""'):
            end = text.find('"""', i + 3)
            i = n if end < 0 else end + 3
        elif token == '"':
            j = _STRING_RUN.match(text, i + 1).end()  # type: ignore[union-attr]
            while j < n and text[j] == "\\":
                j = _STRING_RUN.match(text, min(j + 2, n)).end()  # type: ignore[union-attr]
            if j < n and text[j] == "\n":
                no_line_start_at = j + 1
            i = j + 1
        elif token == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
        else:
            if i != no_line_start_at:
                starts.append(found.start(1))
            i = found.end()
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return list(zip(starts, starts[1:] + [n], strict=True))


def _shifted(problem: Problem, lines_before: int, column_before: int) -> Problem:
    """A problem found in a statement parsed alone, moved to its place in the whole file."""
    if problem.line is None:
        return problem
    column = problem.column
    if problem.line == 1 and column is not None:
        column += column_before
    return dataclasses.replace(problem, line=problem.line + lines_before, column=column)


def _statement_problems(text: str, filename: str) -> list[Problem]:
    """Parse each statement on its own (linear in the file size: every character is parsed
    once) and return one problem per broken statement, located in the whole file. Only the
    first `MAX_SHOWN_PROBLEMS` are explained (what was expected); the rest, which error
    messages only count, are just located."""
    problems: list[Problem] = []
    spans = _statement_spans(text)
    lines_before, counted_to = 0, 0
    for index, (start, end) in enumerate(spans):
        chunk = text[start:end]
        try:
            parser().parse(chunk)
        except UnexpectedInput as exc:
            lines_before += text.count("\n", counted_to, start)
            counted_to = start
            column_before = start - (text.rfind("\n", 0, start) + 1)
            if len(problems) < MAX_SHOWN_PROBLEMS:
                ending = "file" if index == len(spans) - 1 else "statement"
                problem = _syntax_problem(exc, chunk, filename, ending)
            else:  # never shown, only counted: located, but without the costly "expected ..."
                problem = _brief_problem(exc, chunk, filename)
            problems.append(_shifted(problem, lines_before, column_before))
    return problems


def _brief_problem(exc: UnexpectedInput, text: str, filename: str) -> Problem:
    """A syntax problem located like `_syntax_problem`'s but only named, not explained."""
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or (token is not None and token.type == "$END"):
        line, column = _end_position(text)
    else:
        line, column = exc.line, exc.column
    return Problem("syntax error", filename, line, column)


def _transform(tree, filename: str) -> list:
    transformer = ToAst()
    try:
        statements = transformer.transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, _UserError):
            err = exc.orig_exc
            raise StudyError([Problem(str(err), filename, err.pos.line, err.pos.column)]) from None
        raise
    if transformer.repeated:
        raise StudyError([Problem(message, filename, pos.line, pos.column) for message, pos in transformer.repeated])
    return statements


def _check_size(size: int, filename: str) -> None:
    if size > MAX_STUDY_BYTES:
        raise StudyError([Problem(
            f"the study file is {size:,} bytes; the largest study file llmexp reads is "
            f"{MAX_STUDY_BYTES:,} bytes ({MAX_STUDY_BYTES // 1_000_000} MB)",
            filename,
            hint="put long texts or tables in a CSV file next to the study and refer to it",
        )])


def parse_text(text: str, filename: str = "<study>") -> ast.StudyFile:
    """Parse study text into an AST; raises StudyError listing every syntax error.

    Time and memory are linear in the size of the text, which may be at most
    `MAX_STUDY_BYTES` (UTF-8)."""
    if len(text) * 4 > MAX_STUDY_BYTES:  # only then can the UTF-8 size be over the limit
        _check_size(len(text.encode("utf-8", "surrogatepass")), filename)
    try:
        tree = parser().parse(text)
    except UnexpectedInput:
        problems = _statement_problems(text, filename)
        if not problems:  # the statements parse alone but not together (should not happen)
            try:
                parser().parse(text)
            except UnexpectedInput as exc:
                problems.append(_syntax_problem(exc, text, filename))
        raise StudyError(problems) from None
    return ast.StudyFile(filename, _transform(tree, filename))


def parse_file(path: str | Path) -> ast.StudyFile:
    from llmexp.errors import LlmexpError

    path = Path(path)
    try:
        if path.is_file():  # refuse an oversized file before reading it
            _check_size(path.stat().st_size, str(path))
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise LlmexpError(f"{path}: no such study file") from None
    except UnicodeDecodeError as exc:
        raise StudyError([Problem(f"not UTF-8 text ({exc.reason} at byte {exc.start})", str(path))]) from None
    except OSError as exc:
        raise LlmexpError(f"{path}: cannot read ({exc.strerror})") from None
    return parse_text(text, str(path))
