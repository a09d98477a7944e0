"""Confound leakage: does an unspecified covariate the model imagines move with the treatment?

For each probed covariate (probe rows: ``kind == "probe"``, ``target == covariate``), per
design x model: the elicited value v is normalised by its unit's mean over all levels of that
design/model (``v_norm = v / mean_u(v)``, as in Gui & Toubia) and regressed on the
normalised treatment level: ``v_norm ~ level`` (OLS, cluster-robust by unit when there are
>= 10 units, else HC1).

**Leakage index** = that slope: the relative change of the imagined covariate per 1.0 of the
normalised treatment (e.g. +0.30 = the imagined competitor price rises by 30% of its average
when the focal price rises by 100% of the regular price). It is unit-free, so comparable across
modes, covariates and studies; 0 in an ideal experiment. ``flagged`` = slope's p < alpha.
Also reported: CI, Pearson r of v_norm with the level and its p-value. A categorical treatment
gets one row per level against the first level (``contrast``): the index is then the relative
change of the covariate between the two levels (x = 1 at the compared level, 0 at the first).

statsmodels is imported inside `leakage`, so the analysis declaration at the end stays light
for `llmexp check` (see analysis/base.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp import modes
from llmexp.analysis._stats import choose_cluster, fit_kwargs, safe_corr
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def normalise_by_unit(df: pd.DataFrame, keys=("design", "model", "target", "unit_id")) -> pd.Series:
    means = df.groupby(list(keys))["y"].transform("mean")
    return df["y"] / means.where(means != 0)


def leakage(study: Study, obs: Observations, alpha: float = 0.05, cluster: str = "auto"
            ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leakage table, normalised probe points per design/covariate/level)."""
    import statsmodels.formula.api as smf  # lazy: see the module docstring

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
    t = t[np.isfinite(t["level"])]
    t["v_norm"] = normalise_by_unit(t)
    t = t[np.isfinite(t["v_norm"])]
    rows, points = [], []
    for (cov, design, model), g in t.groupby(["target", "design", "model"], sort=False):
        base = dict(covariate=cov, design=design, mode=g["mode"].iloc[0], model=model,
                    n_obs=len(g), n_units=g["unit_id"].nunique())
        points.append(g.groupby("level", as_index=False).agg(
            v_norm=("v_norm", "mean"), sd=("v_norm", "std"), n=("v_norm", "size")).assign(
            covariate=cov, design=design, mode=base["mode"], model=model))
        if g["level"].nunique() < 2:
            rows.append(dict(base, note="one level only"))
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
            groups, se_type = choose_cluster(gc, cluster)
            res = smf.ols("v_norm ~ level", data=gc).fit(**fit_kwargs(groups))
            ci = res.conf_int(alpha).loc["level"]
            r, rp = safe_corr(gc["level"].to_numpy(float), gc["v_norm"].to_numpy(float))
            p = float(res.pvalues["level"])
            rows.append(dict(base, contrast=label, leakage_index=float(res.params["level"]),
                             se=float(res.bse["level"]), ci_low=float(ci.iloc[0]),
                             ci_high=float(ci.iloc[1]), p_value=p, correlation=r,
                             correlation_p=rp, flagged=bool(p < alpha), se_type=se_type))
    pts = pd.concat(points, ignore_index=True) if points else pd.DataFrame()
    return pd.DataFrame(rows), pts


@register
class Leakage(Analysis):
    name = "leakage"
    title = "Confound leakage"
    description = ("Leakage index = slope of the probed covariate (normalised by its unit mean) per "
                   "1.0 of the treatment level; 0 in an ideal experiment.")
    report_tables = ("leakage",)
    order = 30

    def unsupported(self, study: Study) -> str | None:
        if not any(c.probe for c in study.covariates if not c.specified):
            return "no unspecified covariate has a probe"
        if not any(modes.get(d.mode).asks_probes and d.probes for d in study.designs):
            asking = " or ".join(modes.with_capability("asks_probes"))
            return f"probes are asked in {asking} designs, and there is none"
        return None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        table, points = leakage(ctx.study, ctx.obs, ctx.alpha, ctx.cluster)
        return {"leakage": table, "leakage_points": points}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("leakage")
        if t is None or not len(t) or "leakage_index" not in t:
            return []
        return [f"leakage {r.covariate} {r.design}: index {r.leakage_index:.3f} "
                f"[{r.ci_low:.3f}, {r.ci_high:.3f}]{' FLAGGED' if r.flagged else ''}"
                for r in t.itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.leakage_figure(tables.get("leakage_points"), out_dir)
