"""Answer types through the registry: each type's instruction, parsing, value rules, embedded
model options, synthetic draw and declarations; and a type defined in this file alone."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator

import numpy as np
import pytest

from llmexp import answers
from llmexp.answers import Answer, AnswerType, parse_answer
from llmexp.answers.base import TYPES, invalid, normalize
from llmexp.spec import AnswerSpec

BUILTIN = ("binary", "categorical", "likert", "number", "money", "probability")

BINARY = AnswerSpec(type="binary", labels=("purchase", "not purchase"))
CATEGORICAL = AnswerSpec(type="categorical", labels=("red", "green", "blue"))
LIKERT = AnswerSpec(type="likert", labels=("bad", "ok", "good"), low=1, high=3)
LIKERT7 = AnswerSpec(type="likert", low=1, high=7)
NUMBER = AnswerSpec(type="number", low=0, high=20)
MONEY = AnswerSpec(type="money", low=1, high=100)
PROBABILITY = AnswerSpec(type="probability", low=0, high=1)
SPECS = (BINARY, CATEGORICAL, LIKERT, LIKERT7, NUMBER, MONEY, PROBABILITY)


# ---------------------------------------------------------------- registry


def test_every_builtin_type_is_registered_from_its_own_module():
    assert set(BUILTIN) <= set(answers.names())
    for name in BUILTIN:
        cls = type(answers.get(name))
        assert cls.name == name
        assert cls.__module__ == f"llmexp.answers.{name}"


def test_get_binds_the_spec_given_as_model_or_dict():
    for spec in (LIKERT, LIKERT.model_dump(mode="json")):
        atype = answers.get(spec)
        assert atype.name == "likert" and atype.labels == ("bad", "ok", "good") and (atype.low, atype.high) == (1, 3)
    assert answers.get({"type": "probability", "per_condition": True}).per_condition


def test_unknown_type():
    with pytest.raises(answers.UnknownAnswerType, match="unknown answer type 'ranking'"):
        answers.get("ranking")
    assert answers.find({"type": "ranking"}) is None
    assert parse_answer("1", {"type": "ranking"}).error == "unknown answer type 'ranking'"


def test_declarations_the_analysis_asks():
    get = answers.get
    assert [n for n in BUILTIN if get(n).has_labels] == ["binary", "categorical", "likert"]
    assert [n for n in BUILTIN if get(n).numeric] == ["number", "money", "probability"]
    assert [n for n in BUILTIN if get(n).share] == ["binary", "probability"]
    assert [n for n in BUILTIN if get(n).first_label_share] == ["binary"]
    assert get("binary").effect_methods == ("ols", "logit")
    assert get("likert").effect_methods == ("ols", "ordered")
    assert {get(n).effect_methods for n in ("categorical", "number", "money", "probability")} == {("ols",)}


# ---------------------------------------------------------------- prompts


@pytest.mark.parametrize(
    "spec,instruction",
    [
        (BINARY, 'Answer with exactly one of: "purchase" or "not purchase".'),
        (CATEGORICAL, 'Answer with exactly one of: "red", "green", "blue".'),
        (LIKERT, 'Answer with one whole number from 1 to 3, where 1 = "bad", 2 = "ok", 3 = "good".'),
        (LIKERT7, "Answer with one whole number from 1 to 7."),
        (NUMBER, "Answer with a number between 0 and 20 only."),
        (AnswerSpec(type="number"), "Answer with a number only."),
        (MONEY, "Answer with a dollar amount between 1 and 100 only."),
        (PROBABILITY, "Answer with a percentage from 0% to 100% only."),
    ],
)
def test_instruction(spec, instruction):
    atype = answers.get(spec)
    assert atype.instruction() == instruction
    assert atype.per_condition_instruction() == (
        instruction + ' Write one line per condition, in the order above, starting with its number, in the form "1) ANSWER".'
    )


@pytest.mark.parametrize(
    "spec,answer,ask,example",
    [
        (BINARY, AnswerSpec(type="probability", low=0.0, high=1.0), 'the percentage of respondents who answered "purchase"', "N%"),
        (CATEGORICAL, AnswerSpec(type="probability", low=0.0, high=1.0), 'the percentage of respondents who answered "red"', "N%"),
        (PROBABILITY, PROBABILITY, "the average answer, as a percentage", "N"),
        (LIKERT7, AnswerSpec(type="number", low=1, high=7), "the average answer (answers ranged from 1 to 7)", "N"),
        (AnswerSpec(type="money"), AnswerSpec(type="number"), "the average answer", "N"),
    ],
)
def test_aggregate_form(spec, answer, ask, example):
    agg = answers.get(spec).aggregate()
    assert (agg.answer, agg.ask, agg.example) == (answer, ask, example)
    assert agg.instruction == (
        f"predict {ask}. Write one line per condition, in the order above, starting with its number, "
        f'in the form "1) {example}" where N is your prediction.'
    )


def test_aggregable():
    assert answers.get(BINARY).aggregable() and answers.get(NUMBER).aggregable()
    assert not answers.get(CATEGORICAL).aggregable()
    assert answers.get(AnswerSpec(type="categorical", labels=("a", "b"))).aggregable()


def test_per_condition_lines_round_trip():
    assert answers.condition_line(2, "45%") == "2) 45%"
    assert answers.condition_marker(3) == "3)"
    text = answers.condition_lines(["80%", "60%"])
    assert text == "1) 80%\n2) 60%"
    parts, err = answers.split_conditions(text, 2)
    assert err is None and {k: v.strip() for k, v in parts.items()} == {1: "80%", 2: "60%"}
    spec = {"type": "probability", "per_condition": True}
    assert parse_answer(text, spec, [{"cell": "a"}, {"cell": "b"}]).condition_values == {"a": 0.8, "b": 0.6}


# ---------------------------------------------------------------- parsing and values


@pytest.mark.parametrize(
    "spec,text,value,label",
    [
        (BINARY, "I wouldn't purchase it", 0.0, "not purchase"),
        (BINARY, "Purchase.", 1.0, "purchase"),
        (AnswerSpec(type="binary"), "Yes", 1.0, "yes"),
        (CATEGORICAL, "blue", 2.0, "blue"),
        (LIKERT, "good", 3.0, "good"),
        (LIKERT, "2", 2.0, "ok"),
        (LIKERT7, "6 out of 7", 6.0, None),
        (NUMBER, "about 12", 12.0, None),
        (MONEY, "$3-4", 3.5, None),
        (PROBABILITY, "3 in 10", 0.3, None),
        (PROBABILITY, "45", 0.45, None),
    ],
)
def test_parse_through_the_registry(spec, text, value, label):
    ans = answers.get(spec).parse(text)
    assert ans == Answer(True, value, label)
    assert parse_answer(text, spec) == ans


@pytest.mark.parametrize(
    "spec,text,fragment",
    [
        (BINARY, "purchase or not purchase", "ambiguous"),
        (CATEGORICAL, "purple", "none of the labels"),
        (LIKERT7, "9", "no whole number"),
        (NUMBER, "25", "outside"),
        (PROBABILITY, "150%", "outside"),
    ],
)
def test_parse_invalid(spec, text, fragment):
    ans = answers.get(spec).parse(text)
    assert not ans.valid and fragment in ans.error


def test_per_condition_part_reads_the_last_number():
    assert answers.get(NUMBER).parse("at $2: 7", last=True).value == 7.0
    assert answers.get(PROBABILITY).parse("at 40%: 45%", last=True).value == 0.45


def test_label_values():
    assert [answers.get(BINARY).label_value(i) for i in (0, 1)] == [1.0, 0.0]
    assert [answers.get(CATEGORICAL).label_value(i) for i in (0, 1, 2)] == [0.0, 1.0, 2.0]
    assert [answers.get(LIKERT).label_value(i) for i in (0, 1, 2)] == [1.0, 2.0, 3.0]
    spread = answers.get(AnswerSpec(type="likert", low=1, high=5, labels=("low", "high")))
    assert [spread.label_value(i) for i in (0, 1)] == [1.0, 5.0]


def test_values_from_label_probabilities():
    probs = {"purchase": 0.5, "not purchase": 0.5 / 3}
    binary = answers.get(BINARY)
    assert binary.with_probs(binary.parse("purchase"), probs) == Answer(True, 0.75, "purchase")
    assert binary.with_probs(binary.parse("hmm"), probs) == Answer(True, 0.75, "purchase")
    cat = answers.get(CATEGORICAL)
    assert cat.with_probs(cat.parse("??"), {"red": 0.1, "blue": 0.5}) == Answer(True, 2.0, "blue")
    assert cat.with_probs(cat.parse("red"), {"red": 0.1, "blue": 0.5}) == Answer(True, 0.0, "red")
    likert = answers.get(AnswerSpec(type="likert", labels=("bad", "ok", "good"), low=3, high=5))
    assert likert.with_probs(likert.parse("meh"), {"ok": 0.6, "bad": 0.2}) == Answer(True, 4.0, "ok")
    unsettled = binary.parse("hmm")
    assert binary.with_probs(unsettled, {"purchase": 0.0}) is unsettled  # no probability mass: unchanged
    per_condition = answers.get(dict(BINARY.model_dump(), per_condition=True))
    assert per_condition.with_probs(unsettled, probs) is unsettled
    number = answers.get(NUMBER)
    assert number.with_probs(number.parse("3"), {"3": 1.0}) == Answer(True, 3.0)


# ---------------------------------------------------------------- the embedded model


def test_embedded_model_options():
    assert answers.get(BINARY).options() == [("purchase", "purchase"), ("not purchase", "not purchase")]
    assert answers.get(AnswerSpec(type="binary")).options() == [("Yes", "Yes"), ("No", "No")]
    assert answers.get(LIKERT).options() == [("bad", "1"), ("ok", "2"), ("good", "3")]
    assert answers.get(AnswerSpec(type="likert", low=1, high=3)).options() == [("1", "1"), ("2", "2"), ("3", "3")]
    assert answers.get(CATEGORICAL).options() == [("red", "red"), ("green", "green"), ("blue", "blue")]
    for spec in (NUMBER, MONEY, PROBABILITY):
        assert answers.get(spec).options() == []


def test_number_grammar():
    assert answers.get(BINARY).number_form() is None
    number = answers.get(AnswerSpec(type="number", low=-5, high=5)).number_form()
    assert (number.dollar, number.minus, number.percent, number.high, number.space_given) == (False, True, False, 5, True)
    assert not answers.get(NUMBER).number_form().minus
    money = answers.get(MONEY).number_form()
    assert (money.dollar, money.minus, money.percent, money.space_given) == (True, False, False, False)
    prob = answers.get(PROBABILITY).number_form()
    assert (prob.dollar, prob.minus, prob.percent, prob.low, prob.high) == (False, False, True, 0.0, 100.0)


# ---------------------------------------------------------------- the synthetic respondent


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.type)
def test_synthetic_answers_parse_back(spec):
    atype = answers.get(spec)
    rng = random.Random(3)
    for p in (0.0, 0.2, 0.5, 0.9, 1.0):
        text, probs = atype.synthetic_answer(p, rng, noise=0.05)
        ans = atype.parse(text)
        assert ans.valid, (text, ans.error)
        assert probs is None


def test_synthetic_answer_rules():
    rng = random.Random(0)
    assert answers.get(BINARY).synthetic_answer(0.42, rng, aggregate=True) == ("42%", None)
    text, probs = answers.get(BINARY).synthetic_answer(1.0, rng, with_probs=True)
    assert text == "purchase" and probs == {"purchase": 1.0, "not purchase": 0.0}
    assert answers.get(PROBABILITY).synthetic_answer(0.25, rng) == ("25.0%", None)
    assert answers.get(LIKERT7).synthetic_answer(1.0, rng) == ("7", None)
    assert answers.get(NUMBER).synthetic_answer(0.5, rng) == ("10", None)
    assert answers.get(MONEY).synthetic_answer(1.0, rng) == ("$100.00", None)
    unranged = answers.get(AnswerSpec(type="money"))
    assert unranged.synthetic_answer(0.5, rng, probe=lambda: 12.345) == ("$12.35", None)
    with pytest.raises(ValueError):
        unranged.synthetic_answer(0.5, rng)


def test_synthetic_values_vectorised():
    p = np.array([[0.0], [0.5], [1.0]])
    ev = np.array([[4.0], [5.0], [6.0]])
    rng = np.random.default_rng(0)
    binary = answers.get(BINARY).synthetic_values(p, rng, 4)
    assert binary.shape == (3, 4) and set(np.unique(binary)) <= {0.0, 1.0}
    assert (binary[2] == 1.0).all() and (binary[0] == 0.0).all()
    likert = answers.get(LIKERT7).synthetic_values(p, rng, 4)
    assert (likert[0] == 1).all() and (likert[2] == 7).all()
    probe = answers.get(AnswerSpec(type="number")).synthetic_values(p, rng, 2, probe_ev=ev)
    assert (probe == ev).all()
    expected = answers.get(LIKERT7).expected_value(p[:, 0], ev[:, 0])
    assert expected.tolist() == [1.0, 4.0, 7.0]
    assert answers.get(NUMBER).expected_value(p[:, 0], ev[:, 0], is_probe=True).tolist() == [4.0, 5.0, 6.0]


# ---------------------------------------------------------------- a new type in this file alone


@pytest.fixture
def weeks_type() -> Iterator[type[AnswerType]]:
    """A duration answer in days ("2 weeks" -> 14), registered for one test only."""

    @answers.register
    class Days(AnswerType):
        name = "days_test_only"
        numeric = True

        def instruction(self) -> str:
            return "Answer with a number of days or weeks only."

        def parse(self, text: str, last: bool = False) -> Answer:
            found = re.findall(r"(\d+)\s*(day|week)", normalize(text))
            if not found:
                return invalid("no duration in answer")
            count, unit = found[-1] if last else found[0]
            return Answer(True, float(count) * (7 if unit == "week" else 1))

        def synthetic_answer(self, p, rng, **_) -> tuple[str, dict | None]:
            return f"{round(p * 10)} weeks", None

    try:
        yield Days
    finally:
        TYPES.pop(Days.name, None)


def test_a_type_defined_in_a_test_is_found_and_parses(weeks_type):
    assert "days_test_only" in answers.names()
    atype = answers.get({"type": "days_test_only"})
    assert isinstance(atype, weeks_type)
    assert parse_answer("About 2 weeks.", {"type": "days_test_only"}) == Answer(True, 14.0)
    assert not parse_answer("soon", AnswerSpec(type="days_test_only")).valid
    conds = [{"cell": "a"}, {"cell": "b"}]
    text = answers.condition_lines([atype.synthetic_answer(p, random.Random(0))[0] for p in (0.1, 0.3)])
    assert parse_answer(text, {"type": "days_test_only", "per_condition": True}, conds).condition_values == {"a": 7.0, "b": 21.0}
    assert atype.per_condition_instruction().startswith("Answer with a number of days or weeks only. Write one line")
    assert atype.aggregate().ask == "the average answer"
