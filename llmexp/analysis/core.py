"""`analyze(study, responses)`: run the requested analyses, write tidy tables and summary.json.

Requested analyses come from ``study.analyses`` by default (the names in the registry of
`llmexp.analysis.base`); they run in report order. Per-cell tables (``unit_cells``,
``pooled_cells``) and the invalid-answer counts (``invalid``) are always produced.

An analysis that fails (an `LlmexpError`: its data cannot support it; or a numerical failure
of a fit) is recorded as not run, with the reason, and the others go on, so a report still
shows what could be computed. Only when no requested analysis can run does `analyze` raise
(the failure itself when one analysis was requested).
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from llmexp.analysis.base import Analysis, Context, defaults, get, names
from llmexp.analysis.cells import pooled_cells, unit_cells
from llmexp.analysis.checks import exclude_failed_checks, exclusion_note
from llmexp.analysis.exposure import select_exposures
from llmexp.analysis.humans import load_baseline
from llmexp.analysis.observations import build_observations
from llmexp.analysis.summary import build_summary
from llmexp.errors import AnalysisError, LlmexpError
from llmexp.export import csv_safe
from llmexp.spec import Study

# What an analysis may raise and still let the others run: the user's data cannot support it,
# or a fit breaks down numerically. Anything else is a bug and propagates.
FAILURES = (LlmexpError, np.linalg.LinAlgError, ValueError, ArithmeticError)


@dataclass
class AnalysisResult:
    study: Study
    requested: list[str]
    tables: dict[str, pd.DataFrame]
    summary_data: dict
    figures: dict[str, list[Path]] = field(default_factory=dict)
    out_dir: Path | None = None
    notes: list[str] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)  # requested analysis -> why it did not run
    # requested analysis -> notes on it (e.g. the numerical warnings its fits raised)
    analysis_notes: dict[str, list[str]] = field(default_factory=dict)

    def table(self, name: str) -> pd.DataFrame:
        if name not in self.tables:
            raise AnalysisError(f"no table {name!r}; have {', '.join(sorted(self.tables))}")
        return self.tables[name]

    def summary(self) -> str:
        """Plain-text digest of the headline numbers."""
        lines = [f"study {self.study.name} ({self.summary_data.get('n_responses')} responses); "
                 f"analyses: {', '.join(self.requested)}"]
        inv = self.tables.get("invalid")
        if inv is not None and len(inv):
            lines.append(f"invalid calls: {int(inv['invalid_calls'].sum())} of {int(inv['calls'].sum())}")
        ran = [get(name) for name in self.requested if name not in self.not_run]
        for analysis in sorted(ran, key=lambda a: not a.headline):  # stable: report order otherwise
            lines += analysis.summary_lines(self.tables)
        lines += [f"not run: {name}: {reason}" for name, reason in self.not_run.items()]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"note on {name}: {n}" for name, ns in self.analysis_notes.items() for n in ns]
        return "\n".join(lines)

    def write(self, out_dir: Path) -> Path:
        out_dir = Path(out_dir)
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df = _flat(df)
            csv_safe(df).to_csv(out_dir / "tables" / f"{name}.csv", index=False)  # no formula injection
            df.to_parquet(out_dir / "tables" / f"{name}.parquet", index=False)
        (out_dir / "summary.json").write_text(json.dumps(self.summary_data, indent=2))
        self.out_dir = out_dir
        return out_dir / "summary.json"


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type object columns -> strings so parquet can store them."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c].dropna()}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                  else str(v))
    return df


def resolve_requested(study: Study, requested: Iterable[str] | None = None,
                      only: Iterable[str] | None = None, add: Iterable[str] | None = None
                      ) -> list[str]:
    """The analyses to run, in report order: `requested` (default: the study's, or the
    registry's `defaults()`), replaced by `only`, extended by `add`; an unknown name is the
    user's error."""
    base = list(requested) if requested is not None else (list(study.analyses) or defaults())
    if only:
        base = list(only)
    for a in add or ():
        if a not in base:
            base.append(a)
    known = names()
    bad = [a for a in base if a not in known]
    if bad:
        raise AnalysisError(f"unknown analysis {', '.join(bad)}; choose from {', '.join(known)}")
    return [a for a in known if a in base]


def analyze(study: Study, responses: pd.DataFrame, requested: Iterable[str] | None = None,
            out_dir: Path | str | None = None, alpha: float = 0.05, n_boot: int = 1000,
            seed: int = 0, figures: bool = True, refute_simulations: int = 20,
            cluster: str = "auto", exposures: str = "all") -> AnalysisResult:
    """Run the requested analyses; with `out_dir`, write tables, summary.json and figures.
    `exposures`: "all", or "first" to keep only each respondent's first condition in a
    sequential design (exposure.py)."""
    options = dict(alpha=alpha, n_boot=n_boot, seed=seed, cluster=cluster,
                   refute_simulations=refute_simulations)
    try:  # many small regressions: BLAS threads only add contention
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return _analyze(study, responses, requested, out_dir, figures, options, exposures=exposures)
    with threadpool_limits(1):
        return _analyze(study, responses, requested, out_dir, figures, options, exposures=exposures)


def analyze_parquet(study: Study, path: Path | str, requested: Iterable[str] | None = None,
                    out_dir: Path | str | None = None, alpha: float = 0.05, n_boot: int = 1000,
                    seed: int = 0, figures: bool = True, refute_simulations: int = 20,
                    cluster: str = "auto", batch_rows: int | None = None) -> AnalysisResult:
    """`analyze` on a parquet response table streamed in batches (`stream.py`): memory
    grows with the cells, not the answers. The analyses that run on cell-level statistics
    (``on_cells``: demand curves, effects, leakage) give the numbers `analyze` gives; the
    others are listed under not run, with the reason."""
    from llmexp.analysis import stream

    options: dict = dict(alpha=alpha, n_boot=n_boot, seed=seed, cluster=cluster,
                         refute_simulations=refute_simulations)

    def context(notes: list[str]) -> tuple[Context, int]:
        ctx, total = stream.stream_context(study, path, batch_rows=batch_rows or stream.BATCH_ROWS,
                                           **options)
        _attach_baseline(ctx, study, notes)
        return ctx, total

    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return _analyze(study, None, requested, out_dir, figures, options, context)
    with threadpool_limits(1):
        return _analyze(study, None, requested, out_dir, figures, options, context)


def _analyze(study: Study, responses: pd.DataFrame | None, requested: Iterable[str] | None,
             out_dir: Path | str | None, figures: bool, options: dict,
             streamed=None, exposures: str = "all") -> AnalysisResult:
    analyses = [get(name) for name in resolve_requested(study, requested)]
    notes: list[str] = []
    exclusions = None  # respondents who failed an attention/manipulation check (checks.py)
    with caught(notes):  # e.g. a bootstrap over a cell without spread
        if streamed is None:
            assert responses is not None
            responses, exclusions = exclude_failed_checks(study, responses)
            responses, exposure_note = select_exposures(responses, exposures)
            notes += [exposure_note] if exposure_note else []
            ctx, n_responses = _context(study, responses, notes, **options), len(responses)
        else:
            ctx, n_responses = streamed(notes)
    tables: dict[str, pd.DataFrame] = {"invalid": ctx.obs.invalid, "unit_cells": ctx.unit_cells,
                                       "pooled_cells": ctx.pooled_cells}
    if exclusions is not None:
        tables["check_exclusions"] = exclusions
        notes.append(exclusion_note(exclusions))
    elif streamed is not None and study.checks:
        notes.append("checks are not applied to a streamed table: no respondent was excluded")
    analysis_notes: dict[str, list[str]] = {}
    skipped: dict[str, str] = {}
    if streamed is not None:  # only the analyses that run on cell-level statistics
        from llmexp.analysis.stream import NOT_ON_CELLS

        skipped = {a.name: NOT_ON_CELLS for a in analyses if not a.on_cells}
    ran = [a for a in analyses if a.name not in skipped]
    if not ran and skipped:
        raise AnalysisError("no requested analysis runs on a streamed table: "
                            + ", ".join(skipped) + f" {NOT_ON_CELLS}")
    not_run = {**skipped, **_run_each(ctx, ran, tables, analysis_notes)}
    not_run = {a.name: not_run[a.name] for a in analyses if a.name in not_run}
    analysis_notes = {k: v for k, v in analysis_notes.items() if v}
    summ = build_summary(study, analyses, tables, n_responses, not_run)
    result = AnalysisResult(study=study, requested=[a.name for a in analyses], tables=tables,
                            summary_data=summ, notes=notes, not_run=not_run,
                            analysis_notes=analysis_notes)
    if out_dir is not None and figures:
        ran = [a for a in analyses if a.name not in not_run]
        with caught(notes):
            result.figures = _draw(ctx, ran, tables, Path(out_dir) / "figures", notes)
    if notes:
        summ["notes"] = notes
    if analysis_notes:
        summ["analysis_notes"] = analysis_notes
    if out_dir is not None:
        result.write(Path(out_dir))
    return result


def _context(study: Study, responses: pd.DataFrame, notes: list[str], alpha: float,
             n_boot: int, seed: int, cluster: str, refute_simulations: int) -> Context:
    """Observations, cells and the human baseline: what every analysis may use."""
    obs = build_observations(study, responses)
    ctx = Context(study=study, responses=responses, obs=obs,
                  unit_cells=unit_cells(obs, alpha, n_boot=min(n_boot, 400), seed=seed),
                  pooled_cells=pooled_cells(obs, alpha, n_boot=n_boot, seed=seed),
                  alpha=alpha, n_boot=n_boot, seed=seed, cluster=cluster,
                  refute_simulations=refute_simulations)
    _attach_baseline(ctx, study, notes)
    return ctx


def _attach_baseline(ctx: Context, study: Study, notes: list[str]) -> None:
    """The human baseline's cells and answers, when the study has a usable one."""
    if study.baseline is not None:
        try:
            bd = load_baseline(study)
        except AnalysisError as exc:
            notes.append(f"human baseline not used: {exc}")
        else:
            ctx.human_cells = bd.cells.rename(columns={"mean": "human"})
            ctx.human_individual = (bd.individual if bd.individual is not None
                                    else bd.cells.rename(columns={"mean": "y"}))


def _reason(exc: BaseException) -> str:
    """Why an analysis did not run: the user-facing message, or the failure named."""
    if isinstance(exc, LlmexpError):
        return str(exc)
    return f"numerical failure ({type(exc).__name__}: {exc})"


class caught:
    """Context manager: the Python warnings raised inside (numerical ones: divide by zero,
    a fit that did not converge) are not printed but appended to `notes`, once each with a
    count, so they show as notes on the affected analysis instead of spamming the terminal."""

    def __init__(self, notes: list[str]):
        self.notes = notes
        self._cm = warnings.catch_warnings(record=True)

    def __enter__(self) -> caught:
        self._log = self._cm.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc) -> None:
        self._cm.__exit__(*exc)
        seen: dict[str, int] = {}
        for w in self._log or []:
            text = f"{w.category.__name__}: {str(w.message).strip()}"
            seen[text] = seen.get(text, 0) + 1
        self.notes += [f"numerical warning: {text}" + (f" ({n} times)" if n > 1 else "")
                       for text, n in seen.items()]


