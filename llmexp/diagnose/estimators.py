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
(`llmexp.analysis.effects.work_frame`) the analysis uses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import patsy
from scipy import sparse, stats

from llmexp.analysis._stats import choose_cluster
from llmexp.analysis._wild import WildPlan
from llmexp.analysis.effects import is_treatment_term, pretty_term, two_level_contrast, work_frame
from llmexp.analysis.focalism import dij_matrix, pinned_step, step_frame
from llmexp.analysis.leakage import cluster_codes
from llmexp.analysis.observations import to_float


@dataclass
class OLSPlan:
    """OLS of many response vectors on one design matrix, for chosen coefficients."""

    X: np.ndarray  # n x k
    columns: list  # names of X's columns (patsy)
    keep: list  # indices of the reported coefficients
    groups: np.ndarray | None  # cluster codes (n,) or None for HC1
    se_type: str
    cr2: bool = False  # CR2 (Bell-McCaffrey) + Satterthwaite df, as `analysis.inference`
    scale: float = 1.0  # reported = scale x coefficient (a two-level numeric treatment: B - A)

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
        if self.cr2:
            self._cr2_setup()
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
            self.factor = 1.0 if self.cr2 else g / (g - 1) * (n - 1) / max(n - k, 1)
            self.df = g - 1

    def _cr2_setup(self) -> None:
        """Per reported coefficient j, the vector c_j with CR2 score_g = c_g' e_g (c_g =
        A_g X_g M e_j, A_g = (I - H_gg)^(-1/2)) and its Bell-McCaffrey df: both depend on X
        only (`llmexp.analysis.inference.cr2`, whose formulas these are)."""
        from llmexp.analysis.inference import bell_mccaffrey_df, inv_sqrt_psd

        X, M = self.X, self.xtx_pinv
        codes = pd.factorize(np.asarray(self.groups))[0]
        members = [np.flatnonzero(codes == g) for g in range(int(codes.max()) + 1)]
        P = []
        for idx in members:
            Xg = X[idx]
            P.append(inv_sqrt_psd(np.eye(len(idx)) - Xg @ M @ Xg.T) @ Xg @ M)
        df = bell_mccaffrey_df(X, M, members, P, self.keep)
        self._cr2_rows = {}
        for j in self.keep:
            c = np.zeros(self.n)
            for idx, Pg in zip(members, P, strict=True):
                c[idx] = Pg[:, j]
            self._cr2_rows[j] = (c, float(df[j]))

    def _set_keep(self, keep: list) -> None:
        self.keep = list(keep)
        if self.cr2:
            self.C = np.array([self._cr2_rows[j][0] for j in self.keep]).reshape(len(self.keep), self.n)
            self.cr2_df = np.array([self._cr2_rows[j][1] for j in self.keep])
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
            W = self.C if self.cr2 else self.A
            for j in range(W.shape[0]):
                sums = self.indicator @ (W[j][:, None] * E)  # clusters x S
                var[j] = (np.asarray(sums) ** 2).sum(axis=0) * self.factor
        return est * self.scale, np.sqrt(np.maximum(var, 0.0)) * abs(self.scale)

    def point(self, y: np.ndarray) -> np.ndarray:
        """The reported coefficients for one vector (e.g. the expected answers: the target)."""
        return (self.A @ np.asarray(y, float)) * self.scale

    def inference(self, est: np.ndarray, se: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p-values, ci_low, ci_high) as statsmodels reports them (z for HC1, t(G-1) clustered)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        if self.cr2:
            from llmexp.analysis.inference import t_rows

            df = np.broadcast_to(self.cr2_df[:, None] if np.ndim(est) == 2 else self.cr2_df[0], np.shape(est))
            lo, hi, p = t_rows(est, se, df, alpha)
            return p, lo, hi
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


def _effects_groups(w: pd.DataFrame, cluster: str) -> tuple[np.ndarray | None, str, bool]:
    """(clusters, se_type, CR2?) exactly as `analysis.effects` chooses them (`effects._plan`):
    CR2 by unit from two units on, HC2 (every answer its own cluster) for one unit, else the
    statsmodels path of an explicit clustering."""
    from llmexp.analysis import effects

    how = effects._plan(w, cluster, False)[0] if hasattr(effects, "_plan") else "statsmodels"
    if how == "cr2-unit":
        return pd.factorize(w["unit_id"].astype(str))[0], "cluster(unit)", True
    if how == "hc2":
        return np.arange(len(w)), "HC2", True
    groups, se_type = _groups(w, cluster)
    return groups, se_type, False


def effects_plans(study, frame: pd.DataFrame, cluster: str = "auto") -> list[tuple[dict, OLSPlan]]:
    """One plan per reported treatment term of `estimate_effects` (method ols, scope design).

    `frame` holds one outcome's observation rows of one (model, design), as built by
    `build_observations`. Returns [(meta, plan)], meta with treatment/term/se_type/n_obs/n_units.
    """
    w, rhs, names = work_frame(study, frame)
    if not rhs:
        return []
    fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
    X = patsy.dmatrix(" + ".join(rhs) + fe, w, return_type="dataframe")
    if len(X) != len(w):
        raise ValueError("diagnose: the design matrix dropped rows (missing treatment levels)")
    keep_fn = is_treatment_term(names)
    keep = [j for j, c in enumerate(X.columns) if keep_fn(c)]
    groups, se_type, cr2 = _effects_groups(w, cluster)
    plan = OLSPlan(X.to_numpy(), list(X.columns), keep, groups, se_type, cr2)
    out = []
    for j in keep:
        treatment, term = pretty_term(str(X.columns[j]), names)
        sub = plan.select(j)
        two = two_level_contrast(w, names, treatment) if term == "slope" else None
        if two is not None:  # the analysis reports B - A, not a slope per 1.0
            sub.scale, term = two
        out.append((dict(treatment=treatment, term=term, se_type=se_type,
                         n_obs=len(w), n_units=int(w["unit_id"].nunique()),
                         n_clusters=plan.n_clusters), sub))
    return out


