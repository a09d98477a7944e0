"""number [low to high]: a number, within low..high when given.

Reads "1,200", "-5", "3-4" (-> 3.5), "12k"; a per-condition part reads its last number. The
embedded model draws it with a number grammar (a minus sign when the range allows one). The
synthetic respondent answers low + P * (high - low) (+ noise) with a range, else the probe
rule (a probed covariate's anchored value).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from llmexp import expr as ex
from llmexp.answers.base import (
    Answer,
    AnswerType,
    NumberForm,
    clip,
    format_number,
    parse_number,
    range_error,
    register,
    round_as_written,
)


@register
class Number(AnswerType):
    name = "number"
    numeric = True
    range_hideable = True
    unit_phrase = "a number"  # "Answer with a number only."

    @classmethod
    def spec_error(cls, labels, low, high) -> str | None:
        return range_error(low, high)

    def instruction(self) -> str:
        span = ""
        if self.low is not None and self.shown:  # `valid LOW to HIGH`: checked, not stated
            span = f" between {ex.format_number(self.low)} and {ex.format_number(self.high)}"
        return f"Answer with {self.unit_phrase}{span} only."

    def parse(self, text: str, last: bool = False) -> Answer:
        return parse_number(text, self.low, self.high, last)

    def number_form(self) -> NumberForm | None:
        minus = self.low is None or self.low < 0
        return NumberForm(dollar=self._money(), minus=minus, percent=False, low=self.low, high=self.high, space_given=not self._money())

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
        low, high = self.low, self.high
        if is_probe or self._needs_probe():
            if probe is None:
                raise ValueError("a number without a range needs the probe rule (probe=...)")
            value = probe()
        else:
            span = float(high) - float(low)
            value = float(low) + p * span + rng.gauss(0.0, noise) * span
        value = clip(value, low, high)
        return format_number(round(value, 2), self._money()), None

    def _needs_probe(self) -> bool:
        return self.low is None or self.high is None

    def _expected(self, p: np.ndarray) -> np.ndarray:
        return float(self.low) + p * (float(self.high) - float(self.low))

    def _draw_values(self, p: np.ndarray, rng: np.random.Generator, sims: int, noise: float, aggregate: bool, with_probs: bool) -> np.ndarray:
        low, high = float(self.low), float(self.high)
        span = high - low
        v = low + p * span + noise * rng.standard_normal((len(p), sims)) * span
        return round_as_written(np.clip(v, low, high), self._money())
