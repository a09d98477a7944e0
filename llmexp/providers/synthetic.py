"""`synthetic/...`: the synthetic respondent as a litellm provider, and its capabilities.

THIS IS NOT A LANGUAGE MODEL AND ITS OUTPUT IS NOT EVIDENCE ABOUT LLMs. The respondent's
model (params, outcome probability, leakage, focalism, draws) is `respondent.py`; this
module answers one trial at a time with it (`SyntheticRespondent`) and declares what the
runner may assume (`SyntheticModel`: offline, free, never cached since it is free and
deterministic already, reads the structured trial).

litellm already has a provider named "synthetic" (an OpenAI-compatible API), so the
respondent is registered as `llmexp-synthetic` and `synthetic/x` is sent as
`llmexp-synthetic/x` (`SyntheticModel.litellm_model`).
"""

from __future__ import annotations

from llmexp.providers import respondent
from llmexp.providers.base import LlmexpProvider, Reply
from llmexp.providers.registry import Provider, register
from llmexp.providers.respondent import DEFAULTS, normalized_level, outcome_probability, probe_value

__all__ = [
    "SyntheticRespondent",
    "SyntheticModel",
    "outcome_probability",
    "normalized_level",
    "probe_value",
    "DEFAULTS",
]


class SyntheticRespondent(LlmexpProvider):
    """The `synthetic/...` provider (see the module docstring; NOT evidence about LLMs)."""

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


@register
class SyntheticModel(Provider):
    """`synthetic/<name>`: the parametric synthetic respondent (`respondent.py`)."""

    name = "synthetic"
    prefix = "synthetic/"
    litellm_provider = "llmexp-synthetic"
    needs_structured_trial = True
    cacheable = False
    free = True
    simulated = True
    custom_params = True

    @classmethod
    def handler(cls) -> LlmexpProvider:
        return SyntheticRespondent()
