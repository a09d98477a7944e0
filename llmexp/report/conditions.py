"""Results by condition: the numbers a reader looks for first, in tidy frames for the report.

Built from tables every analysis run has (`pooled_cells`: the mean per design x model x
outcome x condition, pooled over units, with its interval) and, when they exist, the
effects analysis's `option_shares` (categorical outcomes: an option index has no meaningful
mean) and the baseline's `human_cells` / `baseline_cells` (human numbers beside simulated
ones). Tables are recognised by name and columns, never by which analysis wrote them.

A condition's cell id is ``treatment=level`` joined by ``|``; `conditions` splits it into one
column per treatment so a factorial can be drawn as an interaction plot. Levels are matched
to the human cells through `humans.level_text` so ``0``, ``0.0`` and ``"0.0"`` agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

import numpy as np
import pandas as pd

from llmexp.analysis._stats import wilson
from llmexp.analysis.humans import level_text
from llmexp.spec import Study

MAX_SIDE_BY_SIDE = 40  # rows of the simulated-vs-human table before it is cut
MAX_UNIT_ROWS = 6  # up to this many units, a numeric outcome is drawn per unit (scales differ)
SCALE_RATIO = 5.0  # ... when the units' typical answers differ more than this many times


def split_cell(cell, names: Iterable[str] = ()) -> dict[str, str]:
    """``"frame=gain,source=expert"`` (or ``|``-joined) -> {"frame": "gain", "source":
    "expert"}; a separator counts only before a treatment name in `names` (level texts may
    hold commas)."""
    text = str(cell)
    names = [n for n in names if n]
    if names:
        alt = "|".join(re.escape(n) for n in sorted(names, key=len, reverse=True))
        parts = re.split(rf"[,|](?=(?:{alt})=)", text)
    else:
        parts = text.split("|")
    out: dict[str, str] = {}
    for part in parts:
        name, _, value = part.partition("=")
        out[name] = value
    return out


def canonical(cell, names: Iterable[str] = ()) -> str:
    """A cell id with every level in `level_text` form (how the human cells are keyed)."""
    return "|".join(f"{t}={level_text(v)}" for t, v in sorted(split_cell(cell, names).items()))


def outcome_kind(study: Study, name: str) -> tuple[bool, bool, str]:
    """(categorical, share, first label) of an outcome, asked of its answer type."""
    from llmexp import answers

    out = next((o for o in study.outcomes if o.name == name), None)
    if out is None:
        return False, False, ""
    a = answers.get(out.answer)
    labels = list(getattr(a, "labels", []) or [])
    return bool(getattr(a, "categorical", False)), bool(a.first_label_share), labels[0] if labels else ""


def means(study: Study, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The simulated mean (or first-label share) per design x model x outcome x condition,
    with a ``condition`` label and one ``t:NAME`` column per treatment; categorical outcomes
    are left out (see `shares`)."""
    cells = tables.get("pooled_cells")
    if cells is None or cells.empty or "cell" not in cells:
        return pd.DataFrame()
    keep = [not outcome_kind(study, str(t))[0] for t in cells["target"]]
    d = cells[keep].copy()
    if d.empty:
        return d
    d = d.rename(columns={"target": "outcome"})
    return _with_conditions(study, _order(study, d))


def _different_scales(d: pd.DataFrame) -> bool:
    """Do the units' typical answers differ more than `SCALE_RATIO`-fold (miles vs babies)?"""
    typical = d.groupby("unit_id")["mean"].apply(lambda m: float(np.nanmedian(np.abs(m))))
    low, high = float(typical.min()), float(typical.max())
    return bool(np.isfinite(high) and (low <= 0 or high / low > SCALE_RATIO))


