"""Analysis layer: response table -> tidy tables, summary.json, figures, report.

Core functions take ``(study, responses)`` (a ``llmexp.spec.Study`` and the response table of
docs/artifacts.md). ``analyze`` runs the requested analyses; ``llmexp.analysis.report.report``
(also exported here as ``report_run``) analyses a run directory and writes the report.
Definitions of every measure are in the module docstrings and docs/analysis.md.
"""

from __future__ import annotations

from llmexp.analysis.core import AnalysisResult, analyze, resolve_requested

__all__ = ["AnalysisResult", "analyze", "resolve_requested", "report_run", "write_report"]


def report_run(run_dir, **kwargs):
    """Analyse RUN_DIR and write RUN_DIR/report/report.html + report.md (see report.report)."""
    from llmexp.analysis.report import report as _report

    return _report(run_dir, **kwargs)


def write_report(result, out_dir):
    from llmexp.analysis.report import write_report as _write

    return _write(result, out_dir)
