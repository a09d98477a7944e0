"""Elasticities from smooth fits, with intervals (used by demand_curve.py and baseline.py).

Point elasticity at a named level p0 (default 1.0 = the regular price), the elasticity of the
average share curve ``Q(p) = mean_u q_u(p)`` (units weighted equally):

    logit q_u(p) = a_u + b1 L + b2 L^2,   L = log p       (fractional logit, unit effects)
    E(p0) = p0 Q'(p0) / Q(p0) = mean_u[q_u (1 - q_u)] (b1 + 2 b2 L0) / mean_u[q_u]

fitted on the observations at paid levels (zero shares included: the binomial quasi-
likelihood needs no log of a zero). The quadratic term lets the curve bend (it is dropped when
fewer than three paid levels are asked). The interval is a delete-one-unit jackknife over units
(above 40 units: groups of near-equal size, delete-a-group) with t(K - 1) critical values, K
the number of jackknife groups: it carries both the fit's noise and the unit-to-unit variation
of the population estimand (the cluster sandwich misses the latter: the unit effects' scores
sum to zero within their cluster). With one unit there is no interval (the estimate is kept,
the interval is missing with its reason).

Constant (log-log) elasticity without dropping zeros: Poisson quasi-likelihood with a log
link (PPML), ``log E[q_u(p)] = a_u + e log p``, e and its cluster-robust (by unit) interval.

statsmodels and scipy are imported inside the functions (see analysis/base.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from llmexp.analysis._honest import within_rank

EPS = 1e-9


def arc_elasticity(p1: float, q1: float, p2: float, q2: float) -> float:
    """Midpoint arc elasticity between (p1, q1) and (p2, q2)."""
    dq, mq = q2 - q1, (q1 + q2) / 2
    dp, mp = p2 - p1, (p1 + p2) / 2
    if mq == 0 or dp == 0 or mp == 0:
        return float("nan")
    return (dq / mq) / (dp / mp)


def unit_level_cells(df: pd.DataFrame) -> pd.DataFrame:
    """The unit x paid level cells (mean answer y and n) the elasticity fits use."""
    return _cells(df)


def _cells(df: pd.DataFrame) -> pd.DataFrame:
    """Unit x level cells (mean answer and n): the fits below weight each by its n, which
    gives the observation-level estimates and cluster scores (the score is linear in y).
    A cell table (grouped.py) gives the same cells, merged to unit x level."""
    if "m2" in df.columns and "n" in df.columns:
        d = df[["unit_id", "level", "y", "n"]].dropna()
        d = d[(d["level"] > EPS) & np.isfinite(d["y"])].assign(
            unit_id=lambda t: t["unit_id"].astype(str), s=lambda t: t["n"] * t["y"])
        if not d.duplicated(["unit_id", "level"]).any():  # already unit x level (fast path)
            c = d.sort_values(["unit_id", "level"], kind="stable").reset_index(drop=True)
        else:
            c = d.groupby(["unit_id", "level"], as_index=False).agg(s=("s", "sum"), n=("n", "sum"))
        return c.assign(y=c["s"] / c["n"], n=c["n"].round().astype(np.int64))[
            ["unit_id", "level", "y", "n"]]
    d = df[["unit_id", "level", "y"]].dropna()
    d = d[(d["level"] > EPS) & np.isfinite(d["y"])].assign(unit_id=lambda t: t["unit_id"].astype(str))
    return d.groupby(["unit_id", "level"], as_index=False).agg(y=("y", "mean"), n=("y", "size"))


def _design(c: pd.DataFrame, quad: bool) -> tuple[np.ndarray, np.ndarray]:
    lp = np.log(c["level"].to_numpy(float))
    codes = pd.factorize(c["unit_id"])[0]
    g = int(codes.max()) + 1 if len(codes) else 0
    cols = [lp, lp ** 2] if quad else [lp]
    return np.column_stack(cols + [(codes == j).astype(float) for j in range(g)]), codes


def _fit(c: pd.DataFrame, x: np.ndarray, codes: np.ndarray, family: str, cluster: bool,
         start: np.ndarray | None = None):
    import statsmodels.api as sm  # lazy: see the module docstring

    fam = sm.families.Binomial() if family == "logit" else sm.families.Poisson()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # hasconst: the unit dummies span the constant (saves statsmodels' rank check)
        model = sm.GLM(c["y"].to_numpy(float), x, family=fam, var_weights=c["n"].to_numpy(float),
                       hasconst=True)
        if cluster:
            return model.fit(start_params=start, cov_type="cluster", cov_kwds={"groups": codes})
        return model.fit(start_params=start)


def _t(alpha: float, df: int) -> float:
    from scipy import stats  # lazy: see the module docstring

    return float(stats.t.ppf(1 - alpha / 2, df))


def _missing(reason: str, **extra) -> dict:
    return dict(estimate=np.nan, se=np.nan, ci_low=np.nan, ci_high=np.nan, reason=reason,
                **extra)


def varied_units(c: pd.DataFrame) -> int:
    """Units asked at two or more paid levels: with unit effects only they carry the slope
    (a unit seen at one level is fitted exactly by its own intercept)."""
    return int((c.groupby("unit_id")["level"].nunique() >= 2).sum()) if len(c) else 0


NOT_IDENTIFIED = ("no unit was asked at two or more paid levels: with unit effects the "
                  "slope is not identified")
ONE_VARIED = ("only one unit was asked at two or more paid levels: the slope rests on that "
              "unit alone, no interval over units")


def _refusal(c: pd.DataFrame, upper: bool) -> str:
    if c["level"].nunique() < 2:
        return "fewer than two paid levels"
    if varied_units(c) == 0:
        return NOT_IDENTIFIED
    if c["y"].nunique() < 2:
        return "no variation in the answers"
    if (c["y"] < 0).any() or (upper and (c["y"] > 1).any()):
        return "answers outside [0, 1]" if upper else "negative answers"
    return ""


MAX_JACKKNIFE_GROUPS = 40  # above this many units, delete-a-group jackknife (speed)


def _jackknife(c: pd.DataFrame, quad: bool, at: list[float], full: np.ndarray) -> np.ndarray:
    """Delete-one-unit jackknife replicates of the elasticities (groups x levels); with more
    than MAX_JACKKNIFE_GROUPS units, units are dealt round robin (in order of appearance) into
    ceil(G / m) groups of m or m - 1 units, m = ceil(G / MAX_JACKKNIFE_GROUPS), and one group
    is deleted at a time (grouped jackknife; near-equal group sizes keep it accurate)."""
    units = list(c["unit_id"].unique())
    m = -(-len(units) // MAX_JACKKNIFE_GROUPS)
    k = -(-len(units) // m)
    group = {u: i % k for i, u in enumerate(units)}
    nq = 2 if quad else 1
    reps = []
    for j in range(k):
        keep = [i for i, u in enumerate(units) if group[u] != j]
        cu = c[c["unit_id"].map(group) != j]
        x, codes = _design(cu, quad)
        start = np.concatenate([full[:nq], full[nq:][keep]])
        try:
            res = _fit(cu, x, codes, "logit", cluster=False, start=start)
            reps.append([_elasticity_value(np.asarray(res.params, float), np.log(p), quad)
                         for p in at])
        except (ValueError, np.linalg.LinAlgError):
            reps.append([np.nan] * len(at))
    return np.asarray(reps, float)


def point_elasticities(df: pd.DataFrame, at: tuple[float, ...] = (1.0,),
                       alpha: float = 0.05) -> list[dict]:
    """One dict per level in `at`: level, estimate, se, ci_low, ci_high, n_units, method,
    reason (empty when the interval exists). Interval: delete-one-unit jackknife, t(G-1)."""
    c = _cells(df)
    # the square needs three levels AND variation of (log p, (log p)^2) within units: unit
    # effects absorb the rest (one unit at two levels identifies a slope, not a curvature)
    quad = c["level"].nunique() >= 3 and within_rank(
        np.column_stack([np.log(c["level"]), np.log(c["level"]) ** 2]), c["unit_id"].to_numpy()) >= 2
    g = c["unit_id"].nunique()
    base = dict(method="fractional logit on log p" + (" + (log p)^2" if quad else ""),
                n_units=g)
    why = _refusal(c, upper=True)
    if why:
        return [dict(base, level=float(p0), **_missing(why)) for p0 in at]
    x, codes = _design(c, quad)
    try:
        params = np.asarray(_fit(c, x, codes, "logit", cluster=False).params, float)
    except (ValueError, np.linalg.LinAlgError) as e:  # separation, singular design
        return [dict(base, level=float(p0), **_missing(f"the fit failed ({type(e).__name__})"))
                for p0 in at]
    lo_lv, hi_lv = c["level"].min(), c["level"].max()
    inside = [float(p0) for p0 in at if lo_lv - EPS <= p0 <= hi_lv + EPS]
    vu = varied_units(c)
    jk = _jackknife(c, quad, inside, params) if g >= 2 and vu >= 2 and inside else None
    one = "one unit: no interval over units" if g < 2 else ONE_VARIED
    out = []
    for p0 in at:
        row = dict(base, level=float(p0))
        if float(p0) not in inside:
            out.append(dict(row, **_missing("the level is outside the paid levels asked")))
            continue
        est = _elasticity_value(params, float(np.log(p0)), quad)
        reps = None if jk is None else jk[:, inside.index(float(p0))]
        if not np.isfinite(est):
            out.append(dict(row, **_missing("the fitted share is 0 at this level")))
        elif reps is None:
            out.append(dict(row, **_missing(one)) | {"estimate": est})
        elif not np.all(np.isfinite(reps)) or np.var(reps) <= 0:
            out.append(dict(row, **_missing("the jackknife over units failed")) | {"estimate": est})
        else:
            k = len(reps)  # jackknife groups (= units up to MAX_JACKKNIFE_GROUPS)
            se = float(np.sqrt((k - 1) / k * np.sum((reps - reps.mean()) ** 2)))
            q = _t(alpha, k - 1)
            out.append(dict(row, estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se,
                            reason=""))
    return out


def _elasticity_value(params: np.ndarray, l0: float, quad: bool) -> float:
    k = 2 if quad else 1
    b1, b2 = params[0], (params[1] if quad else 0.0)
    eta = params[k:] + b1 * l0 + b2 * l0 * l0
    q = 1 / (1 + np.exp(-eta))
    mq = float(np.mean(q))
    return float(np.mean(q * (1 - q)) * (b1 + 2 * b2 * l0) / mq) if mq > 0 else float("nan")


def _elasticity_and_grad(params: np.ndarray, l0: float, quad: bool) -> tuple[float, np.ndarray]:
    est = _elasticity_value(params, l0, quad)
    grad = np.zeros_like(params)
    for j in range(len(params)):
        h = 1e-6 * max(1.0, abs(params[j]))
        up, dn = params.copy(), params.copy()
        up[j] += h
        dn[j] -= h
        grad[j] = (_elasticity_value(up, l0, quad) - _elasticity_value(dn, l0, quad)) / (2 * h)
    return est, grad


def ppml_elasticity(df: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Constant elasticity from ``log E[q] = a_u + e log p`` (Poisson quasi-likelihood),
    zeros kept: estimate, se, ci_low, ci_high, zero_cells, se_type, reason."""
    return ppml_from_cells(_cells(df), alpha)


