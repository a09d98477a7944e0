"""What every answer type shares: the `AnswerType` base class, the registry, the parse helpers
(label matching, number extraction), the per-condition `k) answer` form, and `Answer`.

An answer type (binary, categorical, likert, number, money, probability, ...) is ONE class in
ONE file of this package. It owns everything that depends on the kind of answer, so callers
ask it instead of testing its name:

- the prompt instruction (`instruction`, `per_condition_instruction`) and the aggregate form
  (`aggregate`: one number per condition predicting the population's result);
- parsing a model's text (`parse`) and the value rules (`label_value`; `with_probs` when the
  provider returned label probabilities);
- the embedded model's answer options (`options`: label texts it scores) or number grammar
  (`number_form`);
- the synthetic respondent's draw (`synthetic_answer`, one answer text; `synthetic_values`,
  vectorised values for simulation; `expected_value`);
- declarations the language and the analysis read (`has_labels`, `numeric`, `share`,
  `first_label_share`, `effect_methods`, `spec_error`, `spec_range`, `aggregable`).

`get(spec_or_name)` returns the type bound to a spec (the trial's `answer` dict or a
`llmexp.spec.AnswerSpec`; a bare name binds an empty spec). `register` adds a class to the
registry; the package `__init__` imports every module of the package, so a new answer type
is one new file (a class defined anywhere, e.g. in a test, registers the same way).

Parsing rules (shared by all types; each type's rules are in its module docstring):
matching is case-insensitive and tolerates quotes, markdown, punctuation, extra words and
`<think>...</think>` blocks. Unparseable answers come back `valid=False` with an `error`; the
runner stores them (raw text kept) and counts them, it never drops them. Per-condition
answers (`answer["per_condition"]`) are one line per condition, numbered `1)`, `2)`, ... in
the order of the trial's `conditions`, e.g. `3) 45%`; each part is parsed with the type's
rules (for numbers the last number of the part, so an echoed condition such as
`2) at $0.40: 45%` reads 45%). All conditions must be answered exactly once; the result is
`condition_values = {cell: value}`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

import numpy as np

from llmexp import expr as ex
from llmexp.errors import LlmexpError
from llmexp.spec import AnswerSpec

__all__ = [
    "Answer",
    "AnswerType",
    "Aggregate",
    "NumberForm",
    "UnknownAnswerType",
    "register",
    "get",
    "find",
    "names",
    "parse_answer",
    "condition_marker",
    "condition_line",
    "condition_lines",
    "lines_instruction",
    "split_conditions",
]


@dataclass(frozen=True, slots=True)
class Answer:
    """A parsed answer: `value` on the analysis scale, or `condition_values` per cell."""

    valid: bool
    value: float | None = None
    label: str | None = None
    condition_values: dict | None = None
    error: str | None = None


def invalid(error: str) -> Answer:
    """An unparseable answer with the reason (kept and counted by the runner, never dropped)."""
    return Answer(valid=False, error=error)


class UnknownAnswerType(LlmexpError):
    """An answer spec names a type no module of `llmexp.answers` registers."""


# ---------------------------------------------------------------- text normalisation

THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_NOISE = re.compile(r"[*_`\"“”«»]")
_WS = re.compile(r"\s+")
_PREFIX = re.compile(r"^(?:final\s+)?(?:answer|response|choice|decision)\s*[:\-=]\s*", re.I)
_NEGATION = re.compile(r"(?:\bnot|n't|\bnever|\bno|\bwon't|\bwouldn't|\bdon't|\bdo not|\bwould not|\bwill not)\s+$")


def normalize(text: str) -> str:
    """Lower-case text without think blocks, markdown, quotes, an "Answer:" prefix or edge punctuation."""
    text = THINK.sub(" ", text or "")
    text = text.replace("’", "'").replace("‘", "'")
    text = _NOISE.sub(" ", text).lower()
    text = _WS.sub(" ", text).strip()
    text = _PREFIX.sub("", text)
    return text.strip(" .,:;!?'()[]{}")


def spec_get(answer: Any, key: str, default: Any = None) -> Any:
    """A field of an answer spec given as a dict (trial table) or an `AnswerSpec`."""
    if isinstance(answer, Mapping):
        return answer.get(key, default)
    return getattr(answer, key, default)


# ---------------------------------------------------------------- labels


def _label_pattern(label: str) -> re.Pattern:
    words = normalize(label)
    body = r"\s+".join(re.escape(w) for w in words.split(" "))
    return re.compile(r"(?<![a-z0-9])" + body + r"(?![a-z0-9])")


_PATTERN_CACHE: dict[tuple, list] = {}


def _label_patterns(labels: Sequence[str]) -> list[tuple[int, str, re.Pattern]]:
    key = tuple(labels)
    cached = _PATTERN_CACHE.get(key)
    if cached is None:
        items = [(i, lab, _label_pattern(lab)) for i, lab in enumerate(labels)]
        # longest first so "not purchase" is consumed before "purchase"
        cached = sorted(items, key=lambda t: -len(normalize(t[1])))
        if len(_PATTERN_CACHE) > 512:
            _PATTERN_CACHE.clear()
        _PATTERN_CACHE[key] = cached
    return cached


def _negation_of(neg: str, pos: str) -> bool:
    n, p = normalize(neg), normalize(pos)
    return n != p and p in n and bool(re.search(r"\b(not|no|don't|never|n't)\b", n))


def _negated_target(idx: int, labels: Sequence[str]) -> int | None:
    """The label a negated mention of labels[idx] stands for ("wouldn't purchase")."""
    negs = [j for j, lab in enumerate(labels) if j != idx and _negation_of(lab, labels[idx])]
    if negs:
        return negs[0]
    if len(labels) == 2:
        return 1 - idx
    return None


def match_label(text: str, labels: Sequence[str]) -> tuple[int | None, str | None]:
    """Index of the one label the text chooses, or (None, error).

    A label that contains another ("purchase" / "not purchase") is matched longest first; a
    label right after a negation ("wouldn't purchase") counts as the label negating it (or
    the other of two labels). A text naming several labels is ambiguous unless it *starts*
    with exactly one of them ("No. I'd say yes if it were cheaper" -> no).
    """
    if not labels:
        return None, "no labels in the answer spec"
    norm = normalize(text)
    if not norm:
        return None, "empty answer"
    found: dict[int, int] = {}  # label index -> first position
    lead_end: dict[int, int] = {}  # label index -> end of a match at position 0
    masked = norm
    for idx, _label, pat in _label_patterns(labels):
        for m in pat.finditer(masked):
            target = idx
            if _NEGATION.search(masked[: m.start()]):
                negated = _negated_target(idx, labels)
                if negated is None:
                    continue
                target = negated
            found[target] = min(found.get(target, m.start()), m.start())
            if m.start() == 0:
                lead_end[target] = m.end()
        masked = pat.sub(lambda m: " " * len(m.group(0)), masked)
    if not found:
        return None, "answer names none of the labels " + "/".join(labels)
    if len(found) == 1:
        return next(iter(found)), None
    # "No. I'd say yes if it were cheaper": a label standing alone at the start decides
    if len(lead_end) == 1:
        idx, end = next(iter(lead_end.items()))
        if end == len(norm) or norm[end] in ".,;:!-\n" or norm[end : end + 2] in (" -", " –", " —"):
            return idx, None
    names_ = ", ".join(labels[i] for i in sorted(found))
    return None, f"ambiguous: answer names several labels ({names_})"


# ---------------------------------------------------------------- numbers

_NUM = re.compile(
    r"(?<![\w.])(-)?\$?\s?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s?(k\b|%|percent\b|per cent\b)?",
    re.I,
)
SCALE = re.compile(
    r"(?:(?:scale|range)\s+(?:of|from)\s+-?\d+(?:\.\d+)?\s*(?:to|-|–|and)\s*-?\d+(?:\.\d+)?"
    r"|(?:from|between)\s+-?\d+(?:\.\d+)?\s*(?:to|and)\s*-?\d+(?:\.\d+)?\s+scale"
    r"|\d+\s*-\s*\d+\s+scale"
    r"|out\s+of\s+\d+(?:\.\d+)?"
    r"|/\s*\d+(?:\.\d+)?)",
    re.I,
)
RANGE = re.compile(r"(?<![\w.])\$?(\d+(?:\.\d+)?)\s*%?\s*(?:-|–|to|and)\s*\$?(\d+(?:\.\d+)?)(?![\w.])(\s?%|\s?percent)?", re.I)
RATIO = re.compile(r"(?<![\w.])(\d+)\s+(?:in|out\s+of)\s+(\d+)(?![\w.])", re.I)


def numbers(text: str) -> list[tuple[float, bool]]:
    """(value, is_percent) for each number in the text, scale phrases ("out of 7") removed."""
    text = SCALE.sub(" ", text)
    out = []
    for m in _NUM.finditer(text):
        raw = m.group(2).replace(",", "")
        try:
            val = float(raw)
        except ValueError:
            continue
        if m.group(1):
            val = -val
        suffix = (m.group(3) or "").lower()
        if suffix == "k":
            val *= 1000
        out.append((val, suffix in ("%", "percent", "per cent")))
    return out


def in_range(val: float, low: float | None, high: float | None) -> bool:
    """Whether val lies in [low, high] (an open end when None), with float tolerance."""
    if low is not None and val < low - 1e-9:
        return False
    return not (high is not None and val > high + 1e-9)


def fmt(x: float) -> str:
    """A number as an error message shows it (no ".0" on whole numbers)."""
    return str(int(x)) if float(x).is_integer() else str(x)


def range_text(low: float | None, high: float | None) -> str:
    """The "[low, high]" of error messages, an open end left blank."""
    return f"[{'' if low is None else fmt(low)}, {'' if high is None else fmt(high)}]"


def format_number(value: float, money: bool) -> str:
    """How the synthetic respondent writes a number ("$1,234.50", "12", "3.142")."""
    if money:  # "-$1.75", never "$-1.75" (which reads back as 1.75)
        return f"-${-value:,.2f}" if value < 0 else f"${value:,.2f}"
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.2f}"


def clip(value: float, low: Any, high: Any) -> float:
    """value kept inside [low, high]; None is an open end."""
    if low is not None:
        value = max(value, float(low))
    if high is not None:
        value = min(value, float(high))
    return value


def _round_sig(v: np.ndarray, digits: int = 4) -> np.ndarray:
    """What f"{v:.4g}" keeps, vectorised (numbers below 1000)."""
    out = v.copy()
    nz = v != 0
    mag = np.floor(np.log10(np.abs(v[nz])))
    scale = 10.0 ** (digits - 1 - mag)
    out[nz] = np.round(v[nz] * scale) / scale
    return out


def round_as_written(v: np.ndarray, money: bool) -> np.ndarray:
    """The values `format_number(round(v, 2), money)` parses back to, vectorised."""
    v = np.round(v, 2)
    if money:
        return v
    small = (np.abs(v) < 1000) & (np.abs(v - np.round(v)) >= 1e-9)
    v = v.copy()
    v[small] = _round_sig(v[small])
    return v


# ---------------------------------------------------------------- per condition: "k) answer"

PER_CONDITION_EXAMPLE = "ANSWER"
_MARK_PAREN = re.compile(r"(?<![\w.$(\[])(\d{1,3})\s*[\)\]]")
_MARK_LINE = re.compile(r"(?m)^[ \t>*\-#]*(?:condition\s*|#)?(\d{1,3})\s*[\.:\-]\s")


def condition_marker(k: int) -> str:
    """The number that starts condition k's line of a per-condition answer: "k)"."""
    return f"{k})"


