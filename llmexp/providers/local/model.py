"""`LocalModel`: the process-wide embedded model and its public API.

The engine (`engine.Engine`: llama.cpp, KV prefix reuse) plus what callers ask of it:
label probabilities (`score_labels`, `score_answers`, see `scoring`), seeded draws
(`generate`, `answer_lines`, see `sampling`). One instance per process (`LocalModel.get()`),
loaded on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np

from llmexp import answers
from llmexp.answers import NumberForm
from llmexp.providers.local.engine import Engine
from llmexp.providers.local.sampling import FREE_TOKENS, NUMBER_TOKENS, answer_lines, generate_tokens
from llmexp.providers.local.scoring import label_logps, normalise, score_options


class LocalModel(Engine):
    """One llama.cpp model + context, with prefix reuse of its KV cache. Thread-safe."""

    _instance: LocalModel | None = None
    _instance_lock = threading.Lock()

    @classmethod
    def get(cls) -> LocalModel:
        """The process-wide embedded model, loaded on first use."""
        if cls._instance is None:
            with cls._instance_lock:
                if cls._instance is None:
                    cls._instance = cls()
        return cls._instance

    def close(self) -> None:
        """Free the model (a later `LocalModel.get()` loads a new one)."""
        super().close()
        with LocalModel._instance_lock:
            if LocalModel._instance is self:
                LocalModel._instance = None

    def score_labels(self, prompt: str, labels: Sequence[str]) -> tuple[dict[str, float], float]:
        """P(label | prompt) for each continuation string, normalised over the labels.

        Labels are used verbatim as continuations (include the leading space: " Paris").
        Returns (probs, mass): probs sums to 1; mass is the raw probability the labels
        covered before normalising.
        """
        with self.lock:
            logp, _ = label_logps(self, self.tokenize(prompt, bos=True), list(labels))
            return normalise(logp)

    def score_answers(self, prompt: str, texts: Sequence[str]) -> tuple[dict[str, float], float]:
        """Like `score_labels` for answer texts ("purchase"), counting ' t' and ' "t' (what
        the litellm provider reports). Returns (probs by text, mass)."""
        with self.lock:
            probs, mass, _ = score_options(self, self.tokenize(prompt, bos=True), list(texts))
            return probs, mass

    def generate(
        self,
        prompt: str,
        max_tokens: int = FREE_TOKENS,
        temperature: float = 1.0,
        seed: int = 0,
        numeric: str | None = None,
        stop: Sequence[str] = ("\n",),
        top_p: float = 1.0,
    ) -> str:
        """Sample a continuation of `prompt` (seeded: same arguments, same text).

        numeric: the name of a numeric answer type (e.g. "number"): the draw is one number
        of that type's form; free text stops at the first `stop` string after some
        non-blank text.
        """
        form = answers.get(numeric).number_form() if numeric else None
        with self.lock:
            rng = np.random.default_rng(seed)
            text, _ = generate_tokens(self, self.tokenize(prompt, bos=True), max_tokens, temperature, rng, form, stop, top_p)
            return text

    def answer_lines(
        self,
        prompt: str,
        n: int,
        options: Sequence[tuple[str, str]] | None,
        temperature: float,
        seed: int,
        form: NumberForm | None = None,
        max_tokens: int = NUMBER_TOKENS,
    ) -> tuple[str, int, int, list[dict[str, float]]]:
        """One answer per condition, "k) <answer>" lines (see `sampling.answer_lines`)."""
        return answer_lines(self, prompt, n, options, temperature, seed, form, max_tokens)
