"""Every error the parser and validator report, each at its exact line and column."""

from __future__ import annotations

import pytest
from langhelp import BASE, CSV_BASE, errors_of, only_error, problems_in, study_dir  # noqa: F401

from llmexp import check_text
from llmexp.errors import StudyError


def located(problem):
    return (problem.line, problem.column)


# ------------------------------------------------------------------ syntax errors

SYNTAX = [
    # (id, text, line, column, message part, hint part)
    ("unexpected token", BASE.replace('outcome buy: binary "yes"', 'outcome buy: binary binary'), 10, 21,
     "unexpected 'binary'; expected a quoted string", None),
    ("unexpected number", BASE.replace("context ", "context 5 "), 9, 9, "unexpected number 5", None),
    ("unexpected character", BASE.replace("levels(1, 2)", "levels(1; 2)"), 5, 37, "unexpected character ';'", None),
    ("unterminated string", BASE.replace('"Do you buy it?"', '"Do you buy it?'), 11, 12,
     'unterminated string (a string must close on the same line; use """ for several lines)', None),
    ("unterminated string mid-file", BASE.replace('"Another costs $___."', '"Another costs $___.'), 7, 9,
     "unterminated string", None),
    ("unexpected end of file", BASE + "analyze", 12, 8, "unexpected end of file; expected a name", None),
    ("unexpected end of file after blank lines", BASE + "analyze\n\n  \n", 12, 8, "unexpected end of file; expected a name", None),
    ("statement ends early", BASE.replace('study "t" seed 1', 'study "t" seed'), 1, 15,
     "unexpected end of statement; expected a number", None),
    ("misspelled statement keyword", BASE.replace("context ", "contxt "), 9, 1,
     "unexpected name 'contxt'", "did you mean 'context'?"),
    ("misspelled answer keyword", BASE.replace("binary", "binry"), 10, 14,
     "unexpected name 'binry'", "did you mean 'binary'?"),
    ("misspelled clause keyword", BASE.replace("  question", "  questoin"), 11, 3,
     "unexpected name 'questoin'", "did you mean 'question'?"),
    ("misspelled mode", BASE + "modes blind, unblinde\n", 12, 14, "unexpected name 'unblinde'", "did you mean 'unblinded'?"),
    ("keyword where a string belongs", BASE + "context context\n", 12, 9, "unexpected 'context'; expected a quoted string", None),
    ("percent weight outside a choice", BASE + "persona p age: 30%\n", 12, 18, "unexpected '%'; expected", None),
]


@pytest.mark.parametrize("case", SYNTAX, ids=[c[0] for c in SYNTAX])
def test_syntax_errors_are_located(case):
    _, text, line, column, message, hint = case
    problem = only_error(text)
    assert located(problem) == (line, column), str(problem)
    assert message in problem.message
    if hint is None:
        assert problem.hint is None or "did you mean" not in problem.hint
    else:
        assert problem.hint == hint


def test_every_broken_statement_is_reported():
    text = BASE.replace('study "t" seed 1', 'study "t" seed').replace("binary", "binry") + "analyze leakage,\n"
    problems = errors_of(text)
    assert [located(p) for p in problems] == [(1, 15), (10, 14), (12, 17)]
    assert "end of statement" in problems[0].message
    assert "end of file" in problems[2].message


def test_problem_text_has_file_line_column_and_hint():
    problem = only_error(BASE.replace("context ", "contxt "))
    assert str(problem).startswith("t.study:9:1: error: unexpected name 'contxt'")
    assert str(problem).endswith("(did you mean 'context'?)")


# ------------------------------------------------------------------ semantic errors

