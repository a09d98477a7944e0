"""A twelve-row response table whose MAE, arc elasticity and leakage slope are computed by hand."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis import analyze
from llmexp.analysis.demand_curve import arc_elasticity
from llmexp.analysis.observations import build_observations
from llmexp.errors import AnalysisError
from llmexp.spec import Baseline, Design
from tests.support.synthetic_responses import make_study

LABELS = ["purchase", "not purchase"]


def _row(unit: str, price: float, level: float, kind: str, value: float, i: int) -> dict:
    target = "purchase" if kind == "outcome" else "competitor_price"
    answer = ({"type": "binary", "labels": LABELS, "low": None, "high": None}
              if kind == "outcome" else {"type": "money", "labels": [], "low": 0, "high": 1000})
    cell = f"price={level}"
    return {
        "trial_id": f"t{i}", "study": "synthetic", "design": "blind", "mode": "blind",
        "model": "m", "params": "{}", "replicate": i % 2, "kind": kind, "target": target,
        "unit_id": unit, "unit": json.dumps({"product_id": unit, "regular_price": price}),
        "persona_id": None, "persona": None, "cell": cell,
        "conditions": json.dumps([{"cell": cell, "levels": {"price": level},
                                   "values": {"price": level * price}}]),
        "pinned": "{}", "split": None, "answer": json.dumps(answer), "messages": "[]",
        "order_seed": None, "valid": True, "value": value,
        "label": (LABELS[0] if value == 1 else LABELS[1]) if kind == "outcome" else None,
        "probs": None, "prob_mass": None, "condition_values": None, "raw_text": str(value),
        "error": None, "status": "ok", "prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0,
        "latency": 0.0, "cache_hit": False, "attempts": 1,
    }


def hand_table() -> pd.DataFrame:
    # unit p00 (regular price 2.0) and p01 (2.5); levels 0.5 and 1.0; two buy answers each
    outcome = [("p00", 2.0, 0.5, 1), ("p00", 2.0, 0.5, 1), ("p00", 2.0, 1.0, 1), ("p00", 2.0, 1.0, 0),
               ("p01", 2.5, 0.5, 1), ("p01", 2.5, 0.5, 0), ("p01", 2.5, 1.0, 0), ("p01", 2.5, 1.0, 0)]
    # one competitor-price probe per unit x level
    probe = [("p00", 2.0, 0.5, 3.0), ("p00", 2.0, 1.0, 5.0), ("p01", 2.5, 0.5, 9.0),
             ("p01", 2.5, 1.0, 11.0)]
    rows = [_row(u, p, lv, "outcome", float(v), i) for i, (u, p, lv, v) in enumerate(outcome)]
    rows += [_row(u, p, lv, "probe", v, 100 + i) for i, (u, p, lv, v) in enumerate(probe)]
    return pd.DataFrame(rows)


def hand_study(outcome_col: str = "share"):
    human = (  # per-cell aggregates: n_column given
        {"product": "p00", "lvl": 0.5, "share": 0.8, "n": 10},
        {"product": "p00", "lvl": 1.0, "share": 0.4, "n": 10},
        {"product": "p01", "lvl": 0.5, "share": 0.6, "n": 10},
        {"product": "p01", "lvl": 1.0, "share": 0.2, "n": 10},
    )
    base = Baseline(source="humans.csv", unit_column="product", treatments={"price": "lvl"},
                    outcomes={"purchase": outcome_col}, n_column="n", rows=human)
    return make_study(n_units=2, levels=(0.5, 1.0), designs=(Design(name="blind", mode="blind"),),
                      analyses=("demand_curve", "leakage", "baseline"), baseline=base)


def test_hand_computed_mae_elasticity_and_leakage():
    study, df = hand_study(), hand_table()
    assert len(df) == 12
    res = analyze(study, df, n_boot=50)
    # shares: p00 @0.5 = 2/2 = 1.0, p00 @1.0 = 1/2 = 0.5, p01 @0.5 = 1/2 = 0.5, p01 @1.0 = 0/2 = 0
    # humans:        0.8                0.4                 0.6                  0.2
    # |errors|:      0.2                0.1                 0.1                  0.2
    # MAE = 0.6 / 4 = 0.15; RMSE = sqrt((.04 + .01 + .01 + .04) / 4) = sqrt(0.025)
    b = res.table("baseline_summary").iloc[0]
    assert b["mae"] == pytest.approx(0.15, abs=1e-12)
    assert b["rmse"] == pytest.approx(np.sqrt(0.025), abs=1e-12)
    assert b["n_cells"] == 4
    # pooled shares: 0.5 -> 3/4 = 0.75, 1.0 -> 1/4 = 0.25
    # arc: [(0.25 - 0.75) / 0.5] / [(1.0 - 0.5) / 0.75] = -1.0 / (2/3) = -1.5
    d = res.table("demand_summary").set_index(["scope", "unit_id"], drop=False)
    pooled = res.table("demand_summary").query("scope == 'pooled'").iloc[0]
    assert pooled["arc_elasticity"] == pytest.approx(-1.5, abs=1e-12)
    # unit p00: [(0.5 - 1) / 0.75] / (2/3) = -1.0 ; unit p01: [(0 - 0.5) / 0.25] / (2/3) = -3.0
    units = res.table("demand_summary").query("scope == 'unit'").set_index("unit_id")
    assert units.loc["p00", "arc_elasticity"] == pytest.approx(-1.0, abs=1e-12)
    assert units.loc["p01", "arc_elasticity"] == pytest.approx(-3.0, abs=1e-12)
    assert arc_elasticity(0.5, 0.75, 1.0, 0.25) == pytest.approx(-1.5, abs=1e-12)
    assert len(d) == 3
    # human arc: pooled human shares 0.7 -> 0.3: [(0.3 - 0.7) / 0.5] / (2/3) = -1.2
    assert b["arc_human"] == pytest.approx(-1.2, abs=1e-12)
    # leakage: p00 probes 3, 5 (mean 4) -> 0.75, 1.25; p01 probes 9, 11 (mean 10) -> 0.9, 1.1
    # x = (.5, 1, .5, 1), mean .75; y mean 1; Sxy = .0625 + .0625 + .025 + .025 = .175;
    # Sxx = 4 * .0625 = .25; slope = .175 / .25 = 0.7
    leak = res.table("leakage").iloc[0]
    assert leak["leakage_index"] == pytest.approx(0.7, abs=1e-12)


def test_bad_baseline_column_names_it():
    study = hand_study(outcome_col="purchase_share_typo")
    with pytest.raises(AnalysisError, match="purchase_share_typo"):
        analyze(study, hand_table(), requested=["baseline"])


def test_unsupported_analysis_says_why():
    with pytest.raises(AnalysisError, match="pins a covariate"):
        analyze(hand_study(), hand_table(), requested=["focalism"])
    with pytest.raises(AnalysisError, match="split"):
        analyze(hand_study(), hand_table(), requested=["range"])
    with pytest.raises(AnalysisError, match="unknown analysis"):
        analyze(hand_study(), hand_table(), requested=["nonsense"])


def test_observations_rules():
    df = hand_table()
    df.loc[0, ["valid", "status", "value"]] = [False, "invalid", None]
    df.loc[1, "probs"] = json.dumps({"purchase": 0.3, "not purchase": 0.7})
    obs = build_observations(hand_study(), df)
    inv = obs.invalid.set_index("kind")
    assert inv.loc["outcome", "invalid_calls"] == 1 and inv.loc["outcome", "calls"] == 8
    out = obs.outcomes()
    assert len(out) == 7
    assert out[out["trial_id"] == "t1"]["y"].iloc[0] == pytest.approx(0.3)  # P(first label)
    assert set(out["level"]) == {0.5, 1.0}


def _cat_row(level: str, kind: str, value: float, i: int) -> dict:
    row = _row("disease", 1.0, 0.0, kind, value, i)
    cell = f"frame={level}"
    row.update(unit=json.dumps({"scenario": "disease"}), cell=cell,
               target="choice" if kind == "outcome" else "severity",
               conditions=json.dumps([{"cell": cell, "levels": {"frame": level},
                                       "values": {"frame": level}}]))
    if kind == "outcome":
        row["answer"] = json.dumps({"type": "binary", "labels": ["A", "B"]})
    return row


def test_categorical_treatment_hand_computed():
    from llmexp.spec import AnswerSpec, Covariate, ModelSpec, Outcome, Probe, Study, Treatment, Units

    study = Study(
        name="framing", units=Units(name="scenario", key="scenario",
                                    columns={"scenario": "text"}, rows=({"scenario": "disease"},)),
        treatments=(Treatment(name="frame", levels=("gain", "loss"), value_type="text"),),
        covariates=(Covariate(name="severity", specified=False, probe=Probe(
            question="___ will die", answer=AnswerSpec(type="number", low=0, high=600))),),
        outcomes=(Outcome(name="choice", answer=AnswerSpec(type="binary", labels=("A", "B")),
                          question="Which?"),),
        context="...", designs=(Design(name="blind", mode="blind"),),
        models=(ModelSpec(name="m"),),
        baseline=Baseline(source="cells.csv", treatments={"frame": "frame"},
                          outcomes={"choice": "safe_share"}, n_column="n",
                          rows=({"frame": "gain", "safe_share": 0.7, "n": 100},
                                {"frame": "loss", "safe_share": 0.35, "n": 100})),
        analyses=("effects", "leakage", "baseline"))
    # gain: A A A B -> 0.75 ; loss: A B B B -> 0.25 ; severity probes 10, 10 | 14, 14
    outs = [("gain", 1), ("gain", 1), ("gain", 1), ("gain", 0),
            ("loss", 1), ("loss", 0), ("loss", 0), ("loss", 0)]
    rows = [_cat_row(lv, "outcome", float(v), i) for i, (lv, v) in enumerate(outs)]
    rows += [_cat_row(lv, "probe", v, 50 + i)
             for i, (lv, v) in enumerate([("gain", 10.0), ("gain", 10.0), ("loss", 14.0),
                                         ("loss", 14.0)])]
    res = analyze(study, pd.DataFrame(rows), n_boot=50)
    eff = res.table("effects").query("method == 'ols'").iloc[0]
    assert eff["estimate"] == pytest.approx(0.25 - 0.75, abs=1e-12)  # loss - gain
    assert eff["term"] == "loss vs gain"
    b = res.table("baseline_summary").iloc[0]
    # |0.75 - 0.7| = 0.05, |0.25 - 0.35| = 0.10 -> MAE 0.075; human effect 0.35 - 0.7 = -0.35
    assert b["mae"] == pytest.approx(0.075, abs=1e-12)
    assert b["effect_human"] == pytest.approx(-0.35, abs=1e-12)
    assert b["effect_diff"] == pytest.approx(-0.5 + 0.35, abs=1e-12)
    # unit mean 12: 10/12 and 14/12 -> index = 14/12 - 10/12 = 1/3
    leak = res.table("leakage").iloc[0]
    assert leak["leakage_index"] == pytest.approx(1 / 3, abs=1e-12)
    assert leak["contrast"] == "loss vs gain"


def test_aggregate_percent_answers_are_scaled():
    df = hand_table().iloc[:1].copy()
    conds = [{"cell": f"price={lv}", "levels": {"price": lv}, "values": {"price": lv * 2.0}}
             for lv in (0.5, 1.0)]
    df.loc[:, "mode"] = "aggregate"
    df.loc[:, "conditions"] = json.dumps(conds)
    df.loc[:, "answer"] = json.dumps({"type": "number", "low": 0, "high": 100,
                                      "per_condition": True})
    df.loc[:, "condition_values"] = json.dumps({"price=0.5": 80, "price=1.0": None})
    df["value"] = np.nan
    obs = build_observations(hand_study(), df)
    assert obs.table["y"].tolist() == [pytest.approx(0.8)]
    assert obs.invalid["missing_conditions"].sum() == 1
