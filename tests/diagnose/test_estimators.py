"""The closed-form estimators equal statsmodels and the analysis (`llmexp.analysis`) exactly."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from diaghelp import QUICK

import llmexp
from llmexp.analysis.effects import estimate_effects
from llmexp.analysis.leakage import leakage
from llmexp.analysis.observations import build_observations
from llmexp.diagnose.estimators import OLSPlan, effects_plans, leakage_plan, normalise_by_unit
from llmexp.runner import run_study
from llmexp.spec import ModelSpec


@pytest.mark.parametrize("clustered", [False, True])
def test_ols_plan_equals_statsmodels(clustered):
    rng = np.random.default_rng(1)
    n_units, per = 12 if clustered else 5, 9
    df = pd.DataFrame({"unit_id": np.repeat([f"u{i}" for i in range(n_units)], per),
                       "level": np.tile(np.linspace(0, 2, per), n_units)})
    df["y"] = (rng.random(len(df)) < 0.6 - 0.2 * df["level"]).astype(float)
    groups = pd.factorize(df["unit_id"])[0] if clustered else None
    kw = {"cov_type": "cluster", "cov_kwds": {"groups": groups}, "use_t": True} if clustered else {"cov_type": "HC1"}
    res = smf.ols("y ~ level + C(unit_id)", data=df).fit(**kw)
    import patsy

    X = patsy.dmatrix("level + C(unit_id)", df, return_type="dataframe")
    plan = OLSPlan(X.to_numpy(), list(X.columns), [list(X.columns).index("level")], groups,
                   "cluster" if clustered else "HC1")
    est, se = plan.fit(df["y"].to_numpy())
    p, lo, hi = plan.inference(est, se, 0.05)
    ci = res.conf_int(0.05).loc["level"]
    assert est[0, 0] == pytest.approx(res.params["level"], rel=1e-10)
    assert se[0, 0] == pytest.approx(res.bse["level"], rel=1e-10)
    assert p[0, 0] == pytest.approx(res.pvalues["level"], rel=1e-8)
    assert lo[0, 0] == pytest.approx(ci.iloc[0], rel=1e-10) and hi[0, 0] == pytest.approx(ci.iloc[1], rel=1e-10)


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """The quick demand study actually run on the synthetic respondent (3 replicates)."""
    study = llmexp.load(QUICK)
    study = study.with_models([ModelSpec(name="synthetic/respondent",
                                         params={"effect": -1.0, "leakage": 0.5, "noise": 0.05},
                                         replicates=3)])
    run_dir = tmp_path_factory.mktemp("run") / "quick"
    res = run_study(study, run_dir=run_dir, progress=False, use_cache=False)
    return study, res.to_pandas(), run_dir


def test_fast_estimators_equal_the_analysis_on_a_real_run(synthetic_run):
    study, responses, _ = synthetic_run
    obs = build_observations(study, responses)
    ref = estimate_effects(study, obs, methods=("ols",), interaction=False)
    table = obs.outcomes().reset_index(drop=True)
    checked = set()
    for design, g in table.groupby("design", sort=False):
        g = g.reset_index(drop=True)
        (meta, plan), = effects_plans(study, g)
        est, se = plan.fit(g["y"].to_numpy())
        p, lo, hi = plan.inference(est, se, 0.05)
        r = ref[(ref["design"] == design) & (ref["method"] == "ols")].iloc[0]
        assert meta["se_type"] == r["se_type"]
        assert est[0, 0] == pytest.approx(r["estimate"], rel=1e-9, abs=1e-12)
        assert se[0, 0] == pytest.approx(r["se"], rel=1e-9)
        assert p[0, 0] == pytest.approx(r["p_value"], rel=1e-7, abs=1e-300)
        assert (lo[0, 0], hi[0, 0]) == (pytest.approx(r["ci_low"], rel=1e-9), pytest.approx(r["ci_high"], rel=1e-9))
        checked.add((design, meta["se_type"]))
    # every design is analysed with CR2 by unit at any number of units (issue 10): covered
    assert {s for _, s in checked} == {"cluster(unit)"} and len(checked) >= 3

    lk, _ = leakage(study, obs)
    probes = obs.probes()
    for (cov, design), g in probes.groupby(["target", "design"], sort=False):
        g = g.reset_index(drop=True)
        meta, plan, codes = leakage_plan(g)
        est, se = plan.fit(normalise_by_unit(g["y"].to_numpy(), codes))
        r = lk[(lk["covariate"] == cov) & (lk["design"] == design)].iloc[0]
        assert est[0, 0] == pytest.approx(r["leakage_index"], rel=1e-9)
        assert se[0, 0] == pytest.approx(r["se"], rel=1e-9)
        assert meta["se_type"] == r["se_type"]


def test_pilot_recovers_the_respondent_params(synthetic_run):
    from llmexp.diagnose.pilot import pilot_params

    study, _, run_dir = synthetic_run
    est = pilot_params(run_dir, study)
    # leakage: index per level x level range, from 396 blind probe answers with 5% noise
    assert est.params["leakage"] == pytest.approx(0.5, abs=0.05)
    assert est.params["noise"] == pytest.approx(0.05, abs=0.015)
    # effect: logit slope from 198 unblinded + 198 aggregate-condition answers (SE ~ 0.15)
    assert est.params["effect"] == pytest.approx(-1.0, abs=0.6)
    assert 0.3 < est.params["baseline"] < 0.7


def test_focalism_and_design_differences_equal_the_analysis(synthetic_run):
    from llmexp.analysis.focalism import focalism
    from llmexp.diagnose.estimators import focalism_plans, interaction_plans

    study, responses, _ = synthetic_run
    obs = build_observations(study, responses)
    data = obs.outcomes()
    data = data[data["target"] == "purchase"].reset_index(drop=True)
    ref = estimate_effects(study, obs, methods=("ols",), interaction=True)
    ref = ref[ref["scope"] == "interaction"]
    plans = interaction_plans(study, data)
    assert len(plans) == len(ref) == 3
    for meta, plan in plans:
        est, se = plan.fit(data["y"].to_numpy())
        r = ref[ref["design"] == meta["design"]].iloc[0]
        assert meta["term"] == r["term"] and meta["se_type"] == r["se_type"]
        assert est[0, 0] == pytest.approx(r["estimate"], rel=1e-9)
        assert se[0, 0] == pytest.approx(r["se"], rel=1e-9)

    foc, _ = focalism(study, obs, n_boot=199, seed=0)  # the plan's first draw: seed 0, 199
    foc = foc[foc["role"] == "difference"]  # the tested estimand: the difference in jumps
    fplans = focalism_plans(study, data)
    assert len(fplans) == len(foc) == 3  # the pinned design minus each of the three others
    for meta, plan, rows in fplans:
        est, se = plan.fit(data["y"].to_numpy()[rows])
        p, lo, hi = plan.inference(est, se, 0.05)
        r = foc[foc["design"] == meta["design"]].iloc[0]
        assert meta["role"] == r["role"] and meta["se_type"] == r["se_type"]
        assert est[0, 0] == pytest.approx(r["jump"], rel=1e-9, abs=1e-12)
        assert se[0, 0] == pytest.approx(r["se"], rel=1e-9)
        assert p[0, 0] == pytest.approx(r["p_value"], rel=1e-7)


def test_two_treatments_personas_and_within_equal_the_analysis(tmp_path):
    """discount_deadline: two numeric treatments, a within-prompt design (clustered by call) and a
    persona design (clustered by persona)."""
    from llmexp.diagnose import diagnose

    study = llmexp.load(QUICK.parent / "discount_deadline.study")
    study = study.with_models([ModelSpec(name="synthetic/respondent", params={"effect": -1.0}, replicates=2)])
    res = run_study(study, run_dir=tmp_path / "dd", progress=False, use_cache=False)
    obs = build_observations(study, res.to_pandas())
    ref = estimate_effects(study, obs, methods=("ols",), interaction=True)
    # pooled over persona and persona-free designs, calls without a persona are their own cluster
    # (factorial interaction rows, issue 10, are not diagnosed yet)
    assert set(ref["scope"]) - {"factorial"} == {"design", "interaction"}
    assert ref.loc[ref["scope"] == "interaction", "estimate"].notna().all()
    data = obs.outcomes().reset_index(drop=True)
    se_types = set()
    for design, g in data.groupby("design", sort=False):
        g = g.reset_index(drop=True)
        plans = effects_plans(study, g)
        r = ref[(ref["design"] == design) & (ref["scope"] == "design")]
        assert len(plans) == len(r) == 2
        for (meta, plan), (_, rr) in zip(plans, r.iterrows(), strict=True):
            est, se = plan.fit(g["y"].to_numpy())
            assert meta["treatment"] == rr["treatment"] and meta["se_type"] == rr["se_type"]
            assert est[0, 0] == pytest.approx(rr["estimate"], rel=1e-9)
            assert se[0, 0] == pytest.approx(rr["se"], rel=1e-9)
            se_types.add(meta["se_type"])
    assert se_types == {"cluster(unit)"}  # CR2 by unit in every design (issue 10)
    # and diagnose diagnoses the design differences too
    d = diagnose(study, sims=10).table
    rows = d[d["estimand"] == "difference"]
    notes = rows["note"].fillna("") if "note" in rows else pd.Series([""] * len(rows))
    assert len(rows) >= 4 and not notes.str.contains("not diagnosed").any()
    assert rows["power"].notna().all()