SEMANTIC = [
    ("unknown template field with suggestion", BASE.replace("{id}", "{idd}"), 9, 18,
     "unknown field {idd} in the context", "did you mean 'id'?"),
    ("unknown field in question", BASE.replace("Do you buy it?", "Do you buy {it}?"), 11, 24,
     "unknown field {it} in the question of 'buy'", None),
    ("unknown unit column in treatment", BASE.replace("items.price *", "items.prise *"), 5, 15,
     "'items.prise' is not a unit field usable in treatment 'x'", "did you mean 'items.price'?"),
    ("unknown field in triple-quoted context",
     BASE.replace('context "You see {id} for {x}."', 'context """\n  You see {id}\n    for {x} {xx}.\n  """'), 11, 13,
     "unknown field {xx}", "did you mean 'x'?"),
    ("duplicate name", BASE + 'outcome buy: binary "a" / "b" question "q?"\n', 12, 1,
     "'buy' is already defined as an outcome at line 10", None),
    ("duplicate across kinds", BASE + 'specified x = 1 text "{x}"\n', 12, 1,
     "'x' is already defined as a treatment at line 5", None),
    ("duplicate study statement", BASE + 'study "u"\n', 12, 1, "a study has one study statement; this one repeats it", None),
    ("duplicate design", BASE + "modes blind\ndesign blind: unblinded\n", 13, 1,
     "design 'blind' is defined twice (first at line 12)", None),
    ("type mismatch in treatment expression", BASE.replace("items.price * levels(1, 2)", "items.id * levels(1, 2)"), 5, 1,
     "treatment 'x' cannot be computed for unit row 1 at level 1.0: cannot use 'a' with '*' (it is not a number)", None),
    ("text level times number", BASE.replace("items.price * levels(1, 2)", 'items.price * levels("a", "b")'), 5, 1,
     "cannot use 'a' with '*'", None),
    ("unspecified covariate in context", BASE.replace("{x}.", "{x} near {other}."), 9, 36,
     "{other} in the context: 'other' is unspecified, so it must stay out of the prompt", "pin it in a design"),
    ("unspecified covariate in question", BASE.replace("Do you buy it?", "At {other}, buy?"), 11, 16,
     "'other' is unspecified", None),
    ("treatment never shown", BASE.replace(" for {x}", ""), 9, 1,
     "treatment 'x' is never shown: use {x} in the context or a question", None),
    ("specified covariate never stated", BASE + "specified s = items.price\n", 9, 1,
     "specified covariate 's' is never stated", None),
    ("empty range", BASE.replace("levels(1, 2)", "levels(2 to 1 step 1)"), 5, 36, "range 2 to 1 is empty", None),
    ("non-positive step", BASE.replace("levels(1, 2)", "levels(1 to 2 step 0)"), 5, 48, "step must be positive, got 0", None),
    ("no levels", BASE.replace("items.price * levels(1, 2)", "items.price"), 5, 1,
     "treatment 'x' must contain exactly one levels(...) (found 0)", "e.g. treatment price"),
    ("two levels", BASE.replace("items.price * levels(1, 2)", "levels(1, 2) * levels(1, 2)"), 5, 1, "(found 2)", None),
    ("repeated level", BASE.replace("levels(1, 2)", "levels(1, 1)"), 5, 29, "treatment 'x' lists level 1.0 twice", None),
    ("mixed levels", BASE.replace("levels(1, 2)", 'levels(1, "a")'), 5, 29, "levels must be all numbers or all text", None),
    ("levels outside a treatment", BASE + 'specified s = levels(1, 2) text "{s}"\n', 12, 15,
     "levels(...) can only appear in a treatment, not in covariate 's'", None),
    ("reserved name", BASE + 'specified level = 1 text "v {level}"\n', 12, 1, "'level' is a reserved name", None),
    ("aggregate with a 3-label categorical", BASE.replace('binary "yes" / "no"', 'categorical "a", "b", "c"') + "modes aggregate\n",
     12, 7, "aggregate mode asks for one number per condition; categorical outcome 'buy' has 3 labels", "use a binary outcome"),
    ("split on a non-aggregate design", BASE + "design s: blind split 1 to 2\n", 12, 1,
     "split applies to aggregate designs only", None),
    ("split part with one level", BASE + "design s: aggregate split 1 to 2 and 1.5 to 2\n", 12, 1,
     "split part 1.5 to 2 holds fewer than two levels", None),
    ("unknown analysis", BASE + "analyze effects, demand\n", 12, 18, "unknown analysis 'demand'", "did you mean 'demand_curve'?"),
    ("analysis unsupported: focalism", BASE + "analyze focalism\n", 12, 9,
     "analysis 'focalism' cannot run on this study: no design pins a covariate", None),
    ("analysis unsupported: baseline", BASE + "analyze baseline\n", 12, 9, "the study has no baseline statement", None),
    ("analysis unsupported: range", BASE + "analyze range\n", 12, 9, "no aggregate design with split", None),
    ("analysis unsupported: leakage", BASE + "modes within\nanalyze leakage\n", 13, 9,
     "probes are asked in blind or unblinded designs, and there is none", None),
    ("analysis unsupported: demand curve", BASE.replace("items.price * levels(1, 2) as money", 'levels("a", "b")') + "analyze demand_curve\n",
     12, 9, "a demand curve needs a numeric treatment", None),
    ("api_key in a study file", BASE + 'model "openai/gpt-4o" api_key "sk-123"\n', 12, 23,
     "never put API keys in a study file", None),
    ("unknown model parameter", BASE + 'model "m" temprature 1\n', 12, 11, "unknown model parameter 'temprature'",
     "did you mean 'temperature'?"),
    ("model parameter twice", BASE + 'model "m" temperature 1 temperature 0\n', 12, 25, "model parameter 'temperature' is given twice", None),
    ("replicates zero", BASE + 'model "m" replicates 0\n', 12, 22, "replicates must be at least 1", None),
    ("model listed twice", BASE + 'model "m"\nmodel "m"\n', 13, 1, "model 'm' with these parameters is listed twice", None),
    ("empty model name", BASE + 'model " "\n', 12, 7, "model name is empty", None),
    ("whole number required", BASE.replace("seed 1", "seed 1.5"), 1, 16, "seed must be a whole number, got 1.5", None),
    ("likert labels count", BASE.replace('binary "yes" / "no"', 'likert 1 to 3 labels "a", "b"'), 10, 14,
     "outcome 'buy': a 1-3 scale needs 3 labels, got 2", None),
    ("likert empty", BASE.replace('binary "yes" / "no"', "likert 3 to 3"), 10, 14, "likert scale 3 to 3 is empty", None),
    ("number range empty", BASE.replace('binary "yes" / "no"', "number 5 to -1"), 10, 14, "range 5 to -1 is empty", None),
    ("labels must differ", BASE.replace('binary "yes" / "no"', 'binary "yes" / "Yes"'), 10, 14, "labels must differ", None),
    ("empty label", BASE.replace('binary "yes" / "no"', 'binary " " / "no"'), 10, 14, "labels cannot be empty", None),
    ("unbalanced brace", BASE.replace("{x}.", "{x} {."), 9, 31, "unbalanced brace (write {{ or }} for a literal brace)", None),
    ("not a field name", BASE.replace("{x}.", "{x} {a b}."), 9, 31, "'{a b}' is not a field name", None),
    ("cell value not a level", BASE + "cell x = 3\n", 12, 10, "3.0 is not a level of 'x'", None),
    ("cell boolean is not a number level", BASE + "cell x = true\n", 12, 10, "True is not a level of 'x'", None),
    ("cell names no treatment", BASE + "cell y = 1\n", 12, 6, "'y' is not a treatment", None),
    ("cell listed twice", BASE + "cell x = 1\ncell x = 1\n", 13, 1, "this cell is listed twice", None),
    ("pin a specified covariate", BASE + 'specified s = items.price text "S {s}."\ndesign d: blind with s = items.price\n', 13, 22,
     "'s' is already specified in every prompt", None),
    ("pin without text", BASE + 'unspecified u probe "U ___" as number\ndesign d: blind with u = items.price\n', 13, 22,
     "pinning 'u' needs a sentence to state it", None),
    ("pin unknown covariate", BASE + "design d: blind with othr = items.price\n", 12, 22, "'othr' is not a covariate", "did you mean 'other'?"),
    ("pin refers to a treatment", BASE + "design d: blind with other = x\n", 12, 30, "'x' is not a unit field usable in the pin of 'other'", None),
    ("probe on a specified covariate", BASE + 'specified s = items.price probe "S ___" as number text "S {s}."\n', 12, 33,
     "'s' is specified (stated in the prompt); only unspecified covariates are probed", None),
    ("persona unknown", BASE + "persona pp a: 1\ndesign d: blind with persona p\n", 13, 30, "no persona named 'p'", "did you mean 'pp'?"),
    ("persona in aggregate", BASE + "persona p a: 1\ndesign d: aggregate with persona p\n", 13, 34,
     "an aggregate design asks about the whole population; it cannot take a persona", None),
    ("persona without attributes", BASE + "persona p count 2\n", 12, 1, "persona 'p' has no attributes", None),
    ("persona count zero", BASE + "persona p count 0 a: 1\n", 12, 17, "count must be at least 1", None),
    ("persona attribute twice", BASE + "persona p a: 1 a: 2\n", 12, 16, "persona attribute 'a' is defined twice", None),
    ("persona uniform empty", BASE + "persona p a: uniform 5 to 5\n", 12, 22, "'a': uniform range 5 to 5 is empty", None),
    ("persona sd not positive", BASE + "persona p a: normal 5 sd 0\n", 12, 21, "'a': sd must be positive", None),
    ("persona option twice", BASE + 'persona p a: one of "x", "x"\n', 12, 14, "'a' lists the same option twice", None),
    ("persona some weights", BASE + 'persona p a: one of "x" 50%, "y"\n', 12, 14, "give a weight to every option or to none", None),
    ("persona weights zero", BASE + 'persona p a: one of "x" 0, "y" 0\n', 12, 14, "weights add up to zero", None),
    ("persona describe unknown field", BASE + 'persona p a: 1 describe "I am {b}."\n', 12, 31, "unknown field {b} in a persona description", None),
    ("persona attribute outside describe", BASE.replace("{x}.", "{x} {persona.a}.") + "persona p a: 1\n", 9, 31,
     "{persona.a} in the context: persona attributes belong in the persona's describe text", None),
    ("bare persona attribute outside describe", BASE.replace("Do you buy it?", "At {a}, buy?") + "persona p a: 1\n", 11, 16,
     "{a} in the question of 'buy': persona attributes belong in the persona's describe text", None),
    ("inline rows differ", BASE.replace('row id = "b", price = 4', 'row id = "b", cost = 4'), 4, 7,
     "row 2 has fields id, cost but row 1 has id, price", None),
    ("inline row sets a field twice", BASE.replace('row id = "b", price = 4', 'row id = "b", price = 4, price = 5'), 4, 7,
     "row 2 sets 'price' twice", None),
    ("inline column mixes types", BASE.replace('row id = "b"', "row id = 3"), 2, 1, "column 'id' mixes text and numbers across rows", None),
    ("inline column typed as another type", BASE.replace('row id = "b", price = 4', 'row id = "b", price = 4\n  columns price: boolean'), 5, 11,
     "column 'price' holds integer values; it cannot be boolean", None),
    ("inline column not in the rows", BASE.replace('row id = "b", price = 4', 'row id = "b", price = 4\n  columns prize: money'), 5, 11,
     "no column 'prize' in the rows", "did you mean 'price'?"),
    ("inline key not in the rows", BASE.replace('row id = "b", price = 4', 'row id = "b", price = 4\n  key idx'), 5, 7,
     "key column 'idx' is not in the table", "did you mean 'id'?"),
    ("negative weight", BASE + 'persona p a: one of "x" -1, "y" 2\n', 12, 14, "'a': weights cannot be negative", None),
    ("negative sd", BASE + "persona p a: normal 5 sd -2\n", 12, 21, "'a': sd must be positive", None),
    ("study clause twice", BASE.replace("seed 1", "seed 1 seed 2"), 1, 1, "the study statement gives 'seed' twice", None),
    ("persona clause twice", BASE + "persona p count 2 count 3 a: 1\n", 12, 1, "persona 'p' gives 'count' twice", None),
    ("treatment assignment twice", BASE.replace("as money", "as money between within", 1), 5, 1,
     "treatment 'x' gives 'between/within' twice", None),
    ("covariate text twice", BASE.replace('  text "Another', '  text "x {other}" text "Another'), 6, 1,
     "covariate 'other' gives 'text' twice", None),
    ("model replicates twice", BASE + 'model "m" replicates 2 replicates 3\n', 12, 1, "model 'm' gives 'replicates' twice", None),
    ("design persona twice", BASE + "persona p a: 1\ndesign d: blind with persona p with persona p\n", 13, 1,
     "design 'd' gives 'with persona' twice", None),
    ("invalid escape in a string", BASE.replace('"Do you buy it?"', '"Do you \\x buy it?"'), 11, 12, "invalid string", None),
    ("too many levels", BASE.replace("levels(1, 2)", "levels(0 to 100 step 0.001)"), 5, 36,
     "range has 100001 levels; at most 10001 are allowed", None),
    ("cell sets a treatment twice", BASE + "cell x = 1, x = 2\n", 12, 13, "cell sets 'x' twice", None),
    ("split with a text treatment", BASE.replace("items.price * levels(1, 2) as money", 'levels("a", "b")')
     + "design s: aggregate split 1 to 2\n", 12, 1, "split needs exactly one numeric treatment", None),
    ("inline key repeats", BASE.replace('row id = "b"', 'row id = "a"'), 2, 1,
     "units key 'id' repeats value 'a' (rows 1 and 2); keys must be unique", None),
    ("missing units", BASE.replace('units items\n  row id = "a", price = 2\n  row id = "b", price = 4\n', "").replace("items.price", "2"),
     1, 1, "missing units statement", None),
    ("missing context", BASE.replace('context "You see {id} for {x}."\n', ""), 1, 1, "missing context statement", None),
    ("missing outcome", BASE.replace('outcome buy: binary "yes" / "no"\n  question "Do you buy it?"\n', ""), 1, 1,
     "missing outcome statement", None),
    ("missing treatment", BASE.replace("treatment x = items.price * levels(1, 2) as money\n", "").replace(" for {x}", ""), 1, 1,
     "missing treatment statement", None),
]


