"""Seeded response tables with KNOWN truth, for testing the analysis layer.

Pure numpy/pandas. `make_study` builds a minimal `llmexp.spec.Study` directly from the
pydantic classes (no parser needed); `make_responses` produces a response table that follows
docs/artifacts.md (all trial columns + valid/value/label/probs/... ) from a `Truth`.

Data-generating process (per design d, unit u, price level x, draw i):

    latent = intercept + a_u + (slope + design_slope[d] + b_u) * x
             + step * 1[x <= threshold]            (designs that pin a covariate only)
             + quad * x**2
    number outcome:  y = latent + noise_sd * e
    binary outcome:  p = clip(latent, 0.01, 0.99) (linear probability) ; y ~ Bernoulli(p),
                     or y = p + noise (as a log-prob probability) when `logprobs`
    probe (leakage): v = base_u * (1 + leak[d] * (x - mean(levels))) * (1 + probe_noise * e)

so the true pooled slope of a number outcome on the level is `slope + design_slope[d]`,
the true leakage index (slope of v / unit-mean(v) on x) is `leak[d]` and the true
focalism jump is `step`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import pandas as pd

from llmexp.spec import (
    AnswerSpec,
    Baseline,
    Covariate,
    Design,
    Expr,
    ModelSpec,
    Outcome,
    Persona,
    Probe,
    Study,
    Treatment,
    Units,
)

DEFAULT_LEVELS = tuple(round(0.2 * i, 1) for i in range(11))
MODEL = "synthetic/test"


def _ref(name: str) -> Expr:
    return Expr(op="ref", value=name)


def price_expr() -> Expr:
    return Expr(op="mul", args=(Expr(op="level"), _ref("products.regular_price")))


def make_study(
    n_units: int = 20,
    levels: tuple = DEFAULT_LEVELS,
    designs: tuple[Design, ...] | None = None,
    outcome_type: str = "binary",
    analyses: tuple[str, ...] = ("demand_curve", "effects", "leakage"),
    baseline: Optional[Baseline] = None,
    personas: tuple[Persona, ...] = (),
    covariates: tuple[Covariate, ...] | None = None,
    treatment_name: str = "price",
    seed: int = 0,
) -> Study:
    """A minimal pricing study: `n_units` products, one price treatment, one outcome."""
    units = Units(
        name="products",
        key="product_id",
        columns={"product_id": "text", "regular_price": "money"},
        rows=tuple(
            {"product_id": f"p{i:02d}", "regular_price": round(2.0 + 0.5 * i, 2)}
            for i in range(n_units)
        ),
    )
    treatment = Treatment(
        name=treatment_name,
        levels=tuple(levels),
        value=price_expr(),
        value_type="money",
        unit_dependent=True,
    )
    if covariates is None:
        covariates = (
            Covariate(
                name="competitor_price",
                specified=False,
                value=_ref("products.regular_price"),
                value_type="money",
                probe=Probe(
                    question="A similar product from another brand costs $___.",
                    answer=AnswerSpec(type="money", low=0, high=1000),
                ),
                text="A similar product from another brand costs {value}.",
            ),
        )
    if outcome_type == "binary":
        answer = AnswerSpec(type="binary", labels=("purchase", "not purchase"))
    elif outcome_type == "likert":
        answer = AnswerSpec(type="likert", labels=("1", "2", "3", "4", "5"), low=1, high=5)
    else:
        answer = AnswerSpec(type=outcome_type, low=-1000, high=1000)
    outcome = Outcome(name="purchase" if outcome_type == "binary" else "y", answer=answer,
                      question="Would you buy it?")
    if designs is None:
        designs = (
            Design(name="blind", mode="blind"),
            Design(name="unblinded", mode="unblinded"),
        )
    return Study(
        name="synthetic",
        seed=seed,
        units=units,
        personas=personas,
        treatments=(treatment,),
        covariates=covariates,
        outcomes=(outcome,),
        context="You are shopping for {products.product_id}.",
        designs=tuple(designs),
        models=(ModelSpec(name=MODEL),),
        baseline=baseline,
        analyses=tuple(analyses),
    )


@dataclass
class Truth:
    """Known truth behind a synthetic response table."""

    intercept: float = 0.8
    slope: float = -0.3  # per unit of level
    quad: float = 0.0
    design_slope: dict[str, float] = field(default_factory=dict)  # design -> slope offset
    unit_intercept_sd: float = 0.05
    unit_slope_sd: float = 0.05
    noise_sd: float = 0.2  # number outcomes / probability noise
    step: float = 0.0  # focalism jump in designs with pins
    threshold: float = 1.0  # level at/below which the step applies
    leak: dict[str, float] | float = 0.0  # design -> leakage slope (or one for all)
    probe_noise: float = 0.1
    draws: int = 5  # responses per unit x cell (replicates) in between-prompt modes
    logprobs: bool = False  # binary value read from probabilities
    invalid_rate: float = 0.0
    persona_sd: float = 0.0  # persona random intercept (personas reused across cells)
    n_personas: int = 0

    def leak_for(self, design: str) -> float:
        if isinstance(self.leak, dict):
            return float(self.leak.get(design, 0.0))
        return float(self.leak)


def eval_expr(expr: Expr, unit: dict, persona: dict | None, level) -> object:
    """Evaluate a spec `Expr` (test helper; the compiler has the real one)."""
    op = expr.op
    if op == "num":
        return float(expr.value)
    if op == "str":
        return str(expr.value)
    if op == "level":
        return float(level)
    if op == "ref":
        name = str(expr.value).split(".")[-1]
        if name in unit:
            return unit[name]
        if persona and name in persona:
            return persona[name]
        raise KeyError(name)
    args = [eval_expr(a, unit, persona, level) for a in expr.args]
    if op == "add":
        return args[0] + args[1]
    if op == "sub":
        return args[0] - args[1]
    if op == "mul":
        return args[0] * args[1]
    if op == "div":
        return args[0] / args[1]
    if op == "neg":
        return -args[0]
    raise ValueError(op)


def _canon(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def _cell_id(tname: str, level) -> str:
    return f"{tname}={level}"


def make_responses(study: Study, truth: Truth | None = None, seed: int = 0) -> pd.DataFrame:
    """A response table for `study` drawn from `truth` (see the module docstring)."""
    truth = truth or Truth()
    rng = np.random.default_rng(seed)
    treatment = study.treatments[0]
    tname = treatment.name
    levels = [float(x) for x in treatment.levels]
    mean_level = float(np.mean(levels))
    outcome = study.outcomes[0]
    otype = outcome.answer.type
    units = list(study.units.rows)
    key = study.units.key
    n_u = len(units)
    a_u = rng.normal(0, truth.unit_intercept_sd, n_u)
    b_u = rng.normal(0, truth.unit_slope_sd, n_u)
    base_u = rng.uniform(0.8, 1.2, n_u) * np.array(
        [float(u.get("regular_price", 1.0)) for u in units]
    )
    persona_eff = rng.normal(0, truth.persona_sd, max(truth.n_personas, 1))
    model = study.models[0].name
    rows: list[dict] = []

    def mean_latent(d: Design, ui: int, x: float) -> float:
        s = truth.slope + truth.design_slope.get(d.name, 0.0) + b_u[ui]
        m = truth.intercept + a_u[ui] + s * x + truth.quad * x * x
        if d.pins and x <= truth.threshold + 1e-9:
            m += truth.step
        return m

    def draw_outcome(m: float, extra: float = 0.0):
        """value, label, probs for one response with latent mean m."""
        if otype == "binary":
            p = float(np.clip(m + extra, 0.01, 0.99))
            labels = outcome.answer.labels
            if truth.logprobs:
                q = float(np.clip(p + rng.normal(0, truth.noise_sd), 0.0, 1.0))
                lab = labels[0] if q >= 0.5 else labels[1]
                return q, lab, _canon({labels[0]: q, labels[1]: 1 - q})
            y = float(rng.random() < p)
            return y, labels[0] if y == 1 else labels[1], None
        if otype == "likert":
            lo, hi = outcome.answer.low or 1, outcome.answer.high or 5
            y = float(np.clip(np.rint(m + extra + rng.normal(0, truth.noise_sd)), lo, hi))
            return y, str(int(y)), None
        if otype == "probability":
            y = float(np.clip(m + extra + rng.normal(0, truth.noise_sd), 0, 1))
            return y, None, None
        return float(m + extra + rng.normal(0, truth.noise_sd)), None, None

    def base_row(d: Design, ui: int, rep: int, kind: str, target: str, answer: dict,
                 conditions: list, cell, pinned: dict, split=None, persona=None) -> dict:
        unit = units[ui]
        cond_json = _canon(conditions)
        payload = "|".join(map(str, [d.name, model, unit[key], rep, kind, target, cond_json,
                                     split, persona and persona[0]]))
        tid = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return {
            "trial_id": tid,
            "study": study.name,
            "design": d.name,
            "mode": d.mode,
            "model": model,
            "params": params_json,
            "replicate": rep,
            "kind": kind,
            "target": target,
            "unit_id": str(unit[key]),
            "unit": unit_json[ui],
            "persona_id": persona[0] if persona else None,
            "persona": _canon(persona[1]) if persona else None,
            "cell": cell,
            "conditions": cond_json,
            "pinned": pinned_json,
            "split": _canon(list(split)) if split is not None else None,
            "answer": _canon(answer),
            # each synthetic call is its own prompt (real repeated prompts give equal log-probs)
            "messages": messages_json[:-3] + f" {tid}" + messages_json[-3:],
            "order_seed": None,
        }

    def finish(row: dict, value, label=None, probs=None, condition_values=None) -> dict:
        invalid = rng.random() < truth.invalid_rate
        row.update(
            valid=not invalid,
            value=None if invalid or value is None else float(value),
            label=None if invalid else label,
            probs=None if invalid else probs,
            prob_mass=(1.0 if probs and not invalid else None),
            condition_values=None if invalid else condition_values,
            raw_text="?" if invalid else str(label if label is not None else value),
            error="unparseable" if invalid else None,
            status="invalid" if invalid else "ok",
            prompt_tokens=10,
            completion_tokens=2,
            cost=0.0,
            latency=0.0,
            cache_hit=False,
            attempts=1,
        )
        return row

    unit_json = [_canon(u) for u in units]
    params_json, messages_json = _canon({}), _canon([{"role": "user", "content": "synthetic"}])
    answer_spec = outcome.answer.model_dump(mode="json")
    pinned_json = "{}"
    probes = [c for c in study.covariates if (not c.specified) and c.probe is not None]
    probe_answers = {c.name: c.probe.answer.model_dump(mode="json") for c in probes}
    for d in study.designs:
        for ui, unit in enumerate(units):
            pinned = {
                name: eval_expr(expr, unit, None, 1.0) for name, expr in sorted(d.pins.items())
            }
            pinned_json = _canon(pinned)

            def cond(x):
                return {
                    "cell": _cell_id(tname, x),
                    "levels": {tname: x},
                    "values": {tname: round(x * float(unit.get("regular_price", 1.0)), 2)},
                }

            if d.mode in ("blind", "unblinded"):
                for x in levels:
                    c = cond(x)
                    for rep in range(truth.draws):
                        persona = None
                        extra = 0.0
                        if truth.n_personas:
                            pi = int(rng.integers(truth.n_personas))
                            persona = (f"shopper-{pi}", {"age": 20 + pi % 50,
                                                         "income": 30 + (pi * 7) % 90})
                            extra = persona_eff[pi]
                        row = base_row(d, ui, rep, "outcome", outcome.name, answer_spec, [c],
                                       c["cell"], pinned, persona=persona)
                        rows.append(finish(row, *draw_outcome(mean_latent(d, ui, x), extra)))
                        if d.probes:
                            for cov in probes:
                                v = base_u[ui] * (1 + truth.leak_for(d.name) * (x - mean_level))
                                v *= 1 + truth.probe_noise * rng.normal()
                                prow = base_row(d, ui, rep, "probe", cov.name,
                                                probe_answers[cov.name], [c],
                                                c["cell"], pinned, persona=persona)
                                rows.append(finish(prow, round(float(v), 4)))
            else:
                parts = list(d.split) if d.split else [None]
                for part in parts:
                    xs = levels if part is None else [
                        x for x in levels if part[0] - 1e-9 <= x <= part[1] + 1e-9]
                    conds = [cond(x) for x in xs]
                    ans = dict(answer_spec, per_condition=True)
                    if d.mode == "aggregate" and otype == "binary":
                        ans = {"type": "probability", "labels": [], "low": 0, "high": 1,
                               "per_condition": True}
                    for rep in range(truth.draws):
                        cv = {}
                        for c, x in zip(conds, xs):
                            m = mean_latent(d, ui, x)
                            if d.mode == "aggregate" and otype == "binary":
                                val = float(np.clip(m + rng.normal(0, truth.noise_sd / 4), 0, 1))
                            else:
                                val = draw_outcome(m)[0]
                            cv[c["cell"]] = val
                        row = base_row(d, ui, rep, "outcome", outcome.name, ans, conds, None,
                                       pinned, split=part)
                        rows.append(finish(row, None, condition_values=_canon(cv)))
    df = pd.DataFrame(rows)
    return df


def human_baseline_rows(study: Study, truth: Truth, n_per_cell: int = 30, seed: int = 1,
                        retest_flip: float = 0.1) -> tuple[dict, ...]:
    """Individual human rows (unit, level, outcome, retest) from the same DGP, no design
    offsets, no step: `product_id, price_level, buy, buy_retest`."""
    rng = np.random.default_rng(seed)
    rows = []
    pid = 0
    for u in study.units.rows:
        for x in study.treatments[0].levels:
            p = float(np.clip(truth.intercept + truth.slope * float(x), 0.01, 0.99))
            for _ in range(n_per_cell):
                y = int(rng.random() < p)
                r = y if rng.random() > retest_flip else 1 - y
                rows.append({"respondent": pid, "product_id": u[study.units.key],
                             "price_level": float(x), "buy": y, "buy_retest": r, "wave": 3})
                pid += 1
    return tuple(rows)
