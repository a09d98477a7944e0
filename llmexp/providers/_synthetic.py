"""`SyntheticRespondent`: the litellm handler of `synthetic/...` (declared in `synthetic.py`).

A module of its own so that declaring the provider imports no litellm: `SyntheticModel.handler`
imports it on first use.
"""

from __future__ import annotations

from llmexp.providers import respondent
from llmexp.providers._litellm import LlmexpProvider
from llmexp.providers.base import Reply

__all__ = ["SyntheticRespondent"]


class SyntheticRespondent(LlmexpProvider):
    """The `synthetic/...` provider (see `synthetic.py`; NOT evidence about LLMs)."""

    blocking = False

    def answer(self, model: str, messages: list, trial: dict | None, params: dict, seed: int) -> Reply:
        if trial is None:  # called outside the runner: there is no structure to read
            return Reply(text="", prompt_tokens=0, completion_tokens=0)
        text, probs = respondent.answer(trial, params, seed, model)
        prompt_tokens = sum(max(1, len(str(m.get("content", ""))) // 4) for m in messages)
        return Reply(
            text=text,
            probs=probs,
            prob_mass=1.0 if probs else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=max(1, len(text) // 4),
        )
