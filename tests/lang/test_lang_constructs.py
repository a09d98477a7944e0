"""Every construct of the study language parses into the expected spec values."""

from __future__ import annotations

import pytest
from langhelp import BASE, CSV_BASE, check_in, study_dir  # noqa: F401  (fixture)

from llmexp import check_text
from llmexp.spec import Expr


def check(text: str):
    study, warnings = check_text(text, "t.study")
    return study


def test_base_study_values():
    study = check(BASE)
    assert study.name == "t"
    assert study.seed == 1
    assert study.description == ""
    assert study.units.name == "items"
    assert study.units.key == "id"  # inline units: the first field is the key
    assert study.units.columns == {"id": "text", "price": "integer"}
    assert [r["id"] for r in study.units.rows] == ["a", "b"]
    assert [r["price"] for r in study.units.rows] == [2, 4]
    (x,) = study.treatments
    assert x.name == "x" and x.levels == (1, 2) and x.value_type == "money"
    assert x.value == Expr(op="mul", args=(Expr(op="ref", value="unit.price"), Expr(op="level")))
    assert x.assignment == "between" and x.unit_dependent
    (other,) = study.covariates
    assert not other.specified and other.text == "Another costs {other}."
    assert other.probe.question == "Another costs $___." and other.probe.answer.type == "money"
    (buy,) = study.outcomes
    assert buy.answer.type == "binary" and buy.answer.labels == ("yes", "no")
    assert buy.question == "Do you buy it?"
    assert study.context == "You see {id} for {x}."
    # defaults: one blind design, the embedded model, no baseline, no analyses
    assert [(d.name, d.mode) for d in study.designs] == [("blind", "blind")]
    assert study.models[0].name == "llmexp/gemma3-270m" and study.models[0].replicates == 1
    assert study.baseline is None and study.analyses == () and study.cells is None


def test_study_description_and_comments():
    text = BASE.replace('study "t" seed 1', '# leading comment\nstudy "t"  # trailing\n  description "About it" seed 42')
    study = check(text)
    assert study.description == "About it" and study.seed == 42


def test_units_inline_types():
    text = BASE.replace(
        '  row id = "a", price = 2\n  row id = "b", price = 4\n',
        '  row id = "a", price = 2.5, fresh = true, n = 3\n  row id = "b", price = 4, fresh = false, n = -1\n',
    )
    study = check(text)
    assert study.units.columns == {"id": "text", "price": "number", "fresh": "boolean", "n": "integer"}
    assert study.units.rows[1] == {"id": "b", "price": 4, "fresh": False, "n": -1}


def test_units_from_csv_with_key_and_columns(study_dir):
    study, _ = check_in(study_dir, CSV_BASE)
    units = study.units
    assert units.source == "data/items.csv" and units.key == "id"
    assert units.columns == {"id": "text", "price": "money", "label": "text"}
    assert units.rows == ({"id": "a", "price": 2.0, "label": "Apple"}, {"id": "b", "price": 4.5, "label": "Bread"})
    # a unit column is reachable bare and as units.column
    assert study.treatments[0].value.args[0] == Expr(op="ref", value="unit.price")


def test_units_csv_key_defaults_to_first_column(study_dir):
    study, _ = check_in(study_dir, CSV_BASE.replace("  key id\n", ""))
    assert study.units.key == "id"


def test_persona_distributions():
    text = BASE + '''persona shopper
  count 3
  age: uniform 18 to 80 integer
  score: uniform 0 to 1
  height: normal 170 sd 10
  kids: normal 1 sd 1 integer
  gender: one of "female", "male"
  income: one of "low" 30%, "high" 70%
  size: one of 1 2, 2 1
  country: "Norway"
  describe "You are {age}, {persona.gender}."
design p: blind with persona shopper
'''
    study = check(text)
    (persona,) = study.personas
    assert persona.name == "shopper" and persona.count == 3
    dists = {a.name: a.distribution for a in persona.attributes}
    assert (dists["age"].kind, dists["age"].low, dists["age"].high, dists["age"].integer) == ("uniform", 18, 80, True)
    assert dists["score"].integer is False
    assert (dists["height"].kind, dists["height"].mean, dists["height"].sd) == ("normal", 170, 10)
    assert dists["kids"].integer is True
    assert dists["gender"].kind == "choice" and dists["gender"].values == ("female", "male") and dists["gender"].weights == ()
    assert dists["income"].weights == pytest.approx((0.3, 0.7))
    assert dists["size"].values == (1, 2) and dists["size"].weights == pytest.approx((2 / 3, 1 / 3))
    assert dists["country"].kind == "fixed" and dists["country"].values == ("Norway",)
    assert persona.describe == "You are {age}, {persona.gender}."
    assert study.design("p").persona == "shopper"


