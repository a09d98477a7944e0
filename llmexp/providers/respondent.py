"""The synthetic respondent's model: a parametric respondent with KNOWN ground truth.

THIS IS NOT A LANGUAGE MODEL AND ITS OUTPUT IS NOT EVIDENCE ABOUT LLMs. It exists so a
study can be run end to end offline, for free and reproducibly: to test the pipeline, to
check that an analysis recovers parameters that were set on purpose, and to diagnose a
design (power, bias, cost) before paying for real model calls. This module is its one
implementation: the `synthetic/...` litellm provider (`synthetic.py`) answers one trial at
a time with `answer`, `llmexp diagnose` draws whole trial tables at once with
`condition_truths` / `expected_values` / `draw_values`.

It ignores the prose of the prompt and reads the STRUCTURED trial the runner attaches
(`metadata["llmexp_trial"]`, see `base.py`). Parameters come from the model's params in the
study, e.g. `model "synthetic/respondent" effect -0.8 leakage 0.5 focalism 0 noise 0.05
replicates 20`:

========================  =======  =========================================================
param                     default  meaning
========================  =======  =========================================================
``baseline``              0.5      P(first binary label, e.g. "purchase") at the middle
                                   treatment level (normalised level x = 0.5)
``effect``                -1.0     true treatment effect: logit slope per unit of the
                                   normalised treatment level x in [0, 1]
``leakage``               0.0      confound leakage in blind modes: a probed unspecified
                                   covariate's elicited value is
                                   ``anchor * (1 + leakage * (x - 0.5))``; 0 in other modes
``confound``              1.0      how strongly the leaked covariate moves the outcome in
                                   blind modes: blind logit slope = effect + confound *
                                   leakage (0 when any covariate is pinned in the prompt)
``persona_control``       0.0      share of the leakage removed when a persona is given
``focalism``              0.0      when a numeric covariate is pinned (e.g. the competitor's
                                   price), P = (1 - focalism) * P + focalism * step, where
                                   step = 1 if the shown treatment value <= pinned value
``noise``                 0.05     sd of the noise on numeric answers: absolute for
                                   probabilities/shares, relative for numbers and probes
``range_sensitivity``     0.0      range splits (modes that can split): x is re-normalised
                                   within the split with this weight (0 = no range effect)
``unit_sd``               0.0      sd of a per-unit random logit intercept (seeded)
``unit_slope_sd``         0.0      sd of a per-unit random logit slope added to ``effect``
                                   (seeded): products differ in how much the price matters
``unit_leakage_sd``       0.0      sd of a per-unit random leakage added to ``leakage``
                                   (seeded; blind modes): unit-specific leakage slopes
``anchor``                (auto)   probe anchor; default: midpoint of the probe's answer
                                   range, else the unit's first positive numeric column
``probs``                 0        1: label answers also carry label probabilities
                                   (P(first label) = P), as a log-prob model would
``attention``             1.0      P(a check, asked in a sequence, is answered with its
                                   expected option); otherwise another option at random
========================  =======  =========================================================

The normalised level of a treatment is ``(level - min) / (max - min)`` over the treatment's
levels (its position in the level list for non-numeric levels); with several treatments the
effect applies to each (param ``effect_<treatment>`` overrides ``effect`` per treatment).
"Blind modes" are the modes whose capability `blind` is set (`llmexp.modes`).

Answers: the answer type's synthetic draw given P (`llmexp.answers`: `synthetic_answer` for
one text, `synthetic_values` vectorised), e.g. the first label with probability P, a likert
point low + Binomial(high - low, P), a number low + P * (high - low) (+ noise), else the probe
rule. Per-condition answers give one line per condition, ``k) answer``, each computed for
that condition's level (in a mode whose answer is the population's, the share P). Probes
answer the pinned value when their covariate is pinned.

Every draw is seeded from (study seed, trial_id), so a re-run reproduces every answer.
`outcome_probability(params, trial)` is the exact P for a trial: tests and diagnostics
compute the true curve from it.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from llmexp import answers, modes
from llmexp.providers.base import structured_trial
from llmexp.schema import json_cell as loads  # trial-table cells, decoded as the runner does
from llmexp.seeding import text_int

DEFAULTS: dict[str, float] = {
    "baseline": 0.5,
    "effect": -1.0,
    "leakage": 0.0,
    "confound": 1.0,
    "persona_control": 0.0,
    "focalism": 0.0,
    "noise": 0.05,
    "range_sensitivity": 0.0,
    "unit_sd": 0.0,
    "unit_slope_sd": 0.0,
    "unit_leakage_sd": 0.0,
    "probs": 0.0,
    "attention": 1.0,
}

# params that create confounding/focalism/range effects: off for the interventional truth
CONFOUNDING_PARAMS = {"leakage": 0.0, "unit_leakage_sd": 0.0, "focalism": 0.0, "range_sensitivity": 0.0}

PROBE = "probe"  # the trial kind of a probe (an unspecified covariate's question)
CHECK = "check"  # the trial kind of an attention/manipulation check (its answer spec names `expect`)

__all__ = [
    "DEFAULTS",
    "CONFOUNDING_PARAMS",
    "param",
    "seed_int",
    "normalized_level",
    "outcome_probability",
    "probe_value",
    "answer",
    "loads",
    "trial_from_row",
    "condition_truths",
    "expected_values",
    "draw_values",
]


# ---------------------------------------------------------------- parameters and helpers


def param(params: Mapping, name: str) -> float:
    """A respondent param as a float (its default when missing or not a number)."""
    value = params.get(name, DEFAULTS.get(name))
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(DEFAULTS.get(name, 0.0))


def seed_int(seed: int, *parts: Any) -> int:
    """The seed of a draw keyed by the study seed and `parts` (e.g. trial id, model)."""
    return text_int("\x1f".join([str(seed), *map(str, parts)]))


def _num(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip().replace("$", "").replace(",", "").rstrip("%"))
        except ValueError:
            return None
    return None


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _mode(trial: Mapping) -> type[modes.Mode]:
    """The trial's mode (capabilities only); the default mode when the trial names none, and
    a mode with no capabilities when its name is not registered."""
    name = trial.get("mode")
    return modes.MODES.get(name, modes.Mode) if name else modes.default()


# ---------------------------------------------------------------- the model


def normalized_level(treatment: str, level: Any, trial: Mapping) -> float:
    """Position of `level` in the treatment's level range, in [0, 1]."""
    levels = (trial.get("treatment_levels") or {}).get(treatment) or []
    x = _num(level)
    nums = [_num(v) for v in levels]
    known = [v for v in nums if v is not None]
    if x is not None and nums and len(known) == len(nums):
        lo, hi = min(known), max(known)
        return 0.5 if hi == lo else (x - lo) / (hi - lo)
    if level in levels and len(levels) > 1:
        return levels.index(level) / (len(levels) - 1)
    return 0.5 if x is None else x


