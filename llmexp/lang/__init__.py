"""The study language: grammar loading, parsing to an AST, validation to a `Study`.

The validator checks each ``analyze`` name against a catalogue of analyses that its caller
passes in (`llmexp.analysis.catalogue()`, handed over by `llmexp.load`, `llmexp.check` and the
CLI): the language layer never imports the analysis layer above it.

Likewise for model parameters: a model's params must be litellm's (`KNOWN_PARAMS`) unless the
model's provider declares `custom_params` (the synthetic respondent's ``effect``, ``noise``).
Providers are a layer above, so the caller hands in that capability as `custom_params`, a
function of the model name (the composition roots pass
``lambda m: llmexp.providers.for_model(m).custom_params``). Its default, `no_custom_params`,
accepts no custom params for any model: a caller that does not pass it gets the strict check
(an error, never a silently skipped one), which is right for every model but those of a
provider that declares otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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

# Model name -> whether its provider accepts params beyond litellm's (`custom_params`).
CustomParams = Callable[[str], bool]


def no_custom_params(model: str) -> bool:
    """The default `custom_params`: no model takes params beyond litellm's (the strict check)."""
    return False


def check_study(path: str | Path, *, analyses: AnalysisCatalogue,
                custom_params: CustomParams = no_custom_params) -> tuple[Study, list[Problem]]:
    """Parse and validate a `.study` file; returns the study and its warnings.

    `analyses` is required (no default) so that no caller skips the ``analyze`` checks
    silently; pass `llmexp.analysis.catalogue()`, or call `llmexp.check(path)` which does.
    An empty catalogue makes every ``analyze`` name unknown.
    `custom_params(model)` says whether a model may take params litellm does not know (see
    the module docstring; default: none may), as `llmexp.check(path)` passes it.
    Raises `StudyError` listing every error found.
    """
    from llmexp.lang.parser import parse_file
    from llmexp.lang.validate import validate

    return validate(parse_file(path), analyses=analyses, custom_params=custom_params)


def check_text(text: str, filename: str = "<study>", *, analyses: AnalysisCatalogue,
               custom_params: CustomParams = no_custom_params) -> tuple[Study, list[Problem]]:
    """Like `check_study` for text in memory (paths resolve from the current folder)."""
    from llmexp.lang.parser import parse_text
    from llmexp.lang.validate import validate

    return validate(parse_text(text, filename), analyses=analyses, custom_params=custom_params)


def load_study(path: str | Path, *, analyses: AnalysisCatalogue,
               custom_params: CustomParams = no_custom_params) -> Study:
    return check_study(path, analyses=analyses, custom_params=custom_params)[0]
