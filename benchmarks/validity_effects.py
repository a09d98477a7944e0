"""Effects scenarios for benchmarks/validity.py (known truth, llmexp's own `estimate_effects`).

Data: `tests.support.synthetic_responses` (a pricing study, 11 price levels 0..2 x the regular
price, a binary purchase outcome). Units differ in intercept AND slope (unit slope SD 0.05),
so the population slope differs from these units' slope and ignoring clustering undercovers.

- sampled answers: 3 Bernoulli answers per unit x level;
- log-prob answers: one deterministic probability per unit x level (a prompt asked again gives
  the same number), with a prompt-level deviation (SD 0.05) around the unit's line.

Truth: the population slope (per 1.0 of the normalised price), the design difference in slopes
(interaction), the two-level contrast (2x - 1x regular price).
"""

from __future__ import annotations

import math

from benchmarks.validity import Outcome, scenario
from llmexp.analysis.effects import estimate_effects
from llmexp.analysis.observations import build_observations
from llmexp.spec import Design
from tests.support.synthetic_responses import Truth, make_responses, make_study

BLIND = (Design(name="blind", mode="blind"),)
TWO = (Design(name="blind", mode="blind"), Design(name="unblinded", mode="unblinded"))


def _truth(slope: float, logprob: bool, **kw) -> Truth:
    base = dict(intercept=0.75 if slope else 0.5, slope=slope, unit_intercept_sd=0.05,
                unit_slope_sd=0.05)
    if logprob:
        return Truth(**base, noise_sd=0.05, draws=1, logprobs=True, **kw)
    return Truth(**base, draws=3, **kw)


def _row(eff, scope: str = "design", design: str = "blind") -> Outcome:
    r = eff[(eff["scope"] == scope) & (eff["method"] == "ols")]
    if scope == "design":
        r = r[r["design"] == design]
    if r.empty:
        return Outcome()
    r = r.iloc[0]
    return Outcome(float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"]), float(r["p_value"]))


def _slope_runner(n_units: int, slope: float, logprob: bool, levels=None, designs=BLIND,
                  scope: str = "design", design_slope: dict | None = None):
    kw = {"levels": levels} if levels else {}
    study = make_study(n_units=n_units, designs=designs, covariates=(), **kw)
    truth = _truth(slope, logprob, design_slope=design_slope or {})

    def run(seed: int) -> Outcome:
        obs = build_observations(study, make_responses(study, truth, seed=seed))
        eff = estimate_effects(study, obs, methods=("ols",), interaction=(scope == "interaction"))
        return _row(eff, scope)

    return run


for _units in (3, 6, 10, 40):
    for _answers, _lp in (("sampled", False), ("log-prob", True)):
        for _slope in (0.0, -0.25):
            scenario(name=f"slope {'null' if _slope == 0 else 'effect'} {_units}u {_answers}",
                     group="effects", estimator="effect (ols, CR2)", truth=_slope,
                     run=_slope_runner(_units, _slope, _lp), null=(_slope == 0), units=_units,
                     answers=_answers)

for _units in (6, 40):
    for _d in (0.0, 0.15):  # unblinded slope -0.10: no clipping of the linear probability
        scenario(name=f"design difference {'null' if _d == 0 else 'effect'} {_units}u",
                 group="effects", estimator="interaction (ols, CR2)", truth=_d,
                 run=_slope_runner(_units, -0.25, False, designs=TWO, scope="interaction",
                                   design_slope={"unblinded": _d}),
                 null=(_d == 0), units=_units, answers="sampled")

for _units in (6, 10):
    scenario(name=f"two-level contrast {_units}u", group="effects",
             estimator="contrast 2x vs 1x (ols, CR2)", truth=-0.25,
             run=_slope_runner(_units, -0.25, False, levels=(1.0, 2.0)), units=_units,
             answers="sampled")



def _categorical_runner(n_units: int, probs: dict, what: str):
    from llmexp.analysis._categorical import independence, share_difference_rows
    from tests.analysis.test_effects_categorical import decoy_responses, decoy_study

    study = decoy_study(n_units)
    out = study.outcomes[0]

    def run(seed: int) -> Outcome:
        data = build_observations(study, decoy_responses(study, probs, draws=10, seed=seed)).outcomes()
        if what == "independence":
            p = float(independence(study, data, out, 0.05).iloc[0]["p_value"])
            return Outcome(estimate=0.0 if math.isfinite(p) else float("nan"), p_value=p)
        rows = [r for r in share_difference_rows(study, data, out, "auto", 0.05) if r["option"] == "A"]
        r = rows[0]
        return Outcome(r["estimate"], r["ci_low"], r["ci_high"], r["p_value"])

    return run


_EFFECT = {"absent": (0.4, 0.5, 0.1), "present": (0.6, 0.3, 0.1)}
_NULL = {"absent": (0.4, 0.5, 0.1), "present": (0.4, 0.5, 0.1)}
for _units in (3, 6, 10):
    scenario(name=f"share difference A {_units}u", group="effects",
             estimator="categorical share diff (CR2)", truth=0.2,
             run=_categorical_runner(_units, _EFFECT, "share"), units=_units, answers="sampled")
for _units in (6, 10):
    for _nm, _pr in (("null", _NULL), ("effect", _EFFECT)):
        scenario(name=f"independence {_nm} {_units}u", group="effects",
                 estimator="categorical independence (Wald)", truth=0.0,
                 run=_categorical_runner(_units, _pr, "independence"), null=(_nm == "null"),
                 units=_units, answers="sampled")


def _logit_runner(n_units: int, beta: float, draws: int = 10):
    """Logistic truth: P(buy) = expit(a_u + (beta + b_u) x), a_u ~ N(1, 0.3), b_u ~ N(0, 0.1);
    the unit-fixed-effects logit estimates beta (the conditional log-odds slope)."""
    import numpy as np

    study = make_study(n_units=n_units, designs=BLIND, covariates=())
    template = make_responses(study, Truth(draws=draws), seed=0)
    x = template["cell"].str.split("=").str[1].astype(float).to_numpy()
    units = template["unit_id"].to_numpy()
    codes = {u: i for i, u in enumerate(sorted(set(units)))}
    ui = np.array([codes[u] for u in units])

    def run(seed: int) -> Outcome:
        rng = np.random.default_rng(seed)
        a, b = rng.normal(1.0, 0.3, n_units), rng.normal(0.0, 0.1, n_units)
        p = 1 / (1 + np.exp(-(a[ui] + (beta + b[ui]) * x)))
        y = (rng.random(len(p)) < p).astype(float)
        df = template.assign(value=y, label=np.where(y == 1, "purchase", "not purchase"))
        eff = estimate_effects(study, build_observations(study, df), methods=("logit",), interaction=False)
        r = eff.iloc[0]
        return Outcome(float(r["estimate"]), float(r["ci_low"]), float(r["ci_high"]), float(r["p_value"]))

    return run


for _units in (3, 6, 10, 40):
    for _b in (0.0, -1.0):
        scenario(name=f"logit slope {'null' if _b == 0 else 'effect'} {_units}u", group="effects",
                 estimator="effect (logit, CR2)", truth=_b, run=_logit_runner(_units, _b),
                 null=(_b == 0), units=_units, answers="sampled")
