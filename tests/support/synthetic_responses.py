"""Seeded response tables with KNOWN truth, for testing the analysis layer.

`make_study` builds a minimal `llmexp.spec.Study` directly from the pydantic classes (no
parser needed); `make_responses` produces a response table that follows docs/artifacts.md
(all trial columns + valid/value/label/probs/... ) from a `Truth`: a test-only
data-generating process (below) whose true slopes, leakage and focalism the analysis tests
recover. `respondent_answers` is the other source: the synthetic respondent itself
(`llmexp.providers.respondent`) answering a compiled trial table.

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
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from llmexp import answers, modes
from llmexp.answers import Answer, parse_answer
from llmexp.providers.respondent import loads, trial_from_row
from llmexp.providers.synthetic import SyntheticRespondent
from llmexp.seeding import canonical
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
    baseline: Baseline | None = None,
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


def _cell_id(tname: str, level) -> str:
    return f"{tname}={level}"


class _Responses:
    """Builds `make_responses`' table: one method per part of the data-generating process.

    The draws happen in a fixed order (unit effects, then design by design, unit by unit),
    so a seed gives the same table every time.
    """

    def __init__(self, study: Study, truth: Truth, seed: int):
        self.study, self.truth = study, truth
        self.rng = rng = np.random.default_rng(seed)
        self.tname = study.treatments[0].name
        self.levels = [float(x) for x in study.treatments[0].levels]
        self.mean_level = float(np.mean(self.levels))
        self.outcome = study.outcomes[0]
        self.otype = self.outcome.answer.type
        self.units = list(study.units.rows)
        self.key = study.units.key
        n_u = len(self.units)
        self.a_u = rng.normal(0, truth.unit_intercept_sd, n_u)
        self.b_u = rng.normal(0, truth.unit_slope_sd, n_u)
        self.base_u = rng.uniform(0.8, 1.2, n_u) * np.array(
            [float(u.get("regular_price", 1.0)) for u in self.units]
        )
        self.persona_eff = rng.normal(0, truth.persona_sd, max(truth.n_personas, 1))
        self.model = study.models[0].name
        self.unit_json = [canonical(u) for u in self.units]
        self.params_json = canonical({})
        self.messages_json = canonical([{"role": "user", "content": "synthetic"}])
        self.answer_spec = self.outcome.answer.model_dump(mode="json")
        self.pinned_json = "{}"
        self.probes = [c for c in study.covariates if (not c.specified) and c.probe is not None]
        self.probe_answers = {c.name: c.probe.answer.model_dump(mode="json") for c in self.probes}
        self.rows: list[dict] = []

    def mean_latent(self, d: Design, ui: int, x: float) -> float:
        t = self.truth
        s = t.slope + t.design_slope.get(d.name, 0.0) + self.b_u[ui]
        m = t.intercept + self.a_u[ui] + s * x + t.quad * x * x
        if d.pins and x <= t.threshold + 1e-9:
            m += t.step
        return m

    def draw_outcome(self, m: float, extra: float = 0.0):
        """value, label, probs for one response with latent mean m (the test DGP's own
        linear-probability rules, not the synthetic respondent's)."""
        rng, truth, otype = self.rng, self.truth, self.otype
        if otype == "binary":
            p = float(np.clip(m + extra, 0.01, 0.99))
            labels = self.outcome.answer.labels
            if truth.logprobs:
                q = float(np.clip(p + rng.normal(0, truth.noise_sd), 0.0, 1.0))
                lab = labels[0] if q >= 0.5 else labels[1]
                return q, lab, canonical({labels[0]: q, labels[1]: 1 - q})
            y = float(rng.random() < p)
            return y, labels[0] if y == 1 else labels[1], None
        if otype == "likert":
            lo, hi = self.outcome.answer.low or 1, self.outcome.answer.high or 5
            y = float(np.clip(np.rint(m + extra + rng.normal(0, truth.noise_sd)), lo, hi))
            return y, str(int(y)), None
        if otype == "probability":
            y = float(np.clip(m + extra + rng.normal(0, truth.noise_sd), 0, 1))
            return y, None, None
        return float(m + extra + rng.normal(0, truth.noise_sd)), None, None

    def base_row(self, d: Design, ui: int, rep: int, kind: str, target: str, answer: dict,
                 conditions: list, cell, split=None, persona=None) -> dict:
        unit = self.units[ui]
        cond_json = canonical(conditions)
        payload = "|".join(map(str, [d.name, self.model, unit[self.key], rep, kind, target, cond_json,
                                     split, persona and persona[0]]))
        tid = hashlib.sha256(payload.encode()).hexdigest()[:16]
        return {
            "trial_id": tid, "study": self.study.name, "design": d.name, "mode": d.mode,
            "model": self.model, "params": self.params_json, "replicate": rep, "kind": kind,
            "target": target, "unit_id": str(unit[self.key]), "unit": self.unit_json[ui],
            "persona_id": persona[0] if persona else None,
            "persona": canonical(persona[1]) if persona else None,
            "cell": cell, "conditions": cond_json, "pinned": self.pinned_json,
            "split": canonical(list(split)) if split is not None else None,
            "answer": canonical(answer),
            # each synthetic call is its own prompt (real repeated prompts give equal log-probs)
            "messages": self.messages_json[:-3] + f" {tid}" + self.messages_json[-3:],
            "order_seed": None,
        }  # fmt: skip

    def finish(self, row: dict, value, label=None, probs=None, condition_values=None) -> dict:
        invalid = self.rng.random() < self.truth.invalid_rate
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
            prompt_tokens=10, completion_tokens=2, cost=0.0, latency=0.0, cache_hit=False, attempts=1,
        )  # fmt: skip
        return row

    def condition(self, unit: dict, x: float) -> dict:
        return {
            "cell": _cell_id(self.tname, x),
            "levels": {self.tname: x},
            "values": {self.tname: round(x * float(unit.get("regular_price", 1.0)), 2)},
        }

    def persona(self) -> tuple[tuple | None, float]:
        """A persona drawn for one response (and its intercept shift), when the truth has them."""
        if not self.truth.n_personas:
            return None, 0.0
        pi = int(self.rng.integers(self.truth.n_personas))
        return (f"shopper-{pi}", {"age": 20 + pi % 50, "income": 30 + (pi * 7) % 90}), self.persona_eff[pi]

    def one_condition(self, d: Design, ui: int, unit: dict) -> None:
        """Rows of a mode that shows one condition per prompt: outcomes, then probes."""
        for x in self.levels:
            c = self.condition(unit, x)
            for rep in range(self.truth.draws):
                persona, extra = self.persona()
                row = self.base_row(d, ui, rep, "outcome", self.outcome.name, self.answer_spec, [c],
                                    c["cell"], persona=persona)
                self.rows.append(self.finish(row, *self.draw_outcome(self.mean_latent(d, ui, x), extra)))
                if d.probes:
                    for cov in self.probes:
                        v = self.base_u[ui] * (1 + self.truth.leak_for(d.name) * (x - self.mean_level))
                        v *= 1 + self.truth.probe_noise * self.rng.normal()
                        prow = self.base_row(d, ui, rep, "probe", cov.name, self.probe_answers[cov.name],
                                             [c], c["cell"], persona=persona)
                        self.rows.append(self.finish(prow, round(float(v), 4)))

    def per_condition(self, d: Design, ui: int, unit: dict) -> None:
        """Rows of a mode whose prompt shows every condition (one value per condition); a
        population mode with a label outcome is asked for the share choosing the first label."""
        share = modes.get(d.mode).population and answers.get(self.outcome.answer).first_label_share
        for part in list(d.split) if d.split else [None]:
            xs = self.levels if part is None else [
                x for x in self.levels if part[0] - 1e-9 <= x <= part[1] + 1e-9]
            conds = [self.condition(unit, x) for x in xs]
            ans = dict(self.answer_spec, per_condition=True)
            if share:
                ans = {"type": "probability", "labels": [], "low": 0, "high": 1, "per_condition": True}
            for rep in range(self.truth.draws):
                cv = {}
                for c, x in zip(conds, xs, strict=True):
                    m = self.mean_latent(d, ui, x)
                    if share:
                        cv[c["cell"]] = float(np.clip(m + self.rng.normal(0, self.truth.noise_sd / 4), 0, 1))
                    else:
                        cv[c["cell"]] = self.draw_outcome(m)[0]
                row = self.base_row(d, ui, rep, "outcome", self.outcome.name, ans, conds, None, split=part)
                self.rows.append(self.finish(row, None, condition_values=canonical(cv)))

    def build(self) -> pd.DataFrame:
        for d in self.study.designs:
            for ui, unit in enumerate(self.units):
                pinned = {name: eval_expr(expr, unit, None, 1.0) for name, expr in sorted(d.pins.items())}
                self.pinned_json = canonical(pinned)
                if modes.get(d.mode).per_condition:
                    self.per_condition(d, ui, unit)
                else:
                    self.one_condition(d, ui, unit)
        return pd.DataFrame(self.rows)


