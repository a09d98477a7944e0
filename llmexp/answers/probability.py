"""probability (also written `share`): a probability or share in [0, 1].

Reads "85%", "85 percent", "0.85", "3 in 10", "50-60%" (-> 0.55); a bare number in (1, 100]
is read as a percentage. The prompt asks for a percentage; the embedded model's number
grammar allows 0..100 and a trailing "%". The synthetic respondent answers P + N(0, noise)
clipped to [0, 1], as "NN.N%".
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable

import numpy as np

from llmexp.answers.base import (
    RANGE,
    RATIO,
    Aggregate,
    Answer,
    AnswerType,
    NumberForm,
    clip,
    invalid,
    normalize,
    numbers,
    range_error,
    register,
)
from llmexp.spec import AnswerSpec


@register
class Probability(AnswerType):
    name = "probability"
    numeric = True
    share = True

    @classmethod
    def spec_error(cls, labels, low, high) -> str | None:
        return range_error(low, high)

    @classmethod
    def spec_range(cls, low, high) -> tuple[float | None, float | None]:
        return 0.0, 1.0

    def instruction(self) -> str:
        return "Answer with a percentage from 0% to 100% only."

    def aggregate(self) -> Aggregate:
        spec = self.spec if isinstance(self.spec, AnswerSpec) else AnswerSpec(type=self.name, labels=self.labels, low=self.low, high=self.high)
        return Aggregate(spec, "the average answer, as a percentage", "N")

    def parse(self, text: str, last: bool = False) -> Answer:
        norm = normalize(text)
        rng = RANGE.search(norm)
        if rng and not last:  # "50-60%" -> 0.55 (per-condition parts: the last number instead)
            a, b = float(rng.group(1)), float(rng.group(2))
            if a < b:
                if rng.group(3) or b > 1.0:
                    a, b = a / 100.0, b / 100.0
                if a >= 0.0 and b <= 1.0:
                    return Answer(True, round((a + b) / 2, 12))
        ratio = RATIO.search(norm)
        if ratio and int(ratio.group(2)) > 0 and int(ratio.group(1)) <= int(ratio.group(2)):
            return Answer(True, int(ratio.group(1)) / int(ratio.group(2)))
        nums = numbers(norm)
        if not nums:
            return invalid("no number in answer")
        pct = [(v, p) for v, p in nums if p]
        pool = pct or nums
        val, is_pct = pool[-1] if last else pool[0]
        if is_pct or 1.0 < val <= 100.0:
            val = round(val / 100.0, 12)
        if not (0.0 <= val <= 1.0) or math.isnan(val):
            return invalid(f"probability {val} outside [0, 1]")
        return Answer(True, val)

    def number_form(self) -> NumberForm | None:
        return NumberForm(dollar=False, minus=False, percent=True, low=0.0, high=100.0, space_given=True)

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
        share = clip(p + rng.gauss(0.0, noise), 0, 1) if noise else p
        return f"{100 * share:.1f}%", None

    def _draw_values(self, p: np.ndarray, rng: np.random.Generator, sims: int, noise: float, aggregate: bool, with_probs: bool) -> np.ndarray:
        share = np.clip(p + noise * rng.standard_normal((len(p), sims)), 0, 1) if noise else np.repeat(p, sims, 1)
        return np.round(1000 * share) / 1000.0
