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

from llmexp.analysis._categorical import mean_interval
from llmexp.analysis._stats import (
    cluster_boot_means,
    is_zero_one,
    percentile_ci,
    t_interval,
    wilson,
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


def pooled_cells(obs: Observations, alpha: float = 0.05, n_boot: int = 1000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = obs.outcomes()
    out = []
    for key, g in t.groupby(KEYS + ["cell"], sort=True, dropna=False):
        y = g["y"].to_numpy()
        units = g["unit_id"].to_numpy()
        if len(np.unique(units)) > 1:
            ci = mean_interval(y.astype(float), pd.factorize(units)[0], alpha, zero_one=is_zero_one(y))
            lo, hi = ci["ci_low"], ci["ci_high"]
            how = "CR2(unit)" if ci["inference"].startswith("CR2") else (ci["inference"] or "none")
        else:
            lo, hi, how = _interval(y, g["persona_id"], alpha, n_boot, rng)
        out.append(dict(zip(KEYS + ["cell"], key), level=g["level"].iloc[0], n=len(y),
                        n_units=len(np.unique(units)), mean=float(y.mean()),
                        ci_low=lo, ci_high=hi, interval=how))
    df = pd.DataFrame(out)
    return df.sort_values(KEYS + ["level"]).reset_index(drop=True) if len(df) else df
