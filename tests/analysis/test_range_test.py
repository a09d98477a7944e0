"""The range check tests against a noise floor (issue 10, item 8): <= 5% false alarms when a
split changes nothing, power on a real range effect, no test (not a flag) without a floor."""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmexp.analysis.observations import build_observations
from llmexp.analysis.range import range_sensitivity
from llmexp.spec import Design
from tests.analysis.test_degenerate import certainty_violations
from tests.support.synthetic_responses import Truth, make_responses, make_study

STUDY = make_study(n_units=6, covariates=(), designs=(
    Design(name="agg", mode="aggregate"),
    Design(name="agg_split", mode="aggregate", split=((0.0, 1.0), (1.0, 2.0)))))


def _run(seed: int, slope_shift: float = 0.0, boundary_shift: float = 0.0, draws: int = 2,
         noise: float = 0.04, n_perm: int = 200):
    r = make_responses(STUDY, Truth(noise_sd=noise, draws=draws,
                                    design_slope={"agg_split": slope_shift}), seed=seed)
    obs = build_observations(STUDY, r)
    if boundary_shift:  # the upper part answers higher: a range effect at the shared level
        t = obs.table
        up = (t["design"] == "agg_split") & t["split"].astype(str).str.startswith("[1.0")
        t.loc[up & (t["kind"] == "outcome"), "y"] += boundary_shift
    return range_sensitivity(STUDY, obs, n_boot=n_perm, seed=seed)[0].iloc[0]


def test_no_range_effect_flags_at_most_five_percent():
    rows = [_run(s) for s in range(60)]
    rate = np.mean([r["flagged"] for r in rows])
    # nominal <= 5%; + 2.5 Monte Carlo SEs at 60 sims (0.028)
    assert rate <= 0.05 + 2.5 * 0.028, rate
    # the noise floor is what the raw mean |diff| sits at: it is not evidence by itself
    ratio = np.mean([r["mean_abs_diff"] / r["noise_floor"] for r in rows])
    assert 0.85 < ratio < 1.15, ratio
    assert np.mean([r["mad_ci_low"] > 0 for r in rows]) > 0.9  # the old interval "excludes 0"


def test_a_real_range_effect_is_detected():
    slope = [_run(s, slope_shift=0.03) for s in range(10)]
    assert np.mean([r["flagged"] for r in slope]) >= 0.8
    gap = [_run(s, boundary_shift=0.03) for s in range(10)]
    assert np.mean([r["boundary_p"] < 0.025 for r in gap]) >= 0.8
    g = gap[0]
    assert g["boundary_gap_ci_low"] <= g["boundary_gap"] <= g["boundary_gap_ci_high"]
    assert g["boundary_diff_ci_high"] < 0  # lower part - upper part = -0.03


def test_without_a_noise_floor_there_is_no_test_and_no_flag():
    # one answer per cell in each design, deterministic identical answers: shuffles change
    # nothing, so there is no p-value (not p = 0, not a flag)
    r = _run(0, draws=1, noise=0.0)
    assert np.isnan(r["range_p"]) and np.isnan(r["boundary_p"]) and not r["flagged"]
    assert "no noise floor" in r["test_note"]
    assert not certainty_violations("range", pd.DataFrame([r]))
    # deterministic answers that DO differ between the designs are a range effect: the three
    # answers at the shared level (two parts + the full design) can be shuffled
    shifted = _run(0, slope_shift=0.05, draws=1, noise=0.0)
    assert shifted["flagged"] and shifted["range_p"] < 0.025


def test_cells_with_one_answer_per_arm_are_not_their_own_noise_floor():
    # one sampled answer per cell and arm: a within-cell shuffle only swaps the two answers, so
    # |split - full| is unchanged and a "floor" computed there equals the observed value (the
    # committed aggregate_split run showed boundary gap 0.488, floor 0.488). Only the shared
    # level (two parts + the full design: 3 answers) can be tested.
    r = _run(3, draws=1, noise=0.04)
    assert r["n_test_cells"] == 6 < r["n_cells"]
    assert np.isnan(r["noise_floor"]) and np.isnan(r["boundary_floor"])
    assert np.isfinite(r["range_p"]) and np.isfinite(r["boundary_p"])  # sign flips still test the mean
    rates = [_run(s, draws=1, noise=0.04)["flagged"] for s in range(40)]
    assert np.mean(rates) <= 0.05 + 2.5 * 0.035, np.mean(rates)
