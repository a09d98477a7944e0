"""Confound leakage: does an unspecified covariate the model imagines move with the treatment?

For each probed covariate (probe rows: ``kind == "probe"``, ``target == covariate``), per
design x model: the elicited value v is normalised by its unit's mean over all levels of that
design/model (``v_norm = v / mean_u(v)``, as in Gui & Toubia) and regressed on the
normalised treatment level: ``v_norm ~ level`` (OLS).

**Leakage index** = that slope: the relative change of the imagined covariate per 1.0 of the
normalised treatment (e.g. +0.30 = the imagined competitor price rises by 30% of its average
when the focal price rises by 100% of the regular price). It is unit-free, so comparable across
modes, covariates and studies; 0 in an ideal experiment.

**Inference** (`_wild.wild_test`): CR1 standard error clustered by unit (the units are the
sample; a probe answer's noise is shared within a unit through its unit-specific slope) and a
two-sided wild cluster restricted bootstrap p-value with Webb weights (Rademacher from 12
units), interval from the unrestricted wild bootstrap t. It holds its level from about 5 units;
with fewer than 3 units the index is reported without inference (``note``) and never flagged.
An explicit ``cluster`` ("persona", "call", "none" = every answer its own cluster) changes the
clusters.

**Echoes**: a probe answer that equals the treatment value shown in the prompt (within half a
cent or 0.5%) is an *echo*: the model repeated the shown price instead of imagining the
covariate. Echoes alone make the index move with the treatment. Reported: ``echo_share`` (share
of answers that echo), ``index_no_echo`` (the index on the other answers, re-normalised by their
own unit means, with its interval and p), and ``log_index`` (slope of ``log v - mean_u log v`` on
the level, without echoes: robust to a few huge answers). ``flagged`` = the echo-free index's
p < alpha; a missing estimate is never flagged. ``correlation`` is Pearson r of v_norm with
the level (descriptive).

A categorical treatment gets one row per level against the first level (``contrast``): the
index is then the relative change of the covariate between the two levels.

statsmodels is not needed; scipy is imported inside the functions that use it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp import modes
from llmexp.analysis._honest import interval, num, reason_text
from llmexp.analysis._stats import choose_cluster, nearly_constant, safe_corr
from llmexp.analysis._wild import missing, wild_test
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.grouped import is_cells, n_obs
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.errors import AnalysisError
from llmexp.spec import Study

ECHO_TOL = 0.005  # relative tolerance of an echo (0.5%), and at least half a cent


def normalise_by_unit(df: pd.DataFrame, keys=("design", "model", "target", "unit_id")) -> pd.Series:
    means = df.groupby(list(keys))["y"].transform("mean")
    return df["y"] / means.where(means != 0)


def is_echo(v: pd.Series, shown: pd.Series) -> pd.Series:
    """True where a probe answer equals the shown treatment value (within rounding)."""
    tol = np.maximum(ECHO_TOL * shown.abs(), 0.005)
    return ((v - shown).abs() <= tol) & shown.notna()


def cluster_codes(df: pd.DataFrame, cluster: str = "auto") -> tuple[np.ndarray, str]:
    """Cluster codes for the wild bootstrap: by unit unless another clustering is asked."""
    if cluster in ("auto", "unit", "unit+persona"):
        return pd.factorize(df["unit_id"].astype(str))[0], "wild bootstrap(unit)"
    groups, label = choose_cluster(df, cluster)
    if groups is None:
        return np.arange(len(df)), "wild bootstrap(answer)"
    return np.asarray(groups), f"wild bootstrap({label.split('(')[-1].rstrip(')')})"


def slope_test(x: np.ndarray, y: np.ndarray, clusters: np.ndarray, alpha: float, n_boot: int,
               seed: int) -> dict:
    """Slope of y on x with the wild cluster bootstrap (a missing result when x is constant)."""
    ok = np.isfinite(x) & np.isfinite(y)
    x, y, clusters = x[ok], y[ok], clusters[ok]
    if len(np.unique(x)) < 2:
        return missing("one treatment level only")
    X = np.column_stack([np.ones(len(x)), x])
    return wild_test(X, y, 1, clusters, alpha=alpha, n_boot=n_boot, seed=seed)


def index_variants(gc: pd.DataFrame, clusters: np.ndarray, alpha: float = 0.05, n_boot: int = 999,
                   seed: int = 0) -> dict:
    """The index on all answers, without echoes, and on the log scale without echoes."""
    x = gc["level"].to_numpy(float)
    full = slope_test(x, gc["v_norm"].to_numpy(float), clusters, alpha, n_boot, seed)
    echo = is_echo(gc["y"], gc["shown"]).to_numpy() if "shown" in gc else np.zeros(len(gc), bool)
    keep = ~echo
    ne = gc[keep]
    keys = ["unit_id"]
    v = ne["y"] / ne.groupby(keys)["y"].transform("mean").replace(0, np.nan)
    no_echo = slope_test(x[keep], v.to_numpy(float), clusters[keep], alpha, n_boot, seed)
    pos = ne["y"].where(ne["y"] > 0)
    lg = np.log(pos)
    lg = lg - lg.groupby(ne["unit_id"]).transform("mean")
    log = slope_test(x[keep], lg.to_numpy(float), clusters[keep], alpha, n_boot, seed)
    r, rp = safe_corr(x, gc["v_norm"].to_numpy(float))
    return _index_row(full, no_echo, log, (r, rp), float(echo.mean()) if len(echo) else np.nan, alpha)


def _index_row(full: dict, no_echo: dict, log: dict, corr: tuple[float, float], echo_share: float, alpha: float) -> dict:
    """One leakage row from the three slope tests (all answers, without echoes, log scale);
    the same on answer rows and on cells. The flag is the echo-free test's."""
    p_ne = no_echo["p_value"]
    return dict(leakage_index=full["estimate"], se=full["se"], ci_low=full["ci_low"],
                ci_high=full["ci_high"], p_value=full["p_value"], correlation=corr[0], correlation_p=corr[1],
                echo_share=echo_share, index_no_echo=no_echo["estimate"], ci_no_echo_low=no_echo["ci_low"],
                ci_no_echo_high=no_echo["ci_high"], p_no_echo=p_ne,
                log_index=log["estimate"], log_ci_low=log["ci_low"], log_ci_high=log["ci_high"],
                log_p=log["p_value"], n_clusters=full["n_clusters"],
                flagged=bool(np.isfinite(p_ne) and p_ne < alpha),
                note=no_echo["note"] or full["note"])


