"""Runner test helpers: a small Study and a hand-built trial table (contract columns)."""

from __future__ import annotations

import hashlib
import json
import os

import pandas as pd

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmexp.runner.retry import RetryPolicy  # noqa: E402
from llmexp.spec import AnswerSpec, Design, ModelSpec, Outcome, Study, Treatment, Units  # noqa: E402


def canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def make_study(models=("openai/fake-model",), params=None, levels=(0.0, 0.5, 1.0, 1.5, 2.0), n_units=2, replicates=1, seed=0, name="toy"):
    params = params or {}
    return Study(
        name=name,
        seed=seed,
        units=Units(
            name="products",
            key="product_id",
            columns={"product_id": "text", "regular_price": "money"},
            rows=tuple({"product_id": f"p{i}", "regular_price": 2.0 + i} for i in range(n_units)),
        ),
        treatments=(Treatment(name="price", levels=tuple(levels)),),
        outcomes=(Outcome(name="purchase", answer=AnswerSpec(type="binary", labels=("yes", "no")), question="Would you buy it?"),),
        context="You see {product_id} for {price}.",
        designs=(Design(name="blind", mode="blind"), Design(name="unblinded", mode="unblinded")),
        models=tuple(ModelSpec(name=m, params=dict(params.get(m, {})), replicates=replicates) for m in models),
    )


def make_trials(study: Study, designs=None, unique_prompts=True) -> pd.DataFrame:
    """The trial table by hand: one binary outcome trial per model x design x unit x level x replicate."""
    rows = []
    treatment = study.treatments[0]
    for model in study.models:
        for design in study.designs:
            if designs and design.name not in designs:
                continue
            for unit in study.units.rows:
                for level in treatment.levels:
                    for rep in range(model.replicates):
                        shown = round(unit["regular_price"] * float(level), 2)
                        tag = f" (respondent {rep})" if unique_prompts else ""
                        content = f"[{design.name}] You see {unit['product_id']} for ${shown:.2f}{tag}. Would you buy it? Answer yes or no."
                        messages = [{"role": "user", "content": content}]
                        answer = {"type": "binary", "labels": ["yes", "no"]}
                        params = dict(model.params)
                        cache_key = hashlib.sha256(canon([model.name, params, messages, answer, rep]).encode()).hexdigest()[:16]
                        tid = hashlib.sha256(canon([design.name, unit["product_id"], cache_key]).encode()).hexdigest()[:16]
                        cell = f"price={level:g}"
                        rows.append(
                            {
                                "trial_id": tid,
                                "cache_key": cache_key,
                                "study": study.name,
                                "design": design.name,
                                "mode": design.mode,
                                "model": model.name,
                                "params": canon(params),
                                "replicate": rep,
                                "kind": "outcome",
                                "target": "purchase",
                                "unit_id": unit["product_id"],
                                "unit": canon(unit),
                                "persona_id": None,
                                "persona": None,
                                "cell": cell,
                                "conditions": canon([{"cell": cell, "levels": {"price": level}, "values": {"price": shown}}]),
                                "pinned": canon({}),
                                "split": None,
                                "answer": canon(answer),
                                "messages": canon(messages),
                                "order_seed": None,
                            }
                        )
    return pd.DataFrame(rows)


FAST_RETRY = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.5, timeout=5.0, max_retry_after=0.5)


TINY_STUDY = """study "tiny"
  seed 1

units products
{rows}

treatment price = levels(0.5, 1, 1.5, 2) between

context "You see {{product_id}} for {{price}}."

outcome purchase: binary "yes" / "no"
  question "Would you buy it?"

modes blind

model "openai/fake-model" api_base "{api_base}" temperature 1 max_tokens 4 replicates 1
"""


def write_study_file(directory, api_base: str, units: int = 2, name: str = "tiny.study"):
    """A .study file of `units` x 4 yes/no trials, each with its own prompt, sent to
    `api_base` (for CLI tests)."""
    rows = "\n".join(f'  row product_id = "p{i}", regular_price = {2 + i}' for i in range(units))
    path = directory / name
    path.write_text(TINY_STUDY.format(api_base=api_base, rows=rows))
    return path


def cli(argv) -> int:
    """`llmexp ARGV` in this process; its exit status."""
    from llmexp.cli import main

    try:
        main([str(a) for a in argv])
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
