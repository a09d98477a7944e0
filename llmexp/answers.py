"""Parse a model's raw answer text into a typed value, per the trial's answer spec.

`parse_answer(text, answer, conditions=None) -> Answer` where `answer` is the trial's answer
spec (dict from the trial table's `answer` column, or a `llmexp.spec.AnswerSpec`):

- binary (labels: positive first): value 1 for the first label, 0 for the second. A label
  that contains the other ("purchase" / "not purchase") is matched longest first; a
  positive label right after a negation ("wouldn't purchase") counts as the negative label
  when that label is a negation of the positive one. An answer mentioning both labels is
  invalid unless it *starts* with exactly one of them ("No. I'd say yes if it were
  cheaper" -> no); mentioning neither is invalid.
- categorical: value = index of the one label mentioned (same rules), label = that label.
- likert low..high (optional labels for the points): an integer in range, read after
  dropping scale phrases ("on a scale of 1 to 7", "out of 7", "/7"); or a point label.
- number / money: a number within low..high when given ("$12.50", "1,200", "3-4" -> 3.5).
- probability (share): "85%", "85 percent", "0.85", "3 in 10"; a bare number in (1, 100]
  is read as a percentage.
- per-condition answers (`answer["per_condition"]`): one line per condition, numbered
  `1)`, `2)`, ... in the order of the trial's `conditions`, e.g. `3) 45%`. Each part is
  parsed with the type's rules (for numbers the last number of the part, so an echoed
  condition such as `2) at $0.40: 45%` reads 45%). All conditions must be answered exactly
  once; result `condition_values = {cell: value}`.

Matching is case-insensitive and tolerates quotes, markdown, punctuation, extra words and
`<think>...</think>` blocks. Unparseable answers come back `valid=False` with an `error`;
the runner stores them (raw text kept) and counts them, it never drops them.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Sequence

__all__ = ["Answer", "parse_answer"]


@dataclass(frozen=True, slots=True)
class Answer:
    valid: bool
    value: Optional[float] = None
    label: Optional[str] = None
    condition_values: Optional[dict] = None
    error: Optional[str] = None


def _invalid(error: str) -> Answer:
    return Answer(valid=False, error=error)


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_NOISE = re.compile(r"[*_`\"“”«»]")
_WS = re.compile(r"\s+")
_PREFIX = re.compile(r"^(?:final\s+)?(?:answer|response|choice|decision)\s*[:\-=]\s*", re.I)
_NEGATION = re.compile(
    r"(?:\bnot|n't|\bnever|\bno|\bwon't|\bwouldn't|\bdon't|\bdo not|\bwould not|\bwill not)\s+$"
)


def _normalize(text: str) -> str:
    text = _THINK.sub(" ", text or "")
    text = text.replace("’", "'").replace("‘", "'")
    text = _NOISE.sub(" ", text).lower()
    text = _WS.sub(" ", text).strip()
    text = _PREFIX.sub("", text)
    return text.strip(" .,:;!?'()[]{}")


def _spec_get(answer: Any, key: str, default: Any = None) -> Any:
    if isinstance(answer, Mapping):
        return answer.get(key, default)
    return getattr(answer, key, default)


# ---------------------------------------------------------------- labels


def _label_pattern(label: str) -> re.Pattern:
    words = _normalize(label)
    body = r"\s+".join(re.escape(w) for w in words.split(" "))
    return re.compile(r"(?<![a-z0-9])" + body + r"(?![a-z0-9])")


_PATTERN_CACHE: dict[tuple, list] = {}


def _label_patterns(labels: Sequence[str]) -> list[tuple[int, str, re.Pattern]]:
    key = tuple(labels)
    cached = _PATTERN_CACHE.get(key)
    if cached is None:
        items = [(i, lab, _label_pattern(lab)) for i, lab in enumerate(labels)]
        # longest first so "not purchase" is consumed before "purchase"
        cached = sorted(items, key=lambda t: -len(_normalize(t[1])))
        if len(_PATTERN_CACHE) > 512:
            _PATTERN_CACHE.clear()
        _PATTERN_CACHE[key] = cached
    return cached


def _negation_of(neg: str, pos: str) -> bool:
    n, p = _normalize(neg), _normalize(pos)
    return n != p and p in n and bool(re.search(r"\b(not|no|don't|never|n't)\b", n))


def _match_label(text: str, labels: Sequence[str]) -> tuple[Optional[int], Optional[str]]:
    """Index of the one label the text chooses, or (None, error)."""
    if not labels:
        return None, "no labels in the answer spec"
    norm = _normalize(text)
    if not norm:
        return None, "empty answer"
    found: dict[int, int] = {}  # label index -> first position
    lead_end: dict[int, int] = {}  # label index -> end of a match at position 0
    masked = norm
    for idx, _label, pat in _label_patterns(labels):
        for m in pat.finditer(masked):
            target = idx
            if _NEGATION.search(masked[: m.start()]):
                # "wouldn't purchase": the negative label if it negates this one
                negs = [j for j, lab in enumerate(labels) if j != idx and _negation_of(lab, labels[idx])]
                if negs:
                    target = negs[0]
                elif len(labels) == 2:
                    target = 1 - idx
                else:
                    continue
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
    names = ", ".join(labels[i] for i in sorted(found))
    return None, f"ambiguous: answer names several labels ({names})"


# ---------------------------------------------------------------- numbers

_NUM = re.compile(
    r"(?<![\w.])(-)?\$?\s?(\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)\s?(k\b|%|percent\b|per cent\b)?",
    re.I,
)
_SCALE = re.compile(
    r"(?:(?:scale|range)\s+(?:of|from)\s+-?\d+(?:\.\d+)?\s*(?:to|-|–|and)\s*-?\d+(?:\.\d+)?"
    r"|(?:from|between)\s+-?\d+(?:\.\d+)?\s*(?:to|and)\s*-?\d+(?:\.\d+)?\s+scale"
    r"|\d+\s*-\s*\d+\s+scale"
    r"|out\s+of\s+\d+(?:\.\d+)?"
    r"|/\s*\d+(?:\.\d+)?)",
    re.I,
)
_RANGE = re.compile(
    r"(?<![\w.])\$?(\d+(?:\.\d+)?)\s*%?\s*(?:-|–|to|and)\s*\$?(\d+(?:\.\d+)?)(?![\w.])(\s?%|\s?percent)?", re.I
)
_RATIO = re.compile(r"(?<![\w.])(\d+)\s+(?:in|out\s+of)\s+(\d+)(?![\w.])", re.I)


def _numbers(text: str) -> list[tuple[float, bool]]:
    """(value, is_percent) for each number in the text, scale phrases removed."""
    text = _SCALE.sub(" ", text)
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


def _in_range(val: float, low: Optional[float], high: Optional[float]) -> bool:
    if low is not None and val < low - 1e-9:
        return False
    if high is not None and val > high + 1e-9:
        return False
    return True


def _range_text(low, high) -> str:
    return f"[{'' if low is None else _fmt(low)}, {'' if high is None else _fmt(high)}]"


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def _parse_number(text: str, low, high, last: bool) -> Answer:
    norm = _normalize(text)
    rng = _RANGE.search(norm)
    if rng and not last and not _SCALE.search(norm):
        a, b = float(rng.group(1)), float(rng.group(2))
        if a < b and not rng.group(3):
            val = (a + b) / 2
            if _in_range(val, low, high):
                return Answer(True, val)
    nums = _numbers(norm)
    if not nums:
        return _invalid("no number in answer")
    vals = [v for v, _ in nums]
    inside = [v for v in vals if _in_range(v, low, high)]
    if not inside:
        return _invalid(f"number {_fmt(vals[-1] if last else vals[0])} outside {_range_text(low, high)}")
    return Answer(True, inside[-1] if last else inside[0])


def _parse_probability(text: str, last: bool) -> Answer:
    norm = _normalize(text)
    rng = _RANGE.search(norm)
    if rng and not last:  # "50-60%" -> 0.55 (per-condition parts: the last number instead)
        a, b = float(rng.group(1)), float(rng.group(2))
        if a < b:
            if rng.group(3) or b > 1.0:
                a, b = a / 100.0, b / 100.0
            if 0.0 <= a and b <= 1.0:
                return Answer(True, round((a + b) / 2, 12))
    ratio = _RATIO.search(norm)
    if ratio and int(ratio.group(2)) > 0 and int(ratio.group(1)) <= int(ratio.group(2)):
        return Answer(True, int(ratio.group(1)) / int(ratio.group(2)))
    nums = _numbers(norm)
    if not nums:
        return _invalid("no number in answer")
    pct = [(v, p) for v, p in nums if p]
    pool = pct or nums
    val, is_pct = pool[-1] if last else pool[0]
    if is_pct or 1.0 < val <= 100.0:
        val = round(val / 100.0, 12)
    if not (0.0 <= val <= 1.0) or math.isnan(val):
        return _invalid(f"probability {val} outside [0, 1]")
    return Answer(True, val)


def _parse_likert(text: str, low, high, labels: Sequence[str], last: bool) -> Answer:
    low = 1.0 if low is None else float(low)
    high = (low + len(labels) - 1 if labels else 5.0) if high is None else float(high)
    norm = _normalize(text)
    nums = [v for v, p in _numbers(norm) if not p]
    inside = [v for v in nums if low <= v <= high and float(v).is_integer()]
    if inside:
        val = inside[-1] if last else inside[0]
        return Answer(True, val, _likert_label(val, low, high, labels))
    if labels:
        idx, err = _match_label(norm, labels)
        if idx is not None:
            npts = int(high - low) + 1
            if len(labels) == npts or len(labels) < 2:
                val = low + idx
            else:  # spread the labels over the scale
                val = round(low + idx * (high - low) / (len(labels) - 1))
            return Answer(True, float(val), labels[idx])
        if not nums:
            return _invalid(err or "no scale point in answer")
    if nums:
        return _invalid(f"no whole number in {_range_text(low, high)} (read {_fmt(nums[0])})")
    return _invalid("no scale point in answer")


def _likert_label(val: float, low: float, high: float, labels: Sequence[str]) -> Optional[str]:
    if not labels:
        return None
    npts = int(high - low) + 1
    if len(labels) == npts:
        return labels[int(val - low)]
    if len(labels) >= 2 and high > low:
        pos = (val - low) / (high - low) * (len(labels) - 1)
        if abs(pos - round(pos)) < 1e-9:
            return labels[int(round(pos))]
    return None


def _parse_single(text: str, answer: Any, last: bool = False) -> Answer:
    atype = _spec_get(answer, "type")
    labels = tuple(_spec_get(answer, "labels", ()) or ())
    low = _spec_get(answer, "low")
    high = _spec_get(answer, "high")
    if atype == "binary":
        labels = labels or ("yes", "no")
        idx, err = _match_label(text, labels)
        if idx is None:
            return _invalid(err or "unparseable")
        return Answer(True, 1.0 if idx == 0 else 0.0, labels[idx])
    if atype == "categorical":
        idx, err = _match_label(text, labels)
        if idx is None:
            return _invalid(err or "unparseable")
        return Answer(True, float(idx), labels[idx])
    if atype == "likert":
        return _parse_likert(text, low, high, labels, last)
    if atype in ("number", "money"):
        return _parse_number(text, low, high, last)
    if atype == "probability":
        return _parse_probability(text, last)
    return _invalid(f"unknown answer type {atype!r}")


# ---------------------------------------------------------------- per condition

_MARK_PAREN = re.compile(r"(?<![\w.$(\[])(\d{1,3})\s*[\)\]]")
_MARK_LINE = re.compile(r"(?m)^[ \t>*\-#]*(?:condition\s*|#)?(\d{1,3})\s*[\.:\-]\s")


def _split_conditions(text: str, n: int) -> tuple[Optional[dict[int, str]], Optional[str]]:
    text = _THINK.sub(" ", text or "")
    marks = [(m.start(), m.end(), int(m.group(1))) for m in _MARK_PAREN.finditer(text)]
    if not any(1 <= k <= n for _, _, k in marks):
        marks = [(m.start(), m.end(), int(m.group(1))) for m in _MARK_LINE.finditer(text)]
    marks = [m for m in marks if 1 <= m[2] <= n]
    if not marks:
        return None, f"no numbered condition answers (expected 1) .. {n}))"
    # keep markers in increasing sequence (a number inside a part is content, not a marker)
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


def parse_answer(text: Optional[str], answer: Any, conditions: Optional[Sequence[Mapping]] = None) -> Answer:
    """Parse `text` per the answer spec; see the module docstring for the rules."""
    if text is None or not str(text).strip():
        return _invalid("empty answer")
    text = str(text)
    if not _spec_get(answer, "per_condition", False):
        return _parse_single(text, answer)
    conds = list(conditions or [])
    if not conds:
        return _invalid("per-condition answer without conditions")
    parts, err = _split_conditions(text, len(conds))
    if parts is None:
        return _invalid(err or "unparseable")
    values: dict[str, float] = {}
    for k, cond in enumerate(conds, start=1):
        part = _parse_single(parts[k], answer, last=True)
        if not part.valid:
            return _invalid(f"condition {k}: {part.error}")
        cell = cond.get("cell") if isinstance(cond, Mapping) else str(cond)
        values[str(cell if cell is not None else k)] = part.value
    return Answer(True, None, None, values)
