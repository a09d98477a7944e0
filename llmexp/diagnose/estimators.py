"""The analysis's estimators in closed form, vectorised over simulated data sets.

`llmexp.analysis` fits, per design, ``y ~ treatments + C(unit_id)`` (effects, OLS) and
``v_norm ~ level`` (leakage index) with statsmodels and HC1 or cluster-robust standard errors
(`llmexp.analysis._stats.choose_cluster`). The design matrix X depends only on the design,
never on the answers, so for S simulated answer vectors Y (n x S) everything is matrix algebra:

    B = pinv(X'X) X'Y                    coefficients (k x S; X sparse)
    E = Y - X B                          residuals
    HC1:      var_j = n/(n-k) * sum_i A_ji^2 E_i^2                       (normal reference)
    cluster:  var_j = G/(G-1) (n-1)/(n-k) * sum_g (sum_{i in g} A_ji E_i)^2   (t, G-1 df)

with A = pinv(X) and k = rank(X): statsmodels' own formulas (`OLSResults.get_robustcov_results`,
`use_correction=True`), so the estimates, SEs, p-values and intervals equal the analysis's
(tests/diagnose/test_estimators.py checks them against statsmodels and against `analyze` on
a real run). X is built by patsy from the same formula and the same working frame
(`llmexp.analysis.effects._work_frame`) the analysis uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from scipy import sparse, stats

from llmexp.analysis._stats import choose_cluster
from llmexp.analysis.effects import _is_treatment_term, _pretty, _work_frame
from llmexp.analysis.focalism import _smooth_terms, pinned_step, step_frame
from llmexp.analysis.observations import to_float


@dataclass
class OLSPlan:
    """OLS of many response vectors on one design matrix, for chosen coefficients."""

    X: np.ndarray  # n x k
    columns: list  # names of X's columns (patsy)
    keep: list  # indices of the reported coefficients
    groups: np.ndarray | None  # cluster codes (n,) or None for HC1
    se_type: str

    def __post_init__(self):
        X = np.asarray(self.X, float)
        n = X.shape[0]
        self.n = n
        # X is mostly dummies: keep it sparse and work with X'X (k x k); pinv(X) = pinv(X'X) X'
        self.Xs = sparse.csr_matrix(X)
        xtx = (self.Xs.T @ self.Xs).toarray()
        w, v = np.linalg.eigh(xtx)
        tol = max(xtx.shape) * np.finfo(float).eps * max(abs(w).max(), 1e-300)
        nz = w > tol
        self.rank = int(nz.sum())
        self.xtx_pinv = (v[:, nz] / w[nz]) @ v[:, nz].T
        self.X = X
        self._set_keep(self.keep)
        if self.groups is None:
            self.n_clusters = 0
            self.factor = n / max(n - self.rank, 1)
            self.df = None
        else:
            codes, uniq = pd.factorize(np.asarray(self.groups))
            self.codes = codes
            g = len(uniq)
            self.indicator = sparse.csr_matrix((np.ones(n), (codes, np.arange(n))), shape=(g, n))
            self.n_clusters = g
            # statsmodels' cov_cluster uses the number of columns of exog for k_params
            k = X.shape[1]
            self.factor = g / (g - 1) * (n - 1) / max(n - k, 1)
            self.df = g - 1

    def _set_keep(self, keep: list) -> None:
        self.keep = list(keep)
        # rows of pinv(X) for the reported coefficients (m x n)
        self.A = np.asarray((self.Xs @ self.xtx_pinv[self.keep].T).T) if self.keep else np.zeros((0, self.n))

    def select(self, j: int) -> OLSPlan:
        """The same fit reporting only coefficient j (shares X, pinv and the cluster setup)."""
        sub = OLSPlan.__new__(OLSPlan)
        sub.__dict__.update(self.__dict__)
        sub._set_keep([j])
        return sub

    def fit(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(estimates, standard errors), each m x S, for Y of shape n x S."""
        Y = np.asarray(Y, float)
        if Y.ndim == 1:
            Y = Y[:, None]
        B = self.xtx_pinv @ np.asarray(self.Xs.T @ Y)
        E = Y - np.asarray(self.Xs @ B)
        est = B[self.keep]
        if self.groups is None:
            var = (self.A ** 2) @ (E ** 2) * self.factor
        else:
            var = np.empty_like(est)
            for j in range(self.A.shape[0]):
                sums = self.indicator @ (self.A[j][:, None] * E)  # clusters x S
                var[j] = (np.asarray(sums) ** 2).sum(axis=0) * self.factor
        return est, np.sqrt(np.maximum(var, 0.0))

    def point(self, y: np.ndarray) -> np.ndarray:
        """The reported coefficients for one vector (e.g. the expected answers: the target)."""
        return self.A @ np.asarray(y, float)

    def inference(self, est: np.ndarray, se: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p-values, ci_low, ci_high) as statsmodels reports them (z for HC1, t(G-1) clustered)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        if self.df is None:
            p = 2 * stats.norm.sf(np.abs(z))
            q = stats.norm.ppf(1 - alpha / 2)
        else:
            p = 2 * stats.t.sf(np.abs(z), self.df)
            q = stats.t.ppf(1 - alpha / 2, self.df)
        p = np.where(se > 0, p, np.nan)
        return p, est - q * se, est + q * se


