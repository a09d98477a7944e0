"""The vectorised `build_observations` gives exactly what the original per-row loop gave
(kept below as `_reference_build_observations`): same rows in the same order, same columns,
values and dtypes, same `invalid` table, on varied synthetic response tables."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis.observations import (
    REQUIRED,
    Observations,
    _answer_value,
    _loads,
    build_observations,
    primary_treatment,
    to_float,
)
from llmexp.errors import AnalysisError
from llmexp.spec import Design, Expr, Treatment
from tests.support.synthetic_responses import Truth, make_responses, make_study

# ---------------------------------------------------------------- reference (the old loop)

_CACHE: dict[str, Any] = {}


def _loads_cached(x: Any) -> Any:
    if isinstance(x, str):
        if x not in _CACHE:
            _CACHE[x] = _loads(x)
        return _CACHE[x]
    return _loads(x)


def _reference_build_observations(study, responses: pd.DataFrame) -> Observations:
    missing = [c for c in REQUIRED if c not in responses.columns]
    if missing:
        raise AnalysisError("missing columns")
    prim = primary_treatment(study)
    outcome_specs = {o.name: o.answer for o in study.outcomes}
    probe_specs = {c.name: c.probe.answer for c in study.covariates if c.probe is not None}
    recs: list[dict] = []
    inv: dict[tuple, list[int]] = {}
    exact_seen: set = set()
    cols = list(responses.columns)
    columns = [responses[c].tolist() for c in cols]
    for r in zip(*columns):
        row = dict(zip(cols, r))
        key = (row["design"], row["model"], row["kind"], row["target"])
        counts = inv.setdefault(key, [0, 0, 0, 0, 0])
        counts[0] += 1
        ok = bool(row.get("valid")) and row.get("status", "ok") in ("ok", None)
        if not ok:
            counts[1] += 1
            continue
        spec = outcome_specs.get(row["target"]) if row["kind"] == "outcome" else probe_specs.get(
            row["target"]
        )
        atype = spec.type if spec is not None else "number"
        labels = tuple(spec.labels) if spec is not None else ()
        binary = atype == "binary"
        conds = _loads_cached(row["conditions"]) or []
        answer = _loads_cached(row.get("answer")) or {}
        per_cond = bool(answer.get("per_condition")) or len(conds) > 1 or row["mode"] in (
            "within", "aggregate")
        unit = _loads_cached(row.get("unit")) or {}
        persona = _loads_cached(row.get("persona")) or {}
        pinned = _loads_cached(row.get("pinned")) or {}
        split = row.get("split")
        common = {
            "trial_id": row.get("trial_id"),
            "design": row["design"],
            "mode": row["mode"],
            "model": row["model"],
            "replicate": row.get("replicate", 0),
            "kind": row["kind"],
            "target": row["target"],
            "unit_id": str(row["unit_id"]),
            "persona_id": row.get("persona_id"),
            "split": split if isinstance(split, str) else None,
            "answer_type": atype,
        }
        for k, v in persona.items():
            common[f"persona__{k}"] = v
        for k, v in pinned.items():
            common[f"pin__{k}"] = v
        for k, v in unit.items():
            common[f"unit__{k}"] = v
        if per_cond:
            cv = _loads(row.get("condition_values")) or {}
            scale100 = binary and to_float(answer.get("high")) == 100
            for c in conds:
                counts[2] += 1
                raw = cv.get(c.get("cell"))
                y = _answer_value(raw, labels, binary)
                if scale100:
                    y = y / 100.0
                if np.isnan(y):
                    counts[3] += 1
                    continue
                recs.append(_cond_record(common, c, y, prim, study))
        else:
            counts[2] += 1
            y = float("nan")
            probs = _loads(row.get("probs"))
            if binary and isinstance(probs, dict) and labels and labels[0] in probs:
                y = to_float(probs[labels[0]])
                content = (key, row.get("messages"), row.get("params"))
                if content in exact_seen:
                    counts[4] += 1
                    continue
                exact_seen.add(content)
            if np.isnan(y):
                y = to_float(row.get("value"))
            if np.isnan(y):
                counts[3] += 1
                continue
            c = conds[0] if conds else {"cell": row.get("cell"), "levels": {}, "values": {}}
            recs.append(_cond_record(common, c, y, prim, study))
    table = pd.DataFrame(recs)
    if table.empty:
        raise AnalysisError("no valid responses to analyse (every call was invalid or failed)")
    for col in ("level", "shown", "y"):
        table[col] = table[col].astype(float)
    invalid = pd.DataFrame(
        [
            {"design": k[0], "model": k[1], "kind": k[2], "target": k[3], "calls": v[0],
             "invalid_calls": v[1], "conditions": v[2], "missing_conditions": v[3],
             "exact_copies": v[4], "invalid_share": v[1] / v[0] if v[0] else np.nan}
            for k, v in inv.items()
        ]
    )
    return Observations(table=table, invalid=invalid)


def _cond_record(common: dict, c: dict, y: float, prim: str, study) -> dict:
    rec = dict(common)
    levels = c.get("levels") or {}
    values = c.get("values") or {}
    rec["cell"] = c.get("cell")
    for t in study.treatments:
        rec[f"lvl__{t.name}"] = levels.get(t.name)
    lv = levels.get(prim)
    rec["level"] = to_float(lv)
    shown = values.get(prim, lv)
    rec["shown"] = to_float(shown)
    rec["y"] = float(y)
    return rec


# ---------------------------------------------------------------- scenarios

def _ref(name: str) -> Expr:
    return Expr(op="ref", value=name)


DESIGNS = (
    Design(name="within", mode="within", probes=False),
    Design(name="blind", mode="blind"),
    Design(name="pinned", mode="blind", pins={"competitor_price": _ref("products.regular_price")}),
    Design(name="unblinded", mode="unblinded", probes=False),
    Design(name="aggregate", mode="aggregate", split=((0.0, 1.0), (1.2, 2.0))),
)


def _check(study, responses):
    ref = _reference_build_observations(study, responses)
    new = build_observations(study, responses)
    pd.testing.assert_frame_equal(new.table, ref.table)
    pd.testing.assert_frame_equal(new.invalid, ref.invalid)
    assert list(new.table.columns) == list(ref.table.columns)
    assert list(new.table.dtypes) == list(ref.table.dtypes)
    return new


def test_default_benchmark_shape():
    study = make_study(n_units=6)
    _check(study, make_responses(study, Truth(draws=2), seed=1))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_designs_personas_invalid(seed):
    study = make_study(n_units=5, designs=DESIGNS)
    r = make_responses(study, Truth(draws=3, invalid_rate=0.15, n_personas=4, persona_sd=0.1),
                       seed=seed)
    _check(study, r)
    # shuffled rows: a persona row may come first or later (column order follows the records)
    _check(study, r.sample(frac=1.0, random_state=seed).reset_index(drop=True))


@pytest.mark.parametrize("otype", ["binary", "number", "likert", "probability"])
def test_outcome_types(otype):
    study = make_study(n_units=4, designs=DESIGNS, outcome_type=otype)
    _check(study, make_responses(study, Truth(draws=2, invalid_rate=0.1), seed=3))


def test_logprob_rows_with_exact_copies():
    study = make_study(n_units=4, designs=DESIGNS)
    r = make_responses(study, Truth(draws=4, logprobs=True, invalid_rate=0.1, n_personas=3), seed=4)
    # repeated prompts: replicates of one (design, unit, cell) share their messages
    r["messages"] = r["design"] + "|" + r["unit_id"] + "|" + r["conditions"] + "|" + r["kind"]
    # and some share the probability too (a copy with a NaN probability falls back to value)
    r.loc[r.index[::7], "probs"] = json.dumps({"purchase": None, "not purchase": 0.5})
    r.loc[r.index[::11], "params"] = json.dumps({"temperature": 0.5})
    obs = _check(study, r)
    assert obs.invalid["exact_copies"].sum() > 0


def test_categorical_and_second_treatment_and_fallback_cells():
    base = make_study(n_units=4, designs=DESIGNS)
    frame = Treatment(name="frame", levels=("a", "b"))
    study = base.model_copy(update={"treatments": (frame,) + base.treatments})
    r = make_responses(base, Truth(draws=2, invalid_rate=0.05), seed=5)
    conds = [json.loads(c) for c in r["conditions"]]
    for i, cs in enumerate(conds):
        for j, c in enumerate(cs):
            if (i + j) % 3 == 0:
                c["levels"]["frame"] = "ab"[(i + j) % 2]
            if (i + j) % 5 == 0:
                c["values"] = {}
    r["conditions"] = [json.dumps(c) for c in conds]
    # rows without listed conditions fall back to their own cell
    blind = r.index[r["mode"] == "blind"][::5]
    r.loc[blind, "conditions"] = "[]"
    # 0-100 scale per-condition binary answers, and some missing conditions
    within = r.index[r["mode"] == "within"]
    r.loc[within[::2], "answer"] = json.dumps({"type": "binary", "labels": ["purchase", "not purchase"],
                                               "high": 100, "per_condition": True})
    cv = r.loc[within, "condition_values"].map(lambda s: s if not isinstance(s, str) else json.dumps(
        {k: (v * 100 if i % 2 else "purchase") for i, (k, v) in enumerate(json.loads(s).items())
         if i % 4 != 3}))
    r.loc[within, "condition_values"] = cv
    _check(study, r)
    # primary treatment is the numeric one; the categorical one gets its lvl__ column
    _check(base, r)


def test_missing_optional_columns_and_odd_values():
    study = make_study(n_units=3, designs=DESIGNS)
    r = make_responses(study, Truth(draws=2, invalid_rate=0.2, n_personas=2), seed=6)
    _check(study, r.drop(columns=["status", "probs", "replicate", "trial_id", "persona",
                                  "pinned", "unit", "split", "cell"]))
    r2 = r.copy()
    r2["valid"] = r2["valid"].astype(object)
    r2.loc[r2.index[::9], "valid"] = None
    r2["status"] = r2["status"].astype(object)
    r2.loc[r2.index[::13], "status"] = None
    r2["unit_id"] = np.arange(len(r2)) % 3
    r2.loc[r2.index[::17], "value"] = np.nan
    _check(study, r2)


def test_parquet_roundtrip_arrow_strings(tmp_path):
    study = make_study(n_units=4, designs=DESIGNS)
    r = make_responses(study, Truth(draws=2, invalid_rate=0.1, n_personas=3, logprobs=True), seed=7)
    p = tmp_path / "r.parquet"
    r.to_parquet(p)
    _check(study, pd.read_parquet(p))


def test_all_invalid_raises_in_both():
    study = make_study(n_units=2)
    r = make_responses(study, Truth(draws=1), seed=8)
    r["valid"] = False
    with pytest.raises(AnalysisError):
        _reference_build_observations(study, r)
    with pytest.raises(AnalysisError):
        build_observations(study, r)
