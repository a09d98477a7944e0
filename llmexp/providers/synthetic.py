"""`synthetic/...`: the synthetic respondent as a litellm provider, and its capabilities.

THIS IS NOT A LANGUAGE MODEL AND ITS OUTPUT IS NOT EVIDENCE ABOUT LLMs. The respondent's
model (params, outcome probability, leakage, focalism, draws) is `respondent.py`; this
module declares what the runner may assume (`SyntheticModel`: offline, free, never cached
since it is free and deterministic already, reads the structured trial, takes custom params);
its litellm handler, answering one trial at a time with the model (`SyntheticRespondent`),
is in `_synthetic.py`, imported on first use (declaring the provider imports no litellm).

litellm already has a provider named "synthetic" (an OpenAI-compatible API), so the
respondent is registered as `llmexp-synthetic` and `synthetic/x` is sent as
`llmexp-synthetic/x` (`SyntheticModel.litellm_model`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

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

if TYPE_CHECKING:
    from llmexp.providers._synthetic import SyntheticRespondent


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
    def handler(cls) -> SyntheticRespondent:
        from llmexp.providers._synthetic import SyntheticRespondent

        return SyntheticRespondent()


def __getattr__(name: str) -> Any:
    """`SyntheticRespondent`, the litellm handler (`_synthetic.py`), imported on first use."""
    if name == "SyntheticRespondent":
        from llmexp.providers._synthetic import SyntheticRespondent

        return SyntheticRespondent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
