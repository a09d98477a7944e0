"""Sequential designs: analyse every exposure, or only each respondent's first.

In a sequential design (`design X: within sequential`) one respondent answers every
condition in turn, in a randomized order recorded per trial (`exposure`: 0 is the first
condition the respondent saw). All exposures give a within-subject comparison (more answers,
but later answers may carry over from earlier ones); the first exposure alone is a clean
between-subject comparison (the respondent had seen nothing before), at a third of the data
with three conditions. `analyze(..., exposures="first")` (`llmexp analyze --first-exposure`)
keeps only the first; trials of other designs (null `exposure`) are always kept.
"""

from __future__ import annotations

import pandas as pd

from llmexp.errors import AnalysisError

CHOICES = ("all", "first")


def select_exposures(responses: pd.DataFrame, exposures: str) -> tuple[pd.DataFrame, str | None]:
    """The responses to analyse, and a note saying what was left out (None: nothing)."""
    if exposures not in CHOICES:
        raise AnalysisError(f"exposures must be one of {', '.join(CHOICES)}, not {exposures!r}")
    if exposures == "all" or "exposure" not in responses.columns:
        return responses, None
    position = pd.to_numeric(responses["exposure"], errors="coerce")
    later = (position > 0).to_numpy()
    if not later.any():
        return responses, None
    sequential = int(position.notna().sum())
    note = f"sequential designs: only each respondent's first exposure analysed ({sequential - int(later.sum())} of {sequential} answers)"
    return responses[~later], note
