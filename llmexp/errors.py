"""The project's own error types: everything a user can cause ends in one of these.

The CLI prints them as plain messages and exits with status 2; it never shows a traceback
for them.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding about a user's input, located as precisely as we can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    hint: str | None = None
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        text = f"{where}{self.severity}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text


class LlmexpError(Exception):
    """Base class for every error caused by user input or the environment."""

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems: list[Problem] = list(problems or [])

    def __str__(self) -> str:
        if self.problems:
            return "\n".join(shown_problems(self.problems))
        return super().__str__()


MAX_SHOWN_PROBLEMS = 20  # a message lists at most this many problems, then counts the rest


def shown_problems(problems: list[Problem], limit: int = MAX_SHOWN_PROBLEMS) -> list[str]:
    """The first `limit` problems as lines, then one line counting the rest (all are kept in
    `LlmexpError.problems`)."""
    lines = [str(p) for p in problems[:limit]]
    rest = problems[limit:]
    if rest:
        errors = sum(1 for p in rest if p.severity == "error")
        if errors == len(rest):
            lines.append(f"... and {len(rest):,} more error{'s' if len(rest) > 1 else ''}")
        else:
            lines.append(f"... and {len(rest):,} more problems ({errors:,} errors, {len(rest) - errors:,} warnings)")
    return lines


class StudyError(LlmexpError):
    """A `.study` file (or a file it references) is invalid; carries every problem found."""

    def __init__(self, problems: list[Problem]):
        count = len([p for p in problems if p.severity == "error"])
        super().__init__(f"{count} error(s) in study", problems)


class DataError(LlmexpError):
    """A CSV or other data file is unusable (names the file, row and column)."""


class RunError(LlmexpError):
    """A run cannot start or continue (bad run directory, permanent provider failure...)."""


class AnalysisError(LlmexpError):
    """An analysis was requested that the run's data cannot support; says why."""


def did_you_mean(name: object, options: Iterable, cutoff: float = 0.6) -> str | None:
    """The hint for a misspelt name: "did you mean 'x'?" naming the closest option, or None
    when nothing is close (difflib's ratio >= `cutoff`). Every "did you mean" llmexp prints
    comes from here, so the rule is the same for a column, a mode, an analysis or a keyword."""
    close = difflib.get_close_matches(str(name), [str(o) for o in options], n=1, cutoff=cutoff)
    return f"did you mean '{close[0]}'?" if close else None
