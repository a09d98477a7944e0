"""Human-baseline metrics with their noise floor and reference points (issue 10, item 5).

The simulated cells are built by hand (`_sim`) so the truth is exact: a PERFECT simulator
answers each cell's true human share, a coin flip answers 0.5, a biased one the truth + 0.1.
Humans are Bernoulli draws from the same shares (`human_baseline_rows`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis.baseline import compare_baseline, perfect_abs_error
from llmexp.spec import Baseline, Design
from tests.support.synthetic_responses import Truth, human_baseline_rows, make_study

LEVELS = (0.2, 0.6, 1.0, 1.4, 1.8)
TRUTH = Truth(intercept=0.8, slope=-0.3)


def _p(level: float) -> float:
    return float(np.clip(TRUTH.intercept + TRUTH.slope * level, 0.01, 0.99))


def _study(n_units: int, n_per_cell: int, seed: int):
    study = make_study(n_units=n_units, levels=LEVELS, covariates=(),
                       designs=(Design(name="blind", mode="blind"),))
    base = Baseline(source="h.csv", unit_column="product_id", treatments={"price": "price_level"},
                    outcomes={"purchase": "buy"}, retest={"purchase": "buy_retest"},
                    rows=human_baseline_rows(study, TRUTH, n_per_cell=n_per_cell, seed=seed))
    return study.model_copy(update={"baseline": base})


def _sim(study, answer) -> pd.DataFrame:
    """Hand-built simulated unit cells: mean = answer(level), 20 log-prob answers each."""
    rows = []
    for u in study.units.rows:
        for lv in LEVELS:
            m = float(answer(lv))
            rows.append(dict(design="blind", mode="blind", model="m", target="purchase",
                             unit_id=u["product_id"], cell=f"price={lv}", level=lv,
                             n=20, mean=m, sd=0.0, ci_low=m - 0.02, ci_high=m + 0.02,
                             interval="t", lvl__price=lv))
    return pd.DataFrame(rows)


def _summary(n_units=6, n_per_cell=20, seed=0, answer=_p):
    study = _study(n_units, n_per_cell, seed)
    res = compare_baseline(study, _sim(study, answer), pd.DataFrame(), n_boot=200, seed=seed)
    return res["baseline_summary"].iloc[0], res


def test_perfect_abs_error_matches_simulation():
    rng = np.random.default_rng(0)
    for p, n in ((0.3, 14), (0.5, 41), (0.9, 20)):
        sim = np.mean(np.abs(rng.binomial(n, p, 200_000) / n - p))
        assert perfect_abs_error(p, n) == pytest.approx(sim, abs=2e-3)


def test_perfect_simulator_sits_at_the_floor_and_a_biased_one_does_not():
    perfect = [_summary(seed=s) for s in range(30)]
    # the raw MAE of a perfect simulator is far from 0 (the 0.062) ...
    assert np.mean([r["mae"] for r, _ in perfect]) > 0.05
    # ... its expected value is what mae_perfect reports (plug-in at the human share) ...
    gap = np.mean([r["mae_weighted"] - r["mae_perfect"] for r, _ in perfect])
    assert abs(gap) < 0.01, gap
    # ... and the corrected MAE's interval covers the truth (0) most of the time
    cover = np.mean([r["mae_corrected_ci_low"] <= 0 <= r["mae_corrected_ci_high"]
                     for r, _ in perfect])
    assert cover >= 0.8, cover
    # a simulator off by 0.1 everywhere is not corrected away: the squared-error correction
    # is unbiased (its true RMSE is 0.1), the subtractive MAE correction stays > 0 (it is
    # conservative: it removes the whole floor although noise inflates a large error less)
    biased = [_summary(n_units=10, seed=s, answer=lambda lv: _p(lv) + 0.1)[0]
              for s in range(10)]
    assert np.sqrt(np.mean([r["rmse_corrected"] ** 2 for r in biased])) == pytest.approx(
        0.1, abs=0.015)
    assert min(r["mae_corrected"] for r in biased) > 0.01
    assert np.mean([r["mae_corrected_ci_low"] > 0 for r in biased]) >= 0.8


def test_accuracy_is_normalised_between_coin_and_perfect():
    perfect = [_summary(seed=s)[0] for s in range(20)]
    coin = [_summary(seed=s, answer=lambda lv: 0.5)[0] for s in range(20)]
    # near-50/50 humans make (perfect - coin) small, so the ratio is noisy: mean within 0.1
    assert np.mean([r["accuracy_normalised"] for r in perfect]) == pytest.approx(1.0, abs=0.1)
    assert np.mean([r["accuracy_normalised"] for r in coin]) == pytest.approx(0.0, abs=1e-9)
    r = coin[0]
    # Park et al.'s raw ratio is kept, with its own reference points beside it
    assert r["normalized_accuracy"] == pytest.approx(0.5 / r["human_retest_accuracy"])
    assert r["normalized_accuracy_coin"] == pytest.approx(r["normalized_accuracy"])
    assert r["accuracy_coin"] == 0.5 and r["accuracy_perfect"] > r["accuracy_constant"] > 0.5
    # the retest MAE is not a ceiling: a perfect simulator scores above 1 on mae_over_retest
    assert np.mean([x["mae_over_retest_perfect"] for x in perfect]) > 1.0


def test_cells_carry_both_intervals_and_the_human_one_is_wilson():
    from statsmodels.stats.proportion import proportion_confint

    _, res = _summary(n_per_cell=14)
    cells = res["baseline_cells"]
    for col in ("sim", "sim_ci_low", "sim_ci_high", "human", "human_ci_low", "human_ci_high",
                "n_human", "floor"):
        assert cells[col].notna().all(), col
    c = cells.iloc[3]
    lo, hi = proportion_confint(round(c["human"] * c["n_human"]), c["n_human"], method="wilson")
    assert (c["human_ci_low"], c["human_ci_high"]) == pytest.approx((lo, hi), abs=1e-12)
    assert set(cells["human_interval"]) == {"wilson"}


def test_cells_are_weighted_by_their_size():
    study = _study(2, 20, 0)
    rows = list(study.baseline.rows)
    # drop 15 of the 20 humans of unit p00 at level 0.2: that cell now weighs 5, not 20
    keep, seen = [], 0
    for r in rows:
        if r["product_id"] == "p00" and r["price_level"] == 0.2:
            seen += 1
            if seen > 5:
                continue
        keep.append(r)
    study = study.model_copy(update={"baseline": study.baseline.model_copy(
        update={"rows": tuple(keep)})})
    res = compare_baseline(study, _sim(study, _p), pd.DataFrame(), n_boot=50)
    cells, row = res["baseline_cells"], res["baseline_summary"].iloc[0]
    w = cells["n_human"].to_numpy(float)
    assert row["mae_weighted"] == pytest.approx(np.sum(w * cells["abs_error"]) / w.sum())
    assert row["mae"] == pytest.approx(cells["abs_error"].mean())
    assert row["mae_weighted"] != pytest.approx(row["mae"])


def test_one_unit_gives_a_missing_interval_and_a_ranking_warning():
    r, res = _summary(n_units=1)
    assert np.isnan(r["mae_ci_low"]) and np.isnan(r["mae_ci_high"])
    assert "one unit" in r["mae_ci_note"]
    rank = res["design_ranking"].iloc[0]
    assert "ONE unit" in rank["warning"]
    _, res6 = _summary(n_units=6)
    assert res6["design_ranking"].iloc[0]["warning"] == ""


def test_the_reference_design_has_no_difference_to_itself():
    # the committed replication printed `blind 0.000 [0.000, 0.000]` against itself: a
    # zero-width interval that is not a measurement
    _, res = _summary(n_units=6)
    rank = res["design_ranking"]
    ref = rank[rank["design"] == rank["reference"]].iloc[0]
    assert np.isnan(ref["mae_minus_reference"]) and np.isnan(ref["diff_ci_low"]) and np.isnan(ref["diff_ci_high"])
    assert "reference design" in ref["diff_ci_note"]
