"""Small-sample cluster-robust inference: CR2 (Bell-McCaffrey) with Satterthwaite df.

Why (docs/analysis.md, "Inference"): the effects are averages over units (products, people),
and a study has anywhere from 1 to a few hundred of them. Conventional cluster-robust
standard errors (CR1) undercover with few clusters; heteroskedasticity-only ones (HC1) ignore
that units differ in their slopes and, for deterministic log-probability answers, have no
sampling model at all. CR2 (Bell & McCaffrey 2002; Pustejovsky & Tipton 2018) rescales each
cluster's residuals by ``(I - H_gg)^(-1/2)`` so the variance estimator is unbiased under
independent homoskedastic errors, and the Satterthwaite-type degrees of freedom of
Imbens & Kolesar (2016) make the t reference distribution honest at 3, 6 or 40 clusters.
With one observation per cell (log-probability answers collapsed to one row per cell) the
unit-to-unit variation of the slope is the only noise left, and CR2 measures exactly that.

Unit fixed effects nested in the clusters make ``I - H_gg`` singular; the symmetric
pseudo-inverse square root is used (as clubSandwich does). The conventional CR1 is also
returned with the small-sample factor ``G/(G-1) (N-1)/(N-K)`` where K does NOT count the unit
dummies nested in the clusters (Cameron & Miller 2015, section VI.B; statsmodels counts them,
which makes two-arm intervals conservative).

Weighted (GLM) fits pass the IRLS weights at convergence: the sandwich of a logit is the CR
sandwich of its working weighted least squares, so the same CR2 applies to ``sqrt(w) X`` and
the Pearson-type residuals ``(y - mu) / sqrt(w)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ClusterInference:
    vcov: np.ndarray  # CR2 covariance of the coefficients
    df: np.ndarray  # Satterthwaite (Bell-McCaffrey) df per coefficient
    vcov_cr1: np.ndarray  # conventional CR1, nested dummies not counted in K
    n_clusters: int


def inv_sqrt_psd(m: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Symmetric pseudo-inverse square root of a PSD matrix."""
    vals, vecs = np.linalg.eigh((m + m.T) / 2)
    keep = vals > tol * max(1.0, float(vals.max(initial=0.0)))
    inv = np.zeros_like(vals)
    inv[keep] = 1.0 / np.sqrt(vals[keep])
    return (vecs * inv) @ vecs.T


def nested_columns(X: np.ndarray, groups: np.ndarray) -> int:
    """How many columns of X are constant within every cluster (unit dummies, the intercept
    aside: a column equal to 1 everywhere is the intercept and is counted in K)."""
    codes = np.unique(groups, return_inverse=True)[1]
    n = 0
    for j in range(X.shape[1]):
        col = X[:, j]
        if np.all(col == col[0]):
            continue
        lo = np.full(codes.max() + 1, np.inf)
        hi = np.full(codes.max() + 1, -np.inf)
        np.minimum.at(lo, codes, col)
        np.maximum.at(hi, codes, col)
        if np.all(hi - lo <= 1e-12):
            n += 1
    return n


