"""Sequential within-subject exposure (`design X: within sequential`): one respondent sees
every condition in turn in one conversation, in a seeded random order recorded per trial;
the analysis can use every exposure or only the first."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from llmexp import check_text
from llmexp.analysis.exposure import select_exposures
from llmexp.compiler import compile_study
from llmexp.errors import AnalysisError, StudyError

STUDY = """study "framing" seed 4
units items
  row item = "a", thing = "a jacket"
treatment price = levels(10, 20, 40)
context "You see {thing} for ${price}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
design seq: within sequential
model "synthetic/r" replicates 4
"""


@pytest.fixture(scope="module")
def trials():
    study, _ = check_text(STUDY, "t.study")
    return compile_study(study)


def _chain(trials: pd.DataFrame, replicate: int) -> list[dict]:
    rows = trials[trials.replicate == replicate].to_dict("records")
    chain = [r for r in rows if not isinstance(r["follows"], str)]
    while nxt := [r for r in rows if r["follows"] == chain[-1]["trial_id"]]:
        chain += nxt
    assert len(chain) == len(rows) == 3
    return chain


def test_within_sequential_and_sequential_are_the_same_design():
    a, _ = check_text(STUDY, "t.study")
    b, _ = check_text(STUDY.replace("within sequential", "sequential"), "t.study")
    assert a.designs == b.designs and a.designs[0].mode == "sequential"


def test_a_respondent_sees_every_condition_in_one_conversation_golden(trials):
    chain = _chain(trials, 0)
    assert [r["cell"] for r in chain] == ["price=40", "price=20", "price=10"]
    assert [r["exposure"] for r in chain] == [0, 1, 2]
    assert [json.loads(r["messages"]) for r in chain] == [
        [
            {"role": "system", "content": "Imagine you are the person in the situation below. Answer as that person would, in their own voice."},
            {"role": "user", "content": 'You see a jacket for $40.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".'},
        ],
        [{"role": "user", "content": 'Now imagine the situation is different.\n\nYou see a jacket for $20.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".'}],  # noqa: E501
        [{"role": "user", "content": 'Now imagine the situation is different.\n\nYou see a jacket for $10.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".'}],  # noqa: E501
    ]  # fmt: skip


def test_the_order_is_seeded_per_respondent_and_recorded(trials):
    orders = []
    for replicate in range(4):
        chain = _chain(trials, replicate)
        seed = chain[0]["order_seed"]
        assert all(r["order_seed"] == seed for r in chain)
        levels = [10, 20, 40]
        expected = [f"price={levels[i]}" for i in np.random.default_rng(seed).permutation(3)]
        assert [r["cell"] for r in chain] == expected  # the recorded seed reproduces the order
        orders.append(tuple(expected))
    assert len(set(orders)) > 1  # respondents differ
    again, _ = check_text(STUDY, "t.study")
    assert compile_study(again).trial_id.tolist() == trials.trial_id.tolist()  # deterministic


def test_a_mode_that_cannot_be_sequential_is_an_error_at_the_clause():
    with pytest.raises(StudyError) as info:
        check_text(STUDY.replace("within sequential", "blind sequential"), "t.study")
    problem = next(p for p in info.value.problems if p.severity == "error")
    assert (problem.line, problem.column) == (8, 19)
    assert problem.message == "design 'seq': blind mode cannot be sequential (modes that can: sequential, within)"


def test_sequential_said_twice_means_the_same():
    twice, _ = check_text(STUDY.replace("within sequential", "within sequential sequential"), "t.study")
    once, _ = check_text(STUDY, "t.study")
    assert twice == once


def test_first_exposure_keeps_each_respondents_first_condition_and_other_designs():
    responses = pd.DataFrame({"trial_id": list("abcdef"), "exposure": [0, 1, 2, 0, None, None]})
    kept, note = select_exposures(responses, "first")
    assert kept.trial_id.tolist() == ["a", "d", "e", "f"]
    assert note == "sequential designs: only each respondent's first exposure analysed (2 of 4 answers)"
    assert select_exposures(responses, "all") == (responses, None)
    with pytest.raises(AnalysisError, match="exposures must be one of all, first, not 'last'"):
        select_exposures(responses, "last")


def test_a_sequential_design_runs_and_analyses_both_ways(tmp_path):
    from llmexp.analysis import analyze
    from llmexp.runner import run_study

    study, _ = check_text(STUDY.replace("replicates 4", "replicates 12"), "t.study")
    responses = run_study(study, run_dir=tmp_path / "run", progress=False).to_pandas()
    assert len(responses) == 36 and set(responses.status) == {"ok"}
    first = analyze(study, responses, requested=["effects"], figures=False, n_boot=20, exposures="first")
    assert first.summary_data["n_responses"] == 12  # one answer per respondent: their first condition
    assert "sequential designs: only each respondent's first exposure analysed (12 of 36 answers)" in first.notes