@pytest.mark.parametrize("case", SEMANTIC, ids=[c[0] for c in SEMANTIC])
def test_semantic_errors_are_located(case):
    _, text, line, column, message, hint = case
    problem = only_error(text)
    assert message in problem.message, str(problem)
    assert located(problem) == (line, column), str(problem)
    if hint is not None:
        assert problem.hint is not None and hint in problem.hint


def test_several_semantic_errors_are_all_reported():
    text = BASE.replace("{id}", "{idd}").replace("binary", "likert 1 to 3 labels \"a\",") .replace('"yes" / "no"', '"b"')
    text += "analyze nope\nmodel \"m\" api_key \"k\"\n"
    problems = errors_of(text)
    # every error, in file order
    assert [(p.line, p.column) for p in problems] == [(9, 18), (10, 14), (12, 9), (13, 11)]
    assert "{idd}" in problems[0].message
    assert "needs 3 labels" in problems[1].message
    assert "unknown analysis 'nope'" in problems[2].message
    assert "API keys" in problems[3].message


def test_a_broken_treatment_is_reported_once():
    # the context uses {x}; x is broken: no second error saying {x} is unknown
    errors = errors_of(BASE.replace("levels(1, 2)", 'levels(1, "a")'))
    assert len(errors) == 1


def test_warnings_travel_with_errors():
    with pytest.raises(StudyError) as info:
        check_text(BASE.replace("{id}", "{idd}") + "unspecified mood\n", "t.study")
    severities = sorted(p.severity for p in info.value.problems)
    assert severities == ["error", "warning"]


