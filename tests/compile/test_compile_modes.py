"""Smaller rendering rules of the compiler, on inline studies."""

from __future__ import annotations

import json

import pytest

from llmexp import check_text
from llmexp.compiler import compile_study

BASE = '''study "m" seed 2
units items
  row id = "a", name = "Tea", price = 2
  row id = "b", name = "Jam", price = 3.5
  columns price: money
treatment x = items.price * levels(1, 2)
context "You see {name} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
'''


def compiled(text: str, **kwargs):
    study, _ = check_text(text, "m.study")
    return compile_study(study, **kwargs)


def user(row) -> str:
    return json.loads(row["messages"])[-1]["content"]


@pytest.mark.parametrize(
    "answer, instruction",
    [
        ('binary "yes" / "no"', 'Answer with exactly one of: "yes" or "no".'),
        ('categorical "tea", "jam", "none"', 'Answer with exactly one of: "tea", "jam", "none".'),
        ("likert 1 to 5", "Answer with one whole number from 1 to 5."),
        ('likert 1 to 3 labels "low", "mid", "high"', 'Answer with one whole number from 1 to 3, where 1 = "low", 2 = "mid", 3 = "high".'),
        ("number 0 to 20", "Answer with a number between 0 and 20 only."),
        ("number", "Answer with a number only."),
        ("money", "Answer with a dollar amount only."),
        ("probability", "Answer with a percentage from 0% to 100% only."),
    ],
)
def test_answer_instructions(answer, instruction):
    trials = compiled(BASE.replace('binary "yes" / "no"', answer))
    assert user(trials.iloc[0]).endswith(instruction)
    assert json.loads(trials.iloc[0]["answer"])["type"] == ("probability" if answer == "probability" else answer.split()[0])


def test_money_and_inline_columns_render_as_dollars():
    trials = compiled(BASE)
    assert [user(r).split("\n\n")[0] for _, r in trials.iterrows()] == [
        "You see Tea for $2.00.", "You see Tea for $4.00.", "You see Jam for $3.50.", "You see Jam for $7.00.",
    ]
    assert json.loads(trials.iloc[0]["unit"]) == {"id": "a", "name": "Tea", "price": 2.0}


def test_two_treatments_full_factorial_and_listed_cells():
    text = BASE.replace('"You see {name} for {x}."', '"You see {name} for {x} at {shop}."').replace(
        "context", 'treatment shop = levels("a kiosk", "a market")\ncontext'
    )
    full = compiled(text)
    assert sorted(set(full["cell"])) == ["x=1,shop=a kiosk", "x=1,shop=a market", "x=2,shop=a kiosk", "x=2,shop=a market"]
    listed = compiled(text + 'cell x = 1, shop = "a kiosk"\ncell x = 2, shop = "a market"\n')
    assert sorted(set(listed["cell"])) == ["x=1,shop=a kiosk", "x=2,shop=a market"]
    within = compiled(text + "modes within\n")
    prompt = user(within.iloc[0])
    assert "one of 4 conditions: (1) x $2.00, shop a kiosk; (2) x $2.00, shop a market;" in prompt
    assert "Each respondent saw only their own x and shop." in prompt


def test_aggregate_of_a_numeric_outcome_asks_for_the_average():
    trials = compiled(BASE.replace('binary "yes" / "no"', "number 0 to 10") + "modes aggregate\n")
    prompt = user(trials.iloc[0])
    assert "predict the average answer (answers ranged from 0 to 10)" in prompt
    assert json.loads(trials.iloc[0]["answer"]) == {
        "type": "number", "labels": [], "low": 0.0, "high": 10.0, "per_condition": True,
        "of": {"type": "number", "labels": [], "low": 0.0, "high": 10.0},
    }


def test_aggregate_of_a_binary_outcome_asks_for_the_share_of_the_first_label():
    trials = compiled(BASE + "modes aggregate\n")
    prompt = user(trials.iloc[0])
    assert 'predict the percentage of respondents who answered "yes"' in prompt
    assert json.loads(trials.iloc[0]["answer"])["type"] == "probability"


