"""Statistical properties of the analysis layer on synthetic data with known truth."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from llmexp.analysis.cells import pooled_cells, unit_cells
from llmexp.analysis.demand_curve import demand_curves
from llmexp.analysis.effects import estimate_effects
from llmexp.analysis.focalism import focalism
from llmexp.analysis.leakage import leakage
from llmexp.analysis.observations import build_observations
from llmexp.analysis.range import range_sensitivity
from llmexp.spec import Design
from tests.support.synthetic_responses import Truth, make_responses, make_study, price_expr

PIN = {"competitor_price": price_expr().args[1]}  # competitor price = regular price


def _slope_row(study, obs, design="blind", method="ols"):
    eff = estimate_effects(study, obs, methods=(method,), interaction=False)
    return eff[(eff["design"] == design) & (eff["method"] == method)].iloc[0]


def test_effect_ci_coverage_near_nominal():
    """95% cluster-robust CIs for the slope cover the true population slope ~95% of the time
    (250 seeds, random unit intercepts AND slopes, so ignoring clustering would undercover)."""
    study = make_study(n_units=20, designs=(Design(name="blind", mode="blind"),),
                       outcome_type="number", covariates=())
    true = -0.3
    truth = Truth(intercept=1.0, slope=true, unit_intercept_sd=0.3, unit_slope_sd=0.15,
                  noise_sd=0.3, draws=2)
    hits, naive_hits, n = 0, 0, 250
    for seed in range(n):
        obs = build_observations(study, make_responses(study, truth, seed=seed))
        row = _slope_row(study, obs)
        assert row["se_type"] == "cluster(unit)"
        hits += row["ci_low"] <= true <= row["ci_high"]
        naive = estimate_effects(study, obs, methods=("ols",), interaction=False,
                                 cluster="none").iloc[0]
        naive_hits += naive["ci_low"] <= true <= naive["ci_high"]
    coverage = hits / n
    assert 0.91 <= coverage <= 0.985, coverage
    # the test has teeth: heteroskedasticity-only SEs ignore the unit slopes and undercover
    assert naive_hits / n < 0.85, naive_hits / n


def test_regression_matches_statsmodels_directly():
    study = make_study(n_units=12, designs=(Design(name="blind", mode="blind"),
                                            Design(name="unblinded", mode="unblinded")),
                       covariates=())
    truth = Truth(draws=3, design_slope={"unblinded": -0.15})
    obs = build_observations(study, make_responses(study, truth, seed=3))
    eff = estimate_effects(study, obs)
    d = obs.outcomes()
    blind = d[d["design"] == "blind"]
    groups = blind["unit_id"].astype("category").cat.codes.to_numpy()
    ols = smf.ols("y ~ level + C(unit_id)", data=blind).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    row = eff[(eff["design"] == "blind") & (eff["method"] == "ols")].iloc[0]
    assert row["estimate"] == pytest.approx(ols.params["level"], rel=1e-10)
    # issue 10 (item 12), a deliberate change: the conventional cluster SE (`se_cr1`) does not
    # count the unit dummies nested in the clusters (Cameron & Miller), i.e. it equals
    # statsmodels' cluster SE of the within (unit-demeaned, FWL) regression; statsmodels'
    # default on the dummy regression counts them and is larger by sqrt((N-2)/(N-K)).
    dm = blind.assign(yd=blind["y"] - blind.groupby("unit_id")["y"].transform("mean"),
                      ld=blind["level"] - blind.groupby("unit_id")["level"].transform("mean"))
    within = smf.ols("yd ~ ld", data=dm).fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    assert row["se_cr1"] == pytest.approx(within.bse["ld"], rel=1e-10)
    n, k_all = len(blind), len(ols.params)
    assert row["se_cr1"] == pytest.approx(ols.bse["level"] * np.sqrt((n - k_all) / (n - 2)), rel=1e-10)
    # the interval is CR2 / Bell-McCaffrey (inference.py; tested against its closed forms in
    # tests/analysis/test_effects_inference.py)
    assert row["inference"].startswith("CR2") and row["estimand"] == "population of units"
    glm = smf.glm("y ~ level + C(unit_id)", data=blind, family=sm.families.Binomial()).fit(
        cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
    lrow = eff[(eff["design"] == "blind") & (eff["method"] == "logit")].iloc[0]
    assert lrow["estimate"] == pytest.approx(glm.params["level"], rel=1e-8)
    # statsmodels' GLM cluster SE (its GLM small-sample factor is not its OLS one) agrees
    assert lrow["se_cr1"] == pytest.approx(glm.bse["level"], rel=1e-8)
    # the design interaction is the slope difference of a pooled model
    both = d.copy()
    g2 = both["unit_id"].astype("category").cat.codes.to_numpy()
    inter = smf.ols("y ~ level * C(design, Treatment(reference='blind')) + C(unit_id)",
                    data=both).fit(cov_type="cluster", cov_kwds={"groups": g2}, use_t=True)
    term = "level:C(design, Treatment(reference='blind'))[T.unblinded]"
    irow = eff[eff["scope"] == "interaction"].iloc[0]
    assert irow["estimate"] == pytest.approx(inter.params[term], rel=1e-10)
    n2, k2 = len(both), len(inter.params)
    assert irow["se_cr1"] == pytest.approx(inter.bse[term] * np.sqrt((n2 - k2) / (n2 - 4)), rel=1e-10)


def test_interaction_detects_design_difference():
    study = make_study(n_units=20, designs=(Design(name="blind", mode="blind"),
                                            Design(name="unblinded", mode="unblinded")),
                       outcome_type="number", covariates=())
    truth = Truth(slope=-0.1, design_slope={"unblinded": -0.4}, noise_sd=0.3, draws=2)
    eff = estimate_effects(study, build_observations(study, make_responses(study, truth, seed=1)))
    row = eff[eff["scope"] == "interaction"].iloc[0]
    assert row["ci_low"] <= -0.4 <= row["ci_high"]
    assert row["p_value"] < 0.001


def _leak_flags(leak: float, seeds) -> list[bool]:
    study = make_study(n_units=15, designs=(Design(name="blind", mode="blind"),))
    flags = []
    for seed in seeds:
        truth = Truth(leak=leak, draws=2, probe_noise=0.15)
        obs = build_observations(study, make_responses(study, truth, seed=seed))
        tab, _ = leakage(study, obs)
        flags.append(bool(tab.iloc[0]["flagged"]))
    return flags


def test_leakage_detected_when_present():
    study = make_study(n_units=15, designs=(Design(name="blind", mode="blind"),
                                            Design(name="unblinded", mode="unblinded")))
    truth = Truth(leak={"blind": 0.2, "unblinded": 0.0}, draws=2, probe_noise=0.15)
    obs = build_observations(study, make_responses(study, truth, seed=11))
    tab, pts = leakage(study, obs)
    b = tab.set_index("design")
    assert b.loc["blind", "flagged"]
    assert b.loc["blind", "ci_low"] <= 0.2 <= b.loc["blind", "ci_high"]
    assert b.loc["blind", "correlation"] > 0.3
    assert abs(b.loc["unblinded", "leakage_index"]) < 0.05
    assert sum(_leak_flags(0.1, range(20))) >= 19


def test_leakage_false_positive_rate():
    flags = _leak_flags(0.0, range(200))
    # nominal 5%; + 2.5 Monte Carlo SEs (sqrt(.05 * .95 / 200) = 0.0154)
    assert np.mean(flags) <= 0.05 + 2.5 * 0.0154, np.mean(flags)


def _focal(step: float, seed: int, outcome_type="number", n_units: int = 12):
    study = make_study(n_units=n_units, designs=(Design(name="blind", mode="blind"),
                                            Design(name="fixed", mode="blind", pins=PIN)),
                       outcome_type=outcome_type, covariates=(), analyses=("focalism",))
    truth = Truth(slope=-0.3, step=step, noise_sd=0.3, draws=2)
    obs = build_observations(study, make_responses(study, truth, seed=seed))
    tab, thr = focalism(study, obs)
    return tab.set_index("design"), thr


def test_focalism_detected_when_set():
    tab, thr = _focal(0.3, seed=5)
    assert set(thr["threshold_level"]) == {1.0}
    f = tab.loc["fixed"]
    assert f["role"] == "pinned" and not f["flagged"]  # one design's jump is descriptive
    assert f["ci_low"] <= 0.3 <= f["ci_high"]
    d = tab.loc["fixed - blind"]  # the test: pinned minus unpinned jump (issue 10)
    assert d["role"] == "difference" and d["ci_low"] <= 0.3 <= d["ci_high"]
    assert d["jump"] > 0.15 and 0.3 < d["power_step"] < 1  # 12 units x 2 draws: ~50% power at 0.3
    # a cubic absorbs ~87% of a pure step over 11 levels, so partial R^2 is modest by design
    assert f["step_share"] > 0.02
    assert f["step_share"] > 3 * tab.loc["blind", "step_share"]
    # the difference in jumps subtracts a second noisy jump: 30 units give it the power the
    # single-design jump had at 12
    assert sum(bool(_focal(0.5, s, n_units=30)[0].loc["fixed - blind", "flagged"]) for s in range(20)) >= 18


def test_focalism_not_detected_when_zero():
    flags = [bool(_focal(0.0, s)[0].loc["fixed - blind", "flagged"]) for s in range(100)]
    # nominal 5%; + 2.5 Monte Carlo SEs (0.022)
    assert np.mean(flags) <= 0.05 + 2.5 * 0.022, np.mean(flags)


def test_inverted_u_and_peak():
    study = make_study(n_units=15, designs=(Design(name="blind", mode="blind"),), covariates=())
    truth = Truth(intercept=0.3, slope=0.8, quad=-0.4, logprobs=True, noise_sd=0.1, draws=3,
                  unit_slope_sd=0.02, unit_intercept_sd=0.02)  # p = .3 + .8x - .4x^2, peak 1.0
    obs = build_observations(study, make_responses(study, truth, seed=2))
    res = demand_curves(study, obs, unit_cells(obs), pooled_cells(obs))
    pooled = res["demand_summary"].query("scope == 'pooled'").iloc[0]
    assert pooled["inverted_u"]
    assert pooled["peak_ci_low"] <= 1.0 <= pooled["peak_ci_high"]
    assert pooled["increases"] >= 1
    down = make_responses(study, Truth(logprobs=True, noise_sd=0.1, draws=3), seed=2)
    obs2 = build_observations(study, down)
    res2 = demand_curves(study, obs2, unit_cells(obs2), pooled_cells(obs2))
    p2 = res2["demand_summary"].query("scope == 'pooled'").iloc[0]
    assert not p2["inverted_u"]
    assert p2["arc_elasticity"] < 0 and p2["loglog_elasticity"] < 0


def test_range_sensitivity_measures_the_gap():
    study = make_study(n_units=10, covariates=(), designs=(
        Design(name="agg", mode="aggregate"),
        Design(name="agg_split", mode="aggregate", split=((0.0, 1.0), (1.0, 2.0)))))
    same = range_sensitivity(study, build_observations(
        study, make_responses(study, Truth(noise_sd=0.04), seed=1)))[0].iloc[0]
    shifted = range_sensitivity(study, build_observations(study, make_responses(
        study, Truth(noise_sd=0.04, design_slope={"agg_split": 0.1}), seed=1)))[0].iloc[0]
    # true mean |diff| with a slope offset of 0.1 over levels 0..2 is 0.1 * mean(level) = 0.1
    assert same["mean_abs_diff"] < 0.03
    assert shifted["mad_ci_low"] <= 0.1 + 0.02 and shifted["mean_abs_diff"] > 0.07
    assert shifted["mean_diff"] > 0.07
