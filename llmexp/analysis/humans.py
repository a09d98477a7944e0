"""The human baseline (``study.baseline``) as tables, shared by the analyses that use it.

``study.baseline.rows`` are filtered by ``where``; ``treatments`` maps each treatment to the
column holding its LEVEL, ``outcomes`` each outcome to its column, ``unit_column`` the unit
key, ``n_column`` (when present) marks per-cell aggregates and ``retest`` maps outcomes to a
test-retest column. Every named column must exist (``AnalysisError`` names a missing one).

The `baseline` analysis compares the simulated cells with these, `focalism` tests the humans
for the same step and the demand-curve figure overlays them; `core.analyze` loads them once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from llmexp.analysis.observations import primary_treatment, to_float
from llmexp.errors import AnalysisError
from llmexp.spec import Study


@dataclass
class BaselineData:
    cells: pd.DataFrame  # outcome, unit_id, level, n, mean, retest_mean
    individual: pd.DataFrame | None  # outcome, unit_id, level, y, y_retest (None if aggregate)
    has_units: bool


def _key(v) -> float:
    return round(to_float(v), 9)


def level_text(v) -> str:
    """Canonical text of a level so '0.2', 0.2 and 0.20000000001 match; text stays text."""
    f = to_float(v)
    return repr(round(f, 9)) if np.isfinite(f) and not isinstance(v, bool) else str(v)


def cell_key(frame: pd.DataFrame, columns: dict[str, str]) -> pd.Series:
    """One string per row from the level columns of the mapped treatments (sorted by name)."""
    parts = [frame[col].map(lambda v, t=t: f"{t}={level_text(v)}") for t, col in sorted(columns.items())]
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out


def _cell_outcomes(study: Study) -> dict[str, str]:
    """The compared outcomes that are one number per cell: a categorical outcome is compared
    per option (`baseline_kinds.py`), never as its mean option index."""
    from llmexp import answers

    assert study.baseline is not None
    kinds = {o.name: answers.get(o.answer).categorical for o in study.outcomes}
    return {o: c for o, c in study.baseline.outcomes.items() if not kinds.get(o, False)}


def load_baseline(study: Study) -> BaselineData:
    b = study.baseline
    if b is None:
        raise AnalysisError("baseline: the study declares no human baseline (add a baseline block)")
    if not b.rows:
        raise AnalysisError(f"baseline: no rows were loaded from {b.source}")
    df = pd.DataFrame(list(b.rows))
    needed = []
    if b.unit_column:
        needed.append(("unit column", b.unit_column))
    needed += [(f"level column for treatment {t!r}", c) for t, c in b.treatments.items()]
    needed += [(f"column for outcome {o!r}", c) for o, c in b.outcomes.items()]
    if b.n_column:
        needed.append(("n column", b.n_column))
    needed += [(f"retest column for outcome {o!r}", c) for o, c in b.retest.items()]
    needed += [("where column", c) for c in b.where]
    needed += [(f"effect column for outcome {o!r}", c) for o, c in b.effects.items()]
    needed += [("option column", b.option_column)] if b.option_column else []
    for what, col in needed:
        if col not in df.columns:
            raise AnalysisError(
                f"baseline {b.source}: {what} {col!r} is not in the data "
                f"(columns: {', '.join(map(str, df.columns))})"
            )
    for col, val in b.where.items():
        df = df[df[col].astype(str) == str(val)]
    if df.empty:
        raise AnalysisError(f"baseline {b.source}: no rows left after where {dict(b.where)}")
    cell_outcomes = _cell_outcomes(study)
    if not cell_outcomes:  # only effect sizes or option shares (baseline_kinds.py reads those)
        return BaselineData(cells=pd.DataFrame(columns=["outcome", "unit_id", "key", "level", "n", "mean", "retest_mean"]),
                            individual=None, has_units=bool(b.unit_column))
    prim = primary_treatment(study)
    if prim not in b.treatments:
        raise AnalysisError(
            f"baseline {b.source}: no level column mapped for treatment {prim!r} "
            "(add it to the baseline's treatments)"
        )
    level = df[b.treatments[prim]].map(_key)
    key = cell_key(df, dict(b.treatments))
    unit = df[b.unit_column].astype(str) if b.unit_column else pd.Series("all", index=df.index)
    cells, indiv = [], []
    gkeys = ["outcome", "unit_id", "key", "level"]
    for out, col in cell_outcomes.items():
        y = df[col].map(to_float)
        rt = df[b.retest[out]].map(to_float) if out in b.retest else pd.Series(np.nan, index=df.index)
        frame = pd.DataFrame({"outcome": out, "unit_id": unit, "key": key, "level": level, "y": y,
                              "y_retest": rt})
        frame = frame[np.isfinite(frame["y"])]
        if b.n_column:
            n = df.loc[frame.index, b.n_column].map(to_float)
            frame = frame.assign(n=n, _wy=frame["y"] * n, _wr=frame["y_retest"] * n)
            agg = frame.groupby(gkeys, as_index=False, dropna=False)[["n", "_wy", "_wr"]].sum(
                min_count=1)
            agg["mean"] = agg["_wy"] / agg["n"]
            agg["retest_mean"] = agg["_wr"] / agg["n"]
            cells.append(agg.drop(columns=["_wy", "_wr"]))
        else:
            indiv.append(frame)
            cells.append(frame.groupby(gkeys, as_index=False, dropna=False).agg(
                n=("y", "size"), mean=("y", "mean"), retest_mean=("y_retest", "mean")))
    return BaselineData(cells=pd.concat(cells, ignore_index=True),
                        individual=pd.concat(indiv, ignore_index=True) if indiv else None,
                        has_units=bool(b.unit_column))
