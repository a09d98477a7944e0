"""Focalism's difference in jumps: no false alarms on steep smooth curves, power on real steps.

Data built directly (no pipeline): units x levels 0.0..2.0 (step 0.2) x replicates, the pinned
value at level 1.0, binary answers drawn from a logistic demand with slope 6 at 1 (the curve
that fooled the old single-design jump test in 37-99% of simulations), identical in the pinned
and the unpinned design unless a step is added to the pinned one.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis._wild import wild_test
from llmexp.analysis.focalism import design_jump, difference_in_jumps

LEVELS = np.round(np.arange(0, 2.01, 0.2), 1)


def _frame(rng, n_units: int, reps: int, step: float = 0.0, logprob: bool = False,
           unit_sd: float = 0.5) -> pd.DataFrame:
    u = np.repeat(np.arange(n_units), len(LEVELS) * reps)
    x = np.tile(np.repeat(LEVELS, reps), n_units)
    shift = rng.normal(0, unit_sd, n_units)[u]
    p = 1 / (1 + np.exp(6 * (x - 1.0) - shift))
    s = (x <= 1.0 + 1e-9).astype(float)
    p = np.clip((1 - step) * p + step * s, 0, 1)
    y = p if logprob else (rng.random(len(p)) < p).astype(float)
    return pd.DataFrame({"unit_id": u.astype(str), "level": x, "step": s, "y": y})


def _dij(seed: int, n_units: int, reps: int, step: float = 0.0, logprob: bool = False) -> dict:
    rng = np.random.default_rng(seed)
    pinned = _frame(rng, n_units, reps, step, logprob)
    unpinned = _frame(rng, n_units, reps, 0.0, logprob)
    if logprob:  # the same units' curves: only the pinned step differs
        unpinned["y"] = _frame(np.random.default_rng(seed), n_units, reps, 0.0, True)["y"]
    return difference_in_jumps(pinned, unpinned, n_boot=199, seed=seed)


def _rate(flags) -> float:
    return float(np.mean(flags))


@pytest.mark.parametrize(("reps", "units"), [(1, 40), (5, 20)])
def test_steep_smooth_curve_is_not_flagged(reps, units):
    sims = 200
    flags = [_dij(s, units, reps)["flagged"] for s in range(sims)]
    # at most 5% false alarms, with Monte Carlo slack of 2 SE (sqrt(.05 * .95 / 200) = 1.5%)
    assert _rate(flags) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)


def test_the_single_design_jump_is_fooled_by_the_same_curve():
    """The check can fail: the old per-design jump test rejects on this smooth curve."""
    rejected = []
    for s in range(40):
        df = _frame(np.random.default_rng(s), 40, 5)
        rejected.append(design_jump(df, 3, 0.05, 199, s)["p_value"] < 0.05)
    assert _rate(rejected) > 0.25  # five times the nominal 5%


def test_a_real_step_is_detected_and_power_is_reported():
    res = [_dij(s, 40, 5, step=0.4) for s in range(30)]
    assert _rate([r["flagged"] for r in res]) >= 0.9
    one = res[0]
    assert 0 < one["power_step"] <= 1 and one["mde80"] > 0
    assert one["ci_low"] < 0.4 < one["ci_high"] or abs(one["jump"] - 0.4) < 0.15


def test_a_missing_estimate_is_never_flagged():
    rng = np.random.default_rng(0)
    flat = _frame(rng, 2, 1)  # two units: no interval
    r = difference_in_jumps(flat, _frame(rng, 2, 1), n_boot=99)
    assert not r["flagged"] and np.isnan(r["p_value"]) and r["note"]
    # identical deterministic answers in both designs: no variation, no flag, no zero-width CI
    r = _dij(1, 6, 1, logprob=True)
    assert not r["flagged"] and np.isnan(r["ci_low"]) and r["note"]
    # a threshold that does not split the levels
    one_side = _frame(rng, 6, 1).assign(step=1.0)
    r = difference_in_jumps(one_side, one_side, n_boot=99)
    assert not r["flagged"] and np.isnan(r["jump"])


def _brute_wild(X, y, j, clusters, W):
    """Literal WCR/WCU by refitting every draw (the reference for the g-space algebra)."""
    A = np.linalg.pinv(X)
    codes = pd.factorize(clusters)[0]
    g, n = codes.max() + 1, len(y)
    fac = g / (g - 1) * (n - 1) / (n - np.linalg.matrix_rank(X))

    def t_of(yy, centre):
        b = A @ yy
        e = yy - X @ b
        s = np.array([np.sum(A[j][codes == c] * e[codes == c]) for c in range(g)])
        return (b[j] - centre) / np.sqrt(fac * (s ** 2).sum())

    b = A @ y
    fit_u = X @ b
    Xr = np.delete(X, j, axis=1)
    fit_r = Xr @ (np.linalg.pinv(Xr) @ y)
    tu = [t_of(fit_u + (y - fit_u) * W[codes, k], b[j]) for k in range(W.shape[1])]
    tr = [t_of(fit_r + (y - fit_r) * W[codes, k], 0.0) for k in range(W.shape[1])]
    return t_of(y, 0.0), np.array(tu), np.array(tr)


def test_wild_bootstrap_algebra_equals_refitting_every_draw():
    from llmexp.analysis._wild import _weights

    rng = np.random.default_rng(3)
    df = _frame(rng, 7, 2)
    X = np.column_stack([np.eye(7)[df["unit_id"].astype(int)], df["level"], df["level"] ** 2,
                         df["step"]])
    y = df["y"].to_numpy(float)
    res = wild_test(X, y, X.shape[1] - 1, df["unit_id"].to_numpy(), n_boot=99, seed=4)
    W = _weights(7, 99, np.random.default_rng(4))
    t, tu, tr = _brute_wild(X, y, X.shape[1] - 1, df["unit_id"].to_numpy(), W)
    from scipy import stats

    crit = max(np.quantile(np.abs(tu), 0.95), stats.t.ppf(0.975, 6))  # never below t(G-1)
    assert res["ci_high"] - res["estimate"] == pytest.approx(crit * res["se"], rel=1e-8)
    p_t = 2 * stats.t.sf(abs(t), 6)
    assert res["p_value"] == pytest.approx(max((np.sum(np.abs(tr) >= abs(t) - 1e-12) + 1) / 100, p_t))
    import statsmodels.api as sm

    sm_fit = sm.OLS(y, X).fit(cov_type="cluster", cov_kwds={"groups": df["unit_id"].astype(int)})
    assert res["se"] == pytest.approx(float(sm_fit.bse[-1]) * np.sqrt(
        (len(y) - X.shape[1]) / (len(y) - np.linalg.matrix_rank(X))), rel=1e-8)
