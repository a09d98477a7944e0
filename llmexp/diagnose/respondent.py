"""The synthetic respondent over the analysis's observation rows, for simulation.

The respondent itself (its params, outcome probability, probes and answer draws) is ONE
implementation, `llmexp.providers.respondent`, also answering `synthetic/...` calls in a
real run. This module lays it over the rows `llmexp analyze` would see:

`observation_frame(study, trials, params)` returns the analysis's observation rows (one per
(call, condition), built by `llmexp.analysis.observations.build_observations` itself, so the
rows, levels and unit ids are exactly those `llmexp analyze` would see) with, per row:

- ``p``: the respondent's exact P(first label) for that condition (`outcome_probability`
  on the same structured trial the runner sends it);
- ``p0``: the same with leakage, focalism and range sensitivity switched off: the
  *interventional* probability, what an ideal (unconfounded, non-focal) experiment measures;
- ``ev`` / ``ev0``: the expected answer on the analysis scale (the answer type's
  `expected_value`; probes: the expected `probe_value`), for p and p0.

`draw_answers(block, answer, kind, mode, params, rng, sims)` draws `sims` independent answer
vectors for a block of rows sharing one answer spec (`respondent.draw_values`).
`respondent_params(study, model, overrides)` are the params standing in for a model.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from llmexp import modes, providers
from llmexp.analysis.observations import build_observations
from llmexp.providers import respondent
from llmexp.providers.respondent import DEFAULTS, draw_values, loads

draw_answers = draw_values  # the name simulate.py and the tests use

__all__ = ["observation_frame", "draw_answers", "respondent_params", "structured_trial"]


def structured_trial(row: Mapping, levels: Mapping[str, list]) -> dict:
    """The structured trial the runner attaches for custom providers (one builder for both)."""
    return respondent.trial_from_row(row, levels)


def _placeholder_responses(trials: pd.DataFrame, logprob: bool = False) -> pd.DataFrame:
    """The trial table as a response table of valid answers (values filled in later).

    logprob: the model answers labels by log-probabilities, so its replicates of one prompt
    are exact copies; label answers then carry probabilities, and `build_observations`
    counts the copies once, exactly as the analysis of a real log-prob run does."""
    df = trials.copy()
    df["valid"] = True
    df["status"] = "ok"
    df["value"] = 1.0
    cv: list[str | None] = []
    for conds, answer, mode in zip(df["conditions"], df["answer"], df["mode"], strict=True):
        a = loads(answer) or {}
        cs = loads(conds) or []
        if a.get("per_condition") or len(cs) > 1 or modes.MODES.get(mode, modes.Mode).per_condition:
            cv.append(json.dumps({str(c.get("cell")): 1.0 for c in cs}))
        else:
            cv.append(None)
    df["condition_values"] = cv
    df["probs"] = None
    if logprob:
        df["probs"] = [_probs_of(loads(a) or {}, cv) for a, cv in zip(df["answer"], cv, strict=True)]
    return df


def _probs_of(answer: Mapping, per_condition: str | None) -> str | None:
    labels = answer.get("labels") or []
    if per_condition is not None or len(labels) < 2:
        return None
    return json.dumps({str(labels[0]): 0.5, **{str(lb): 0.5 / (len(labels) - 1) for lb in labels[1:]}})


def observation_frame(study: Any, trials: pd.DataFrame, params: Mapping, seed: int | None = None) -> pd.DataFrame:
    """Observation rows of `trials` with the respondent's true p, p0, ev, ev0 (module doc)."""
    seed = study.seed if seed is None else seed
    levels = {t.name: list(t.levels) for t in study.treatments}
    logprob = bool(respondent.param(params, "probs"))
    obs = build_observations(study, _placeholder_responses(trials, logprob)).table
    info = respondent.condition_truths(params, trials, levels, seed)
    vals = np.array([info[(t, c)] for t, c in zip(obs["trial_id"], obs["cell"], strict=True)], dtype=float)
    obs = obs.reset_index(drop=True)
    obs["p"], obs["p0"], obs["probe_ev"], obs["probe_ev0"], pinned = vals.T
    obs["probe_pinned"] = pinned > 0
    answers = dict(zip(trials["trial_id"], trials["answer"], strict=True))
    obs["answer_json"] = obs["trial_id"].map(answers)
    ev = np.empty(len(obs))
    ev0 = np.empty(len(obs))
    for (aj, kind), idx in obs.groupby(["answer_json", "kind"], sort=False).groups.items():
        a = loads(aj) or {}
        ev[idx] = respondent.expected_values(obs.loc[idx, "p"].to_numpy(), a, kind, obs.loc[idx, "probe_ev"].to_numpy())
        ev0[idx] = respondent.expected_values(obs.loc[idx, "p0"].to_numpy(), a, kind, obs.loc[idx, "probe_ev0"].to_numpy())
    obs["ev"], obs["ev0"] = ev, ev0
    return obs


def respondent_params(study: Any, model: str, overrides: Mapping | None = None) -> dict:
    """The synthetic respondent's params standing in for `model`: the defaults, the model's own
    params when it is a synthetic model, then `overrides` (--effect, --param ...).

    A model whose provider answers labels by log-probabilities (``answers_by_logprob``, e.g.
    the embedded local model) gets ``probs 1``: its label answers are the probabilities
    themselves (no sampling), as in the real run."""
    out = dict(DEFAULTS)
    if providers.for_model(model).answers_by_logprob:
        out["probs"] = 1.0
    if providers.for_model(model).simulated:
        spec = next((m for m in study.models if m.name == model), None)
        if spec is not None:
            out.update({k: v for k, v in spec.params.items()})
    out.update(overrides or {})
    return out