def _split_level(level: Any, split: Any) -> float | None:
    x = _num(level)
    if x is None or not split or len(split) != 2:
        return None
    lo, hi = float(split[0]), float(split[1])
    return None if hi == lo else (x - lo) / (hi - lo)


def _unit_shift(trial: Mapping, params: Mapping, seed: int, name: str = "unit_sd") -> float:
    """The unit's seeded random draw of sd `param(name)` (0 when the sd is 0)."""
    sd = param(params, name)
    if sd == 0:
        return 0.0
    unit = trial.get("unit") or {}
    key = str(trial.get("unit_id") or sorted(unit.items()))
    parts = ("unit", key) if name == "unit_sd" else ("unit", key, name)
    rng = random.Random(seed_int(seed, *parts))
    return rng.gauss(0.0, sd)


def _pinned_numeric(trial: Mapping) -> float | None:
    for name in sorted(trial.get("pinned") or {}):
        value = _num((trial.get("pinned") or {})[name])
        if value is not None:
            return value
    return None


def _leakage(params: Mapping, trial: Mapping, seed: int = 0) -> float:
    """The leakage param (plus the unit's own leakage), less the share a persona controls."""
    leak = param(params, "leakage") + _unit_shift(trial, params, seed, "unit_leakage_sd")
    if trial.get("persona"):
        leak *= 1.0 - param(params, "persona_control")
    return leak


