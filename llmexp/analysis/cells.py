"""Per-cell means / shares with intervals, per design, model and outcome.

Two tables:

- ``unit_cells``: one row per (design, model, outcome, unit, condition). Interval: Wilson when
  every answer is 0/1, a cluster bootstrap over personas when personas repeat inside the
  cell, otherwise a t interval.
- ``pooled_cells``: one row per (design, model, outcome, condition) pooled over units; the
  mean is over all observations and the interval accounts for the units (cells share units,
  so observations are not independent): CR2 clustered by unit with Satterthwaite
  df (inference.py; honest at 3 units, where a percentile bootstrap over units undercovers),
  Wilson for 0/1 answers that do not vary across units; with a single unit it falls back to
  the unit-cell rule. A cell whose answers are all identical gets no t interval (NaN), not a
  zero-width one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmexp import answers
from llmexp.analysis._categorical import TRUNCATED, mean_interval
from llmexp.analysis._stats import (
    boot_means_from_sums,
    cluster_boot_means,
    is_zero_one,
    percentile_ci,
    t_interval,
    wilson,
    wilson_many,
)
from llmexp.analysis.observations import Observations

KEYS = ["design", "mode", "model", "target"]


def _interval(y: np.ndarray, personas: pd.Series, alpha: float, n_boot: int, rng) -> tuple:
    if is_zero_one(y):
        lo, hi = wilson(float(y.sum()), float(len(y)), alpha)
        return lo, hi, "wilson"
    if personas.notna().all() and personas.duplicated().any() and personas.nunique() > 1:
        lo, hi = percentile_ci(cluster_boot_means(y, personas.to_numpy(), n_boot, rng), alpha)
        return lo, hi, "bootstrap(persona)"
    lo, hi = t_interval(y, alpha)
    return lo, hi, "t"


def unit_cells(obs: Observations, alpha: float = 0.05, n_boot: int = 400, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = obs.outcomes()
    out = []
    for key, g in t.groupby(KEYS + ["unit_id", "cell"], sort=True, dropna=False):
        y = g["y"].to_numpy()
        lo, hi, how = _interval(y, g["persona_id"], alpha, n_boot, rng)
        lv = {c: g[c].iloc[0] for c in g.columns if c.startswith("lvl__")}
        out.append(dict(zip(KEYS + ["unit_id", "cell"], key), level=g["level"].iloc[0], n=len(y),
                        mean=float(y.mean()), sd=float(y.std(ddof=1)) if len(y) > 1 else np.nan,
                        ci_low=lo, ci_high=hi, interval=how, **lv))
    return pd.DataFrame(out)


def _is_share(g: pd.DataFrame) -> bool:
    """A share outcome (binary P(first label), a probability): its mean lies in [0, 1]."""
    if "answer_type" not in g.columns or not len(g):
        return False
    kinds = [answers.find(str(t)) for t in g["answer_type"].dropna().unique()]
    return bool(kinds) and all(k is not None and k.share for k in kinds)


def _how(ci: dict) -> str:
    """The interval column: the method, and whether the interval was truncated to [0, 1]."""
    how = "CR2(unit)" if ci["inference"].startswith("CR2") else (ci["inference"] or "none")
    return how + (", truncated to [0, 1]" if ci.get("note") == TRUNCATED else "")


def pooled_cells(obs: Observations, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = obs.outcomes()
    out = []
    for key, g in t.groupby(KEYS + ["cell"], sort=True, dropna=False):
        y = g["y"].to_numpy()
        units = g["unit_id"].to_numpy()
        if len(np.unique(units)) > 1:
            ci = mean_interval(y.astype(float), pd.factorize(units)[0], alpha,
                               zero_one=is_zero_one(y) or _is_share(g))
            lo, hi = ci["ci_low"], ci["ci_high"]
            how = _how(ci)
        else:
            lo, hi, how = _interval(y, g["persona_id"], alpha, n_boot, rng)
        out.append(dict(zip(KEYS + ["cell"], key), level=g["level"].iloc[0], n=len(y),
                        n_units=len(np.unique(units)), mean=float(y.mean()),
                        ci_low=lo, ci_high=hi, interval=how))
    df = pd.DataFrame(out)
    return df.sort_values(KEYS + ["level"]).reset_index(drop=True) if len(df) else df


# ---------------------------------------------------------------- from cell-level statistics


def _pool(g: pd.DataFrame) -> tuple[float, float, float]:
    """(n, mean, m2) of the answers behind some cells."""
    n_c, y_c = g["n"].to_numpy(float), g["y"].to_numpy(float)
    n = float(n_c.sum())
    mean = float(n_c @ y_c) / n
    return n, mean, float(g["m2"].sum() + n_c @ (y_c - mean) ** 2)


def _persona_bootstrap(g: pd.DataFrame) -> bool:
    """The rows' rule (every answer has a persona, one repeats, more than one) on cells."""
    if not g["persona_id"].notna().all():
        return False
    per = g.groupby("persona_id", sort=False)["n"].sum()
    return bool((per > 1).any() or len(per) < len(g)) and len(per) > 1


