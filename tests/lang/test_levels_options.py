"""Level labels, levels read from unit columns, treatment descriptions, condition-specific
answer options and template fields in literal texts (issue 11): each construct with the exact
prompt it renders, each error with its exact message, line and column."""

from __future__ import annotations

import json

import pytest
from langhelp import errors_of, only_error

from llmexp import answers, check_text
from llmexp.answers import parse_answer
from llmexp.compiler import iter_trials

# ---------------------------------------------------------------- helpers


def load(text: str):
    study, warnings = check_text(text, "t.study")
    return study, warnings


def prompts(study) -> dict[tuple[str, str | None, str], list[str]]:
    """(design, cell, unit) -> the contents of the messages of the outcome trial."""
    found = {}
    for trial in iter_trials(study):
        found[(trial["design"], trial["cell"], trial["unit_id"])] = [m["content"] for m in json.loads(trial["messages"])]
    return found


def trials_by_cell(study, design: str) -> dict[str | None, dict]:
    return {t["cell"]: t for t in iter_trials(study) if t["design"] == design}


BLIND_SYSTEM = "Imagine you are the person in the situation below. Answer as that person would, in their own voice."
EXPERT = "You are an expert in human behavior. You predict how real people answered in studies, using what you know about how people actually decide."

# ---------------------------------------------------------------- level labels

FRAMING = """study "framing" seed 1
units advice
  row id = "exercise", amount = 5
treatment frame = levels("gain" = "People who follow this advice gain {amount} years.",
                         "loss" = "People who ignore this advice lose {amount} years.")
  description "framing of the advice"
context "{frame}"
outcome follow: binary "yes" / "no"
  question "Will you follow the advice?"
modes blind, unblinded
"""


def test_labels_are_cell_ids_and_texts_are_shown():
    study, warnings = load(FRAMING)
    (frame,) = study.treatments
    assert frame.levels == ("gain", "loss")  # what cells, tables and baselines name
    assert frame.value_type == "text" and frame.description == "framing of the advice"
    assert not warnings
    shown = prompts(study)
    assert set(shown) == {(d, f"frame={c}", "exercise") for d in ("blind", "unblinded") for c in ("gain", "loss")}
    assert shown[("blind", "frame=gain", "exercise")] == [
        BLIND_SYSTEM,
        'People who follow this advice gain 5 years.\n\nWill you follow the advice?\n\nAnswer with exactly one of: "yes" or "no".',
    ]
    assert shown[("unblinded", "frame=loss", "exercise")] == [
        EXPERT,
        "About the study: this was a survey with many respondents. The framing of the advice shown to each "
        "respondent was drawn at random, with equal probability, from these 2 values: "
        '"People who follow this advice gain 5 years.", "People who ignore this advice lose 5 years.". '
        "Each respondent saw only their own framing of the advice. They did not know that it had been "
        "randomized or what other respondents were shown.\n\n"
        "What this respondent saw:\nPeople who ignore this advice lose 5 years.\n\n"
        "The question they answered: Will you follow the advice?\n\n"
        'Predict this respondent\'s answer. Answer with exactly one of: "yes" or "no".',
    ]
    # the labels and the identifier never reach a prompt
    for messages in shown.values():
        text = " ".join(messages)
        assert 'gain"' not in text and "frame" not in text


def test_labelled_numbers_feed_the_treatment_expression():
    study, _ = load("""study "t" seed 1
units items
  row id = "a", price = 10
treatment offer = items.price * levels("cheap" = 0.5, "dear" = 2) as money
context "It costs {offer}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
""")
    by_cell = trials_by_cell(study, "blind")
    assert sorted(by_cell) == ["offer=cheap", "offer=dear"]
    assert json.loads(by_cell["offer=cheap"]["messages"])[1]["content"] == (
        'It costs $5.00.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".'
    )
    assert json.loads(by_cell["offer=dear"]["conditions"])[0]["values"] == {"offer": 20}


