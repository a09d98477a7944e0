"""The synthetic respondent over a whole compiled trial table, vectorised for simulation.

`observation_frame(study, trials, params)` returns the analysis's observation rows (one per
(call, condition), built by `llmexp.analysis.observations.build_observations` itself, so the
rows, levels and unit ids are exactly those `llmexp analyze` would see) with, per row:

- ``p``: the respondent's exact P(first label) for that condition, from the provider's own
  `outcome_probability` (llmexp/providers/synthetic.py) on the same structured trial the
  runner sends it;
- ``p0``: the same with leakage, focalism and range sensitivity switched off: the
  *interventional* probability, what an ideal (unconfounded, non-focal) experiment measures;
- ``ev`` / ``ev0``: the expected answer on the analysis scale (binary 0/1 -> p; likert
  low + (high - low) p; number with a range low + p (high - low); probes the provider's
  expected `probe_value`), for p and p0.

`draw_answers(block, params, rng, sims)` draws `sims` independent answer vectors for a block
of rows sharing one answer spec, reproducing `SyntheticRespondent._one_answer` (including the
text rounding the answer goes through) with numpy instead of one Python call per trial.
"""

from __future__ import annotations

import json
import math
from typing import Any, Mapping, Optional

import numpy as np
import pandas as pd

from llmexp.providers.synthetic import DEFAULTS, _param, outcome_probability, probe_value

# params that create confounding/focalism/range effects: off for the interventional truth
CONFOUNDING_PARAMS = {"leakage": 0.0, "focalism": 0.0, "range_sensitivity": 0.0}


