"""Baseline, elasticity and range scenarios for benchmarks/validity.py (issue 10, items 5, 6,
8). Every estimate comes from llmexp's own code (`_elasticity`, `compare_baseline`,
`range_sensitivity`); the data-generating processes are below, each with its known truth.

- ``point elasticity``: logit demand in log price, unit intercepts ~ N(-0.8, 0.5); the
  elasticity of the population's average share at the regular price is exactly -2.0
  (computed on 200,000 simulated units). Sampled: 10 Bernoulli answers per unit x level;
  log-prob: one probability per unit x level (the unit's true share + N(0, 0.02) prompt noise).
- ``ppml log-log``: q = 0.06 exp(0.1 z_u) p^-1.49 (never capped): constant elasticity -1.49,
  5 Bernoulli answers per cell, many zero cells (the old drop-zeros rule reported -0.63).
- ``range``: the split design's answers equal the full design's (null), or its slope is 0.03
  steeper, or its upper part answers 0.03 higher (boundary); 6 and 10 units, 2 answers per
  cell, answer noise SD 0.04. ``flagged`` is the Bonferroni flag over the two tests.
- ``baseline``: 20 humans per cell (Bernoulli), a perfect simulator (answers the true
  shares): raw MAE (truth 0; shows why the raw interval never covers), corrected MAE (truth
  0) and normalised accuracy (truth 1); a simulator off by +0.1: corrected RMSE (truth 0.1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.validity import Outcome, scenario
from llmexp.analysis._elasticity import point_elasticities, ppml_elasticity
from llmexp.analysis.baseline import compare_baseline
from llmexp.analysis.observations import build_observations
from llmexp.analysis.range import range_sensitivity
from llmexp.spec import Baseline, Design
from tests.support.synthetic_responses import Truth, human_baseline_rows, make_responses, make_study

LEVELS = np.round(np.arange(0.0, 2.01, 0.2), 1)
_BIG = -0.8 + 0.5 * np.random.default_rng(999).standard_normal(200_000)
_QB = 1 / (1 + np.exp(-_BIG))
_B = -2.0 * _QB.mean() / np.mean(_QB * (1 - _QB))  # logit slope giving elasticity -2.0


def _demand(seed: int, units: int, logprob: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    au = -0.8 + 0.5 * rng.standard_normal(units)
    rows = []
    for u in range(units):
        for p in LEVELS[1:]:
            q = 1 / (1 + np.exp(-(au[u] + _B * np.log(p))))
            y = (np.clip(q + 0.02 * rng.standard_normal(1), 0, 1) if logprob
                 else (rng.random(10) < q).astype(float))
            rows.append(pd.DataFrame(dict(unit_id=f"u{u}", level=p, y=y)))
    return pd.concat(rows, ignore_index=True)


def _point(units: int, logprob: bool):
    def run(seed: int) -> Outcome:
        r = point_elasticities(_demand(seed, units, logprob), (1.0,))[0]
        return Outcome(r["estimate"], r["ci_low"], r["ci_high"])
    return run


def _ppml(units: int):
    def run(seed: int) -> Outcome:
        rng = np.random.default_rng(seed)
        rows = []
        for u in range(units):
            a = 0.06 * np.exp(0.1 * rng.standard_normal())
            for p in LEVELS[1:]:
                rows.append(pd.DataFrame(dict(unit_id=f"u{u}", level=p,
                                              y=(rng.random(5) < a * p ** -1.49).astype(float))))
        r = ppml_elasticity(pd.concat(rows, ignore_index=True))
        return Outcome(r["estimate"], r["ci_low"], r["ci_high"])
    return run


for _u in (3, 6, 10, 40):
    for _lp in (False, True):
        scenario(name=f"elasticity at 1.0, {_u} units", group="baseline",
                 estimator="point elasticity", truth=-2.0, run=_point(_u, _lp), units=_u,
                 answers="log-prob" if _lp else "sampled")
for _u in (6, 10, 40):
    scenario(name=f"constant elasticity, {_u} units", group="baseline", estimator="ppml log-log",
             truth=-1.49, run=_ppml(_u), units=_u, answers="sampled")


def _range_study(units: int):
    return make_study(n_units=units, covariates=(), designs=(
        Design(name="agg", mode="aggregate"),
        Design(name="agg_split", mode="aggregate", split=((0.0, 1.0), (1.0, 2.0)))))


def _range(units: int, slope: float, boundary: float, what: str):
    study = _range_study(units)

    def run(seed: int) -> Outcome:
        r = make_responses(study, Truth(noise_sd=0.04, draws=2,
                                        design_slope={"agg_split": slope}), seed=seed)
        obs = build_observations(study, r)
        if boundary:
            t = obs.table
            up = (t["design"] == "agg_split") & t["split"].astype(str).str.startswith("[1.0")
            t.loc[up & (t["kind"] == "outcome"), "y"] += boundary
        x = range_sensitivity(study, obs, n_boot=400, seed=seed)[0].iloc[0]
        if what == "boundary_diff":
            return Outcome(x["boundary_diff"], x["boundary_diff_ci_low"],
                           x["boundary_diff_ci_high"], x["boundary_p"],
                           flag=bool(x["boundary_p"] < 0.025))
        return Outcome(x["mean_abs_diff"] - x["noise_floor"], p_value=x["range_p"],
                       flag=bool(x["flagged"]))
    return run


for _u in (6, 10):
    scenario(name=f"no range effect, {_u} units", group="baseline", estimator="range flag",
             truth=0.0, null=True, run=_range(_u, 0.0, 0.0, "flag"), units=_u, answers="sampled")
    scenario(name=f"split slope +0.03, {_u} units", group="baseline", estimator="range flag",
             truth=0.0, run=_range(_u, 0.03, 0.0, "flag"), units=_u, answers="sampled")
    scenario(name=f"no boundary gap, {_u} units", group="baseline", estimator="boundary_diff",
             truth=0.0, null=True, run=_range(_u, 0.0, 0.0, "boundary_diff"), units=_u,
             answers="sampled")
    scenario(name=f"upper part +0.03, {_u} units", group="baseline", estimator="boundary_diff",
             truth=-0.03, run=_range(_u, 0.0, 0.03, "boundary_diff"), units=_u,
             answers="sampled")

BASE_LEVELS = (0.2, 0.6, 1.0, 1.4, 1.8)
HUMAN = Truth(intercept=0.8, slope=-0.3)


def _baseline(units: int, offset: float, column: str):
    study = make_study(n_units=units, levels=BASE_LEVELS, covariates=(),
                       designs=(Design(name="blind", mode="blind"),))

    def run(seed: int) -> Outcome:
        base = Baseline(source="h.csv", unit_column="product_id",
                        treatments={"price": "price_level"}, outcomes={"purchase": "buy"},
                        retest={"purchase": "buy_retest"},
                        rows=human_baseline_rows(study, HUMAN, n_per_cell=20, seed=seed))
        st = study.model_copy(update={"baseline": base})
        rows = []
        for u in st.units.rows:
            for lv in BASE_LEVELS:
                m = float(np.clip(HUMAN.intercept + HUMAN.slope * lv, 0.01, 0.99)) + offset
                rows.append(dict(design="blind", mode="blind", model="m", target="purchase",
                                 unit_id=u["product_id"], cell=f"price={lv}", level=lv, n=20,
                                 mean=m, sd=0.0, ci_low=m, ci_high=m, interval="t",
                                 lvl__price=lv))
        s = compare_baseline(st, pd.DataFrame(rows), pd.DataFrame(), n_boot=400,
                             seed=seed)["baseline_summary"].iloc[0]
        if column == "mae":
            return Outcome(s["mae"], s["mae_ci_low"], s["mae_ci_high"])
        if column == "mae_corrected":
            return Outcome(s["mae_corrected"], s["mae_corrected_ci_low"],
                           s["mae_corrected_ci_high"])
        return Outcome(s[column])
    return run


for _u in (6, 10):
    scenario(name=f"perfect simulator, raw MAE, {_u} units", group="baseline",
             estimator="mae (raw)", truth=0.0, run=_baseline(_u, 0.0, "mae"), units=_u,
             answers="humans n=20")
    scenario(name=f"perfect simulator, {_u} units", group="baseline", estimator="mae_corrected",
             truth=0.0, run=_baseline(_u, 0.0, "mae_corrected"), units=_u, answers="humans n=20")
    scenario(name=f"perfect simulator, {_u} units", group="baseline",
             estimator="accuracy_normalised", truth=1.0,
             run=_baseline(_u, 0.0, "accuracy_normalised"), units=_u, answers="humans n=20")
    scenario(name=f"simulator +0.1, {_u} units", group="baseline", estimator="rmse_corrected",
             truth=0.1, run=_baseline(_u, 0.1, "rmse_corrected"), units=_u,
             answers="humans n=20")
