"""The contract between the runner and llmexp's custom litellm providers.

Every model call goes through `litellm.acompletion`, so the scheduler sees one interface for
hosted models (`openai/...`, `anthropic/...`), the embedded local model (`llmexp/...`,
`llmexp.providers.local`) and the synthetic respondent (`synthetic/...`,
`llmexp.providers.synthetic`). Custom providers are `litellm.CustomLLM` subclasses
registered in `litellm.custom_provider_map` by `llmexp.providers.ensure_registered()`; what
the runner may assume about each is declared by its `Provider` class (`registry.py`).

What the runner sends (and custom providers may read)
------------------------------------------------------
`litellm.acompletion(model=..., messages=..., metadata={...}, **standard_params)` where
`metadata` is::

    {
      "llmexp_trial": {             # the STRUCTURED trial (parsed JSON columns, not prose)
        "trial_id": str, "kind": "outcome" | "probe", "target": str,
        "mode": str,                # a mode name (`llmexp.modes`): ask its capabilities
        "answer": {"type": ..., "labels": [...], "low": .., "high": .., "per_condition": bool?},
        "conditions": [{"cell": str, "levels": {treatment: level}, "values": {treatment: shown}}, ...],
        "pinned": {covariate: value}, "unit": {...}, "persona": {...} | None,
        "replicate": int, "unit_id": str, "persona_id": str | None, "cell": str | None,
        "split": [low, high] | None,
        "treatment_levels": {treatment: [all levels of the study]},   # to normalise levels
      },
      "llmexp_params": {...},       # ALL the model's params from the study (incl. custom ones
                                    # such as the synthetic respondent's `effect`, `noise`)
      "llmexp_seed": int,           # the study seed
    }

Hosted providers ignore `metadata` (litellm does not send it to the API). Custom providers
read it back with `trial_from_kwargs(kwargs)` / `params_from_kwargs(kwargs)` /
`seed_from_kwargs(kwargs)`, given the keyword arguments litellm hands to
`CustomLLM.acompletion`/`completion`. Only the standard sampling params (`STANDARD_PARAMS`)
are passed as top-level keyword arguments.

What a custom provider returns
------------------------------
A `litellm.ModelResponse` whose `choices[0].message.content` is plain answer text that
`llmexp.answers.parse_answer` understands (e.g. "Yes", "4", "85%", or one line per condition
"1) 45%"). Optionally, label probabilities (from log-probabilities) go in
`choices[0].message.provider_specific_fields["llmexp"] = {"probs": {label: p}, "prob_mass": m}`
(litellm preserves that field through `acompletion` for CustomLLM; checked by the tests);
`set_probs(response, probs, prob_mass)` writes it and the runner's `extract_probs(response)`
reads it. `probs` should be normalised over the answer's labels; `prob_mass` is the raw
probability mass the labels covered before normalising. Usage (prompt/completion tokens)
should be set; `make_response(...)` builds a complete response.

Errors: raise `ProviderError(status_code, message)` (= `litellm`'s `CustomLLMError`).
Status 400/401/403/404 are permanent: litellm maps them to BadRequest/Authentication/
PermissionDenied/NotFound errors and the runner stops that model with one message (use this
for "llama-cpp-python is not installed", "unknown model"). Any other exception (or 429/5xx)
is treated as transient and retried.

Subclass `LlmexpProvider` and implement `answer(...)` to get both the sync and async
litellm entry points; set `blocking = True` when `answer` is CPU-heavy so the async path
runs it in a worker thread (one at a time per provider instance).

This module does not import litellm (importing litellm takes seconds, and `llmexp check`
or a provider's declared capabilities need none of it): `LlmexpProvider`, `ProviderError`,
`make_response`, `set_probs` and `register_provider` live in `_litellm.py` and are imported
from here on first use.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the litellm-dependent half (`_litellm.py`), imported on first use
    from llmexp.providers._litellm import (  # noqa: F401 - re-exported (`__getattr__`)
        LlmexpProvider,
        ProviderError,
        make_response,
        register_provider,
        set_probs,
    )

TRIAL_KEY = "llmexp_trial"
PARAMS_KEY = "llmexp_params"
SEED_KEY = "llmexp_seed"
PROBS_FIELD = "llmexp"  # key in choices[0].message.provider_specific_fields

# Params passed to litellm as top-level keyword arguments; everything else stays in metadata.
STANDARD_PARAMS = frozenset(
    {
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "seed",
        "stop",
        "presence_penalty",
        "frequency_penalty",
        "logprobs",
        "top_logprobs",
        "timeout",
        "api_base",
        "api_version",
        "reasoning_effort",
        "top_k",
    }
)

def _metadata(kwargs: dict) -> dict:
    lp = kwargs.get("litellm_params") or {}
    md = None
    if isinstance(lp, dict):
        md = lp.get("metadata") or lp.get("litellm_metadata")
    if not md:
        md = kwargs.get("metadata")
    return md if isinstance(md, dict) else {}


def structured_trial(row: dict, levels: dict, loads, answer=None, conditions=None) -> dict:
    """The structured trial a custom provider receives (under `metadata[TRIAL_KEY]`), built
    from a trial-table row; `loads` decodes the row's JSON cells. The runner and
    `llmexp diagnose` both build it here, so a simulated respondent sees what a real run sends."""
    return {
        "trial_id": row["trial_id"],
        "kind": row.get("kind"),
        "target": row.get("target"),
        "mode": row.get("mode"),
        "answer": answer if answer is not None else (loads(row.get("answer")) or {}),
        "conditions": conditions if conditions is not None else (loads(row.get("conditions")) or []),
        "pinned": loads(row.get("pinned")) or {},
        "unit": loads(row.get("unit")) or {},
        "persona": loads(row.get("persona")),
        "replicate": row.get("replicate"),
        "unit_id": row.get("unit_id"),
        "persona_id": row.get("persona_id"),
        "cell": row.get("cell"),
        "split": loads(row.get("split")),
        "treatment_levels": levels,
    }


def trial_from_kwargs(kwargs: dict) -> dict | None:
    """The structured trial the runner attached, from the kwargs litellm gives a CustomLLM.

    Returns None when the call did not come from the runner (e.g. a plain
    `litellm.acompletion` by a user), so providers can fall back to reading the prose.
    """
    trial = _metadata(kwargs).get(TRIAL_KEY)
    return trial if isinstance(trial, dict) else None


def params_from_kwargs(kwargs: dict) -> dict:
    """All model params: the study's `llmexp_params` overlaid with litellm's optional_params."""
    params: dict = {}
    md_params = _metadata(kwargs).get(PARAMS_KEY)
    if isinstance(md_params, dict):
        params.update(md_params)
    opt = kwargs.get("optional_params")
    if isinstance(opt, dict):
        for k, v in opt.items():
            params.setdefault(k, v)
    return params


def seed_from_kwargs(kwargs: dict) -> int:
    seed = _metadata(kwargs).get(SEED_KEY)
    try:
        return int(seed) if seed is not None else 0
    except (TypeError, ValueError):
        return 0


def extract_probs(response: Any) -> tuple[dict | None, float | None]:
    """(probs, prob_mass) a custom provider attached, or (None, None)."""
    try:
        msg = response.choices[0].message
        fields = getattr(msg, "provider_specific_fields", None) or {}
        data = fields.get(PROBS_FIELD)
    except (AttributeError, IndexError, KeyError, TypeError):
        return None, None
    if not isinstance(data, dict) or not isinstance(data.get("probs"), dict):
        return None, None
    mass = data.get("prob_mass")
    return dict(data["probs"]), (None if mass is None else float(mass))


def approx_tokens(text: str) -> int:
    """Rough token count (chars/4) for providers without a tokenizer."""
    return max(1, (len(text) + 3) // 4)


@dataclass
class Reply:
    """What `LlmexpProvider.answer` returns."""

    text: str
    probs: dict | None = None
    prob_mass: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


_LITELLM_NAMES = frozenset({"LlmexpProvider", "ProviderError", "make_response", "register_provider", "set_probs"})


def __getattr__(name: str) -> Any:
    """The litellm-dependent names (`_litellm.py`), imported on first use."""
    if name in _LITELLM_NAMES:
        from llmexp.providers import _litellm

        return getattr(_litellm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
