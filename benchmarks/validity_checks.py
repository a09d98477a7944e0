"""Validity scenarios for the checks of issue 10: leakage, focalism, refute (DoWhy graph checks).

Registered with `benchmarks.validity.scenario`; run them with

    python benchmarks/validity.py --only checks          # 500 simulations per scenario

Each scenario builds data with a known truth and runs llmexp's own check code on it
(`leakage.index_variants`, `focalism.difference_in_jumps`, the `refute` checks). Null
scenarios report the false-alarm rate of the flag (target <= 5%), the others its power. Every
function here is also callable alone: `SCENARIOS` is the framework's list.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from benchmarks.validity import SCENARIOS, Outcome, scenario
from llmexp.analysis.focalism import difference_in_jumps
from llmexp.analysis.leakage import index_variants
from llmexp.analysis.refute import fe_slope, loo_check, placebo_check, sensitivity_check
from tests.support.synthetic_responses import unit_effect_data

__all__ = ["SCENARIOS"]

PROBE_LEVELS = np.round(np.arange(0.2, 2.01, 0.2), 1)
CURVE_LEVELS = np.round(np.arange(0.0, 2.01, 0.2), 1)


# ---------------------------------------------------------------- leakage


def probes(rng, n_units: int, leak: float, slope_sd: float, echo: float = 0.0, reps: int = 2,
           noise: float = 0.1) -> pd.DataFrame:
    """Probe answers: v = anchor_u (1 + b_u (x - 1)) (1 + noise e), b_u ~ N(leak, slope_sd);
    a share `echo` of the answers repeat the shown price instead."""
    u = np.repeat(np.arange(n_units), len(PROBE_LEVELS) * reps)
    x = np.tile(np.repeat(PROBE_LEVELS, reps), n_units)
    regular = rng.uniform(2, 20, n_units)[u]
    b = (leak + rng.normal(0, slope_sd, n_units))[u]
    v = regular * 1.1 * (1 + b * (x - 1)) * (1 + noise * rng.normal(size=len(x)))
    shown = np.round(regular * x, 2)
    v = np.where(rng.random(len(x)) < echo, shown, np.round(v, 2))
    df = pd.DataFrame({"unit_id": u.astype(str), "level": x, "shown": shown, "y": v})
    df["v_norm"] = df["y"] / df.groupby("unit_id")["y"].transform("mean")
    return df


def _leak_run(n_units, leak, slope_sd, echo=0.0):
    def run(seed: int) -> Outcome:
        df = probes(np.random.default_rng(seed), n_units, leak, slope_sd, echo)
        r = index_variants(df, pd.factorize(df["unit_id"])[0], n_boot=399, seed=seed)
        return Outcome(r["index_no_echo"], r["ci_no_echo_low"], r["ci_no_echo_high"],
                       r["p_no_echo"], flag=r["flagged"])
    return run


def leak_truth(leak: float, sd: float) -> float:
    """The population index: a unit's v_norm slope is b / (1 + b (mean level - 1))."""
    b = np.random.default_rng(0).normal(leak, sd, 200_000)
    return float(np.mean(b / (1 + b * (PROBE_LEVELS.mean() - 1))))


for _units in (3, 6, 10, 40):
    scenario(name=f"leakage null, unit slopes N(0, 0.2), {_units} units", group="checks",
             estimator="leakage (echo-free, wild bootstrap)", truth=0.0, null=True, units=_units,
             answers="sampled", run=_leak_run(_units, 0.0, 0.2))
    scenario(name=f"leakage 0.3, unit slopes N(0.3, 0.1), {_units} units", group="checks",
             estimator="leakage (echo-free, wild bootstrap)", truth=leak_truth(0.3, 0.1), units=_units,
             answers="sampled", run=_leak_run(_units, 0.3, 0.1))
scenario(name="leakage null with 35% echoes, 10 units", group="checks",
         estimator="leakage (echo-free, wild bootstrap)", truth=0.0, null=True, units=10,
         answers="sampled", run=_leak_run(10, 0.0, 0.05, echo=0.35))
scenario(name="leakage 0.1 (weak), 10 units", group="checks",
         estimator="leakage (echo-free, wild bootstrap)", truth=leak_truth(0.1, 0.1), units=10,
         answers="sampled",
         run=_leak_run(10, 0.1, 0.1))


# ---------------------------------------------------------------- focalism


def curve(rng, n_units: int, reps: int, step: float, logprob: bool, shifts: np.ndarray) -> pd.DataFrame:
    """Logistic demand with slope 6 at level 1 (+ unit shifts), pulled to a step at 1 by `step`."""
    u = np.repeat(np.arange(n_units), len(CURVE_LEVELS) * reps)
    x = np.tile(np.repeat(CURVE_LEVELS, reps), n_units)
    p = 1 / (1 + np.exp(6 * (x - 1.0) - shifts[u]))
    s = (x <= 1.0 + 1e-9).astype(float)
    p = (1 - step) * p + step * s
    y = p if logprob else (rng.random(len(p)) < p).astype(float)
    return pd.DataFrame({"unit_id": u.astype(str), "level": x, "step": s, "y": y})


