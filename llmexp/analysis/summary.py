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


def build_summary(study, analyses: list, tables: dict[str, pd.DataFrame], n_responses: int,
                  not_run: dict[str, str] | None = None) -> dict:
    """summary.json: the run's identity, the invalid-answer counts and, per requested analysis
    (`base.Analysis` objects, in report order) that ran, its `summary_data`; analyses that
    could not run are listed under ``not_run`` with the reason."""
    not_run = not_run or {}
    s: dict[str, Any] = {
        "study": study.name,
        "study_hash": study.hash(),
        "analyses": [a.name for a in analyses],
        "n_responses": n_responses,
        "invalid": records(tables.get("invalid")),
    }
    for a in analyses:
        if a.name not in not_run:
            s[a.name] = a.summary_data(tables)
    if not_run:
        s["not_run"] = dict(not_run)
    return jsonable(s)