def _focal(p: float, params: Mapping, trial: Mapping, cond: Mapping) -> float:
    """P pulled towards the step at the pinned value (focalism)."""
    focal = param(params, "focalism")
    pin = _pinned_numeric(trial)
    if focal and pin is not None:
        values = [_num(v) for v in (cond.get("values") or {}).values()]
        shown = [v for v in values if v is not None]
        if shown:
            step = 1.0 if shown[0] <= pin else 0.0
            p = (1 - focal) * p + focal * step
    return p


def outcome_probability(params: Mapping, trial: Mapping, condition: Mapping | None = None, seed: int = 0) -> float:
    """The respondent's exact P(first label) for one condition of a trial."""
    cond = condition if condition is not None else (trial.get("conditions") or [{}])[0]
    mode = _mode(trial)
    pinned = trial.get("pinned") or {}
    leak = _leakage(params, trial, seed)
    z = _logit(param(params, "baseline")) + _unit_shift(trial, params, seed)
    r = param(params, "range_sensitivity")
    for treatment, level in (cond.get("levels") or {}).items():
        x = normalized_level(treatment, level, trial)
        if mode.can_split and r and trial.get("split"):
            xs = _split_level(level, trial.get("split"))
            if xs is not None:
                x = (1 - r) * x + r * xs
        slope = param(params, f"effect_{treatment}") if f"effect_{treatment}" in params else param(params, "effect")
        slope += _unit_shift(trial, params, seed, "unit_slope_sd")
        if mode.blind and not pinned:
            slope += param(params, "confound") * leak
        z += slope * (x - 0.5)
    p = _focal(_sigmoid(z), params, trial, cond)
    return min(max(p, 0.0), 1.0)


def _anchor(params: Mapping, trial: Mapping, answer: Mapping) -> float:
    anchor = _num(params["anchor"]) if "anchor" in params else None
    if anchor is not None:
        return anchor
    low, high = answer.get("low"), answer.get("high")
    if low is not None and high is not None:
        return (float(low) + float(high)) / 2
    for value in (trial.get("unit") or {}).values():
        v = _num(value) if not isinstance(value, str) else None
        if v is not None and v > 0:
            return v
    return 1.0


def probe_value(params: Mapping, trial: Mapping, rng: random.Random | None = None, seed: int = 0) -> float:
    """The elicited value of a probed covariate (expected value when rng is None)."""
    answer = trial.get("answer") or {}
    pinned = trial.get("pinned") or {}
    target = trial.get("target")
    pinned_value = _num(pinned[target]) if target in pinned else None
    if pinned_value is not None:
        return pinned_value
    anchor = _anchor(params, trial, answer)
    leak = _leakage(params, trial, seed) if _mode(trial).blind else 0.0
    cond = (trial.get("conditions") or [{}])[0]
    xs = [normalized_level(t, lv, trial) for t, lv in (cond.get("levels") or {}).items()]
    x = sum(xs) / len(xs) if xs else 0.5
    value = anchor * (1.0 + leak * (x - 0.5))
    if rng is not None:
        value *= 1.0 + rng.gauss(0.0, param(params, "noise"))
    return value


# ---------------------------------------------------------------- one trial (the provider)


def _one_text(atype: answers.AnswerType | None, p: float, params: Mapping, trial: Mapping,
              rng: random.Random, population: bool, seed: int = 0) -> tuple[str, dict | None]:
    """One answer text (and label probabilities) given P, by the answer type's draw."""
    if atype is None:
        return "", None
    return atype.synthetic_answer(
        p,
        rng,
        noise=param(params, "noise"),
        aggregate=population,
        with_probs=bool(param(params, "probs")),
        probe=lambda: probe_value(params, trial, rng, seed),
        is_probe=trial.get("kind") == PROBE,
    )


def _check_answer(spec: Mapping, attention: float, rng: random.Random) -> str:
    """A check's answer: the expected option with probability `attention`, else another."""
    others = [label for label in spec["labels"] if label != spec["expect"]]
    if rng.random() < attention or not others:
        return str(spec["expect"])
    return str(rng.choice(others))