def test_persona_from_csv(study_dir):
    text = CSV_BASE + 'persona people from "data/people.csv" count 2 describe "You live in {city}."\ndesign p: blind with persona people\n'
    study, _ = check_in(study_dir, text)
    (persona,) = study.personas
    assert persona.source == "data/people.csv" and persona.count == 2 and persona.attributes == ()
    assert persona.rows[0] == {"pid": 1, "age": 30, "city": "Oslo"}
    assert len(persona.rows) == 3


@pytest.mark.parametrize(
    "levels, expected",
    [
        ("levels(1, 2, 3)", (1, 2, 3)),
        ("levels(0 to 1 step 0.25)", (0, 0.25, 0.5, 0.75, 1)),
        ("levels(0 to 2 step 0.2)", (0, 0.2, 0.4, 0.6, 0.8, 1, 1.2, 1.4, 1.6, 1.8, 2)),
        ("levels(-1 to 1 step 1)", (-1, 0, 1)),
        ("levels(0 to 1 step 0.3)", (0, 0.3, 0.6, 0.9)),
    ],
)
def test_treatment_levels_lists_and_ranges(levels, expected):
    study = check(BASE.replace("levels(1, 2)", levels))
    assert study.treatments[0].levels == pytest.approx(expected)


def test_treatment_text_levels_bare_between_within_and_as():
    text = BASE.replace(
        "treatment x = items.price * levels(1, 2) as money",
        'treatment x = levels(5, 10) as money within\ntreatment frame = levels("gain", "loss") between',
    ).replace('"You see {id} for {x}."', '"You see {id} for {x} ({frame})."')
    study = check(text)
    x, frame = study.treatments
    assert x.value is None and x.value_type == "money" and x.assignment == "within" and not x.unit_dependent
    assert frame.levels == ("gain", "loss") and frame.value_type == "text" and frame.assignment == "between"


@pytest.mark.parametrize(
    "expr, expected_type, expected",
    [
        ("items.price * levels(1, 2)", "number", "mul"),
        ("price / 2 + levels(1, 2)", "number", "add"),
        ("(price - 1) * levels(1.5, 2)", "number", "mul"),
        ("-levels(1, 2)", "number", "neg"),
        ('"Brand " + levels("A", "B")', "text", "add"),
    ],
)
def test_treatment_expressions(expr, expected_type, expected):
    study = check(BASE.replace("items.price * levels(1, 2) as money", expr))
    t = study.treatments[0]
    assert t.value.op == expected and t.value_type == expected_type


def test_cells_listed():
    text = BASE.replace('"You see {id} for {x}."', '"You see {id} for {x} ({y})."').replace(
        "unspecified other", 'treatment y = levels("p", "q")\nunspecified other'
    ) + 'cell x = 1, y = "p"\ncell x = 2, y = "q"\n'
    study = check(text)
    assert study.cells == ({"x": 1, "y": "p"}, {"x": 2, "y": "q"})


