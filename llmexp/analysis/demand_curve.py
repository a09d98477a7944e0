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

from llmexp import answers, modes
from llmexp.analysis._elasticity import (
    adjacent_arc,
    arc_elasticity,
    point_elasticities,
    ppml_elasticity,
    ppml_from_cells,
    unit_level_cells,
)
from llmexp.analysis._honest import finite, num, reason_text, within_rank
from llmexp.analysis._stats import choose_cluster, fit_kwargs, z_for
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.grouped import is_cells
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.analysis.summary import records
from llmexp.errors import AnalysisError
from llmexp.spec import Study

EPS = 1e-9
REFERENCE_LEVEL = 1.0  # the regular price: where point elasticities are reported
__all__ = ["EPS", "REFERENCE_LEVEL", "arc_elasticity", "demand_curves"]


_NO_CELLS = pd.DataFrame({"unit_id": pd.Series(dtype=str), "level": pd.Series(dtype=float),
                          "y": pd.Series(dtype=float), "n": pd.Series(dtype=np.int64)})


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
    paid = df[df["level"] > EPS]
    if paid["level"].nunique() < 3:
        return {}
    if is_cells(paid):
        fit = _quadratic_cells(paid, pooled)
        if fit is None:  # say why the columns are empty rather than leave them blank
            return {"quad_se_type": "not computed from cells: the answers-level fit clusters "
                                    "by call or persona (analyse the table in memory)"}
        return _quadratic_tests(paid, fit, alpha)
    import statsmodels.api as sm  # lazy: see the module docstring
    import statsmodels.formula.api as smf

    fe = " + C(unit_id)" if pooled and paid["unit_id"].nunique() > 1 else ""
    why = _quadratic_refusal(paid, bool(fe))
    if why:
        return {"quad_se_type": why}
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
    cov = res.cov_params().loc[["level", "I(level ** 2)"], ["level", "I(level ** 2)"]].to_numpy()
    fit = dict(b1=float(res.params["level"]), b2=float(res.params["I(level ** 2)"]), cov=cov,
               b2_p=float(res.pvalues["I(level ** 2)"]), se_type=se_type,
               df=res.df_resid if res.use_t else None)
    return _quadratic_tests(paid, fit, alpha)


def _quadratic_refusal(paid: pd.DataFrame, fe: bool) -> str:
    """Why the quadratic cannot be fitted ('' when it can): with unit intercepts only the
    variation of (p, p^2) within units identifies it, and it needs a residual df."""
    lv = paid["level"].to_numpy(float)
    units = paid["unit_id"].astype(str).to_numpy() if fe else np.zeros(len(lv))
    if within_rank(np.column_stack([lv, lv ** 2]), units) < 2:
        return ("not fitted: too few levels asked within units to identify a curvature "
                "beside the unit intercepts")
    n_params = 2 + (len(set(units)) if fe else 1)
    if len(lv) <= n_params:
        return "not fitted: no residual degrees of freedom"
    return ""


def _quadratic_cells(paid: pd.DataFrame, pooled: bool) -> dict | None:
    """The quadratic's fit and covariance from cells (grouped.py): WLS on cell means, HC1
    from each cell's m2 + n (mean - fit)^2, cluster-by-unit scores from its n (mean - fit);
    the observation-level statsmodels factors (N / (N - K), G/(G-1) (N-1)/(N-K)).
    None where the observation-level fit would cluster by persona or call (not on cells)."""
    from scipy import stats  # lazy: see the module docstring

    units = pd.factorize(paid["unit_id"].astype(str), sort=True)[0]
    n_units = int(units.max()) + 1
    fe = pooled and n_units > 1
    cluster = pooled and n_units >= 10
    if pooled and not cluster and _clusters_rows(paid):
        return None
    lv = paid["level"].to_numpy(float)
    cols = [np.ones(len(lv)), lv, lv ** 2] + ([(units == u).astype(float)
                                                for u in range(1, n_units)] if fe else [])
    Z = np.column_stack(cols)
    n, ybar = paid["n"].to_numpy(float), paid["y"].to_numpy(float)
    M = np.linalg.pinv(Z.T @ (Z * n[:, None]))
    beta = M @ (Z.T @ (n * ybar))
    r = ybar - Z @ beta
    N, K = float(n.sum()), int(np.linalg.matrix_rank(Z))
    if cluster:
        U = np.zeros((n_units, Z.shape[1]))
        np.add.at(U, units, Z * (n * r)[:, None])
        fac = n_units / (n_units - 1) * (N - 1) / (N - Z.shape[1])
        cov, se_type = fac * (M @ U.T @ U @ M), "cluster(unit)"
    else:
        meat = Z.T @ (Z * (paid["m2"].to_numpy(float) + n * r * r)[:, None])
        cov, se_type = N / (N - K) * (M @ meat @ M), "HC1"
    t2 = beta[2] / np.sqrt(cov[2, 2]) if cov[2, 2] > 0 else np.nan
    p2 = float(2 * (stats.t.sf(abs(t2), n_units - 1) if cluster else stats.norm.sf(abs(t2))))
    return dict(b1=float(beta[1]), b2=float(beta[2]), cov=cov[1:3, 1:3], b2_p=p2,
                se_type=se_type, df=(N - K) if cluster else None)