def _loads(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def structured_trial(row: Mapping, levels: Mapping[str, list]) -> dict:
    """The structured trial the runner attaches for custom providers (one builder for both)."""
    from llmexp.providers.base import structured_trial as build

    return build(dict(row), {k: list(v) for k, v in levels.items()}, _loads)


def _placeholder_responses(trials: pd.DataFrame) -> pd.DataFrame:
    """The trial table as a response table of valid answers (values filled in later)."""
    df = trials.copy()
    df["valid"] = True
    df["status"] = "ok"
    df["value"] = 1.0
    cv = []
    for conds, answer, mode in zip(df["conditions"], df["answer"], df["mode"]):
        a = _loads(answer) or {}
        cs = _loads(conds) or []
        if a.get("per_condition") or len(cs) > 1 or mode in ("within", "aggregate"):
            cv.append(json.dumps({str(c.get("cell")): 1.0 for c in cs}))
        else:
            cv.append(None)
    df["condition_values"] = cv
    df["probs"] = None
    return df


def expected_answer(p: np.ndarray, answer: Mapping, kind: str, probe_ev: np.ndarray) -> np.ndarray:
    """E[answer on the analysis scale] given P(first label), per the provider's answer rules."""
    atype = answer.get("type")
    low, high = answer.get("low"), answer.get("high")
    if kind == "probe" or (atype in ("number", "money") and (low is None or high is None)):
        return probe_ev
    if atype in ("binary", "probability"):
        return p
    if atype == "likert":
        lo, hi = _likert_range(answer)
        return lo + (hi - lo) * p
    if atype in ("number", "money"):
        return float(low) + p * (float(high) - float(low))
    if atype == "categorical":
        k = len(answer.get("labels") or [])
        return (1 - p) * (k / 2.0) if k > 1 else np.zeros_like(p)
    return p


def _likert_range(answer: Mapping) -> tuple[int, int]:
    labels = answer.get("labels") or []
    low, high = answer.get("low"), answer.get("high")
    lo = int(float(low if low is not None else 1))
    hi = int(float(high if high is not None else (lo + len(labels) - 1 if labels else 5)))
    return lo, hi


def observation_frame(study, trials: pd.DataFrame, params: Mapping, seed: Optional[int] = None) -> pd.DataFrame:
    """Observation rows of `trials` with the respondent's true p, p0, ev, ev0 (module doc)."""
    from llmexp.analysis.observations import build_observations

    seed = study.seed if seed is None else seed
    levels = {t.name: list(t.levels) for t in study.treatments}
    obs = build_observations(study, _placeholder_responses(trials)).table
    params0 = dict(params, **CONFOUNDING_PARAMS)
    info: dict[tuple, tuple] = {}
    cache: dict[tuple, tuple] = {}
    for row in trials.to_dict("records"):
        trial = structured_trial(row, levels)
        key_base = (row.get("mode"), row.get("kind"), row.get("target"), row.get("unit_id"),
                    row.get("pinned"), bool(trial["persona"]), row.get("split"), row.get("answer"))
        for cond in trial["conditions"] or [{}]:
            key = key_base + (json.dumps(cond, sort_keys=True),)
            if key not in cache:
                one = dict(trial, conditions=[cond])
                cache[key] = (outcome_probability(params, trial, cond, seed),
                              outcome_probability(params0, trial, cond, seed),
                              probe_value(params, one), probe_value(params0, one),
                              float(row.get("target") in (trial["pinned"] or {})))
            info[(row["trial_id"], cond.get("cell"))] = cache[key]
    vals = np.array([info[(t, c)] for t, c in zip(obs["trial_id"], obs["cell"])], dtype=float)
    obs = obs.reset_index(drop=True)
    obs["p"], obs["p0"], obs["probe_ev"], obs["probe_ev0"], pinned = vals.T
    obs["probe_pinned"] = pinned > 0
    answers = dict(zip(trials["trial_id"], trials["answer"]))
    obs["answer_json"] = obs["trial_id"].map(answers)
    ev = np.empty(len(obs))
    ev0 = np.empty(len(obs))
    for (aj, kind), idx in obs.groupby(["answer_json", "kind"], sort=False).groups.items():
        a = _loads(aj) or {}
        ev[idx] = expected_answer(obs.loc[idx, "p"].to_numpy(), a, kind, obs.loc[idx, "probe_ev"].to_numpy())
        ev0[idx] = expected_answer(obs.loc[idx, "p0"].to_numpy(), a, kind, obs.loc[idx, "probe_ev0"].to_numpy())
    obs["ev"], obs["ev0"] = ev, ev0
    return obs


def _round_sig(v: np.ndarray, digits: int = 4) -> np.ndarray:
    """What f"{v:.4g}" keeps, vectorised (numbers below 1000)."""
    out = v.copy()
    nz = v != 0
    mag = np.floor(np.log10(np.abs(v[nz])))
    scale = 10.0 ** (digits - 1 - mag)
    out[nz] = np.round(v[nz] * scale) / scale
    return out


def _fmt_round(v: np.ndarray, money: bool) -> np.ndarray:
    """The rounding of the provider's `_fmt_number(round(v, 2), money)` then parsing back."""
    v = np.round(v, 2)
    if money:
        return v
    small = (np.abs(v) < 1000) & (np.abs(v - np.round(v)) >= 1e-9)
    v = v.copy()
    v[small] = _round_sig(v[small])
    return v


def draw_answers(block: pd.DataFrame, answer: Mapping, kind: str, mode: str, params: Mapping,
                 rng: np.random.Generator, sims: int) -> np.ndarray:
    """(rows x sims) answers on the analysis scale for rows sharing one answer spec."""
    n = len(block)
    p = block["p"].to_numpy(float)[:, None]
    atype = answer.get("type")
    low, high = answer.get("low"), answer.get("high")
    noise = _param(params, "noise")
    if kind == "probe" or (atype in ("number", "money") and (low is None or high is None)):
        ev = block["probe_ev"].to_numpy(float)[:, None]
        pinned_target = block["probe_pinned"].to_numpy(bool)[:, None] if "probe_pinned" in block else False
        v = ev * (1.0 + noise * rng.standard_normal((n, sims))) if noise else np.repeat(ev, sims, 1)
        v = np.where(pinned_target, ev, v)
        v = np.clip(v, -np.inf if low is None else float(low), np.inf if high is None else float(high))
        return _fmt_round(v, atype == "money")
    if atype == "binary":
        if mode == "aggregate" and answer.get("per_condition"):
            return np.repeat(np.round(100 * p) / 100.0, sims, 1)
        if _param(params, "probs"):
            return np.repeat(p, sims, 1)
        return (rng.random((n, sims)) < p).astype(float)
    if atype == "probability":
        share = np.clip(p + noise * rng.standard_normal((n, sims)), 0, 1) if noise else np.repeat(p, sims, 1)
        return np.round(1000 * share) / 1000.0
    if atype == "likert":
        lo, hi = _likert_range(answer)
        return lo + rng.binomial(hi - lo, np.broadcast_to(p, (n, sims))).astype(float)
    if atype in ("number", "money"):
        span = float(high) - float(low)
        v = float(low) + p * span + noise * rng.standard_normal((n, sims)) * span
        return _fmt_round(np.clip(v, float(low), float(high)), atype == "money")
    if atype == "categorical":
        k = len(answer.get("labels") or [])
        u = rng.random((n, sims))
        if k <= 1:
            return np.zeros((n, sims))
        rest = np.minimum(((u - p) / np.maximum(1 - p, 1e-12) * (k - 1)).astype(int), k - 2) + 1
        return np.where(u < p, 0.0, rest.astype(float))
    raise ValueError(f"the synthetic respondent has no rule for answer type {atype!r}")


def respondent_params(study, model: str, overrides: Optional[Mapping] = None) -> dict:
    """The synthetic respondent's params standing in for `model`: the defaults, the model's own
    params when it is a synthetic model, then `overrides` (--effect, --param ...)."""
    out = dict(DEFAULTS)
    if model.startswith("synthetic/"):
        spec = next((m for m in study.models if m.name == model), None)
        if spec is not None:
            out.update({k: v for k, v in spec.params.items()})
    out.update(overrides or {})
    return out