def test_unlabelled_levels_add_nothing_to_the_spec():
    """Plain levels keep the study's JSON (and so its hash, trial ids and cache keys) as before."""
    study, _ = load("""study "t" seed 1
units items
  row id = "a", price = 10
treatment x = levels("low", "high")
context "{x}"
outcome buy: categorical "a", "b"
  question "Which?"
modes unblinded
""")
    data = json.loads(study.to_json())
    assert set(data["treatments"][0]) == {"name", "levels", "value", "value_type", "assignment", "unit_dependent"}
    assert set(data["outcomes"][0]["answer"]) == {"type", "labels", "low", "high"}
    assert study.treatments[0].levels == ("low", "high")
    assert "The x shown to each respondent" in prompts(study)[("unblinded", "x=low", "a")][1]


# ---------------------------------------------------------------- levels from unit columns

ANCHORING = """study "anchoring" seed 1
units questions
  row id = "everest", thing = "the height of Mount Everest (feet)", low_anchor = 2000, high_anchor = 45500
  row id = "babies", thing = "the number of babies born per day in the US", low_anchor = 100, high_anchor = 50000
treatment anchor = levels(questions.low_anchor, questions.high_anchor)
  description "number in the comparison question"
context "Is {thing} more or less than {anchor}?"
outcome estimate: number
  question "What is your best estimate of {thing}?"
modes blind, within
"""


def test_column_levels_read_each_units_value():
    study, _ = load(ANCHORING)
    (anchor,) = study.treatments
    assert anchor.levels == ("low_anchor", "high_anchor") and anchor.value_type == "integer" and anchor.unit_dependent
    shown = prompts(study)
    assert shown[("blind", "anchor=high_anchor", "babies")] == [
        BLIND_SYSTEM,
        "Is the number of babies born per day in the US more or less than 50000?\n\n"
        "What is your best estimate of the number of babies born per day in the US?\n\n"
        "Answer with a number only.",
    ]
    assert shown[("blind", "anchor=low_anchor", "everest")][1].startswith("Is the height of Mount Everest (feet) more or less than 2000?")
    assert shown[("within", None, "everest")] == [
        EXPERT,
        "About the study: this was a survey with many respondents. The number in the comparison question "
        "shown to each respondent was drawn at random, with equal probability, from these 2 values: 2000, 45500. "
        "Each respondent saw only their own number in the comparison question. They did not know that it had "
        "been randomized or what other respondents were shown.\n\n"
        "What a respondent saw (Here [number in the comparison question] stands for the value in the "
        "respondent's condition.)\n"
        "Is the height of Mount Everest (feet) more or less than [number in the comparison question]?\n\n"
        "The question they answered: What is your best estimate of the height of Mount Everest (feet)?\n\n"
        "The conditions:\n1) number in the comparison question 45500\n2) number in the comparison question 2000\n\n"
        "For each condition, predict the answer of a respondent who saw it. Answer with a number only. "
        'Write one line per condition, in the order above, starting with its number, in the form "1) ANSWER".',
    ]
    for messages in shown.values():
        assert "anchor" not in " ".join(messages)  # neither the identifier nor a label


def test_labelled_column_levels():
    study, _ = load(
        ANCHORING.replace(
            "levels(questions.low_anchor, questions.high_anchor)", 'levels("low" = questions.low_anchor, "high" = questions.high_anchor)'
        )
    )
    assert study.treatments[0].levels == ("low", "high")
    assert prompts(study)[("blind", "anchor=high", "everest")][1].startswith("Is the height of Mount Everest (feet) more or less than 45500?")


# ---------------------------------------------------------------- condition-specific options

DECOY = """study "decoy" seed 1
units menus
  row id = "m1", price = 3
treatment decoy = levels("absent" = "Two dishes are on the menu.",
                         "present" = "Three dishes are on the menu; C costs {price} dollars.")
  description "third dish on the menu"
context "{decoy}"
outcome choice: categorical "Dish A", "Dish B", "Dish C" if decoy = "present"
  question "Which dish do you order?"
modes blind, within
"""


