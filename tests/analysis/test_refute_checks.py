"""The refute analysis's checks, each shown to fail on data built to break it.

- the imagined-mediator check fails on leakage-confounded data and passes without leakage;
- the robustness value (DoWhy's formula) fails a non-robust estimate and passes a strong one;
- leave-one-unit-out fails an estimate one unit carries;
- the placebo sanity check fails a broken estimator (and only then).
"""

from __future__ import annotations

import numpy as np
import pytest

from llmexp.analysis.observations import build_observations
from llmexp.analysis.refute import (
    fe_slope,
    graph_for,
    loo_check,
    placebo_check,
    refute,
    robustness_value,
    sensitivity_check,
)
from llmexp.spec import Design
from tests.support.synthetic_responses import Truth, make_responses, make_study, unit_effect_data


def _data(seed, unit_slope_sd=0.0, **kw):
    return unit_effect_data(np.random.default_rng(seed), unit_slope_sd=unit_slope_sd, **kw)


def _verdicts(study, truth, seeds, check):
    out = []
    for s in seeds:
        obs = build_observations(study, make_responses(study, truth, seed=s))
        t = refute(study, obs, num_simulations=5, seed=s)
        out.append(t.set_index(["design", "check"]).loc[check, "verdict"])
    return out


def test_mediator_check_fails_on_leakage_confounded_data():
    study = make_study(n_units=10, designs=(Design(name="blind", mode="blind"),),
                       analyses=("refute",))
    check = ("blind", "mediator: treatment -> imagined competitor_price")
    confounded = _verdicts(study, Truth(leak=0.3, draws=2, probe_noise=0.15), range(8), check)
    assert confounded.count("fail") >= 7
    clean = _verdicts(study, Truth(leak=0.0, draws=2, probe_noise=0.15), range(8), check)
    assert clean.count("pass") >= 7


def test_refute_table_graph_and_two_sided_p():
    study = make_study(n_units=10, designs=(Design(name="blind", mode="blind"),
                                            Design(name="unblinded", mode="unblinded")),
                       analyses=("refute",))
    obs = build_observations(study, make_responses(study, Truth(leak=0.3, draws=2), seed=1))
    t = refute(study, obs, num_simulations=5)
    assert set(t["kind"]) == {"refuter", "sensitivity", "sanity check"}
    assert not t["check"].str.contains("random_common_cause|dummy").any()
    g = t["graph"].iloc[0]
    assert "treatment -> imagined_competitor_price" in g and "imagined_competitor_price -> outcome" in g
    assert "-> treatment" not in g  # nothing causes a randomized treatment
    p = t["p_value"].dropna()
    assert ((p > 0) & (p <= 1)).all()
    # a missing check never passes
    assert (t.loc[t["verdict"] == "not tested", "detail"].str.len() > 0).all()


def test_graph_declares_personas_and_pins_as_outcome_causes_only():
    g = graph_for(["competitor_price"], ["persona__age", "pin__shipping"])
    assert "persona__age -> outcome;" in g and "persona__age -> treatment" not in g
    assert "pin__shipping -> treatment" not in g


def test_robustness_value_matches_dowhy_formula():
    from types import SimpleNamespace

    from dowhy.causal_refuters.linear_sensitivity_analyzer import LinearSensitivityAnalyzer

    for t, dof in [(1.0, 100), (2.5, 300), (6.0, 80), (40.0, 50)]:
        ns = SimpleNamespace(t_stats=t, degree_of_freedom=dof, percent_change_estimate=1.0)
        for a in (1.0, 0.05):
            ours = robustness_value(t, dof, alpha=a) if a < 1 else robustness_value(t, dof, alpha=1.0)
            assert ours == pytest.approx(LinearSensitivityAnalyzer.robustness_value_func(ns, a), abs=1e-12)


def test_sensitivity_fails_a_non_robust_estimate():
    weak = [sensitivity_check(fe_slope(*_data(s, slope=0.0), seed=s), 0.05)["verdict"]
            for s in range(10)]
    assert weak.count("fail") >= 9
    strong = [sensitivity_check(fe_slope(*_data(s, slope=-0.3), seed=s), 0.05)["verdict"]
              for s in range(10)]
    assert strong.count("pass") == 10


def test_leave_one_unit_out_fails_when_one_unit_carries_the_effect():
    fails = 0
    for s in range(6):
        x, y, u = _data(s, n_units=8, one_unit=-2.0, noise=0.1)
        full = fe_slope(x, y, u, seed=s)
        r = loo_check(x, y, u, full, 0.05, s)
        fails += r["verdict"] == "fail" or r["verdict"] == "not tested"
        assert r["verdict"] != "pass"
    passes = []
    for s in range(6):
        x, y, u = _data(s, n_units=8, slope=-0.3, unit_slope_sd=0.02)
        passes.append(loo_check(x, y, u, fe_slope(x, y, u, seed=s), 0.05, s)["verdict"])
    assert passes.count("pass") >= 5


def test_placebo_sanity_check_fails_a_broken_estimator_only():
    x, y, u = _data(0)
    ok = placebo_check(x, y, u, 0.05, 20, 0)
    assert ok["verdict"] == "pass" and ok["kind"] == "sanity check"
    broken = placebo_check(x, y, u, 0.05, 20, 0,
                           estimator=lambda xx: fe_slope(xx, y, u, n_boot=9)["estimate"] + 0.1)
    assert broken["verdict"] == "fail"