def ppml_from_cells(c: pd.DataFrame, alpha: float = 0.05) -> dict:
    """`ppml_elasticity` of unit x level cells (`unit_level_cells`)."""
    zero = int((c["y"] <= 0).sum())
    why = _refusal(c, upper=False)
    if why:
        return dict(_missing(why), zero_cells=zero, se_type="")
    g = c["unit_id"].nunique()
    quick = None if g >= 2 else _poisson_slope(
        np.log(c["level"].to_numpy(float)), c["y"].to_numpy(float), c["n"].to_numpy(float))
    if quick is not None:  # one unit (the per-unit rows): the estimate only
        return dict(_missing("one unit: no interval over units"), zero_cells=zero, se_type="")\
            | {"estimate": quick}
    x, codes = _design(c, quad=False)
    # an interval needs two units carrying the slope and a residual degree of freedom
    # (statsmodels' cluster factor (N - 1) / (N - K) divides by zero on a saturated fit)
    no_ci = "one unit: no interval over units" if g < 2 else ONE_VARIED if varied_units(c) < 2 else (
        "as many cells as parameters: no residual degrees of freedom for an interval"
        if len(c) <= x.shape[1] else "")
    try:
        res = _fit(c, x, codes, "poisson", cluster=not no_ci)
    except (ValueError, np.linalg.LinAlgError) as e:
        return dict(_missing(f"the fit failed ({type(e).__name__})"), zero_cells=zero, se_type="")
    est = float(np.asarray(res.params)[0])
    if no_ci:
        return dict(_missing(no_ci), zero_cells=zero, se_type="") | {"estimate": est}
    # statsmodels' small-sample factor (N - 1) / (N - K) counts cells here: rescale it to
    # the observations so the SE equals the observation-level GLM's
    n_obs, n_cells, k = float(c["n"].sum()), float(len(c)), float(x.shape[1])
    adj = ((n_obs - 1) / (n_obs - k)) / ((n_cells - 1) / (n_cells - k)) if n_cells > k else 1.0
    se = float(np.asarray(res.bse)[0]) * float(np.sqrt(adj))
    q = _t(alpha, g - 1)
    if not (np.isfinite(se) and se > 0):
        return dict(_missing("zero standard error"), zero_cells=zero, se_type="") | {"estimate": est}
    return dict(estimate=est, se=se, ci_low=est - q * se, ci_high=est + q * se, zero_cells=zero,
                se_type="cluster(unit), t(G-1)", reason="")