def test_options_shown_depend_on_the_condition():
    study, _ = load(DECOY)
    assert study.outcomes[0].answer.shown_if == ({}, {}, {"decoy": "present"})
    by_cell = trials_by_cell(study, "blind")
    absent, present = by_cell["decoy=absent"], by_cell["decoy=present"]
    assert [m["content"] for m in json.loads(absent["messages"])] == [
        BLIND_SYSTEM,
        'Two dishes are on the menu.\n\nWhich dish do you order?\n\nAnswer with exactly one of: "Dish A", "Dish B".',
    ]
    assert json.loads(present["messages"])[1]["content"] == (
        'Three dishes are on the menu; C costs 3 dollars.\n\nWhich dish do you order?\n\nAnswer with exactly one of: "Dish A", "Dish B", "Dish C".'
    )
    # the trial's answer spec carries only the options shown (and their values in the full list)
    assert json.loads(absent["answer"]) == {
        "type": "categorical",
        "labels": ["Dish A", "Dish B"],
        "label_values": [0.0, 1.0],
        "low": None,
        "high": None,
    }
    assert json.loads(present["answer"]) == {"type": "categorical", "labels": ["Dish A", "Dish B", "Dish C"], "low": None, "high": None}


def test_an_option_not_shown_is_an_invalid_answer():
    study, _ = load(DECOY)
    by_cell = trials_by_cell(study, "blind")
    absent, present = json.loads(by_cell["decoy=absent"]["answer"]), json.loads(by_cell["decoy=present"]["answer"])
    wrong = parse_answer("Dish C", absent)
    assert not wrong.valid and wrong.error == "answer names none of the labels Dish A/Dish B"
    assert parse_answer("Dish C", present).value == 2.0
    assert parse_answer("Dish B", absent).value == 1.0  # the same option has the same value in every cell
    # the embedded model scores only the options shown
    assert answers.get(absent).options() == [("Dish A", "Dish A"), ("Dish B", "Dish B")]
    assert [key for key, _ in answers.get(present).options()] == ["Dish A", "Dish B", "Dish C"]
    # label probabilities map to the full list's values too
    revised = answers.get(absent).with_probs(parse_answer("none", absent), {"Dish A": 0.2, "Dish B": 0.8})
    assert revised.valid and revised.value == 1.0 and revised.label == "Dish B"


def test_an_answer_outside_the_options_is_stored_raw_and_counted_invalid():
    """The runner's one parsing step (live calls, cache replays and batches all use it)."""
    from llmexp.runner.calls import Call
    from llmexp.runner.outcome import Outcome, build_row

    study, _ = load(DECOY)
    rows = {}
    for cell, trial in trials_by_cell(study, "blind").items():
        call = Call(
            trial_id=trial["trial_id"],
            model="m",
            target="m",
            messages=json.loads(trial["messages"]),
            kwargs={},
            answer=json.loads(trial["answer"]),
            conditions=json.loads(trial["conditions"]),
            est_tokens=0,
            est_cost=0.0,
            cacheable=False,
            cache_key=trial["cache_key"],
        )
        rows[cell] = build_row(call, Outcome(text="Dish C"), lambda text: text)
    absent, present = rows["decoy=absent"], rows["decoy=present"]
    assert (absent.valid, absent.status, absent.raw_text, absent.value) == (False, "invalid", "Dish C", None)
    assert (present.valid, present.status, present.value, present.label) == (True, "ok", 2.0, "Dish C")


def test_multi_condition_prompts_offer_the_options_of_any_listed_condition():
    study, _ = load(DECOY)
    (within,) = [t for t in iter_trials(study) if t["design"] == "within"]
    assert json.loads(within["answer"])["labels"] == ["Dish A", "Dish B", "Dish C"]


# ---------------------------------------------------------------- braces in literal text


