"""A study file is untrusted input: parsing is linear in its size (error recovery included),
error output is capped, strings cost no memory beyond their text, the size is limited, the
CSV header check is linear, and `check` warns about endpoints that would receive API keys.

Timings are not asserted here (see benchmarks/parser_scaling.py); the tests count work."""

from __future__ import annotations

import functools
import random
import re
from pathlib import Path

import pytest
from langhelp import BASE, problems_of, token_soup

from llmexp import check_text
from llmexp.data import read_table
from llmexp.errors import MAX_SHOWN_PROBLEMS, DataError, LlmexpError, Problem, StudyError
from llmexp.lang import ast
from llmexp.lang import parser as lang_parser

REPO = Path(__file__).resolve().parents[2]
STUDIES = sorted((REPO / "studies").glob("*.study"))


# ------------------------------------------------------------------ reference (old) code
def reference_spans(text: str) -> list[tuple[int, int]]:
    """The statement splitter as it was (a per-character loop): the new one must agree."""
    starts = []
    i, n = 0, len(text)
    line_start = True
    keyword_re = re.compile(r"(" + "|".join(lang_parser.STATEMENT_KEYWORDS) + r")\b")
    while i < n:
        ch = text[i]
        if text.startswith('"""', i):
            end = text.find('"""', i + 3)
            i = n if end < 0 else end + 3
            line_start = False
            continue
        if ch == '"':
            j = i + 1
            while j < n and text[j] not in '"\n':
                j += 2 if text[j] == "\\" else 1
            i = j + 1
            line_start = False
            continue
        if ch == "#":
            while i < n and text[i] != "\n":
                i += 1
            continue
        if ch == "\n":
            line_start = True
            i += 1
            continue
        if ch in " \t\r":
            i += 1
            continue
        if line_start and keyword_re.match(text, i):
            starts.append(i)
        line_start = False
        i += 1
    if not starts or starts[0] != 0:
        starts.insert(0, 0)
    return list(zip(starts, starts[1:] + [n], strict=True))


def reference_problems(text: str, filename: str) -> list[Problem]:
    """The old (quadratic) recovery: each statement parsed inside a blanked copy of the file."""
    problems = []
    for start, end in reference_spans(text):
        chunk = re.sub(r"[^\n]", " ", text[:start]) + text[start:end] + re.sub(r"[^\n]", " ", text[end:])
        try:
            lang_parser.parser().parse(chunk)
        except lang_parser.UnexpectedInput as exc:
            ending = "file" if not text[end:].strip() else "statement"
            problems.append(lang_parser._syntax_problem(exc, chunk, filename, ending))
    return problems