class WildJobPlan:
    """A coefficient the analysis tests with the wild cluster bootstrap (`analysis._wild`):
    the same interface as `OLSPlan` (fit -> estimates and SEs; inference -> p and interval),
    one bootstrap per simulated data set, as the analysis runs one per real data set."""

    def __init__(self, X: np.ndarray, j: int, clusters, alpha: float = 0.05, n_boot: int = 199):
        self.wild = WildPlan(X, j, clusters)
        self.n_clusters = self.wild.g
        self.alpha, self.n_boot, self.draws = alpha, n_boot, 0
        self._p: list = []
        self._lo: list = []
        self._hi: list = []

    def fit(self, Y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        Y = np.asarray(Y, float)
        if Y.ndim == 1:
            Y = Y[:, None]
        est, se = np.empty(Y.shape[1]), np.empty(Y.shape[1])
        for s in range(Y.shape[1]):
            r = self.wild.test(Y[:, s], self.alpha, self.n_boot, seed=self.draws)
            self.draws += 1
            est[s], se[s] = r["estimate"], r["se"]
            self._p.append(r["p_value"])
            self._lo.append(r["ci_low"])
            self._hi.append(r["ci_high"])
        return est[None, :], se[None, :]

    def point(self, y: np.ndarray) -> np.ndarray:
        return np.array([float(self.wild.A[self.wild.j] @ np.asarray(y, float))])

    def inference(self, est: np.ndarray, se: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(p-values, ci_low, ci_high) of the draws fitted so far (in order)."""
        out = [np.asarray(v, float) for v in (self._p, self._lo, self._hi)]
        if all(o.size == np.size(est) for o in out):
            out = [o.reshape(np.shape(est)) for o in out]
        return out[0], out[1], out[2]


def leakage_plan(frame: pd.DataFrame, cluster: str = "auto", alpha: float = 0.05
                 ) -> tuple[dict, WildJobPlan, np.ndarray]:
    """The leakage index regression ``v_norm ~ level`` for one (covariate, design, model),
    with the analysis's wild cluster bootstrap by unit (`analysis.leakage.cluster_codes`).

    Returns (meta, plan, unit group codes for the normalisation v / mean_unit(v))."""

    level = frame["level"].to_numpy(float)
    X = np.column_stack([np.ones(len(level)), level])
    clusters, se_type = cluster_codes(frame, cluster)
    plan = WildJobPlan(X, 1, clusters, alpha)
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
    w, rhs, names = work_frame(study, frame)
    if not rhs:
        return []
    ref = present[0]
    dterm = f"C(design, Treatment(reference={ref!r}))"
    fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
    X = patsy.dmatrix(f"{rhs[0]} * {dterm}" + "".join(f" + {r}" for r in rhs[1:]) + fe, w,
                      return_type="dataframe")
    groups, se_type, cr2 = _effects_groups(w, cluster)
    keep = [j for j, term in enumerate(X.columns) if ":C(design" in term]
    plan = OLSPlan(X.to_numpy(), list(X.columns), keep, groups, se_type, cr2)
    out = []
    for j, term in enumerate(X.columns):
        if ":C(design" not in term:
            continue
        main_term, dpart = term.rsplit(":C(design", 1)
        dname = dpart.split("[T.", 1)[1][:-1]
        treatment, contrast = pretty_term(main_term, names)
        out.append((dict(design=dname, reference=ref, treatment=treatment,
                         term=f"{contrast}: {dname} - {ref}", se_type=se_type, n_obs=len(w),
                         n_units=int(w["unit_id"].nunique()), n_clusters=plan.n_clusters),
                    plan.select(j)))
    return out


def focalism_plans(study, frame: pd.DataFrame, degree: int = 3, cluster: str = "auto",
                   alpha: float = 0.05) -> list[tuple[dict, WildJobPlan, np.ndarray]]:
    """`llmexp.analysis.focalism`'s test for one outcome x model: per pinned design x
    covariate x unpinned design, the difference in jumps (`focalism.dij_matrix`) with the
    wild cluster bootstrap by unit. Returns [(meta, plan, row index)]."""
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
            marked = {}
            for design, g in frame.groupby("design", sort=False):
                m = step_frame(study, g, design, d.name, cov, below, thr, glob)
                if m is not None:
                    marked[design] = m
            if d.name not in marked:
                continue
            pinned = marked[d.name][0]
            for design, (g, role) in marked.items():
                if role != "unpinned" or pinned["step"].nunique() < 2 or g["step"].nunique() < 2:
                    continue
                both = pd.concat([pinned.assign(pinned=1.0), g.assign(pinned=0.0)])
                X, j = dij_matrix(both, degree)
                plan = WildJobPlan(X, j, pd.factorize(both["unit_id"].astype(str))[0], alpha)
                out.append((dict(design=f"{d.name} - {design}", pinned_design=d.name, covariate=cov,
                                 role="difference", treatment=None, term="difference in jumps",
                                 se_type="wild bootstrap(unit)", n_obs=len(both),
                                 n_units=int(both["unit_id"].nunique()), n_clusters=plan.n_clusters),
                            plan, both.index.to_numpy()))
    return out
