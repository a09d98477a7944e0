"""The study language: grammar loading, parsing to an AST, validation to a `Study`.

The validator checks each ``analyze`` name against a catalogue of analyses that its caller
passes in (`llmexp.analysis.catalogue()`, handed over by `llmexp.load`, `llmexp.check` and the
CLI): the language layer never imports the analysis layer above it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from llmexp.errors import Problem
from llmexp.spec import Study


class AnalysisRule(Protocol):
    """What the validator asks of an analysis: why it cannot run on a study (None: it can).

    During validation `study` is a partial study: every field but ``analyses`` is set."""

    def unsupported(self, study: Study) -> str | None: ...


# Analysis name -> its rule, in the order "choose from ..." lists them.
AnalysisCatalogue = Mapping[str, AnalysisRule]


def check_study(path: str | Path, *, analyses: AnalysisCatalogue) -> tuple[Study, list[Problem]]:
    """Parse and validate a `.study` file; returns the study and its warnings.

    `analyses` is required (no default) so that no caller skips the ``analyze`` checks
    silently; pass `llmexp.analysis.catalogue()`, or call `llmexp.check(path)` which does.
    An empty catalogue makes every ``analyze`` name unknown.
    Raises `StudyError` listing every error found.
    """
    from llmexp.lang.parser import parse_file
    from llmexp.lang.validate import validate

    return validate(parse_file(path), analyses=analyses)


def check_text(text: str, filename: str = "<study>", *, analyses: AnalysisCatalogue
               ) -> tuple[Study, list[Problem]]:
    """Like `check_study` for text in memory (paths resolve from the current folder)."""
    from llmexp.lang.parser import parse_text
    from llmexp.lang.validate import validate

    return validate(parse_text(text, filename), analyses=analyses)


def load_study(path: str | Path, *, analyses: AnalysisCatalogue) -> Study:
    return check_study(path, analyses=analyses)[0]
