"""The analysis base class and the registry of analyses.

An analysis is one class in one file of this package, named after it (`leakage.py` holds
`leakage`). It declares, as class attributes and methods, everything the rest of llmexp asks
about it:

- ``name`` (the word in ``analyze ...``), ``title`` and ``description`` (its report section),
  ``report_tables`` (the tables that section shows), ``order`` (its place in reports,
  summary.json and messages), ``headline`` (its lines open the plain-text digest) and
  ``default`` (it runs when a study names no analysis);
- ``unsupported(study)``: why it cannot run on a study, or None. `llmexp check` reports the
  reason at the ``analyze`` line (the validator gets the catalogue from its caller, so the
  language layer never imports this package);
- ``run(ctx)``: its tidy tables; ``summary_data(tables)``: its entry in summary.json;
  ``summary_lines(tables)``: the digest lines; ``figures(ctx, tables, out_dir)``: the files
  it draws; ``report_section(tables)``: the tables its report section shows.

``@register`` adds the class to the registry; `llmexp.analysis` imports every module of the
package, so a new analysis is one new file. `core.analyze`, the summary, the report and the
validator loop over the registry and never compare analysis names.

Declarations stay light: an analysis module imports statsmodels, scipy and matplotlib inside
the functions that fit or draw, so asking the catalogue (`llmexp check`) does not load them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd

from llmexp.analysis.observations import Observations
from llmexp.analysis.summary import records
from llmexp.errors import AnalysisError, did_you_mean
from llmexp.spec import Study

REGISTRY: dict[str, Analysis] = {}  # name -> the analysis (one instance per class)


@dataclass
class Context:
    """What the analyses of one `analyze` call share, built once by `core.analyze`.

    ``human_cells``: the human baseline's cell means (column ``human``) and
    ``human_individual``: its individual answers (column ``y``; the cell means when the
    baseline holds aggregates); both None when the study has no usable baseline.
    """

    study: Study
    responses: pd.DataFrame
    obs: Observations
    unit_cells: pd.DataFrame
    pooled_cells: pd.DataFrame
    alpha: float = 0.05
    n_boot: int = 1000
    seed: int = 0
    cluster: str = "auto"
    refute_simulations: int = 20
    human_cells: pd.DataFrame | None = None
    human_individual: pd.DataFrame | None = None


class Analysis:
    """Base of every analysis; a subclass sets the attributes, implements `run` and is
    decorated with `@register`. The defaults suit an analysis that writes one table named
    after itself and draws nothing."""

    name: ClassVar[str] = ""  # the word in `analyze ...`
    title: ClassVar[str] = ""  # the report section's heading
    description: ClassVar[str] = ""  # the report section's one-paragraph explanation
    report_tables: ClassVar[tuple[str, ...]] = ()  # tables the report shows, in order
    order: ClassVar[int] = 100  # place in reports, summary.json and messages (ties: by name)
    headline: ClassVar[bool] = False  # its digest lines come before the other analyses'
    default: ClassVar[bool] = False  # it runs when the study names no analysis
    # it runs on the cell-level statistics of a streamed table (`stream.py`, `grouped.py`)
    on_cells: ClassVar[bool] = False

    def unsupported(self, study: Study) -> str | None:
        """Why this analysis cannot run on `study` (None: it can), judged from the spec alone.

        During validation `study` is a partial study: every field except ``analyses`` is
        set, none is re-validated. The reason is shown as "analysis 'NAME' cannot run on
        this study: REASON" at the ``analyze`` line."""
        return None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        """The analysis's tidy tables, by table name. Raise `AnalysisError` (with the reason)
        when the data cannot support it: `analyze` then records it as not run."""
        raise NotImplementedError

    def summary_data(self, tables: dict[str, pd.DataFrame]) -> Any:
        """Its entry in summary.json (JSON-safe after `summary.jsonable`)."""
        return records(tables.get(self.name))

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        """Its lines in the plain-text digest (`AnalysisResult.summary`)."""
        return []

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        """The figure files it writes under `out_dir` ([] when it draws nothing)."""
        return []

    def report_section(self, tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
        """(table name, rows to show) for its report section; empty tables are left out."""
        return [(t, tables[t]) for t in self.report_tables if tables.get(t) is not None and not tables[t].empty]

    def headline_tables(self, tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
        """The tables whose rows are findings for the report's headline (each row with an
        estimate and an interval is read generically). Defaults to the report section; an
        analysis whose section also shows descriptive rows or checks leaves those out, so
        the headline does not state them as findings."""
        return self.report_section(tables)

    def findings(self, tables: dict[str, pd.DataFrame], level: int) -> list[tuple[bool, str]] | None:
        """(supported, sentence) headline findings written by the analysis itself, for
        estimates the generic reading would state wrongly; None: read `headline_tables`."""
        return None


def register(cls: type[Analysis]) -> type[Analysis]:
    """Class decorator: adds an analysis to the registry under its `name`."""
    if not cls.name:
        raise AnalysisError(f"analysis class {cls.__name__} has no name")
    current = REGISTRY.get(cls.name)
    if current is not None and type(current) is not cls:
        raise AnalysisError(f"two analyses are named {cls.name!r}: {type(current).__name__} and {cls.__name__}")
    REGISTRY[cls.name] = cls()
    return cls


def unregister(name: str) -> None:
    """Removes an analysis (for tests and plugins that define one of their own)."""
    REGISTRY.pop(name, None)


def catalogue() -> dict[str, Analysis]:
    """Every registered analysis by name, in report order: what `check_study` receives."""
    return dict(sorted(REGISTRY.items(), key=lambda item: (item[1].order, item[0])))


def names() -> tuple[str, ...]:
    """Every analysis name in report order (the order messages list them in)."""
    return tuple(catalogue())


def defaults() -> list[str]:
    """The analyses run for a study that names none, in report order."""
    return [name for name, analysis in catalogue().items() if analysis.default]


def get(name: str) -> Analysis:
    """The analysis registered under `name`; an unknown name is the user's error."""
    try:
        return REGISTRY[name]
    except KeyError:
        hint = f"; {close}" if (close := did_you_mean(name, REGISTRY)) else ""
        raise AnalysisError(f"unknown analysis {name!r}{hint} (choose from {', '.join(names())})") from None