def cr2(X: np.ndarray, resid: np.ndarray, groups: np.ndarray,
        weights: np.ndarray | None = None, which: list[int] | None = None,
        n_obs: int | None = None, nested: int | None = None) -> ClusterInference:
    """CR2 covariance, Bell-McCaffrey df and CR1 for coefficients of a (weighted) LS fit;
    the df (the costly part) only for the coefficients in `which` (default: all).

    Grouped data (`grouped.py`): rows of X are cells of `n_obs` observations in all; the
    caller passes the cell weights and `nested` (the nested columns counted on the
    observation-level design), so the CR1 factor counts observations, not cells."""
    X = np.asarray(X, dtype=float)
    e = np.asarray(resid, dtype=float)
    nested_X = X
    if weights is not None:
        sw = np.sqrt(np.asarray(weights, dtype=float))
        X, e = X * sw[:, None], e / np.where(sw > 0, sw, 1.0)
        nested_X = X
    n, k = X.shape
    M = np.linalg.pinv(X.T @ X)
    codes = np.unique(groups, return_inverse=True)[1]
    G = int(codes.max()) + 1
    if n == G and n_obs is None:  # every observation its own cluster: HC2, vectorised
        return _hc2(X, e, M, which)
    members = [np.flatnonzero(codes == g) for g in range(G)]
    meat2 = np.zeros((k, k))
    meat1 = np.zeros((k, k))
    P = []  # per cluster: A_g X_g M  (n_g x k)
    for idx in members:
        Xg = X[idx]
        Hgg = Xg @ M @ Xg.T
        A = inv_sqrt_psd(np.eye(len(idx)) - Hgg)
        u2 = Xg.T @ (A @ e[idx])
        u1 = Xg.T @ e[idx]
        meat2 += np.outer(u2, u2)
        meat1 += np.outer(u1, u1)
        P.append(A @ Xg @ M)
    vcov = M @ meat2 @ M
    rank = np.linalg.matrix_rank(X)
    k_eff = max(rank - (nested_columns(nested_X, groups) if nested is None else nested), 1)
    n = n if n_obs is None else n_obs
    factor = (G / (G - 1) if G > 1 else np.nan) * ((n - 1) / (n - k_eff) if n > k_eff else np.nan)
    vcov1 = factor * (M @ meat1 @ M)
    df = bell_mccaffrey_df(X, M, members, P, range(k) if which is None else which)
    return ClusterInference(vcov=vcov, df=df, vcov_cr1=vcov1, n_clusters=G)


def _hc2(X: np.ndarray, e: np.ndarray, M: np.ndarray, which) -> ClusterInference:
    """CR2 with singleton clusters (= HC2) and its Bell-McCaffrey df, without loops."""
    n, k = X.shape
    XM = X @ M
    h = np.einsum("ij,ij->i", XM, X)
    keep = (1 - h) > 1e-10
    a = np.where(keep, 1.0 / np.sqrt(np.where(keep, 1 - h, 1.0)), 0.0)
    u2, u1 = XM * (a * e)[:, None], XM * e[:, None]
    vcov, vcov1 = u2.T @ u2, u1.T @ u1
    rank = np.linalg.matrix_rank(X)
    factor = (n / (n - 1)) * ((n - 1) / (n - rank)) if n > rank else np.nan
    df = np.full(k, np.nan)
    IH = np.eye(n) - XM @ X.T
    for j in (range(k) if which is None else which):
        p = a * XM[:, j]
        gram = IH * p[:, None] * p[None, :]
        tr = np.trace(gram)
        tr2 = float(np.sum(gram * gram))
        df[j] = tr * tr / tr2 if tr2 > 0 else np.nan
    return ClusterInference(vcov=vcov, df=df, vcov_cr1=factor * vcov1, n_clusters=n)


def bell_mccaffrey_df(X: np.ndarray, M: np.ndarray, members: list[np.ndarray], P: list[np.ndarray],
           which) -> np.ndarray:
    """Imbens-Kolesar df per coefficient j: with G_col(g) = (I - H)[g rows]' p_gj, where
    p_gj = A_g X_g M e_j, df = (sum eig)^2 / sum eig^2 of the G x G matrix Gm'Gm."""
    n, k = X.shape
    out = np.full(k, np.nan)
    XM = X @ M  # n x k
    for j in which:
        cols = np.zeros((n, len(members)))
        for g, idx in enumerate(members):
            p = P[g][:, j]
            cols[idx, g] += p
            cols[:, g] -= XM @ (X[idx].T @ p)
        gram = cols.T @ cols
        tr = np.trace(gram)
        tr2 = float(np.sum(gram * gram))
        out[j] = tr * tr / tr2 if tr2 > 0 else np.nan
    return out


def t_rows(est: np.ndarray, se: np.ndarray, df: np.ndarray, alpha: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ci_low, ci_high, p) from t(df); NaN wherever se or df is not a positive number."""
    from scipy import stats  # lazy

    est, se, df = (np.asarray(a, dtype=float) for a in (est, se, df))
    ok = np.isfinite(se) & (se > 0) & np.isfinite(df) & (df > 0)
    q = np.where(ok, stats.t.ppf(1 - alpha / 2, np.where(ok, df, 1.0)), np.nan)
    t = np.where(ok, est / np.where(ok, se, 1.0), np.nan)
    p = np.where(ok, 2 * stats.t.sf(np.abs(t), np.where(ok, df, 1.0)), np.nan)
    return est - q * se, est + q * se, p
