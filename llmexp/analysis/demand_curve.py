"""Demand curves: purchase share against the normalised price level, per unit and pooled.

Definitions (p = normalised price level, e.g. 0..2 x regular price; q = purchase share):

- midpoint (arc) elasticity between two levels:
  ``E_arc = [(q2 - q1) / ((q1 + q2) / 2)] / [(p2 - p1) / ((p1 + p2) / 2)]``
  (signed: negative when demand slopes down). ``arc_elasticity`` in the summary is E_arc
  between the lowest and the highest *paid* level; ``arcs`` lists it for each adjacent pair.
- log-log elasticity: slope of ``log q`` on ``log p`` over paid levels (p > 0) with q > 0
  (cells with q = 0 are dropped and counted). Per unit: OLS on the unit's cell shares.
  Pooled: ``log q[u,p] = a_u + e log p`` (unit fixed effects), cluster-robust by unit.
- the free level (p = 0) is reported separately: ``free_share``, ``first_paid_share`` and
  ``free_jump = free_share - first_paid_share``; it is excluded from elasticities and shape.
- monotonicity: over adjacent paid levels, ``increases`` counts rises of the share and
  ``significant_increases`` those whose z = diff / sqrt(se1^2 + se2^2) > z_(1-alpha/2).
- inverted U: ``y ~ p + p^2`` on the paid observations (pooled: + unit fixed effects,
  cluster-robust). Peak ``p* = -b1 / (2 b2)`` with a delta-method SE. Lind & Mehlum test:
  slope at the lowest paid level > 0 and slope at the highest < 0, both one-sided;
  ``inverted_u_p`` is the larger of the two p-values, ``inverted_u`` = b2 < 0 and p < alpha.

statsmodels and scipy are imported inside the fitting functions, so the analysis declaration
at the end stays light for `llmexp check` (see analysis/base.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp import answers
from llmexp.analysis._elasticity import (
    adjacent_arc,
    arc_elasticity,
    point_elasticities,
    ppml_elasticity,
)
from llmexp.analysis._stats import choose_cluster, fit_kwargs, z_for
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.analysis.summary import records
from llmexp.errors import AnalysisError
from llmexp.spec import Study

EPS = 1e-9
REFERENCE_LEVEL = 1.0  # the regular price: where point elasticities are reported
__all__ = ["EPS", "REFERENCE_LEVEL", "arc_elasticity", "demand_curves"]


def check_demand(study: Study) -> str:
    prim = primary_treatment(study)
    if not is_numeric_treatment(study, prim):
        raise AnalysisError(
            "demand_curve needs a numeric treatment (a price level); "
            f"treatment {prim!r} has non-numeric levels"
        )
    return prim


def _increase_tests(qp: np.ndarray, sp: np.ndarray, np_: np.ndarray, binary: bool,
                    alpha: float) -> dict:
    """Adjacent-pair tests of a rise in the share. A pair is testable when both cells hold at
    least two answers and the difference has a positive standard error (two-proportion
    pooled z for 0/1 cells, sqrt(se1^2 + se2^2) otherwise); equal shares with zero spread are
    testable and not significant. Untestable pairs are never counted as significant."""
    diff = np.diff(qp)
    n1, n2 = np_[:-1], np_[1:]
    if binary:
        pool = (qp[:-1] * n1 + qp[1:] * n2) / np.maximum(n1 + n2, 1)
        sed = np.sqrt(pool * (1 - pool) * (1 / np.maximum(n1, 1) + 1 / np.maximum(n2, 1)))
    else:
        sed = np.sqrt(sp[1:] ** 2 + sp[:-1] ** 2)
    enough = (n1 >= 2) & (n2 >= 2) & np.isfinite(sed)
    flat = enough & (sed <= 0) & (np.abs(diff) <= EPS)
    testable = enough & ((sed > 0) | flat)
    z = np.where(testable & (sed > 0), diff / np.where(sed > 0, sed, 1.0), 0.0)
    sig = testable & (z > z_for(alpha))
    n_test = int(testable.sum())
    why = "" if n_test == len(diff) else (
        f"{len(diff) - n_test} of {len(diff)} pairs untestable (a cell with fewer than two "
        "answers or no spread)")
    return dict(increases=int((diff > EPS).sum()),
                significant_increases=int(sig.sum()) if n_test else np.nan,
                testable_pairs=n_test, pairs=int(len(diff)), increase_test_note=why)


def _curve_shape(levels: np.ndarray, q: np.ndarray, se: np.ndarray, alpha: float,
                 n: np.ndarray | None = None, binary: bool = False) -> dict:
    order = np.argsort(levels)
    p, q, se = levels[order], q[order], se[order]
    n = np.full(len(p), np.inf) if n is None else np.asarray(n, float)[order]
    paid = p > EPS
    d: dict = {}
    free = np.where(~paid)[0]
    d["free_share"] = float(q[free[0]]) if len(free) else np.nan
    pp, qp, sp = p[paid], q[paid], se[paid]
    d["first_paid_share"] = float(qp[0]) if len(qp) else np.nan
    d["free_jump"] = d["free_share"] - d["first_paid_share"]
    d["arc_elasticity"], d["arc_levels"] = adjacent_arc(pp, qp, REFERENCE_LEVEL)
    d.update(_increase_tests(qp, sp, n[paid], binary, alpha))
    d["monotone_decreasing"] = bool(d["increases"] == 0)
    return d


def _loglog_columns(r: dict) -> dict:
    return dict(loglog_elasticity=r["estimate"], loglog_se=r["se"], loglog_ci_low=r["ci_low"],
                loglog_ci_high=r["ci_high"], loglog_dropped=0, loglog_zero_cells=r["zero_cells"],
                loglog_se_type=r["se_type"], loglog_note=r["reason"])


def _point_columns(r: dict) -> dict:
    return dict(point_elasticity=r["estimate"], point_level=r["level"], point_se=r["se"],
                point_ci_low=r["ci_low"], point_ci_high=r["ci_high"],
                point_method=r["method"], point_note=r["reason"])


def _quadratic(df: pd.DataFrame, pooled: bool, alpha: float) -> dict:
    import statsmodels.api as sm  # lazy: see the module docstring
    import statsmodels.formula.api as smf
    from scipy import stats

    paid = df[df["level"] > EPS]
    if paid["level"].nunique() < 3:
        return {}
    fe = " + C(unit_id)" if pooled and paid["unit_id"].nunique() > 1 else ""
    groups, se_type = choose_cluster(paid) if pooled else (None, "HC1")
    try:
        if fe:
            res = smf.ols("y ~ level + I(level ** 2)" + fe, data=paid).fit(**fit_kwargs(groups))
        else:  # the same model without patsy (per-unit fits are many and small)
            keep = paid["y"].notna() & paid["level"].notna()
            lv = paid.loc[keep, "level"].astype(float)
            exog = pd.DataFrame({"Intercept": 1.0, "level": lv, "I(level ** 2)": lv ** 2},
                                index=lv.index)
            res = sm.OLS(paid.loc[keep, "y"].astype(float), exog).fit(**fit_kwargs(groups))
    except (ValueError, np.linalg.LinAlgError):
        return {}
    b1, b2 = res.params["level"], res.params["I(level ** 2)"]
    cov = res.cov_params().loc[["level", "I(level ** 2)"], ["level", "I(level ** 2)"]].to_numpy()
    lo, hi = float(paid["level"].min()), float(paid["level"].max())
    out = dict(quad_b1=float(b1), quad_b2=float(b2), quad_b2_p=float(res.pvalues["I(level ** 2)"]),
               quad_se_type=se_type)
    if abs(b2) > EPS:
        peak = -b1 / (2 * b2)
        grad = np.array([-1 / (2 * b2), b1 / (2 * b2 ** 2)])
        pse = float(np.sqrt(max(grad @ cov @ grad, 0)))
        zq = z_for(alpha)
        out.update(peak=float(peak), peak_se=pse, peak_ci_low=float(peak - zq * pse),
                   peak_ci_high=float(peak + zq * pse))
    dist = (lambda t: stats.t.sf(t, res.df_resid)) if res.use_t else stats.norm.sf
    s_lo, s_hi = b1 + 2 * b2 * lo, b1 + 2 * b2 * hi
    v_lo = cov[0, 0] + 4 * lo * cov[0, 1] + 4 * lo * lo * cov[1, 1]
    v_hi = cov[0, 0] + 4 * hi * cov[0, 1] + 4 * hi * hi * cov[1, 1]
    p_lo = float(dist(s_lo / np.sqrt(v_lo))) if v_lo > 0 else np.nan
    p_hi = float(dist(-s_hi / np.sqrt(v_hi))) if v_hi > 0 else np.nan
    pu = max(p_lo, p_hi)
    out.update(slope_at_low=float(s_lo), slope_at_high=float(s_hi), inverted_u_p=pu,
               inverted_u=bool(b2 < 0 and pu < alpha))
    return out


def demand_curves(study: Study, obs: Observations, unit_cells: pd.DataFrame,
                  pooled_cells: pd.DataFrame, alpha: float = 0.05,
                  per_unit_quadratic: bool = True,
                  at: tuple[float, ...] = ()) -> dict[str, pd.DataFrame]:
    """`at`: levels (besides the regular price 1.0 and every paid level asked) at which
    `demand_elasticities` reports the point elasticity."""
    check_demand(study)
    outs = [o.name for o in study.outcomes if answers.get(o.answer).share]
    if not outs:
        raise AnalysisError("demand_curve needs a binary (buy / not buy) or probability outcome")
    summary: list[dict] = []
    arcs: list[dict] = []
    points: list[dict] = []
    data = obs.outcomes()
    uc = unit_cells.copy()
    uc["se"] = uc["sd"] / np.sqrt(uc["n"])
    uc.loc[uc["n"] < 2, "se"] = np.nan
    for (design, model, target), g in uc[uc["target"].isin(outs)].groupby(
            ["design", "model", "target"], sort=False):
        od = data[(data["design"] == design) & (data["model"] == model) & (data["target"] == target)]
        od_units = dict(iter(od.groupby("unit_id", sort=False)))
        key = dict(design=design, mode=g["mode"].iloc[0], model=model, outcome=target)
        for unit, gu in g.groupby("unit_id", sort=True):
            ou = od_units.get(unit, od.iloc[:0])
            sh = _curve_shape(gu["level"].to_numpy(float), gu["mean"].to_numpy(float),
                              gu["se"].to_numpy(float), alpha, gu["n"].to_numpy(float),
                              binary=bool((gu["interval"] == "wilson").all()))
            sh.update(_loglog_columns(ppml_elasticity(ou, alpha)))
            if per_unit_quadratic:
                sh.update(_quadratic(ou, False, alpha))
            summary.append(dict(key, scope="unit", unit_id=unit, **sh))
            arcs.extend(_arcs(gu, design, key["mode"], model, target, unit))
        pc = pooled_cells[(pooled_cells["design"] == design) & (pooled_cells["model"] == model)
                          & (pooled_cells["target"] == target)].sort_values("level")
        sh, pts = _pooled_shape(pc, od, alpha, at)
        sh.update(_unit_tally([r for r in summary if r["scope"] == "unit"
                               and r["design"] == design and r["model"] == model
                               and r["outcome"] == target]))
        summary.append(dict(key, scope="pooled", unit_id=None, **sh))
        points.extend(dict(key, **r) for r in pts)
        arcs.extend(_arcs(pc, design, key["mode"], model, target, None))
    return {"demand_summary": pd.DataFrame(summary), "demand_arcs": pd.DataFrame(arcs),
            "demand_elasticities": pd.DataFrame(points),
            "demand_points": pooled_cells[pooled_cells["target"].isin(outs)].reset_index(drop=True)}


def _unit_tally(rows: list[dict]) -> dict:
    """On the pooled row: how many units had a testable adjacent pair and how many of those
    a significant increase (untestable units are not counted either way)."""
    testable = [r for r in rows if r["testable_pairs"] > 0]
    return dict(units_testable=len(testable), units_total=len(rows),
                units_with_significant_increase=(
                    int(sum(r["significant_increases"] > 0 for r in testable))
                    if testable else np.nan))


def _pooled_shape(pc: pd.DataFrame, od: pd.DataFrame, alpha: float,
                  at: tuple[float, ...]) -> tuple[dict, list[dict]]:
    """Pooled curve: shape on the per-level means (SE from the unit-cluster bootstrap
    interval, missing when it is), PPML log-log, point elasticities and the quadratic."""
    pse = ((pc["ci_high"] - pc["ci_low"]) / (2 * z_for(alpha))).to_numpy(float)
    sh = _curve_shape(pc["level"].to_numpy(float), pc["mean"].to_numpy(float), pse, alpha,
                      pc["n"].to_numpy(float))
    sh.update(_loglog_columns(ppml_elasticity(od, alpha)))
    paid = sorted({float(v) for v in pc["level"] if v > EPS})
    levels = tuple(sorted({REFERENCE_LEVEL, *paid, *map(float, at)}))
    pts = point_elasticities(od, levels, alpha)
    ref = next(r for r in pts if r["level"] == REFERENCE_LEVEL)
    sh.update(_point_columns(ref))
    sh.update(_quadratic(od, True, alpha))
    return sh, pts


def _arcs(g: pd.DataFrame, design, mode, model, target, unit) -> list[dict]:
    g = g.sort_values("level")
    p, q = g["level"].to_numpy(float), g["mean"].to_numpy(float)
    return [dict(design=design, mode=mode, model=model, outcome=target,
                 scope="unit" if unit is not None else "pooled", unit_id=unit,
                 level_from=p[i], level_to=p[i + 1], share_from=q[i], share_to=q[i + 1],
                 arc_elasticity=arc_elasticity(p[i], q[i], p[i + 1], q[i + 1]),
                 includes_free=bool(p[i] <= EPS))
            for i in range(len(p) - 1)]


def _pooled_loglog(unit_cells: pd.DataFrame, alpha: float) -> dict:
    import statsmodels.formula.api as smf  # lazy: see the module docstring

    d = unit_cells[(unit_cells["level"] > EPS) & (unit_cells["mean"] > 0)].copy()
    if len(d) <= d["unit_id"].nunique() + 1 or d["level"].nunique() < 2:
        return {}  # no residual degrees of freedom
    d["lq"], d["lp"] = np.log(d["mean"]), np.log(d["level"])
    fe = " + C(unit_id)" if d["unit_id"].nunique() > 1 else ""
    groups, se_type = choose_cluster(d)
    res = smf.ols("lq ~ lp" + fe, data=d).fit(**fit_kwargs(groups))
    ci = res.conf_int(alpha).loc["lp"]
    dropped = int(((unit_cells["level"] > EPS) & ~(unit_cells["mean"] > 0)).sum())
    return dict(loglog_elasticity=float(res.params["lp"]), loglog_se=float(res.bse["lp"]),
                loglog_ci_low=float(ci.iloc[0]), loglog_ci_high=float(ci.iloc[1]),
                loglog_dropped=dropped, loglog_se_type=se_type)


def _pooled(summary: pd.DataFrame | None) -> pd.DataFrame | None:
    """The pooled rows of the demand summary (the per-unit rows stay in the table file)."""
    if summary is None or summary.empty or "scope" not in summary:
        return summary
    return summary[summary["scope"] == "pooled"]


def _ci(lo: float, hi: float, note: str) -> str:
    return f"[{lo:.2f}, {hi:.2f}]" if np.isfinite(lo) and np.isfinite(hi) else f"[n/a: {note}]"


@register
class DemandCurve(Analysis):
    name = "demand_curve"
    title = "Demand curves"
    description = "Pooled curves per design (elasticities exclude the free level)."
    report_tables = ("demand_summary",)
    order = 10

    def unsupported(self, study: Study) -> str | None:
        numeric = any(all(isinstance(v, (int, float)) for v in t.levels) for t in study.treatments)
        return None if numeric else "a demand curve needs a numeric treatment"

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return demand_curves(ctx.study, ctx.obs, ctx.unit_cells, ctx.pooled_cells, ctx.alpha)

    def summary_data(self, tables: dict[str, pd.DataFrame]) -> list[dict]:
        return records(_pooled(tables.get("demand_summary")))

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        d = tables.get("demand_summary")
        if d is None or not len(d):
            return []
        return [f"demand {r.design}: point elasticity at {r.point_level:g} "
                f"{r.point_elasticity:.2f} {_ci(r.point_ci_low, r.point_ci_high, r.point_note)}, "
                f"arc ({r.arc_levels}) {r.arc_elasticity:.2f}, log-log (PPML) "
                f"{r.loglog_elasticity:.2f} {_ci(r.loglog_ci_low, r.loglog_ci_high, r.loglog_note)}"
                f", inverted U={r.inverted_u}"
                for r in d[d["scope"] == "pooled"].itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.demand_figure(tables.get("demand_points"), out_dir, ctx.human_cells)

    def report_section(self, tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
        return [(name, _pooled(df)) for name, df in super().report_section(tables)]
