"""binary "positive" / "negative": one of two labels, positive first.

Value 1 for the first label, 0 for the second (with label probabilities: P(first label)).
A label that contains the other ("purchase" / "not purchase") is matched longest first; a
positive label right after a negation ("wouldn't purchase") counts as the negative label. An
answer mentioning both labels is invalid unless it *starts* with exactly one of them ("No.
I'd say yes if it were cheaper" -> no); mentioning neither is invalid. Without labels the
answer is "yes" / "no". Aggregate prompts ask for the percentage choosing the first label.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from llmexp.answers.base import Aggregate, Answer, AnswerType, parse_label, register
from llmexp.spec import AnswerSpec

DEFAULT_LABELS = ("yes", "no")  # parsing and the synthetic respondent
DEFAULT_OPTIONS = ("Yes", "No")  # what the embedded model is offered


@register
class Binary(AnswerType):
    name = "binary"
    has_labels = True
    share = True
    first_label_share = True
    effect_methods = ("ols", "logit")

    def instruction(self) -> str:
        return f'Answer with exactly one of: "{self.labels[0]}" or "{self.labels[1]}".'

    def aggregate(self) -> Aggregate:
        return Aggregate(
            AnswerSpec(type="probability", low=0.0, high=1.0),
            f'the percentage of respondents who answered "{self.labels[0]}"',
            "N%",
        )

    def parse(self, text: str, last: bool = False) -> Answer:
        return parse_label(text, self.labels or DEFAULT_LABELS, self.label_value)

    def label_value(self, index: int) -> float:
        return 1.0 if index == 0 else 0.0

    def _from_probs(self, parsed: Answer, probs: Mapping[str, Any], total: float, best: str) -> float | None:
        return float(probs.get(self.labels[0], 0.0)) / total

    def options(self) -> list[tuple[str, str]]:
        labels = [str(x) for x in self.labels] or list(DEFAULT_OPTIONS)
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
        labels = list(self.labels) or list(DEFAULT_LABELS)
        if aggregate:  # a share of respondents choosing the first label
            return f"{round(100 * p)}%", None
        pick = labels[0] if rng.random() < p else labels[1]
        probs = {labels[0]: p, labels[1]: 1 - p} if with_probs else None
        return pick, probs

    def _draw_values(self, p: np.ndarray, rng: np.random.Generator, sims: int, noise: float, aggregate: bool, with_probs: bool) -> np.ndarray:
        if aggregate:
            return np.repeat(np.round(100 * p) / 100.0, sims, 1)
        if with_probs:
            return np.repeat(p, sims, 1)
        return (rng.random((len(p), sims)) < p).astype(float)
