"""Mutated study files never crash the checker: only the project's own errors come out,
and every problem points at a line and a column."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from langhelp import BASE

from llmexp import check_text
from llmexp.errors import LlmexpError, StudyError
from llmexp.lang.parser import STATEMENT_KEYWORDS

STUDIES = Path(__file__).resolve().parents[2] / "studies"

SEEDS = [
    (BASE, "t.study"),
    ((STUDIES / "asian_disease.study").read_text(), str(STUDIES / "asian_disease.study")),
    ((STUDIES / "discount_deadline.study").read_text(), str(STUDIES / "discount_deadline.study")),
    ((STUDIES / "demand_quick.study").read_text(), str(STUDIES / "demand_quick.study")),
]

WORDS = list(STATEMENT_KEYWORDS) + [
    "levels", "to", "step", "as", "money", "text", "integer", "between", "within", "probe", "one", "of",
    "uniform", "normal", "sd", "with", "persona", "split", "and", "without", "probes", "replicates",
    "match", "compare", "retest", "count", "where", "key", "columns", "row", "from", "describe", "true",
    "false", "binary", "categorical", "likert", "labels", "number", "probability", "share", "question",
    "blind", "unblinded", "aggregate", "api_key", "level", "x", "price", "-", "+", "*", "/", "(", ")",
    ",", ":", "=", "%", ".", '"', '"""', "{", "}", "{x}", "{price}", "#", "\n", "0", "-1", "1e9",
    "0.5", "99999", '"a"', '""', '"../x.csv"', '"data/none.csv"', "\t", "é", "\\",
]


@st.composite
def mutated(draw):
    text, filename = draw(st.sampled_from(SEEDS))
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "token", "line"]))
        n = len(text)
        if kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            text = text[:i] + text[i + draw(st.integers(1, 12)):]
        elif kind == "duplicate" and n:
            i = draw(st.integers(0, n - 1))
            j = min(n, i + draw(st.integers(1, 30)))
            text = text[:j] + text[i:j] + text[j:]
        elif kind == "swap" and n > 1:
            i, j = sorted((draw(st.integers(0, n - 1)), draw(st.integers(0, n - 1))))
            text = text[:i] + text[j] + text[i + 1:j] + text[i] + text[j + 1:]
        elif kind == "insert":
            i = draw(st.integers(0, n))
            word = draw(st.sampled_from(WORDS))
            text = text[:i] + f" {word} " + text[i:]
        elif kind == "token":
            tokens = text.split(" ")
            i, j = draw(st.integers(0, len(tokens) - 1)), draw(st.integers(0, len(tokens) - 1))
            action = draw(st.sampled_from(["delete", "duplicate", "swap", "replace"]))
            if action == "delete":
                del tokens[i]
            elif action == "duplicate":
                tokens.insert(i, tokens[i])
            elif action == "swap":
                tokens[i], tokens[j] = tokens[j], tokens[i]
            else:
                tokens[i] = draw(st.sampled_from(WORDS))
            text = " ".join(tokens)
        else:
            lines = text.split("\n")
            i, j = draw(st.integers(0, len(lines) - 1)), draw(st.integers(0, len(lines) - 1))
            action = draw(st.sampled_from(["delete", "duplicate", "swap"]))
            if action == "delete":
                del lines[i]
            elif action == "duplicate":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            text = "\n".join(lines)
    return text, filename


@settings(max_examples=300, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(mutated())
def test_mutated_studies_fail_only_with_located_llmexp_errors(case):
    text, filename = case
    try:
        _, warnings = check_text(text, filename)
    except StudyError as exc:
        assert exc.problems, "a StudyError must carry its problems"
        for problem in exc.problems:
            assert problem.line is not None and problem.column is not None, str(problem)
            assert problem.line >= 1 and problem.column >= 1, str(problem)
            assert problem.line <= text.count("\n") + 1, str(problem)
        return
    except LlmexpError:
        return
    for warning in warnings:
        assert warning.line is not None and warning.column is not None, str(warning)
