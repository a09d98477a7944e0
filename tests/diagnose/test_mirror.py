"""diagnose mirrors the analysis: observation rules for log-prob models, the answer mode of
the study's model, unit-specific slopes and leakage, and a note where power stays short."""

from __future__ import annotations

import numpy as np
import pytest
from diaghelp import write_small_study

import llmexp
from llmexp.analysis.effects import estimate_effects
from llmexp.analysis.observations import build_observations
from llmexp.diagnose import diagnose
from llmexp.diagnose.respondent import respondent_params
from llmexp.providers import respondent
from llmexp.runner import run_study


def test_log_prob_replicates_count_once_as_in_the_analysis(tmp_path):
    study = llmexp.load(write_small_study(tmp_path, "effect -1.2 probs 1 noise 0.2", replicates=3,
                                          n_units=6))
    res = run_study(study, run_dir=tmp_path / "run", progress=False, use_cache=False)
    obs = build_observations(study, res.to_pandas())
    ref = estimate_effects(study, obs, methods=("ols",), interaction=False).set_index("design")
    d = diagnose(study, sims=5).table
    eff = d[d["estimand"] == "effect"].set_index("design")
    for design in ("blind", "unblinded"):
        # 6 units x 5 levels, the 3 identical replicates counted once (not 90 rows)
        assert eff.loc[design, "n_obs"] == ref.loc[design, "n_obs"] == 30
    # deterministic answers: every simulation gives the same estimate
    assert (eff["sd_estimate"].fillna(0) < 1e-12).all()


def test_the_answer_mode_follows_the_provider():
    study = llmexp.load(write_small_study.__globals__["REPO"] / "studies" / "demand_quick.study")
    model = study.models[0].name
    from llmexp import providers

    assert providers.for_model(model).answers_by_logprob
    assert respondent_params(study, model)["probs"] == 1.0
    assert respondent_params(study, "openai/gpt-4o-mini")["probs"] == 0.0


def _trial(unit: str, level: float, mode: str = "blind", kind: str = "outcome") -> dict:
    return {"unit_id": unit, "mode": mode, "kind": kind, "target": "c",
            "treatment_levels": {"price": [0.0, 1.0]}, "answer": {"type": "money"},
            "conditions": [{"cell": "x", "levels": {"price": level}, "values": {"price": level}}]}


def test_unit_slopes_and_leakage_default_off_and_vary_by_unit():
    base = {"effect": -1.0, "leakage": 0.2}
    t = _trial("u1", 1.0)
    assert respondent.outcome_probability(base, t, seed=3) == respondent.outcome_probability(
        dict(base, unit_slope_sd=0.0, unit_leakage_sd=0.0), t, seed=3)
    slopes = []
    for u in ("u1", "u2", "u3", "u4"):
        p1 = respondent.outcome_probability(dict(base, unit_slope_sd=1.0), _trial(u, 1.0), seed=3)
        p0 = respondent.outcome_probability(dict(base, unit_slope_sd=1.0), _trial(u, 0.0), seed=3)
        slopes.append(np.log(p1 / (1 - p1)) - np.log(p0 / (1 - p0)))
    assert np.std(slopes) > 0.2
    leaks = [respondent.probe_value(dict(base, unit_leakage_sd=0.5, anchor=10), _trial(u, 1.0, kind="probe"),
                                    seed=3) for u in ("u1", "u2", "u3")]
    assert len({round(v, 6) for v in leaks}) == 3
    # the interventional truth switches the unit leakage off with the leakage
    assert respondent.CONFOUNDING_PARAMS["unit_leakage_sd"] == 0.0


def test_unit_specific_leakage_is_diagnosed_with_the_analysis_inference(tmp_path):
    """Units keep their seeded draws across simulations, so the truth is these units' mean
    leakage (not 0): the estimate is unbiased for it and the wild bootstrap interval (which
    targets the population of units) is wider than the answer noise alone needs."""
    study = llmexp.load(write_small_study(tmp_path, "effect -1 leakage 0 unit_leakage_sd 0.4 noise 0.1",
                                          replicates=2, n_units=6))
    d = diagnose(study, sims=300, seed=2).table
    blind = d[(d["estimand"] == "leakage") & (d["design"] == "blind")].iloc[0]
    unbl = d[(d["estimand"] == "leakage") & (d["design"] == "unblinded")].iloc[0]
    assert blind["se_type"] == "wild bootstrap(unit)"
    assert abs(blind["truth"]) > 0.02  # these 6 units' own leakage does not average to 0
    assert abs(blind["bias"]) <= 3.5 * blind["sd_estimate"] / np.sqrt(300)
    assert blind["mean_se"] > 2 * blind["sd_estimate"]  # unit heterogeneity is in the SE
    # no leakage at all (unblinded): false alarms at the nominal rate
    assert unbl["truth"] == 0 and unbl["power"] <= 0.05 + 3 * np.sqrt(0.05 * 0.95 / 300)


def test_diagnose_says_when_a_design_cannot_reach_80_percent(tmp_path):
    study = llmexp.load(write_small_study(tmp_path, "effect -0.2 noise 0.2", replicates=1, n_units=4))
    d = diagnose(study, sims=40, seed=1)
    assert any("cannot reach 80% power" in n for n in d.notes)
    strong = llmexp.load(write_small_study(tmp_path / "s", "effect -4 noise 0.2", replicates=4,
                                           n_units=12))
    d = diagnose(strong, sims=40, seed=1, designs=["unblinded"])
    assert not any("unblinded effect" in n for n in d.notes)


@pytest.mark.parametrize("sd", [0.0])
def test_default_respondent_outputs_unchanged(sd):
    t = _trial("u9", 0.5, kind="probe")
    assert respondent.probe_value({"leakage": 0.3, "anchor": 4.0, "unit_leakage_sd": sd}, t) == \
        respondent.probe_value({"leakage": 0.3, "anchor": 4.0}, t)
