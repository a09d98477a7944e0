"""Running a study: trials -> litellm calls -> a resumable run directory.

    results = llmexp.runner.run_study(study)          # or llmexp.run(study)
    df = results.to_pandas()                       # one row per call (docs/artifacts.md)
    print(results.summary())
    again = llmexp.runner.open_run(results.run_dir)   # .study re-validated from the manifest

Layout: `providers/` (litellm custom providers: synthetic respondent, embedded model; the
contract in `providers/base.py`), `scheduler.py` (async calls, rate limits, retries,
budget), `store.py` (run directory: manifest + SQLite), `cache.py` (shared response
cache), `cost.py` (prices, estimates), `progress.py`, `results.py` (reading runs back),
`runner.py` (`run_study`), `commands.py` (the `run` and `results` CLI commands).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING


os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Imported lazily: `llmexp check` (which loads llmexp.cli.runner) should not pay for
# importing litellm; reading a run (`open_run`) does not need litellm at all.
_EXPORTS = {
    "run_study": "llmexp.runner.runner",
    "default_run_dir": "llmexp.runner.runner",
    "open_run": "llmexp.runner.results",
    "RunResults": "llmexp.runner.results",
    "RunSummary": "llmexp.runner.results",
    "RunPlan": "llmexp.runner.results",
    "estimate_cost": "llmexp.runner.cost",
    "CostEstimate": "llmexp.runner.cost",
    "RetryPolicy": "llmexp.runner.scheduler",
}

__all__ = list(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from llmexp.runner.cost import CostEstimate, estimate_cost
    from llmexp.runner.results import RunPlan, RunResults, RunSummary, open_run
    from llmexp.runner.runner import default_run_dir, run_study
    from llmexp.runner.scheduler import RetryPolicy


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmexp.runner' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
