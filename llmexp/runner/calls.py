"""Trial rows -> `Call`s: everything the scheduler needs to make one model call.

JSON columns are parsed once here (and shared between trials with the same text), the
params are split into what litellm gets and what configures llmexp, and each call gets
its cost and token estimates (for the budget and the tokens/min limit), its cache key and
the wall-clock deadline of each attempt (the model's `timeout` param, else the policy's).
What depends on the kind of model (custom provider or litellm, cacheable, cache key) is
asked of `models.provider`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmexp.providers.base import PARAMS_KEY, SEED_KEY, STANDARD_PARAMS, TRIAL_KEY, structured_trial
from llmexp.runner.cost import Price, completion_budget, model_price
from llmexp.runner.models import provider
from llmexp.runner.retry import RetryPolicy
from llmexp.runner.router import routed_kwargs
from llmexp.schema import json_cell as loads

# params that configure llmexp itself, never sent to a provider
RUNNER_PARAMS = {"rpm", "tpm", "replicates", "input_cost_per_token", "output_cost_per_token"}


@dataclass(slots=True)
class Call:
    trial_id: str
    model: str  # the study's model name (what is stored)
    target: str  # the model string handed to litellm
    messages: list
    kwargs: dict  # everything else passed to the model call
    answer: dict
    conditions: list
    est_tokens: int
    est_cost: float
    cacheable: bool
    cache_key: str
    deadline: float | None = None  # wall-clock seconds one attempt may take (None: llmexp's own providers)


class _Parsed:
    """JSON strings repeat across trials (params, answer specs): parse each once and
    share the read-only result between the calls with the same string."""

    def __init__(self) -> None:
        self.seen: dict[str, Any] = {}

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            hit = self.seen.get(value)
            if hit is None:
                hit = self.seen[value] = loads(value)
            return hit
        return loads(value)


def _kwargs(row: dict, params: dict, levels: dict, answer: dict, conditions: list, seed: int, retry: RetryPolicy, routed: bool) -> dict:
    """The keyword arguments of the model call besides model and messages."""
    if provider(row["model"]).needs_structured_trial:  # llmexp answers: the trial travels in metadata
        trial = structured_trial(row, levels, loads, answer=answer, conditions=conditions)
        kwargs = {k: v for k, v in params.items() if k in STANDARD_PARAMS and k != "timeout"}
        kwargs["metadata"] = {TRIAL_KEY: trial, PARAMS_KEY: params, SEED_KEY: seed}
        return kwargs
    kwargs = {k: v for k, v in params.items() if k not in RUNNER_PARAMS}
    if routed:  # each Router deployment brings its own api_base / api_key
        kwargs = routed_kwargs(kwargs)
    kwargs.setdefault("timeout", retry.timeout)
    kwargs["max_retries"] = 0  # retries are ours (bounded, logged)
    return kwargs


def _deadline(params: dict, retry: RetryPolicy) -> float:
    """The per-attempt wall-clock limit: the model's `timeout` param, else the policy's."""
    try:
        value = float(params.get("timeout") or retry.timeout)
    except (TypeError, ValueError):
        value = retry.timeout
    return value if value > 0 else retry.timeout


def prepare_calls(rows: list[dict], study: Any, seed: int, retry: RetryPolicy, spec_params: dict, routed: frozenset = frozenset()) -> list[Call]:
    """One `Call` per pending trial row, in the rows' order."""
    levels = {t.name: list(t.levels) for t in study.treatments}
    prices: dict[str, Price] = {}
    shared = _Parsed()
    calls = []
    for row in rows:
        model = row["model"]
        params = shared(row.get("params")) or {}
        if not isinstance(params, dict):
            params = {}
        if not params and spec_params.get(model):
            params = dict(spec_params[model])
        messages = loads(row["messages"])
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        answer = shared(row.get("answer")) or {}
        conditions = loads(row.get("conditions")) or []
        if model not in prices:
            prices[model] = model_price(model, params)
        chars = sum(len(str(m.get("content", ""))) for m in messages)
        completion = completion_budget(params)
        owner = provider(model)
        calls.append(
            Call(
                trial_id=row["trial_id"],
                model=model,
                target=model if model in routed else owner.litellm_model(model),
                messages=messages,
                kwargs=_kwargs(row, params, levels, answer, conditions, seed, retry, model in routed),
                answer=answer,
                conditions=conditions,
                est_tokens=chars // 4 + 4 * len(messages) + completion,
                # budget reservation errs high: chars/3 prompt tokens, the whole max_tokens completion
                est_cost=prices[model].cost(chars // 3 + 4 * len(messages), completion),
                cacheable=owner.cacheable,
                cache_key=owner.cache_key(row.get("cache_key") or row["trial_id"]),
                deadline=None if owner.needs_structured_trial else _deadline(params, retry),
            )
        )
    return calls
