"""The batch drill (part of `benchmarks/drill.py`): `run_study(batch=...)` killed in every window.

The child (a user's `llmexp run --batch`) runs the workload against the fake batch server
in its own process (`tests/support/fake_batches.py`, 10% of batch items failing, several
batches by a small request limit). It is killed, for real (the process ends with
`os._exit`, or SIGKILL from the parent, no cleanup):

1. during the upload: after the provider stored the file, before its id is recorded;
2. after the creation: the provider accepted the batch, its id is not recorded yet;
3. during polling: SIGKILL from the parent once the child polled;
4. during the download: after a result file was downloaded, before it is stored;

then the same command runs to the end. Checked from the store and the server's counters:
0 lost, 0 duplicated rows, integrity ok, 0 requests paid twice (`paid_repeated`) and 0
batches created twice for one submission (`duplicate_batches`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "openai/fake-model"


def _workload(n: int, api_base: str):
    from tests.support.workload import workload

    return workload(n, MODEL, {"api_base": api_base, "api_key": "sk-fake", "max_tokens": 5})


def child(args) -> int:
    """One `llmexp run --batch`; with --die-after, the process ends right after that step."""
    from llmexp.providers.batching import OpenAIBatchAPI
    from llmexp.runner import run_study
    from llmexp.runner.status import RunStopped

    OpenAIBatchAPI.max_requests = args.max_requests
    if args.die_after:
        real = getattr(OpenAIBatchAPI, args.die_after)

        async def dying(self, *a, **kw):
            await real(self, *a, **kw)
            os._exit(9)  # like SIGKILL: nothing after this step runs, nothing is cleaned up

        setattr(OpenAIBatchAPI, args.die_after, dying)
    study, trials = _workload(args.n, args.api_base)
    try:
        res = run_study(study, trials, run_dir=args.run_dir, progress=False, use_cache=False, batch={"poll": args.poll, "rounds": 6})
    except RunStopped as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 4
    return res.run_status().exit_code


def _cmd(n, api_base, run_dir, max_requests, die_after=None, poll=0.1) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--api-base", api_base, "--run-dir", str(run_dir)]
    cmd += ["--max-requests", str(max_requests), "--poll", str(poll)]
    return cmd + (["--die-after", die_after] if die_after else [])


def _kill_while_polling(cmd, srv) -> str:
    """Start the child and SIGKILL it once it has polled a batch (the parent's kill)."""
    base = srv.stats()["batches"]["retrieves"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and srv.stats()["batches"]["retrieves"] <= base and time.monotonic() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        return f"ended first (exit {proc.returncode})"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return "SIGKILL"


def drill_batch(n: int, checks, tmp: Path, audit) -> dict:
    """Run the drill; `checks` and `audit` are drill.py's (table row, lost/duplicated)."""
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "batch-run"
    max_requests = max(10, n // 4)
    with ServerProcess(batch_after=0.5, batch_item_fail=0.1, seed=5, lifetime=900) as srv:
        key = {t: t for t in _workload(n, srv.api_base)[1]["trial_id"]}
        moments = {}
        for window in ("upload", "create"):
            done = subprocess.run(_cmd(n, srv.api_base, run_dir, max_requests, window), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            moments[window] = done.returncode
        moments["polling"] = _kill_while_polling(_cmd(n, srv.api_base, run_dir, max_requests), srv)
        done = subprocess.run(_cmd(n, srv.api_base, run_dir, max_requests, "content"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        moments["download"] = done.returncode
        final = subprocess.run(_cmd(n, srv.api_base, run_dir, max_requests), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        st = srv.stats(keys=False)["batches"]
    result = audit(run_dir, n, key)
    dup_batches, repaid = st["duplicate_batches"], st["paid_repeated"]
    out = {"trials": n, **result, "exits": moments, "final_exit": final.returncode, **{k: v for k, v in st.items() if k != "states"}}
    print(f"batch kill/resume: {json.dumps(out, default=str)}", flush=True)
    checks.require(all(v == 9 for k, v in moments.items() if k != "polling"), f"killed during upload / after creation / during download: {moments}")
    checks.require(moments["polling"] == "SIGKILL", f"killed while polling: {moments['polling']}")
    said = f": {final.stderr.strip()[-300:]}" if final.returncode else ""
    checks.require(final.returncode == 0, f"the final run exits 0 (exit {final.returncode}{said})")
    checks.require(dup_batches == 0, f"batches created twice for one submission: {dup_batches}")
    checks.row("batch kill/resume", result, repaid,
               f"{n} trials in {st['batches_created']} batches ({st['lines_submitted']} lines, 10% items failing); killed during "
               f"upload, after creation, polling, download; batches submitted twice {dup_batches}")  # fmt: skip
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description="batch drill child (internal; run benchmarks/drill.py)")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--n", type=int, default=0)
    ap.add_argument("--api-base", default="")
    ap.add_argument("--run-dir", default="")
    ap.add_argument("--max-requests", type=int, default=50_000)
    ap.add_argument("--poll", type=float, default=0.2)
    ap.add_argument("--die-after", default="", choices=["", "upload", "create", "retrieve", "content"])
    args = ap.parse_args()
    return child(args)


if __name__ == "__main__":
    sys.exit(main())
