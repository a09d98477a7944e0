"""Fits on cell-level sufficient statistics: the same estimates and standard errors as the
observation-level fit, from one row per cell instead of one per answer.

A *cell* is a set of observations whose regressors are identical (design x unit x condition
x persona, of one outcome): the cell table holds, per cell, its size ``n``, the mean answer
``y``, the sum of squared deviations from it ``m2``, and ``ymin`` / ``ymax``. What is exact
on it (derived in docs/scale.md, "Analysis at scale", and tested against the
observation-level fit and statsmodels in tests/analysis/test_sufficient_stats.py):

- OLS: the weighted least squares on cell means with weights ``n`` has the same
  coefficients (the normal equations only hold sums over a cell); the cluster scores
  ``X_g' e_g`` are sums over cells of ``n_c x_c (ybar_c - xhat_c)``.
- CR2 (Bell-McCaffrey) and its Satterthwaite df: with ``D`` the n_g x c_g cell indicator of
  cluster g, ``Q = D W^-1/2`` has orthonormal columns and ``I - H_gg = (I - QQ') +
  Q (I - B) Q'`` with ``B = W^1/2 Z M Z' W^1/2``, so ``(I - H_gg)^-1/2 = (I - QQ') +
  Q (I - B)^-1/2 Q'`` and ``X_g' A_g e_g = Z' W^1/2 (I - B)^-1/2 W^1/2 ebar``: exactly the CR2
  of the cell regression with design ``W^1/2 Z`` and residuals ``W^1/2 ebar``; the df's
  Gram matrix ``p_g' (I - H)_gh p_h`` reduces the same way (``p_g = Q p~_g``).
- CR1: the same scores; its small-sample factor ``(N - 1) / (N - K)`` counts observations
  (a WLS on the cells counts cells: about 5% too large at 20 observations per cell), and
  the unit dummies nested in the clusters are counted on the observation-level design.
- Logit (binomial GLM, fractional answers allowed): the score ``sum n_c x_c (ybar_c -
  mu_c)`` and the IRLS weights ``mu_c (1 - mu_c)`` are constant within a cell, so the
  binomial GLM on cell means with ``var_weights = n`` is the same likelihood; its CR2 is the
  weighted one above with weights ``n mu (1 - mu)``.
- Residual degrees of freedom: ``N - rank``, not cells - rank.

Left on the observation-level path: clustering by call (a call spans several cells: not
exact) and medians (the scale check of numeric answers: not exact); HC2 with each
observation its own cluster (one unit), the explicit persona / two-way clusterings, the
ordered logit and categorical shares (exact in principle, not implemented here).

statsmodels and patsy are imported inside the functions (see analysis/base.py).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

STATS = ("n", "y", "m2", "ymin", "ymax")


def is_cells(df: pd.DataFrame) -> bool:
    """A cell table (one row per cell with its sufficient statistics), not observations."""
    return "m2" in df.columns and "n" in df.columns


def n_obs(df: pd.DataFrame) -> int:
    """Observations behind a frame of observations or of cells."""
    return int(df["n"].sum()) if is_cells(df) else len(df)


def _codes(df: pd.DataFrame, keys: list[str]) -> np.ndarray:
    """One code per distinct tuple of key values (missing values are a value)."""
    codes = np.zeros(len(df), dtype=np.int64)
    for k in keys:
        c, uniq = pd.factorize(df[k], use_na_sentinel=False)
        codes = codes * (len(uniq) + 1) + c
        codes = pd.factorize(codes)[0]
    return codes


def compress(rows: pd.DataFrame, keys: list[str], sums: dict[str, np.ndarray] | None = None) -> pd.DataFrame:
    """Rows -> cells: the key columns (first value of each cell, keys included) and n, y
    (mean), m2 (sum of squared deviations from the cell mean), ymin, ymax, and the cell sum
    of each array in `sums`; cells in order of first appearance."""
    code = _codes(rows, keys)
    y = rows["y"].to_numpy(dtype=float)
    g = int(code.max()) + 1 if len(code) else 0
    n = np.bincount(code, minlength=g).astype(float)
    mean = np.bincount(code, weights=y, minlength=g) / np.maximum(n, 1)
    dev = y - mean[code]
    m2 = np.bincount(code, weights=dev * dev, minlength=g)
    ymin = np.full(g, np.inf)
    ymax = np.full(g, -np.inf)
    np.minimum.at(ymin, code, y)
    np.maximum.at(ymax, code, y)
    first = np.full(g, len(code), dtype=np.int64)
    np.minimum.at(first, code, np.arange(len(code)))
    out = rows.iloc[first].drop(columns=["y"]).reset_index(drop=True)
    extra = {k: np.bincount(code, weights=np.asarray(v, float), minlength=g) for k, v in (sums or {}).items()}
    return out.assign(n=n, y=mean, m2=m2, ymin=ymin, ymax=ymax, **extra)


def merge(parts: pd.DataFrame, keys: list[str], sum_cols: tuple[str, ...] = ()) -> pd.DataFrame:
    """Combine partial cells (e.g. one per batch of a streamed table) with the same keys:
    sizes add, means are size-weighted, m2 by Chan et al.'s pairwise rule, `sum_cols` add."""
    code = _codes(parts, keys)
    g = int(code.max()) + 1 if len(code) else 0
    n_i = parts["n"].to_numpy(float)
    y_i = parts["y"].to_numpy(float)
    n = np.bincount(code, weights=n_i, minlength=g)
    mean = np.bincount(code, weights=n_i * y_i, minlength=g) / np.maximum(n, 1)
    d = y_i - mean[code]
    m2 = np.bincount(code, weights=parts["m2"].to_numpy(float) + n_i * d * d, minlength=g)
    ymin = np.full(g, np.inf)
    ymax = np.full(g, -np.inf)
    np.minimum.at(ymin, code, parts["ymin"].to_numpy(float))
    np.maximum.at(ymax, code, parts["ymax"].to_numpy(float))
    first = np.full(g, len(code), dtype=np.int64)
    np.minimum.at(first, code, np.arange(len(code)))
    out = parts.iloc[first].reset_index(drop=True)
    extra = {k: np.bincount(code, weights=parts[k].to_numpy(float), minlength=g) for k in sum_cols if k in parts.columns}
    return out.assign(n=n, y=mean, m2=m2, ymin=ymin, ymax=ymax, **extra)