def test_specified_and_unspecified_covariates():
    text = BASE + '''specified regular = items.price * 2
  text "Regular price: {regular}."
unspecified mood
  probe "Your mood, 1 to 7: ___" as likert 1 to 7
'''
    study = check(text)
    regular = study.covariate("regular")
    assert regular.specified and regular.value == Expr(op="mul", args=(Expr(op="ref", value="unit.price"), Expr(op="num", value=2)))
    assert regular.value_type == "integer" and regular.text == "Regular price: {regular}."
    mood = study.covariate("mood")
    assert not mood.specified and mood.probe.answer.type == "likert" and (mood.probe.answer.low, mood.probe.answer.high) == (1, 7)


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('binary "buy" / "skip"', dict(type="binary", labels=("buy", "skip"))),
        ('categorical "a", "b", "c"', dict(type="categorical", labels=("a", "b", "c"))),
        ("likert 1 to 5", dict(type="likert", low=1, high=5, labels=())),
        ('likert 1 to 3 labels "low", "mid", "high"', dict(type="likert", labels=("low", "mid", "high"))),
        ("number", dict(type="number", low=None, high=None)),
        ("number 0 to 20", dict(type="number", low=0, high=20)),
        ("number -5 to 5", dict(type="number", low=-5, high=5)),
        ("money", dict(type="money", low=None)),
        ("money 1 to 100", dict(type="money", low=1, high=100)),
        ("probability", dict(type="probability", low=0, high=1)),
        ("share", dict(type="probability", low=0, high=1)),
    ],
)
def test_outcome_answer_types(answer, expected):
    study = check(BASE.replace('binary "yes" / "no"', answer))
    spec = study.outcomes[0].answer.model_dump()
    for key, value in expected.items():
        assert spec[key] == value, key


def test_outcome_colon_is_optional():
    study = check(BASE.replace("outcome buy: binary", "outcome buy binary"))
    assert study.outcomes[0].name == "buy"


def test_triple_quoted_context_is_dedented_and_keeps_lines():
    text = BASE.replace(
        'context "You see {id} for {x}."',
        'context """\n    You see {id}.\n      It costs {x}.\n    """',
    )
    assert check(text).context == "You see {id}.\n  It costs {x}."


def test_string_escapes_and_literal_braces():
    text = BASE.replace('"Do you buy it?"', '"Do you \\"buy\\" it for {{x}}?"')
    assert check(text).outcomes[0].question == 'Do you "buy" it for {{x}}?'


def test_template_field_lookup_order():
    # a bare name is a treatment, then a covariate, then a unit column; units.column is explicit
    text = BASE.replace('"You see {id} for {x}."', '"You see {items.id} for {x}, {regular}."') + (
        'specified regular = items.price text "r {regular}"\n'
    )
    study = check(text)
    assert study.context == "You see {items.id} for {x}, {regular}."


def test_modes_and_designs():
    text = BASE + '''modes blind, unblinded, within, aggregate
persona p
  age: 30
design pinned: blind with other = items.price * 2 without probes
design withp: unblinded with persona p
design split2: aggregate split 1 to 1.5 and 1.5 to 2
'''
    study = check(text.replace("levels(1, 2)", "levels(1 to 2 step 0.25)"))
    assert [(d.name, d.mode) for d in study.designs] == [
        ("blind", "blind"), ("unblinded", "unblinded"), ("within", "within"), ("aggregate", "aggregate"),
        ("pinned", "blind"), ("withp", "unblinded"), ("split2", "aggregate"),
    ]
    pinned = study.design("pinned")
    assert pinned.probes is False and set(pinned.pins) == {"other"}
    assert pinned.pins["other"].op == "mul"
    assert study.design("withp").persona == "p" and study.design("withp").probes is True
    assert study.design("split2").split == ((1, 1.5), (1.5, 2))


def test_models_params_replicates_rates():
    text = BASE + '''model "openai/gpt-4o-mini" temperature 0.7 max_tokens 16 top_p 0.9 seed 3 rpm 500 tpm 20000 replicates 4
model "llmexp/gemma3-270m" temperature 1
model "synthetic/slope" anything 1
'''
    study = check(text)
    first, second, third = study.models
    assert first.name == "openai/gpt-4o-mini"
    assert first.params == {"temperature": 0.7, "max_tokens": 16, "top_p": 0.9, "seed": 3}
    assert isinstance(first.params["max_tokens"], int)
    assert (first.rpm, first.tpm, first.replicates) == (500, 20000, 4)
    assert second.params == {"temperature": 1} and second.replicates == 1
    assert third.params == {"anything": 1}  # synthetic models accept any parameter


