"""Helpers for the language tests: a small valid study and ways to check variants of it."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmexp import check_text
from llmexp.errors import StudyError

# A small valid study. Line numbers matter: error tests point at positions in it.
BASE = '''study "t" seed 1
units items
  row id = "a", price = 2
  row id = "b", price = 4
treatment x = items.price * levels(1, 2) as money
unspecified other
  probe "Another costs $___." as money
  text "Another costs {other}."
context "You see {id} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
'''


def problems_of(text: str, filename: str = "t.study"):
    """The problems of an invalid study (fails the test if the study is valid)."""
    with pytest.raises(StudyError) as info:
        check_text(text, filename)
    return info.value.problems


def errors_of(text: str, filename: str = "t.study"):
    return [p for p in problems_of(text, filename) if p.severity == "error"]


def only_error(text: str, filename: str = "t.study"):
    """The one error of a study that has exactly one."""
    errors = errors_of(text, filename)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


@pytest.fixture
def study_dir(tmp_path: Path) -> Path:
    """A study folder with a few CSVs under data/."""
    data = tmp_path / "data"
    data.mkdir()
    (data / "items.csv").write_text("id,price,label\na,2,Apple\nb,4.5,Bread\n")
    (data / "people.csv").write_text("pid,age,city\n1,30,Oslo\n2,40,Rome\n3,50,Lima\n")
    (data / "human.csv").write_text("id,x,n,share,share_re,wave\na,1,10,0.5,0.4,1\na,2,12,0.3,0.35,1\nb,1,9,0.6,0.6,1\nb,2,11,0.2,0.1,2\n")
    (data / "bad.csv").write_text("id,price\na,2\n\nb,cheap\n")
    (data / "ragged.csv").write_text("id,price\na,2\nb\n")
    (data / "empty.csv").write_text("")
    (data / "header_only.csv").write_text("id,price\n")
    (data / "dupcol.csv").write_text("id,id\na,b\n")
    (tmp_path.parent / "outside.csv").write_text("id,price\na,1\n")
    return tmp_path


CSV_BASE = '''study "t" seed 1
units items from "data/items.csv"
  key id
  columns price: money
treatment x = items.price * levels(1, 2)
context "You see {label} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
'''


def check_in(folder: Path, text: str, name: str = "s.study"):
    """Write a study into `folder` and check it there (paths resolve from that folder)."""
    path = folder / name
    path.write_text(text)
    return check_text(text, str(path))


def problems_in(folder: Path, text: str, name: str = "s.study"):
    with pytest.raises(StudyError) as info:
        check_in(folder, text, name)
    return info.value.problems


def token_soup(size: int, seed: int = 1) -> str:
    """About `size` characters of the grammar's own tokens in random order (keywords,
    punctuation, names, numbers, strings, comments), separated by blanks and line breaks:
    almost every statement in it is broken. Used to measure how parsing scales."""
    import random

    from lark.lexer import PatternStr

    from llmexp.lang.parser import parser

    rng = random.Random(seed)
    words = sorted({t.pattern.value for t in parser().terminals if isinstance(t.pattern, PatternStr)})
    samples = {
        "NAME": ["price", "x", "buy", "items", "blind"],
        "NUMBER": ["1", "2.5", "0", "10"],
        "STRING": ['"a"', '"yes"', '"{x} costs"', '"esc \\" q"'],
        "LONG_STRING": ['"""two\nlines"""'],
        "COMMENT": ["# a comment\n"],
    }
    pool = words * 2 + [s for group in samples.values() for s in group]
    parts, length = [], 0
    while length < size:
        token = rng.choice(pool)
        parts.append(token)
        parts.append("\n" if rng.random() < 0.15 else " ")
        length += len(token) + 1
    return "".join(parts)