def answer(trial: Mapping, params: Mapping, seed: int, model: str) -> tuple[str, dict | None]:
    """The respondent's answer text to one structured trial, and label probabilities (when
    `probs` is set and the answer has labels). Seeded by (seed, trial id, model)."""
    rng = random.Random(seed_int(seed, trial.get("trial_id"), model))
    spec = trial.get("answer") or {}
    atype = answers.find(spec)
    conditions = trial.get("conditions") or [{}]
    if trial.get("kind") == CHECK and spec.get("expect") in (spec.get("labels") or []):
        return _check_answer(spec, param(params, "attention"), rng), None
    if spec.get("per_condition"):
        population = _mode(trial).population
        texts = []
        for cond in conditions:
            p = outcome_probability(params, trial, cond, seed)
            texts.append(_one_text(atype, p, params, trial, rng, population, seed)[0])
        return answers.condition_lines(texts), None
    p = outcome_probability(params, trial, conditions[0], seed)
    return _one_text(atype, p, params, trial, rng, False, seed)


# ---------------------------------------------------------------- a trial table (diagnose)


def trial_from_row(row: Mapping, levels: Mapping[str, Iterable]) -> dict:
    """The structured trial the runner sends for a trial-table row (the runner's own builder)."""
    return structured_trial(dict(row), {k: list(v) for k, v in levels.items()}, loads)


def condition_truths(params: Mapping, trials: pd.DataFrame, levels: Mapping[str, Iterable],
                     seed: int) -> dict[tuple, tuple]:
    """Per (trial_id, cell) of a trial table: (p, p0, probe_ev, probe_ev0, probe_pinned).

    p: the exact P(first label); p0: the same with leakage, focalism and range sensitivity
    off (the *interventional* probability an unconfounded experiment measures); probe_ev,
    probe_ev0: the expected probe value for both; probe_pinned: 1.0 when the probe's
    covariate is pinned. Trials that differ only in ids and replicates are computed once.
    """
    params0 = dict(params, **CONFOUNDING_PARAMS)
    info: dict[tuple, tuple] = {}
    cache: dict[tuple, tuple] = {}
    for row in trials.to_dict("records"):
        trial = trial_from_row(row, levels)
        key_base = (row.get("mode"), row.get("kind"), row.get("target"), row.get("unit_id"),
                    row.get("pinned"), bool(trial["persona"]), row.get("split"), row.get("answer"))
        for cond in trial["conditions"] or [{}]:
            key = key_base + (json.dumps(cond, sort_keys=True),)
            if key not in cache:
                one = dict(trial, conditions=[cond])
                cache[key] = (outcome_probability(params, trial, cond, seed),
                              outcome_probability(params0, trial, cond, seed),
                              probe_value(params, one, seed=seed), probe_value(params0, one, seed=seed),
                              float(row.get("target") in (trial["pinned"] or {})))
            info[(row["trial_id"], cond.get("cell"))] = cache[key]
    return info


def expected_values(p: np.ndarray, answer: Mapping, kind: str, probe_ev: np.ndarray) -> np.ndarray:
    """E[answer on the analysis scale] given P(first label), by the answer type's rules."""
    atype = answers.find(answer)
    if atype is None:
        return p
    return atype.expected_value(p, probe_ev, is_probe=kind == PROBE)


def draw_values(block: pd.DataFrame, answer: Mapping, kind: str, mode: str, params: Mapping,
                rng: np.random.Generator, sims: int) -> np.ndarray:
    """(rows x sims) answers on the analysis scale for rows sharing one answer spec.

    `block` holds the rows' ``p`` and ``probe_ev`` (and ``probe_pinned``); the draws are
    the answer type's `synthetic_values`, numpy draws with the rounding the provider's text
    goes through (the same distribution as `answer`, not the same random stream).
    """
    atype = answers.find(answer)
    if atype is None:
        raise ValueError(f"the synthetic respondent has no rule for answer type {answer.get('type')!r}")
    p = block["p"].to_numpy(float)[:, None]
    pinned = block["probe_pinned"].to_numpy(bool)[:, None] if "probe_pinned" in block else False
    return atype.synthetic_values(
        p,
        rng,
        sims,
        noise=param(params, "noise"),
        aggregate=modes.MODES.get(mode, modes.Mode).population and atype.per_condition,
        with_probs=bool(param(params, "probs")),
        probe_ev=block["probe_ev"].to_numpy(float)[:, None],
        probe_pinned=pinned,
        is_probe=kind == PROBE,
    )
