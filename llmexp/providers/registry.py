"""The provider registry: what llmexp may assume about a model, declared once per provider.

A model name such as ``synthetic/respondent`` or ``llmexp/gemma3-270m`` belongs to one of
llmexp's own providers (custom litellm providers, one `Provider` subclass each, registered
with `@register`); any other name (``openai/...``, ``anthropic/...``) is an ordinary litellm
model and gets `LitellmModel`'s defaults. The runner and `llmexp diagnose` ask
`for_model(name)` for a capability instead of testing name prefixes:

=========================  ============================================================
capability                 meaning
=========================  ============================================================
``prefix``                 the study's model names this provider answers ("llmexp/")
``litellm_provider``       the custom litellm provider the calls go to (`litellm_model`)
``needs_structured_trial`` the runner attaches the structured trial (`base.py`) and
                           passes only litellm's standard params as keyword arguments
``concurrency_cap``        at most this many calls at once (None: the run's concurrency)
``reuses_prompt_prefix``   answers faster when consecutive prompts share a prefix: give
                           it its trials in compile order
``cacheable``              answers may be served from the response cache
``answer_revision``        mixed into cache keys (`cache_key`): answers computed by
                           llmexp's own code are not served after that code changes
``answers_by_logprob``     label answers come with probabilities from log-probabilities
``free``                   calls cost nothing (no price lookup, no token counting)
``simulated``              not a language model: answers are not evidence about LLMs
``toy``                    a small demonstration model: answers are not evidence about
                           people nor about the LLMs people use (the report says so)
``custom_params``          accepts model params beyond litellm's (e.g. ``effect``)
``install_hint``           how to install what the provider needs
``preflight(model)``       why `model` cannot run in this process, or None
``batch_api(model, kw)``   its provider batch API (`batching.py`) or why it has none
=========================  ============================================================

`ensure_registered()` registers every provider's litellm handler once per process. This
module does not import litellm: declaring a provider and asking its capabilities
(`for_model`) is cheap; litellm is imported by `ensure_registered` / `register_handler`, and a
provider's handler class by its `handler()`.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, TypeVar

__all__ = ["Provider", "LitellmModel", "PROVIDERS", "register", "unregister", "for_model", "ensure_registered"]

PROVIDERS: dict[str, type[Provider]] = {}  # name -> provider class (llmexp's own providers)
_lock = threading.Lock()
_registered = False  # the handlers are registered with litellm (ensure_registered)

P = TypeVar("P", bound=type["Provider"])


class Provider:
    """A kind of model llmexp reaches through litellm, and what callers may assume about it.

    Subclasses set `name`, `prefix` and the capabilities that differ from these defaults
    (see the module docstring), implement `handler()` and are decorated with `@register`.
    Callers read the attributes; they never compare model-name prefixes.
    """

    name: ClassVar[str] = ""
    prefix: ClassVar[str] = ""
    litellm_provider: ClassVar[str] = ""
    needs_structured_trial: ClassVar[bool] = False
    concurrency_cap: ClassVar[int | None] = None
    reuses_prompt_prefix: ClassVar[bool] = False
    cacheable: ClassVar[bool] = True
    answer_revision: ClassVar[str | None] = None
    answers_by_logprob: ClassVar[bool] = False
    free: ClassVar[bool] = False
    simulated: ClassVar[bool] = False
    toy: ClassVar[bool] = False
    custom_params: ClassVar[bool] = False
    install_hint: ClassVar[str] = ""

    @classmethod
    def matches(cls, model: str) -> bool:
        """Whether `model` (a study's model name) is one of this provider's."""
        return bool(cls.prefix) and str(model).startswith(cls.prefix)

    @classmethod
    def litellm_model(cls, model: str) -> str:
        """The model string handed to litellm for a study's model name."""
        if cls.litellm_provider and cls.matches(model):
            return f"{cls.litellm_provider}/{model[len(cls.prefix):]}"
        return model

    @classmethod
    def cache_key(cls, key: str) -> str:
        """The response-cache key of a call whose content hash is `key`."""
        return f"{key}@{cls.answer_revision}" if cls.answer_revision else key

    @classmethod
    def preflight(cls, model: str) -> str | None:
        """Why `model` cannot run in this process (a whole sentence), or None."""
        return None

    @classmethod
    def batch_api(cls, model: str, kwargs: dict) -> tuple[Any, str]:
        """(`batching.BatchAPI` for `model` called with `kwargs`, "") or (None, why `model`
        cannot run as a provider batch). llmexp's own providers answer in this process."""
        return None, f"model {model!r} is answered in this process by llmexp ({cls.name}): it has no batch API -- run it without --batch"

    @classmethod
    def handler(cls) -> Any:
        """The litellm `CustomLLM` that answers this provider's calls (None: litellm's own).

        Import the handler's class here (from a private module, `_name.py`), not at the top
        of the provider's module, so that declaring the provider imports no litellm."""
        return None

    @classmethod
    def register_handler(cls) -> None:
        """Register `handler()` with litellm under `litellm_provider` (idempotent)."""
        handler = cls.handler()
        if handler is not None:
            from llmexp.providers._litellm import register_provider

            register_provider(cls.litellm_provider, handler)


class LitellmModel(Provider):
    """Every model llmexp has no provider of its own for: litellm's defaults."""

    name = "litellm"

    @classmethod
    def batch_api(cls, model: str, kwargs: dict) -> tuple[Any, str]:
        from llmexp.providers.batching import batch_api_for

        return batch_api_for(model, kwargs)


def register(cls: P) -> P:
    """Class decorator: add a provider to the registry under its `name` (a later class of
    the same name replaces it); its litellm handler too once `ensure_registered` has run."""
    if not cls.name or not cls.prefix:
        raise TypeError(f"provider class {cls.__name__} needs a name and a prefix")
    PROVIDERS[cls.name] = cls
    if _registered:
        cls.register_handler()
    return cls


def unregister(name: str) -> None:
    """Remove a provider from the registry (for tests that define one of their own)."""
    PROVIDERS.pop(name, None)


def for_model(model: str) -> type[Provider]:
    """The provider of a study's model name: the registered one whose prefix it starts with
    (the longest), else `LitellmModel` (an ordinary litellm model)."""
    found = [cls for cls in PROVIDERS.values() if cls.matches(model)]
    return max(found, key=lambda cls: len(cls.prefix)) if found else LitellmModel


def ensure_registered() -> None:
    """Register every provider's litellm handler once per process (idempotent, thread-safe)."""
    global _registered
    if _registered:
        return
    with _lock:
        if _registered:
            return
        import litellm

        litellm.suppress_debug_info = True
        for cls in PROVIDERS.values():
            cls.register_handler()
        _registered = True
