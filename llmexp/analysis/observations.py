"""Explode the response table into one row per (call, condition) with a numeric outcome.

Every analysis starts here. Rules (see docs/analysis.md):

- only valid rows (``valid`` true and ``status == "ok"``) are kept; invalid calls and
  missing per-condition answers are counted in ``Observations.invalid``;
- binary outcomes: ``y`` = P(first label) when ``probs`` is present, else the 0/1 ``value``;
  per-condition answers (``within``/``aggregate``) come from ``condition_values``; a
  per-condition binary answer given on a 0-100 scale (answer spec ``high == 100``) is divided
  by 100 so shares are always in [0, 1];
- each treatment gets ``lvl__<name>`` (the level as given) and the primary treatment (the first
  with numeric levels) gets ``level`` (float: the normalised level, e.g. 0..2 x regular price)
  and ``shown`` (the value stated in the prompt, float when numeric);
- persona attributes become ``persona__<attr>``, pinned covariates ``pin__<name>`` and unit
  columns ``unit__<col>``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pandas as pd

from llmexp.errors import AnalysisError
from llmexp.spec import Study

REQUIRED = ("design", "mode", "model", "kind", "target", "unit_id", "conditions", "valid", "value")


_CACHE: dict[str, Any] = {}


def _loads_cached(x: Any) -> Any:
    """_loads for repeated strings (unit, persona, pinned, answer); callers must not mutate."""
    if isinstance(x, str):
        if x not in _CACHE:
            if len(_CACHE) > 100_000:
                _CACHE.clear()
            _CACHE[x] = _loads(x)
        return _CACHE[x]
    return _loads(x)


def _loads(x: Any) -> Any:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return None
    if isinstance(x, (dict, list)):
        return x
    try:
        return json.loads(x)
    except (TypeError, ValueError):
        return None


def to_float(x: Any) -> float:
    """Best-effort number: floats, ints, bools, '$9.43', '12%'; NaN otherwise."""
    if x is None:
        return float("nan")
    if isinstance(x, bool):
        return float(x)
    if isinstance(x, (int, float, np.number)):
        return float(x)
    s = str(x).strip().replace("$", "").replace(",", "").rstrip("%").strip()
    try:
        return float(s)
    except ValueError:
        return float("nan")


def primary_treatment(study: Study) -> str:
    """First treatment whose levels are all numeric (else the first treatment)."""
    for t in study.treatments:
        if all(not np.isnan(to_float(v)) and not isinstance(v, bool) for v in t.levels):
            return t.name
    return study.treatments[0].name


def is_numeric_treatment(study: Study, name: str) -> bool:
    t = study.treatment(name)
    return all(not isinstance(v, (str, bool)) for v in t.levels)


@dataclass
class Observations:
    table: pd.DataFrame  # one row per valid (call, condition)
    invalid: pd.DataFrame  # per design/model/kind/target: calls, invalid calls, missing, exact copies

    def outcomes(self, name: Optional[str] = None) -> pd.DataFrame:
        t = self.table[self.table["kind"] == "outcome"]
        return t if name is None else t[t["target"] == name]

    def probes(self, name: Optional[str] = None) -> pd.DataFrame:
        t = self.table[self.table["kind"] == "probe"]
        return t if name is None else t[t["target"] == name]


def _answer_value(raw: Any, labels: tuple, binary: bool) -> float:
    if isinstance(raw, str) and labels:
        if raw == labels[0]:
            return 1.0 if binary else 0.0
        if raw in labels:
            return 0.0 if binary else float(labels.index(raw))
    return to_float(raw)


def build_observations(study: Study, responses: pd.DataFrame) -> Observations:
    missing = [c for c in REQUIRED if c not in responses.columns]
    if missing:
        raise AnalysisError(
            f"the response table lacks column(s) {', '.join(missing)} (see docs/artifacts.md)"
        )
    prim = primary_treatment(study)
    outcome_specs = {o.name: o.answer for o in study.outcomes}
    probe_specs = {c.name: c.probe.answer for c in study.covariates if c.probe is not None}
    recs: list[dict] = []
    inv: dict[tuple, list[int]] = {}
    # A probability read from log-probabilities is exact for its prompt: asking the same
    # prompt again (a replicate) returns the same number, not a new draw. Such copies are
    # kept once, so they cannot pass for independent observations and shrink intervals.
    exact_seen: set = set()
    cols = list(responses.columns)
    columns = [responses[c].tolist() for c in cols]
    for r in zip(*columns):
        row = dict(zip(cols, r))
        key = (row["design"], row["model"], row["kind"], row["target"])
        counts = inv.setdefault(key, [0, 0, 0, 0, 0])  # calls, invalid calls, conds, missing, copies
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


def _cond_record(common: dict, c: dict, y: float, prim: str, study: Study) -> dict:
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