# ------------------------------------------------------------------ data files

def test_csv_missing(study_dir):
    problems = problems_in(study_dir, CSV_BASE.replace("items.csv", "nope.csv"))
    (problem,) = problems  # one error: the names that depend on the table are not reported again
    assert (problem.line, problem.column) == (2, 18)
    assert problem.message.startswith("data/nope.csv: file not found (looked for ")


def test_csv_missing_column(study_dir):
    (problem,) = problems_in(study_dir, CSV_BASE.replace("price: money", "cost: money"))
    assert (problem.line, problem.column) == (2, 18)
    assert problem.message == "data/items.csv: no column 'cost' (columns are: id, price, label)"


def test_csv_bad_value_names_row_line_and_column(study_dir):
    (problem,) = problems_in(study_dir, CSV_BASE.replace("items.csv", "bad.csv").replace("{label}", "{id}"))
    assert (problem.line, problem.column) == (2, 18)
    # row 2 of the data is line 4 of the file (a blank line is skipped)
    assert problem.message == "data/bad.csv: row 2 (line 4), column 'price': 'cheap' is not a money amount"


@pytest.mark.parametrize(
    "file, message",
    [
        ("ragged.csv", "data/ragged.csv: row 2 (line 3) has 1 fields but the header has 2"),
        ("empty.csv", "data/empty.csv: the file is empty (no header row)"),
        ("header_only.csv", "data/header_only.csv: the table has a header but no rows"),
        ("dupcol.csv", "data/dupcol.csv: duplicate column(s) in header: id"),
    ],
)
def test_csv_shape_problems(study_dir, file, message):
    text = CSV_BASE.replace("items.csv", file).replace("  columns price: money\n", "").replace("items.price", "2").replace("{label}", "{id}")
    errors = [p for p in problems_in(study_dir, text) if p.severity == "error"]
    assert errors[0].message == message
    assert (errors[0].line, errors[0].column) == (2, 18)


