"""Persona rows drawn without replacement and with quotas (issue 11): the same person never
appears twice in a cell, each cell's count splits by the quota, draws are seeded, and every
impossible request is an error at its clause."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from llmexp.compiler import compile_study
from tests.lang.langhelp import check_in, problems_in

STUDY = """study "t" seed 1
units items
  row id = "tea", price = 2
  row id = "jam", price = 4
  row id = "oil", price = 6
treatment x = items.price * levels(1, 2, 3) as money
context "You see {id} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
persona people from "data/people.csv" count 10 without replacement
design b: blind with persona people
"""
QUOTA = '  quota gender "F" 50%, "M" 50%\n'


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "data").mkdir()
    rows = "".join(f"{i},{'F' if i <= 4 else 'M'},{20 + i}\n" for i in range(1, 11))  # 4 F, 6 M
    (tmp_path / "data" / "people.csv").write_text("pid,gender,age\n" + rows)
    return tmp_path


def trials_in(folder: Path, text: str):
    study, _ = check_in(folder, text)
    return compile_study(study)


def people_per_cell(trials) -> dict[tuple[str, str], list[str]]:
    return {key: list(g.persona_id) for key, g in trials.groupby(["unit_id", "cell"])}


def test_the_same_person_never_appears_twice_in_a_cell(folder):
    cells = people_per_cell(trials_in(folder, STUDY))
    assert len(cells) == 9
    for people in cells.values():  # all 10 rows, each once: the whole table, shuffled
        assert sorted(people) == sorted(f"people-row{i}" for i in range(1, 11))
    assert len({tuple(p) for p in cells.values()}) > 1  # each cell draws its own order
    # with replacement (the default), the same 10-of-10 draw repeats people: the check can fail
    drawn = people_per_cell(trials_in(folder, STUDY.replace(" without replacement", "")))
    assert any(len(set(p)) < len(p) for p in drawn.values())


def test_draws_are_seeded(folder):
    text = STUDY.replace("count 10", "count 4")
    first, again = people_per_cell(trials_in(folder, text)), people_per_cell(trials_in(folder, text))
    assert first == again
    other = people_per_cell(trials_in(folder, text.replace("seed 1", "seed 2")))
    assert other != first


def test_golden_prompt_of_a_row_drawn_without_replacement(folder):
    trials = trials_in(folder, STUDY.replace("count 10", "count 2"))
    row = trials[(trials.unit_id == "tea") & (trials.cell == "x=1")].iloc[0]
    person = json.loads(row["persona"])
    assert [m["content"] for m in json.loads(row["messages"])] == [
        "Imagine you are the person in the situation below. Answer as that person would, in their own voice.",
        f"About you: pid: {person['pid']}; gender: {person['gender']}; age: {person['age']}.\n\n"
        'You see tea for $2.00.\n\nDo you buy it?\n\nAnswer with exactly one of: "yes" or "no".',
    ]
    assert row["persona_id"] == f"people-row{person['pid']}"


@pytest.mark.parametrize(("count", "women", "men"), [(6, 3, 3), (5, 3, 2), (7, 4, 3)])
def test_quota_splits_every_cell_by_the_shares(folder, count, women, men):
    text = STUDY.replace("count 10 without replacement\n", f"count {count} without replacement\n{QUOTA}")
    trials = trials_in(folder, text)
    for _, cell in trials.groupby(["unit_id", "cell"]):
        genders = Counter(json.loads(p)["gender"] for p in cell.persona)
        assert genders == {"F": women, "M": men}
        assert cell.persona_id.is_unique


def test_quota_with_replacement_keeps_the_split_and_may_repeat(folder):
    text = STUDY.replace("count 10 without replacement", 'count 8\n  quota gender "F" 75%, "M" 25%')
    trials = trials_in(folder, text)
    repeated = False
    for _, cell in trials.groupby(["unit_id", "cell"]):
        assert Counter(json.loads(p)["gender"] for p in cell.persona) == {"F": 6, "M": 2}  # 6 F drawn from 4 rows
        repeated |= not cell.persona_id.is_unique
    assert repeated


@pytest.mark.parametrize(
    ("old", "new", "message", "line", "column"),
    [
        ("count 10", "count 11", "persona 'people': count 11 without replacement needs 11 rows per cell; data/people.csv has 10", 10, 45),
        (
            "count 10",
            "count 10\n" + QUOTA.rstrip("\n"),
            "persona 'people': quota gender = 'F' needs 5 rows per cell without replacement; data/people.csv has 4",
            11,
            9,
        ),
        ("count 10", 'count 6\n  quota gender "F" 50%, "X" 50%', "persona 'people': no row of data/people.csv has gender = 'X'", 11, 25),
        ("count 10", 'count 6\n  quota gender "F" 50%, "M" 40%', "persona 'people': quota shares add up to 90%, not 100%", 11, 9),
        ("count 10", 'count 6\n  quota gender "F" 50%, "F" 50%', "persona 'people': quota lists 'F' twice", 11, 25),
        ("count 10", 'count 6\n  quota gendr "F" 50%, "M" 50%', "persona 'people': quota column 'gendr' is not a column of data/people.csv", 11, 9),
        ("count 10", 'count 6\n  quota gender "F" 100%, "M" 0%', "persona 'people': a quota share must be above 0%", 11, 30),
        (
            'persona people from "data/people.csv" count 10 without replacement',
            "persona people count 2 without replacement\n  age: uniform 20 to 30",
            "persona 'people': without replacement and quota apply to rows read from a CSV (from \"people.csv\")",
            10,
            1,
        ),
    ],
)
def test_sampling_errors(folder, old, new, message, line, column):
    errors = [p for p in problems_in(folder, STUDY.replace(old, new)) if p.severity == "error"]
    assert [(e.message, e.line, e.column) for e in errors] == [(message, line, column)]


def test_repeated_clause_is_reported(folder):
    [error] = problems_in(folder, STUDY.replace("without replacement", "without replacement without replacement"))
    assert (error.message, error.line, error.column) == ("persona 'people' gives 'without replacement' twice", 10, 1)
