"""Analysis layer: response table -> tidy tables, summary.json, figures, report.

Each analysis is one class in one file of this package, named after it (`effects.py`,
`leakage.py`, ...), registered with `base.register`; the shared helpers are `observations`,
`cells`, `humans`, `_stats`, `summary` and `plots`. ``analyze`` runs the requested analyses;
``llmexp.report`` (a later stage) analyses a run directory and writes the report.
``catalogue()`` is what the composition roots hand the study validator.
Definitions of every measure are in the module docstrings and docs/analysis.md.
"""

from __future__ import annotations

import importlib
import pkgutil

from llmexp.analysis.base import Analysis, Context, catalogue, defaults, get, names, register, unregister
from llmexp.analysis.core import AnalysisResult, analyze, analyze_parquet, resolve_requested

# Import every module so that an analysis registers by existing: a new analysis is one new
# file. `plots` is left to load on first use: it imports matplotlib, which only drawing needs.
for _module in pkgutil.iter_modules(__path__):
    if _module.name != "plots":
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["Analysis", "AnalysisResult", "Context", "analyze", "analyze_parquet", "catalogue", "defaults", "get", "names",
           "register", "resolve_requested", "unregister"]