def condition_line(k: int, text: str) -> str:
    """Condition k's line of a per-condition answer: "k) text"."""
    return f"{condition_marker(k)} {text}"


def condition_lines(texts: Sequence[str]) -> str:
    """A whole per-condition answer, one "k) text" line per condition in order."""
    return "\n".join(condition_line(k, t) for k, t in enumerate(texts, start=1))


def lines_instruction(example: str = PER_CONDITION_EXAMPLE) -> str:
    """The prompt's request for the per-condition form (no final period: callers go on)."""
    return f'Write one line per condition, in the order above, starting with its number, in the form "{condition_line(1, example)}"'


def split_conditions(text: str, n: int) -> tuple[dict[int, str] | None, str | None]:
    """The text of each condition's part of a per-condition answer, or (None, error).

    Markers are "k)" (or "k." / "k:" at a line start when no "k)" is present); a number
    inside a part is content, not a marker, unless it continues the increasing sequence.
    """
    text = THINK.sub(" ", text or "")
    marks = [(m.start(), m.end(), int(m.group(1))) for m in _MARK_PAREN.finditer(text)]
    if not any(1 <= k <= n for _, _, k in marks):
        marks = [(m.start(), m.end(), int(m.group(1))) for m in _MARK_LINE.finditer(text)]
    marks = [m for m in marks if 1 <= m[2] <= n]
    if not marks:
        return None, f"no numbered condition answers (expected 1) .. {n}))"
    seq: list[tuple[int, int, int]] = []
    for mk in marks:
        if not seq or mk[2] > seq[-1][2]:
            seq.append(mk)
        elif mk[2] == seq[-1][2] or mk[2] in {s[2] for s in seq}:
            return None, f"condition {mk[2]} answered more than once"
    parts: dict[int, str] = {}
    for i, (_s, e, k) in enumerate(seq):
        end = seq[i + 1][0] if i + 1 < len(seq) else len(text)
        parts[k] = text[e:end]
    missing = [k for k in range(1, n + 1) if k not in parts]
    if missing:
        return None, "no answer for condition(s) " + ", ".join(map(str, missing))
    return parts, None