def _probe_table(study: Study, obs: Observations) -> tuple[pd.DataFrame, bool, list[str]]:
    probed = [c.name for c in study.covariates if c.probe is not None and not c.specified]
    if not probed:
        raise AnalysisError("leakage needs at least one unspecified covariate with a probe")
    t = obs.probes()
    t = t[t["target"].isin(probed)]
    if t.empty:
        raise AnalysisError(
            "leakage: the run has no probe responses (no design asked the probes "
            f"for {', '.join(probed)}; probes run in blind/unblinded designs with probes on)"
        )
    prim = primary_treatment(study)
    numeric = is_numeric_treatment(study, prim)
    levels = [str(v) for v in study.treatment(prim).levels]
    t = t.copy()
    if not numeric:  # categorical: position of the level in the study's order (0 = reference)
        t["level"] = t[f"lvl__{prim}"].astype(str).map({v: float(j) for j, v in enumerate(levels)})
        t["shown"] = np.nan
    t = t[np.isfinite(t["level"])]
    if is_cells(t):  # cell means of v over n answers: v_norm's cell mean and its m2
        keys = ["design", "model", "target", "unit_id"]
        s = (t["n"] * t["y"]).groupby([t[k] for k in keys]).transform("sum")
        m = s / t["n"].groupby([t[k] for k in keys]).transform("sum")
        m = m.where(m != 0)
        t["v_norm"], t["v_m2"] = t["y"] / m, t["m2"] / (m * m)
    else:
        t["v_norm"] = normalise_by_unit(t)
    return t[np.isfinite(t["v_norm"])], numeric, levels


