"""What the runner needs to know about a model, asked of `llmexp.providers` in ONE place.

Everything model-specific the runner does (which models get the structured trial, what
string litellm gets, which answers are cached and under which key, how many calls may be
in flight, which models want their trials in compile order, what to check before a run)
is a capability the model's provider declares (`llmexp.providers.registry`), read through
`provider(model)`. No runner module looks at a model name's prefix. `preflight(models)`
fails a run before any call when a model plainly cannot be called.
"""

from __future__ import annotations

from collections.abc import Iterable

import litellm

from llmexp import providers
from llmexp.errors import RunError
from llmexp.providers.registry import Provider


def provider(model: str) -> type[Provider]:
    """The provider of `model` with its declared capabilities: the runner's only question
    about what a model name means."""
    return providers.for_model(model)


# providers whose API key litellm.validate_environment reports reliably
KEYED_PROVIDERS = {
    "openai", "anthropic", "gemini", "mistral", "groq", "together_ai", "deepseek", "xai",
    "cohere", "cohere_chat", "openrouter", "fireworks_ai", "perplexity",
}


def _check_key(name: str, provider_name: str, params: dict) -> None:
    """Fail before any call when a hosted model's API key is plainly missing."""
    if provider_name not in KEYED_PROVIDERS or params.get("api_key"):
        return
    try:
        env = litellm.validate_environment(name, api_base=params.get("api_base"))
    except Exception:
        return
    missing = [k for k in env.get("missing_keys") or [] if "KEY" in k or "TOKEN" in k]
    if missing and not env.get("keys_in_environment"):
        raise RunError(
            f"model {name!r} needs an API key: set {' or '.join(missing)} in the environment "
            "(or give the model an api_key param); no calls were made"
        )


def preflight(names: Iterable[str], params_by_model: dict | None = None) -> None:
    """Raise RunError, before any call, for a model that cannot be called here: its
    provider's preflight fails (e.g. the embedded model is not installed), litellm cannot
    place the model string, or a hosted model's API key is missing."""
    providers.ensure_registered()
    for name in names:
        owner = provider(name)
        problem = owner.preflight(name)
        if problem:
            raise RunError(problem)
        if owner.litellm_provider:  # one of llmexp's own litellm providers
            continue
        try:
            _, provider_name, _, _ = litellm.get_llm_provider(name)
        except Exception as exc:
            raise RunError(
                f"unknown model {name!r}: litellm does not know its provider ({str(exc).splitlines()[0][:200]}); "
                "use a litellm model string such as 'openai/gpt-4o-mini', 'anthropic/claude-3-5-haiku-latest', "
                "'openai/<name>' with an api_base param for an OpenAI-compatible server, 'synthetic/respondent' "
                "or 'llmexp/gemma3-270m'"
            ) from None
        _check_key(name, provider_name, (params_by_model or {}).get(name) or {})
