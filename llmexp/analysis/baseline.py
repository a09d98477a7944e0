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
- noise floor (human cells are samples: a PERFECT simulator, answering each cell's true human
  share, still has MAE > 0): ``mae_weighted`` = MAE with cells weighted by their human n;
  ``mae_perfect`` = the expected weighted MAE of a perfect simulator given each cell's n
  (binary: E|Binomial(n, p)/n - p| computed exactly at p = the human share; numeric: sd *
  sqrt(2 / (pi n)) from the individual answers); ``mae_corrected`` = mae_weighted -
  mae_perfect (exact for a simulator near the truth, conservative otherwise) with an
  interval over units (cluster-robust, t(G-1)); ``rmse_corrected`` =
  sqrt(max(0, mean_w[(sim - human)^2 - h(1-h)/(n-1)])), an unbiased correction of the
  squared error (binary cells);
- reference points beside every fidelity metric: ``mae_coin`` (answering 0.5 everywhere),
  ``mae_constant`` (the overall human mean everywhere), ``mae_perfect``, ``retest_mae``;
  ``mae_over_retest_perfect`` = what a perfect simulator scores on ``mae_over_retest`` (> 1:
  the retest MAE is not a ceiling); for the accuracy: ``accuracy_coin`` (0.5),
  ``accuracy_constant``, ``accuracy_perfect`` (a simulator answering each cell's true share:
  1 - 2 p(1-p), unbiased from the sample), ``human_retest_accuracy``;
  ``accuracy_normalised`` = (agent - coin) / (perfect - coin): 0 = coin flip, 1 = a perfect
  population simulator (its ceiling really is 1); Park et al.'s raw ratio stays as
  ``normalized_accuracy`` with ``normalized_accuracy_coin`` / ``_perfect`` beside it;
- ``baseline_cells``: both numbers side by side with both intervals: ``sim_ci_low/high`` (the
  simulated cell's interval from `cells.py`; combined from its parts when the cell averages
  unmapped treatments) and ``human_ci_low/high`` (Wilson from n for shares, t from the
  individual answers otherwise; missing with ``human_interval`` = the reason when unavailable);
