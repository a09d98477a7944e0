"""The litellm-dependent half of the provider contract (`base.py` documents it).

Imported only when a provider's litellm handler is needed (`Provider.handler()`,
`ensure_registered()`), never by declaring or asking a provider's capabilities: importing
litellm takes seconds.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from typing import Any

# litellm fetches its price table from GitHub at import unless told otherwise; we work
# offline with the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402
from litellm import CustomLLM, ModelResponse  # noqa: E402
from litellm.llms.custom_llm import CustomLLMError  # noqa: E402

from llmexp.providers.base import (  # noqa: E402
    PROBS_FIELD,
    Reply,
    approx_tokens,
    params_from_kwargs,
    seed_from_kwargs,
    trial_from_kwargs,
)

__all__ = ["LlmexpProvider", "ProviderError", "make_response", "register_provider", "set_probs"]

ProviderError = CustomLLMError  # raise ProviderError(status_code, message)


def set_probs(response: ModelResponse, probs: dict | None, prob_mass: float | None) -> None:
    """Attach label probabilities to a response (custom providers call this)."""
    if probs is None:
        return
    msg = response.choices[0].message
    fields = dict(getattr(msg, "provider_specific_fields", None) or {})
    fields[PROBS_FIELD] = {
        "probs": {str(k): float(v) for k, v in probs.items()},
        "prob_mass": None if prob_mass is None else float(prob_mass),
    }
    msg.provider_specific_fields = fields


def make_response(
    model: str,
    text: str,
    prompt_tokens: int = 0,
    completion_tokens: int = 0,
    probs: dict | None = None,
    prob_mass: float | None = None,
    finish_reason: str = "stop",
) -> ModelResponse:
    """A complete litellm ModelResponse with usage and optional label probabilities."""
    response = ModelResponse(
        choices=[
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish_reason,
            }
        ],
        model=model,
        usage={
            "prompt_tokens": int(prompt_tokens),
            "completion_tokens": int(completion_tokens),
            "total_tokens": int(prompt_tokens) + int(completion_tokens),
        },
        created=int(time.time()),
    )
    set_probs(response, probs, prob_mass)
    return response


class LlmexpProvider(CustomLLM):
    """Base for llmexp's custom providers: implement `answer`, get litellm's entry points.

    `model` passed to `answer` is the part after the provider prefix (e.g. "gemma3-270m").
    """

    blocking = False  # True: run `answer` in a worker thread from the async path

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def answer(self, model: str, messages: list, trial: dict | None, params: dict, seed: int) -> Reply:
        raise NotImplementedError

    def _respond(self, model: str, messages: list, kwargs: dict) -> ModelResponse:
        trial = trial_from_kwargs(kwargs)
        params = params_from_kwargs(kwargs)
        seed = seed_from_kwargs(kwargs)
        if self.blocking:
            with self._lock:
                reply = self.answer(model, messages, trial, params, seed)
        else:
            reply = self.answer(model, messages, trial, params, seed)
        prompt_tokens = reply.prompt_tokens
        if prompt_tokens is None:
            prompt_tokens = sum(approx_tokens(str(m.get("content", ""))) for m in messages)
        completion_tokens = reply.completion_tokens
        if completion_tokens is None:
            completion_tokens = approx_tokens(reply.text)
        return make_response(
            model, reply.text, prompt_tokens, completion_tokens, reply.probs, reply.prob_mass
        )

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        return self._respond(model, messages, kwargs)

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        if self.blocking:
            return await asyncio.to_thread(self._respond, model, messages, kwargs)
        return self._respond(model, messages, kwargs)


def register_provider(name: str, handler: CustomLLM) -> None:
    """Register (or replace) the custom litellm provider `name`; idempotent.

    `litellm.acompletion(model=f"{name}/...")` then reaches `handler`.
    """
    entries = [e for e in litellm.custom_provider_map if e.get("provider") != name]
    entries.append({"provider": name, "custom_handler": handler})
    litellm.custom_provider_map = entries
    try:  # make the provider known right away (litellm also does this lazily per call)
        from litellm.utils import custom_llm_setup  # litellm internals: may move, hence the guard

        custom_llm_setup()
    except Exception:  # pragma: no cover - defensive: litellm internals may move
        pass
