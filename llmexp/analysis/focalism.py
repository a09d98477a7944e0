"""Focalism: does the response collapse to a step at a covariate the prompt pins?

For a design that pins a covariate (``Design.pins``, e.g. competitor_price = regular price), the
threshold is where the treatment's shown value equals the pinned value: ``step = 1[shown <=
pinned]``. The threshold *level* per unit (largest level with shown <= pinned) is carried to the
other designs and to the human baseline so every curve is tested at the same place.

Measure, per design (pinned, unpinned) and for the humans, on the outcome observations:

    smooth:  y ~ poly(level, k) [+ C(unit_id)]          (k = 3 by default, fewer if few levels)
    full:    smooth + step

- ``jump`` = coefficient of ``step`` in the full model (cluster-robust SE, CI, p): the
  discontinuity at the threshold beyond any smooth (cubic) trend;
- ``step_share`` = (SSR_smooth - SSR_full) / SSR_smooth computed on the unit x level cell
  means (so answer noise does not swamp it): the share of the variance the smooth fit leaves
  that the step explains (partial R^2 of the step, in [0, 1]);
- ``flagged`` = jump's p < alpha. A focal design shows a large, significant jump and a
  step_share well above the unpinned design's and the humans'.

statsmodels is imported inside `step_fit`, so the analysis declaration at the end stays
light for `llmexp check` (see analysis/base.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp.analysis._stats import choose_cluster, fit_kwargs
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.observations import Observations, to_float
from llmexp.errors import AnalysisError
from llmexp.spec import Study

TOL = 1e-9


def _smooth_terms(n_levels: int, degree: int) -> str:
    k = max(1, min(degree, n_levels - 2))
    return " + ".join(["level"] + [f"I(level ** {j})" for j in range(2, k + 1)])


def step_fit(df: pd.DataFrame, degree: int = 3, alpha: float = 0.05, weights=None,
             cluster: str = "auto") -> dict:
    """Fit smooth vs smooth+step on df (columns y, level, step, unit_id)."""
    import statsmodels.formula.api as smf  # lazy: see the module docstring

    if df["step"].nunique() < 2:
        return {"note": "the threshold does not split the levels"}
    fe = " + C(unit_id)" if df["unit_id"].nunique() > 1 else ""
    smooth = "y ~ " + _smooth_terms(df["level"].nunique(), degree) + fe
    groups, se_type = choose_cluster(df, cluster) if weights is None else (None, "HC1")
    if weights is None:
        r1 = smf.ols(smooth + " + step", data=df).fit(**fit_kwargs(groups))
    else:
        r1 = smf.wls(smooth + " + step", data=df, weights=weights).fit(cov_type="HC1")
    wts = 1.0 if weights is None else np.asarray(weights, float)
    cm = df[["unit_id", "level", "step"]].assign(_w=wts, _wy=df["y"] * wts).groupby(
        ["unit_id", "level", "step"], as_index=False)[["_w", "_wy"]].sum()
    cm["y"] = cm["_wy"] / cm["_w"]
    c0 = smf.ols(smooth, data=cm).fit()
    c1 = smf.ols(smooth + " + step", data=cm).fit()
    ssr0, ssr1 = float(c0.ssr), float(c1.ssr)
    ci = r1.conf_int(alpha).loc["step"]
    p = float(r1.pvalues["step"])
    return dict(jump=float(r1.params["step"]), se=float(r1.bse["step"]), ci_low=float(ci.iloc[0]),
                ci_high=float(ci.iloc[1]), p_value=p,
                step_share=(ssr0 - ssr1) / ssr0 if ssr0 > 0 else np.nan,
                flagged=bool(p < alpha), n_obs=len(df), se_type=se_type)


def pinned_step(rows: pd.DataFrame, pin: pd.Series) -> tuple[pd.Series, pd.Series, float]:
    """For the pinned design's rows: which show the treatment at or below the pinned value,
    each unit's threshold (the highest such level) and the median threshold over units."""
    below = rows["shown"] <= pin + TOL
    thr = rows.assign(below=below)[below].groupby("unit_id")["level"].max()
    return below, thr, float(thr.median()) if len(thr) else np.nan


def mark_step(df: pd.DataFrame, thr: pd.Series, glob: float) -> pd.DataFrame:
    """The step indicator for rows outside the pinned design: at or below the unit's threshold."""
    t = df["unit_id"].map(thr).fillna(glob)
    return df.assign(step=(df["level"] <= t + TOL).astype(float))