def test_csv_path_escaping_the_study_folder(study_dir):
    (problem,) = problems_in(study_dir, CSV_BASE.replace("data/items.csv", "../outside.csv"))
    assert (problem.line, problem.column) == (2, 18)
    assert problem.message.startswith('"../outside.csv" points outside the study\'s folder')


def test_csv_absolute_path_outside_is_refused(study_dir):
    outside = study_dir.parent / "outside.csv"
    (problem,) = problems_in(study_dir, CSV_BASE.replace("data/items.csv", str(outside)))
    assert "points outside the study's folder" in problem.message


def test_csv_key_not_in_table(study_dir):
    (problem,) = problems_in(study_dir, CSV_BASE.replace("key id", "key idd"))
    assert (problem.line, problem.column) == (3, 7)
    assert problem.message == "key column 'idd' is not in the table" and problem.hint == "did you mean 'id'?"


def test_csv_column_typed_twice(study_dir):
    (problem,) = problems_in(study_dir, CSV_BASE.replace("price: money", "price: money, price: number"))
    assert (problem.line, problem.column) == (4, 25)
    assert problem.message == "column 'price' is typed twice"


def test_persona_csv_and_attributes(study_dir):
    text = CSV_BASE + 'persona p from "data/people.csv" age: 3\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 1)
    assert problem.message == "a persona comes either from a CSV or from attribute draws, not both"


