"""Comparison with human baselines (``study.baseline``, loaded by `humans.load_baseline`).

Per design x model x outcome, simulated per-cell means (unit x levels of the mapped treatments;
pooled over units when the baseline has no unit column, averaged over unmapped treatments) are
aligned with the human cells:

- ``mae`` = mean over aligned cells of |sim - human| (Gui & Toubia's headline metric), ``rmse``,
  ``correlation`` (Pearson over cells), ``bias`` = mean(sim - human);
- ``effect_sim`` / ``effect_human``: for a numeric treatment the OLS slope of the cell mean on
  the level (unit fixed effects), for a categorical one the mean at its last level minus the
  mean at its first; their difference and ratio; ``arc_sim`` / ``arc_human`` (numeric): pooled
  midpoint arc elasticity between the lowest and highest paid level (see demand_curve.py);
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

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp.analysis._stats import percentile_ci, safe_corr
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.demand_curve import EPS, arc_elasticity
from llmexp.analysis.humans import cell_key, level_text, load_baseline
from llmexp.analysis.observations import is_numeric_treatment, primary_treatment
from llmexp.analysis.summary import records
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def _sim_cells(study: Study, unit_cells: pd.DataFrame, has_units: bool) -> pd.DataFrame:
    """Simulated cell means keyed like the human cells (averaged over unmapped treatments)."""
    assert study.baseline is not None  # compare_baseline loaded it
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
    first, last = f"{t.name}={level_text(t.levels[0])}", f"{t.name}={level_text(t.levels[-1])}"
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

        def boot(d: str, c=c, units=units, w=w) -> tuple[float, np.ndarray | None]:
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
            if bd.individual is not None and study.baseline is not None and out in study.baseline.retest:
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


@register
class Baseline(Analysis):
    name = "baseline"
    title = "Human baseline"
    description = ("Per-cell MAE vs humans (bootstrap-over-units 95% CI), shape and elasticity "
                   "agreement, test-retest normalisation.")
    report_tables = ("design_ranking", "baseline_summary")
    order = 50

    def unsupported(self, study: Study) -> str | None:
        return "the study has no baseline statement" if study.baseline is None else None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return compare_baseline(ctx.study, ctx.unit_cells, ctx.obs.table, ctx.alpha, ctx.n_boot,
                                ctx.seed)

    def summary_data(self, tables: dict[str, pd.DataFrame]) -> dict:
        return {"summary": records(tables.get("baseline_summary")),
                "design_ranking": records(tables.get("design_ranking"))}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        r = tables.get("design_ranking")
        if r is None or not len(r):
            return []
        return [f"baseline rank {x.rank}: {x.design} MAE {x.mae:.3f} "
                f"[{x.mae_ci_low:.3f}, {x.mae_ci_high:.3f}]" for x in r.itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return (plots.error_heatmap(tables.get("baseline_cells"), out_dir)
                + plots.ranking_figure(tables.get("design_ranking"), out_dir))
