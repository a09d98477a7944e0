"""The study language: grammar loading, parsing to an AST, validation to a `Study`."""

from __future__ import annotations

from pathlib import Path

from llmexp.errors import Problem
from llmexp.spec import Study


def check_study(path: str | Path) -> tuple[Study, list[Problem]]:
    """Parse and validate a `.study` file; returns the study and its warnings.

    Raises `StudyError` listing every error found.
    """
    from llmexp.lang.parser import parse_file
    from llmexp.lang.validate import validate

    return validate(parse_file(path))


def check_text(text: str, filename: str = "<study>") -> tuple[Study, list[Problem]]:
    """Like `check_study` for text in memory (paths resolve from the current folder)."""
    from llmexp.lang.parser import parse_text
    from llmexp.lang.validate import validate

    return validate(parse_text(text, filename))


def load_study(path: str | Path) -> Study:
    return check_study(path)[0]
