"""Comparison with human baselines (``study.baseline``).

Loading: ``study.baseline.rows`` are filtered by ``where``; ``treatments`` maps each treatment
to the column holding its LEVEL, ``outcomes`` each outcome to its column, ``unit_column`` the
unit key, ``n_column`` (when present) marks per-cell aggregates and ``retest`` maps outcomes to
a test-retest column. Every named column must exist (``AnalysisError`` names a missing one).

Per design x model x outcome, simulated per-cell means (unit x levels of the mapped treatments;
pooled over units when the baseline has no unit column, averaged over unmapped treatments) are
aligned with the human cells:

- ``mae`` = mean over aligned cells of |sim - human| (Gui & Toubia's headline metric), ``rmse``,
  ``correlation`` (Pearson over cells), ``bias`` = mean(sim - human);
- ``effect_sim`` / ``effect_human``: for a numeric treatment the OLS slope of the cell mean on
  the level (unit fixed effects), for a categorical one the mean at its last level minus the
  mean at its first; their difference and ratio; ``arc_sim`` / ``arc_human`` (numeric): pooled
  midpoint arc elasticity between the lowest and highest paid level (see demand.py);
- shape: ``sign_agreement`` = share of units whose slope has the human sign (categorical: 1 if
  the effect signs agree); ``direction_agreement`` = share of adjacent-level steps moving in
  the same direction;
- test-retest (Park et al.): with individual binary rows and a retest column,
  ``agent_accuracy`` = mean over humans of the chance a simulated answer from the same cell
  matches the human answer (p*a + (1-p)(1-a), p = simulated cell share),
  ``human_retest_accuracy`` = share of humans answering the same twice, and
  ``normalized_accuracy`` = agent / human. With a retest column, ``retest_mae`` = cell MAE of
  the retest against the test and ``mae_over_retest`` = mae / retest_mae.
- ``design_ranking``: designs by MAE with a bootstrap-over-units percentile interval, and
  ``mae_minus_reference`` (MAE minus the first design's, e.g. unblinded - blind) with a paired
  bootstrap-over-units interval (the same resampled units for both designs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from llmexp.analysis._stats import percentile_ci, safe_corr
from llmexp.analysis.demand import EPS, arc_elasticity
from llmexp.analysis.observations import is_numeric_treatment, primary_treatment, to_float
from llmexp.errors import AnalysisError
from llmexp.spec import Study


@dataclass
class BaselineData:
    cells: pd.DataFrame  # outcome, unit_id, level, n, mean, retest_mean
    individual: Optional[pd.DataFrame]  # outcome, unit_id, level, y, y_retest (None if aggregate)
    has_units: bool


def _key(v) -> float:
    return round(to_float(v), 9)


def _norm(v) -> str:
    """Canonical text of a level so '0.2', 0.2 and 0.20000000001 match; text stays text."""
    f = to_float(v)
    return repr(round(f, 9)) if np.isfinite(f) and not isinstance(v, bool) else str(v)


def cell_key(frame: pd.DataFrame, columns: dict[str, str]) -> pd.Series:
    """One string per row from the level columns of the mapped treatments (sorted by name)."""
    parts = [frame[col].map(lambda v, t=t: f"{t}={_norm(v)}") for t, col in sorted(columns.items())]
    out = parts[0]
    for p in parts[1:]:
        out = out + "|" + p
    return out


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
    prim = primary_treatment(study)
    if prim not in b.treatments:
        raise AnalysisError(
            f"baseline {b.source}: no level column mapped for treatment {prim!r} "
            "(add it to the baseline's treatments)"
        )
    if not b.outcomes:
        raise AnalysisError(f"baseline {b.source}: no outcome column mapped")
    level = df[b.treatments[prim]].map(_key)
    key = cell_key(df, dict(b.treatments))
    unit = df[b.unit_column].astype(str) if b.unit_column else pd.Series("all", index=df.index)
    cells, indiv = [], []
    gkeys = ["outcome", "unit_id", "key", "level"]
    for out, col in b.outcomes.items():
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


def _sim_cells(study: Study, unit_cells: pd.DataFrame, has_units: bool) -> pd.DataFrame:
    """Simulated cell means keyed like the human cells (averaged over unmapped treatments)."""
    mapped = {t: f"lvl__{t}" for t in study.baseline.treatments}
    s = unit_cells.copy()
    s["key"] = cell_key(s, mapped)
    if not has_units:
        s["unit_id"] = "all"
    s["_wy"] = s["mean"] * s["n"]
    s = s.groupby(["design", "mode", "model", "target", "unit_id", "key"], as_index=False,
                  sort=False).agg(_wy=("_wy", "sum"), n=("n", "sum"))
    s["mean"] = s["_wy"] / s["n"]
    return s[["design", "mode", "model", "target", "unit_id", "key", "mean", "n"]]


def _contrast(study: Study, df: pd.DataFrame, col: str) -> float:
    """Categorical primary treatment: mean at its last level minus mean at its first level."""
    t = study.treatment(primary_treatment(study))
    first, last = f"{t.name}={_norm(t.levels[0])}", f"{t.name}={_norm(t.levels[-1])}"
    m = df.groupby(df["key"].str.split("|").map(
        lambda parts: next((p for p in parts if p.startswith(t.name + "=")), "")))[col].mean()
    if first not in m or last not in m:
        return float("nan")
    return float(m[last] - m[first])


def _slope(df: pd.DataFrame, col: str) -> float:
    """OLS slope of col on level with unit fixed effects (within-unit demeaning)."""
    d = df[["unit_id", "level", col]].dropna()
    if d["level"].nunique() < 2:
        return float("nan")
    x = d["level"] - d.groupby("unit_id")["level"].transform("mean")
    y = d[col] - d.groupby("unit_id")[col].transform("mean")
    den = float((x * x).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _pooled_arc(df: pd.DataFrame, col: str) -> float:
    m = df[df["level"] > EPS].groupby("level")[col].mean().sort_index()
    if len(m) < 2:
        return float("nan")
    return arc_elasticity(m.index[0], m.iloc[0], m.index[-1], m.iloc[-1])


def _unit_signs(df: pd.DataFrame) -> float:
    agree = []
    for _, g in df.groupby("unit_id"):
        if g["level"].nunique() < 2:
            continue
        s, h = np.polyfit(g["level"], g["sim"], 1)[0], np.polyfit(g["level"], g["human"], 1)[0]
        agree.append(np.sign(s) == np.sign(h))
    return float(np.mean(agree)) if agree else float("nan")


def _direction(df: pd.DataFrame) -> float:
    agree = []
    for _, g in df.groupby("unit_id"):
        g = g.sort_values("level")
        ds, dh = np.sign(np.diff(g["sim"])), np.sign(np.diff(g["human"]))
        agree.extend(ds == dh)
    return float(np.mean(agree)) if agree else float("nan")


def _paired_differences(study: Study, cells: pd.DataFrame, alpha: float, n_boot: int,
                        seed: int) -> pd.DataFrame:
    """MAE of each design minus the reference design's (the first in the study), with a paired
    bootstrap over units (the same resampled units for both designs)."""
    rng = np.random.default_rng(seed + 1)
    order = [d.name for d in study.designs]
    out = []
    for (outcome, model), c in cells.groupby(["outcome", "model"], sort=False):
        present = [d for d in order if d in set(c["design"])]
        if not present:
            continue
        ref = present[0]
        units = sorted(c["unit_id"].unique())
        g = len(units)
        w = rng.multinomial(g, np.full(g, 1 / g), size=n_boot).astype(float) if g > 1 else None

        def boot(d: str) -> tuple[float, np.ndarray | None]:
            x = c[c["design"] == d]
            su = x.groupby("unit_id")["abs_error"].sum().reindex(units, fill_value=0.0).to_numpy()
            cu = x.groupby("unit_id")["abs_error"].size().reindex(units, fill_value=0).to_numpy(float)
            est = su.sum() / cu.sum()
            return est, (None if w is None else (w @ su) / np.maximum(w @ cu, 1e-12))

        r_est, r_b = boot(ref)
        for d in present:
            est, b = boot(d)
            lo, hi = (np.nan, np.nan) if b is None else percentile_ci(b - r_b, alpha)
            out.append(dict(outcome=outcome, model=model, design=d, reference=ref,
                            mae_minus_reference=est - r_est, diff_ci_low=lo, diff_ci_high=hi))
    return pd.DataFrame(out, columns=["outcome", "model", "design", "reference",
                                      "mae_minus_reference", "diff_ci_low", "diff_ci_high"])


def compare_baseline(study: Study, unit_cells: pd.DataFrame, obs_table: pd.DataFrame,
                     alpha: float = 0.05, n_boot: int = 1000, seed: int = 0
                     ) -> dict[str, pd.DataFrame]:
    bd = load_baseline(study)
    sim = _sim_cells(study, unit_cells, bd.has_units)
    numeric = is_numeric_treatment(study, primary_treatment(study))
    rng = np.random.default_rng(seed)
    summary, cellrows, ranking = [], [], []
    for out in bd.cells["outcome"].unique():
        hum = bd.cells[bd.cells["outcome"] == out]
        for (design, mode, model), s in sim[sim["target"] == out].groupby(
                ["design", "mode", "model"], sort=False):
            m = s.merge(hum, on=["unit_id", "key"], suffixes=("_sim", "_human"))
            if m.empty:
                raise AnalysisError(
                    f"baseline: no cells of design {design!r} match the human data on unit and "
                    "level (check the baseline's unit and level columns and their values)")
            m = m.rename(columns={"mean_sim": "sim", "mean_human": "human"})
            m["abs_error"] = (m["sim"] - m["human"]).abs()
            cellrows.append(m.assign(design=design, mode=mode, model=model, outcome=out)[
                ["design", "mode", "model", "outcome", "unit_id", "key", "level", "sim", "human",
                 "n_sim", "n_human", "abs_error"]])
            err = m["sim"] - m["human"]
            r, _ = safe_corr(m["sim"].to_numpy(float), m["human"].to_numpy(float))
            row = dict(design=design, mode=mode, model=model, outcome=out, n_cells=len(m),
                       mae=float(err.abs().mean()), rmse=float(np.sqrt((err ** 2).mean())),
                       bias=float(err.mean()), correlation=r)
            if numeric:
                es, eh = _slope(m, "sim"), _slope(m, "human")
                asim, ahum = _pooled_arc(m, "sim"), _pooled_arc(m, "human")
                row.update(arc_sim=asim, arc_human=ahum, arc_diff=asim - ahum,
                           arc_ratio=asim / ahum if ahum else np.nan)
                row.update(sign_agreement=_unit_signs(m), direction_agreement=_direction(m))
            else:
                es, eh = _contrast(study, m, "sim"), _contrast(study, m, "human")
                row.update(sign_agreement=float(np.sign(es) == np.sign(eh)))
            row.update(effect_kind="slope" if numeric else "last - first level",
                       effect_sim=es, effect_human=eh, effect_diff=es - eh,
                       effect_ratio=es / eh if eh else np.nan)
            if m["retest_mean"].notna().any():
                rmae = float((m["retest_mean"] - m["human"]).abs().mean())
                row.update(retest_mae=rmae, mae_over_retest=row["mae"] / rmae if rmae else np.nan)
            if bd.individual is not None and out in study.baseline.retest:
                ind = bd.individual[bd.individual["outcome"] == out].merge(
                    m[["unit_id", "key", "sim"]], on=["unit_id", "key"])
                if len(ind) and set(ind["y"].unique()) <= {0.0, 1.0}:
                    agent = float((ind["sim"] * ind["y"] + (1 - ind["sim"]) * (1 - ind["y"])).mean())
                    humacc = float((ind["y"] == ind["y_retest"]).mean())
                    row.update(agent_accuracy=agent, human_retest_accuracy=humacc,
                               normalized_accuracy=agent / humacc if humacc else np.nan)
            # bootstrap over units for the MAE
            units = m["unit_id"].to_numpy()
            codes, uniq = pd.factorize(units)
            g = len(uniq)
            if g > 1:
                sums = np.bincount(codes, weights=m["abs_error"].to_numpy(), minlength=g)
                cnt = np.bincount(codes, minlength=g).astype(float)
                w = rng.multinomial(g, np.full(g, 1 / g), size=n_boot).astype(float)
                lo, hi = percentile_ci((w @ sums) / (w @ cnt), alpha)
            else:
                lo, hi = np.nan, np.nan
            row.update(mae_ci_low=lo, mae_ci_high=hi)
            summary.append(row)
    summ = pd.DataFrame(summary)
    if len(summ):
        rank = summ.sort_values(["outcome", "model", "mae"]).copy()
        rank["rank"] = rank.groupby(["outcome", "model"]).cumcount() + 1
        ranking = rank[["outcome", "model", "rank", "design", "mode", "mae", "mae_ci_low",
                        "mae_ci_high", "n_cells"]]
        cells_all = pd.concat(cellrows, ignore_index=True)
        ranking = ranking.merge(_paired_differences(study, cells_all, alpha, n_boot, seed),
                                on=["outcome", "model", "design"], how="left")
    else:
        ranking = pd.DataFrame()
    hum_out = bd.cells.rename(columns={"mean": "human"})
    return {"baseline_summary": summ, "baseline_cells": pd.concat(cellrows, ignore_index=True)
            if cellrows else pd.DataFrame(), "design_ranking": ranking, "human_cells": hum_out}