def test_persona_csv_missing(study_dir):
    (problem,) = problems_in(study_dir, CSV_BASE + 'persona p from "data/nobody.csv"\n')
    assert (problem.line, problem.column) == (9, 16)
    assert problem.message.startswith("data/nobody.csv: file not found")


def test_baseline_missing_column(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id, x = x compare buy = nope\nanalyze baseline\n'
    (problem,) = problems_in(study_dir, text)  # and no second "analysis cannot run" error
    assert (problem.line, problem.column) == (9, 10)
    assert problem.message.startswith("data/human.csv: no column 'nope'")


def test_baseline_match_unknown_treatment(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id, x = x, y = x compare buy = share\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 51)
    assert problem.message == "match: 'y' is neither 'unit' nor a treatment"


def test_baseline_compare_unknown_outcome(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id, x = x compare by = share\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 58)
    assert problem.message == "compare: 'by' is not an outcome" and problem.hint == "did you mean 'buy'?"


def test_baseline_without_compare(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id, x = x\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 1)
    assert problem.message.startswith("baseline needs `compare OUTCOME = COLUMN`")


def test_baseline_treatment_not_matched(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id compare buy = share\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 1)
    assert problem.message == "baseline needs `match x = COLUMN` (the column holding the level of 'x')"


def test_baseline_where_matches_nothing(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = id, x = x compare buy = share where wave = 7\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 1)
    assert problem.message == "baseline: no rows match the where filter ({'wave': 7.0})"


def test_baseline_units_do_not_match(study_dir):
    text = CSV_BASE + 'baseline "data/human.csv" match unit = x, x = x compare buy = share\n'
    (problem,) = problems_in(study_dir, text)
    assert (problem.line, problem.column) == (9, 1)
    assert problem.message == "baseline: no value of column 'x' matches a unit key (id)"


def test_baseline_warnings(study_dir):
    (study_dir / "data" / "partial.csv").write_text("id,x,share\na,1,0.5\nzz,1,0.4\na,3,0.2\n")
    text = CSV_BASE + 'baseline "data/partial.csv" match unit = id, x = x compare buy = share\n'
    from langhelp import check_in

    _, warnings = check_in(study_dir, text)
    messages = sorted(w.message for w in warnings)
    assert messages == [
        "baseline column 'x' has values that are not levels of 'x': [3]",
        "baseline rows for units not in the study are ignored: zz",
    ]
    assert all((w.line, w.column) == (9, 1) for w in warnings)


def test_study_file_not_utf8(tmp_path):
    from llmexp import check as check_study

    path = tmp_path / "latin.study"
    path.write_bytes(BASE.replace("Do you", "D\xe9j\xe0").encode("latin-1"))
    with pytest.raises(StudyError) as info:
        check_study(path)
    assert "not UTF-8 text" in info.value.problems[0].message


def test_study_file_missing(tmp_path):
    from llmexp import check as check_study
    from llmexp.errors import LlmexpError

    with pytest.raises(LlmexpError, match="no such study file"):
        check_study(tmp_path / "nope.study")


@pytest.mark.parametrize(
    "column_type, content, message",
    [
        ("boolean", "id,flag\na,maybe\n", "data/typed.csv: row 1 (line 2), column 'flag': 'maybe' is not true/false"),
        ("number", "id,flag\na,inf\n", "data/typed.csv: row 1 (line 2), column 'flag': 'inf' is not a finite number"),
        ("integer", "id,flag\na,2.5\n", "data/typed.csv: row 1 (line 2), column 'flag': '2.5' is not a whole number"),
        ("money", "id,flag\na,\n", "data/typed.csv: row 1 (line 2), column 'flag': empty"),
        ("money", "id,flag\na,$1,000.50\n", None),  # a quoted-free comma makes a third field
    ],
)
def test_csv_typed_values(study_dir, column_type, content, message):
    (study_dir / "data" / "typed.csv").write_text(content)
    text = CSV_BASE.replace("items.csv", "typed.csv").replace("price: money", f"flag: {column_type}")
    text = text.replace("items.price", "2").replace("{label}", "{id}")
    problems = problems_in(study_dir, text)
    if message is None:
        assert "has 3 fields but the header has 2" in problems[0].message
    else:
        assert [p.message for p in problems] == [message]


def test_csv_money_accepts_dollar_signs_and_thousands(study_dir):
    (study_dir / "data" / "typed.csv").write_text('id,price,label\na,"$1,000.50",A\n')
    from langhelp import check_in

    study, _ = check_in(study_dir, CSV_BASE.replace("items.csv", "typed.csv"))
    assert study.units.rows[0]["price"] == 1000.5


def test_csv_malformed(study_dir):
    import csv

    (study_dir / "data" / "huge.csv").write_text("id,price\na," + "9" * (csv.field_size_limit() + 1) + "\n")
    text = CSV_BASE.replace("items.csv", "huge.csv").replace("{label}", "{id}")
    (problem,) = problems_in(study_dir, text)
    assert problem.message.startswith("data/huge.csv: malformed CSV (field larger than field limit")


def test_study_path_is_a_folder(tmp_path):
    from llmexp import check as check_study
    from llmexp.errors import LlmexpError

    with pytest.raises(LlmexpError, match=r"cannot read \(Is a directory\)"):
        check_study(tmp_path)


def test_nul_in_a_data_path_is_a_located_error_without_follow_on_errors(tmp_path):
    """Found by the fuzzer: an escaped NUL in a CSV path used to raise ValueError."""
    from llmexp import check_text
    from llmexp.errors import StudyError

    text = (
        'study "s"\n'
        'units products from "data/x\\0.csv"\n'
        "treatment price = products.regular_price * levels(1, 2)\n"
        'context "{price}"\n'
        'outcome buy: binary "yes" / "no" question "Buy?"\n'
        "analyze demand_curve\n"
    )
    with pytest.raises(StudyError) as caught:
        check_text(text, str(tmp_path / "s.study"))
    errors = [p for p in caught.value.problems if p.severity == "error"]
    assert [(p.line, p.column) for p in errors][:1] == [(2, 21)]
    assert "NUL" in errors[0].message
    assert not any("cannot run on this study" in p.message for p in errors)
