"""Table-driven tests of llmexp.answers.parse_answer, valid and invalid answers of every type."""

from __future__ import annotations

import pytest

from llmexp.answers import parse_answer
from llmexp.spec import AnswerSpec

YES_NO = {"type": "binary", "labels": ["yes", "no"]}
PURCHASE = {"type": "binary", "labels": ["purchase", "not purchase"]}
COLORS = {"type": "categorical", "labels": ["red", "green", "dark green", "blue"]}
LIKERT7 = {"type": "likert", "low": 1, "high": 7}
LIKERT5L = {"type": "likert", "low": 1, "high": 5, "labels": ["very unlikely", "unlikely", "neutral", "likely", "very likely"]}
MONEY = {"type": "money", "low": 0, "high": 100}
NUMBER = {"type": "number", "low": -10, "high": 3650}
PROB = {"type": "probability"}

VALID = [
    # (answer spec, text, value, label)
    (YES_NO, "Yes", 1.0, "yes"),
    (YES_NO, "no.", 0.0, "no"),
    (YES_NO, "'YES'", 1.0, "yes"),
    (YES_NO, "**Answer:** no", 0.0, "no"),
    (YES_NO, "Yes, no doubt about it", 1.0, "yes"),
    (YES_NO, "No. I would say yes only if it were cheaper.", 0.0, "no"),
    (YES_NO, "<think>yes or no? hmm</think> No", 0.0, "no"),
    (PURCHASE, "Purchase", 1.0, "purchase"),
    (PURCHASE, "I would not purchase it.", 0.0, "not purchase"),
    (PURCHASE, "I wouldn’t purchase this", 0.0, "not purchase"),
    (PURCHASE, "NOT PURCHASE", 0.0, "not purchase"),
    (PURCHASE, "I think I would purchase it.", 1.0, "purchase"),
    (COLORS, "Green", 1.0, "green"),
    (COLORS, "I pick dark green!", 2.0, "dark green"),
    (COLORS, "blue", 3.0, "blue"),
    (LIKERT7, "5", 5.0, None),
    (LIKERT7, "On a scale of 1 to 7, I'd say 6.", 6.0, None),
    (LIKERT7, "4/7", 4.0, None),
    (LIKERT7, "3 out of 7", 3.0, None),
    (LIKERT5L, "Likely", 4.0, "likely"),
    (LIKERT5L, "very unlikely", 1.0, "very unlikely"),
    (LIKERT5L, "2", 2.0, "unlikely"),
    (MONEY, "$12.50", 12.5, None),
    (MONEY, "About 15 dollars.", 15.0, None),
    (MONEY, "$3-4", 3.5, None),
    (MONEY, "I'd pay $0.99 at most", 0.99, None),
    (NUMBER, "1,200 days", 1200.0, None),
    (NUMBER, "-5", -5.0, None),
    (PROB, "85%", 0.85, None),
    (PROB, "0.85", 0.85, None),
    (PROB, "85", 0.85, None),
    (PROB, "I'd say 40 percent.", 0.40, None),
    (PROB, "3 in 10", 0.3, None),
    (PROB, "1", 1.0, None),
    (PROB, "0%", 0.0, None),
    (PROB, "50-60%", 0.55, None),
    (PROB, "between 20% and 30%", 0.25, None),
    (MONEY, "between $3 and $5", 4.0, None),
]

INVALID = [
    (YES_NO, "", "empty"),
    (YES_NO, "Maybe", "none of the labels"),
    (YES_NO, "Nope", "none of the labels"),
    (YES_NO, "I say no but also yes", "ambiguous"),
    (PURCHASE, "purchase or not purchase", "ambiguous"),
    (COLORS, "red and blue", "ambiguous"),
    (COLORS, "purple", "none of the labels"),
    (LIKERT7, "8", "no whole number"),
    (LIKERT7, "4.5", "no whole number"),
    (LIKERT7, "somewhat", "no scale point"),
    (LIKERT5L, "kind of", "none of the labels"),
    (MONEY, "1,200", "outside"),
    (MONEY, "-5", "outside"),
    (MONEY, "no idea", "no number"),
    (PROB, "150%", "outside"),
    (PROB, "likely", "no number"),
    (PROB, "250", "outside"),
]


@pytest.mark.parametrize("spec,text,value,label", VALID)
def test_valid_answers(spec, text, value, label):
    ans = parse_answer(text, spec)
    assert ans.valid, (text, ans.error)
    assert ans.value == pytest.approx(value)
    assert ans.label == label
    assert ans.error is None


@pytest.mark.parametrize("spec,text,fragment", INVALID)
def test_invalid_answers(spec, text, fragment):
    ans = parse_answer(text, spec)
    assert not ans.valid
    assert ans.value is None
    assert fragment in ans.error


def test_accepts_pydantic_answer_spec():
    spec = AnswerSpec(type="binary", labels=("Buy", "Skip"))
    assert parse_answer("skip", spec).value == 0.0
    assert parse_answer("I'll buy", spec).value == 1.0


CONDS = [{"cell": "price=0"}, {"cell": "price=0.5"}, {"cell": "price=1"}]
PER_PROB = {"type": "probability", "per_condition": True}
PER_BIN = {"type": "binary", "labels": ["yes", "no"], "per_condition": True}

PER_VALID = [
    (PER_PROB, "1) 80%\n2) 60%\n3) 30%", {"price=0": 0.8, "price=0.5": 0.6, "price=1": 0.3}),
    (PER_PROB, "1) at $0.40: 80% 2) at $0.80: 60% 3) (at $1.20) 30%", {"price=0": 0.8, "price=0.5": 0.6, "price=1": 0.3}),
    (PER_PROB, "Here are my estimates:\n1. 0.8\n2. 0.6\n3. 0.3", {"price=0": 0.8, "price=0.5": 0.6, "price=1": 0.3}),
    (PER_BIN, "1) yes\n2) No.\n3) no", {"price=0": 1.0, "price=0.5": 0.0, "price=1": 0.0}),
]

PER_INVALID = [
    (PER_PROB, "1) 80%\n2) 60%", "condition(s) 3"),
    (PER_PROB, "1) 80% 2) 60% 2) 50% 3) 10%", "more than once"),
    (PER_PROB, "80%, 60%, 30%", "no numbered"),
    (PER_PROB, "1) 80%\n2) lots\n3) 30%", "condition 2"),
    (PER_BIN, "1) yes\n2) maybe\n3) no", "condition 2"),
]


@pytest.mark.parametrize("spec,text,expected", PER_VALID)
def test_per_condition_valid(spec, text, expected):
    ans = parse_answer(text, spec, CONDS)
    assert ans.valid, ans.error
    assert ans.condition_values == pytest.approx(expected)
    assert list(ans.condition_values) == [c["cell"] for c in CONDS]


@pytest.mark.parametrize("spec,text,fragment", PER_INVALID)
def test_per_condition_invalid(spec, text, fragment):
    ans = parse_answer(text, spec, CONDS)
    assert not ans.valid
    assert ans.condition_values is None
    assert fragment in ans.error