def test_fields_in_option_texts_and_literal_braces():
    study, _ = load("""study "t" seed 1
units items
  row id = "a", product = "kettle"
treatment x = levels("a {{plain}} note", "{product} on sale")
context "{x}"
outcome buy: binary "buy the {product}" / "skip it"
  question "And {{now}}?"
""")
    assert study.treatments[0].levels == ("a {{plain}} note", "{product} on sale")  # cell ids stay the written text
    shown = prompts(study)
    assert shown[("blind", "x=a {{plain}} note", "a")][1] == (
        'a {plain} note\n\nAnd {now}?\n\nAnswer with exactly one of: "buy the kettle" or "skip it".'
    )
    assert shown[("blind", "x={product} on sale", "a")][1].startswith("kettle on sale\n\n")
    trial = trials_by_cell(study, "blind")["x=a {{plain}} note"]
    assert json.loads(trial["answer"])["labels"] == ["buy the kettle", "skip it"]


# ---------------------------------------------------------------- errors

HEAD = """study "t" seed 1
units questions
  row id = "a", thing = "x", low_anchor = 1, high_anchor = 9
"""
TAIL = """context "See {thing}: {t}."
outcome o: binary "yes" / "no"
  question "Yes?"
"""


@pytest.mark.parametrize(
    ("treatment", "line", "column", "message"),
    [
        (
            "treatment t = levels(questions.lo_anchor, questions.high_anchor)",
            4,
            22,
            "'questions.lo_anchor' is not a unit field usable in the levels of treatment 't' (did you mean 'questions.low_anchor'?)",
        ),
        ('treatment t = levels("lo" = "A", "B")', 4, 34, "treatment 't': give every level a label (\"label\" = ...) or none"),
        ('treatment t = levels("lo" = "A", "lo" = "B")', 4, 15, "treatment 't' has two levels labelled 'lo'"),
        (
            'treatment t = levels("lo" = "A", "hi" = questions.high_anchor)',
            4,
            15,
            "treatment 't': levels must be all numbers or all text (true/false are not levels)",
        ),
        ('treatment t = levels("" = "A", "hi" = "B")', 4, 22, "treatment 't': a level label cannot be empty"),
        (
            'treatment t = levels("gain" = "You gain {thng}", "loss" = "x")',
            4,
            41,
            "unknown field {thng} in the levels of treatment 't' (did you mean 'thing'?)",
        ),
        ('treatment t = levels("gain {t}", "loss")', 4, 28, "{t} in the levels of treatment 't': a level text can only use unit fields"),
        ('treatment t = levels("gain {", "loss")', 4, 28, "in the levels of treatment 't': unbalanced brace (write {{ or }} for a literal brace)"),
        ('treatment t = levels(1, 2) description ""', 4, 40, "treatment 't': the description cannot be empty"),
        # two levels that ask the same question (compiling them ended in "internal: duplicate trial id", unlocated)
        (
            'treatment t = levels("lo" = "A", "hi" = "A")',
            4,
            15,
            "treatment 't': levels 'lo' and 'hi' have the same value ('A'); each level must differ, or the two conditions are one question",
        ),
        (
            'treatment t = levels("lo" = questions.low_anchor, questions.low_anchor)',
            4,
            15,
            "treatment 't': levels 'lo' and 'low_anchor' have the same value for unit 'a' (1); each level must differ, "
            "or the two conditions are one question",
        ),
    ],
)
def test_level_errors(treatment, line, column, message):
    error = only_error(HEAD + treatment + "\n" + TAIL)
    assert (error.line, error.column) == (line, column)
    assert error.message + (f" ({error.hint})" if error.hint else "") == message


def test_two_level_columns_equal_in_one_row_are_named_with_that_unit():
    two_rows = HEAD + '  row id = "b", thing = "y", low_anchor = 5, high_anchor = 5\n'
    error = only_error(two_rows + "treatment t = levels(questions.low_anchor, questions.high_anchor)\n" + TAIL)
    assert error.message == (
        "treatment 't': levels 'low_anchor' and 'high_anchor' have the same value for unit 'b' (5); "
        "each level must differ, or the two conditions are one question"
    )
    check_text(HEAD + "treatment t = levels(questions.low_anchor, questions.high_anchor)\n" + TAIL, "t.study")  # differ: fine


