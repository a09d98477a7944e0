"""The one place llmexp calls a model: `litellm.acompletion`, or for a model routed over
several deployments its litellm Router's `acompletion` (same arguments).

Both the scheduler (calls made in the run's own process) and the worker processes of
`--workers N` (`runner/workers.py`) go through `complete`, so what is sent to a provider is
decided once, whichever process sends it.
"""

from __future__ import annotations

from typing import Any


async def complete(model: str, messages: list, kwargs: dict, router: Any = None) -> Any:
    """One model call: `router.acompletion` when a litellm Router sends this model's calls,
    else `litellm.acompletion`. litellm is imported here, lazily: it takes seconds, and
    reading or analysing a run never needs it."""
    if router is not None:
        call = router.acompletion
    else:
        import litellm

        call = litellm.acompletion
    return await call(model=model, messages=messages, **kwargs)


def usage(resp: Any) -> tuple[int, int]:
    """(prompt tokens, completion tokens) of a response (0 when the provider gave none)."""
    counts = getattr(resp, "usage", None)
    return int(getattr(counts, "prompt_tokens", 0) or 0), int(getattr(counts, "completion_tokens", 0) or 0)
