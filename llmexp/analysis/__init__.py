"""Analysis layer: response table -> tidy tables, summary.json, figures, report.

Core functions take ``(study, responses)`` (a ``llmexp.spec.Study`` and the response table of
docs/artifacts.md). ``analyze`` runs the requested analyses; ``llmexp.report`` (a later stage) analyses a run
directory and writes the report.
Definitions of every measure are in the module docstrings and docs/analysis.md.
"""

from __future__ import annotations

from llmexp.analysis.core import AnalysisResult, analyze, resolve_requested

__all__ = ["AnalysisResult", "analyze", "resolve_requested"]