def step_frame(study: Study, g: pd.DataFrame, design: str, pinned_design: str, cov: str,
               below: pd.Series, thr: pd.Series, glob: float) -> tuple[pd.DataFrame, str] | None:
    """(rows with their step column and finite levels, role) for one design, or None for a
    design that pins the covariate itself. Shared with `llmexp diagnose`."""
    if design == pinned_design:
        g, role = g.assign(step=below.loc[g.index].astype(float)), "pinned"
    elif study.design(design).pins.get(cov) is not None:
        return None
    else:
        g, role = mark_step(g, thr, glob), "unpinned"
    return g[np.isfinite(g["level"])], role


def focalism(study: Study, obs: Observations, human=None, degree: int = 3, alpha: float = 0.05
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(focalism table, thresholds per pinned design x covariate x unit)."""
    pinned_designs = [d for d in study.designs if d.pins]
    if not pinned_designs:
        raise AnalysisError("focalism needs a design that pins a covariate (pin ... in a design)")
    data = obs.outcomes()
    rows, thr_rows = [], []
    for d in pinned_designs:
        for cov in d.pins:
            col = f"pin__{cov}"
            pd_rows = data[data["design"] == d.name]
            if pd_rows.empty:
                continue
            if col not in pd_rows:
                raise AnalysisError(f"focalism: responses of design {d.name!r} carry no pinned "
                                    f"value for {cov!r}")
            pin = pd_rows[col].map(to_float)
            if pin.isna().all():
                raise AnalysisError(f"focalism: the pinned value of {cov!r} in design {d.name!r} "
                                    "is not numeric, so it cannot be a threshold")
            if pd_rows["shown"].isna().all():
                raise AnalysisError("focalism: the treatment's shown value is not numeric")
            below, thr, glob = pinned_step(pd_rows, pin)
            for u, v in thr.items():
                thr_rows.append(dict(design=d.name, covariate=cov, unit_id=u, threshold_level=v))

            for out in study.outcomes:
                for (design, model), g in data[data["target"] == out.name].groupby(
                        ["design", "model"], sort=False):
                    marked = step_frame(study, g, design, d.name, cov, below, thr, glob)
                    if marked is None:
                        continue
                    g, role = marked
                    rows.append(dict(pinned_design=d.name, covariate=cov, outcome=out.name,
                                     design=design, mode=g["mode"].iloc[0], model=model,
                                     role=role, threshold_level=glob,
                                     **step_fit(g, degree, alpha)))
                if human is not None:
                    h = human[human["outcome"] == out.name]
                    if len(h):
                        h = mark_step(h.copy(), thr, glob)
                        # individual humans are independent (HC1); per-cell aggregates are
                        # fitted by WLS with the cell sizes as weights
                        res = (step_fit(h, degree, alpha, weights=h["n"]) if "n" in h
                               else step_fit(h, degree, alpha, cluster="none"))
                        rows.append(dict(pinned_design=d.name, covariate=cov, outcome=out.name,
                                         design="human", mode="human", model="human",
                                         role="human", threshold_level=glob, **res))
    return pd.DataFrame(rows), pd.DataFrame(thr_rows)


@register
class Focalism(Analysis):
    name = "focalism"
    title = "Focalism"
    description = ("Jump at the pinned value beyond a smooth (cubic) trend; step share = partial R² "
                   "of the step on the cell means.")
    report_tables = ("focalism",)
    order = 40

    def unsupported(self, study: Study) -> str | None:
        if not any(d.pins for d in study.designs):
            return "no design pins a covariate (design NAME: blind with COVARIATE = ...)"
        return None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        table, thresholds = focalism(ctx.study, ctx.obs, human=ctx.human_individual, alpha=ctx.alpha)
        return {"focalism": table, "focalism_thresholds": thresholds}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("focalism")
        if t is None or not len(t) or "jump" not in t:
            return []
        return [f"focalism {r.design} ({r.role}): jump {r.jump:.3f} "
                f"[{r.ci_low:.3f}, {r.ci_high:.3f}], step share {r.step_share:.3f}"
                f"{' FLAGGED' if r.flagged else ''}"
                for r in t.itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.focalism_figure(ctx.obs.table, tables.get("focalism"), out_dir,
                                     ctx.human_individual)
