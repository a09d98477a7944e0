"""Running a study: trials -> litellm calls -> a resumable run directory.

    results = llmexp.run.run_study(study)          # or llmexp.run(study)
    df = results.to_pandas()                       # one row per call (docs/artifacts.md)
    print(results.summary())
    again = llmexp.run.open_run(results.run_dir)   # .study re-validated from the manifest

Layout: `providers/` (litellm custom providers: synthetic respondent, embedded model; the
contract in `providers/base.py`), `scheduler.py` (async calls, rate limits, retries,
budget), `store.py` (run directory: manifest + SQLite), `cache.py` (shared response
cache), `cost.py` (prices, estimates), `progress.py`, `results.py` (reading runs back),
`runner.py` (`run_study`), `commands.py` (the `run` and `results` CLI commands).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from llmexp._verbs import make_callable

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Imported lazily: `llmexp check` (which loads llmexp.run.commands) should not pay for
# importing litellm; reading a run (`open_run`) does not need litellm at all.
_EXPORTS = {
    "run_study": "llmexp.run.runner",
    "default_run_dir": "llmexp.run.runner",
    "open_run": "llmexp.run.results",
    "RunResults": "llmexp.run.results",
    "RunSummary": "llmexp.run.results",
    "RunPlan": "llmexp.run.results",
    "estimate_cost": "llmexp.run.cost",
    "CostEstimate": "llmexp.run.cost",
    "RetryPolicy": "llmexp.run.scheduler",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from llmexp.run.cost import CostEstimate, estimate_cost
    from llmexp.run.results import RunPlan, RunResults, RunSummary, open_run
    from llmexp.run.runner import default_run_dir, run_study
    from llmexp.run.scheduler import RetryPolicy


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmexp.run' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def _run(study, **kwargs):
    """Run a study (or a path to one); same as `llmexp.run.run_study`."""
    from llmexp.run.runner import run_study

    if not hasattr(study, "treatments"):
        import llmexp

        study = llmexp.load(study)
    return run_study(study, **kwargs)


make_callable(__name__, _run)
