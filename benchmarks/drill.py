"""Fault drills for the runner, against the fake OpenAI server in its own process.

    python benchmarks/drill.py            # 5,000 trials, 20 SIGKILLs, 30% faults, rate limit
    python benchmarks/drill.py --small    # the same drills, smaller (CI: under 2 minutes)

1. kill/resume: a run of N trials is SIGKILLed at K random moments and resumed each time
   (a fresh process, the same command), then run to the end. Checked from the store and from
   the server's own counts (per request content):
   - lost: trials without a final response at the end (must be 0);
   - duplicated: response rows beyond one per trial (must be 0);
   - repeated paid calls of recorded trials: a trial whose answer was already in the store at
     a kill, paid for again afterwards (must be 0);
   - re-paid in flight: answers the server delivered but the killed process had not yet
     committed (unavoidable without provider-side idempotency keys; must stay within
     kills x concurrency, reported).
2. transient faults: 30% of calls fail (500, 503, timeouts, truncated bodies, 429s) at
   random; the run must complete 100% with each trial's attempts bounded by the retry policy
   (one resume pass allowed for the rare trial that exhausts its attempts).
3. rate limit: the server allows R requests/s (429 + Retry-After beyond); the runner is
   given no rpm and must adapt: 429s are counted against successes (must stay below
   `--max-429-ratio`) and every trial must complete.

Prints the counts; exits 1 if any count is violated.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

MODEL = "openai/fake-model"


def _params(api_base: str) -> dict:
    return {"api_base": api_base, "api_key": "sk-fake"}


def child(args) -> None:
    """One run (or resume) of the workload: what the drill kills."""
    from llmexp.runner import run_study
    from llmexp.runner.retry import RetryPolicy
    from tests.support.workload import workload

    if args.no_throttle:  # for comparison only: the runner as it was before the throttle
        from llmexp.runner.scheduler import Scheduler

        class _Inert:
            def limited(self, *a):
                pass

        Scheduler._engage = lambda self, state: _Inert()
    study, trials = workload(args.n, MODEL, _params(args.api_base))
    retry = RetryPolicy(**json.loads(args.retry)) if args.retry else None
    res = run_study(study, trials, run_dir=args.run_dir, use_cache=False, progress=False, concurrency=args.concurrency, retry=retry)
    s = res.stats
    print(json.dumps({"done": s.done, "ok": s.ok, "failed": s.failed, "retries": s.retries, "errors": s.errors}), flush=True)


def _child_cmd(n, api_base, run_dir, concurrency, retry=None) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--api-base", api_base, "--run-dir", str(run_dir), "--concurrency", str(concurrency)]
    if retry:
        cmd += ["--retry", json.dumps(retry)]
    return cmd


def _store(run_dir: Path) -> tuple[set, int, dict]:
    """(final trial ids, response rows, status counts) read from the store."""
    path = run_dir / "store.sqlite"
    if not path.exists():
        return set(), 0, {}
    con = sqlite3.connect(path, timeout=30)
    try:
        final = {r[0] for r in con.execute("SELECT trial_id FROM responses WHERE status IN ('ok','invalid')")}
        rows = con.execute("SELECT COUNT(*) FROM responses").fetchone()[0]
        statuses = dict(con.execute("SELECT status, COUNT(*) FROM responses GROUP BY status").fetchall())
        return final, rows, statuses
    except sqlite3.OperationalError:
        return set(), 0, {}
    finally:
        con.close()


def _key_of(trials) -> dict:
    from tests.support.fake_openai import content_key

    return {r["trial_id"]: content_key(json.loads(r["messages"])) for r in trials.to_dict("records")}


class Checks:
    def __init__(self):
        self.failures: list[str] = []

    def require(self, ok: bool, what: str) -> None:
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {what}", flush=True)
        if not ok:
            self.failures.append(what)


def _kill_at_random(proc, srv, rng) -> str | None:
    """SIGKILL `proc` at a random moment: 1 in 4 during start-up (imports, store, before any
    call), else 0-1.5 s after its first call reached the server. None if it ended first."""
    if rng.random() < 0.25:
        time.sleep(rng.uniform(0.05, 1.5))
        moment = "start-up"
    else:
        base = srv.stats()["total"]
        deadline = time.monotonic() + 60
        while proc.poll() is None and srv.stats()["total"] == base and time.monotonic() < deadline:
            time.sleep(0.02)
        delay = rng.uniform(0.0, 1.5)
        time.sleep(delay)
        moment = f"calls+{delay:.2f}s"
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return moment


def drill_kill(n, kills, concurrency, latency_ms, checks: Checks, seed: int, tmp: Path) -> dict:
    from tests.support.fake_openai import ServerProcess
    from tests.support.workload import workload

    rng = random.Random(seed)
    run_dir = tmp / "kill-run"
    with ServerProcess(latency_ms=latency_ms, latency_dist="uniform", latency_spread=latency_ms / 2000.0, lifetime=900) as srv:
        _, trials = workload(n, MODEL, _params(srv.api_base))
        key = _key_of(trials)
        cmd = _child_cmd(n, srv.api_base, run_dir, concurrency)
        repeated_recorded = 0
        killed = 0
        t_start = time.monotonic()
        moments = []
        # Every session, killed or final, is checked against what was stored before it
        # started: none of those trials may be paid for again.
        while True:
            recorded, _, _ = _store(run_dir)
            paid_before = srv.stats(keys=True)["paid"]
            last = killed >= kills or len(recorded) >= n
            if last:  # the last resume runs to the end
                done = subprocess.run(cmd, stdout=subprocess.DEVNULL, timeout=600)
            else:
                moment = _kill_at_random(subprocess.Popen(cmd, stdout=subprocess.DEVNULL), srv, rng)
                if moment is not None:
                    killed += 1
                    moments.append(moment)
            paid_after = srv.stats(keys=True)
            repeated_recorded += sum(
                1 for tid in recorded if paid_after["paid"].get(key[tid], 0) > paid_before.get(key[tid], 0)
            )
            if last:
                break
        elapsed = time.monotonic() - t_start
    final, rows, statuses = _store(run_dir)
    lost = n - len(final & set(key))
    duplicated = rows - n
    con = sqlite3.connect(run_dir / "store.sqlite")
    dup_ids = con.execute("SELECT COUNT(*) - COUNT(DISTINCT trial_id) FROM responses").fetchone()[0]
    con.close()
    unpaid = sum(1 for tid in key if paid_after["paid"].get(key[tid], 0) == 0)
    repaid = paid_after["paid_repeated"]
    out = {
        "trials": n, "kills": killed, "final": len(final), "lost": lost, "duplicated": dup_ids,
        "extra_rows": duplicated, "repeated_paid_recorded": repeated_recorded, "repaid_in_flight": repaid,
        "abandoned_by_killed_clients": paid_after["abandoned"], "server_calls": paid_after["total"],
        "paid": paid_after["paid_total"], "never_paid": unpaid, "exit": done.returncode, "seconds": round(elapsed, 1),
        "moments": moments,
    }  # fmt: skip
    print(f"kill/resume: {json.dumps(out)}", flush=True)
    checks.require(done.returncode == 0, "the final resume exits 0")
    checks.require(killed == kills, f"{killed} SIGKILLs delivered (wanted {kills})")
    checks.require(lost == 0, f"lost: {lost}")
    checks.require(dup_ids == 0 and statuses.get("failed", 0) == 0, f"duplicated: {dup_ids}; failed rows: {statuses.get('failed', 0)}")
    checks.require(repeated_recorded == 0, f"repeated paid calls of recorded trials: {repeated_recorded}")
    checks.require(repaid <= killed * concurrency, f"re-paid in flight at a kill: {repaid} (bound: kills x concurrency = {killed * concurrency})")
    return out


def drill_faults(n, concurrency, checks: Checks, tmp: Path) -> dict:
    from tests.support.fake_openai import ServerProcess

    # 30% in all; 429s are the rate-limit drill's (a 429 engages the adaptive throttle)
    faults = {"500": 0.12, "503": 0.06, "timeout": 0.04, "truncated": 0.04, "malformed": 0.04}
    retry = {"max_attempts": 6, "initial_wait": 0.05, "max_wait": 0.5, "jitter": 0.5, "timeout": 1.0, "max_retry_after": 0.5}
    run_dir = tmp / "fault-run"
    with ServerProcess(latency_ms=10, fault=faults, timeout_sleep=1.5, retry_after=0.05, seed=7, lifetime=900) as srv:
        cmd = _child_cmd(n, srv.api_base, run_dir, concurrency, retry)
        t0 = time.monotonic()
        first = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        after_first, _, _ = _store(run_dir)
        passes = 1
        if len(after_first) < n:  # the rare trial that exhausted its attempts: resume once
            subprocess.run(cmd, capture_output=True, text=True, timeout=900)
            passes = 2
        st = srv.stats(keys=True)
        elapsed = time.monotonic() - t0
    final, rows, statuses = _store(run_dir)
    per_trial_max = max(st["counts"].values()) if st["counts"] else 0
    injected = sum(st["faults"].values())
    out = {
        "trials": n, "completed": len(final), "completion": round(len(final) / n, 4), "first_pass": len(after_first),
        "passes": passes, "server_calls": st["total"], "injected_faults": injected,
        "fault_rate": round(injected / max(1, st["total"]), 3), "faults": st["faults"], "max_attempts_one_trial": per_trial_max,
        "seconds": round(elapsed, 1), "first_exit": first.returncode,
    }  # fmt: skip
    print(f"transient faults: {json.dumps(out)}", flush=True)
    checks.require(len(final) == n, f"completion: {len(final)}/{n}")
    checks.require(
        per_trial_max <= retry["max_attempts"] * passes, f"attempts per trial <= {retry['max_attempts']} x {passes} pass(es): max {per_trial_max}"
    )
    checks.require(0.25 <= out["fault_rate"] <= 0.35, f"injected fault rate ~30%: {out['fault_rate']}")
    return out


def drill_rate_limit(n, concurrency, rps, max_ratio, checks: Checks, tmp: Path) -> dict:
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "rate-run"
    with ServerProcess(latency_ms=100, rate_limit_rps=rps, rate_limit_burst=max(1.0, rps / 5), lifetime=900) as srv:
        cmd = _child_cmd(n, srv.api_base, run_dir, concurrency)
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        elapsed = time.monotonic() - t0
        st = srv.stats()
    final, _, _ = _store(run_dir)
    ok = st["paid_total"]
    limited = st["rate_limited"]
    achieved = ok / max(1e-9, st["paid_span"])  # while calls ran (not start-up)
    ratio = limited / max(1, ok)
    out = {
        "trials": n, "completed": len(final), "limit_rps": rps, "concurrency": concurrency, "successes": ok,
        "429s": limited, "ratio_429_per_success": round(ratio, 3), "achieved_rps": round(achieved, 1),
        "seconds": round(elapsed, 1), "exit": done.returncode,
    }  # fmt: skip
    print(f"rate limit: {json.dumps(out)}", flush=True)
    checks.require(len(final) == n, f"completion under the rate limit: {len(final)}/{n}")
    checks.require(ratio <= max_ratio, f"429s per success {ratio:.3f} <= {max_ratio} (adapts, does not hammer)")
    checks.require(achieved >= 0.5 * rps, f"throughput under the limit {achieved:.1f}/s >= 50% of {rps}/s (adapts, does not stall)")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the CI version (under 2 minutes)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--max-429-ratio", type=float, default=0.25)
    ap.add_argument("--json", type=Path, default=None, help="also write the counts here")
    # child mode (internal)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--api-base", default="", help=argparse.SUPPRESS)
    ap.add_argument("--run-dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--concurrency", type=int, default=16, help=argparse.SUPPRESS)
    ap.add_argument("--retry", default="", help=argparse.SUPPRESS)
    ap.add_argument("--no-throttle", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args)
        return 0
    seed = args.seed if args.seed is not None else int(time.time())
    if args.small:
        plan = dict(kill_n=1000, kills=6, fault_n=1000, rate_n=300, rps=50)
    else:
        plan = dict(kill_n=5000, kills=20, fault_n=5000, rate_n=1000, rps=50)
    print(f"drill ({'small' if args.small else 'full'}), seed {seed}: {plan}", flush=True)
    checks = Checks()
    t0 = time.monotonic()
    results = {"seed": seed, "plan": plan}
    with tempfile.TemporaryDirectory(prefix="llmexp-drill-") as tmp:
        tmp = Path(tmp)
        results["kill"] = drill_kill(plan["kill_n"], plan["kills"], 16, 20, checks, seed, tmp)
        results["faults"] = drill_faults(plan["fault_n"], 32, checks, tmp)
        results["rate_limit"] = drill_rate_limit(plan["rate_n"], 32, plan["rps"], args.max_429_ratio, checks, tmp)
    results["seconds"] = round(time.monotonic() - t0, 1)
    results["violations"] = checks.failures
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"drill took {results['seconds']} s: {'all counts hold' if not checks.failures else str(len(checks.failures)) + ' violated'}")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
