"""Running a study: trials -> litellm calls -> a resumable run directory.

    results = llmexp.runner.run_study(study)          # or llmexp.run(study)
    df = results.to_pandas()                       # one row per call (docs/artifacts.md)
    print(results.summary())
    again = llmexp.runner.open_run(results.run_dir)   # .study re-validated from the manifest

Layout (one concern per module; `run_study` composes them):
`plan.py` (argument checks, trial selection and order, the dry-run plan), `models.py` (what
a model name means, asked of `llmexp.providers` in one place; the preflight), `endpoints.py`
(no API key sent to a host the user did not allow), `session.py` (run directory, manifest,
sessions), `lock.py` (one process per run directory), `calls.py` (trial rows -> calls),
`replay.py` (cache replay), `queue.py` (call order; the shared cache's claims),
`scheduler.py` (the workers and the one place a model is called), `retry.py`, `limits.py`
(rate limits, throttle), `outcome.py` (a call's outcome -> its response row), `writer.py`,
`store.py` (run directory: manifest + SQLite; columns in `llmexp/schema.py`),
`redaction.py` (no secret is written), `cache.py` (shared response cache), `status.py`
(complete / partial / stopped, exit codes), `cost.py` (prices, estimates), `router.py`
(litellm Router), `progress.py`, `results.py` (reading runs back), `runner.py`
(`run_study`), `batch.py` + `batch_ledger.py` (provider batch APIs: `run_study(batch=True)`).
The CLI commands live in `llmexp.cli.runner`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# Imported lazily: `llmexp check` (which loads llmexp.cli.runner) should not pay for
# importing litellm; reading a run (`open_run`) does not need litellm at all.
_EXPORTS = {
    "run_study": "llmexp.runner.runner",
    "default_run_dir": "llmexp.runner.session",
    "open_run": "llmexp.runner.results",
    "RunResults": "llmexp.runner.results",
    "RunSummary": "llmexp.runner.results",
    "RunPlan": "llmexp.runner.results",
    "estimate_cost": "llmexp.runner.cost",
    "CostEstimate": "llmexp.runner.cost",
    "RetryPolicy": "llmexp.runner.retry",
    "RunStopped": "llmexp.runner.status",
}

__all__ = [
    "run_study",
    "default_run_dir",
    "open_run",
    "RunResults",
    "RunSummary",
    "RunPlan",
    "estimate_cost",
    "CostEstimate",
    "RetryPolicy",
    "RunStopped",
]

if TYPE_CHECKING:  # pragma: no cover
    from llmexp.runner.cost import CostEstimate, estimate_cost
    from llmexp.runner.results import RunPlan, RunResults, RunSummary, open_run
    from llmexp.runner.retry import RetryPolicy
    from llmexp.runner.runner import run_study
    from llmexp.runner.session import default_run_dir
    from llmexp.runner.status import RunStopped


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'llmexp.runner' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
