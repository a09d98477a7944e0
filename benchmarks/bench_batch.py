"""The batch-path benchmark of `benchmarks/run.py` (section `batch`): `run_study(batch=...)`
against the fake batch server (`tests/support/fake_batches.py`, in its own process).

N trials are written as request lines, split into files of at most 50,000 requests (OpenAI's
limit), uploaded, submitted, polled until the fake batches end, downloaded, parsed and
stored. Reported: wall time, llmexp's CPU per trial (the whole client process: building
lines, litellm's file and batch calls, parsing, the store), batches and files, and the cost
at batch prices. Prices are FAKE (gpt-4o-mini's list prices given as params, since the fake
model has none), labelled as such; the batch price is litellm's rule for a model without
batch prices in its table: half.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

MODEL = "openai/fake-model"
FAKE_PRICES = {"input_cost_per_token": 1.5e-7, "output_cost_per_token": 6e-7}  # gpt-4o-mini list prices (fake here)


def m_batch(a) -> dict:
    """`run_study(batch=...)` on `a.n` trials against the fake batch server at `a.api_base`."""
    from llmexp.runner import run_study
    from llmexp.runner.cost import batch_price, model_price
    from tests.support.workload import workload

    tmp = Path(tempfile.mkdtemp(prefix="llmexp-bench-batch-"))
    params = {"api_base": a.api_base, "api_key": "sk-fake", "max_tokens": 5, **FAKE_PRICES}
    study, trials = workload(a.n, MODEL, params, name="batch")
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = run_study(study, trials, run_dir=tmp / "run", use_cache=False, progress=False, batch={"poll": 0.5})
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    s = res.stats
    live = model_price(MODEL, params).cost(s.prompt_tokens, s.completion_tokens)
    bp = batch_price(MODEL, params)
    return {
        "n": a.n, "wall": wall, "cpu": cpu, "cpu_ms_per_trial": 1000 * cpu / a.n, "ok": s.ok, "failed": s.failed,
        "cost_batch": s.cost, "cost_live_price": live, "price_in": bp.input, "price_out": bp.output,
        "prompt_tokens": s.prompt_tokens, "completion_tokens": s.completion_tokens, "status": res.status.status,
    }  # fmt: skip


def batch_row(res: dict, row) -> None:
    """The benchmark table's row of the batch section (`row(name, result, target, met)`)."""
    b = res.get("batch")
    if not b:
        return
    if "error" in b:
        row("batch path", "error: " + b["error"][-200:], "-", False)
        return
    srv = b.get("server") or {}
    row(f"batch path, {b['n']:,} trials (fake batch server)",
        f"{b['wall']:.1f} s submitted, polled and stored ({srv.get('batches_created', '?')} batches, "
        f"{srv.get('files_uploaded', '?')} files); llmexp CPU {b['cpu_ms_per_trial']:.3f} ms/trial; {b['ok']:,} ok; "
        f"cost at batch prices ${b['cost_batch']:.2f} vs ${b['cost_live_price']:.2f} live (FAKE prices: gpt-4o-mini's list "
        f"prices, halved)", "all stored", b["ok"] == b["n"])  # fmt: skip
