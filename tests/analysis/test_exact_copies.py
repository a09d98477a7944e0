"""Replicates of a log-probability answer are copies of one exact number, not new draws:
the analysis keeps one, so they cannot narrow intervals."""

from __future__ import annotations

import json

import pandas as pd

from llmexp import check_text
from llmexp.analysis.observations import build_observations

STUDY = """
study "copies" seed 1
units items
  row name = "tea"
treatment frame = levels("a", "b")
context "You see {name}, framed {frame}."
outcome buy: binary "yes" / "no" question "Buy it?"
modes blind
model "llmexp/gemma3-270m" replicates 3
"""


def responses(study, probs_by_cell, with_probs=True):
    from llmexp.compiler import compile_study

    trials = compile_study(study)
    rows = []
    for _, t in trials.iterrows():
        p = probs_by_cell[t["cell"]]
        rows.append(dict(t, valid=True, status="ok", value=p if with_probs else float(t["replicate"] % 2),
                         label="yes", probs=json.dumps({"yes": p, "no": 1 - p}) if with_probs else None,
                         prob_mass=0.3, condition_values=None, raw_text="yes", error=None))
    return pd.DataFrame(rows)


def test_logprob_replicates_count_once_and_are_reported():
    study, _ = check_text(STUDY, "copies.study")
    obs = build_observations(study, responses(study, {"frame=a": 0.7, "frame=b": 0.4}))
    table = obs.outcomes()
    assert len(table) == 2  # one per distinct prompt, not 6
    assert sorted(table["y"]) == [0.4, 0.7]
    assert int(obs.invalid["exact_copies"].sum()) == 4


def test_sampled_answers_keep_every_replicate():
    study, _ = check_text(STUDY, "copies.study")
    obs = build_observations(study, responses(study, {"frame=a": 0.7, "frame=b": 0.4}, with_probs=False))
    assert len(obs.outcomes()) == 6
    assert int(obs.invalid["exact_copies"].sum()) == 0
