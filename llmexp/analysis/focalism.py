"""Focalism: does the response collapse to a step at a covariate the prompt pins?

For a design that pins a covariate (``Design.pins``, e.g. competitor_price = regular price), the
threshold is where the treatment's shown value equals the pinned value: ``step = 1[shown <=
pinned]``. The threshold *level* per unit (largest level with shown <= pinned) is carried to the
other designs and to the human baseline so every curve is tested at the same place.

Per design (pinned, unpinned) and for the humans, on the outcome observations (descriptive):

    smooth:  y ~ poly(level, k) [+ C(unit_id)]          (k = 3 by default, fewer if few levels)
    full:    smooth + step

- ``jump`` = coefficient of ``step`` in the full model: the discontinuity at the threshold
  beyond a smooth (cubic) trend. A steep smooth curve (e.g. a logistic demand with slope 6)
  also leaves a "jump" the cubic cannot absorb, so a jump in one design is NOT evidence of
  focalism and these rows are never flagged;
- ``step_share`` = (SSR_smooth - SSR_full) / SSR_smooth on the unit x level cell means.

**The test** (row ``role == "difference"``, one per pinned x unpinned design): the
difference in jumps, the pinned design's jump minus the unpinned design's at the same
threshold levels, from one joint fit ``y ~ (poly(level, k) + step) x design + C(unit_id):design``
(each design its own smooth curve and unit intercepts). The same stimulus without the pinned
value has the same curvature, so a steep smooth curve cancels and only the step the pin adds
remains. Inference: wild cluster bootstrap by unit (`_wild.wild_test`; units are shared by
the designs); ``flagged`` = p < alpha, never on a missing estimate (fewer than 3 units, no
variation, a threshold that does not split the levels). ``power_step`` is the approximate
power of this test to detect a difference in jumps of ``step_size`` (0.2 on the outcome's
scale, the paper's order of magnitude) and ``mde80`` the difference it detects with 80%
power, both from the standard error.

statsmodels is imported inside `step_fit`, so the analysis declaration at the end stays
light for `llmexp check` (see analysis/base.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp.analysis._honest import finite, interval, reason_text
from llmexp.analysis._stats import choose_cluster, fit_kwargs
from llmexp.analysis._wild import mde, missing, power_at, wild_test
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.observations import Observations, to_float
from llmexp.errors import AnalysisError
from llmexp.spec import Study

TOL = 1e-9
STEP_SIZE = 0.2  # the difference in jumps `power_step` is computed for


def _smooth_terms(n_levels: int, degree: int) -> str:
    k = max(1, min(degree, n_levels - 2))
    return " + ".join(["level"] + [f"I(level ** {j})" for j in range(2, k + 1)])


def _poly(level: np.ndarray, n_levels: int, degree: int) -> np.ndarray:
    k = max(1, min(degree, n_levels - 2))
    return np.column_stack([level ** j for j in range(1, k + 1)])


def _dummies(codes: np.ndarray) -> np.ndarray:
    return np.eye(int(codes.max()) + 1)[codes]


def jump_matrix(df: pd.DataFrame, degree: int = 3) -> tuple[np.ndarray, int]:
    """(X, column of step) of ``y ~ poly(level, k) + step + C(unit_id)`` (unit intercepts)."""
    level = df["level"].to_numpy(float)
    units = pd.factorize(df["unit_id"].astype(str))[0]
    X = np.column_stack([_dummies(units), _poly(level, df["level"].nunique(), degree),
                         df["step"].to_numpy(float)])
    return X, X.shape[1] - 1


def dij_matrix(df: pd.DataFrame, degree: int = 3) -> tuple[np.ndarray, int]:
    """(X, column of step x pinned) of the joint fit on both designs (``pinned`` 0/1)."""
    level = df["level"].to_numpy(float)
    d = df["pinned"].to_numpy(float)
    ud = pd.factorize(df["unit_id"].astype(str) + "\x1f" + df["pinned"].astype(str))[0]
    poly = _poly(level, df["level"].nunique(), degree)
    step = df["step"].to_numpy(float)
    X = np.column_stack([_dummies(ud), poly, poly * d[:, None], step, step * d])
    return X, X.shape[1] - 1


def _inference(X: np.ndarray, j: int, df: pd.DataFrame, alpha: float, n_boot: int, seed: int) -> dict:
    if df["step"].nunique() < 2:
        return missing("the threshold does not split the levels")
    units = pd.factorize(df["unit_id"].astype(str))[0]
    return wild_test(X, df["y"].to_numpy(float), j, units, alpha=alpha, n_boot=n_boot, seed=seed)


def difference_in_jumps(pinned: pd.DataFrame, unpinned: pd.DataFrame, degree: int = 3,
                        alpha: float = 0.05, n_boot: int = 999, seed: int = 0) -> dict:
    """The pinned design's jump minus the unpinned design's (frames with y, level, step,
    unit_id), with its wild-bootstrap interval, p, flag, power at STEP_SIZE and 80% MDE."""
    both = pd.concat([pinned.assign(pinned=1.0), unpinned.assign(pinned=0.0)], ignore_index=True)
    if pinned["step"].nunique() < 2 or unpinned["step"].nunique() < 2:
        res = missing("the threshold does not split the levels in both designs")
    else:
        X, j = dij_matrix(both, degree)
        res = _inference(X, j, both, alpha, n_boot, seed)
    p = res["p_value"]
    return dict(jump=res["estimate"], se=res["se"], ci_low=res["ci_low"], ci_high=res["ci_high"],
                p_value=p, flagged=bool(np.isfinite(p) and p < alpha),
                step_size=STEP_SIZE, power_step=power_at(STEP_SIZE, res["se"], alpha),
                mde80=mde(res["se"], alpha), n_obs=len(both), n_units=res["n_clusters"],
                se_type="wild bootstrap(unit)", note=res["note"])


def step_share(df: pd.DataFrame, degree: int = 3, weights=None) -> float:
    """Partial R^2 of the step on the unit x level cell means (weighted by `weights`)."""
    import statsmodels.formula.api as smf  # lazy: see the module docstring

    fe = " + C(unit_id)" if df["unit_id"].nunique() > 1 else ""
    smooth = "y ~ " + _smooth_terms(df["level"].nunique(), degree) + fe
    wts = 1.0 if weights is None else np.asarray(weights, float)
    cm = df[["unit_id", "level", "step"]].assign(_w=wts, _wy=df["y"] * wts).groupby(
        ["unit_id", "level", "step"], as_index=False)[["_w", "_wy"]].sum()
    cm["y"] = cm["_wy"] / cm["_w"]
    ssr0 = float(smf.ols(smooth, data=cm).fit().ssr)
    ssr1 = float(smf.ols(smooth + " + step", data=cm).fit().ssr)
    return (ssr0 - ssr1) / ssr0 if ssr0 > 1e-12 else np.nan


def step_fit(df: pd.DataFrame, degree: int = 3, alpha: float = 0.05, weights=None,
             cluster: str = "auto") -> dict:
    """The humans' jump (individuals: HC1; per-cell aggregates: WLS with the cell sizes);
    descriptive, never flagged."""
    import statsmodels.formula.api as smf  # lazy: see the module docstring

    if df["step"].nunique() < 2:
        return dict(missing("the threshold does not split the levels"), flagged=False)
    fe = " + C(unit_id)" if df["unit_id"].nunique() > 1 else ""
    formula = "y ~ " + _smooth_terms(df["level"].nunique(), degree) + fe + " + step"
    if weights is None:
        groups, se_type = choose_cluster(df, cluster)
        r1 = smf.ols(formula, data=df).fit(**fit_kwargs(groups))
    else:
        r1, se_type = smf.wls(formula, data=df, weights=weights).fit(cov_type="HC1"), "HC1"
    se = float(r1.bse["step"])
    if not np.isfinite(se) or se <= 0 or r1.df_resid <= 0:
        return dict(missing("no residual variation"), jump=float(r1.params["step"]), flagged=False)
    ci = r1.conf_int(alpha).loc["step"]
    return dict(jump=float(r1.params["step"]), se=se, ci_low=float(ci.iloc[0]),
                ci_high=float(ci.iloc[1]), p_value=float(r1.pvalues["step"]),
                step_share=step_share(df, degree, weights), flagged=False, n_obs=len(df),
                se_type=se_type)


def design_jump(df: pd.DataFrame, degree: int, alpha: float, n_boot: int, seed: int) -> dict:
    """One design's jump with the wild bootstrap (descriptive: never flagged)."""
    if df["step"].nunique() < 2:
        res = missing("the threshold does not split the levels")
    else:
        X, j = jump_matrix(df, degree)
        res = _inference(X, j, df, alpha, n_boot, seed)
    share = step_share(df, degree) if np.isfinite(res["estimate"]) else np.nan
    return dict(jump=res["estimate"], se=res["se"], ci_low=res["ci_low"], ci_high=res["ci_high"],
                p_value=res["p_value"], step_share=share, flagged=False, n_obs=len(df),
                n_units=df["unit_id"].nunique(), se_type="wild bootstrap(unit)", note=res["note"])


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