def make_responses(study: Study, truth: Truth | None = None, seed: int = 0) -> pd.DataFrame:
    """A response table for `study` drawn from `truth` (see the module docstring)."""
    return _Responses(study, truth or Truth(), seed).build()


def respondent_answers(study: Study, trials: pd.DataFrame, params: dict, suffix: str = "") -> list[Answer]:
    """The synthetic respondent's parsed answer to every row of a compiled trial table.

    The real code path: the structured trial the runner sends, answered by the `synthetic/`
    provider (`llmexp.providers.respondent`, the one implementation) with the study seed,
    parsed as the runner parses it. `suffix` is appended to the trial ids the respondent
    seeds its draws from, so each suffix is an independent draw of the same trials.
    """
    levels = {t.name: list(t.levels) for t in study.treatments}
    provider = SyntheticRespondent()
    out = []
    for row in trials.to_dict("records"):
        trial = trial_from_row(row, levels)
        drawn = dict(trial, trial_id=f"{row['trial_id']}{suffix}")
        reply = provider.answer(row["model"], loads(row["messages"]), drawn, params, seed=study.seed)
        out.append(parse_answer(reply.text, trial["answer"], trial["conditions"]))
    return out


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


EFFECT_LEVELS = np.round(np.arange(0, 2.01, 0.25), 2)


def unit_effect_data(rng: np.random.Generator, n_units: int = 10, slope: float = -0.3, unit_slope_sd: float = 0.02,
                     reps: int = 3, noise: float = 0.3, one_unit: float | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(level, answer, unit) rows with a known effect: unit slopes N(slope, unit_slope_sd), unit
    intercepts N(0, 0.2), answer noise N(0, noise); `one_unit`: only unit 0 has an effect, of
    that size. The refuters' tests and their validity scenarios draw from here."""
    u = np.repeat(np.arange(n_units), len(EFFECT_LEVELS) * reps)
    x = np.tile(np.repeat(EFFECT_LEVELS, reps), n_units)
    b = slope + rng.normal(0, unit_slope_sd, n_units)
    if one_unit is not None:
        b = np.zeros(n_units)
        b[0] = one_unit
    y = rng.normal(0, 0.2, n_units)[u] + b[u] * x + rng.normal(0, noise, len(x))
    return x, y, u.astype(str)

