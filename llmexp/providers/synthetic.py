"""`synthetic/...`: a parametric simulated respondent with KNOWN ground truth.

THIS IS NOT A LANGUAGE MODEL AND ITS OUTPUT IS NOT EVIDENCE ABOUT LLMs. It exists so a
study can be run end to end offline, for free and reproducibly: to test the pipeline, to
check that an analysis recovers parameters that were set on purpose, and to diagnose a
design (power, bias, cost) before paying for real model calls.

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
``leakage``               0.0      confound leakage in `blind` mode: a probed unspecified
                                   covariate's elicited value is
                                   ``anchor * (1 + leakage * (x - 0.5))``; 0 in other modes
``confound``              1.0      how strongly the leaked covariate moves the outcome in
                                   `blind` mode: blind logit slope = effect + confound *
                                   leakage (0 when any covariate is pinned in the prompt)
``persona_control``       0.0      share of the leakage removed when a persona is given
``focalism``              0.0      when a numeric covariate is pinned (e.g. the competitor's
                                   price), P = (1 - focalism) * P + focalism * step, where
                                   step = 1 if the shown treatment value <= pinned value
``noise``                 0.05     sd of the noise on numeric answers: absolute for
                                   probabilities/shares, relative for numbers and probes
``range_sensitivity``     0.0      aggregate range splits: x is re-normalised within the
                                   split with this weight (0 = no range effect)
``unit_sd``               0.0      sd of a per-unit random logit intercept (seeded)
``anchor``                (auto)   probe anchor; default: midpoint of the probe's answer
                                   range, else the unit's first positive numeric column
``probs``                 0        1: binary answers also carry label probabilities
                                   (P(first label) = P), as a log-prob model would
========================  =======  =========================================================

The normalised level of a treatment is ``(level - min) / (max - min)`` over the treatment's
levels (its position in the level list for non-numeric levels); with several treatments the
effect applies to each (param ``effect_<treatment>`` overrides ``effect`` per treatment).

Answers: binary -> the first label with probability P (else the second); categorical -> the
first label with probability P, the others sharing 1 - P equally; likert low..high ->
low + Binomial(high - low, P); number/money -> low + P * (high - low) (+ noise) when a range
is given, else the probe rule; probability -> P + N(0, noise) clipped to [0, 1], as "NN%".
Per-condition answers (within/aggregate) give one line per condition, ``k) answer``, each
computed for that condition's level (aggregate: the share P + noise). Probes answer the
pinned value when their covariate is pinned.

Every draw is seeded from (study seed, trial_id), so a re-run reproduces every answer.
`outcome_probability(params, trial)` is the exact P for a trial: tests and diagnostics
compute the true curve from it.
"""

from __future__ import annotations

import hashlib
import math
import random
from typing import Any, Mapping, Optional

from llmexp.providers.base import LlmexpProvider, Reply

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
    "probs": 0.0,
}

__all__ = ["SyntheticRespondent", "outcome_probability", "normalized_level", "probe_value", "DEFAULTS"]


def _param(params: Mapping, name: str) -> float:
    value = params.get(name, DEFAULTS.get(name))
    try:
        return float(value)
    except (TypeError, ValueError):
        return float(DEFAULTS.get(name, 0.0))


def _num(value: Any) -> Optional[float]:
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


def normalized_level(treatment: str, level: Any, trial: Mapping) -> float:
    """Position of `level` in the treatment's level range, in [0, 1]."""
    levels = (trial.get("treatment_levels") or {}).get(treatment) or []
    x = _num(level)
    nums = [_num(v) for v in levels]
    if x is not None and nums and all(v is not None for v in nums):
        lo, hi = min(nums), max(nums)
        return 0.5 if hi == lo else (x - lo) / (hi - lo)
    if level in levels and len(levels) > 1:
        return levels.index(level) / (len(levels) - 1)
    return 0.5 if x is None else x


def _split_level(treatment: str, level: Any, split: Any) -> Optional[float]:
    x = _num(level)
    if x is None or not split or len(split) != 2:
        return None
    lo, hi = float(split[0]), float(split[1])
    return None if hi == lo else (x - lo) / (hi - lo)


def _unit_shift(trial: Mapping, params: Mapping, seed: int) -> float:
    sd = _param(params, "unit_sd")
    if sd == 0:
        return 0.0
    unit = trial.get("unit") or {}
    key = str(trial.get("unit_id") or sorted(unit.items()))
    rng = random.Random(_seed_int(seed, "unit", key))
    return rng.gauss(0.0, sd)


def _pinned_numeric(trial: Mapping) -> Optional[float]:
    for name in sorted((trial.get("pinned") or {})):
        value = _num((trial.get("pinned") or {})[name])
        if value is not None:
            return value
    return None


def outcome_probability(params: Mapping, trial: Mapping, condition: Optional[Mapping] = None, seed: int = 0) -> float:
    """The respondent's exact P(first label) for one condition of a trial."""
    cond = condition if condition is not None else (trial.get("conditions") or [{}])[0]
    mode = trial.get("mode") or "blind"
    pinned = trial.get("pinned") or {}
    leak = _param(params, "leakage")
    if trial.get("persona"):
        leak *= 1.0 - _param(params, "persona_control")
    z = _logit(_param(params, "baseline")) + _unit_shift(trial, params, seed)
    r = _param(params, "range_sensitivity")
    for treatment, level in (cond.get("levels") or {}).items():
        x = normalized_level(treatment, level, trial)
        if mode == "aggregate" and r and trial.get("split"):
            xs = _split_level(treatment, level, trial.get("split"))
            if xs is not None:
                x = (1 - r) * x + r * xs
        slope = _param(params, f"effect_{treatment}") if f"effect_{treatment}" in params else _param(params, "effect")
        if mode == "blind" and not pinned:
            slope += _param(params, "confound") * leak
        z += slope * (x - 0.5)
    p = _sigmoid(z)
    focal = _param(params, "focalism")
    pin = _pinned_numeric(trial)
    if focal and pin is not None:
        shown = [_num(v) for v in (cond.get("values") or {}).values()]
        shown = [v for v in shown if v is not None]
        if shown:
            step = 1.0 if shown[0] <= pin else 0.0
            p = (1 - focal) * p + focal * step
    return min(max(p, 0.0), 1.0)