def _pinned_rows(data: pd.DataFrame, design: str, cov: str) -> pd.DataFrame | None:
    col = f"pin__{cov}"
    rows = data[data["design"] == design]
    if rows.empty:
        return None
    if col not in rows:
        raise AnalysisError(f"focalism: responses of design {design!r} carry no pinned "
                            f"value for {cov!r}")
    if rows[col].map(to_float).isna().all():
        raise AnalysisError(f"focalism: the pinned value of {cov!r} in design {design!r} "
                            "is not numeric, so it cannot be a threshold")
    if rows["shown"].isna().all():
        raise AnalysisError("focalism: the treatment's shown value is not numeric")
    return rows


def _outcome_rows(study, data, out, d, cov, step, degree, alpha, n_boot, seed) -> list[dict]:
    """Per design rows (descriptive jumps) and the pinned-minus-unpinned difference rows."""
    below, thr, glob = step
    rows, marked = [], {}
    for (design, model), g in data[data["target"] == out].groupby(["design", "model"], sort=False):
        m = step_frame(study, g, design, d.name, cov, below, thr, glob)
        if m is None:
            continue
        marked[(design, model)] = m
        rows.append(dict(pinned_design=d.name, covariate=cov, outcome=out, design=design,
                         mode=m[0]["mode"].iloc[0], model=model, role=m[1], threshold_level=glob,
                         **design_jump(m[0], degree, alpha, n_boot, seed)))
    for (design, model), (g, role) in marked.items():
        pin = marked.get((d.name, model))
        if role != "unpinned" or pin is None:
            continue
        rows.append(dict(pinned_design=d.name, covariate=cov, outcome=out,
                         design=f"{d.name} - {design}", mode=pin[0]["mode"].iloc[0], model=model,
                         role="difference", threshold_level=glob,
                         **difference_in_jumps(pin[0], g, degree, alpha, n_boot, seed)))
    return rows