def _poisson_slope(lp: np.ndarray, y: np.ndarray, w: np.ndarray) -> float | None:
    """Slope e of the Poisson quasi-likelihood fit ``log E[y] = a + e lp`` (weights w) by
    Newton's method to machine precision: the same estimate as statsmodels' GLM for one
    unit, without its per-fit overhead (a study has one such fit per unit and design).
    None when it does not converge (e.g. an MLE at infinity): statsmodels then decides."""
    X = np.column_stack([np.ones(len(lp)), lp])
    beta = np.array([np.log(max(float(w @ y) / float(w.sum()), 1e-300)), 0.0])
    with np.errstate(all="ignore"):
        for _ in range(50):
            mu = np.exp(X @ beta)
            try:
                step = np.linalg.solve(X.T @ (X * (w * mu)[:, None]), X.T @ (w * (y - mu)))
            except np.linalg.LinAlgError:
                return None
            beta = beta + step
            if not np.all(np.isfinite(beta)):
                return None
            if np.max(np.abs(step)) <= 1e-12 * max(1.0, float(np.max(np.abs(beta)))):
                return float(beta[1])
    return None


def adjacent_arc(levels: np.ndarray, q: np.ndarray, ref: float = 1.0) -> tuple[float, str]:
    """Arc elasticity over the adjacent pair of paid levels whose midpoint is nearest `ref`
    (ties: the lower pair), and the pair as text ('0.8-1.0'); nan and '' with < 2 levels."""
    order = np.argsort(levels)
    p, s = np.asarray(levels, float)[order], np.asarray(q, float)[order]
    keep = p > EPS
    p, s = p[keep], s[keep]
    if len(p) < 2:
        return float("nan"), ""
    mids = (p[1:] + p[:-1]) / 2
    i = int(np.argmin(np.abs(mids - ref) + 1e-12 * np.arange(len(mids))))
    return arc_elasticity(p[i], s[i], p[i + 1], s[i + 1]), f"{p[i]:g}-{p[i + 1]:g}"
