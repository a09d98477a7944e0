"""Synthetic run workloads for benchmarks, drills and scale tests: a Study and its trial
table of N yes/no trials for one model, built directly (no compiler), following the trial
table contract of docs/artifacts.md. Every trial has a distinct prompt, so a fake server
can count calls per trial by request content.

    study, trials = workload(5000, "openai/fake-model", {"api_base": url, "api_key": "sk-fake"})
"""

from __future__ import annotations

import pandas as pd

from llmexp.seeding import canonical as _canon
from llmexp.seeding import short_hash
from llmexp.spec import AnswerSpec, Design, ModelSpec, Outcome, Study, Treatment, Units

LEVELS = tuple(round(0.2 * i, 1) for i in range(1, 11))  # 10 price levels


def make_study(n_trials: int, model: str = "openai/fake-model", params: dict | None = None, name: str = "bench") -> Study:
    n_units = max(1, -(-int(n_trials) // len(LEVELS)))
    return Study(
        name=name,
        seed=0,
        units=Units(
            name="products",
            key="product_id",
            columns={"product_id": "text", "regular_price": "money"},
            rows=tuple({"product_id": f"p{i}", "regular_price": round(2.0 + (i % 50) * 0.1, 2)} for i in range(n_units)),
        ),
        treatments=(Treatment(name="price", levels=LEVELS),),
        outcomes=(Outcome(name="purchase", answer=AnswerSpec(type="binary", labels=("yes", "no")), question="Would you buy it?"),),
        context="You see {product_id} for {price}.",
        designs=(Design(name="blind", mode="blind"),),
        models=(ModelSpec(name=model, params=dict(params or {}), replicates=1),),
    )


def make_trials(study: Study, n_trials: int | None = None) -> pd.DataFrame:
    model = study.models[0]
    design = study.designs[0]
    answer = {"type": "binary", "labels": ["yes", "no"]}
    params = _canon(dict(model.params))
    rows = []
    for unit in study.units.rows:
        for level in study.treatments[0].levels:
            if n_trials is not None and len(rows) >= n_trials:
                break
            shown = round(unit["regular_price"] * float(level), 2)
            content = f"You see {unit['product_id']} for ${shown:.2f}. Would you buy it? Answer yes or no."
            messages = [{"role": "user", "content": content}]
            cache_key = short_hash([model.name, params, messages, answer, 0])
            tid = short_hash([design.name, unit["product_id"], cache_key])
            cell = f"price={level:g}"
            rows.append({
                "trial_id": tid, "cache_key": cache_key, "study": study.name, "design": design.name,
                "mode": design.mode, "model": model.name, "params": params, "replicate": 0,
                "kind": "outcome", "target": "purchase", "unit_id": unit["product_id"], "unit": _canon(unit),
                "persona_id": None, "persona": None, "cell": cell,
                "conditions": _canon([{"cell": cell, "levels": {"price": level}, "values": {"price": shown}}]),
                "pinned": "{}", "split": None, "answer": _canon(answer), "messages": _canon(messages), "order_seed": None,
            })  # fmt: skip
    return pd.DataFrame(rows)


def workload(n_trials: int, model: str = "openai/fake-model", params: dict | None = None, name: str = "bench"):
    """(study, trials): exactly `n_trials` yes/no trials with distinct prompts."""
    study = make_study(n_trials, model, params, name)
    return study, make_trials(study, n_trials)
