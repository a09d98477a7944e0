"""`sequence` and `check`: their syntax, every error at its line and column, and the
trials they compile to (exact prompts of each step)."""

from __future__ import annotations

import json

import pytest

from llmexp import check_text
from llmexp.compiler import compile_study
from llmexp.errors import StudyError

STUDY = """study "anchoring" seed 5
units items
  row item = "everest", thing = "Mount Everest"
  key item
treatment anchor = levels(2000, 12000)
context "Think about {thing}."
outcome higher: binary "higher" / "lower"
  question "Is it higher or lower than {anchor} metres?"
outcome estimate: number 0 to 20000
  question "How high is it, in metres?"
check attention: categorical "red", "blue"
  question "To show you are reading, answer blue."
  expect "blue"
sequence anchoring: higher, estimate, attention
modes blind, unblinded, within
"""


def errors(text: str) -> list:
    with pytest.raises(StudyError) as info:
        check_text(text, "t.study")
    return [p for p in info.value.problems if p.severity == "error"]


def one_error(text: str):
    found = errors(text)
    assert len(found) == 1, [str(e) for e in found]
    return found[0]


def test_a_sequence_and_a_check_are_read_into_the_study():
    study, _ = check_text(STUDY, "t.study")
    assert [(q.name, q.steps) for q in study.sequences] == [("anchoring", ("higher", "estimate", "attention"))]
    assert [(c.name, c.answer.labels, c.expect) for c in study.checks] == [("attention", ("red", "blue"), "blue")]
    assert study.sequence_of("estimate").name == "anchoring"
    assert study.sequence_of("nothing") is None


def test_a_study_without_sequences_keeps_its_hash():
    """The two new fields are left out of the canonical JSON at their default."""
    plain = STUDY.replace("sequence anchoring: higher, estimate, attention\n", "").replace(
        'check attention: categorical "red", "blue"\n  question "To show you are reading, answer blue."\n  expect "blue"\n', ""
    )
    study, _ = check_text(plain, "t.study")
    assert "sequences" not in study.to_json() and "checks" not in study.to_json()


ERRORS = [
    # (id, text, line, column, exact message, hint)
    (
        "unknown step",
        STUDY.replace("higher, estimate, attention", "higher, estimat, attention"),
        14,
        29,
        "sequence 'anchoring': 'estimat' is not an outcome or a check",
        "did you mean 'estimate'?",
    ),
    (
        "step asked twice",
        STUDY.replace("higher, estimate, attention", "higher, estimate, higher, attention"),
        14,
        39,
        "sequence 'anchoring': 'higher' is already asked in sequence 'anchoring'",
        None,
    ),
    (
        "step in two sequences",
        STUDY.replace("higher, estimate, attention", "higher, attention") + "sequence again: estimate, higher\n",
        16,
        27,
        "sequence 'again': 'higher' is already asked in sequence 'anchoring'",
        None,
    ),
    (
        "sequence of one",
        STUDY.replace("higher, estimate, attention", "attention"),
        14,
        1,
        "sequence 'anchoring' asks one question; a sequence needs at least two",
        None,
    ),
    ("sequence declared twice", STUDY + "sequence anchoring: higher, estimate\n", 16, 1, "sequence 'anchoring' is declared twice", None),
    (
        "expect not an option",
        STUDY.replace('expect "blue"', 'expect "green"'),
        13,
        10,
        'check \'attention\': expect "green" is not one of its options ("red", "blue")',
        None,
    ),
    (
        "check outside every sequence",
        STUDY.replace(", attention\n", "\n"),
        11,
        1,
        "check 'attention' is not asked in any sequence",
        "list it in a sequence with the outcomes it checks, e.g. `sequence main: ..., attention`",
    ),
    (
        "check named like an outcome",
        STUDY.replace("check attention:", "check estimate:").replace(", attention\n", "\n"),
        11,
        1,
        "'estimate' is already defined as an outcome at line 9",
        None,
    ),
]


@pytest.mark.parametrize("case", ERRORS, ids=[c[0] for c in ERRORS])
def test_sequence_and_check_errors_are_located(case):
    _, text, line, column, message, hint = case
    problem = one_error(text)
    assert (problem.line, problem.column) == (line, column), str(problem)
    assert problem.message == message
    assert problem.hint == hint


def test_a_check_without_options_names_the_problem():
    text = STUDY.replace('check attention: categorical "red", "blue"', "check attention: number 0 to 10").replace('expect "blue"', 'expect "7"')
    problem = one_error(text)
    assert (problem.line, problem.column) == (13, 10)
    assert problem.message == "check 'attention': expect \"7\" is not one of its options (none: give it labelled options)"


def test_a_sequence_keyword_typo_is_a_syntax_error():
    problem = one_error(STUDY.replace("sequence anchoring:", "sequence anchoring"))
    assert (problem.line, problem.column) == (14, 20)


# ------------------------------------------------------------------ compiled trials


@pytest.fixture(scope="module")
def trials():
    study, _ = check_text(STUDY, "t.study")
    return compile_study(study)


def _steps(trials, design: str, cell: str) -> list[dict]:
    rows = trials[(trials.design == design) & (trials.cell == cell)].to_dict("records")
    by_id = {r["trial_id"]: r for r in rows}
    first = [r for r in rows if not r["follows"] or r["follows"] != r["follows"]]
    assert len(first) == 1
    chain = first
    while True:
        nxt = [r for r in rows if r["follows"] == chain[-1]["trial_id"]]
        if not nxt:
            break
        chain += nxt
    assert len(chain) == len(by_id) == 3
    return chain


def test_blind_sequence_steps_golden(trials):
    chain = _steps(trials, "blind", "anchor=12000")
    assert [(r["kind"], r["target"]) for r in chain] == [("outcome", "higher"), ("outcome", "estimate"), ("check", "attention")]
    assert [json.loads(r["messages"]) for r in chain] == [
        [
            {"role": "system", "content": "Imagine you are the person in the situation below. Answer as that person would, in their own voice."},
            {
                "role": "user",
                "content": 'Think about Mount Everest.\n\nIs it higher or lower than 12,000 metres?\n\nAnswer with exactly one of: "higher" or "lower".',  # noqa: E501
            },
        ],
        [{"role": "user", "content": "How high is it, in metres?\n\nAnswer with a number between 0 and 20000 only."}],
        [{"role": "user", "content": 'To show you are reading, answer blue.\n\nAnswer with exactly one of: "red", "blue".'}],
    ]
    assert json.loads(chain[2]["answer"]) == {"type": "categorical", "labels": ["red", "blue"], "low": None, "high": None, "expect": "blue"}


def test_unblinded_sequence_later_steps_golden(trials):
    chain = _steps(trials, "unblinded", "anchor=2000")
    assert json.loads(chain[1]["messages"]) == [
        {"role": "user", "content": (
            "The next question they answered: How high is it, in metres?\n\n"
            "Predict this respondent's answer. Answer with a number between 0 and 20000 only.")},
    ]  # fmt: skip


def test_each_step_is_its_own_trial_with_a_distinct_id(trials):
    blind = trials[trials.design == "blind"]
    assert len(blind) == 2 * 3  # two cells x three steps
    assert blind.trial_id.is_unique and blind.cache_key.is_unique


def test_a_per_condition_mode_asks_the_outcomes_alone_and_no_checks(trials):
    within = trials[trials.design == "within"]
    assert sorted(within.target) == ["estimate", "higher"]
    assert within.follows.isna().all()