def spread_free(cells: pd.DataFrame) -> bool:
    """Every cell's answers identical (and some cell holds several): deterministic
    replicates, the cell version of effects' identical-copies rule."""
    several = cells["n"] > 1
    return bool(several.any()) and bool(((cells["ymax"] - cells["ymin"]).abs()[several] <= 1e-12).all())


@dataclass
class GroupedFit:
    """A fit on cells, with what `effects._rows` asks of a statsmodels result."""

    params: pd.Series
    Z: np.ndarray  # cell-level design (unweighted)
    n: np.ndarray  # observations per cell
    ybar: np.ndarray
    fitted: np.ndarray  # xhat (OLS) or mu (logit) per cell
    kind: str  # "ols" | "logit"
    nobs: int
    df_resid: float

    def cluster_inference(self, groups: np.ndarray, which: list[int]):
        """CR2 / Bell-McCaffrey df / CR1 of the observation-level fit (module docstring)."""
        from llmexp.analysis.inference import cr2, nested_columns

        w = self.fitted * (1 - self.fitted) if self.kind == "logit" else np.ones(len(self.n))
        nested = nested_columns(self.Z * np.sqrt(w)[:, None], groups)
        return cr2(self.Z, self.n * (self.ybar - self.fitted), groups, weights=self.n * w, which=which, n_obs=self.nobs, nested=nested)


def fit_cells(cells: pd.DataFrame, formula: str, kind: str) -> tuple[GroupedFit, np.ndarray]:
    """OLS (WLS on cell means, weights n) or binomial logit (var_weights n) of `formula` on
    a cell table; returns the fit and the positions of the cells it used (patsy drops cells
    with a missing regressor, as the observation-level fit drops those observations)."""
    import patsy  # lazy: see the module docstring

    rhs = formula.split("~", 1)[1]
    cells = cells.reset_index(drop=True)
    X = patsy.dmatrix(rhs, cells, return_type="dataframe", NA_action="drop")
    used = cells.index.get_indexer(X.index)
    Z = X.to_numpy(dtype=float)
    n = cells["n"].to_numpy(float)[used]
    ybar = cells["y"].to_numpy(float)[used]
    rank = int(np.linalg.matrix_rank(Z))
    if kind == "logit":
        params, fitted = _logit(Z, ybar, n)
    else:
        sw = np.sqrt(n)
        params = np.linalg.pinv(Z * sw[:, None]) @ (ybar * sw)
        fitted = Z @ params
    nobs = int(round(n.sum()))
    fit = GroupedFit(params=pd.Series(params, index=X.columns), Z=Z, n=n, ybar=ybar, fitted=fitted, kind=kind, nobs=nobs, df_resid=float(nobs - rank))
    return fit, used


def _logit(Z: np.ndarray, ybar: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    import statsmodels.api as sm  # lazy: see the module docstring

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.GLM(ybar, Z, family=sm.families.Binomial(), var_weights=n).fit(tol=1e-12)
    params = np.asarray(res.params, float)
    return params, np.asarray(res.mu, float)


def pooled_sd(cells: pd.DataFrame, keys: list[str]) -> float:
    """Pooled within-condition SD of the answers from cells (effects' Cohen's d denominator):
    per condition, SS = sum of m2 + n (cell mean - condition mean)^2."""
    if not keys:
        return float("nan")
    code = _codes(cells, keys)
    g = int(code.max()) + 1
    n_c, y_c, m2_c = (cells[c].to_numpy(float) for c in ("n", "y", "m2"))
    n = np.bincount(code, weights=n_c, minlength=g)
    mean = np.bincount(code, weights=n_c * y_c, minlength=g) / np.maximum(n, 1)
    d = y_c - mean[code]
    ss = np.bincount(code, weights=m2_c + n_c * d * d, minlength=g)
    dof = float(np.clip(n - 1, 0, None).sum())
    return float(np.sqrt(ss[n > 1].sum() / dof)) if dof > 0 else float("nan")
