"""Diagnose's power, bias and coverage against an independent direct simulation and theory.

Tolerances are Monte Carlo: a proportion estimated from S simulations has SE sqrt(p(1-p)/S);
two independent estimates differ by at most 3.5 SE of their difference (a false failure
about once in 2,000 runs), and the seeds are fixed so the tests are deterministic.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from diaghelp import QUICK, write_small_study

import llmexp
from llmexp.analysis.effects import estimate_effects
from llmexp.analysis.leakage import leakage
from llmexp.analysis.observations import build_observations
from llmexp.compiler import compile_study
from llmexp.diagnose import diagnose
from tests.support.synthetic_responses import respondent_answers


def _direct_simulation(study, sims: int, alpha: float = 0.05) -> pd.DataFrame:
    """The straightforward loop: the provider answers every trial (its own code), the answers
    are parsed, and the analysis's own functions (statsmodels) estimate; once per simulation."""
    trials = compile_study(study)
    params = dict(study.models[0].params)
    out = []
    for s in range(sims):
        # independent draws per simulation: the respondent seeds from the suffixed trial ids
        values = [a.value for a in respondent_answers(study, trials, params, suffix=f"-sim{s}")]
        responses = trials.assign(value=values, valid=True, status="ok", probs=None, condition_values=None)
        obs = build_observations(study, responses)
        eff = estimate_effects(study, obs, alpha=alpha, methods=("ols",), interaction=False)
        for r in eff.itertuples():
            out.append(dict(sim=s, design=r.design, estimand="effect", estimate=r.estimate, p=r.p_value))
        lk, _ = leakage(study, obs, alpha=alpha)
        for r in lk.itertuples():
            out.append(dict(sim=s, design=r.design, estimand="leakage", estimate=r.leakage_index, p=r.p_value))
    return pd.DataFrame(out)


def _tol(p1: float, n1: int, p2: float, n2: int) -> float:
    p = (p1 * n1 + p2 * n2) / (n1 + n2)
    return 3.5 * math.sqrt(max(p * (1 - p), 0.01) * (1 / n1 + 1 / n2))


def test_power_matches_a_direct_simulation(tmp_path):
    study = llmexp.load(write_small_study(tmp_path, "effect -1.2 leakage 0.1 noise 0.2", replicates=2))
    n_direct, n_diag = 120, 2000  # the direct loop runs the analysis (statsmodels) per simulation: ~0.1 s each
    direct = _direct_simulation(study, n_direct)
    diag = diagnose(study, sims=n_diag, seed=5).table
    compared = 0
    for (design, estimand), g in direct.groupby(["design", "estimand"]):
        row = diag[(diag["design"] == design) & (diag["estimand"] == estimand)].iloc[0]
        power_direct = float((g["p"] < 0.05).mean())
        assert abs(row["power"] - power_direct) <= _tol(row["power"], n_diag, power_direct, n_direct), (design, estimand)
        se_mean = g["estimate"].std() * math.sqrt(1 / n_direct + 1 / n_diag)
        assert abs(row["mean_estimate"] - g["estimate"].mean()) <= 3.5 * se_mean
        assert row["sd_estimate"] == pytest.approx(g["estimate"].std(), rel=0.2)
        compared += 1
    assert compared == 4  # effect in blind and unblinded, leakage in blind and unblinded
    # the comparison is informative: power is neither ~0 nor ~1 for the effects
    eff = diag[diag["estimand"] == "effect"]
    assert ((eff["power"] > 0.15) & (eff["power"] < 0.95)).all()


def test_power_grows_with_replicates_and_is_alpha_under_the_null(tmp_path):
    study = llmexp.load(write_small_study(tmp_path, "effect -0.8 leakage 0 noise 0.1", replicates=1, n_units=12))
    d = diagnose(study, sims=1500, replicates=[1, 3, 9], seed=1, power_target=0.8, designs=["unblinded"])
    eff = d.table[d.table["estimand"] == "effect"].sort_values("replicates")
    power = eff["power"].to_numpy()
    mcse = eff["power_mcse"].to_numpy()
    assert np.all(np.diff(power) > 3 * np.sqrt(mcse[1:] ** 2 + mcse[:-1] ** 2))
    # --power marks exactly the smallest replicates that reach it
    meets = eff[eff["meets_power"]]
    assert len(meets) <= 1
    if len(meets):
        r = meets["replicates"].iloc[0]
        assert (eff[eff["replicates"] < r]["power"] < 0.8).all() and meets["power"].iloc[0] >= 0.8
    # with 12 units the SEs are clustered by unit (t with 11 df): the test has its nominal size
    assert set(eff["se_type"]) == {"cluster(unit)"}

    null = diagnose(study, sims=3000, replicates=[3], seed=2, params={"effect": 0.0}).table
    for r in null.itertuples():
        # true value 0 everywhere (no effect, no leakage): power is the false positive rate
        assert r.truth == pytest.approx(0.0, abs=1e-12)
        tol = 3.5 * math.sqrt(0.05 * 0.95 / r.sims_ok)
        assert abs(r.power - 0.05) <= tol + 0.01, (r.design, r.estimand, r.power)
        assert abs(r.coverage - 0.95) <= tol + 0.01, (r.design, r.estimand, r.coverage)
        assert abs(r.bias) <= 3.5 * r.sd_estimate / math.sqrt(r.sims_ok)


