"""Prices and cost estimates, from litellm's price table (`litellm.model_cost`).

`estimate_cost(study, trials)` is computed before a run: prompt tokens are counted with
`litellm.token_counter` on a sample of each model's trials (scaled by characters to all of
them; chars/4 when no tokenizer is available) and every call is assumed to use its whole
`max_tokens` (DEFAULT_COMPLETION_TOKENS when the study sets none), so the estimate is an
upper bound for the completion side. Models whose provider declares itself `free`
(`llmexp.providers.for_model(model).free`: the local `llmexp/` and the `synthetic/` models)
cost 0 and are never looked up in litellm (asking a provider imports no litellm).
Models missing from the price table are reported as unpriced (cost 0, flagged) unless the
study gives `input_cost_per_token` / `output_cost_per_token` params.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

DEFAULT_COMPLETION_TOKENS = 256
SAMPLE_PER_MODEL = 200


def is_free(model: str) -> bool:
    """Whether calls to `model` cost nothing, as its provider declares (`free`)."""
    from llmexp import providers

    return providers.for_model(model).free


@dataclass(frozen=True)
class Price:
    input: float  # dollars per prompt token
    output: float  # dollars per completion token
    known: bool

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input + completion_tokens * self.output


def _param_float(params: Mapping, name: str) -> float | None:
    try:
        return float(params[name]) if name in params else None
    except (TypeError, ValueError):
        return None


@lru_cache(maxsize=256)
def _table_price(model: str) -> tuple[float, float] | None:
    import litellm

    for name in (model, model.split("/", 1)[-1]):
        try:
            p_in, _ = litellm.cost_per_token(model=name, prompt_tokens=1_000_000, completion_tokens=0)
            _, p_out = litellm.cost_per_token(model=name, prompt_tokens=0, completion_tokens=1_000_000)
            return p_in / 1_000_000, p_out / 1_000_000
        except Exception:
            continue
    return None


def model_price(model: str, params: Mapping | None = None) -> Price:
    """Per-token price of `model` (0 for a model whose provider declares it `free`)."""
    params = params or {}
    if is_free(model):
        return Price(0.0, 0.0, True)
    p_in = _param_float(params, "input_cost_per_token")
    p_out = _param_float(params, "output_cost_per_token")
    if p_in is not None or p_out is not None:
        return Price(p_in or 0.0, p_out or 0.0, True)
    found = _table_price(model)
    if found is None:
        return Price(0.0, 0.0, False)
    return Price(found[0], found[1], True)


BATCH_DISCOUNT = 0.5  # a batch request's price when litellm's table gives no batch price


def batch_price(model: str, params: Mapping | None = None) -> Price:
    """Per-token price of `model` in a provider batch: litellm's `*_cost_per_token_batches`
    when its table has them, else half the ordinary price (OpenAI's and Anthropic's rate)."""
    base = model_price(model, params)
    if _param_float(params or {}, "input_cost_per_token") is None:
        import litellm

        for name in (model, model.split("/", 1)[-1]):
            info = litellm.model_cost.get(name) or {}
            if "input_cost_per_token_batches" in info or "output_cost_per_token_batches" in info:
                p_in = float(info.get("input_cost_per_token_batches", base.input * BATCH_DISCOUNT) or 0.0)
                p_out = float(info.get("output_cost_per_token_batches", base.output * BATCH_DISCOUNT) or 0.0)
                return Price(p_in, p_out, True)
    return Price(base.input * BATCH_DISCOUNT, base.output * BATCH_DISCOUNT, base.known)


def completion_budget(params: Mapping) -> int:
    for name in ("max_tokens", "max_completion_tokens"):
        if name in params:
            try:
                return int(params[name])
            except (TypeError, ValueError):
                pass
    return DEFAULT_COMPLETION_TOKENS


def chars_of(messages: Any) -> int:
    if isinstance(messages, str):
        return len(messages)
    return sum(len(str(m.get("content", ""))) for m in messages or [])


def count_prompt_tokens(model: str, messages: list) -> int:
    """Prompt tokens by litellm's tokenizer for `model`, chars/4 when that fails."""
    if not is_free(model):
        try:
            import litellm

            return int(litellm.token_counter(model=model, messages=messages))
        except Exception:
            pass
    return max(1, chars_of(messages) // 4)


@dataclass
class ModelEstimate:
    model: str
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    priced: bool = True


@dataclass
class CostEstimate:
    models: dict[str, ModelEstimate] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return sum(m.cost for m in self.models.values())

    @property
    def calls(self) -> int:
        return sum(m.calls for m in self.models.values())

    @property
    def unpriced(self) -> list[str]:
        return [m.model for m in self.models.values() if not m.priced]

    def to_dict(self) -> dict:
        return {
            "total": self.total,
            "calls": self.calls,
            "models": {k: vars(v) for k, v in self.models.items()},
        }

    def __str__(self) -> str:
        lines = [f"estimated cost: ${self.total:.4f} for {self.calls} calls (upper bound: full max_tokens)"]
        for m in self.models.values():
            note = "" if m.priced else "  (no price in litellm's table: counted as $0)"
            lines.append(
                f"  {m.model}: {m.calls} calls, ~{m.prompt_tokens} prompt + {m.completion_tokens} completion tokens, ${m.cost:.4f}{note}"
            )
        return "\n".join(lines)


def _as_records(trials: Any) -> list[dict]:
    if trials is None:
        return []
    if hasattr(trials, "to_dict"):
        return trials.to_dict("records")
    return list(trials)


def _loads(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def estimate_cost(study: Any, trials: Any, params_by_model: Mapping[str, Mapping] | None = None) -> CostEstimate:
    """Estimate the dollars a study's trials will cost before running them.

    `trials` is the trial table (DataFrame or list of row dicts); trial ids already
    completed can be left out by the caller. `study` supplies model params (max_tokens,
    custom prices) when `params_by_model` is not given.
    """
    records = _as_records(trials)
    if params_by_model is None:
        params_by_model = {m.name: dict(m.params) for m in getattr(study, "models", ())}
    by_model: dict[str, list[dict]] = {}
    for row in records:
        by_model.setdefault(row["model"], []).append(row)
    est = CostEstimate()
    for model, rows in by_model.items():
        params = dict(params_by_model.get(model) or _loads(rows[0].get("params")) or {})
        price = model_price(model, params)
        completion = completion_budget(params)
        total_chars = sum(chars_of(_loads(r.get("messages"))) for r in rows)
        if is_free(model):
            prompt_tokens = max(len(rows), total_chars // 4)
        else:
            step = max(1, len(rows) // SAMPLE_PER_MODEL)
            sample = rows[::step][:SAMPLE_PER_MODEL]
            s_tokens = sum(count_prompt_tokens(model, _loads(r.get("messages"))) for r in sample)
            s_chars = sum(chars_of(_loads(r.get("messages"))) for r in sample) or 1
            prompt_tokens = int(round(s_tokens * total_chars / s_chars))
        completion_tokens = completion * len(rows)
        est.models[model] = ModelEstimate(
            model=model,
            calls=len(rows),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost=price.cost(prompt_tokens, completion_tokens),
            priced=price.known,
        )
    return est
