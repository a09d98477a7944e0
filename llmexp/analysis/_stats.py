"""Small statistical helpers shared by the analysis modules.

scipy is imported inside the functions that use it: the analysis declarations (and so
`llmexp check`) import this module without loading it (see analysis/base.py).
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd


@functools.lru_cache(maxsize=64)
def z_for(alpha: float) -> float:
    from scipy import stats  # lazy: see the module docstring

    return float(stats.norm.ppf(1 - alpha / 2))


def wilson(k: float, n: float, alpha: float = 0.05) -> tuple[float, float]:
    """Wilson score interval for k successes in n trials."""
    if n <= 0:
        return float("nan"), float("nan")
    lo, hi = wilson_many(np.float64(k), np.float64(n), alpha)
    return float(lo), float(hi)


def wilson_many(k, n, alpha: float = 0.05):
    """`wilson` for arrays of cells (n > 0), element by element."""
    z = z_for(alpha)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return np.maximum(0.0, centre - half), np.minimum(1.0, centre + half)


def t_interval(y: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    n = len(y)
    if n < 2:
        return float("nan"), float("nan")
    from scipy import stats  # lazy: see the module docstring

    m = float(np.mean(y))
    se = float(np.std(y, ddof=1) / np.sqrt(n))
    if not se > 0:  # identical answers: no zero-width interval (false certainty)
        return float("nan"), float("nan")
    q = float(stats.t.ppf(1 - alpha / 2, n - 1))
    return m - q * se, m + q * se


def is_zero_one(y: np.ndarray) -> bool:
    return bool(len(y)) and bool(np.all((y == 0) | (y == 1)))


def cluster_boot_means(
    y: np.ndarray, groups: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap distribution of the mean of y resampling whole clusters (vectorised)."""
    codes, uniq = pd.factorize(groups)
    g = len(uniq)
    sums = np.bincount(codes, weights=y, minlength=g)
    counts = np.bincount(codes, minlength=g).astype(float)
    return boot_means_from_sums(sums, counts, n_boot, rng)


def boot_means_from_sums(sums: np.ndarray, counts: np.ndarray, n_boot: int,
                         rng: np.random.Generator) -> np.ndarray:
    """`cluster_boot_means` from each cluster's sum and count (clusters in order of first
    appearance): the same draws, so the same interval, from cell-level sums."""
    g = len(sums)
    w = rng.multinomial(g, np.full(g, 1.0 / g), size=n_boot).astype(float)
    return (w @ sums) / np.maximum(w @ counts, 1e-12)


def percentile_ci(draws: np.ndarray, alpha: float = 0.05) -> tuple[float, float]:
    draws = draws[np.isfinite(draws)]
    if len(draws) == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(draws, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def choose_cluster(df: pd.DataFrame, cluster: str = "auto", min_clusters: int = 10) -> tuple[
    np.ndarray | None, str
]:
    """Cluster codes and a label for the covariance used.

    auto: by unit when there are >= `min_clusters` units; else by persona when personas
    repeat; else by call (trial_id) when calls hold several conditions; else HC1.
    Explicit: "unit", "persona", "call", "unit+persona" (two-way, OLS only), "none" (HC1).
    """
    def codes(col: str) -> np.ndarray:
        values = df[col]
        if col == "persona_id" and "trial_id" in df:
            # a call without a persona is its own respondent: its own cluster
            values = values.where(values.notna(), "call:" + df["trial_id"].astype(str))
        return pd.factorize(values.astype(str))[0]

    if cluster == "none":
        return None, "HC1"
    if cluster == "unit":
        return codes("unit_id"), "cluster(unit)"
    if cluster == "persona":
        return codes("persona_id"), "cluster(persona)"
    if cluster == "call":
        return codes("trial_id"), "cluster(call)"
    if cluster == "unit+persona":
        return np.column_stack([codes("unit_id"), codes("persona_id")]), "cluster(unit, persona)"
    if df["unit_id"].nunique() >= min_clusters:
        return codes("unit_id"), "cluster(unit)"
    if "persona_id" in df and df["persona_id"].notna().any():
        pc = df["persona_id"].dropna()
        if pc.nunique() >= min_clusters and pc.duplicated().any():
            return codes("persona_id"), "cluster(persona)"
    if "trial_id" in df and df["trial_id"].duplicated().any() and df["trial_id"].nunique() >= min_clusters:
        return codes("trial_id"), "cluster(call)"
    return None, "HC1"


def fit_kwargs(groups: np.ndarray | None) -> dict:
    if groups is None:
        return {"cov_type": "HC1"}
    return {"cov_type": "cluster", "cov_kwds": {"groups": groups}, "use_t": True}


# a variable whose centred values are this small next to its mean is constant up to rounding
# (scipy.stats.pearsonr's own "nearly constant" rule): its correlation is rounding noise
NEAR_CONSTANT = float(np.finfo(float).eps ** 0.75)


def nearly_constant(centred_norm: float, mean: float) -> bool:
    """Whether a variable with this norm of centred values and this mean does not vary
    (exactly, or up to floating-point rounding of its mean)."""
    return not centred_norm > NEAR_CONSTANT * abs(mean)


def safe_corr(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Pearson r and its two-sided p; both missing (nan) with fewer than 3 pairs or when
    either variable does not vary, not a correlation of rounding errors with p = 1."""
    if len(x) < 3 or any(nearly_constant(float(np.linalg.norm(a - a.mean())), float(a.mean())) for a in (x, y)):
        return float("nan"), float("nan")
    from scipy import stats  # lazy: see the module docstring

    r, p = stats.pearsonr(x, y)
    return float(r), float(p)
