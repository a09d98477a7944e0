"""The litellm handler of `llmexp/...` (declared by `EmbeddedModel` in `provider.py`).

A module of its own so that declaring the provider imports no litellm: `EmbeddedModel.handler`
imports it on first use.
"""

from __future__ import annotations

import threading

from llmexp.errors import RunError
from llmexp.providers._litellm import LlmexpProvider, ProviderError
from llmexp.providers.base import Reply
from llmexp.providers.local.model import LocalModel
from llmexp.providers.local.provider import INSTALL_HINT, MODELS, PROVIDER, respond

__all__ = ["LocalProvider", "MissingLocal", "get_provider"]


class LocalProvider(LlmexpProvider):
    """litellm provider `llmexp/...`: the embedded model (see the package docstring)."""

    blocking = True  # CPU-bound: the async path runs it in a worker thread

    def answer(self, model: str, messages: list, trial: dict | None, params: dict, seed: int) -> Reply:
        name = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
        if name not in MODELS:
            raise ProviderError(
                status_code=404,
                message=f"unknown embedded model 'llmexp/{name}'; available: "
                + ", ".join(f"llmexp/{m}" for m in MODELS),
            )
        try:
            lm = LocalModel.get()
            return respond(lm, messages, trial, params, seed)
        except RunError as exc:  # missing install, unusable model file, prompt too long
            raise ProviderError(status_code=400, message=str(exc)) from exc


class MissingLocal(LlmexpProvider):
    """Stand-in for `llmexp/...` when the local model cannot be loaded: every call fails
    permanently (status 400) with a message naming the install command."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def answer(self, model: str, messages: list, trial: dict | None, params: dict, seed: int) -> Reply:
        raise ProviderError(
            status_code=400,
            message=(
                f"the embedded model 'llmexp/{model}' is not available ({self.reason}); "
                f"install it with: {INSTALL_HINT}"
            ),
        )


_provider: LocalProvider | None = None
_provider_lock = threading.Lock()


def get_provider() -> LocalProvider:
    """The process-wide litellm handler of `llmexp/...`."""
    global _provider
    with _provider_lock:
        if _provider is None:
            _provider = LocalProvider()
        return _provider