def unit_means(study: Study, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per-unit means of the numeric outcomes (not shares) of a study with 2 to
    `MAX_UNIT_ROWS` units whose answers are on different scales: pooling estimates of miles,
    feet and babies into one mean says nothing, so these are drawn one unit per row. Empty
    when pooling is the better picture."""
    cells = tables.get("unit_cells")
    if cells is None or cells.empty or not {"cell", "unit_id"} <= set(cells.columns):
        return pd.DataFrame()
    if not 1 < cells["unit_id"].nunique() <= MAX_UNIT_ROWS:
        return pd.DataFrame()
    keep = [not any(outcome_kind(study, str(t))[:2]) for t in cells["target"]]
    d = cells[keep].rename(columns={"target": "outcome"})
    scaled = [o for o, g in d.groupby("outcome", sort=False) if _different_scales(g)] if len(d) else []
    d = d[d["outcome"].isin(scaled)]
    return _with_conditions(study, _order(study, d)) if len(d) else pd.DataFrame()


def shares(study: Study, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per categorical outcome, condition and option: the share choosing it (`option_shares`)."""
    s = tables.get("option_shares")
    if s is None or s.empty or "cell" not in s:
        return pd.DataFrame()
    return _with_conditions(study, _order(study, s.copy()))


def _order(study: Study, d: pd.DataFrame) -> pd.DataFrame:
    """Rows in the study's order: designs as declared, conditions in level order."""
    designs = {x.name: i for i, x in enumerate(study.designs)}
    levels = {t.name: {level_text(v): i for i, v in enumerate(t.levels)} for t in study.treatments}

    def rank(cell) -> tuple:
        return tuple(levels.get(t, {}).get(level_text(v), 10**6) for t, v in split_cell(cell, levels).items())

    d = d.assign(_d=d["design"].map(lambda x: designs.get(x, 10**6)), _c=d["cell"].map(rank))
    return d.sort_values(["_d", "model", "_c"], kind="stable").drop(columns=["_d", "_c"])


def _with_conditions(study: Study, d: pd.DataFrame) -> pd.DataFrame:
    names = [t.name for t in study.treatments]
    parts = d["cell"].map(lambda c: split_cell(c, names))
    names = list(dict.fromkeys(n for p in parts for n in p))
    for n in names:
        d[f"t:{n}"] = parts.map(lambda p, n=n: p.get(n, ""))
    d["condition"] = parts.map(lambda p: " · ".join(p.values()) if len(p) > 1 else next(iter(p.values()), ""))
    d["key"] = d["cell"].map(lambda c: canonical(c, names))
    return d.reset_index(drop=True)


def humans(study: Study, tables: dict[str, pd.DataFrame], alpha: float = 0.05) -> pd.DataFrame:
    """Human number per outcome x condition, pooled over units (weighted by n), with an
    interval when one unit holds the cell (from `baseline_cells`) or, for a share with a
    count, Wilson on the pooled n; ``human_interval`` says which (or why none)."""
    h = tables.get("human_cells")
    if h is None or h.empty or not {"outcome", "key", "human"} <= set(h.columns):
        return pd.DataFrame()
    h = h.copy()
    names = [t.name for t in study.treatments]
    h["key"] = h["key"].map(lambda c: canonical(c, names))
    h["n"] = pd.to_numeric(h.get("n", 1.0), errors="coerce").fillna(1.0)
    rows = []
    for (outcome, key), g in h.groupby(["outcome", "key"], sort=False):
        n = float(g["n"].sum())
        value = float(np.average(g["human"].astype(float), weights=g["n"])) if n > 0 else float(g["human"].mean())
        share = outcome_kind(study, str(outcome))[1]
        lo, hi, how = _human_interval(tables, (outcome, key, names), g, value, n, share, alpha)
        rows.append(dict(outcome=outcome, key=key, human=value, human_ci_low=lo, human_ci_high=hi, human_n=n, human_units=len(g), human_interval=how))
    return pd.DataFrame(rows)


def _human_interval(tables, where, g, value, n, share, alpha) -> tuple[float, float, str]:
    outcome, key, names = where
    bc = tables.get("baseline_cells")
    if len(g) == 1 and bc is not None and not bc.empty and "human_ci_low" in bc:
        m = bc[(bc["outcome"] == outcome) & (bc["key"].map(lambda c: canonical(c, names)) == key)]
        if len(m) and np.isfinite(m["human_ci_low"].iloc[0]):
            return float(m["human_ci_low"].iloc[0]), float(m["human_ci_high"].iloc[0]), str(m.get("human_interval", pd.Series(["published"])).iloc[0])
    if share and n >= 1 and g["human"].between(0, 1).all():
        lo, hi = wilson(value * n, n, alpha)
        return float(lo), float(hi), f"Wilson on the pooled n over {len(g)} units"
    return math.nan, math.nan, "no interval: the human cell gives no spread"


def side_by_side(sim: pd.DataFrame, hum: pd.DataFrame) -> pd.DataFrame:
    """Simulated and human numbers for the same condition, one row per design x model x
    outcome x condition with a human number; ``difference`` = simulated - human."""
    if sim.empty or hum.empty:
        return pd.DataFrame()
    m = sim.merge(hum, on=["outcome", "key"], how="inner")
    if m.empty:
        return m
    m = m.rename(columns={"mean": "simulated", "ci_low": "simulated_ci_low", "ci_high": "simulated_ci_high", "n": "simulated_n"})
    m["difference"] = m["simulated"] - m["human"]
    cols = [
        "design",
        "model",
        "outcome",
        "condition",
        "simulated",
        "simulated_ci_low",
        "simulated_ci_high",
        "human",
        "human_ci_low",
        "human_ci_high",
        "human_n",
        "difference",
    ]
    return m[[c for c in cols if c in m.columns]].reset_index(drop=True)