# ---------------------------------------------------------------- the answer type


@dataclass(frozen=True)
class Aggregate:
    """How an aggregate prompt asks for this answer: one number per condition.

    answer: the spec of that number (stored as the trial's answer, with `of` = the outcome);
    ask: what the number predicts ("the percentage of respondents who answered "yes"");
    example: the number's form in the per-condition line ("N%" or "N").
    """

    answer: AnswerSpec
    ask: str
    example: str

    @property
    def instruction(self) -> str:
        """The request after "For each condition, ": what to predict, in which form."""
        return f"predict {self.ask}. {lines_instruction(self.example)} where N is your prediction."


@dataclass(frozen=True)
class NumberForm:
    """The number grammar the embedded model draws a free-number answer with.

    dollar: a leading "$" may come first; minus: a leading "-" may come first; percent: a
    trailing "%" may end it; low/high: the range (the integer part is kept <= high);
    space_given: the space after "Answer:" is taken as given (saves a step; money keeps it
    optional because " $" is one token).
    """

    dollar: bool
    minus: bool
    percent: bool
    low: float | None
    high: float | None
    space_given: bool


A = TypeVar("A", bound="AnswerType")


class AnswerType:
    """One kind of answer, bound to a spec (`labels`, `low`, `high`, `per_condition`).

    Subclasses set `name` and the capability attributes and override what differs; they
    are registered with `@register`. Callers read the attributes and call the methods; they
    never compare type names.
    """

    name: ClassVar[str] = ""
    # the answer is one of a fixed set of options (labels or scale points): the embedded
    # model scores them, and label probabilities from a provider can give the value
    has_labels: ClassVar[bool] = False
    # the answer is a free number (drawn with a number grammar by the embedded model)
    numeric: ClassVar[bool] = False
    # values are shares in [0, 1] (a purchase probability): demand curves can use them
    share: ClassVar[bool] = False
    # the value is the probability of the first label (1 = first, 0 = other): a label
    # probability is the exact value, a 0-100 aggregate answer is rescaled
    first_label_share: ClassVar[bool] = False
    # the effect estimators the analysis fits by default, in order
    effect_methods: ClassVar[tuple[str, ...]] = ("ols",)
    # the value is an unordered option index: effects are per-option shares and their
    # differences (a mean of the index means nothing)
    categorical: ClassVar[bool] = False
    # the declared range may be kept out of the prompt (`valid LOW to HIGH`) and read per
    # unit from columns; false where the range is the answer scale itself (likert)
    range_hideable: ClassVar[bool] = False
    # completion tokens one answer needs ("$1,234.50", a short label) when the study sets
    # no max_tokens; label types add what their longest label needs (`token_budget`)
    answer_tokens: ClassVar[int] = 8

    def __init__(self, spec: Any = None) -> None:
        self.spec = spec
        self.labels: tuple[str, ...] = tuple(spec_get(spec, "labels", ()) or ())
        self.low: Any = spec_get(spec, "low")
        self.high: Any = spec_get(spec, "high")
        self.per_condition: bool = bool(spec_get(spec, "per_condition", False))
        self.shown: bool = bool(spec_get(spec, "shown", True))  # the prompt states the range

    def __repr__(self) -> str:
        return f"{type(self).__name__}(labels={self.labels!r}, low={self.low!r}, high={self.high!r})"

    # ------------------------------------------------------------ declaring (the language)
    @classmethod
    def spec_error(cls, labels: Sequence[str], low: float | None, high: float | None) -> str | None:
        """What is wrong with a declared answer of this type, or None (labels are already
        non-empty and distinct)."""
        return None

    @classmethod
    def spec_range(cls, low: float | None, high: float | None) -> tuple[float | None, float | None]:
        """The (low, high) stored in the spec for a declared range."""
        return low, high

    def aggregable(self) -> bool:
        """Whether one number per condition (an aggregate prompt) can summarise the answers."""
        return True

    def token_budget(self, conditions: int = 1) -> int:
        """The max_tokens a call answering this needs when the study gives none: one answer
        (the longest label, about 3 characters a token, plus a margin), or one `k) answer`
        line per condition for a per-condition answer."""
        one = max([self.answer_tokens, *(len(str(label)) // 3 + 4 for label in self.labels)])
        return conditions * (one + 4) if self.per_condition else one

    # ------------------------------------------------------------ prompts
    def instruction(self) -> str:
        """The sentence that tells the respondent how to answer one question."""
        raise NotImplementedError(f"answer type {self.name!r} has no instruction")

    def per_condition_instruction(self) -> str:
        """How to answer for every condition listed in one prompt ("k) answer" lines)."""
        return f"{self.instruction()} {lines_instruction()}."

    def aggregate(self) -> Aggregate:
        """The aggregate question: the mean answer per condition (label types: a share)."""
        span = ""
        if self.low is not None and self.shown:
            span = f" (answers ranged from {ex.format_number(self.low)} to {ex.format_number(self.high)})"
        number = AnswerSpec(
            type="number", low=self.low, high=self.high, shown=self.shown,
            low_ref=spec_get(self.spec, "low_ref"), high_ref=spec_get(self.spec, "high_ref"),
        )  # fmt: skip
        return Aggregate(number, f"the average answer{span}", "N")

    # ------------------------------------------------------------ parsing and values
    def parse(self, text: str, last: bool = False) -> Answer:
        """One answer from text; `last`: a per-condition part (read its last number)."""
        raise NotImplementedError

    def label_value(self, index: int) -> float:
        """The value of choosing label `index`."""
        return float(index)

    def with_probs(self, parsed: Answer, probs: Mapping[str, Any]) -> Answer:
        """The answer revised by the provider's label probabilities (label types, one answer).

        An answer the text did not settle takes the most probable label; see each type's
        `_from_probs` for the value.
        """
        labels = list(self.labels)
        if not (labels and self.has_labels and not self.per_condition):
            return parsed
        total = sum(float(probs.get(lab, 0.0)) for lab in labels)
        if total <= 0:
            return parsed
        best = max(labels, key=lambda lab: float(probs.get(lab, 0.0)))
        value = self._from_probs(parsed, probs, total, best)
        label = parsed.label if parsed.valid else best
        return replace(parsed, valid=True, value=value, label=label, error=None)

    def _from_probs(self, parsed: Answer, probs: Mapping[str, Any], total: float, best: str) -> float | None:
        """The value given label probabilities (default: the parsed value, else the best label's)."""
        return parsed.value if parsed.valid else float(self.labels.index(best))

    # ------------------------------------------------------------ the embedded model
    def options(self) -> list[tuple[str, str]]:
        """(key, answer text) per option the embedded model scores; [] for a free number.

        The text (after a space) is the continuation scored and returned; the key names the
        option in `probs`, matching the spec's labels so the runner can read them.
        """
        return [(str(label), str(label)) for label in self.labels] if self.has_labels else []

    def number_form(self) -> NumberForm | None:
        """The number grammar for a free-number answer; None when the answer is an option."""
        return None

    # ------------------------------------------------------------ the synthetic respondent
    def synthetic_answer(
        self,
        p: float,
        rng: random.Random,
        *,
        noise: float = 0.0,
        aggregate: bool = False,
        with_probs: bool = False,
        probe: Callable[[], float] | None = None,
        is_probe: bool = False,
    ) -> tuple[str, dict | None]:
        """The synthetic respondent's answer text (and label probabilities) given P.

        p: P(first label) / the share / the position in the range; rng: the trial's seeded
        draw; noise: sd of the noise on numbers; aggregate: the per-condition answer of an
        aggregate prompt (a share of respondents); with_probs: return label probabilities
        too; probe: draws a probed covariate's value (a number without a range); is_probe:
        the trial is a probe.
        """
        return "", None

    def synthetic_values(
        self,
        p: np.ndarray,
        rng: np.random.Generator,
        sims: int,
        *,
        noise: float = 0.0,
        aggregate: bool = False,
        with_probs: bool = False,
        probe_ev: np.ndarray | None = None,
        probe_pinned: Any = False,
        is_probe: bool = False,
    ) -> np.ndarray:
        """(rows x sims) values on the analysis scale: `synthetic_answer` vectorised for
        simulation (numpy draws, the same text rounding). p: (rows x 1); probe_ev: (rows x 1)
        expected probe values; probe_pinned: rows whose probed covariate is pinned."""
        if is_probe or self._needs_probe():
            return self._probe_values(probe_ev, probe_pinned, rng, sims, noise)
        return self._draw_values(p, rng, sims, noise, aggregate, with_probs)

    def expected_value(self, p: np.ndarray, probe_ev: np.ndarray, is_probe: bool = False) -> np.ndarray:
        """E[answer on the analysis scale] given P(first label) (probes: the expected probe value)."""
        if is_probe or self._needs_probe():
            return probe_ev
        return self._expected(p)

    def _needs_probe(self) -> bool:
        """Whether a synthetic answer comes from the probe rule (numbers without a range)."""
        return False

    def _expected(self, p: np.ndarray) -> np.ndarray:
        return p

    def _draw_values(self, p: np.ndarray, rng: np.random.Generator, sims: int, noise: float, aggregate: bool, with_probs: bool) -> np.ndarray:
        raise ValueError(f"the synthetic respondent has no rule for answer type {self.name!r}")

    def _probe_values(self, probe_ev: np.ndarray | None, probe_pinned: Any, rng: np.random.Generator, sims: int, noise: float) -> np.ndarray:
        """Probe rule: the expected value times (1 + noise), the pinned value when pinned."""
        if probe_ev is None:
            raise ValueError("a probe needs its expected value (probe_ev)")
        n = len(probe_ev)
        v = probe_ev * (1.0 + noise * rng.standard_normal((n, sims))) if noise else np.repeat(probe_ev, sims, 1)
        v = np.where(probe_pinned, probe_ev, v)
        low, high = self.low, self.high
        v = np.clip(v, -np.inf if low is None else float(low), np.inf if high is None else float(high))
        return round_as_written(v, self._money())

    def _money(self) -> bool:
        """Whether written numbers are dollar amounts (rounded to cents)."""
        return False


# ---------------------------------------------------------------- registry

TYPES: dict[str, type[AnswerType]] = {}


def register(cls: type[A]) -> type[A]:
    """Class decorator: make `cls` the answer type named `cls.name` (a later one replaces it)."""
    if not cls.name:
        raise TypeError(f"{cls.__name__} needs a `name`")
    TYPES[cls.name] = cls
    return cls


def names() -> tuple[str, ...]:
    """Registered answer type names, in registration order."""
    return tuple(TYPES)


def find(spec_or_name: Any) -> AnswerType | None:
    """The answer type of a spec (bound to it) or of a name; None when unknown."""
    if isinstance(spec_or_name, AnswerType):
        return spec_or_name
    if isinstance(spec_or_name, str):
        cls = TYPES.get(spec_or_name)
        return cls(None) if cls is not None else None
    cls = TYPES.get(spec_get(spec_or_name, "type"))
    return cls(spec_or_name) if cls is not None else None


def get(spec_or_name: Any) -> AnswerType:
    """The answer type of a spec (bound to it) or of a name; raises `UnknownAnswerType`."""
    found = find(spec_or_name)
    if found is None:
        name = spec_or_name if isinstance(spec_or_name, str) else spec_get(spec_or_name, "type")
        raise UnknownAnswerType(f"unknown answer type {name!r}; known: {', '.join(names())}")
    return found


# ---------------------------------------------------------------- parse_answer


def _parse_one(text: str, atype: AnswerType | None, spec: Any, last: bool) -> Answer:
    if atype is None:
        return invalid(f"unknown answer type {spec_get(spec, 'type')!r}")
    return atype.parse(text, last)


def parse_answer(text: str | None, answer: Any, conditions: Sequence[Mapping] | None = None) -> Answer:
    """Parse `text` per the answer spec (a trial's `answer` dict or an `AnswerSpec`).

    One answer: the type's `parse`. Per-condition (`answer["per_condition"]`): one "k) ..."
    part per condition of `conditions`, each parsed with the type's rules; the result has
    `condition_values = {cell: value}`.
    """
    if text is None or not str(text).strip():
        return invalid("empty answer")
    text = str(text)
    atype = find(answer)
    if not spec_get(answer, "per_condition", False):
        return _parse_one(text, atype, answer, last=False)
    conds = list(conditions or [])
    if not conds:
        return invalid("per-condition answer without conditions")
    parts, err = split_conditions(text, len(conds))
    if parts is None:
        return invalid(err or "unparseable")
    values: dict[str, float | None] = {}
    for k, cond in enumerate(conds, start=1):
        part = _parse_one(parts[k], atype, answer, last=True)
        if not part.valid:
            return invalid(f"condition {k}: {part.error}")
        cell = cond.get("cell") if isinstance(cond, Mapping) else str(cond)
        values[str(cell if cell is not None else k)] = part.value
    return Answer(True, None, None, values)


# ---------------------------------------------------------------- shared parsers


def parse_number(text: str, low: Any, high: Any, last: bool) -> Answer:
    """A number within low..high ("$12.50", "1,200", "3-4" -> 3.5); `last`: the last one."""
    norm = normalize(text)
    rng = RANGE.search(norm)
    if rng and not last and not SCALE.search(norm):
        a, b = float(rng.group(1)), float(rng.group(2))
        if a < b and not rng.group(3):
            val = (a + b) / 2
            if in_range(val, low, high):
                return Answer(True, val)
    nums = numbers(norm)
    if not nums:
        return invalid("no number in answer")
    vals = [v for v, _ in nums]
    inside = [v for v in vals if in_range(v, low, high)]
    if not inside:
        return invalid(f"number {fmt(vals[-1] if last else vals[0])} outside {range_text(low, high)}")
    return Answer(True, inside[-1] if last else inside[0])


def range_error(low: float | None, high: float | None) -> str | None:
    """The error of a declared low..high range that holds no number, or None."""
    if low is not None and high is not None and high <= low:
        return f"range {low:g} to {high:g} is empty"
    return None


def parse_label(text: str, labels: Sequence[str], value: Callable[[int], float]) -> Answer:
    """The one label the text names, valued by `value(index)`."""
    idx, err = match_label(text, labels)
    if idx is None:
        return invalid(err or "unparseable")
    return Answer(True, value(idx), labels[idx])