def test_specified_covariate_from_a_treatment_is_a_placeholder_in_multi_condition_prompts():
    # regression: this raised KeyError('treatment.x') in within/aggregate designs
    text = BASE + 'specified deposit = x / 10\n  text "A deposit of {deposit} is added."\nmodes blind, within, aggregate\n'
    trials = compiled(text)
    blind = user(trials[trials["design"] == "blind"].iloc[0])
    assert "A deposit of $0.20 is added." in blind  # money / number stays money
    for design in ("within", "aggregate"):
        assert "A deposit of [deposit] is added." in user(trials[trials["design"] == design].iloc[0])


def test_specified_covariate_is_stated_in_every_mode():
    text = BASE + 'specified regular = items.price\n  text "Usually {regular}."\nmodes blind, unblinded, within, aggregate\n'
    trials = compiled(text)
    for _, row in trials.iterrows():
        unit = json.loads(row["unit"])
        assert f"Usually ${unit['price']:.2f}." in user(row)


def test_persona_in_unblinded_and_within_is_quoted_as_the_respondent():
    text = BASE + '''persona p
  count 2
  age: uniform 20 to 30 integer
  describe "I am {age}."
design u: unblinded with persona p
design w: within with persona p
'''
    trials = compiled(text, designs=["u", "w"])
    assert len(trials[trials["design"] == "u"]) == 2 * 2 * 2
    assert len(trials[trials["design"] == "w"]) == 2 * 2
    for _, row in trials.iterrows():
        age = json.loads(row["persona"])["age"]
        assert 20 <= age <= 30
        assert f'described to themselves as follows: "I am {age}."' in user(row)


def test_within_subject_treatment_shares_persona_draws():
    text = BASE.replace("levels(1, 2)", "levels(1, 2) within") + '''persona p
  count 1
  age: uniform 20 to 90 integer
design d: blind with persona p
'''
    trials = compiled(text, designs=["d"])
    per_unit = trials.groupby("unit_id")["persona_id"].nunique()
    assert set(per_unit) == {1}  # both levels of x seen by the same simulated person


def test_persona_without_describe_lists_attributes():
    text = BASE + 'persona p\n  home_town: "Bergen"\n  age: 40\ndesign d: blind with persona p\n'
    trials = compiled(text, designs=["d"])
    assert user(trials.iloc[0]).startswith("About you: home town: Bergen; age: 40.\n\n")


def test_unknown_design_is_a_clean_error():
    from llmexp.errors import LlmexpError

    study, _ = check_text(BASE, "m.study")
    with pytest.raises(LlmexpError, match="no design named 'nope'; the study has: blind"):
        compile_study(study, designs=["nope"])


def test_literal_braces_render_single():
    trials = compiled(BASE.replace("Do you buy it?", "Do you buy it {{now}}?"))
    assert "Do you buy it {now}?" in user(trials.iloc[0])


@pytest.mark.parametrize("name", ["asian_disease", "sunk_cost", "discount_deadline"])
def test_new_studies_compile(name):
    from pathlib import Path

    from llmexp import check as check_study

    study, warnings = check_study(Path(__file__).resolve().parents[2] / "studies" / f"{name}.study")
    trials = compile_study(study)
    assert trials["trial_id"].is_unique and len(trials) > 0
    blind = trials[trials["mode"] == "blind"]
    for _, row in blind.iterrows():
        assert "random" not in row["messages"].lower()


def test_unblinded_quotes_text_levels():
    """Text levels that are whole sentences are quoted in the randomization statement, so
    their own commas and periods do not run together ("... $125., ..." or "..").
    """
    text = '''study "t" seed 1
units s
  row id = "x"
treatment frame = levels("You pay $15 now.", "You pay $125, later.")
context "{frame}"
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
modes unblinded
'''
    trials = compiled(text)
    body = user(trials.iloc[0])
    assert 'from these 2 values: "You pay $15 now.", "You pay $125, later.".' in body
    assert ".." not in body