def mutated_studies(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    texts = [p.read_text() for p in STUDIES]
    pieces = ['"', '"""', "\\", "\n", "#", "study", "\nmodel", "\n  units", " seed", "=", ",", "\t", "\r"]
    out = []
    for _ in range(count):
        text = rng.choice(texts)
        for _ in range(rng.randint(1, 5)):
            i = rng.randrange(len(text))
            cut = i + rng.randint(1, 30) if rng.random() < 0.3 else i  # delete a span, or insert a piece
            text = text[:i] + (rng.choice(pieces) if cut == i else "") + text[cut:]
        out.append(text)
    return out


# ------------------------------------------------------------------ linear recovery
def test_statement_splitter_agrees_with_the_per_character_reference():
    edge = ['a "x\nstudy "y"', 'study "a\\\nmodel"\nmodel "b"', '  model\n\tstudy #c\n"""\nunits"""\ncell',
            'x "\\', '"""', 'study "a" # c\n  model "m"\r\nanalyze a', "modes\nmodel\nmodel_x\nmodelx"]
    for text in edge + mutated_studies(300, seed=3) + [token_soup(5_000, seed=s) for s in range(20)]:
        assert lang_parser._statement_spans(text) == reference_spans(text), text[:200]


@pytest.mark.filterwarnings("ignore:invalid escape sequence:DeprecationWarning")  # mutated "\\o" strings
def test_recovered_errors_are_the_same_as_with_the_blanked_copies():
    """Every message and file:line:col as the old recovery gave them (the first problems of
    a file are explained; the new code only shortens those past the display cap)."""
    compared = 0
    for text in mutated_studies(150, seed=7) + [token_soup(3_000, seed=s) for s in range(10)]:
        try:
            check_text(text, "f.study")
        except StudyError as exc:
            try:
                lang_parser.parser().parse(text)
            except lang_parser.UnexpectedInput:
                expected = reference_problems(text, "f.study")
                shown = exc.problems[:MAX_SHOWN_PROBLEMS]
                assert shown == expected[:MAX_SHOWN_PROBLEMS], text[:300]
                assert len(exc.problems) == len(expected)
                assert all(p.line is not None for p in exc.problems)
                compared += 1
        except LlmexpError:
            pass
    assert compared > 50


class CountingParser:
    """Stands in for the lark parser and counts the characters handed to it."""

    def __init__(self, real):
        self.real, self.calls, self.chars = real, 0, 0

    def parse(self, text):
        self.calls += 1
        self.chars += len(text)
        return self.real.parse(text)

    def __getattr__(self, name):
        return getattr(self.real, name)


@pytest.mark.parametrize("size", [20_000, 80_000, 320_000])
def test_recovery_parses_each_character_at_most_twice(size, monkeypatch):
    real = lang_parser.parser()
    counting = CountingParser(real)
    monkeypatch.setattr(lang_parser, "parser", lambda: counting)
    text = token_soup(size, seed=size)
    with pytest.raises(StudyError) as info:
        lang_parser.parse_text(text, "soup.study")
    statements = len(lang_parser._statement_spans(text))
    assert statements > size // 400  # many broken statements, so the old way was quadratic
    # once as a whole, then each statement once (the old recovery parsed len(text) per statement)
    assert counting.chars <= 2 * len(text)
    assert counting.calls == statements + 1
    assert len(info.value.problems) > MAX_SHOWN_PROBLEMS


def test_error_output_is_capped_with_a_count_of_the_rest():
    with pytest.raises(StudyError) as info:
        lang_parser.parse_text(token_soup(100_000, seed=5), "soup.study")
    problems = info.value.problems
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_SHOWN_PROBLEMS + 1
    assert lines[:-1] == [str(p) for p in problems[:MAX_SHOWN_PROBLEMS]]
    assert lines[-1] == f"... and {len(problems) - MAX_SHOWN_PROBLEMS:,} more errors"
    assert all(p.line is not None and p.column is not None for p in problems)  # the rest are located too


def test_every_problem_is_one_line_even_for_a_multiline_string_token():
    (problem,) = problems_of('context """a\nb""" """c\nd"""')
    assert problem.message.startswith('unexpected string """c\\nd"""; expected') and "\n" not in str(problem)


def test_one_repeated_clause_many_times_prints_a_capped_list():
    text = 'study "s" ' + "seed 1 " * 5_000
    with pytest.raises(StudyError) as info:
        lang_parser.parse_text(text, "s.study")
    assert len(info.value.problems) == 4_999
    lines = str(info.value).splitlines()
    assert len(lines) == MAX_SHOWN_PROBLEMS + 1 and lines[-1] == "... and 4,979 more errors"


def test_a_short_list_is_not_capped():
    problems = [Problem(f"p{i}", "f", i + 1, 1) for i in range(MAX_SHOWN_PROBLEMS)]
    assert len(str(StudyError(problems)).splitlines()) == MAX_SHOWN_PROBLEMS
    mixed = problems + [Problem("w", "f", 99, 1, severity="warning"), Problem("e", "f", 100, 1)]
    assert str(StudyError(mixed)).splitlines()[-1] == "... and 2 more problems (1 errors, 1 warnings)"


# ------------------------------------------------------------------ size limit
def test_text_over_the_size_limit_is_refused_naming_the_limit():
    text = 'study "s"\ncontext "' + "x" * lang_parser.MAX_STUDY_BYTES + '"\n'
    (problem,) = problems_of(text, "big.study")
    assert "5,000,000 bytes (5 MB)" in problem.message and problem.file == "big.study"
    # multi-byte characters count as bytes: 1.7 M characters of 3 bytes each is over the limit
    (problem,) = problems_of('context "' + "€" * 1_700_000 + '"', "big.study")
    assert "largest study file" in problem.message


def test_text_at_the_size_limit_is_read():
    filler = lang_parser.MAX_STUDY_BYTES - len(BASE) - 100
    tree = lang_parser.parse_text(BASE + "# " + "x" * filler + "\n", "t.study")
    assert len(tree.statements) == 6


def test_file_over_the_size_limit_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.study"
    path.write_bytes(b"#" * (lang_parser.MAX_STUDY_BYTES + 1))
    monkeypatch.setattr(Path, "read_text", lambda *a, **k: pytest.fail("the file was read"))
    with pytest.raises(StudyError) as info:
        lang_parser.parse_file(path)
    assert "5,000,001 bytes" in str(info.value) and str(path) in str(info.value)


# ------------------------------------------------------------------ strings
OLD_STRING = re.compile(r'"(\\.|[^"\\\n])*"')
OLD_LONG_STRING = re.compile(r'"""(.|\n)*?"""')


def grammar_pattern(name: str) -> re.Pattern:
    return re.compile(lang_parser.parser().get_terminal(name).pattern.to_regexp())


def test_string_patterns_match_exactly_what_the_backtracking_ones_did():
    rng = random.Random(11)
    new_string, new_long = grammar_pattern("STRING"), grammar_pattern("LONG_STRING")
    assert "*+" in new_string.pattern and "*+" in new_long.pattern  # possessive: no backtracking stack
    alphabet = ['"', '"', "\\", "\n", "a", " ", "{", "é"]
    for _ in range(20_000):
        body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        for old, new, text in ((OLD_STRING, new_string, '"' + body), (OLD_LONG_STRING, new_long, '"""' + body)):
            a, b = old.match(text), new.match(text)
            assert (a and a.end()) == (b and b.end()), repr(text)


def test_a_long_string_parses_to_its_value():
    value = ("word " * 200_000) + 'q \\" e'
    (context,) = [s for s in lang_parser.parse_text(f'context "{value}"').statements]
    assert context.text.value == value.replace('\\"', '"')
    (context,) = lang_parser.parse_text('context """\n' + "line\n" * 100_000 + '"x"\n"""').statements
    assert context.text.value.count("\n") == 100_000


# ------------------------------------------------------------------ CSV header
def test_duplicate_header_check_on_40000_columns(tmp_path):
    names = [f"c{i}" for i in range(40_000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names) + "\n" + ",".join("1" for _ in names) + "\n")
    types, rows = read_table(path, "wide.csv")
    assert len(types) == 40_000 and rows[0]["c39999"] == 1
    path.write_text(",".join(names + ["c7", "c123", "c7"]) + "\n" + ",".join("1" for _ in range(40_003)) + "\n")
    with pytest.raises(DataError, match=r"wide.csv: duplicate column\(s\) in header: c123, c7$"):
        read_table(path, "wide.csv")


def test_thousands_of_duplicate_columns_make_one_short_error_line(tmp_path):
    names = [f"c{i}" for i in range(20_000)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(names + names) + "\n" + ",".join("1" for _ in range(40_000)) + "\n")
    with pytest.raises(DataError) as info:
        read_table(path, "wide.csv")
    message = str(info.value)
    assert message.startswith("wide.csv: duplicate column(s) in header: c0, c1, c10, c100, ")
    assert message.endswith(" and 19,980 more") and len(message) < 300  # it listed all 20,000: 148,967 characters


# ------------------------------------------------------------------ positions of field errors
def reference_offset_pos(s: ast.Str, index: int) -> tuple[int, int]:
    """The position rule as it was (a walk of the raw text per error, quadratic over many
    errors in one string): the indexed one must agree with it everywhere."""
    raw, raw_index, value_index = s.raw, 1, 0
    while value_index < index and raw_index < len(raw):
        raw_index += 2 if raw[raw_index] == "\\" else 1
        value_index += 1
    prefix = raw[:raw_index]
    if prefix.count("\n"):
        return s.pos.line + prefix.count("\n"), raw_index - prefix.rfind("\n")
    return s.pos.line, s.pos.column + raw_index


def test_field_error_positions_agree_with_the_walk_of_the_raw_text():
    rng = random.Random(5)
    for _ in range(2_000):
        raw = '"' + "".join(rng.choice(["a", "\n", "\\", "{", "x", " "]) for _ in range(rng.randint(0, 30))) + '"'
        s = ast.Str(raw[1:-1], raw, ast.Pos(rng.randint(1, 9), rng.randint(1, 9)))
        for index in range(len(raw) + 2):
            found = s.offset_pos(index)
            assert (found.line, found.column) == reference_offset_pos(s, index), (raw, index)


def test_many_field_errors_in_one_string_index_it_once(monkeypatch):
    """The unknown `{field}`s of a string are located from one index of that string, built
    as often for 2,000 errors as for 20 (a walk per error took 104 s for 20,000 fields in a
    160 KB file, and minutes at 1.4 MB)."""
    built = []
    scan = ast.Str._raw_starts.func
    monkeypatch.setattr(ast.Str, "_raw_starts", functools.cached_property(lambda s: built.append(1) or scan(s)))
    ast.Str._raw_starts.__set_name__(ast.Str, "_raw_starts")

    def index_builds(fields: int) -> int:
        built.clear()
        problems = problems_of(BASE.replace('context "You see {id} for {x}."', 'context "' + "a {nope} " * fields + '"'))
        assert sum("nope" in p.message for p in problems) >= min(fields, MAX_SHOWN_PROBLEMS)
        assert [p.column for p in problems if "nope" in p.message][:3] == [12, 21, 30]
        return len(built)

    assert 0 < index_builds(2_000) == index_builds(20) <= 2


# ------------------------------------------------------------------ endpoints
def model_warnings(line: str) -> list[Problem]:
    _, warnings = check_text(BASE + line + "\n", "t.study")
    return [w for w in warnings if "API keys" in w.message]


@pytest.mark.parametrize(
    "url, host",
    [("http://evil.example.com:8000/v1", "evil.example.com"), ("https://10.0.0.5/v1", "10.0.0.5"),
     ("http://[2001:db8::1]:80/", "2001:db8::1"), ("api.example.org:443", "api.example.org")],
)
def test_non_loopback_api_base_warns_at_its_value(url, host):
    line = f'model "openai/gpt-4o-mini" temperature 0 api_base "{url}"'
    (warning,) = model_warnings(line)
    assert warning.severity == "warning"
    assert (warning.line, warning.column) == (BASE.count("\n") + 1, line.index(f'"{url}"') + 1)  # the value's
    assert warning.message == (
        f"api_base {url!r}: your API keys for this provider would be sent to {host}; "
        f"`llmexp run` refuses it unless you pass --allow-endpoint {host}"
    )


@pytest.mark.parametrize(
    "url", ["http://localhost:11434/v1", "http://127.0.0.1:8000/v1", "http://127.9.9.9/", "http://[::1]:8/v1",
            "http://LOCALHOST/v1", "http://ollama.localhost/"],
)
def test_loopback_api_base_gives_no_warning(url):
    assert model_warnings(f'model "openai/gpt-4o-mini" api_base "{url}"') == []


def test_any_url_valued_param_of_a_synthetic_model_is_an_endpoint():
    (warning,) = model_warnings('model "synthetic/x" base_url "http://h.example/v1"')
    assert "sent to h.example" in warning.message and warning.message.startswith("base_url ")


def test_check_command_prints_the_endpoint_warning(tmp_path, capsys):
    from llmexp.cli import main

    path = tmp_path / "s.study"
    path.write_text(BASE + 'model "openai/gpt-4o-mini" api_base "http://keys.example.net/v1"\n')
    main(["check", str(path)])
    err = capsys.readouterr().err
    assert f"{path}:12:37: warning: api_base" in err and "--allow-endpoint keys.example.net" in err