def _human_row(human, out, d, cov, thr, glob, degree, alpha) -> list[dict]:
    h = human[human["outcome"] == out] if human is not None else None
    if h is None or not len(h):
        return []
    h = mark_step(h.copy(), thr, glob)
    # individual humans are independent (HC1); per-cell aggregates: WLS with the cell sizes
    res = (step_fit(h, degree, alpha, weights=h["n"]) if "n" in h
           else step_fit(h, degree, alpha, cluster="none"))
    return [dict(pinned_design=d.name, covariate=cov, outcome=out, design="human", mode="human",
                 model="human", role="human", threshold_level=glob, **res)]


def focalism(study: Study, obs: Observations, human=None, degree: int = 3, alpha: float = 0.05,
             n_boot: int = 999, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(focalism table, thresholds per pinned design x covariate x unit)."""
    pinned_designs = [d for d in study.designs if d.pins]
    if not pinned_designs:
        raise AnalysisError("focalism needs a design that pins a covariate (pin ... in a design)")
    data = obs.outcomes()
    rows: list[dict] = []
    thr_rows: list[dict] = []
    for d in pinned_designs:
        for cov in d.pins:
            pd_rows = _pinned_rows(data, d.name, cov)
            if pd_rows is None:
                continue
            below, thr, glob = pinned_step(pd_rows, pd_rows[f"pin__{cov}"].map(to_float))
            thr_rows += [dict(design=d.name, covariate=cov, unit_id=u, threshold_level=v)
                         for u, v in thr.items()]
            for out in study.outcomes:
                rows += _outcome_rows(study, data, out.name, d, cov, (below, thr, glob), degree,
                                      alpha, n_boot, seed)
                rows += _human_row(human, out.name, d, cov, thr, glob, degree, alpha)
    return pd.DataFrame(rows), pd.DataFrame(thr_rows)


def _line(r) -> str:
    note = reason_text(getattr(r, "note", None))
    if not finite(r.jump):
        return f"focalism {r.design} ({r.role}): not estimated ({note or 'no estimate'})"
    ci = interval(r.ci_low, r.ci_high, note)
    if r.role == "difference":
        power = (f"power {r.power_step:.2f}" if finite(r.power_step)
                 else "power n/a (no standard error)")
        return (f"focalism {r.design} (difference in jumps): {r.jump:.3f} {ci}, {power} "
                f"for a {r.step_size:g} step{' FLAGGED' if r.flagged else ''}")
    return f"focalism {r.design} ({r.role}): jump {r.jump:.3f} {ci} (descriptive)"


@register
class Focalism(Analysis):
    name = "focalism"
    title = "Focalism"
    description = ("Difference in jumps at the pinned value (pinned design minus the same stimulus "
                   "unpinned, beyond each design's smooth cubic trend; wild cluster bootstrap by "
                   "unit); per-design jumps and step shares are descriptive.")
    report_tables = ("focalism",)
    order = 40

    def headline_tables(self, tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
        """Only the differences in jumps are findings: a design's own jump is descriptive
        (a steep smooth curve has one too; that is what the difference removes)."""
        t = tables.get("focalism")
        if t is None or t.empty or "role" not in t:
            return []
        diff = t[t["role"] == "difference"]
        return [("focalism", diff)] if len(diff) else []

    def unsupported(self, study: Study) -> str | None:
        if not any(d.pins for d in study.designs):
            return "no design pins a covariate (design NAME: blind with COVARIATE = ...)"
        return None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        table, thresholds = focalism(ctx.study, ctx.obs, human=ctx.human_individual, alpha=ctx.alpha,
                                     seed=ctx.seed)
        return {"focalism": table, "focalism_thresholds": thresholds}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("focalism")
        if t is None or not len(t) or "jump" not in t:
            return []
        return [_line(r) for r in t.itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.focalism_figure(ctx.obs.table, tables.get("focalism"), out_dir,
                                     ctx.human_individual)
