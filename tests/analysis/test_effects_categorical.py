"""Categorical outcomes: per-option shares, their differences and a test of independence
(issue 10, item 3), on a decoy-style study with known choice probabilities."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis import analyze
from llmexp.analysis._categorical import independence
from llmexp.analysis.observations import build_observations
from llmexp.spec import AnswerSpec, Design, ModelSpec, Outcome, Study, Treatment, Units

LABELS = ("A", "B", "C")
EFFECT = {"absent": (0.4, 0.5, 0.1), "present": (0.6, 0.3, 0.1)}  # the attraction effect on A
NULL = {"absent": (0.4, 0.5, 0.1), "present": (0.4, 0.5, 0.1)}


def decoy_study(n_units: int) -> Study:
    return Study(
        name="decoy", units=Units(name="sets", key="set", columns={"set": "text"},
                                  rows=tuple({"set": f"s{i}"} for i in range(n_units))),
        treatments=(Treatment(name="decoy", levels=("absent", "present"), value_type="text"),),
        outcomes=(Outcome(name="choice", answer=AnswerSpec(type="categorical", labels=LABELS),
                          question="Which one?"),),
        context="...", designs=(Design(name="blind", mode="blind"),), models=(ModelSpec(name="m"),),
        analyses=("effects",))


def decoy_responses(study: Study, probs: dict, draws: int = 20, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in study.units.rows:
        tilt = rng.normal(0, 0.05)  # units differ a little
        for level, p in probs.items():
            q = np.clip(np.array(p) + np.array([tilt, -tilt, 0.0]), 0.01, None)
            for i in range(draws):
                k = int(rng.choice(3, p=q / q.sum()))
                cell = f"decoy={level}"
                rows.append({
                    "trial_id": f"{u['set']}-{level}-{i}", "study": "decoy", "design": "blind",
                    "mode": "blind", "model": "m", "params": "{}", "replicate": i, "kind": "outcome",
                    "target": "choice", "unit_id": u["set"], "unit": json.dumps(u), "persona_id": None,
                    "persona": None, "cell": cell,
                    "conditions": json.dumps([{"cell": cell, "levels": {"decoy": level},
                                               "values": {"decoy": level}}]),
                    "pinned": "{}", "split": None,
                    "answer": json.dumps({"type": "categorical", "labels": list(LABELS)}),
                    "messages": "[]", "order_seed": None, "valid": True, "value": float(k),
                    "label": LABELS[k], "probs": None, "prob_mass": None, "condition_values": None,
                    "raw_text": LABELS[k], "error": None, "status": "ok", "prompt_tokens": 1,
                    "completion_tokens": 1, "cost": 0.0, "latency": 0.0, "cache_hit": False,
                    "attempts": 1})
    return pd.DataFrame(rows)


def test_decoy_study_reports_shares_differences_and_independence():
    study = decoy_study(16)
    df = decoy_responses(study, EFFECT, seed=1)
    res = analyze(study, df, figures=False)
    shares = res.table("option_shares")
    assert set(shares["option"]) == set(LABELS) and len(shares) == 6
    for (cell, opt), r in shares.set_index(["cell", "option"]).iterrows():
        direct = (df.loc[df["cell"] == cell, "label"] == opt).mean()
        assert r["share"] == pytest.approx(direct, abs=1e-12)
        assert r["ci_low"] < r["share"] < r["ci_high"] and r["estimand"] == "population of units"
    eff = res.table("effects")
    # no mean-of-the-label-index rows: every effect is an option's share difference
    assert eff["option"].notna().all() and set(eff["option"]) == set(LABELS)
    a = eff[eff["option"] == "A"].iloc[0]
    want = ((df[df["cell"] == "decoy=present"]["label"] == "A").mean()
            - (df[df["cell"] == "decoy=absent"]["label"] == "A").mean())
    assert a["estimate"] == pytest.approx(want, abs=1e-10)  # balanced: FE = raw difference
    assert a["term"].startswith("present vs absent") and a["ci_low"] < a["estimate"] < a["ci_high"]
    assert a["effect_size_type"] == "risk difference"
    assert a["ci_low"] <= 0.2 <= a["ci_high"]  # the true attraction effect
    ind = res.table("independence").iloc[0]
    assert ind["p_value"] < 0.01 and ind["chi2_p"] < 0.01 and ind["df1"] == 2
    assert "cluster-aware" in ind["note"]


def test_independence_test_does_not_fire_on_null_data_and_refuses_too_few_units():
    study = decoy_study(8)
    ps = [independence(study, build_observations(study, decoy_responses(study, NULL, seed=s, draws=10))
                       .outcomes(), study.outcomes[0], 0.05).iloc[0]["p_value"] for s in range(60)]
    assert np.mean(np.array(ps) < 0.05) <= 0.12, ps  # 300 seeds (benchmark): 5.7%
    one = decoy_study(2)
    ind = analyze(one, decoy_responses(one, EFFECT, seed=2), figures=False).table("independence").iloc[0]
    assert np.isnan(ind["p_value"]) and "too few units" in ind["note"]
    assert np.isfinite(ind["chi2_p"])
