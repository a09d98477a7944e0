"""Issue 11 (ranges, tokens, money, data, baseline): an outcome's validation range kept out of
the prompt, per-mode and computed max_tokens, money display formats, strict money cells and a
baseline that matches no cell, each with its exact prompt or its exact error and position."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from llmexp import check_text, modes
from llmexp.answers import parse_answer
from llmexp.compiler import compile_study
from tests.lang.langhelp import check_in, only_error, problems_in

SYSTEM_BLIND = "Imagine you are the person in the situation below. Answer as that person would, in their own voice."
SYSTEM_EXPERT = (
    "You are an expert in human behavior. You predict how real people answered in studies, using what you know about how people actually decide."
)

# An anchoring question: the validation range (77777) must appear in no prompt.
ANCHOR = """study "t" seed 1
units q
  row id = "nile", lo = 1000, hi = 9000, name = "Nile"
  row id = "alps", lo = 100, hi = 5000, name = "Alps"
treatment anchor = levels(10, 1000)
context "Is the answer more or less than {anchor}?"
outcome est: number valid 0 to 77777
  question "What is your estimate?"
"""
ALL_MODES = "modes blind, unblinded, within, aggregate\n"


def trials_of(text: str):
    study, _ = check_text(text, "t.study")
    return compile_study(study)


def prompt(row) -> str:
    """The full rendered prompt: every message, its role in brackets."""
    return "\n".join(f"[{m['role']}]\n{m['content']}" for m in json.loads(row["messages"]))


def one(trials, design: str, unit: str = "nile", target: str | None = None):
    rows = trials[(trials.design == design) & (trials.unit_id == unit)]
    if target is not None:
        rows = rows[rows.target == target]
    return rows.iloc[0]


# ------------------------------------------------------------------ validation ranges


def test_valid_range_is_checked_but_shown_in_no_mode():
    trials = trials_of(ANCHOR + ALL_MODES)
    for text in trials.messages:
        assert "77777" not in text and "77,777" not in text and "ranged from" not in text
    assert prompt(one(trials, "blind")) == (
        f"[system]\n{SYSTEM_BLIND}\n[user]\nIs the answer more or less than 10?\n\nWhat is your estimate?\n\nAnswer with a number only."
    )
    assert prompt(one(trials, "aggregate")) == (
        f"[system]\n{SYSTEM_EXPERT}\n[user]\n"
        "About the study: this was a survey with many respondents. The anchor shown to each respondent was drawn at random, "
        "with equal probability, from these 2 values: 10, 1,000. Each respondent saw only their own anchor. They did not know "
        "that it had been randomized or what other respondents were shown.\n\n"
        "What a respondent saw (Here [anchor] stands for the value in the respondent's condition.)\n"
        "Is the answer more or less than [anchor]?\n\n"
        "The question they answered: What is your estimate?\n\n"
        "The conditions:\n1) anchor 10\n2) anchor 1,000\n\n"
        "For each condition, predict the average answer. Write one line per condition, in the order above, starting with its "
        'number, in the form "1) N" where N is your prediction.'
    )
    blind = one(trials, "blind")
    assert json.loads(blind["answer"]) == {"type": "number", "labels": [], "low": 0.0, "high": 77777.0, "shown": False}
    # validated all the same: an answer outside is stored invalid with the reason
    assert parse_answer("About 90000.", json.loads(blind["answer"])).error == "number 90000 outside [0, 77777]"
    assert parse_answer("About 5000.", json.loads(blind["answer"])).value == 5000


def test_shown_states_the_range_as_the_old_form_did():
    shown = trials_of(ANCHOR.replace("valid 0 to 77777", "valid 0 to 77777 shown") + ALL_MODES)
    old = trials_of(ANCHOR.replace("valid 0 to 77777", "0 to 77777") + ALL_MODES)
    assert list(shown.cache_key) == list(old.cache_key)  # the same spec: `shown` is the old meaning
    assert prompt(one(shown, "blind")) == (
        f"[system]\n{SYSTEM_BLIND}\n[user]\nIs the answer more or less than 10?\n\nWhat is your estimate?\n\n"
        "Answer with a number between 0 and 77777 only."
    )
    assert "For each condition, predict the average answer (answers ranged from 0 to 77777)." in prompt(one(shown, "aggregate"))


def test_per_unit_range_from_columns_checks_each_unit_against_its_own_bounds():
    trials = trials_of(ANCHOR.replace("valid 0 to 77777", "valid q.lo to q.hi") + ALL_MODES)
    nile, alps = one(trials, "blind", "nile"), one(trials, "blind", "alps")
    assert prompt(nile) == (
        f"[system]\n{SYSTEM_BLIND}\n[user]\nIs the answer more or less than 10?\n\nWhat is your estimate?\n\nAnswer with a number only."
    )
    assert (json.loads(nile["answer"])["low"], json.loads(nile["answer"])["high"]) == (1000, 9000)
    assert (json.loads(alps["answer"])["low"], json.loads(alps["answer"])["high"]) == (100, 5000)
    assert parse_answer("7000", json.loads(nile["answer"])).valid
    assert parse_answer("7000", json.loads(alps["answer"])).error == "number 7000 outside [100, 5000]"
    aggregate = json.loads(one(trials, "aggregate", "alps")["answer"])
    assert (aggregate["low"], aggregate["high"], aggregate["of"]["high"]) == (100, 5000, 5000)
    for text in trials.messages:
        assert "9000" not in text and "9,000" not in text and "5,000" not in text


def test_probe_takes_a_valid_range_too():
    text = ANCHOR + 'unspecified river_length\n  probe "The river is ___ km long." as number valid 0 to 88888\n'
    probe = trials_of(text)
    row = probe[probe.kind == "probe"].iloc[0]
    assert prompt(row) == (
        f"[system]\n{SYSTEM_BLIND}\n[user]\nIs the answer more or less than 10?\n\n"
        "Fill in the blank: The river is ___ km long.\n\nAnswer with a number only."
    )
    assert json.loads(row["answer"])["high"] == 88888


def test_old_form_is_linted_with_the_valid_spelling():
    _, warnings = check_text(ANCHOR.replace("valid 0 to 77777", "0 to 77777"), "t.study")
    assert [str(w) for w in warnings] == [
        "t.study:7:14: warning: outcome 'est': `number 0 to 77777` states its range in the prompt; write `number valid 0 to 77777` "
        "to validate it without showing it (or `number valid 0 to 77777 shown` to keep stating it)"
    ]
    assert check_text(ANCHOR, "t.study")[1] == []


@pytest.mark.parametrize(
    ("clause", "message", "line", "column"),
    [
        (
            "valid q.lo to q.hi shown",
            "outcome 'est': a range read from unit columns cannot be shown (it differs per unit)",
            7,
            14,
        ),
        ("valid 0 to q.high", "outcome 'est': 'q.high' is not a unit column; a range bound is a number or a numeric unit column", 7, 32),
        ("valid 0 to q.name", "outcome 'est': unit column 'name' holds text values; a range bound must be a number column", 7, 32),
        ("valid q.lo to 500", "outcome 'est': the range is empty for unit 'nile' (1000 to 500)", 7, 14),
    ],
)
def test_range_errors(clause, message, line, column):
    error = only_error(ANCHOR.replace("valid 0 to 77777", clause))
    assert (error.message, error.line, error.column) == (message, line, column)


# ------------------------------------------------------------------ max_tokens per mode


def test_max_tokens_per_mode_overrides_the_model_budget_and_keeps_other_keys():
    base = ANCHOR + ALL_MODES + 'model "m" max_tokens 8\n'
    plain = trials_of(base)
    per_mode = trials_of(base.replace("max_tokens 8", "max_tokens 8 max_tokens aggregate 40 max_tokens within 30"))
    budgets = {d: json.loads(one(per_mode, d)["params"])["max_tokens"] for d in ("blind", "unblinded", "within", "aggregate")}
    assert budgets == {"blind": 8, "unblinded": 8, "within": 30, "aggregate": 40}
    between = plain.design.isin(["blind", "unblinded"])
    assert list(per_mode.cache_key[between]) == list(plain.cache_key[between])  # untouched modes keep their keys
    assert not set(per_mode.cache_key[~between]) & set(plain.cache_key[~between])


def test_without_max_tokens_each_trial_gets_the_budget_its_answer_needs():
    text = ANCHOR.replace(
        "outcome est: number valid 0 to 77777",
        'outcome pick: categorical "the Nile, Africa\'s longest river", "the Amazon"\n  question "Which?"\noutcome est: number valid 0 to 77777',
    )
    trials = trials_of(text + ALL_MODES)
    budget = {(r.design, r.target): json.loads(r.params)["max_tokens"] for r in trials.itertuples()}
    assert budget[("blind", "est")] == 8  # one number
    assert budget[("blind", "pick")] == len("the Nile, Africa's longest river") // 3 + 4  # the longest label
    assert budget[("within", "est")] == 2 * (8 + 4)  # one "k) answer" line per condition
    assert budget[("aggregate", "pick")] == 2 * (8 + 4)  # a share per condition
    assert json.loads(one(trials, "blind")["params"])["temperature"] == 1.0


@pytest.mark.parametrize(
    ("model", "message", "column"),
    [
        ('model "m" temperature aggregate 1', "only max_tokens can be set per mode, not 'temperature'", 11),
        ('model "m" max_tokens aggregat 40', "unexpected name 'aggregat'; expected " + ", ".join(f'"{n}"' for n in modes.names()), 22),
        ('model "m" max_tokens within 0', "max_tokens within must be a whole number of at least 1, got 0", 29),
        ('model "m" max_tokens within "x"', "max_tokens within must be a whole number of at least 1, got 'x'", 29),
        ('model "m" max_tokens within 30 max_tokens within 40', "max_tokens within is given twice", 43),
    ],
)
def test_max_tokens_per_mode_errors(model, message, column):
    error = only_error(ANCHOR + model + "\n")
    assert (error.message, error.line, error.column) == (message, 9, column)


# ------------------------------------------------------------------ money display formats

SHOP = """study "t" seed 1
units items
  row id = "tea", price = 15
  row id = "jam", price = 1234.5
  columns price: money
