"""Treatment effects by regression (statsmodels), with small-sample cluster-robust intervals.

Per outcome x model x design:

- ``ols``: ``y ~ <treatments> [+ C(unit_id)]`` (a linear probability model for binary
  outcomes). A numeric treatment enters linearly in its level (effect = change in the outcome
  per 1.0 of the normalised level, e.g. per +100% of the regular price); with two levels in the
  data it is reported as the contrast ``B vs A`` (B - A). A categorical one as dummies against
  its first level.
- ``logit``: binary outcomes, GLM binomial (fractional y allowed: P(first label)); log-odds.
- ``ordered``: Likert outcomes, ordered logit (no unit fixed effects).
- ``ols_unit_std``: numeric answers on different scales across units (miles vs feet): the
  effect on answers standardised within each unit.
- scope ``factorial``: two treatments varied together: their interaction ``A x B``.
- categorical outcomes (answer type ``categorical``): per-option share differences
  (`_categorical.py`), plus the ``option_shares`` and ``independence`` tables.

Inference (`inference.py`, docs/analysis.md "Inference"): CR2 clustered by unit with
Satterthwaite df at any number of units >= 2 (estimand "population of units"); one unit: HC2
conditional on it ("these units"), refused for deterministic answers. Every row carries
``estimand``, ``inference``, ``df``, ``se_cr1`` (conventional cluster SE, nested unit dummies
not counted), a standardised effect size (risk difference / odds ratio / Cohen's d) with its
interval, and ``note``: why a number is missing (NaN) rather than falsely certain.

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
from llmexp.analysis._honest import interval, num, p_text
from llmexp.analysis._stats import choose_cluster, fit_kwargs
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.grouped import (
    GroupedFit,
    compress,
    fit_cells,
    is_cells,
    merge,
    n_obs,
    pooled_sd,
    spread_free,
)
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def work_frame(study: Study, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str], dict]:
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


def pretty_term(term: str, names: dict) -> tuple[str, str]:
    """(treatment, contrast label) for a statsmodels term name; a product of treatment terms
    (a factorial interaction) gives ("A x B", "interaction: (a1 vs a0) x (b1 vs b0)")."""
    if ":" in term and "C(design" not in term and "C(unit_id" not in term:
        parts = [pretty_term(p, names) for p in term.split(":")]
        return (" x ".join(t for t, _ in parts),
                "interaction: " + " x ".join(f"({c})" for _, c in parts))
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


MISSING = dict(estimate=float("nan"), se=float("nan"), ci_low=float("nan"), ci_high=float("nan"),
               p_value=float("nan"))
POPULATION = "population of units"
THESE = "these units"
CR2_LABEL = "CR2 (Bell-McCaffrey) cluster-robust by unit, t with Satterthwaite df"
HC2_LABEL = "HC2 (each observation its own cluster), t with Satterthwaite df"


def _plan(w: pd.DataFrame, cluster: str, collapsed: bool) -> tuple[str, str, str | None]:
    """(how, estimand, refusal) for one fit. how: "cr2-unit" | "hc2" | "statsmodels".

    Two or more units: the effect is an average over units that stand for a population of
    them, so the interval is CR2 clustered by unit (at any number of units: no switch).
    One unit: conditional on it (HC2 on the answers' sampling noise), and refused when the
    answers are deterministic (log-probabilities): they have no sampling model."""
    n_units = w["unit_id"].nunique()
    if cluster in ("persona", "call", "unit+persona"):
        return "statsmodels", THESE if n_units < 2 else POPULATION, None
    if cluster == "none":
        return "hc2", THESE, ("deterministic answers (identical replicates) have no sampling model "
                              "for an interval conditional on the units" if collapsed else None)
    if n_units >= 2:
        return "cr2-unit", POPULATION, None
    if collapsed:
        return "hc2", THESE, ("one unit with deterministic answers (identical replicates): no "
                              "sampling model for an interval")
    return "hc2", THESE, None


def _vcov_rows(res, kind: str, how: str, groups: np.ndarray | None, which: list[int]):
    """(se, df, se_cr1) per coefficient, by CR2 / HC2 (see inference.py)."""
    from llmexp.analysis.inference import cr2  # lazy: see the module docstring

    if isinstance(res, GroupedFit):  # cells: the observation-level CR2 (grouped.py)
        g = groups if groups is not None else np.arange(len(res.n))
        ci = res.cluster_inference(g, which)
        return (np.sqrt(np.clip(np.diag(ci.vcov), 0, None)), ci.df,
                np.sqrt(np.clip(np.diag(ci.vcov_cr1), 0, None)), ci.n_clusters)
    X = np.asarray(res.model.exog, dtype=float)
    if kind == "logit":
        mu = np.asarray(res.mu, dtype=float)
        resid, weights = np.asarray(res.model.endog, dtype=float) - mu, mu * (1 - mu)
    else:
        resid, weights = np.asarray(res.resid, dtype=float), None
    g = groups if how == "cr2-unit" and groups is not None else np.arange(len(resid))
    ci = cr2(X, resid, g, weights, which)
    return (np.sqrt(np.clip(np.diag(ci.vcov), 0, None)), ci.df,
            np.sqrt(np.clip(np.diag(ci.vcov_cr1), 0, None)), ci.n_clusters)


def _rows(res, names: dict, meta: dict, alpha: float, keep, how: str = "statsmodels",
          groups: np.ndarray | None = None, kind: str = "ols") -> list[dict]:
    from llmexp.analysis.inference import t_rows  # lazy

    params = np.asarray(res.params, dtype=float)
    idx = list(res.params.index) if hasattr(res.params, "index") else list(range(len(params)))
    if how == "statsmodels":
        ci = np.asarray(res.conf_int(alpha))
        se, lo, hi, p = np.asarray(res.bse), ci[:, 0], ci[:, 1], np.asarray(res.pvalues)
        dfs, se1, ncl = np.full(len(params), np.nan), np.full(len(params), np.nan), meta.get("n_clusters")
    else:
        which = [j for j, t in enumerate(idx) if keep(t)]
        se, dfs, se1, ncl = _vcov_rows(res, kind, how, groups, which)
        lo, hi, p = t_rows(params, se, dfs, alpha)
        if how == "hc2":
            ncl = 0
    out = []
    for j, term in enumerate(idx):
        if not keep(term):
            continue
        tname, contrast = pretty_term(str(term), names)
        row = dict(meta, _term=str(term), treatment=tname, term=contrast, estimate=float(params[j]), se=float(se[j]),
                   ci_low=float(lo[j]), ci_high=float(hi[j]), p_value=float(p[j]), df=float(dfs[j]),
                   se_cr1=float(se1[j]))
        if how != "statsmodels":
            row["n_clusters"] = ncl
        out.append(_honest(row))
    if _no_residual_df(res):
        for row in out:
            row.update(se=float("nan"), ci_low=float("nan"), ci_high=float("nan"), p_value=float("nan"))
            row["note"] = _join(row.get("note"), "saturated fit: no residual degrees of freedom")
    return out


def _join(a: str | None, b: str) -> str:
    return b if not a or (isinstance(a, float) and np.isnan(a)) else f"{a}; {b}"


def _honest(row: dict) -> dict:
    """No false certainty: a zero or missing SE gives no interval and no p-value."""
    se, est = row.get("se"), row.get("estimate")
    scale = max(1.0, abs(est)) if est is not None and np.isfinite(est) else 1.0
    # a round-off SE (1e-17 from a fit with no residual variation) is a zero SE
    if se is None or not np.isfinite(se) or se <= 1e-10 * scale:
        row.update(se=float("nan"), ci_low=float("nan"), ci_high=float("nan"), p_value=float("nan"))
        row["note"] = _join(row.get("note"), "no estimable standard error (no variation left "
                                             "around the fit)")
    return row


def is_treatment_term(names: dict):
    def keep(term: str) -> bool:
        return ":" not in term and any(term == c or term.startswith(f"C({c},")
                                       for c in names if not c.endswith(":levels"))
    return keep


def _collapse_identical_copies(w: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    if is_cells(w):  # the same rule on cells (keyed by design, unit, persona, condition)
        if not spread_free(w):
            return w, False
        return w.assign(n=1.0, m2=0.0), True
    return _collapse_rows(w)


def _collapse_rows(w: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
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
    """Conventional statsmodels fit (the explicit persona / call / two-way clusterings)."""
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

    groups, se_type = choose_cluster(df, "unit" if cluster == "auto" and df["unit_id"].nunique() > 1
                                     else (cluster if cluster != "unit+persona" else "unit"))
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


def _fit_plain(w: pd.DataFrame, formula: str, kind: str):
    """Point estimates only (the interval comes from inference.py)."""
    import statsmodels.api as sm  # lazy: see the module docstring
    import statsmodels.formula.api as smf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if kind == "logit":
            return smf.glm(formula, data=w, family=sm.families.Binomial()).fit()
        return smf.ols(formula, data=w).fit()


def _unit_codes(w: pd.DataFrame) -> np.ndarray:
    return pd.factorize(w["unit_id"].astype(str))[0]


def _fit_rows(w, formula, rhs, names, meta, m, cluster, alpha, keep) -> list[dict]:
    """Rows of one method on one frame: the point estimate and its honest interval."""
    how, estimand, refusal = _plan(w, cluster, bool(meta.get("note") == COLLAPSED_NOTE))
    if is_cells(w):
        return _fit_cell_rows(w, formula, names, meta, m, how, estimand, refusal, alpha, keep)
    if m == "ordered":
        res, se_type, ncl = fit_ordered(w, rhs, cluster)
        meta = dict(meta, method=m, se_type=se_type, n_clusters=ncl, estimand=estimand,
                    inference="cluster sandwich (statsmodels CR1), normal; no small-sample correction")
        return [_refuse(r, refusal) for r in _rows(res, names, meta, alpha, keep)]
    if how == "statsmodels":
        fit = fit_logit if m == "logit" else fit_ols
        res, se_type, ncl = fit(w, formula, cluster)
        meta = dict(meta, method=m, se_type=se_type, n_clusters=ncl, estimand=estimand,
                    inference=f"{se_type} (statsmodels CR1), t(G-1)")
        return _rows(res, names, meta, alpha, keep)
    res = _fit_plain(w, formula, m)
    se_type = "cluster(unit)" if how == "cr2-unit" else "HC2"
    meta = dict(meta, method=m, se_type=se_type, estimand=estimand,
                inference=CR2_LABEL if how == "cr2-unit" else HC2_LABEL)
    rows = _rows(res, names, meta, alpha, keep, how=how, groups=_unit_codes(w), kind=m)
    return [_refuse(r, refusal) for r in rows]


def _fit_cell_rows(w, formula, names, meta, m, how, estimand, refusal, alpha, keep) -> list[dict]:
    """`_fit_rows` on a cell table: the same rows from the cells' sufficient statistics."""
    if how != "cr2-unit" or m not in ("ols", "logit"):
        why = ("this estimate needs the answers one by one (one unit, or an explicit "
               "clustering); the cell table of a streamed analysis cannot give it")
        return [dict(meta, method=m, treatment="", term="not estimated", **MISSING, note=why)]
    res, used = fit_cells(w, formula, m)
    meta = dict(meta, method=m, se_type="cluster(unit)", estimand=estimand, inference=CR2_LABEL)
    rows = _rows(res, names, meta, alpha, keep, how=how, groups=_unit_codes(w.iloc[used]), kind=m)
    return [_refuse(r, refusal) for r in rows]


def cell_keys(df: pd.DataFrame) -> list[str]:
    """The cells effects fits on: design x unit x persona x condition, of one model/outcome
    (the regressors, and the identical-copies rule's key, are constant within them)."""
    return ["model", "target", "design", "unit_id", "persona_id"] + [
        c for c in df.columns if c.startswith("lvl__")]


def _as_cells(g: pd.DataFrame, share: bool, cluster: str) -> pd.DataFrame:
    """Cells when the fit is exact on them (grouped.py): a share outcome (binary,
    probability, an option's indicator) clustered by unit with two units or more; else g."""
    if is_cells(g):
        return merge(g, cell_keys(g))
    if not share or cluster not in ("auto", "unit") or g["unit_id"].nunique() < 2:
        return g
    return compress(g, cell_keys(g))


def _all_identical(g: pd.DataFrame) -> bool:
    if is_cells(g):
        return bool(g["ymax"].max() <= g["ymin"].min())
    return bool(g["y"].nunique() < 2)


def _refuse(row: dict, reason: str | None) -> dict:
    if reason:
        row.update(se=float("nan"), ci_low=float("nan"), ci_high=float("nan"), p_value=float("nan"))
        row["note"] = _join(row.get("note"), reason)
    return row


def _missing_row(meta: dict, study: Study, reason: str, method: str = "ols") -> dict:
    tnames = ", ".join(t.name for t in study.treatments)
    return dict(meta, method=method, treatment=tnames, term="not estimated", **MISSING, note=reason)


def _degenerate(g: pd.DataFrame, w: pd.DataFrame | None, rhs: list[str]) -> str | None:
    """Why no effect can be estimated on this design's data (None: it can)."""
    if _all_identical(g):
        return "all answers are identical: no variation to estimate an effect from"
    if not rhs:
        return "no treatment variation in this design's data (one condition)"
    return None


def _within_units(w: pd.DataFrame) -> tuple[str | None, bool]:
    """(reason, estimable) when unit effects leave too little to compare: with an intercept
    per unit only the units asked at two or more conditions carry the effect. None of them:
    the effect is not identified (not estimable). One: the estimate rests on that unit alone,
    and an interval for the population of units is impossible (estimable, no interval)."""
    lv = [c for c in w.columns if str(c).startswith("lvl__")]
    if not lv or w["unit_id"].nunique() < 2:
        return None, True
    key = w[lv].astype(str).agg("|".join, axis=1)
    per = key.groupby(w["unit_id"].to_numpy()).nunique()
    varied = per[per >= 2]
    if varied.empty:
        return ("each unit was asked at one condition only: with unit effects no within-unit "
                "comparison identifies the effect"), False
    if len(varied) == 1:
        return (f"only one unit ({varied.index[0]}) was asked at two or more conditions: the "
                "effect rests on that unit alone, no interval over units"), True
    return None, True


def _refuse_population(rows: list[dict], reason: str, base_note) -> list[dict]:
    """The true reason replaces the symptoms (zero SE, saturated fit) on population rows."""
    for r in rows:
        if r.get("estimand") == POPULATION and r.get("scope", "design") == "design":
            r.update(se=float("nan"), ci_low=float("nan"), ci_high=float("nan"),
                     p_value=float("nan"), df=float("nan"))
            for k in ("es_ci_low", "es_ci_high"):
                if k in r:
                    r[k] = float("nan")
            r["note"] = _join(base_note, reason)
    return rows


def _applicable(m: str, w: pd.DataFrame, rhs: list[str]) -> bool:
    if m == "logit" and is_cells(w):  # the answers' range, not the cell means'
        return bool(w["ymin"].min() >= 0 and w["ymax"].max() <= 1 and not _all_identical(w))
    if m == "logit":
        return bool(w["y"].min() >= 0 and w["y"].max() <= 1 and w["y"].nunique() >= 2)
    if m == "ordered":
        return not any(c.startswith("C(") for c in rhs) and w["y"].nunique() >= 3
    if m != "ols":
        raise AnalysisError(f"effects: unknown method {m!r}")
    return True


def design_rows(study, out, model, design, g, mlist, cluster, alpha) -> list[dict]:
    g = _as_cells(g, answers.get(out.answer).share, cluster)
    meta0 = dict(outcome=out.name, model=model, design=design, mode=g["mode"].iloc[0],
                 scope="design", n_obs=n_obs(g), n_units=g["unit_id"].nunique())
    w, rhs, names = work_frame(study, g)
    why = _degenerate(g, w, rhs)
    if why:
        return [_missing_row(meta0, study, why)]
    w, collapsed = _collapse_identical_copies(w)
    within, estimable = _within_units(w) if cluster == "auto" else (None, True)
    if not estimable:
        return [_missing_row(meta0, study, str(within))]
    fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
    formula = "y ~ " + " + ".join(rhs) + fe
    meta0.update(n_obs=n_obs(w))
    if collapsed:
        meta0["note"] = COLLAPSED_NOTE
    rows: list[dict] = []
    for m in mlist:
        if not _applicable(m, w, rhs):
            continue
        try:
            new = _fit_rows(w, formula, rhs, names, meta0, m, cluster, alpha, is_treatment_term(names))
        except (np.linalg.LinAlgError, ValueError) as exc:
            rows.append(dict(meta0, method=m, **MISSING, note=f"fit failed: {exc}"))
            continue
        rows.extend(add_effect_sizes(new, w, out, study, names, alpha))
    if within:
        rows = _refuse_population(rows, within, meta0.get("note"))
    if len(rhs) >= 2:
        rows.extend(_factorial_rows(study, out, w, rhs, fe, names, meta0, cluster, alpha))
    kind = answers.get(out.answer)
    ratio = _scale_ratio(w) if kind.numeric and not kind.share and not is_cells(w) else 1.0
    if ratio > SCALE_RATIO:
        why = (f"units answer on different scales (typical size differs {ratio:.0f}-fold): the raw "
               "pooled effect mixes scales; see method ols_unit_std")
        for r in rows:
            r["note"] = _join(r.get("note"), why)
        rows.extend(_standardised_rows(w, formula, rhs, names, meta0, out, study, cluster, alpha))
    return rows


SCALE_RATIO = 10.0  # units whose typical answers differ more than this are on different scales


def _scale_ratio(w: pd.DataFrame) -> float:
    """max / min over units of the median absolute answer (1.0 when not comparable)."""
    if w["unit_id"].nunique() < 2:
        return 1.0
    size = w["y"].abs().groupby(w["unit_id"]).median()
    size = size[size > 0]
    return float(size.max() / size.min()) if len(size) >= 2 else 1.0


def _standardised_rows(w, formula, rhs, names, meta0, out, study, cluster, alpha) -> list[dict]:
    """The effect on answers standardised within each unit ((y - unit mean) / unit SD): in
    unit SDs, so units on different scales (miles, feet) contribute comparably."""
    g = w.groupby("unit_id")["y"]
    sd = g.transform("std")
    ws = w.assign(y=(w["y"] - g.transform("mean")) / sd.where(sd > 0))
    ws = ws[np.isfinite(ws["y"])]
    if ws.empty or ws["unit_id"].nunique() < 2:
        return [_missing_row(dict(meta0), study, "no unit varies: no standardised effect",
                             method="ols_unit_std")]
    new = _fit_rows(ws, formula, rhs, names, dict(meta0, n_obs=len(ws)), "ols", cluster, alpha,
                    is_treatment_term(names))
    for r in new:
        r.update(method="ols_unit_std", effect_size_type="per-unit standardised (unit SDs)",
                 effect_size=r["estimate"], es_ci_low=r["ci_low"], es_ci_high=r["ci_high"])
    return new


def _factorial_rows(study, out, w, rhs, fe, names, meta0, cluster, alpha) -> list[dict]:
    """Two treatments varied together: the interaction of the first two (does the effect of
    one depend on the level of the other?) from ``y ~ A * B (+ others) + C(unit)``."""
    formula = f"y ~ {rhs[0]} * {rhs[1]}" + "".join(f" + {r}" for r in rhs[2:]) + fe
    meta = dict(meta0, scope="factorial")
    try:
        new = _fit_rows(w, formula, rhs, names, meta, "ols", cluster, alpha,
                        lambda t: str(t).count(":") == 1 and "C(unit_id" not in str(t))
    except (np.linalg.LinAlgError, ValueError) as exc:
        return [_missing_row(meta, study, f"interaction not estimated: {exc}")]
    return add_effect_sizes(new, w, out, study, names, alpha)


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
        if answers.get(out.answer).categorical and is_cells(data):
            rows.append(_missing_row(dict(outcome=out.name, scope="design"), study,
                                     CATEGORICAL_CELLS))
            continue
        if answers.get(out.answer).categorical:  # shares per option, not the mean label index
            from llmexp.analysis._categorical import share_difference_rows

            rows.extend(share_difference_rows(study, data, out, cluster, alpha))
            continue
        mlist = methods or answers.get(out.answer).effect_methods
        for (model, design), g in data.groupby(["model", "design"], sort=False):
            rows.extend(design_rows(study, out, model, design, g, mlist, cluster, alpha))
        if interaction:
            rows.extend(_interactions(study, data, design_order, cluster, alpha, out.name,
                                  answers.get(out.answer).share))
    return pd.DataFrame(rows).drop(columns="_term", errors="ignore")  # _term: statsmodels' name, internal


CATEGORICAL_CELLS = ("a categorical outcome's option shares need the answers one by one (a "
                     "streamed analysis holds cell means)")


def _interactions(study, data, design_order, cluster, alpha, outcome, share=False) -> list[dict]:
    rows = []
    for model, g in data.groupby("model", sort=False):
        g = _as_cells(g, share, cluster)
        present = [d for d in design_order if d in set(g["design"])]
        if len(present) < 2:
            continue
        w, rhs, names = work_frame(study, g)
        meta = dict(outcome=outcome, model=model, design=None, mode=None, scope="interaction",
                    reference=present[0], n_obs=n_obs(g), n_units=g["unit_id"].nunique())
        varies = [d for d, gd in g.groupby("design") if work_frame(study, gd)[1]]
        if _all_identical(g):
            rows.append(_missing_row(meta, study, "all answers are identical: no variation to "
                                     "estimate a difference from"))
            continue
        if not rhs or len(varies) < len(present):
            rows.append(_missing_row(meta, study, "a design has no treatment variation: its slope, "
                                     "and so the difference, is not estimable"))
            continue
        parts = [_collapse_identical_copies(d) for _, d in w.groupby("design", sort=False)]
        collapsed = any(c for _, c in parts)
        w = pd.concat([d for d, _ in parts])
        ref = present[0]
        dterm = f"C(design, Treatment(reference={ref!r}))"
        fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
        formula = f"y ~ {rhs[0]} * {dterm}" + "".join(f" + {r}" for r in rhs[1:]) + fe
        meta.update(n_obs=n_obs(w), **({"note": COLLAPSED_NOTE} if collapsed else {}))
        try:
            new = _fit_rows(w, formula, rhs, names, meta, "ols", cluster, alpha,
                            lambda t: ":C(design" in str(t))
        except (np.linalg.LinAlgError, ValueError) as exc:  # say so rather than drop the row
            rows.append(_missing_row(meta, study, f"not estimated: {exc}"))
            continue
        for r in new:
            main_term, dpart = r["_term"].rsplit(":C(design", 1)  # the model's own term name
            dname = dpart.split("[T.", 1)[1][:-1]
            _, contrast = pretty_term(main_term, names)
            r.update(design=dname, treatment=pretty_term(main_term, names)[0],
                     term=f"{contrast}: {dname} - {ref}")
            if cluster == "auto":
                _refuse_difference(r, w, (ref, dname))
            rows.append(r)
    return rows


def _refuse_difference(row: dict, w: pd.DataFrame, designs: tuple[str, str]) -> None:
    """A slope difference needs each design's own slope: when one rests on a single unit (or
    on none) within that design, the difference has no interval over units (or no value)."""
    for d in designs:
        why, estimable = _within_units(w[w["design"] == d])
        if why:
            row.update(se=float("nan"), ci_low=float("nan"), ci_high=float("nan"),
                       p_value=float("nan"), df=float("nan"),
                       **({} if estimable else {"estimate": float("nan")}))
            row["note"] = _join(row.get("note"), f"{d}: {why}")
            return


def cohens_d_sd(w: pd.DataFrame) -> float:
    """Pooled within-condition SD of the answers (the denominator of Cohen's d)."""
    keys = [c for c in w.columns if c.startswith("lvl__")]
    if is_cells(w):
        return pooled_sd(w, keys)
    if not keys:
        return float("nan")
    g = w.groupby(keys, dropna=False)["y"]
    n, v = g.size(), g.var(ddof=1)
    dof = float((n - 1).clip(lower=0).sum())
    return float(np.sqrt(((n - 1) * v.fillna(0)).sum() / dof)) if dof > 0 else float("nan")


def two_level_contrast(w: pd.DataFrame, names: dict, tname: str) -> tuple[float, str] | None:
    """(B - A on the coded scale, "B vs A") when a numeric treatment has two levels here."""
    col = next((c for c, n in names.items() if not c.endswith(":levels") and n == tname), None)
    if col is None or col not in w or not pd.api.types.is_numeric_dtype(w[col]):
        return None
    vals = sorted(pd.unique(w[col].dropna()))
    if len(vals) != 2:
        return None
    text = [str(w.loc[w[col] == v, f"lvl__{tname}"].iloc[0]) for v in vals]
    return float(vals[1] - vals[0]), f"{text[1]} vs {text[0]}"


def add_effect_sizes(rows: list[dict], w: pd.DataFrame, out, study: Study, names: dict,
                     alpha: float) -> list[dict]:
    """Two-level numeric treatments become contrasts (B - A, not a slope per 1.0), and every
    row gets a standardised effect size with its interval: the risk difference (linear
    probability) or odds ratio (logit) for binary outcomes, Cohen's d otherwise (the
    estimate over the pooled within-condition SD, treated as known)."""
    binary = answers.get(out.answer).first_label_share
    sd = cohens_d_sd(w)
    for r in rows:
        if r.get("term") == "slope":
            two = two_level_contrast(w, names, r["treatment"])
            if two is not None:
                k, label = two
                for c in ("estimate", "se", "ci_low", "ci_high", "se_cr1"):
                    if c in r:
                        r[c] = r[c] * k
                r["term"] = label
        est, lo, hi = (r.get(c, float("nan")) for c in ("estimate", "ci_low", "ci_high"))
        if binary and r.get("method") == "logit":
            r.update(effect_size_type="odds ratio", effect_size=float(np.exp(est)),
                     es_ci_low=float(np.exp(lo)), es_ci_high=float(np.exp(hi)))
        elif binary:
            r.update(effect_size_type="risk difference", effect_size=est,
                     **_bounded_rd(r, lo, hi))
        elif r.get("method") == "ols" and np.isfinite(sd) and sd > 0:
            r.update(effect_size_type="cohen d", effect_size=est / sd, es_ci_low=lo / sd,
                     es_ci_high=hi / sd)
    return rows


def _bounded_rd(row: dict, lo: float, hi: float) -> dict:
    """A risk difference between two conditions lies in [-1, 1]: its interval is truncated
    there (coverage unchanged; the row's note says so). Slopes per 1.0 of a level are not
    bounded that way and are left as they are."""
    term = str(row.get("term", ""))
    if " vs " not in term or term.startswith("interaction") or not (lo < -1 or hi > 1):
        return dict(es_ci_low=lo, es_ci_high=hi)
    row["note"] = _join(row.get("note"), "risk-difference interval truncated to [-1, 1]")
    return dict(es_ci_low=max(lo, -1.0), es_ci_high=min(hi, 1.0))


def categorical_tables(study: Study, obs: Observations, alpha: float) -> dict[str, pd.DataFrame]:
    """``option_shares`` and ``independence`` for the categorical outcomes (none: {})."""
    from llmexp.analysis._categorical import independence, option_shares

    shares, tests = [], []
    base = obs.outcomes()
    for out in study.outcomes:
        data = base[base["target"] == out.name]
        if answers.get(out.answer).categorical and not data.empty and not is_cells(data):
            shares.append(option_shares(data, out, alpha))
            tests.append(independence(study, data, out, alpha))
    if not shares:
        return {}
    return {"option_shares": pd.concat(shares, ignore_index=True),
            "independence": pd.concat(tests, ignore_index=True)}


def cell_means(study: Study, obs: Observations, alpha: float) -> pd.DataFrame:
    """Factorial designs (two or more treatments varied in a design's data): the mean per
    combination of levels, pooled over units, with a CR2 interval clustered by unit."""
    from llmexp.analysis._categorical import mean_interval

    rows = []
    base = obs.outcomes()
    for out in study.outcomes:
        if answers.get(out.answer).categorical:
            continue
        data = base[base["target"] == out.name]
        for (model, design), g in data.groupby(["model", "design"], sort=False):
            lv = [c for c in g.columns if c.startswith("lvl__") and g[c].nunique() > 1]
            if len(lv) < 2:
                continue
            for key, c in g.groupby(lv, sort=True):
                units = pd.factorize(c["unit_id"].astype(str))[0]
                counts = c["n"].to_numpy(float) if is_cells(c) else None
                rows.append(dict(outcome=out.name, model=model, design=design,
                                 **dict(zip(lv, key if isinstance(key, tuple) else (key,))),
                                 **mean_interval(c["y"].to_numpy(dtype=float), units, alpha,
                                                 counts=counts)))
    return pd.DataFrame(rows)


@register
class Effects(Analysis):
    name = "effects"
    title = "Treatment effects"
    description = ("Regression coefficients with 95% intervals (CR2 clustered by unit, "
                   "Satterthwaite df; the estimand column says whether they generalise to the "
                   "population of units), standardised effect sizes, and a note wherever a number "
                   "cannot be estimated; scope 'interaction' rows are slope differences against "
                   "the reference design, 'factorial' rows interactions of two treatments.")
    report_tables = ("effects", "cell_means", "option_shares", "independence")
    order = 20
    on_cells = True  # grouped.py: the same numbers from cell-level statistics
    headline = True  # the digest opens with the effects: what most readers look for first
    default = True  # what a study that names no analysis gets

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        tables = {"effects": estimate_effects(ctx.study, ctx.obs, cluster=ctx.cluster, alpha=ctx.alpha)}
        tables.update(categorical_tables(ctx.study, ctx.obs, ctx.alpha))
        means = cell_means(ctx.study, ctx.obs, ctx.alpha)
        if not means.empty:
            tables["cell_means"] = means
        return tables

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        e = tables.get("effects")
        if e is None or not len(e) or "estimate" not in e:
            return []
        lines = [f"effect [{r.scope}] {r.outcome} {r.design} {r.method} {r.term}: "
                 f"{r.estimate:.3f} {interval(r.ci_low, r.ci_high, getattr(r, 'note', None))}"
                 f"{p_text(r.p_value)}"
                 for r in e.dropna(subset=["estimate"]).itertuples()]
        ind = tables.get("independence")
        for r in ([] if ind is None else ind.itertuples()):
            lines.append(f"independence {r.outcome} {r.design}: F={num(r.wald_F, '.3g')} "
                         f"p={num(r.p_value, '.3g')} (cluster-aware); chi2 p={num(r.chi2_p, '.3g')} "
                         "(not cluster-aware)"
                         + (f" [{r.note}]" if not np.isfinite(r.p_value) else ""))
        return lines