def _interval_cells(g: pd.DataFrame, alpha: float, n_boot: int, rng) -> tuple:
    """`_interval` of the answers behind the cells g (grouped.py: the same interval)."""
    n, mean, m2 = _pool(g)
    if g["nonbin"].sum() == 0:
        lo, hi = wilson(float(g["n"] @ g["y"]), n, alpha)
        return lo, hi, "wilson"
    if _persona_bootstrap(g):
        sums = (g["n"] * g["y"]).groupby(g["persona_id"], sort=False).sum().to_numpy(float)
        counts = g.groupby("persona_id", sort=False)["n"].sum().to_numpy(float)
        lo, hi = percentile_ci(boot_means_from_sums(sums, counts, n_boot, rng), alpha)
        return lo, hi, "bootstrap(persona)"
    if n < 2:
        return float("nan"), float("nan"), "t"
    from scipy import stats  # lazy: see _stats.py

    se = float(np.sqrt(m2 / (n - 1)) / np.sqrt(n))
    if not se > 0:
        return float("nan"), float("nan"), "t"
    q = float(stats.t.ppf(1 - alpha / 2, n - 1))
    return mean - q * se, mean + q * se, "t"


def unit_cells_from_cells(cells: pd.DataFrame, alpha: float = 0.05, n_boot: int = 400,
                          seed: int = 0) -> pd.DataFrame:
    """`unit_cells` from a cell table (a streamed analysis): the same rows, computed for all
    groups at once (thousands of unit x condition cells); only persona bootstraps loop."""
    rng = np.random.default_rng(seed)
    t = cells[cells["kind"] == "outcome"].reset_index(drop=True)
    keys = KEYS + ["unit_id", "cell"]
    if t.empty:
        return pd.DataFrame()
    code = t.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
    g = int(code.max()) + 1
    n_c, y_c = t["n"].to_numpy(float), t["y"].to_numpy(float)
    n = np.bincount(code, weights=n_c, minlength=g)
    mean = np.bincount(code, weights=n_c * y_c, minlength=g) / n
    d = y_c - mean[code]
    m2 = np.bincount(code, weights=t["m2"].to_numpy(float) + n_c * d * d, minlength=g)
    first = np.full(g, len(code))
    np.minimum.at(first, code, np.arange(len(code)))
    lo, hi, how = _t_intervals(n, mean, m2, alpha)
    binary = np.bincount(code, weights=t["nonbin"].to_numpy(float), minlength=g) == 0
    wl, wh = wilson_many(np.bincount(code, weights=n_c * y_c, minlength=g), n, alpha)
    lo, hi = np.where(binary, wl, lo), np.where(binary, wh, hi)
    how = np.where(binary, "wilson", how).astype(object)
    if t["persona_id"].notna().any():  # the rare persona bootstrap, in group order
        for j in np.flatnonzero(~binary):
            gj = t.iloc[np.flatnonzero(code == j)]
            if _persona_bootstrap(gj):
                lo[j], hi[j], how[j] = _interval_cells(gj, alpha, n_boot, rng)
    out = t.iloc[first][keys + ["level"]].reset_index(drop=True)
    out = out.assign(n=n.round().astype(np.int64), mean=mean,
                     sd=np.where(n > 1, np.sqrt(m2 / np.maximum(n - 1, 1)), np.nan),
                     ci_low=lo, ci_high=hi, interval=how)
    for c in [c for c in t.columns if c.startswith("lvl__")]:
        out[c] = t[c].to_numpy()[first]
    return out


def _t_intervals(n: np.ndarray, mean: np.ndarray, m2: np.ndarray, alpha: float):
    """`t_interval` for many cells: NaN with fewer than two answers or no spread."""
    from scipy import stats  # lazy: see _stats.py

    ok = n >= 2
    se = np.where(ok, np.sqrt(m2 / np.where(ok, n - 1, 1)) / np.sqrt(n), np.nan)
    ok &= se > 0
    q = np.where(ok, stats.t.ppf(1 - alpha / 2, np.where(ok, n - 1, 1)), np.nan)
    return (np.where(ok, mean - q * se, np.nan), np.where(ok, mean + q * se, np.nan),
            np.full(len(n), "t", dtype=object))


def pooled_cells_from_cells(cells: pd.DataFrame, alpha: float = 0.05, n_boot: int = 1000,
                            seed: int = 0) -> pd.DataFrame:
    """`pooled_cells` from a cell table (a streamed analysis): the same rows."""
    rng = np.random.default_rng(seed)
    out = []
    t = cells[cells["kind"] == "outcome"]
    for key, g in t.groupby(KEYS + ["cell"], sort=True, dropna=False):
        n, mean, _ = _pool(g)
        units = g["unit_id"].to_numpy()
        if len(np.unique(units)) > 1:
            ci = mean_interval(g["y"].to_numpy(float), pd.factorize(units)[0], alpha,
                               zero_one=bool(g["nonbin"].sum() == 0) or _is_share(g),
                               counts=g["n"].to_numpy(float))
            lo, hi = ci["ci_low"], ci["ci_high"]
            how = _how(ci)
        else:
            lo, hi, how = _interval_cells(g, alpha, n_boot, rng)
        out.append(dict(zip(KEYS + ["cell"], key), level=g["level"].iloc[0], n=int(n),
                        n_units=len(np.unique(units)), mean=mean, ci_low=lo, ci_high=hi,
                        interval=how))
    df = pd.DataFrame(out)
    return df.sort_values(KEYS + ["level"]).reset_index(drop=True) if len(df) else df
