"""Leakage robust to echoes and honest with few units.

Probe answers are built directly: per unit an anchor (the imagined competitor price) and a
unit-specific leakage slope b_u, v = anchor_u * (1 + b_u * (x - 1)) * (1 + noise), x the
normalised price level 0..2, shown price = regular_u * x. The population leakage is mean(b_u).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from llmexp.analysis._stats import safe_corr
from llmexp.analysis.leakage import _cell_corr, index_variants, is_echo

LEVELS = np.round(np.arange(0.2, 2.01, 0.2), 1)


def _probes(seed: int, n_units: int, leak: float = 0.0, slope_sd: float = 0.0, echo: float = 0.0,
            reps: int = 2, noise: float = 0.1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(n_units), len(LEVELS) * reps)
    x = np.tile(np.repeat(LEVELS, reps), n_units)
    regular = rng.uniform(2, 20, n_units)[u]
    b = (leak + rng.normal(0, slope_sd, n_units))[u]
    v = regular * 1.1 * (1 + b * (x - 1)) * (1 + noise * rng.normal(size=len(x)))
    shown = np.round(regular * x, 2)
    echoes = rng.random(len(x)) < echo
    v = np.where(echoes, shown, np.round(v, 2))
    df = pd.DataFrame({"unit_id": u.astype(str), "level": x, "shown": shown, "y": v})
    df["v_norm"] = df["y"] / df.groupby("unit_id")["y"].transform("mean")
    return df


def _run(df: pd.DataFrame, seed: int = 0) -> dict:
    return index_variants(df, pd.factorize(df["unit_id"])[0], n_boot=199, seed=seed)


@pytest.mark.parametrize("units", [6, 10])
def test_false_alarms_when_unit_slopes_average_zero(units):
    sims = 200
    flags = [_run(_probes(s, units, 0.0, slope_sd=0.2), s)["flagged"] for s in range(sims)]
    assert np.mean(flags) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)


def test_the_old_row_level_test_fails_on_the_same_data():
    """The check can fail: treating answers as independent (HC1) flags heterogeneous units."""
    import statsmodels.formula.api as smf

    flags = []
    for s in range(60):
        df = _probes(s, 6, 0.0, slope_sd=0.2)
        flags.append(smf.ols("v_norm ~ level", data=df).fit(cov_type="HC1").pvalues["level"] < 0.05)
    assert np.mean(flags) > 0.2


def test_real_leakage_is_flagged_with_an_interval_covering_it():
    res = [_run(_probes(s, 10, 0.3, slope_sd=0.05), s) for s in range(30)]
    assert np.mean([r["flagged"] for r in res]) >= 0.9
    covered = [r["ci_no_echo_low"] <= 0.3 <= r["ci_no_echo_high"] for r in res]
    assert np.mean(covered) >= 0.8
    assert np.mean([r["log_index"] for r in res]) == pytest.approx(0.3, abs=0.08)


def test_echoes_are_counted_and_do_not_raise_the_flag():
    sims = 100
    res = [_run(_probes(s, 10, 0.0, echo=0.35), s) for s in range(sims)]
    share = np.mean([r["echo_share"] for r in res])
    assert share == pytest.approx(0.35, abs=0.03)
    # the index on all answers is fooled by the echoes (they move one-for-one with the price) ...
    assert np.mean([r["p_value"] < 0.05 for r in res]) > 0.8
    assert np.mean([r["leakage_index"] for r in res]) > 0.2
    # ... the flag (echo-free index) is not
    assert np.mean([r["flagged"] for r in res]) <= 0.05 + 2 * np.sqrt(0.05 * 0.95 / sims)
    assert abs(np.mean([r["index_no_echo"] for r in res])) < 0.03


def test_echo_rule():
    v = pd.Series([10.0, 10.004, 10.2, np.nan, 5.0])
    shown = pd.Series([10.0, 10.0, 10.0, 10.0, np.nan])
    assert is_echo(v, shown).tolist() == [True, True, False, False, False]


def test_missing_estimates_are_never_flagged():
    two = _probes(0, 2, 0.5)
    r = _run(two)
    assert not r["flagged"] and np.isnan(r["ci_low"]) and np.isnan(r["p_no_echo"]) and r["note"]
    flat = _probes(0, 6, 0.0, noise=0.0)  # identical answers at every level: no variation
    r = _run(flat)
    assert not r["flagged"] and np.isnan(r["p_no_echo"])
    one_level = _probes(0, 6, 0.5)
    one_level = one_level[one_level["level"] == 1.0]
    r = _run(one_level)
    assert not r["flagged"] and np.isnan(r["leakage_index"])


def test_answers_that_do_not_vary_have_no_correlation():
    """Identical answers at every level: their normalised values differ only by rounding, and
    the correlation used to be reported as r = -6e-17 with p = 1.0 (scipy warned that the
    input was nearly constant). Now it is missing, on answer rows and on cells, silently."""
    flat = _probes(0, 6, 0.0, noise=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r = _run(flat)
        cells = flat.groupby(["level", "unit_id"])["v_norm"].agg(["mean", "count", "var"]).reset_index()
        m2 = (cells["var"].fillna(0) * (cells["count"] - 1)).to_numpy(float)
        cell_r = _cell_corr(cells["level"].to_numpy(float), cells["mean"].to_numpy(float), m2, cells["count"].to_numpy(float))
    assert np.isnan(r["correlation"]) and np.isnan(r["correlation_p"])
    assert np.isnan(cell_r[0]) and np.isnan(cell_r[1])


def test_safe_corr_is_scipys_pearson_r_where_it_is_defined():
    rng = np.random.default_rng(4)
    x = rng.normal(size=50)
    y = 0.3 * x + rng.normal(size=50)
    assert safe_corr(x, y) == pytest.approx(tuple(stats.pearsonr(x, y)), rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(safe_corr(x, np.full(50, 7.0))).all()  # constant
        assert np.isnan(safe_corr(x, 1.0 + 1e-15 * rng.normal(size=50))).all()  # constant up to rounding
        assert np.isnan(safe_corr(x[:2], y[:2])).all()  # too few pairs
        assert not np.isnan(safe_corr(x, 1.0 + 1e-6 * y)).any()  # small but real variation counts
