"""Honest inference for effects at any number of units (issue 10, items 1, 2, 4, 12)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats

from llmexp.analysis.effects import estimate_effects
from llmexp.analysis.inference import cr2, t_rows
from llmexp.analysis.observations import build_observations
from llmexp.spec import Design
from tests.support.synthetic_responses import Truth, make_responses, make_study

BLIND = (Design(name="blind", mode="blind"),)


def _panel(rng, n_units: int, per: int = 11, reps: int = 1, slope_sd: float = 0.2,
           noise: float = 0.3, slope: float = -0.3) -> pd.DataFrame:
    units = np.repeat(np.arange(n_units), per * reps)
    x = np.tile(np.repeat(np.linspace(0, 2, per), reps), n_units)
    b = slope + rng.normal(0, slope_sd, n_units)
    a = rng.normal(0, 1, n_units)
    y = a[units] + b[units] * x + rng.normal(0, noise, len(x))
    return pd.DataFrame({"unit_id": units, "level": x, "y": y})


def _fit(d: pd.DataFrame):
    res = smf.ols("y ~ level + C(unit_id)", data=d).fit()
    j = list(res.params.index).index("level")
    return res, j


def _fast_fit(d: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, float]:
    """(X, residuals, slope) of y ~ level + unit dummies, by numpy (the same OLS)."""
    u = d["unit_id"].to_numpy()
    X = np.column_stack([d["level"].to_numpy()] + [(u == k).astype(float) for k in np.unique(u)])
    beta, *_ = np.linalg.lstsq(X, d["y"].to_numpy(), rcond=None)
    return X, d["y"].to_numpy() - X @ beta, float(beta[0])


def test_cr2_equals_the_unit_slope_t_test_in_a_balanced_panel():
    """Closed form: with unit fixed effects in a balanced panel clustered by unit, CR2 is the
    standard error of the mean of the per-unit OLS slopes and Bell-McCaffrey's df is G - 1.
    CR1 (statsmodels' default) is not: the check can tell them apart."""
    d = _panel(np.random.default_rng(1), 5, reps=3)
    res, j = _fit(d)
    ci = cr2(res.model.exog, res.resid.to_numpy(), d["unit_id"].to_numpy(), which=[j])
    slopes = [np.polyfit(g["level"], g["y"], 1)[0] for _, g in d.groupby("unit_id")]
    assert res.params.iloc[j] == pytest.approx(np.mean(slopes), rel=1e-10)
    assert np.sqrt(ci.vcov[j, j]) == pytest.approx(np.std(slopes, ddof=1) / np.sqrt(5), rel=1e-10)
    assert ci.df[j] == pytest.approx(4.0, rel=1e-8)
    sm_cr1 = smf.ols("y ~ level + C(unit_id)", data=d).fit(
        cov_type="cluster", cov_kwds={"groups": d["unit_id"].to_numpy()}).bse["level"]
    assert abs(sm_cr1 - np.sqrt(ci.vcov[j, j])) > 1e-3 * sm_cr1


def test_cr1_does_not_count_nested_unit_dummies():
    """CR1 = statsmodels' cluster SE of the within (demeaned) regression (Cameron & Miller)."""
    d = _panel(np.random.default_rng(2), 4, reps=2)
    res, j = _fit(d)
    ci = cr2(res.model.exog, res.resid.to_numpy(), d["unit_id"].to_numpy(), which=[j])
    dm = d.assign(yd=d["y"] - d.groupby("unit_id")["y"].transform("mean"),
                  ld=d["level"] - d.groupby("unit_id")["level"].transform("mean"))
    within = smf.ols("yd ~ ld", data=dm).fit(cov_type="cluster",
                                             cov_kwds={"groups": d["unit_id"].to_numpy()})
    assert np.sqrt(ci.vcov_cr1[j, j]) == pytest.approx(within.bse["ld"], rel=1e-10)


@pytest.mark.parametrize("n_units", [3, 6])
def test_cr2_covers_the_population_slope_with_few_units(n_units):
    """400 panels with unit-specific slopes: CR2 + t(BM df) covers ~95% at 3 and 6 units
    (one deterministic answer per cell, like log-prob answers); a normal interval on the same
    SE (what a large-sample method gives) undercovers visibly at 3 units."""
    rng = np.random.default_rng(10 + n_units)
    hits = naive = 0
    n = 400
    for _ in range(n):
        d = _panel(rng, n_units)
        X, resid, b = _fast_fit(d)
        ci = cr2(X, resid, d["unit_id"].to_numpy(), which=[0])
        se = np.sqrt(ci.vcov[0, 0])
        lo, hi, _ = t_rows(np.array([b]), np.array([se]), ci.df[[0]], 0.05)
        hits += lo[0] <= -0.3 <= hi[0]
        naive += abs(b + 0.3) <= stats.norm.ppf(0.975) * se
    assert 0.925 <= hits / n <= 0.975, hits / n
    if n_units == 3:
        assert naive / n < 0.89, naive / n


def _eff(study, truth, seed=0, **kw):
    return estimate_effects(study, build_observations(study, make_responses(study, truth, seed=seed)),
                            **kw)


def test_effects_state_estimand_and_inference_with_no_switch_at_ten_units():
    for n_units in (3, 9, 10, 12):
        study = make_study(n_units=n_units, designs=BLIND, covariates=())
        e = _eff(study, Truth(draws=2), interaction=False)
        for r in e.itertuples():
            assert r.estimand == "population of units" and r.inference.startswith("CR2"), r
            assert r.se_type == "cluster(unit)" and r.n_clusters == n_units
            assert np.isfinite(r.ci_low) and r.ci_low < r.ci_high


def test_one_unit_is_conditional_and_refused_for_deterministic_answers():
    study = make_study(n_units=1, designs=BLIND, covariates=())
    sampled = _eff(study, Truth(draws=3), methods=("ols",), interaction=False).iloc[0]
    assert sampled["estimand"] == "these units" and sampled["se_type"] == "HC2"
    assert np.isfinite(sampled["ci_low"])
    lp = _eff(study, Truth(draws=3, logprobs=True, noise_sd=0.0), methods=("ols",),
              interaction=False).iloc[0]
    assert np.isnan(lp["se"]) and np.isnan(lp["ci_low"]) and np.isnan(lp["p_value"])
    assert "no sampling model" in lp["note"]


def test_no_variation_and_identical_answers_are_missing_with_a_reason():
    study = make_study(n_units=6, designs=(Design(name="blind", mode="blind"),
                                           Design(name="unblinded", mode="unblinded")),
                       covariates=())
    df = make_responses(study, Truth(draws=2), seed=1)
    one = df[(df["design"] == "unblinded") & (df["cell"] == "price=1.0") | (df["design"] == "blind")]
    e = estimate_effects(study, build_observations(study, one))
    row = e[(e["design"] == "unblinded") & (e["scope"] == "design")].iloc[0]
    assert np.isnan(row["estimate"]) and "no treatment variation" in row["note"]
    inter = e[e["scope"] == "interaction"].iloc[0]
    assert np.isnan(inter["estimate"]) and np.isnan(inter["ci_low"]) and inter["note"]
    same = df.assign(value=1.0, label="purchase")
    e2 = estimate_effects(study, build_observations(study, same))
    assert e2["estimate"].isna().all() and e2["note"].str.contains("identical").all()


def test_two_level_treatment_is_a_contrast_with_effect_sizes():
    study = make_study(n_units=8, designs=BLIND, covariates=(), levels=(1.0, 1.5))
    e = _eff(study, Truth(draws=4, slope=-0.3), interaction=False)
    ols = e[e["method"] == "ols"].iloc[0]
    assert ols["term"] == "1.5 vs 1.0"
    slope = _eff(study, Truth(draws=4, slope=-0.3), interaction=False, methods=("ols",))
    assert ols["estimate"] == pytest.approx(slope.iloc[0]["estimate"])
    # the contrast is B - A: half the slope per 1.0 here
    d = build_observations(study, make_responses(study, Truth(draws=4, slope=-0.3))).outcomes()
    direct = smf.ols("y ~ level + C(unit_id)", data=d).fit().params["level"] * 0.5
    assert ols["estimate"] == pytest.approx(direct, rel=1e-10)
    assert ols["effect_size_type"] == "risk difference" and ols["effect_size"] == ols["estimate"]
    logit = e[e["method"] == "logit"].iloc[0]
    assert logit["effect_size_type"] == "odds ratio"
    assert logit["es_ci_low"] < logit["effect_size"] < logit["es_ci_high"]
    num = make_study(n_units=8, designs=BLIND, covariates=(), levels=(1.0, 2.0), outcome_type="number")
    n = _eff(num, Truth(draws=4, slope=-0.3, noise_sd=0.3), interaction=False).iloc[0]
    assert n["effect_size_type"] == "cohen d"
    assert n["effect_size"] == pytest.approx(n["estimate"] / _pooled(num), rel=1e-10)


def _pooled(study):
    d = build_observations(study, make_responses(study, Truth(draws=4, slope=-0.3, noise_sd=0.3))).outcomes()
    g = d.groupby("level")["y"]
    return float(np.sqrt(((g.size() - 1) * g.var()).sum() / (g.size() - 1).sum()))


def test_units_on_different_scales_get_a_standardised_effect():
    """Answers in miles for some units and feet for others: the raw pooled slope is flagged in
    `note` and a per-unit standardised effect (in unit SDs) is added; on one scale it is not."""
    study = make_study(n_units=8, designs=BLIND, covariates=(), outcome_type="number")
    truth = Truth(draws=3, intercept=5.0, slope=-1.0, noise_sd=0.5, unit_slope_sd=0.0)
    df = make_responses(study, truth, seed=2)
    same = estimate_effects(study, build_observations(study, df), interaction=False)
    assert "ols_unit_std" not in set(same["method"])
    big = df["unit_id"].isin(["p00", "p01", "p02", "p03"])
    mixed = df.assign(value=np.where(big, df["value"] * 5280.0, df["value"]))
    e = estimate_effects(study, build_observations(study, mixed), interaction=False)
    raw = e[e["method"] == "ols"].iloc[0]
    assert "different scales" in raw["note"]
    std = e[e["method"] == "ols_unit_std"].iloc[0]
    # the slope in unit SDs is the same on either scale: compare with the one-scale data
    ref = estimate_effects(study, build_observations(study, df), interaction=False)
    assert np.isfinite(std["estimate"]) and std["ci_low"] < std["estimate"] < std["ci_high"]
    d = build_observations(study, df).outcomes()
    g = d.groupby("unit_id")["y"]
    dz = d.assign(y=(d["y"] - g.transform("mean")) / g.transform("std"))
    direct = smf.ols("y ~ level + C(unit_id)", data=dz).fit().params["level"]
    assert std["estimate"] == pytest.approx(direct, rel=1e-9)
    assert len(ref) == len(same)


def test_singleton_clusters_are_statsmodels_hc2_and_hc1():
    """One unit: each observation its own cluster; CR2 is HC2 and CR1 is HC1 (statsmodels)."""
    import statsmodels.api as sm

    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(60), rng.normal(size=60), rng.normal(size=60)])
    y = X @ [1.0, 2.0, 3.0] + rng.normal(size=60) * (1 + np.abs(X[:, 1]))
    fit = sm.OLS(y, X).fit()
    ci = cr2(X, fit.resid, np.arange(60))
    assert np.sqrt(np.diag(ci.vcov)) == pytest.approx(sm.OLS(y, X).fit(cov_type="HC2").bse, rel=1e-10)
    assert np.sqrt(np.diag(ci.vcov_cr1)) == pytest.approx(sm.OLS(y, X).fit(cov_type="HC1").bse, rel=1e-10)
    assert (ci.df > 2).all() and (ci.df < 60).all()
