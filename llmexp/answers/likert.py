"""likert low to high [labels "...", ...]: one whole number on a scale.

An integer in range, read after dropping scale phrases ("on a scale of 1 to 7", "out of 7",
"/7"); or a point label (value: its point; fewer labels than points are spread over the
scale). The prompt asks for the number ("where 1 = "..."); the embedded model scores the
points. The synthetic respondent answers low + Binomial(high - low, P).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from llmexp.answers.base import (
    Answer,
    AnswerType,
    fmt,
    invalid,
    match_label,
    normalize,
    numbers,
    range_text,
    register,
)


@register
class Likert(AnswerType):
    name = "likert"
    has_labels = True
    effect_methods = ("ols", "ordered")

    @classmethod
    def spec_error(cls, labels: Sequence[str], low: float | None, high: float | None) -> str | None:
        if low is None or high is None:
            return "a likert scale needs a low and a high end"
        if high <= low:
            return f"likert scale {low:g} to {high:g} is empty"
        points = int(high - low + 1)
        if labels and len(labels) != points:
            return f"a {low:g}-{high:g} scale needs {points} labels, got {len(labels)}"
        return None

    def scale(self) -> tuple[int, int]:
        """(low, high) as whole numbers (defaults 1 and the label count, else 5)."""
        lo = int(float(self.low if self.low is not None else 1))
        hi = int(float(self.high if self.high is not None else (lo + len(self.labels) - 1 if self.labels else 5)))
        return lo, hi

    def instruction(self) -> str:
        low, high = int(self.low), int(self.high)
        if self.labels:
            scale = ", ".join(f'{low + i} = "{label}"' for i, label in enumerate(self.labels))
            return f"Answer with one whole number from {low} to {high}, where {scale}."
        return f"Answer with one whole number from {low} to {high}."

    def _bounds(self) -> tuple[float, float]:
        low = 1.0 if self.low is None else float(self.low)
        high = (low + len(self.labels) - 1 if self.labels else 5.0) if self.high is None else float(self.high)
        return low, high

    def label_value(self, index: int) -> float:
        low, high = self._bounds()
        npts = int(high - low) + 1
        if len(self.labels) == npts or len(self.labels) < 2:
            return float(low + index)
        return float(round(low + index * (high - low) / (len(self.labels) - 1)))  # labels spread over the scale

    def point_label(self, value: float) -> str | None:
        """The label of scale point `value`, if it has one."""
        labels = self.labels
        if not labels:
            return None
        low, high = self._bounds()
        npts = int(high - low) + 1
        if len(labels) == npts:
            return labels[int(value - low)]
        if len(labels) >= 2 and high > low:
            pos = (value - low) / (high - low) * (len(labels) - 1)
            if abs(pos - round(pos)) < 1e-9:
                return labels[int(round(pos))]
        return None

    def parse(self, text: str, last: bool = False) -> Answer:
        low, high = self._bounds()
        norm = normalize(text)
        nums = [v for v, p in numbers(norm) if not p]
        inside = [v for v in nums if low <= v <= high and float(v).is_integer()]
        if inside:
            val = inside[-1] if last else inside[0]
            return Answer(True, val, self.point_label(val))
        if self.labels:
            idx, err = match_label(norm, self.labels)
            if idx is not None:
                return Answer(True, self.label_value(idx), self.labels[idx])
            if not nums:
                return invalid(err or "no scale point in answer")
        if nums:
            return invalid(f"no whole number in {range_text(low, high)} (read {fmt(nums[0])})")
        return invalid("no scale point in answer")

    def _from_probs(self, parsed: Answer, probs: Mapping[str, Any], total: float, best: str) -> float | None:
        if parsed.valid:
            return parsed.value
        low = self.low
        return float((low if low is not None else 1) + self.labels.index(best))

    def options(self) -> list[tuple[str, str]]:
        """The scale points, answered with their numbers as the prompt asks; a point's label,
        when the spec has one per point, is its key."""
        labels = [str(x) for x in self.labels]
        try:
            lo, hi = float(self.low), float(self.high)
        except (TypeError, ValueError):
            lo = hi = math.nan
        if lo.is_integer() and hi.is_integer() and 0 < hi - lo <= 100:
            points = [str(v) for v in range(int(lo), int(hi) + 1)]
            keys = labels if len(labels) == len(points) else points
            return list(zip(keys, points, strict=True))
        return [(label, label) for label in labels]

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
        lo, hi = self.scale()
        k = sum(1 for _ in range(hi - lo) if rng.random() < p)
        return str(lo + k), None

    def _expected(self, p: np.ndarray) -> np.ndarray:
        lo, hi = self.scale()
        return lo + (hi - lo) * p

    def _draw_values(self, p: np.ndarray, rng: np.random.Generator, sims: int, noise: float, aggregate: bool, with_probs: bool) -> np.ndarray:
        lo, hi = self.scale()
        return lo + rng.binomial(hi - lo, np.broadcast_to(p, (len(p), sims))).astype(float)
