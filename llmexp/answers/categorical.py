"""categorical "a", "b", "c": one of several labels.

Value = the index of the one label mentioned (matching as for binary), label = that label.
Aggregate prompts ask for the percentage choosing the first label, so they need at most two
labels. The synthetic respondent picks the first label with probability P, the others share
1 - P equally.
"""

from __future__ import annotations

import random
from collections.abc import Callable

import numpy as np

from llmexp.answers.base import Aggregate, Answer, AnswerType, parse_label, register, spec_get
from llmexp.spec import AnswerSpec


@register
class Categorical(AnswerType):
    name = "categorical"
    has_labels = True
    categorical = True

    def aggregable(self) -> bool:
        return len(self.labels) <= 2

    def instruction(self) -> str:
        options = ", ".join(f'"{label}"' for label in self.labels)
        return f"Answer with exactly one of: {options}."

    def aggregate(self) -> Aggregate:
        return Aggregate(
            AnswerSpec(type="probability", low=0.0, high=1.0),
            f'the percentage of respondents who answered "{self.labels[0]}"',
            "N%",
        )

    def parse(self, text: str, last: bool = False) -> Answer:
        return parse_label(text, self.labels, self.label_value)

    def label_value(self, index: int) -> float:
        """The option's index in the outcome's full list: a trial showing only some options
        (`if decoy = "present"`) carries their `label_values`."""
        values = spec_get(self.spec, "label_values", ()) or ()
        return float(values[index]) if values else float(index)

    def _from_probs(self, parsed: Answer, probs, total: float, best: str) -> float | None:
        return parsed.value if parsed.valid else self.label_value(self.labels.index(best))

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
        labels = list(self.labels)
        if not labels:
            return "", None
        u = rng.random()
        if u < p or len(labels) == 1:
            return labels[0], None
        rest = labels[1:]
        return rest[min(int((u - p) / (1 - p) * len(rest)), len(rest) - 1)], None

    def _expected(self, p: np.ndarray) -> np.ndarray:
        k = len(self.labels)
        return (1 - p) * (k / 2.0) if k > 1 else np.zeros_like(p)

    def _draw_values(self, p: np.ndarray, rng: np.random.Generator, sims: int, noise: float, aggregate: bool, with_probs: bool) -> np.ndarray:
        n, k = len(p), len(self.labels)
        u = rng.random((n, sims))
        if k <= 1:
            return np.zeros((n, sims))
        rest = np.minimum(((u - p) / np.maximum(1 - p, 1e-12) * (k - 1)).astype(int), k - 2) + 1
        return np.where(u < p, 0.0, rest.astype(float))