- ``design_ranking``: designs by MAE with an interval over units (cluster-robust, t(G-1)), and
  ``mae_minus_reference`` (MAE minus the first design's, e.g. unblinded - blind) with a paired
  bootstrap-over-units interval (the same resampled units for both designs). ``warning``
  says when a ranking rests on one unit or one cell (no interval: ``mae_ci_low/high`` are
  missing rather than zero-width).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp.analysis._elasticity import adjacent_arc
from llmexp.analysis._honest import interval, num
from llmexp.analysis._stats import percentile_ci, safe_corr, wilson, z_for
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.humans import cell_key, level_text, load_baseline
from llmexp.analysis.observations import is_numeric_treatment, primary_treatment
from llmexp.analysis.summary import records
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def _sim_cells(study: Study, unit_cells: pd.DataFrame, has_units: bool,
               alpha: float = 0.05) -> pd.DataFrame:
    """Simulated cell means keyed like the human cells (averaged over unmapped treatments)."""
    assert study.baseline is not None  # compare_baseline loaded it
    mapped = {t: f"lvl__{t}" for t in study.baseline.treatments}
    s = unit_cells.copy()
    s["key"] = cell_key(s, mapped)
    if not has_units:
        s["unit_id"] = "all"
    s["_wy"] = s["mean"] * s["n"]
    s["_v"] = (s["n"] * (s["ci_high"] - s["ci_low"]) / (2 * z_for(alpha))) ** 2
    s = s.groupby(["design", "mode", "model", "target", "unit_id", "key"], as_index=False,
                  sort=False).agg(_wy=("_wy", "sum"), n=("n", "sum"), _v=("_v", "sum"),
                                  _k=("_v", "size"), lo=("ci_low", "first"),
                                  hi=("ci_high", "first"))
    s["mean"] = s["_wy"] / s["n"]
    se = np.sqrt(s["_v"]) / s["n"]  # parts combined (normal approximation)
    s["sim_ci_low"] = np.where(s["_k"] == 1, s["lo"], s["mean"] - z_for(alpha) * se)
    s["sim_ci_high"] = np.where(s["_k"] == 1, s["hi"], s["mean"] + z_for(alpha) * se)
    return s[["design", "mode", "model", "target", "unit_id", "key", "mean", "n",
              "sim_ci_low", "sim_ci_high"]]


def _contrast(study: Study, df: pd.DataFrame, col: str) -> float:
    """Categorical primary treatment: mean at its last level minus mean at its first level."""
    t = study.treatment(primary_treatment(study))
    first, last = f"{t.name}={level_text(t.levels[0])}", f"{t.name}={level_text(t.levels[-1])}"
    m = df.groupby(df["key"].str.split("|").map(
        lambda parts: next((p for p in parts if p.startswith(t.name + "=")), "")))[col].mean()
    if first not in m or last not in m:
        return float("nan")
    return float(m[last] - m[first])


def cell_slope(df: pd.DataFrame, col: str) -> float:
    """OLS slope of col on level with unit fixed effects (within-unit demeaning)."""
    d = df[["unit_id", "level", col]].dropna()
    if d["level"].nunique() < 2:
        return float("nan")
    x = d["level"] - d.groupby("unit_id")["level"].transform("mean")
    y = d[col] - d.groupby("unit_id")[col].transform("mean")
    den = float((x * x).sum())
    return float((x * y).sum() / den) if den > 0 else float("nan")


def _pooled_arc(df: pd.DataFrame, col: str) -> float:
    """Arc elasticity of the pooled curve over the adjacent paid levels nearest the regular
    price (demand_curve.py's ``arc_elasticity``)."""
    m = df.groupby("level")[col].mean().sort_index()
    return adjacent_arc(m.index.to_numpy(float), m.to_numpy(float))[0]


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
        out.append(dict(outcome=outcome, model=model, design=ref, reference=ref, mae_minus_reference=np.nan,
                        diff_ci_low=np.nan, diff_ci_high=np.nan,
                        diff_ci_note="the reference design: no difference to itself"))  # not 0 [0, 0]
        for d in present[1:]:
            est, b = boot(d)
            lo, hi = (np.nan, np.nan) if b is None else percentile_ci(b - r_b, alpha)
            out.append(dict(outcome=outcome, model=model, design=d, reference=ref,
                            mae_minus_reference=est - r_est, diff_ci_low=lo, diff_ci_high=hi,
                            diff_ci_note="" if b is not None else
                            "one unit: no interval over units"))
    return pd.DataFrame(out, columns=["outcome", "model", "design", "reference",
                                      "mae_minus_reference", "diff_ci_low", "diff_ci_high",
                                      "diff_ci_note"])


def _is_share(m: pd.DataFrame, individual: pd.DataFrame | None) -> bool:
    """Human cells are proportions: 0/1 individual answers, or aggregate shares in [0, 1]."""
    if individual is not None:
        return bool(individual["y"].isin([0.0, 1.0]).all())
    return bool(m["human"].between(0, 1).all())


def _human_sd(m: pd.DataFrame, individual: pd.DataFrame | None, out: str) -> pd.Series:
    if individual is None:
        return pd.Series(np.nan, index=m.index)
    sd = individual[individual["outcome"] == out].groupby(["unit_id", "key"])["y"].std()
    return pd.Series([sd.get((u, k), np.nan) for u, k in zip(m["unit_id"], m["key"])],
                     index=m.index)


def perfect_abs_error(p: float, n: float) -> float:
    """E|Binomial(n, p)/n - p|: the expected error of a simulator answering the true share."""
    from scipy import stats  # lazy: see analysis/base.py

    if not (n >= 1 and np.isfinite(p)):
        return float("nan")
    k = np.arange(int(n) + 1)
    return float(np.sum(stats.binom.pmf(k, int(n), p) * np.abs(k / n - p)))


def _noise_columns(m: pd.DataFrame, individual: pd.DataFrame | None, out: str,
                   alpha: float) -> pd.DataFrame:
    """Per cell: the human interval, the perfect simulator's expected |error| (``floor``) and
    an unbiased estimate of the human mean's sampling variance (``var_h``)."""
    n, h = m["n_human"].to_numpy(float), m["human"].to_numpy(float)
    m = m.copy()
    if _is_share(m, individual):
        ci = [wilson(hi * ni, ni, alpha) if ni >= 1 else (np.nan, np.nan) for hi, ni in zip(h, n)]
        m["human_interval"] = "wilson"
        m["floor"] = [perfect_abs_error(hi, ni) for hi, ni in zip(h, n)]
        m["var_h"] = np.where(n > 1, h * (1 - h) / np.maximum(n - 1, 1), np.nan)
    else:
        from scipy import stats  # lazy: see analysis/base.py

        sd = _human_sd(m, individual, out).to_numpy(float)
        q = stats.t.ppf(1 - alpha / 2, np.maximum(n - 1, 1))
        ok = np.isfinite(sd) & (n > 1)
        ci = [(hi - qi * si / np.sqrt(ni), hi + qi * si / np.sqrt(ni)) if o else (np.nan, np.nan)
              for hi, qi, si, ni, o in zip(h, q, sd, n, ok)]
        m["human_interval"] = np.where(ok, "t", "missing: no individual answers (sd unknown)")
        m["floor"] = np.where(ok, sd * np.sqrt(2 / (np.pi * np.maximum(n, 1))), np.nan)
        m["var_h"] = np.where(ok, sd ** 2 / np.maximum(n, 1), np.nan)
    m["human_ci_low"], m["human_ci_high"] = [c[0] for c in ci], [c[1] for c in ci]
    return m


def weighted_mean(x: pd.Series | np.ndarray, w: np.ndarray) -> float:
    x = np.asarray(x, float)
    ok = np.isfinite(x) & np.isfinite(w) & (w > 0)
    return float(np.sum(x[ok] * w[ok]) / np.sum(w[ok])) if ok.any() else float("nan")


def _reference_maes(m: pd.DataFrame) -> dict:
    """Fidelity MAE with its reference points (cells weighted by their human n)."""
    w = m["n_human"].to_numpy(float)
    err = (m["sim"] - m["human"]).to_numpy(float)
    hbar = weighted_mean(m["human"], w)
    mw, perfect = weighted_mean(np.abs(err), w), weighted_mean(m["floor"], w)
    mse_c = weighted_mean(err ** 2 - m["var_h"].to_numpy(float), w)
    return dict(mae_weighted=mw, mae_perfect=perfect, mae_corrected=mw - perfect,
                mae_coin=weighted_mean((m["human"] - 0.5).abs(), w) if _in01(m) else np.nan,
                mae_constant=weighted_mean((m["human"] - hbar).abs(), w),
                rmse_corrected=float(np.sqrt(max(mse_c, 0.0))) if np.isfinite(mse_c) else np.nan,
                mae_perfect_unweighted=float(m["floor"].mean()))


def _in01(m: pd.DataFrame) -> bool:
    return bool(m["human"].between(0, 1).all())


def _accuracy(ind: pd.DataFrame) -> dict:
    """Park et al.'s test-retest accuracy with its reference points (binary answers)."""
    y, sim = ind["y"].to_numpy(float), ind["sim"].to_numpy(float)
    cell = ind.groupby(["unit_id", "key"])["y"]
    h, n = cell.transform("mean").to_numpy(float), cell.transform("size").to_numpy(float)
    agent = float(np.mean(sim * y + (1 - sim) * (1 - y)))
    humacc = float(np.mean(ind["y"] == ind["y_retest"]))
    pq = np.where(n > 1, h * (1 - h) * n / np.maximum(n - 1, 1), np.nan)  # unbiased p(1-p)
    perfect = float(np.nanmean(1 - 2 * pq))
    hbar = float(np.mean(y))
    constant = float(np.mean(hbar * y + (1 - hbar) * (1 - y)))
    span = perfect - 0.5
    return dict(agent_accuracy=agent, human_retest_accuracy=humacc, accuracy_coin=0.5,
                accuracy_constant=constant, accuracy_perfect=perfect,
                accuracy_normalised=(agent - 0.5) / span if span > 0 else np.nan,
                normalized_accuracy=agent / humacc if humacc else np.nan,
                normalized_accuracy_coin=0.5 / humacc if humacc else np.nan,
                normalized_accuracy_perfect=perfect / humacc if humacc else np.nan)


def _cluster_t(x: np.ndarray, w: np.ndarray, codes: np.ndarray, g: int,
               alpha: float, log: bool = False) -> tuple[float, float]:
    """Interval of the weighted mean of x: cluster-robust (by unit) linearised SE,
    ``G/(G-1) sum_g (sum_c in g w_c (x_c - mean))^2 / (sum w)^2``, t(G-1) critical values."""
    from scipy import stats  # lazy: see analysis/base.py

    ok = np.isfinite(x) & np.isfinite(w)
    x, w, codes = x[ok], w[ok], codes[ok]
    if not len(x) or w.sum() <= 0:
        return float("nan"), float("nan")
    m = float(np.sum(w * x) / np.sum(w))
    s = np.bincount(codes, weights=w * (x - m), minlength=g)
    se = float(np.sqrt(g / (g - 1) * np.sum(s ** 2)) / np.sum(w))
    q = float(stats.t.ppf(1 - alpha / 2, g - 1))
    if log:  # a mean of |errors| is >= 0: interval on the log scale (se of log m = se / m)
        if not (m > 0 and se > 0):
            return float("nan"), float("nan")
        return m * float(np.exp(-q * se / m)), m * float(np.exp(q * se / m))
    return m - q * se, m + q * se


def unit_bootstrap_mae(m: pd.DataFrame, alpha: float, n_boot: int, rng) -> dict:
    """Intervals over units of the MAE (equal cell weights) and the corrected MAE (cells
    weighted by their human n): cluster-robust by unit with t(G-1) (a percentile bootstrap
    over 6 units covered 86%); missing with a reason when there is one unit. `n_boot` and
    `rng` are unused (kept for callers)."""
    codes, uniq = pd.factorize(m["unit_id"].to_numpy())
    g = len(uniq)
    if g < 2:
        why = "one unit: no interval over units" if g == 1 else "no cells"
        return dict(mae_ci_low=np.nan, mae_ci_high=np.nan, mae_corrected_ci_low=np.nan,
                    mae_corrected_ci_high=np.nan, mae_ci_note=why)
    ae, nh = m["abs_error"].to_numpy(float), m["n_human"].to_numpy(float)
    lo, hi = _cluster_t(ae, np.ones_like(ae), codes, g, alpha, log=True)
    if np.isfinite(hi) and _in01(m) and m["sim"].between(0, 1).all():  # shares: |error| <= 1
        hi = min(hi, 1.0)
    clo, chi = _cluster_t(ae - m["floor"].to_numpy(float), nh, codes, g, alpha)
    why = "" if np.isfinite(lo) else "no spread of the errors over units"
    return dict(mae_ci_low=lo, mae_ci_high=hi, mae_corrected_ci_low=clo,
                mae_corrected_ci_high=chi, mae_ci_note=why)


def _shape_row(study: Study, m: pd.DataFrame, numeric: bool) -> dict:
    row: dict = {}
    if numeric:
        es, eh = cell_slope(m, "sim"), cell_slope(m, "human")
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
    return row


def _summary_row(study: Study, bd, m: pd.DataFrame, out: str, numeric: bool, alpha: float,
                 n_boot: int, rng) -> dict:
    err = m["sim"] - m["human"]
    r, _ = safe_corr(m["sim"].to_numpy(float), m["human"].to_numpy(float))
    row = dict(n_cells=len(m), n_units=m["unit_id"].nunique(), mae=float(err.abs().mean()),
               rmse=float(np.sqrt((err ** 2).mean())), bias=float(err.mean()), correlation=r)
    row.update(_reference_maes(m))
    row.update(_shape_row(study, m, numeric))
    if m["retest_mean"].notna().any():
        rmae = float((m["retest_mean"] - m["human"]).abs().mean())
        row.update(retest_mae=rmae, mae_over_retest=row["mae"] / rmae if rmae else np.nan,
                   mae_over_retest_perfect=row["mae_perfect_unweighted"] / rmae
                   if rmae else np.nan)
    if bd.individual is not None and study.baseline is not None and out in study.baseline.retest:
        ind = bd.individual[bd.individual["outcome"] == out].merge(
            m[["unit_id", "key", "sim"]], on=["unit_id", "key"])
        if len(ind) and set(ind["y"].unique()) <= {0.0, 1.0}:
            row.update(_accuracy(ind))
    row.update(unit_bootstrap_mae(m, alpha, n_boot, rng))
    return row


CELL_COLUMNS = ["design", "mode", "model", "outcome", "unit_id", "key", "level", "sim",
                "sim_ci_low", "sim_ci_high", "human", "human_ci_low", "human_ci_high",
                "human_interval", "n_sim", "n_human", "abs_error", "floor"]


def compare_baseline(study: Study, unit_cells: pd.DataFrame, obs_table: pd.DataFrame,
                     alpha: float = 0.05, n_boot: int = 1000, seed: int = 0
                     ) -> dict[str, pd.DataFrame]:
    bd = load_baseline(study)
    sim = _sim_cells(study, unit_cells, bd.has_units, alpha) if len(bd.cells) else pd.DataFrame()
    numeric = is_numeric_treatment(study, primary_treatment(study))
    rng = np.random.default_rng(seed)
    summary, cellrows = [], []
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
            m = _noise_columns(m, bd.individual, out, alpha)
            cellrows.append(m.assign(design=design, mode=mode, model=model, outcome=out)[
                CELL_COLUMNS])
            summary.append(dict(design=design, mode=mode, model=model, outcome=out,
                                **_summary_row(study, bd, m, out, numeric, alpha, n_boot, rng)))
    from llmexp.analysis.baseline_kinds import compare_kinds  # option shares, effect sizes

    kinds, option_rows = compare_kinds(study, obs_table, alpha)
    summ = pd.DataFrame(summary + option_rows)
    if option_rows:
        summ["comparison"] = summ["comparison"].fillna("cells")
    cells_all = pd.concat(cellrows, ignore_index=True) if cellrows else pd.DataFrame()
    ranked = [c for c in (cells_all, kinds.get("baseline_options")) if c is not None and len(c)]
    ranking = (_ranking(study, summ, pd.concat(ranked, ignore_index=True), alpha, n_boot, seed)
               if len(summ) else pd.DataFrame())
    hum_out = bd.cells.rename(columns={"mean": "human"})
    return {"baseline_summary": summ, "baseline_cells": cells_all, "design_ranking": ranking,
            "human_cells": hum_out, **kinds}


def _ranking(study: Study, summ: pd.DataFrame, cells_all: pd.DataFrame, alpha: float,
             n_boot: int, seed: int) -> pd.DataFrame:
    rank = summ.sort_values(["outcome", "model", "mae"]).copy()
    rank["rank"] = rank.groupby(["outcome", "model"]).cumcount() + 1
    rank["warning"] = np.select(
        [rank["n_cells"] <= 1, rank["n_units"] <= 1],
        ["built from ONE cell: no interval, not a ranking",
         "built from ONE unit: no interval over units; the order may not replicate"], "")
    ranking = rank[["outcome", "model", "rank", "design", "mode", "mae", "mae_ci_low",
                    "mae_ci_high", "mae_ci_note", "mae_weighted", "mae_perfect", "mae_corrected", "n_cells",
                    "n_units", "warning"]]
    return ranking.merge(_paired_differences(study, cells_all, alpha, n_boot, seed),
                         on=["outcome", "model", "design"], how="left")


@register
class Baseline(Analysis):
    name = "baseline"
    title = "Human baseline"
    description = ("Per-cell MAE vs humans (95% CI over units), shape and elasticity "
                   "agreement, test-retest normalisation; categorical outcomes per option "
                   "(shares and their changes), effect sizes as Cohen's d per unit.")
    report_tables = ("design_ranking", "baseline_summary", "baseline_options",
                     "baseline_option_effects", "baseline_effect_summary", "baseline_effect_sizes")
    order = 50

    def unsupported(self, study: Study) -> str | None:
        return "the study has no baseline statement" if study.baseline is None else None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return compare_baseline(ctx.study, ctx.unit_cells, ctx.obs.table, ctx.alpha, ctx.n_boot,
                                ctx.seed)

    def summary_data(self, tables: dict[str, pd.DataFrame]) -> dict:
        return {"summary": records(tables.get("baseline_summary")),
                "design_ranking": records(tables.get("design_ranking")),
                **{k: records(tables.get(k)) for k in ("baseline_option_effects",
                                                       "baseline_effect_sizes") if k in tables}}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        from llmexp.analysis.baseline_kinds import summary_lines as kind_lines

        r = tables.get("design_ranking")
        if r is None or not len(r):
            return kind_lines(tables)
        s = tables.get("baseline_summary")
        floors = {} if s is None or not len(s) else {
            (x.design, x.outcome, x.model): x for x in s.itertuples()}
        lines = []
        for x in r.itertuples():
            ci = interval(x.mae_ci_low, x.mae_ci_high, getattr(x, "mae_ci_note", None)
                          or ("one unit" if x.n_units <= 1 else None))
            line = (f"baseline rank {x.rank}: {x.design} MAE {num(x.mae)} {ci}; weighted "
                    f"{num(x.mae_weighted)} vs perfect simulator {num(x.mae_perfect)}")
            f = floors.get((x.design, x.outcome, x.model))
            if f is not None and np.isfinite(getattr(f, "accuracy_normalised", np.nan)):
                line += (f"; accuracy {num(f.agent_accuracy)} (coin 0.5, perfect "
                         f"{num(f.accuracy_perfect)}, retest {num(f.human_retest_accuracy)}), "
                         f"normalised {num(f.accuracy_normalised, '.2f')}")
            lines.append(line + (f" [{x.warning}]" if x.warning else ""))
        return lines + kind_lines(tables)

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return (plots.error_heatmap(tables.get("baseline_cells"), out_dir)
                + plots.ranking_figure(tables.get("design_ranking"), out_dir))
