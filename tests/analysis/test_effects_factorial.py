"""A 2x2 study (frame x source) reports the interaction with an interval and a cell-means
table (issue 10, item 4)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf

from llmexp.analysis import analyze
from llmexp.spec import AnswerSpec, Design, ModelSpec, Outcome, Study, Treatment, Units

TRUE = {("gain", "expert"): 5.0, ("gain", "peer"): 4.0, ("loss", "expert"): 4.5, ("loss", "peer"): 2.5}
INTERACTION = (2.5 - 4.5) - (4.0 - 5.0)  # -1.0: the frame matters more when the source is a peer


def study_2x2(n_units: int = 10) -> Study:
    return Study(
        name="twobytwo", units=Units(name="items", key="item", columns={"item": "text"},
                                     rows=tuple({"item": f"i{i}"} for i in range(n_units))),
        treatments=(Treatment(name="frame", levels=("gain", "loss"), value_type="text"),
                    Treatment(name="source", levels=("expert", "peer"), value_type="text")),
        outcomes=(Outcome(name="rating", answer=AnswerSpec(type="number", low=0, high=10),
                          question="Rate it."),),
        context="...", designs=(Design(name="blind", mode="blind"),), models=(ModelSpec(name="m"),),
        analyses=("effects",))


def responses_2x2(study: Study, draws: int = 4, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in study.units.rows:
        a, b = rng.normal(0, 1.0), rng.normal(0, 0.3)  # unit intercept, unit-specific interaction
        for (f, s), m in TRUE.items():
            for i in range(draws):
                y = m + a + b * (f == "loss") * (s == "peer") + rng.normal(0, 0.8)
                cell = f"frame={f}|source={s}"
                rows.append({
                    "trial_id": f"{u['item']}-{cell}-{i}", "study": "twobytwo", "design": "blind",
                    "mode": "blind", "model": "m", "params": "{}", "replicate": i, "kind": "outcome",
                    "target": "rating", "unit_id": u["item"], "unit": json.dumps(u), "persona_id": None,
                    "persona": None, "cell": cell,
                    "conditions": json.dumps([{"cell": cell, "levels": {"frame": f, "source": s},
                                               "values": {"frame": f, "source": s}}]),
                    "pinned": "{}", "split": None,
                    "answer": json.dumps({"type": "number", "labels": [], "low": 0, "high": 10}),
                    "messages": "[]", "order_seed": None, "valid": True, "value": float(y),
                    "label": None, "probs": None, "prob_mass": None, "condition_values": None,
                    "raw_text": str(y), "error": None, "status": "ok", "prompt_tokens": 1,
                    "completion_tokens": 1, "cost": 0.0, "latency": 0.0, "cache_hit": False,
                    "attempts": 1})
    return pd.DataFrame(rows)


def test_two_by_two_interaction_with_interval_and_cell_means():
    study = study_2x2()
    df = responses_2x2(study, seed=3)
    res = analyze(study, df, figures=False)
    eff = res.table("effects")
    fac = eff[eff["scope"] == "factorial"]
    assert len(fac) == 1
    r = fac.iloc[0]
    assert r["treatment"] == "frame x source" and r["term"] == "interaction: (loss vs gain) x (peer vs expert)"
    d = df.assign(y=df["value"], f=df["cell"].str.slice(6, 10), s=df["cell"].str.split("=").str[-1])
    direct = smf.ols("y ~ C(f) * C(s) + C(unit_id)", data=d).fit()
    assert r["estimate"] == pytest.approx(direct.params["C(f)[T.loss]:C(s)[T.peer]"], rel=1e-10)
    assert r["ci_low"] < INTERACTION < r["ci_high"] and r["p_value"] < 0.05
    assert r["inference"].startswith("CR2") and r["effect_size_type"] == "cohen d"
    # main-effect rows stay (additive model) and are labelled as contrasts
    assert set(eff.loc[eff["scope"] == "design", "term"]) == {"loss vs gain", "peer vs expert"}
    cm = res.table("cell_means")
    assert len(cm) == 4 and {"lvl__frame", "lvl__source", "mean", "ci_low", "ci_high"} <= set(cm.columns)
    for row in cm.itertuples():
        sub = d[(d["f"] == row.lvl__frame) & (d["s"] == row.lvl__source)]
        assert row.mean == pytest.approx(sub["y"].mean(), rel=1e-12)
        assert row.ci_low < row.mean < row.ci_high


def test_no_interaction_in_the_truth_is_not_found():
    """The same design with an additive truth: the interval covers 0 (fails if the interaction
    row picked up a main effect)."""
    global TRUE
    saved = TRUE
    TRUE = {("gain", "expert"): 5.0, ("gain", "peer"): 4.0, ("loss", "expert"): 4.5, ("loss", "peer"): 3.5}
    try:
        study = study_2x2()
        r = analyze(study, responses_2x2(study, seed=4), figures=False).table("effects")
        r = r[r["scope"] == "factorial"].iloc[0]
        assert r["ci_low"] < 0 < r["ci_high"]
    finally:
        TRUE = saved