def test_baseline_individual_rows(study_dir):
    text = CSV_BASE + '''baseline "data/human.csv"
  match unit = id, x = x
  compare buy = share
  retest buy = share_re
  where wave = 1
analyze baseline, effects
'''
    study, _ = check_in(study_dir, text)
    b = study.baseline
    assert b.source == "data/human.csv" and b.unit_column == "id" and b.treatments == {"x": "x"}
    assert b.outcomes == {"buy": "share"} and b.retest == {"buy": "share_re"} and b.n_column is None
    assert b.where == {"wave": 1} and len(b.rows) == 3
    assert study.analyses == ("baseline", "effects")


def test_baseline_aggregate_with_count(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id, x = x compare buy = share count n\n'
    study, _ = check_in(study_dir, text)
    assert study.baseline.n_column == "n" and len(study.baseline.rows) == 4


def test_analyze_names_deduplicated_in_order():
    text = BASE.replace("levels(1, 2)", "levels(1 to 3 step 1)") + '''design pin: blind with other = items.price
design agg: aggregate
design agg_split: aggregate split 1 to 2 and 2 to 3
analyze demand_curve, effects
analyze leakage, focalism, range, refute, effects
'''
    study = check(text)
    assert study.analyses == ("demand_curve", "effects", "leakage", "focalism", "range", "refute")


def test_keywords_and_clauses_are_free_of_layout():
    one_line = " ".join(line.strip() for line in BASE.splitlines())
    assert check(one_line).treatments == check(BASE).treatments


def test_warnings_are_returned_not_raised():
    text = BASE.replace("Do you buy it?", "In this experiment, do you buy it?") + "unspecified mood\n"
    study, warnings = check_text(text, "t.study")
    messages = [w.message for w in warnings]
    assert all(w.severity == "warning" for w in warnings)
    assert any("'experiment'" in m for m in messages)
    assert any("'mood' has no probe" in m for m in messages)
    leak = next(w for w in warnings if "'experiment'" in w.message)
    assert (leak.line, leak.column) == (11, 21)


def test_leaky_word_in_a_probe_question_warns():
    text = BASE.replace("Another costs $___.", "In the other condition it costs $___.")
    _, warnings = check_text(text, "t.study")
    (w,) = [w for w in warnings if "'condition'" in w.message]
    assert (w.line, w.column) == (7, 23)


def test_specified_covariate_computed_from_treatment_warns():
    text = BASE + 'specified s = x * 2 text "S {s}."\n'
    _, warnings = check_text(text, "t.study")
    (w,) = [w for w in warnings if "moves with the treatment" in w.message]
    assert (w.line, w.column) == (12, 1)


def test_shipped_studies_are_valid():
    from pathlib import Path

    from llmexp import check as check_study

    studies = sorted((Path(__file__).resolve().parents[2] / "studies").glob("*.study"))
    assert len(studies) >= 5
    for path in studies:
        study, _ = check_study(path)
        assert study.designs and study.outcomes, path


def test_units_inline_key_and_columns():
    text = BASE.replace(
        '  row id = "a", price = 2\n  row id = "b", price = 4\n',
        '  row code = 1, id = "a", price = 2\n  row code = 2, id = "b", price = 4\n  key id\n  columns price: money\n',
    )
    study = check(text)
    assert study.units.key == "id"
    assert study.units.columns == {"code": "integer", "id": "text", "price": "money"}
    assert study.units.rows[0] == {"code": 1, "id": "a", "price": 2}
    assert isinstance(study.units.rows[0]["code"], int)


def test_negative_numbers_keep_their_sign():
    # regression: the grammar dropped the "-" of signed numbers
    text = BASE.replace("levels(1, 2)", "levels(-2 to 2 step 2)") + "persona p t: normal -5 sd 2\n  w: one of \"a\" 1, \"b\" 3\n"
    study = check(text)
    assert study.treatments[0].levels == (-2, 0, 2)
    assert study.personas[0].attributes[0].distribution.mean == -5