def leakage(study: Study, obs: Observations, alpha: float = 0.05, cluster: str = "auto",
            n_boot: int = 999, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leakage table, normalised probe points per design/covariate/level)."""
    t, numeric, levels = _probe_table(study, obs)
    rows, points = [], []
    for (cov, design, model), g in t.groupby(["target", "design", "model"], sort=False):
        base = dict(covariate=cov, design=design, mode=g["mode"].iloc[0], model=model,
                    n_obs=n_obs(g), n_units=g["unit_id"].nunique())
        points.append(_points(g).assign(covariate=cov, design=design, mode=base["mode"],
                                        model=model))
        if g["level"].nunique() < 2:
            rows.append(dict(base, note="one level only", flagged=False))
            continue
        if numeric:
            contrasts = [("slope", g)]
        else:
            contrasts = [(f"{levels[j][:40]} vs {levels[0][:40]}",
                          g[g["level"].isin([0.0, float(j)])].assign(
                              level=lambda d, j=j: (d["level"] == float(j)).astype(float)))
                         for j in range(1, len(levels))]
        for label, gc in contrasts:
            if gc["level"].nunique() < 2:
                continue
            clusters, se_type = cluster_codes(gc, cluster)
            if is_cells(gc):
                rows.append(dict(base, contrast=label, se_type=se_type,
                                 **cell_index_variants(gc, clusters, cluster, alpha, n_boot, seed)))
                continue
            rows.append(dict(base, contrast=label, se_type=se_type,
                             **index_variants(gc, clusters, alpha, n_boot, seed)))
    pts = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    return pd.DataFrame(rows), pts


def _points(g: pd.DataFrame) -> pd.DataFrame:
    """Mean, SD and count of v_norm per level (from rows or cells)."""
    if not is_cells(g):
        return g.groupby("level", as_index=False).agg(
            v_norm=("v_norm", "mean"), sd=("v_norm", "std"), n=("v_norm", "size"))
    out = []
    for level, c in g.groupby("level"):
        n, v = c["n"].to_numpy(float), c["v_norm"].to_numpy(float)
        total = float(n.sum())
        mean = float(n @ v) / total
        m2 = float(c["v_m2"].sum() + n @ (v - mean) ** 2)
        out.append(dict(level=level, v_norm=mean, sd=np.sqrt(m2 / (total - 1)) if total > 1 else np.nan,
                        n=int(round(total))))
    return pd.DataFrame(out)


def _cell_slope(x: np.ndarray, y: np.ndarray, n: np.ndarray, clusters: np.ndarray, alpha: float,
                n_boot: int, seed: int) -> dict:
    """`slope_test` on cells: y are cell means of n answers at level x (grouped.py)."""
    from llmexp.analysis._wild import WildPlan

    ok = np.isfinite(x) & np.isfinite(y) & (n > 0)
    x, y, n, clusters = x[ok], y[ok], n[ok], clusters[ok]
    if len(np.unique(x)) < 2:
        return missing("one treatment level only")
    sw = np.sqrt(n)
    X = np.column_stack([np.ones(len(x)), x]) * sw[:, None]
    return WildPlan(X, 1, clusters, n_obs=int(round(n.sum()))).test(y * sw, alpha, n_boot, seed)


def _cell_corr(x: np.ndarray, v: np.ndarray, v_m2: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    """`safe_corr` of the answers behind the cells (Pearson r and its two-sided p)."""
    from scipy import stats

    total = float(n.sum())
    mx, mv = float(n @ x) / total, float(n @ v) / total
    sxx = float(n @ (x - mx) ** 2)
    svv = float(v_m2.sum() + n @ (v - mv) ** 2)
    if total < 3 or nearly_constant(np.sqrt(sxx), mx) or nearly_constant(np.sqrt(svv), mv):
        return float("nan"), float("nan")
    r = float(np.clip(n @ ((x - mx) * (v - mv)) / np.sqrt(sxx * svv), -1.0, 1.0))
    ab = total / 2 - 1
    return r, float(2 * stats.beta(ab, ab, loc=-1, scale=2).sf(abs(r)))


def cell_index_variants(gc: pd.DataFrame, clusters: np.ndarray, cluster: str, alpha: float = 0.05,
                        n_boot: int = 999, seed: int = 0) -> dict:
    """`index_variants` on probe cells (split by echo; grouped.py): the same numbers."""
    if cluster not in ("auto", "unit", "unit+persona"):
        return dict(missing("an explicit clustering needs the answers one by one (a streamed "
                            "analysis holds cells)"), leakage_index=np.nan, flagged=False)
    x, n = gc["level"].to_numpy(float), gc["n"].to_numpy(float)
    full = _cell_slope(x, gc["v_norm"].to_numpy(float), n, clusters, alpha, n_boot, seed)
    echo = gc["echo"].to_numpy(bool)
    ne = gc[~echo]
    units = ne["unit_id"]
    m = (ne["n"] * ne["y"]).groupby(units).transform("sum") / ne["n"].groupby(units).transform("sum")
    v = ne["y"] / m.replace(0, np.nan)
    no_echo = _cell_slope(x[~echo], v.to_numpy(float), n[~echo], clusters[~echo], alpha, n_boot, seed)
    npos = ne["n_pos"].to_numpy(float)
    lg = ne["slog"].to_numpy(float) / np.where(npos > 0, npos, np.nan)
    unit_log = (ne["slog"].groupby(units).transform("sum")
                / ne["n_pos"].groupby(units).transform("sum").replace(0, np.nan)).to_numpy(float)
    log = _cell_slope(x[~echo], lg - unit_log, npos, clusters[~echo], alpha, n_boot, seed)
    corr = _cell_corr(x, gc["v_norm"].to_numpy(float), gc["v_m2"].to_numpy(float), n)
    return _index_row(full, no_echo, log, corr, float(n[echo].sum() / n.sum()) if n.sum() else np.nan, alpha)


def _finding(r, level: int) -> tuple[bool, str]:
    what = f"Confound leakage — design {r.design} ({r.covariate}): leakage index"
    if not np.isfinite(r.leakage_index):
        return False, f"{what}: cannot be concluded, no estimate ({reason_text(r.note) or 'no estimate'})."
    raw = f"{r.leakage_index:.3g} ({level}% interval {r.ci_low:.3g} to {r.ci_high:.3g})"
    echoes = float(getattr(r, "echo_share", np.nan))
    if not np.isfinite(echoes) or echoes <= 0:
        lo, hi, said = r.ci_low, r.ci_high, raw
    else:
        lo, hi = r.ci_no_echo_low, r.ci_no_echo_high
        said = (f"{raw}, but {echoes:.0%} of the answers repeat the value shown; without them "
                f"{num(r.index_no_echo)} ({level}% interval {num(lo)} to {num(hi)})")
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return False, f"{what} {said}: cannot be concluded, no interval ({reason_text(r.note) or 'not estimated'})."
    if lo > 0 or hi < 0:
        return True, f"{what} {said}: the whole interval is {'above' if lo > 0 else 'below'} zero."
    return False, f"{what} {said}: cannot be concluded, the interval includes zero."


@register
class Leakage(Analysis):
    name = "leakage"
    title = "Confound leakage"
    description = ("Leakage index = slope of the probed covariate (normalised by its unit mean) per "
                   "1.0 of the treatment level; 0 in an ideal experiment. Wild cluster bootstrap by "
                   "unit; echoes of the shown value reported and left out of the flag.")
    report_tables = ("leakage",)
    order = 30
    on_cells = True  # grouped.py: the same numbers from cell-level statistics

    def unsupported(self, study: Study) -> str | None:
        if not any(c.probe for c in study.covariates if not c.specified):
            return "no unspecified covariate has a probe"
        if not any(modes.get(d.mode).asks_probes and d.probes for d in study.designs):
            asking = " or ".join(modes.with_capability("asks_probes"))
            return f"probes are asked in {asking} designs, and there is none"
        return None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        table, points = leakage(ctx.study, ctx.obs, ctx.alpha, ctx.cluster, seed=ctx.seed)
        return {"leakage": table, "leakage_points": points}

    def findings(self, tables: dict[str, pd.DataFrame], level: int) -> list[tuple[bool, str]] | None:
        """One sentence per covariate x design, judged like the flag: on the index WITHOUT
        echoes of the shown value when there are echoes (a model repeating the price it was
        shown moves the raw index without imagining anything; the committed embedded-model run's
        0.41 [0.12, 0.70] is 0.19 [-0.11, 0.49] without its 30% echoes)."""
        t = tables.get("leakage")
        if t is None or not len(t) or "leakage_index" not in t:
            return []
        return [_finding(r, level) for r in t.itertuples()]

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("leakage")
        if t is None or not len(t) or "leakage_index" not in t:
            return []
        out = []
        for r in t.itertuples():
            if not np.isfinite(getattr(r, "leakage_index", np.nan)):
                out.append(f"leakage {r.covariate} {r.design}: not estimated "
                           f"({reason_text(r.note) or 'no estimate'})")
                continue
            ci = interval(r.ci_low, r.ci_high, r.note)
            out.append(f"leakage {r.covariate} {r.design}: index {r.leakage_index:.3f} {ci}, "
                       f"echoes {num(r.echo_share)}, without echoes {num(r.index_no_echo)} "
                       f"{interval(r.ci_no_echo_low, r.ci_no_echo_high, r.note)}"
                       f"{' FLAGGED' if r.flagged else ''}")
        return out

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.leakage_figure(tables.get("leakage_points"), out_dir)