def _run_each(ctx: Context, analyses: list[Analysis], tables: dict[str, pd.DataFrame],
              notes: dict[str, list[str]] | None = None) -> dict[str, str]:
    """Run each analysis into `tables`; one that fails is recorded (name -> reason) and the
    others go on. When every one fails there is nothing to report, so the failure is raised.
    The warnings an analysis raises become its `notes` (name -> notes)."""
    notes = {} if notes is None else notes
    not_run: dict[str, str] = {}
    errors: list[BaseException] = []
    for analysis in analyses:
        try:
            with caught(notes.setdefault(analysis.name, [])):
                tables.update(analysis.run(ctx))
        except FAILURES as exc:
            not_run[analysis.name] = _reason(exc)
            errors.append(exc)
    if analyses and len(errors) == len(analyses):
        failure = errors[0] if len(errors) == 1 else AnalysisError(
            "no requested analysis could run: " + "; ".join(f"{name}: {why}" for name, why in not_run.items()))
        failure.not_run = not_run  # type: ignore[attr-defined]  # the report says why each could not run
        raise failure
    return not_run


def _draw(ctx: Context, analyses: list[Analysis], tables: dict[str, pd.DataFrame],
          fig_dir: Path, notes: list[str]) -> dict[str, list[Path]]:
    """Each analysis's figures; one that cannot be drawn becomes a note."""
    figs: dict[str, list[Path]] = {}
    for analysis in analyses:
        try:
            paths = analysis.figures(ctx, tables, fig_dir)
        except FAILURES as exc:
            notes.append(f"{analysis.name} figures not drawn: {_reason(exc)}")
            continue
        if paths:
            figs[analysis.name] = paths
    return figs
