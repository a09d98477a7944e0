"""Treatment effects by regression (statsmodels), with cluster-robust standard errors.

Per outcome x model x design:

- ``ols``: ``y ~ <treatments> [+ C(unit_id)]`` (a linear probability model for binary
  outcomes). A numeric treatment enters linearly in its level (effect = change in the outcome
  per 1.0 of the normalised level, e.g. per +100% of the regular price); a categorical one as
  dummies against its first level.
- ``logit``: binary outcomes, GLM binomial (fractional y allowed: P(first label)); log-odds.
- ``ordered``: Likert outcomes, ordered logit (no unit fixed effects).

Unit fixed effects are included when there is more than one unit. Standard errors are
cluster-robust (see ``_stats.choose_cluster``; by unit by default when there are >= 10 units,
t with G-1 df) and the table states which was used.

Design interaction (scope ``interaction``): per outcome x model, pooled over designs,
``y ~ level * C(design, reference) + C(unit_id)`` by OLS; the coefficient
``level:design[x]`` is the difference between design x's slope and the reference design's
(the first design in the study): "does unblinding change the effect?" as one number + SE.

statsmodels is imported inside the fitting functions, so the analysis declaration at the end
stays light for `llmexp check` (see analysis/base.py).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd

from llmexp import answers
from llmexp.analysis._stats import choose_cluster, fit_kwargs
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def _work_frame(study: Study, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict]:
    """Copy with safe treatment columns t0, t1...; returns (frame, rhs terms, term->name).

    Categorical levels are recoded L0, L1, ... (study order; L0 = reference) so any level text
    survives formula parsing; `names[col + ":levels"]` maps codes back to the text."""
    w = df.copy()
    terms: list[str] = []
    names: dict[str, Any] = {}  # column -> treatment name; 'col:levels' -> {code: level}
    prim = primary_treatment(study)
    for i, t in enumerate(study.treatments):
        col = f"t{i}"
        src = w[f"lvl__{t.name}"]
        if src.isna().all() or src.nunique() < 2:
            continue
        if is_numeric_treatment(study, t.name):
            w[col] = w["level"] if t.name == prim else pd.to_numeric(src, errors="coerce")
            terms.append(col)
        else:
            codes = {str(v): f"L{j}" for j, v in enumerate(t.levels)}
            w[col] = src.astype(str).map(codes)
            if w[col].isna().any():
                raise AnalysisError(f"effects: responses hold a level of {t.name!r} that the "
                                    "study does not declare")
            terms.append(f"C({col}, Treatment(reference='L0'))")
            names[col + ":levels"] = {c: lv for lv, c in codes.items()}
        names[col] = t.name
    return w, terms, names


def _short(text: str, n: int = 40) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _pretty(term: str, names: dict) -> tuple[str, str]:
    """(treatment, contrast label) for a statsmodels term name."""
    for col, tname in names.items():
        if col.endswith(":levels"):
            continue
        if term == col:
            return tname, "slope"
        if term.startswith(f"C({col},"):
            code = term.split("[T.", 1)[1].rstrip("]") if "[T." in term else term
            levels = names.get(col + ":levels", {})
            return tname, (f"{_short(levels.get(code, code))} vs "
                           f"{_short(levels.get('L0', 'reference'))}")
    return term, term


def _no_residual_df(res) -> bool:
    """A saturated fit (no residual degrees of freedom) has no estimable interval."""
    df = getattr(res, "df_resid", None)
    return df is not None and np.isfinite(df) and df <= 0


def _rows(res, names: dict, meta: dict, alpha: float, keep) -> list[dict]:
    ci = np.asarray(res.conf_int(alpha))
    params = res.params
    idx = list(params.index) if hasattr(params, "index") else list(range(len(params)))
    out = []
    for j, term in enumerate(idx):
        if not keep(term):
            continue
        tname, contrast = _pretty(str(term), names)
        out.append(dict(meta, treatment=tname, term=contrast, estimate=float(np.asarray(params)[j]),
                        se=float(np.asarray(res.bse)[j]), ci_low=float(ci[j, 0]),
                        ci_high=float(ci[j, 1]), p_value=float(np.asarray(res.pvalues)[j])))
    if _no_residual_df(res):
        for row in out:
            row.update(se=float("nan"), ci_low=float("nan"), ci_high=float("nan"), p_value=float("nan"))
    return out


def _is_treatment_term(names: dict):
    def keep(term: str) -> bool:
        return ":" not in term and any(term == c or term.startswith(f"C({c},")
                                       for c in names if not c.endswith(":levels"))
    return keep


def _collapse_identical_copies(w: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """One row per cell when replicates are exact copies.

    A log-probability answer (the embedded model's binary answers) is the same number every
    time the same prompt is asked, so its replicates are copies, not independent draws;
    counting them as observations gives zero-width intervals and p = 0. When every
    (design, unit, condition, persona) cell with several observations holds a single value,
    keep one row per cell: the interval then reflects the cells, and is not estimable when
    there are no more cells than parameters.
    """
    keys = [c for c in ("design", "unit_id", "persona_id") if c in w.columns]
    keys += [c for c in w.columns if c.startswith("lvl__")]
    if not keys or w.empty:
        return w, False
    cols = [w[c].map(lambda v: "<NA>" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
            for c in keys]
    k = cols[0].str.cat(cols[1:], sep="\x1f") if len(cols) > 1 else cols[0]
    g = w["y"].groupby(k)
    sizes = g.size()
    if not (sizes > 1).any():
        return w, False
    spread = (g.max() - g.min())[sizes > 1]
    if not bool((spread.abs() <= 1e-12).all()):
        return w, False
    return w.loc[~k.duplicated()].copy(), True


COLLAPSED_NOTE = "replicates were identical copies (deterministic answers): one observation per cell"


def fit_ols(df: pd.DataFrame, formula: str, cluster: str = "auto"):
    import statsmodels.formula.api as smf  # lazy: see the module docstring

    groups, se_type = choose_cluster(df, cluster)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = smf.ols(formula, data=df).fit(**fit_kwargs(groups))
    return res, se_type, (0 if groups is None else len(np.unique(groups if groups.ndim == 1 else groups[:, 0])))


def fit_logit(df: pd.DataFrame, formula: str, cluster: str = "auto"):
    import statsmodels.api as sm  # lazy: see the module docstring
    import statsmodels.formula.api as smf

    groups, se_type = choose_cluster(df, cluster if cluster != "unit+persona" else "unit")
    if groups is not None and groups.ndim > 1:
        groups = groups[:, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = smf.glm(formula, data=df, family=sm.families.Binomial())
        res = model.fit(**fit_kwargs(groups))
    return res, se_type, (0 if groups is None else len(np.unique(groups)))


def fit_ordered(df: pd.DataFrame, rhs: list[str], cluster: str = "auto"):
    from statsmodels.miscmodels.ordinal_model import OrderedModel

    groups, se_type = choose_cluster(df, cluster if cluster != "unit+persona" else "unit")
    if groups is not None and groups.ndim > 1:
        groups = groups[:, 0]
    y = pd.Categorical(df["y"], ordered=True)
    exog = df[[c for c in rhs if not c.startswith("C(")]].astype(float)
    kw = {"cov_type": "HC1"} if groups is None else {"cov_type": "cluster",
                                                      "cov_kwds": {"groups": groups}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = OrderedModel(y, exog, distr="logit").fit(method="bfgs", disp=False, **kw)
    return res, se_type, (0 if groups is None else len(np.unique(groups)))


def estimate_effects(
    study: Study,
    obs: Observations,
    cluster: str = "auto",
    alpha: float = 0.05,
    methods: tuple[str, ...] | None = None,
    interaction: bool = True,
) -> pd.DataFrame:
    rows: list[dict] = []
    base = obs.outcomes()
    if base.empty:
        raise AnalysisError("effects: there are no outcome responses to analyse")
    design_order = [d.name for d in study.designs]
    for out in study.outcomes:
        data = base[base["target"] == out.name]
        mlist = methods or answers.get(out.answer).effect_methods
        for (model, design), g in data.groupby(["model", "design"], sort=False):
            w, rhs, names = _work_frame(study, g)
            if not rhs:
                continue
            w, collapsed = _collapse_identical_copies(w)
            fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
            formula = "y ~ " + " + ".join(rhs) + fe
            meta0 = dict(outcome=out.name, model=model, design=design, mode=g["mode"].iloc[0],
                         scope="design", n_obs=len(w), n_units=w["unit_id"].nunique())
            if collapsed:
                meta0["note"] = COLLAPSED_NOTE
            for m in mlist:
                try:
                    if m == "ols":
                        res, se_type, ncl = fit_ols(w, formula, cluster)
                    elif m == "logit":
                        if w["y"].min() < 0 or w["y"].max() > 1 or w["y"].nunique() < 2:
                            continue
                        res, se_type, ncl = fit_logit(w, formula, cluster)
                    elif m == "ordered":
                        if any(c.startswith("C(") for c in rhs) or w["y"].nunique() < 3:
                            continue
                        res, se_type, ncl = fit_ordered(w, rhs, cluster)
                    else:
                        raise AnalysisError(f"effects: unknown method {m!r}")
                except (np.linalg.LinAlgError, ValueError) as exc:
                    rows.append(dict(meta0, method=m, note=f"fit failed: {exc}"))
                    continue
                meta = dict(meta0, method=m, se_type=se_type, n_clusters=ncl)
                rows.extend(_rows(res, names, meta, alpha, _is_treatment_term(names)))
        if interaction:
            rows.extend(_interactions(study, data, design_order, cluster, alpha, out.name))
    df = pd.DataFrame(rows)
    return df


def _interactions(study, data, design_order, cluster, alpha, outcome) -> list[dict]:
    rows = []
    for model, g in data.groupby("model", sort=False):
        present = [d for d in design_order if d in set(g["design"])]
        if len(present) < 2:
            continue
        w, rhs, names = _work_frame(study, g)
        if not rhs:
            continue
        parts = [_collapse_identical_copies(d) for _, d in w.groupby("design", sort=False)]
        collapsed = any(c for _, c in parts)
        w = pd.concat([d for d, _ in parts])
        ref = present[0]
        dterm = f"C(design, Treatment(reference={ref!r}))"
        main = rhs[0]
        fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
        formula = f"y ~ {main} * {dterm}" + "".join(f" + {r}" for r in rhs[1:]) + fe
        try:
            res, se_type, ncl = fit_ols(w, formula, cluster)
        except (np.linalg.LinAlgError, ValueError) as exc:  # say so rather than drop the row
            rows.append(dict(outcome=outcome, model=model, design=None, mode=None, scope="interaction",
                             method="ols", treatment=main, term=f"not estimated: {exc}", reference=ref,
                             estimate=float("nan"), se=float("nan"), ci_low=float("nan"),
                             ci_high=float("nan"), p_value=float("nan"), n_obs=len(w),
                             n_units=w["unit_id"].nunique(), se_type=None, n_clusters=None))
            continue
        ci = np.asarray(res.conf_int(alpha))
        if _no_residual_df(res):
            ci = np.full_like(ci, np.nan, dtype=float)
        for j, term in enumerate(res.params.index):
            if ":C(design" not in term:
                continue
            main_term, dterm_part = term.rsplit(":C(design", 1)
            dname = dterm_part.split("[T.", 1)[1][:-1]
            tname, contrast = _pretty(main_term, names)
            rows.append(dict(outcome=outcome, model=model, design=dname, mode=None,
                             scope="interaction", method="ols", treatment=tname,
                             term=f"{contrast}: {dname} - {ref}", reference=ref,
                             estimate=float(res.params.iloc[j]),
                             se=float("nan") if _no_residual_df(res) else float(res.bse.iloc[j]),
                             ci_low=float(ci[j, 0]), ci_high=float(ci[j, 1]),
                             p_value=float("nan") if _no_residual_df(res) else float(res.pvalues.iloc[j]),
                             n_obs=len(w),
                             n_units=w["unit_id"].nunique(), se_type=se_type, n_clusters=ncl,
                             **({"note": COLLAPSED_NOTE} if collapsed else {})))
    return rows


@register
class Effects(Analysis):
    name = "effects"
    title = "Treatment effects"
    description = ("Regression coefficients with cluster-robust 95% intervals; scope 'interaction' "
                   "rows are slope differences against the reference design.")
    report_tables = ("effects",)
    order = 20
    headline = True  # the digest opens with the effects: what most readers look for first
    default = True  # what a study that names no analysis gets

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return {"effects": estimate_effects(ctx.study, ctx.obs, cluster=ctx.cluster, alpha=ctx.alpha)}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        e = tables.get("effects")
        if e is None or not len(e) or "estimate" not in e:
            return []
        return [f"effect [{r.scope}] {r.outcome} {r.design} {r.method} {r.term}: "
                f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] p={r.p_value:.3g}"
                for r in e.dropna(subset=["estimate"]).itertuples()]
