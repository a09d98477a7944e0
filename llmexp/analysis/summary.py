"""`summary.json`: the headline numbers of each analysis, JSON-safe (NaN -> null)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd


def records(df: pd.DataFrame | None, columns: list[str] | None = None) -> list[dict]:
    if df is None or df.empty:
        return []
    if columns:
        df = df[[c for c in columns if c in df.columns]]
    return json.loads(df.to_json(orient="records", double_precision=10))


def jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return None if not np.isfinite(obj) else float(obj)
    return obj


def build_summary(study, requested: list[str], tables: dict[str, pd.DataFrame],
                  n_responses: int) -> dict:
    s: dict[str, Any] = {
        "study": study.name,
        "study_hash": study.hash(),
        "analyses": list(requested),
        "n_responses": n_responses,
        "invalid": records(tables.get("invalid")),
    }
    if "demand_curve" in requested:
        d = tables.get("demand_summary")
        s["demand_curve"] = records(d[d["scope"] == "pooled"] if d is not None and len(d) else d)
    if "effects" in requested:
        s["effects"] = records(tables.get("effects"))
    if "leakage" in requested:
        s["leakage"] = records(tables.get("leakage"))
    if "focalism" in requested:
        s["focalism"] = records(tables.get("focalism"))
    if "baseline" in requested:
        s["baseline"] = {"summary": records(tables.get("baseline_summary")),
                         "design_ranking": records(tables.get("design_ranking"))}
    if "range" in requested:
        s["range"] = records(tables.get("range"))
    if "refute" in requested:
        s["refute"] = records(tables.get("refute"))
    return jsonable(s)