def _groups(df: pd.DataFrame, cluster: str):
    """`choose_cluster` as the analysis calls it (one-way clustering only)."""
    groups, se_type = choose_cluster(df, cluster)
    if groups is not None and groups.ndim > 1:
        raise ValueError("diagnose supports one-way clustering only")
    return groups, se_type


def effects_plans(study, frame: pd.DataFrame, cluster: str = "auto") -> list[tuple[dict, OLSPlan]]:
    """One plan per reported treatment term of `estimate_effects` (method ols, scope design).

    `frame` holds one outcome's observation rows of one (model, design), as built by
    `build_observations`. Returns [(meta, plan)], meta with treatment/term/se_type/n_obs/n_units.
    """
    w, rhs, names = _work_frame(study, frame)
    if not rhs:
        return []
    fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
    X = patsy.dmatrix(" + ".join(rhs) + fe, w, return_type="dataframe")
    if len(X) != len(w):
        raise ValueError("diagnose: the design matrix dropped rows (missing treatment levels)")
    keep_fn = _is_treatment_term(names)
    keep = [j for j, c in enumerate(X.columns) if keep_fn(c)]
    groups, se_type = _groups(w, cluster)
    plan = OLSPlan(X.to_numpy(), list(X.columns), keep, groups, se_type)
    out = []
    for j in keep:
        treatment, term = _pretty(str(X.columns[j]), names)
        sub = plan.select(j)
        out.append((dict(treatment=treatment, term=term, se_type=se_type,
                         n_obs=len(w), n_units=int(w["unit_id"].nunique()),
                         n_clusters=plan.n_clusters), sub))
    return out


def leakage_plan(frame: pd.DataFrame, cluster: str = "auto") -> tuple[dict, OLSPlan, np.ndarray]:
    """The leakage index regression ``v_norm ~ level`` for one (covariate, design, model).

    Returns (meta, plan, unit group codes for the normalisation v / mean_unit(v))."""

    level = frame["level"].to_numpy(float)
    X = np.column_stack([np.ones(len(level)), level])
    groups, se_type = _groups(frame, cluster)
    plan = OLSPlan(X, ["Intercept", "level"], [1], groups, se_type)
    norm_codes = pd.factorize(frame["unit_id"].astype(str))[0]
    return (dict(treatment=None, term="slope", se_type=se_type, n_obs=len(frame),
                 n_units=int(frame["unit_id"].nunique()), n_clusters=plan.n_clusters),
            plan, norm_codes)