def _anchor(params: Mapping, trial: Mapping, answer: Mapping) -> float:
    if "anchor" in params and _num(params["anchor"]) is not None:
        return float(_num(params["anchor"]))
    low, high = answer.get("low"), answer.get("high")
    if low is not None and high is not None:
        return (float(low) + float(high)) / 2
    for value in (trial.get("unit") or {}).values():
        v = _num(value) if not isinstance(value, str) else None
        if v is not None and v > 0:
            return v
    return 1.0


def probe_value(params: Mapping, trial: Mapping, rng: Optional[random.Random] = None) -> float:
    """The elicited value of a probed covariate (expected value when rng is None)."""
    answer = trial.get("answer") or {}
    pinned = trial.get("pinned") or {}
    target = trial.get("target")
    if target in pinned and _num(pinned[target]) is not None:
        return float(_num(pinned[target]))
    anchor = _anchor(params, trial, answer)
    leak = 0.0
    if (trial.get("mode") or "blind") == "blind":
        leak = _param(params, "leakage")
        if trial.get("persona"):
            leak *= 1.0 - _param(params, "persona_control")
    cond = (trial.get("conditions") or [{}])[0]
    xs = [normalized_level(t, lv, trial) for t, lv in (cond.get("levels") or {}).items()]
    x = sum(xs) / len(xs) if xs else 0.5
    value = anchor * (1.0 + leak * (x - 0.5))
    if rng is not None:
        value *= 1.0 + rng.gauss(0.0, _param(params, "noise"))
    return value


def _seed_int(seed: int, *parts: Any) -> int:
    h = hashlib.sha256(("\x1f".join([str(seed), *map(str, parts)])).encode()).digest()
    return int.from_bytes(h[:8], "big")


def _fmt_number(value: float, money: bool) -> str:
    if money:
        return f"${value:,.2f}"
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.2f}"


def _clip(value: float, low: Any, high: Any) -> float:
    if low is not None:
        value = max(value, float(low))
    if high is not None:
        value = min(value, float(high))
    return value


def _one_answer(p: float, answer: Mapping, params: Mapping, trial: Mapping, rng: random.Random, aggregate: bool) -> tuple[str, Optional[dict]]:
    atype = answer.get("type")
    labels = list(answer.get("labels") or [])
    low, high = answer.get("low"), answer.get("high")
    noise = _param(params, "noise")
    if atype == "binary":
        labels = labels or ["yes", "no"]
        if aggregate:  # a share of respondents choosing the first label
            return f"{round(100 * p)}%", None
        pick = labels[0] if rng.random() < p else labels[1]
        probs = {labels[0]: p, labels[1]: 1 - p} if _param(params, "probs") else None
        return pick, probs
    if atype == "categorical":
        if not labels:
            return "", None
        u = rng.random()
        if u < p or len(labels) == 1:
            return labels[0], None
        rest = labels[1:]
        return rest[min(int((u - p) / (1 - p) * len(rest)), len(rest) - 1)], None
    if atype == "likert":
        lo = int(float(low if low is not None else 1))
        hi = int(float(high if high is not None else (lo + len(labels) - 1 if labels else 5)))
        k = sum(1 for _ in range(hi - lo) if rng.random() < p)
        return str(lo + k), None
    if atype == "probability":
        share = _clip(p + rng.gauss(0.0, noise), 0, 1) if noise else p
        return f"{100 * share:.1f}%", None
    if atype in ("number", "money"):
        money = atype == "money"
        if trial.get("kind") == "probe" or low is None or high is None:
            value = probe_value(params, trial, rng)
        else:
            span = float(high) - float(low)
            value = float(low) + p * span + rng.gauss(0.0, noise) * span
        value = _clip(value, low, high)
        return _fmt_number(round(value, 2), money), None
    return "", None


class SyntheticRespondent(LlmexpProvider):
    """The `synthetic/...` provider (see the module docstring; NOT evidence about LLMs)."""

    blocking = False

    def answer(self, model: str, messages: list, trial: Optional[dict], params: dict, seed: int) -> Reply:
        if trial is None:  # called outside the runner: there is no structure to read
            return Reply(text="", prompt_tokens=0, completion_tokens=0)
        rng = random.Random(_seed_int(seed, trial.get("trial_id"), model))
        answer = trial.get("answer") or {}
        conditions = trial.get("conditions") or [{}]
        mode = trial.get("mode")
        probs = None
        if answer.get("per_condition"):
            lines = []
            for k, cond in enumerate(conditions, start=1):
                p = outcome_probability(params, trial, cond, seed)
                text, _ = _one_answer(p, answer, params, trial, rng, aggregate=(mode == "aggregate"))
                lines.append(f"{k}) {text}")
            text = "\n".join(lines)
        else:
            p = outcome_probability(params, trial, conditions[0], seed)
            text, probs = _one_answer(p, answer, params, trial, rng, aggregate=False)
        prompt_tokens = sum(max(1, len(str(m.get("content", ""))) // 4) for m in messages)
        return Reply(
            text=text,
            probs=probs,
            prob_mass=1.0 if probs else None,
            prompt_tokens=prompt_tokens,
            completion_tokens=max(1, len(text) // 4),
        )