treatment cost = items.price * levels(1, 0.5) as money
context "The {id} usually costs {price}; today it costs {cost}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
modes blind, unblinded
"""


def shop_prompt(text: str, unit: str = "jam", design: str = "blind") -> str:
    trials = trials_of(text)
    return json.loads(one(trials, design, unit)["messages"])[1]["content"]


def test_default_money_format_is_unchanged():
    assert shop_prompt(SHOP).startswith("The jam usually costs $1,234.50; today it costs $1,234.50.")
    assert shop_prompt(SHOP, "tea").startswith("The tea usually costs $15.00; today it costs $15.00.")


def test_money_formats_on_a_column_and_a_treatment():
    text = SHOP.replace("columns price: money", 'columns price: money format "15 EUR"').replace(
        "levels(1, 0.5) as money", 'levels(1, 0.5) as money format "$15"'
    )
    assert shop_prompt(text, "tea") == (
        'The tea usually costs 15 EUR; today it costs $15.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".'
    )
    assert shop_prompt(text).startswith("The jam usually costs 1,234.50 EUR; today it costs $1,234.50.")
    unblinded = shop_prompt(text, "tea", "unblinded")
    assert "from these 2 values: $15, $7.50." in unblinded
    comma = SHOP.replace("columns price: money", 'columns price: money format "15,00 €"')
    assert shop_prompt(comma).startswith("The jam usually costs 1.234,50 €;")


def test_a_negative_amount_reads_minus_dollars():
    text = SHOP.replace("items.price * levels(1, 0.5)", "items.price - levels(0, 16.75)")
    trials = trials_of(text)
    tea = trials[(trials.design == "blind") & (trials.unit_id == "tea") & (trials.cell == "cost=16.75")].iloc[0]
    assert json.loads(tea["messages"])[1]["content"].startswith("The tea usually costs $15.00; today it costs -$1.75.")
    assert "$-" not in "".join(trials.messages)


@pytest.mark.parametrize(
    ("old", "new", "message", "line", "column"),
    [
        ("columns price: money", 'columns price: number format "$15"', "column 'price': format applies to money columns, not number", 5, 32),
        (
            "levels(1, 0.5) as money",
            'levels(1, 0.5) as money format "15 dollars 15"',
            'money format "15 dollars 15" must write the amount 15 once, as in "$15", "$15.00", "15 EUR" or "15,00 €"',
            6,
            63,
        ),
        (
            "levels(1, 0.5) as money",
            'levels(1, 0.5) as text format "$15"',
            "treatment 'cost': format applies to money values (add `as money`)",
            6,
            62,
        ),
        ("price = 1234.5", "price = -2", "row 2: 'price' is a negative amount (-2) where a price is expected", 4, 27),
        (
            "  columns price: money\n",
            '  columns price: money\n  decimal ","\n',
            'decimal applies to money cells read from a CSV; inline rows write numbers with "."',
            6,
            11,
        ),
    ],
)
def test_money_errors(old, new, message, line, column):
    error = only_error(SHOP.replace(old, new))
    assert (error.message, error.line, error.column) == (message, line, column)


# ------------------------------------------------------------------ strict money cells in CSVs

CSV = """study "t" seed 1
units items from "data/items.csv"
  key id
  columns price: money