def normalise_by_unit(V: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """v / mean of v within its unit, per column (the analysis's `normalise_by_unit`)."""
    V = np.asarray(V, float)
    if V.ndim == 1:
        V = V[:, None]
    g = int(codes.max()) + 1
    ind = sparse.csr_matrix((np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(g, len(codes)))
    counts = np.bincount(codes, minlength=g).astype(float)[:, None]
    means = np.asarray(ind @ V) / counts
    with np.errstate(divide="ignore", invalid="ignore"):
        return V / np.where(means[codes] != 0, means[codes], np.nan)


def interaction_plans(study, frame: pd.DataFrame, cluster: str = "auto") -> list[tuple[dict, OLSPlan]]:
    """`estimate_effects`' design interaction (scope ``interaction``) for one outcome x model:
    ``y ~ level * C(design, reference) + C(unit_id)`` over all designs; one plan per
    ``level:design[x]`` term (design x's slope minus the reference design's)."""
    design_order = [d.name for d in study.designs]
    present = [d for d in design_order if d in set(frame["design"])]
    if len(present) < 2:
        return []
    w, rhs, names = _work_frame(study, frame)
    if not rhs:
        return []
    ref = present[0]
    dterm = f"C(design, Treatment(reference={ref!r}))"
    fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
    X = patsy.dmatrix(f"{rhs[0]} * {dterm}" + "".join(f" + {r}" for r in rhs[1:]) + fe, w,
                      return_type="dataframe")
    groups, se_type = _groups(w, cluster)
    plan = OLSPlan(X.to_numpy(), list(X.columns), [], groups, se_type)
    out = []
    for j, term in enumerate(X.columns):
        if ":C(design" not in term:
            continue
        main_term, dpart = term.rsplit(":C(design", 1)
        dname = dpart.split("[T.", 1)[1][:-1]
        treatment, contrast = _pretty(main_term, names)
        out.append((dict(design=dname, reference=ref, treatment=treatment,
                         term=f"{contrast}: {dname} - {ref}", se_type=se_type, n_obs=len(w),
                         n_units=int(w["unit_id"].nunique()), n_clusters=plan.n_clusters),
                    plan.select(j)))
    return out


def focalism_plans(study, frame: pd.DataFrame, degree: int = 3, cluster: str = "auto"
                   ) -> list[tuple[dict, OLSPlan, np.ndarray]]:
    """`llmexp.analysis.focalism`'s jump for one outcome x model: per pinned design x covariate,
    the step coefficient of ``y ~ poly(level, 3) [+ C(unit_id)] + step`` in the pinned design
    and in every design that does not pin that covariate. Returns [(meta, plan, row index)]."""
    out = []
    for d in [d for d in study.designs if d.pins]:
        for cov in d.pins:
            col = f"pin__{cov}"
            prow = frame[frame["design"] == d.name]
            if prow.empty or col not in prow:
                continue
            pin = prow[col].map(to_float)
            if pin.isna().all() or prow["shown"].isna().all():
                continue
            below, thr, glob = pinned_step(prow, pin)
            for design, g in frame.groupby("design", sort=False):
                marked = step_frame(study, g, design, d.name, cov, below, thr, glob)
                if marked is None:
                    continue
                g, role = marked
                if g["step"].nunique() < 2:
                    continue
                fe = " + C(unit_id)" if g["unit_id"].nunique() > 1 else ""
                X = patsy.dmatrix(_smooth_terms(g["level"].nunique(), degree) + fe + " + step", g,
                                  return_type="dataframe")
                groups, se_type = _groups(g, cluster)
                plan = OLSPlan(X.to_numpy(), list(X.columns), [list(X.columns).index("step")], groups, se_type)
                out.append((dict(design=design, pinned_design=d.name, covariate=cov, role=role,
                                 treatment=None, term="jump", se_type=se_type, n_obs=len(g),
                                 n_units=int(g["unit_id"].nunique()), n_clusters=plan.n_clusters),
                            plan, g.index.to_numpy()))
    return out
