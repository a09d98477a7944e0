"""benchmarks/validity.py computes bias, coverage, power and false alarms correctly."""

from __future__ import annotations

import math

import numpy as np
import pytest

from benchmarks.validity import Outcome, Scenario, evaluate, markdown


def _normal_estimator(truth: float, bias: float = 0.0, width: float = 1.96):
    def run(seed: int) -> Outcome:
        est = truth + bias + np.random.default_rng(seed).normal()
        return Outcome(est, est - width, est + width, p_value=float(2 * (1 - _phi(abs(est)))))
    return run


def _phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def test_an_exact_interval_covers_95_percent_and_a_biased_one_does_not():
    good = evaluate(Scenario("good", "t", "normal", 0.0, _normal_estimator(0.0), null=True), 2000)
    assert good["coverage"] == pytest.approx(0.95, abs=0.015)
    assert good["false_alarm"] == pytest.approx(0.05, abs=0.015) and np.isnan(good["power"])
    assert abs(good["bias"]) < 0.08
    bad = evaluate(Scenario("biased", "t", "normal", 1.0, _normal_estimator(1.0, bias=1.0)), 2000)
    assert bad["coverage"] < 0.9 and bad["rel_bias"] == pytest.approx(1.0, abs=0.08)
    assert bad["power"] > 0.4 and np.isnan(bad["false_alarm"])
    narrow = evaluate(Scenario("narrow", "t", "normal", 0.0, _normal_estimator(0.0, width=1.0)), 2000)
    assert narrow["coverage"] < 0.75
    assert "| normal | good |" in markdown([good])


def test_refusals_are_counted_not_covered():
    def run(seed: int) -> Outcome:
        return Outcome() if seed % 4 == 0 else Outcome(0.1, -1.0, 1.0, 0.5)

    r = evaluate(Scenario("refuse", "t", "x", 0.0, run, null=True), 100)
    assert r["refused"] == pytest.approx(0.25) and r["coverage"] == 1.0 and r["false_alarm"] == 0.0