def test_coverage_is_nominal_unbiased_designs_and_low_for_a_leaky_blind_design(tmp_path):
    study = llmexp.load(write_small_study(tmp_path, "effect -1 leakage 0.8 noise 0.1", replicates=4, n_units=12))
    t = diagnose(study, sims=2000, seed=3).table.set_index(["design", "estimand"])
    unbl = t.loc[("unblinded", "effect")]
    tol = 3.5 * math.sqrt(0.05 * 0.95 / 2000) + 0.01
    assert abs(unbl["coverage"] - 0.95) <= tol
    assert abs(unbl["bias"]) <= 3.5 * unbl["sd_estimate"] / math.sqrt(2000)
    # leakage: truth is the respondent's index leakage / level range = 0.8 / 2
    assert t.loc[("blind", "leakage"), "truth"] == pytest.approx(0.4, abs=1e-9)
    assert abs(t.loc[("blind", "leakage"), "coverage"] - 0.95) <= tol
    # the blind effect is confounded: biased towards zero by the leakage, intervals miss
    blind = t.loc[("blind", "effect")]
    assert blind["bias"] > 0 and blind["design_target"] > blind["truth"]
    assert blind["bias"] == pytest.approx(blind["design_target"] - blind["truth"], abs=4 * blind["sd_estimate"] / math.sqrt(2000))
    assert blind["coverage"] < unbl["coverage"] - 0.1


def test_cost_equals_the_dry_run_estimate(tmp_path):
    from llmexp.runner import run_study
    from llmexp.spec import ModelSpec

    study = llmexp.load(QUICK)
    study = study.with_models([ModelSpec(name="openai/gpt-4o-mini", params={"max_tokens": 8}, replicates=1),
                               ModelSpec(name="synthetic/respondent", params={"effect": -1}, replicates=1)])
    d = diagnose(study, sims=20, replicates=[1, 2])
    for reps in (1, 2):
        st = study.with_models([m.model_copy(update={"replicates": reps}) for m in study.models])
        plan = run_study(st, run_dir=tmp_path / f"fresh{reps}", dry_run=True, progress=False)
        row = d.costs[d.costs["replicates"] == reps].iloc[0]
        assert row["calls"] == plan.estimate.calls == 468 * reps * 2
        assert row["cost"] == pytest.approx(plan.estimate.total, rel=1e-12) and row["cost"] > 0
        assert row["dry_run_text"] == str(plan.estimate)
        assert row["prompt_tokens"] == sum(m.prompt_tokens for m in plan.estimate.models.values())
        tab = d.table[d.table["replicates"] == reps]
        assert (tab["calls"] == plan.estimate.calls).all()
        assert set(tab["model"]) == {"openai/gpt-4o-mini", "synthetic/respondent"}


def test_focalism_and_design_differences_are_diagnosed(tmp_path):
    study = llmexp.load(QUICK)
    # sampled answers (probs 0): the study's own model answers by log-probabilities, whose
    # identical curves leave the difference in jumps without an interval (tests/diagnose/test_mirror.py)
    d = diagnose(study, sims=1500, replicates=[3], seed=4,
                 params={"focalism": 0.4, "leakage": 0.6, "probs": 0}).table
    tol = 3.5 * math.sqrt(0.05 * 0.95 / 1500) + 0.01
    foc = d[(d["estimand"] == "focalism") & (d["role"] == "difference")]
    foc = foc[foc["design"] == "competitor_fixed - unblinded"].iloc[0]
    # the step weight is what the analysis's difference in jumps measures on the respondent's
    # expected curves (the unblinded design has the same curve without the step)
    assert foc["truth"] == pytest.approx(0.4, abs=0.02)
    assert abs(foc["coverage"] - 0.95) <= tol
    assert abs(foc["bias"]) <= 3.5 * foc["sd_estimate"] / math.sqrt(1500)
    # focalism makes the pinned design's slope steeper than the ideal experiment's
    fixed = d[(d["estimand"] == "effect") & (d["design"] == "competitor_fixed")].iloc[0]
    assert fixed["design_target"] < fixed["truth"] and fixed["bias"] < 0
    # design differences: true value = the respondent's real gap; leakage flattens blind
    diff = d[(d["estimand"] == "difference") & (d["design"] == "unblinded")].iloc[0]
    blind = d[(d["estimand"] == "effect") & (d["design"] == "blind")].iloc[0]
    unbl = d[(d["estimand"] == "effect") & (d["design"] == "unblinded")].iloc[0]
    assert diff["truth"] == pytest.approx(unbl["design_target"] - blind["design_target"], abs=1e-9)
    assert diff["truth"] < 0 and abs(diff["coverage"] - 0.95) <= tol
