"""The number grammar: which tokens may come next while the embedded model writes one number.

A 270M base model asked for a number often answers with something else; constraining the
draw token by token conditions it on answering with a number. The grammar is
``[space] [sign] digits [. digits] [%]`` ending at a newline, end of text or the token
budget. The answer type's `NumberForm` (`llmexp.answers`) says which signs may lead ("$" for
a dollar amount, "-" when negatives are allowed), whether "%" may end it, and the range the
integer part is kept within. `number_classes` sorts the vocabulary's tokens into those roles
once per engine.
"""

from __future__ import annotations

import ctypes
import re
import weakref
from typing import Any

import numpy as np

from llmexp.answers import NumberForm
from llmexp.providers.local.engine import Engine

_classes: weakref.WeakKeyDictionary[Engine, dict[str, Any]] = weakref.WeakKeyDictionary()

_DIGIT = re.compile(rb"^ ?[0-9]+$")
_ROLES = {b".": "dot", b"%": "pct", b" %": "pct", b" ": "space", b"$": "dollar", b" $": "dollar", b"-": "minus", b" -": "minus"}


def number_classes(engine: Engine) -> dict[str, Any]:
    """Token ids by role in a number, from one scan of the vocabulary (lazy, ~0.3 s)."""
    found = _classes.get(engine)
    if found is not None:
        return found
    buf = ctypes.create_string_buffer(256)
    sets: dict[str, list[int]] = {k: [] for k in ("digit", "dot", "pct", "space", "dollar", "minus", "stop")}
    digits: dict[int, str] = {}
    for tok in range(engine.n_vocab):
        piece = engine.piece(tok, buf)
        if engine.is_eog(tok):
            sets["stop"].append(tok)
        elif not piece:
            continue
        elif _DIGIT.match(piece):
            sets["digit"].append(tok)
            digits[tok] = piece.decode().strip()
        elif piece in _ROLES:
            sets[_ROLES[piece]].append(tok)
        elif b"\n" in piece and not piece.strip():
            sets["stop"].append(tok)
    classes: dict[str, Any] = {k: np.array(sorted(v), dtype=np.int64) for k, v in sets.items()}
    classes["digit_text"] = digits
    classes["stop_set"] = frozenset(sets["stop"])
    _classes[engine] = classes
    return classes


class NumberGrammar:
    """Which tokens may come next in one number: [space] [sign] digits [. digits] [%].

    The answer type's `NumberForm` says which signs may lead ("$", "-"), whether a "%" may
    end the number and its range: the integer part is kept <= `form.high` digit by digit.
    A newline or end-of-text token ends the number.
    """

    def __init__(self, classes: dict[str, Any], form: NumberForm):
        self.c = classes
        self.percent = form.percent
        self.high = form.high
        signs = []
        if form.dollar:
            signs.append(classes["dollar"])
        if form.minus:
            signs.append(classes["minus"])
        self.signs = np.concatenate(signs) if signs else np.array([], dtype=np.int64)
        self.state = "start"  # start -> spaced -> signed -> int -> dot -> frac -> end
        self.int_text = ""

    def _digits(self) -> np.ndarray:
        digits = self.c["digit"]
        if self.high is None or self.state in ("dot", "frac"):
            return digits
        text = self.c["digit_text"]
        keep = [t for t in digits.tolist() if float(self.int_text + text[t]) <= self.high]
        return np.array(keep, dtype=np.int64)

    def allowed(self) -> np.ndarray:
        c = self.c
        parts: list[np.ndarray] = [self._digits()]
        if self.state == "start":
            parts += [c["space"], self.signs]
        elif self.state == "spaced":
            parts.append(self.signs)
        elif self.state in ("int", "frac"):
            parts.append(c["stop"])
            if self.percent:
                parts.append(c["pct"])
            if self.state == "int" and (self.high is None or float(self.int_text) < self.high):
                parts.append(c["dot"])
        return np.concatenate(parts) if parts else np.array([], dtype=np.int64)

    def advance(self, tok: int) -> bool:
        """Take `tok`; False when the number has ended (the token is not part of it)."""
        c = self.c
        if tok in c["stop_set"]:
            return False
        if tok in c["digit_text"]:
            if self.state in ("dot", "frac"):
                self.state = "frac"
            else:
                self.int_text += c["digit_text"][tok]
                self.state = "int"
        elif self.state in ("int", "frac") and tok in set(c["pct"].tolist()):
            self.state = "end"
        elif self.state == "int" and tok in set(c["dot"].tolist()):
            self.state = "dot"
        elif self.state == "start" and tok in set(c["space"].tolist()):
            self.state = "spaced"
        else:  # a sign
            self.state = "signed"
        return self.state != "end"


def plain_number(low: float | None, high: float | None) -> NumberForm:
    """A plain number within low..high: the grammar for per-condition lines of an answer that
    has neither options nor a number form of its own."""
    return NumberForm(dollar=False, minus=low is None or low < 0, percent=False, low=low, high=high,
                      space_given=True)