treatment x = items.price * levels(1, 2)
context "You see {id} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
"""


@pytest.fixture
def money_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.csv").write_text('id,price\na,"3,49"\nb,2\n')
    (data / "thousands.csv").write_text('id,price\na,"1.234,50"\nb,2\n')
    (data / "negative.csv").write_text("id,price\na,2\nb,-1.75\n")
    (data / "dollars.csv").write_text('id,price\na,"$1,234.50"\nb,2\n')
    return tmp_path


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            "items.csv",
            "data/items.csv: row 1 (line 2), column 'price': '3,49' reads as a decimal comma: write 3.49, "
            'or add decimal "," to the units statement',
        ),
        (
            "thousands.csv",
            "data/thousands.csv: row 1 (line 2), column 'price': '1.234,50' reads as a decimal comma: write 1234.50, "
            'or add decimal "," to the units statement',
        ),
        (
            "negative.csv",
            "data/negative.csv: row 2 (line 3), column 'price': '-1.75' is a negative amount where a price is expected "
            "(type the column number if it may be negative)",
        ),
    ],
)
def test_ambiguous_or_negative_money_cells_are_errors_at_check(money_dir, table, message):
    [error] = problems_in(money_dir, CSV.replace("items.csv", table))
    assert (error.message, error.line, error.column) == (message, 2, 18)


def test_decimal_comma_is_read_when_the_units_say_so(money_dir):
    comma = CSV.replace("  key id\n", '  key id\n  decimal ","\n')
    study, _ = check_in(money_dir, comma)
    assert [r["price"] for r in study.units.rows] == [3.49, 2.0]
    study, _ = check_in(money_dir, comma.replace("items.csv", "thousands.csv"))
    assert [r["price"] for r in study.units.rows] == [1234.5, 2.0]
    assert json.loads(compile_study(study).messages.iloc[0])[1]["content"] == (
        'You see a for $1,234.50.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".'
    )
    [error] = problems_in(money_dir, comma.replace("items.csv", "dollars.csv"))
    assert error.message == (
        "data/dollars.csv: row 1 (line 2), column 'price': '$1,234.50' does not use the decimal comma the units declare "
        '(decimal ","): write 1234,50'
    )
    study, _ = check_in(money_dir, CSV.replace("items.csv", "dollars.csv"))  # a standard amount reads as before
    assert [r["price"] for r in study.units.rows] == [1234.5, 2.0]


def test_decimal_mark_must_be_a_comma_or_a_point(money_dir):
    errors = problems_in(money_dir, CSV.replace("  key id\n", '  key id\n  decimal ";"\n'))
    assert [(e.message, e.line, e.column) for e in errors if "decimal must" in e.message] == [
        ('decimal must be "," or "." (the decimal mark of the money cells), got ";"', 4, 11)
    ]


def test_check_cli_refuses_the_ambiguous_cell(money_dir, capsys):
    from llmexp.cli import main

    (money_dir / "s.study").write_text(CSV)
    with pytest.raises(SystemExit) as exit_:
        main(["check", str(money_dir / "s.study")])
    code, err = exit_.value.code, capsys.readouterr().err
    assert code == 2 and "s.study:2:18: error: data/items.csv: row 1 (line 2), column 'price': '3,49' reads as a decimal comma" in err


# ------------------------------------------------------------------ baseline matching nothing

BASELINE = CSV.replace("items.csv", "dollars.csv") + 'baseline "data/HUMAN"\n  match unit = id, x = x\n  compare buy = share\n'


@pytest.fixture
def human_dir(money_dir: Path) -> Path:
    data = money_dir / "data"
    (data / "human.csv").write_text("id,x,share\na,1,0.5\na,2,0.3\nb,1,0.6\nb,2,0.2\n")
    (data / "off.csv").write_text("id,x,share\na,5,0.5\na,6,0.3\n")
    (data / "partly.csv").write_text("id,x,share\na,1,0.5\na,7,0.3\n")
    (data / "apart.csv").write_text("id,x,share\na,5,0.5\nzz,1,0.3\n")
    return money_dir


def test_baseline_levels_matching_nothing_is_an_error_at_the_baseline_statement(human_dir):
    [error] = problems_in(human_dir, BASELINE.replace("HUMAN", "off.csv"))
    assert (error.message, error.line, error.column) == (
        "baseline column 'x' matches no level of 'x' (its values: 5, 6; the levels: 1, 2)",
        9,
        1,
    )


def test_baseline_whose_rows_match_no_cell_is_an_error(human_dir):
    errors = [p for p in problems_in(human_dir, BASELINE.replace("HUMAN", "apart.csv")) if p.severity == "error"]
    assert [(e.message, e.line, e.column) for e in errors] == [
        ("baseline: no row matches a study cell (a unit and a level of every treatment in one row)", 9, 1)
    ]


def test_baseline_matching_partly_is_a_warning_and_a_full_match_is_clean(human_dir):
    _, warnings = check_in(human_dir, BASELINE.replace("HUMAN", "partly.csv"))
    assert [str(w).split(": ", 1)[1] for w in warnings] == ["warning: baseline column 'x' has values that are not levels of 'x': [7]"]
    assert check_in(human_dir, BASELINE.replace("HUMAN", "human.csv"))[1] == []


def test_shipped_studies_with_a_baseline_still_check():
    root = Path(__file__).resolve().parents[2] / "studies"
    with_baseline = [p for p in sorted(root.glob("*.study")) if "\nbaseline " in p.read_text()]
    assert with_baseline
    for path in with_baseline:
        check_text(path.read_text(), str(path))


def test_a_value_computed_from_a_formatted_column_reads_in_its_format():
    text = SHOP.replace("columns price: money", 'columns price: money format "15 EUR"').replace(
        'context "', 'specified was = items.price * 2\n  text "It was {was} last year."\ncontext "'
    )
    assert shop_prompt(text, "tea") == (
        "The tea usually costs 15 EUR; today it costs 15 EUR.\nIt was 30 EUR last year.\n\n"
        'Do you buy it?\n\nAnswer with exactly one of: "yes" or "no".'
    )


def test_check_strict_fails_on_the_old_range_form_and_passes_on_valid(tmp_path, capsys):
    from llmexp.cli import main

    old, new = tmp_path / "old.study", tmp_path / "new.study"
    old.write_text(ANCHOR.replace("valid 0 to 77777", "0 to 77777"))
    new.write_text(ANCHOR)
    with pytest.raises(SystemExit) as exit_:
        main(["check", "--strict", str(old)])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "--strict: 1 warning(s) count as errors" in err
    assert "old.study:7:14: warning: outcome 'est': `number 0 to 77777` states its range in the prompt" in err
    try:
        main(["check", "--strict", str(new)])
    except SystemExit as exc:  # typer may exit 0 explicitly
        assert exc.code in (0, None)


def test_a_negative_money_answer_is_written_and_read_back_with_its_sign():
    from llmexp.answers.base import format_number

    written = format_number(-1.75, money=True)
    assert written == "-$1.75"
    assert parse_answer(written, {"type": "money", "low": -10, "high": 10}).value == -1.75
