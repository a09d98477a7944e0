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

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from llmexp.run.cost import CostEstimate, estimate_cost  # noqa: E402
from llmexp.run.results import RunPlan, RunResults, RunSummary, open_run  # noqa: E402
from llmexp.run.runner import default_run_dir, run_study  # noqa: E402
from llmexp.run.scheduler import RetryPolicy  # noqa: E402

__all__ = [
    "run_study",
    "open_run",
    "estimate_cost",
    "RunResults",
    "RunSummary",
    "RunPlan",
    "CostEstimate",
    "RetryPolicy",
    "default_run_dir",
]