def _clusters_rows(paid: pd.DataFrame, min_clusters: int = 10) -> bool:
    """Would `choose_cluster` cluster these answers by persona or by call (which cells
    cannot reproduce)? Personas: ten or more, one repeating; calls: answered per condition."""
    per = paid.groupby("persona_id")["n"].sum()
    if len(per) >= min_clusters and (per > 1).any():
        return True
    return any(modes.get(m).per_condition for m in paid["mode"].unique() if m in modes.MODES)


def _quadratic_tests(paid: pd.DataFrame, fit: dict, alpha: float) -> dict:
    """Peak with its delta-method interval and the Lind-Mehlum test, from the fit."""
    from scipy import stats  # lazy: see the module docstring

    b1, b2, cov = fit["b1"], fit["b2"], fit["cov"]
    lo, hi = float(paid["level"].min()), float(paid["level"].max())
    out = dict(quad_b1=float(b1), quad_b2=float(b2), quad_b2_p=fit["b2_p"],
               quad_se_type=fit["se_type"])
    if abs(b2) > EPS:
        peak = -b1 / (2 * b2)
        grad = np.array([-1 / (2 * b2), b1 / (2 * b2 ** 2)])
        pse = float(np.sqrt(max(grad @ cov @ grad, 0)))
        zq = z_for(alpha)
        out.update(peak=float(peak), peak_se=pse, peak_ci_low=float(peak - zq * pse),
                   peak_ci_high=float(peak + zq * pse))
    dist = (lambda t: stats.t.sf(t, fit["df"])) if fit["df"] is not None else stats.norm.sf
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
        # unit x level cells once for every unit's log-log fit (the same cells `_cells` of
        # each unit's answers gives, without a pandas pass per unit)
        od_cells = dict(iter(unit_level_cells(od).groupby("unit_id", sort=False)))
        key = dict(design=design, mode=g["mode"].iloc[0], model=model, outcome=target)
        for unit, gu in g.groupby("unit_id", sort=True):
            ou = od_units.get(unit, od.iloc[:0])
            sh = _curve_shape(gu["level"].to_numpy(float), gu["mean"].to_numpy(float),
                              gu["se"].to_numpy(float), alpha, gu["n"].to_numpy(float),
                              binary=bool((gu["interval"] == "wilson").all()))
            sh.update(_loglog_columns(ppml_from_cells(od_cells.get(str(unit), _NO_CELLS), alpha)))
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
    return f"[{lo:.2f}, {hi:.2f}]" if finite(lo) and finite(hi) else f"[n/a: {reason_text(note)}]"


def _estimate(value, lo, hi, note) -> str:
    """'-1.23 [lo, hi]', or 'n/a (REASON)' when the estimate itself is missing."""
    if not finite(value):
        return f"n/a ({reason_text(note) or 'not estimated'})"
    return f"{float(value):.2f} {_ci(lo, hi, note)}"


def _line(r) -> str:
    """One design's demand line; a missing number prints its reason, never "nan"."""
    arc = (f"arc ({r.arc_levels}) {r.arc_elasticity:.2f}" if finite(r.arc_elasticity)
           else "arc n/a (fewer than two paid levels)")
    inv = getattr(r, "inverted_u", None)
    inv_text = (f"inverted U={bool(inv)}" if isinstance(inv, (bool, np.bool_)) else
                f"inverted U n/a ({reason_text(getattr(r, 'quad_se_type', None)) or 'not fitted'})")
    return (f"demand {r.design}: point elasticity at {num(r.point_level, 'g')} "
            f"{_estimate(r.point_elasticity, r.point_ci_low, r.point_ci_high, r.point_note)}, "
            f"{arc}, log-log (PPML) "
            f"{_estimate(r.loglog_elasticity, r.loglog_ci_low, r.loglog_ci_high, r.loglog_note)}"
            f", {inv_text}")


@register
class DemandCurve(Analysis):
    name = "demand_curve"
    title = "Demand curves"
    description = "Pooled curves per design (elasticities exclude the free level)."
    report_tables = ("demand_summary",)
    order = 10
    on_cells = True  # grouped.py: the same numbers from cell-level statistics

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
        return [_line(r) for r in d[d["scope"] == "pooled"].itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.demand_figure(tables.get("demand_points"), out_dir, ctx.human_cells)

    def report_section(self, tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
        return [(name, _pooled(df)) for name, df in super().report_section(tables)]