def _focal_run(n_units, reps, step, logprob=False):
    def run(seed: int) -> Outcome:
        rng = np.random.default_rng(seed)
        shifts = rng.normal(0, 0.5, n_units)
        pinned = curve(rng, n_units, reps, step, logprob, shifts)
        unpinned = curve(rng, n_units, reps, 0.0, logprob, shifts)
        r = difference_in_jumps(pinned, unpinned, n_boot=399, seed=seed)
        return Outcome(r["jump"], r["ci_low"], r["ci_high"], r["p_value"], flag=r["flagged"])
    return run


def focal_truth(step: float, n_units: int = 150) -> float:
    """The population difference in jumps: the estimator on the expected curves of many units
    (the step weight times (1 - the smooth curve's own cubic misfit at the threshold))."""
    shifts = np.random.default_rng(12345).normal(0, 0.5, n_units)
    pinned = curve(None, n_units, 1, step, True, shifts)
    unpinned = curve(None, n_units, 1, 0.0, True, shifts)
    return float(difference_in_jumps(pinned, unpinned, n_boot=9)["jump"])


for _units, _reps in ((6, 1), (6, 5), (40, 1), (40, 5)):
    scenario(name=f"focalism null: smooth logistic slope 6, {_units} units x {_reps} reps",
             group="checks", estimator="focalism (difference in jumps)", truth=0.0, null=True,
             units=_units, answers="sampled", run=_focal_run(_units, _reps, 0.0))
for _step in (0.1, 0.2, 0.4):
    scenario(name=f"focalism step {_step}, 40 units x 5 reps", group="checks",
             estimator="focalism (difference in jumps)", truth=focal_truth(_step), units=40,
             answers="sampled",
             run=_focal_run(40, 5, _step))
scenario(name="focalism step 0.4, 6 units x 5 reps", group="checks",
         estimator="focalism (difference in jumps)", truth=focal_truth(0.4), units=6,
         answers="sampled",
         run=_focal_run(6, 5, 0.4))
scenario(name="focalism null, log-prob answers (identical curves), 40 units", group="checks",
         estimator="focalism (difference in jumps)", truth=0.0, null=True, units=40,
         answers="log-prob", run=_focal_run(40, 1, 0.0, logprob=True))


# ---------------------------------------------------------------- refute checks

def _refute_run(check: str, **kw):
    def run(seed: int) -> Outcome:
        rng = np.random.default_rng(seed)
        x, y, u = unit_effect_data(rng, **kw)  # unit slopes N(-0.3, 0.02) unless told otherwise
        full = fe_slope(x, y, u, seed=seed)
        if check == "sensitivity":
            r = sensitivity_check(full, 0.05)
        elif check == "loo":
            r = loo_check(x, y, u, full, 0.05, seed)
        else:
            r = placebo_check(x, y, u, 0.05, 20, seed)
        # leave-one-unit-out: "not tested" (the estimate is not significant) also refuses the
        # claim, so the flag is "did not pass"; the other checks flag on "fail"
        flag = r["verdict"] != "pass" if check == "loo" else r["verdict"] == "fail"
        return Outcome(full["estimate"], full["ci_low"], full["ci_high"], r["p_value"], flag=flag)
    return run


scenario(name="robustness value: robust effect -0.3, 10 units", group="checks",
         estimator="refute: unobserved common cause (RV < 1%)", truth=-0.3, null=True, units=10,
         answers="sampled", run=_refute_run("sensitivity"))
scenario(name="robustness value: no effect (not robust), 10 units", group="checks",
         estimator="refute: unobserved common cause (RV < 1%)", truth=0.0, units=10,
         answers="sampled", run=_refute_run("sensitivity", slope=0.0))
scenario(name="leave-one-unit-out: homogeneous effect -0.3, 10 units", group="checks",
         estimator="refute: leave-one-unit-out", truth=-0.3, null=True, units=10,
         answers="sampled", run=_refute_run("loo"))
scenario(name="leave-one-unit-out: one unit carries the effect, 10 units", group="checks",
         estimator="refute: leave-one-unit-out", truth=-0.2, units=10, answers="sampled",
         run=_refute_run("loo", one_unit=-2.0, noise=0.1))
scenario(name="placebo sanity check: correct estimator, 10 units", group="checks",
         estimator="sanity: placebo treatment", truth=-0.3, null=True, units=10,
         answers="sampled", run=_refute_run("placebo"))