def test_a_level_column_must_be_a_unit_field():
    errors = errors_of(HEAD + "treatment u = levels(1, 2)\ntreatment t = levels(u, questions.high_anchor)\n" + TAIL)
    first = errors[0]
    assert (first.line, first.column, first.message) == (5, 22, "'u' is not a unit field usable in the levels of treatment 't'")


MENU = """study "t" seed 1
units menus
  row id = "a", thing = "x"
treatment decoy = levels("absent" = "A", "present" = "B")
  description "third option"
context "{decoy}"
"""


@pytest.mark.parametrize(
    ("outcome", "line", "column", "message"),
    [
        ('outcome c: categorical "A", "B", "C" if decy = "present"', 7, 41, "outcome 'c': 'decy' is not a treatment (did you mean 'decoy'?)"),
        (
            'outcome c: categorical "A", "B", "C" if decoy = "presnt"',
            7,
            49,
            "outcome 'c': 'presnt' is not a level of 'decoy' (levels: 'absent', 'present')",
        ),
        (
            'outcome c: categorical "A", "B" if decoy = "present", "C" if decoy = "present"',
            7,
            12,
            "outcome 'c': where decoy = 'absent' only 1 option is shown; an answer needs at least two",
        ),
        ('outcome c: categorical "A {thng}", "B"', 7, 27, "unknown field {thng} in the options of 'c' (did you mean 'thing'?)"),
    ],
)
def test_option_errors(outcome, line, column, message):
    error = only_error(MENU + outcome + '\n  question "Which?"\n')
    assert (error.line, error.column) == (line, column)
    assert error.message + (f" ({error.hint})" if error.hint else "") == message


def test_strict_lint_for_a_labelled_treatment_without_description():
    text = MENU.replace('  description "third option"\n', "") + 'outcome c: categorical "A", "B"\n  question "Which?"\nmodes unblinded\n'
    _, warnings = load(text)
    (warning,) = warnings
    assert (warning.line, warning.column) == (4, 1)
    assert warning.message == (
        "treatment 'decoy' has labelled levels but no description: design 'unblinded' states the design and calls it 'decoy' in its prompt"
    )
    # with the description, or with only blind designs, nothing to warn about
    assert load(MENU + 'outcome c: categorical "A", "B"\n  question "Which?"\nmodes unblinded\n')[1] == []
    assert load(text.replace("modes unblinded", "modes blind"))[1] == []


def test_syntax_option_condition_needs_a_level():
    error = only_error(MENU + 'outcome c: categorical "A", "B" if decoy\n  question "Which?"\n')
    assert (error.line, error.column, error.message) == (8, 3, "unexpected 'question'; expected \"=\"")


def test_option_shares_leave_an_option_out_of_the_cells_that_did_not_offer_it():
    import pandas as pd

    from llmexp.analysis._categorical import option_shares

    study, _ = load(DECOY)
    data = pd.DataFrame(
        {
            "model": "m",
            "design": "blind",
            "unit_id": ["u1", "u2"] * 4,
            "cell": ["decoy=absent"] * 4 + ["decoy=present"] * 4,
            "lvl__decoy": ["absent"] * 4 + ["present"] * 4,
            "y": [0, 1, 0, 1, 2, 2, 0, 2],
        }
    )
    shares = option_shares(data, study.outcomes[0], 0.05).set_index(["cell", "option"])
    absent_c = shares.loc[("decoy=absent", "Dish C")]
    assert pd.isna(absent_c["share"]) and pd.isna(absent_c["ci_low"]) and absent_c["note"] == "not an option in this condition"
    assert shares.loc[("decoy=present", "Dish C"), "share"] == 0.75
    assert shares.loc[("decoy=absent", "Dish B"), "share"] == 0.5


def test_a_probe_option_cannot_depend_on_the_condition():
    text = MENU + 'unspecified taste\n  probe "It tastes ___." as categorical "good", "bad" if decoy = "present", "fine"\n'
    text += 'outcome c: categorical "A", "B"\n  question "Which?"\n'
    error = only_error(text)
    assert (error.line, error.column) == (8, 58)
    assert error.message == "probe of 'taste': only an outcome's options can depend on the condition ('if ...')"
