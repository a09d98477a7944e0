"""The trial count is known before rendering, huge designs are refused, and the Python
verbs `llmexp.compiler` / `llmexp.runner` stay callable after their subpackages load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import llmexp
from llmexp import check_text
from llmexp.compiler import MAX_TRIALS, compile_study, count_trials
from llmexp.errors import LlmexpError

STUDIES = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.study"))


@pytest.mark.parametrize("path", STUDIES, ids=lambda p: p.stem)
def test_count_matches_the_compiled_table(path):
    study = llmexp.load(path)
    trials = compile_study(study)
    assert count_trials(study) == len(trials)
    for design in study.designs:
        assert count_trials(study, designs=[design.name]) == int((trials["design"] == design.name).sum())


STUDY = """
study "tiny" seed 1
units items
  row name = "tea"
  row name = "cake"
treatment price = levels(1, 2, 3)
context "You see {name} for {price}."
outcome buy: binary "yes" / "no" question "Buy it?"
modes blind, unblinded
model "synthetic/x" replicates REPLICATES
"""


def test_an_absurd_trial_count_is_refused_before_rendering():
    study, _ = check_text(STUDY.replace("REPLICATES", "100000000"), "tiny.study")
    assert count_trials(study) == 2 * 3 * 2 * 100_000_000
    with pytest.raises(LlmexpError, match="more than"):
        compile_study(study)
    assert count_trials(study) > MAX_TRIALS


def test_within_subject_factor_is_described_as_seen_by_everyone():
    text = STUDY.replace("REPLICATES", "1").replace("levels(1, 2, 3)", "levels(1, 2, 3) within")
    study, _ = check_text(text, "tiny.study")
    trials = compile_study(study, designs=["unblinded"])
    prompt = json.loads(trials["messages"].iloc[0])[1]["content"]
    assert "answered once for every price" in prompt
    assert "saw only their own" not in prompt
    between, _ = check_text(STUDY.replace("REPLICATES", "1"), "tiny.study")
    prompt = json.loads(compile_study(between, designs=["unblinded"])["messages"].iloc[0])[1]["content"]
    assert "saw only their own price" in prompt


def test_python_verbs_stay_functions_after_every_subpackage_import():
    import llmexp.compiler  # noqa: F401 - packages are nouns, so no import can shadow a verb
    import llmexp.runner  # noqa: F401

    study, _ = check_text(STUDY.replace("REPLICATES", "1"), "tiny.study")
    assert callable(llmexp.compile) and callable(llmexp.run)
    assert len(llmexp.compile(study)) == 12
