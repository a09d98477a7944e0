"""Demand curves: honest per-unit tests and elasticities where the literature measures them
(issue 10, items 1 and 6). Truth is known: logit demand in log price whose elasticity of the
average share at the regular price (level 1.0) is exactly -2.0 for the population of units."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis._elasticity import adjacent_arc, arc_elasticity, point_elasticities, ppml_elasticity
from llmexp.analysis.cells import pooled_cells, unit_cells
from llmexp.analysis.demand_curve import _increase_tests, demand_curves
from llmexp.analysis.observations import build_observations
from llmexp.spec import Design
from tests.support.synthetic_responses import Truth, make_responses, make_study

LEVELS = np.round(np.arange(0.0, 2.01, 0.2), 1)
_BIG = -0.8 + 0.5 * np.random.default_rng(999).standard_normal(200_000)
_QB = 1 / (1 + np.exp(-_BIG))


def logit_demand(seed: int, units: int = 6, n: int = 10, target: float = -2.0) -> pd.DataFrame:
    """Observations (unit_id, level, y) of Bernoulli answers; unit intercepts ~ N(-0.8, 0.5)."""
    rng = np.random.default_rng(seed)
    b = target * _QB.mean() / np.mean(_QB * (1 - _QB))  # population elasticity at p=1 is target
    au = -0.8 + 0.5 * rng.standard_normal(units)
    rows = []
    for u in range(units):
        for p in LEVELS:
            q = 1 / (1 + np.exp(-(au[u] + b * np.log(p)))) if p > 0 else 0.9
            rows.append(pd.DataFrame(dict(unit_id=f"u{u}", level=p,
                                          y=(rng.random(n) < q).astype(float))))
    return pd.concat(rows, ignore_index=True)


def test_point_elasticity_covers_minus_two_at_the_regular_price():
    runs = [point_elasticities(logit_demand(s), (1.0,))[0] for s in range(40)]
    est = np.array([r["estimate"] for r in runs])
    cover = np.mean([r["ci_low"] <= -2.0 <= r["ci_high"] for r in runs])
    # 40 sims: nominal 0.95, Monte Carlo SE 0.034 (the benchmark runs 500)
    assert cover >= 0.85, cover
    assert abs(est.mean() + 2.0) < 0.1, est.mean()
    # the endpoint arc over 20%-200% cannot reach it (the issue's -1.15): why it was dropped
    d = logit_demand(0, units=40, n=200)
    m = d[d["level"] > 0].groupby("level")["y"].mean()
    assert arc_elasticity(m.index[0], m.iloc[0], m.index[-1], m.iloc[-1]) > -1.3
    # and the interval can fail: a demand with elasticity -1.0 is told apart from -2.0
    other = [point_elasticities(logit_demand(s, target=-1.0), (1.0,))[0] for s in range(10)]
    assert np.mean([not (r["ci_low"] <= -2.0 <= r["ci_high"]) for r in other]) >= 0.8


def test_point_elasticity_matches_statsmodels_and_refuses_honestly():
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    d = logit_demand(3)
    paid = d[d["level"] > 0].assign(L=lambda t: np.log(t["level"]))
    res = smf.glm("y ~ 0 + L + I(L ** 2) + C(unit_id)", data=paid,
                  family=sm.families.Binomial()).fit()
    b1, b2 = res.params["L"], res.params["I(L ** 2)"]
    q = 1 / (1 + np.exp(-res.params.filter(like="unit_id").to_numpy()))
    truth = float(np.mean(q * (1 - q)) * b1 / np.mean(q))
    assert b2 == b2  # fitted
    got = point_elasticities(d, (1.0,))[0]
    assert got["estimate"] == pytest.approx(truth, rel=1e-6)
    one = point_elasticities(d[d["unit_id"] == "u0"], (1.0,))[0]
    assert np.isfinite(one["estimate"]) and np.isnan(one["ci_low"]) and "one unit" in one["reason"]
    flat = point_elasticities(d.assign(y=1.0), (1.0,))[0]
    assert np.isnan(flat["estimate"]) and "no variation" in flat["reason"]
    outside = point_elasticities(d, (3.0,))[0]
    assert np.isnan(outside["estimate"]) and "outside" in outside["reason"]


def test_ppml_keeps_zero_shares_and_covers_a_constant_elasticity():
    """q = exp(a_u) p^-1.49 (capped below 1), many zero cells: dropping them biases log-log
    towards 0 (the issue's -0.63); PPML keeps them."""
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    def draw(seed):
        rng = np.random.default_rng(seed)
        rows = []
        for u in range(10):
            a = np.log(0.25) + 0.2 * rng.standard_normal()
            for p in LEVELS[1:]:
                q = min(np.exp(a) * p ** -1.49, 0.95)
                rows.append(pd.DataFrame(dict(unit_id=f"u{u}", level=p,
                                              y=(rng.random(3) < q).astype(float))))
        return pd.concat(rows, ignore_index=True)

    runs = [ppml_elasticity(draw(s)) for s in range(40)]
    # truth -1.49 except where the cap binds (levels 0.2-0.4 for some units): check the
    # estimator against its own large-sample value rather than the nominal one
    big = ppml_elasticity(pd.concat([draw(1000 + s).assign(unit_id=lambda t, s=s: t["unit_id"] + f"_{s}")
                                     for s in range(30)]))["estimate"]
    cover = np.mean([r["ci_low"] <= big <= r["ci_high"] for r in runs])
    assert cover >= 0.85, cover
    assert all(r["zero_cells"] > 0 for r in runs)
    d = draw(0)
    cells = d.groupby(["unit_id", "level"], as_index=False)["y"].mean()
    dropped = smf.ols("np.log(y) ~ np.log(level) + C(unit_id)", data=cells[cells["y"] > 0]).fit()
    assert dropped.params["np.log(level)"] > big + 0.2  # the old rule's bias, for the record
    # equals statsmodels' GLM Poisson on the observations, cluster-robust by unit
    codes = pd.factorize(d["unit_id"])[0]
    ref = smf.glm("y ~ np.log(level) + C(unit_id)", data=d, family=sm.families.Poisson()).fit(
        cov_type="cluster", cov_kwds={"groups": codes})
    r = ppml_elasticity(d)
    assert r["estimate"] == pytest.approx(ref.params["np.log(level)"], rel=1e-7)
    assert r["se"] == pytest.approx(ref.bse["np.log(level)"], rel=1e-5)


def test_adjacent_arc_is_between_neighbours_of_the_regular_price():
    p = np.array([0.0, 0.5, 1.0, 1.5])
    q = np.array([0.9, 0.8, 0.5, 0.2])
    e, pair = adjacent_arc(p, q)
    assert pair == "0.5-1" and e == pytest.approx(arc_elasticity(0.5, 0.8, 1.0, 0.5))


def test_increase_tests_never_count_untestable_pairs():
    qp = np.array([0.0, 1.0, 0.0, 1.0])
    # one answer per cell: every pair untestable, no infinite z, count missing
    one = _increase_tests(qp, np.full(4, np.nan), np.ones(4), binary=True, alpha=0.05)
    assert one["testable_pairs"] == 0 and np.isnan(one["significant_increases"])
    assert one["increases"] == 2 and "untestable" in one["increase_test_note"]
    # the old rule (missing SE read as 0) called both rises significant: z = inf
    old_z = np.where(np.diff(qp) > 0, np.inf, 0)
    assert (old_z > 1.96).sum() == 2
    # ten answers per cell: 0/10 -> 10/10 is a real, testable rise
    ten = _increase_tests(qp, np.zeros(4), np.full(4, 10.0), binary=True, alpha=0.05)
    assert ten["testable_pairs"] == 3 and ten["significant_increases"] == 2
    # deterministic answers with no spread that differ: untestable, not significant
    det = _increase_tests(np.array([0.2, 0.3]), np.zeros(2), np.full(2, 5.0), binary=False,
                          alpha=0.05)
    assert det["testable_pairs"] == 0 and np.isnan(det["significant_increases"])


def test_demand_curves_report_testable_pairs_and_the_point_elasticity():
    study = make_study(n_units=6, designs=(Design(name="blind", mode="blind"),), covariates=())
    obs = build_observations(study, make_responses(study, Truth(draws=1), seed=0))
    res = demand_curves(study, obs, unit_cells(obs), pooled_cells(obs))
    units = res["demand_summary"].query("scope == 'unit'")
    assert (units["testable_pairs"] == 0).all() and units["significant_increases"].isna().all()
    pooled = res["demand_summary"].query("scope == 'pooled'").iloc[0]
    assert pooled["units_testable"] == 0 and pooled["units_total"] == 6
    assert np.isnan(pooled["units_with_significant_increase"])
    assert pooled["point_level"] == 1.0 and np.isfinite(pooled["point_elasticity"])
    assert pooled["point_ci_low"] < pooled["point_elasticity"] < pooled["point_ci_high"]
    assert pooled["loglog_dropped"] == 0 and pooled["arc_levels"] == "0.8-1"
    el = res["demand_elasticities"]
    assert set(el["level"]) == {round(0.2 * i, 1) for i in range(1, 11)}


def test_many_units_use_a_grouped_jackknife():
    from llmexp.analysis import _elasticity

    d = logit_demand(1, units=_elasticity.MAX_JACKKNIFE_GROUPS + 5, n=3)
    r = point_elasticities(d, (1.0,))[0]
    assert r["n_units"] == 45 and r["ci_low"] < r["estimate"] < r["ci_high"]
    assert r["ci_low"] < -2.0 < r["ci_high"]
