"""Fault drills for the runner, against the fake OpenAI server in its own process.

    python benchmarks/drill.py            # 5,000 trials, 20 SIGKILLs, 30% faults, rate limit, ...
    python benchmarks/drill.py --small    # the same drills, smaller (CI: about 90 s)

Every drill runs the runner in child processes (what a user's `llmexp run` is) and checks,
from the store and from the server's own counts per request content:

- lost: trials without a final answer at the end (after the resume a drill allows);
- duplicated: response rows beyond one per trial;
- re-paid stored answers: a trial whose answer was in the store, paid for again (after a
  kill, a stop or in a second run), or, within one run, a trial paid twice for anything
  but asking an empty answer again;
- integrity: SQLite's `PRAGMA integrity_check` of the store.

The drills:

1. kill/resume: SIGKILLed at K random moments (1 in 4 during start-up), resumed each time
   with the same command. Also reported: re-paid in flight (answers delivered to a killed
   process before it committed them; bounded by kills x concurrency). Run twice: in one
   process, and with `--workers 2` (issue 14: the main process is killed; its worker
   processes exit with it, the store and the counts must hold the same).
2. transient faults: 30% of calls fail (500, 503, timeouts, truncated and malformed bodies).
3. rate limit: the server allows R requests/s; the runner gets no rpm and must adapt:
   429s per success bounded, every trial completes, 0 failed rows.
4. disk full: the store may grow only a few pages (SQLite `max_page_count`: "database or
   disk is full" mid-run): the child must stop at once, exit 4 with one line, leave an
   honest manifest and no temporary file; the resume completes without paying again.
5-6. three runs of one study started together, one cache: two on one run directory (one
   runs, the other is refused in one line, exit 2) and one in its own directory, which
   shares the calls with the first through the cache: each answer is paid once (claims).
7. SIGTERM: the child gets SIGTERM mid-run: exits 4 with "saved N answers; run the same
   command to resume", the calls in flight saved; the resume completes.
8. trickling provider: 10% of answers trickle their body a byte at a time: each attempt
   is cut at its deadline; then a provider that never answers is stopped within seconds.
9. 429 storm: 40% of all calls get 429 (3 attempts allowed): the run ends with 0 failed trials.
10. empty answers: 20% of answers are empty: asked again, never cached, never `ok`.
11. batch kill/resume (`drill_batch.py`): `run_study(batch=...)` against the fake batch
    server, killed during upload, after creation, during polling and during download:
    0 lost, 0 duplicated, 0 requests paid twice, 0 batches submitted twice.

Prints a table of the counts; exits 1 if any count is violated.
"""

from __future__ import annotations

import argparse
import contextlib
import io
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
FAST = {"max_attempts": 4, "initial_wait": 0.02, "max_wait": 0.2, "jitter": 0.5, "timeout": 5.0, "max_retry_after": 0.5}


def _params(api_base: str) -> dict:
    return {"api_base": api_base, "api_key": "sk-fake"}


# ---------------------------------------------------------------- the child (a user's run)


def _limit_store_pages(extra_pages: int) -> None:
    """After the trials are stored, let the store grow only `extra_pages` pages: SQLite then
    fails with "database or disk is full", as on a full disk."""
    from llmexp.runner import store

    real = store.RunStore.add_trials

    def add_trials(self, rows):
        n = real(self, rows)
        pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
        self.conn.execute(f"PRAGMA max_page_count = {pages + extra_pages}")
        return n

    store.RunStore.add_trials = add_trials


def run_once(n: int, api_base: str, run_dir, concurrency: int, retry: dict | None = None, cache_dir=None, workers: int = 1) -> int:
    """One run (or resume) of the workload, ending like `llmexp run` does: the exit status
    of its run status, and one line on stderr when it stopped."""
    from llmexp.errors import RunError
    from llmexp.runner import run_study
    from llmexp.runner.retry import RetryPolicy
    from llmexp.runner.status import RunStopped
    from tests.support.workload import workload

    study, trials = workload(n, MODEL, _params(api_base))
    cache = {"use_cache": True, "cache_dir": cache_dir} if cache_dir else {"use_cache": False}
    try:
        res = run_study(study, trials, run_dir=run_dir, progress=False, concurrency=concurrency,
                        retry=RetryPolicy(**retry) if retry else None, workers=workers, **cache)  # fmt: skip
    except RunStopped as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return exc.status.exit_code if exc.status is not None else 4
    except RunError as exc:
        print(str(exc), file=sys.stderr, flush=True)
        return 2
    s = res.stats
    print(json.dumps({"done": s.done, "ok": s.ok, "failed": s.failed, "retries": s.retries, "errors": s.errors}), flush=True)
    return res.run_status().exit_code


def run_here(n: int, api_base: str, run_dir, concurrency: int, retry: dict | None = None, cache_dir=None) -> tuple[int, str]:
    """`run_once` in this process (where a separate process is not what is tested):
    (exit status, what it printed on stderr)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = run_once(n, api_base, run_dir, concurrency, retry, cache_dir)
    return code, err.getvalue()


def child(args) -> int:
    """The drills' child process: what a user's `llmexp run` is."""
    if args.no_throttle:  # for comparison only: the runner as it was before the throttle
        from llmexp.runner.scheduler import Scheduler

        class _Inert:
            def limited(self, *a):
                pass

        Scheduler._engage = lambda self, state: _Inert()
    if args.max_pages:
        _limit_store_pages(args.max_pages)
    retry = json.loads(args.retry) if args.retry else None
    return run_once(args.n, args.api_base, args.run_dir, args.concurrency, retry, args.cache_dir or None, args.workers)


def _child_cmd(n, api_base, run_dir, concurrency, retry=None, cache_dir=None, max_pages=None, workers=1) -> list[str]:
    cmd = [sys.executable, __file__, "--child", "--n", str(n), "--api-base", api_base, "--run-dir", str(run_dir), "--concurrency", str(concurrency)]
    if workers != 1:
        cmd += ["--workers", str(workers)]
    if retry:
        cmd += ["--retry", json.dumps(retry)]
    if cache_dir:
        cmd += ["--cache-dir", str(cache_dir)]
    if max_pages:
        cmd += ["--max-pages", str(max_pages)]
    return cmd


# ---------------------------------------------------------------- reading the results


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


def _audit(run_dir: Path, n: int, key: dict) -> dict:
    """lost, duplicated and integrity of a run directory holding the workload of n trials."""
    final, rows, statuses = _store(run_dir)
    con = sqlite3.connect(run_dir / "store.sqlite", timeout=30)
    try:
        dup = con.execute("SELECT COUNT(*) - COUNT(DISTINCT trial_id) FROM responses").fetchone()[0]
        integrity = con.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        con.close()
    return {"lost": n - len(final & set(key)), "duplicated": dup + max(0, rows - n), "integrity": integrity, "statuses": statuses}


def _key_of(trials) -> dict:
    from tests.support.fake_openai import content_key

    return {r["trial_id"]: content_key(json.loads(r["messages"])) for r in trials.to_dict("records")}


def _keys(n: int, api_base: str) -> dict:
    from tests.support.workload import workload

    return _key_of(workload(n, MODEL, _params(api_base))[1])


def _repaid_since(stored: set, key: dict, before: dict, after: dict) -> int:
    """Trials stored at a checkpoint that were paid for again after it."""
    return sum(1 for tid in stored if after.get(key[tid], 0) > before.get(key[tid], 0))


def _rerun_repays(srv, n: int, run_dir: Path, key: dict, concurrency: int, retry: dict | None = None) -> int:
    """Run the same command again (in this process): how many trials whose answer was in
    the store it paid for again (must be 0)."""
    stored, _, _ = _store(run_dir)
    before = srv.stats(keys=True)["paid"]
    run_here(n, srv.api_base, run_dir, concurrency, retry)
    return _repaid_since(stored, key, before, srv.stats(keys=True)["paid"])


class Checks:
    def __init__(self):
        self.failures: list[str] = []
        self.table: list[dict] = []

    def require(self, ok: bool, what: str) -> None:
        mark = "ok  " if ok else "FAIL"
        print(f"  [{mark}] {what}", flush=True)
        if not ok:
            self.failures.append(what)

    def row(self, drill: str, audit: dict, repaid: int, notes: str) -> None:
        """A line of the final table; lost, duplicated, re-paid and integrity must be 0/ok."""
        self.table.append({"drill": drill, "lost": audit["lost"], "duplicated": audit["duplicated"], "repaid": repaid,
                           "integrity": audit["integrity"], "notes": notes})  # fmt: skip
        self.require(audit["lost"] == 0 and audit["duplicated"] == 0 and repaid == 0 and audit["integrity"] == "ok",
                     f"{drill}: lost {audit['lost']}, duplicated {audit['duplicated']}, re-paid stored answers {repaid}, "
                     f"integrity {audit['integrity']}")  # fmt: skip

    def print_table(self) -> None:
        print("\n| drill | lost | duplicated | re-paid stored answers | integrity | notes |")
        print("| --- | --- | --- | --- | --- | --- |")
        for r in self.table:
            print(f"| {r['drill']} | {r['lost']} | {r['duplicated']} | {r['repaid']} | {r['integrity']} | {r['notes']} |")
        print(flush=True)


# ---------------------------------------------------------------- 1-3: kill, faults, rate limit


def _kill_at_random(proc, srv, rng, calls_budget: int) -> str | None:
    """SIGKILL `proc` at a random moment: 1 in 4 during start-up (imports, store, before any
    call reached the server), else after a random number of calls, at most `calls_budget`.

    Kills are placed by progress, not by the clock, so a fast machine cannot finish the run
    before every planned kill was delivered. None if the process ended first."""
    base = srv.stats()["total"]
    if rng.random() < 0.25:
        deadline = time.monotonic() + rng.uniform(0.05, 1.5)
        while proc.poll() is None and srv.stats()["total"] == base and time.monotonic() < deadline:
            time.sleep(0.01)
        moment = "start-up"
    else:
        target = base + rng.randint(1, max(1, calls_budget))
        deadline = time.monotonic() + 120
        while proc.poll() is None and srv.stats()["total"] < target and time.monotonic() < deadline:
            time.sleep(0.005)
        moment = f"calls+{srv.stats()['total'] - base}"
    if proc.poll() is not None:
        return None
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return moment


def drill_kill(n, kills, concurrency, latency_ms, checks: Checks, seed: int, tmp: Path, workers: int = 1) -> dict:
    """SIGKILL the run at random moments, resume each time (with `workers` > 1: the run's
    main process is killed; its worker processes must exit and pay for nothing more)."""
    from tests.support.fake_openai import ServerProcess

    rng = random.Random(seed)
    run_dir = tmp / f"kill-run-{workers}"
    with ServerProcess(latency_ms=latency_ms, latency_dist="uniform", latency_spread=latency_ms / 2000.0, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        cmd = _child_cmd(n, srv.api_base, run_dir, concurrency, workers=workers)
        repeated_recorded = killed = 0
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
                budget = (n - len(recorded)) // (kills - killed + 1)  # leaves work for every kill still planned
                moment = _kill_at_random(subprocess.Popen(cmd, stdout=subprocess.DEVNULL), srv, rng, budget)
                if moment is not None:
                    killed += 1
                    moments.append(moment)
            paid_after = srv.stats(keys=True)
            repeated_recorded += _repaid_since(recorded, key, paid_before, paid_after["paid"])
            if last:
                break
        elapsed = time.monotonic() - t_start
    audit = _audit(run_dir, n, key)
    repaid = paid_after["paid_repeated"]
    out = {
        "trials": n, "kills": killed, **audit, "repeated_paid_recorded": repeated_recorded, "repaid_in_flight": repaid,
        "abandoned_by_killed_clients": paid_after["abandoned"], "server_calls": paid_after["total"],
        "paid": paid_after["paid_total"], "exit": done.returncode, "seconds": round(elapsed, 1), "moments": moments,
    }  # fmt: skip
    name = "kill/resume" if workers == 1 else f"kill/resume, --workers {workers}"
    out["workers"] = workers
    print(f"{name}: {json.dumps(out)}", flush=True)
    checks.require(done.returncode == 0, "the final resume exits 0")
    checks.require(killed == kills, f"{killed} SIGKILLs delivered (wanted {kills})")
    checks.require(audit["statuses"].get("failed", 0) == 0, f"failed rows: {audit['statuses'].get('failed', 0)}")
    checks.require(repaid <= killed * concurrency, f"re-paid in flight at a kill: {repaid} (bound: kills x concurrency = {killed * concurrency})")
    checks.row(name, audit, repeated_recorded, f"{n} trials, {killed} SIGKILLs; re-paid in flight {repaid} (bound {killed * concurrency})")
    return out


def drill_faults(n, concurrency, checks: Checks, tmp: Path) -> dict:
    from tests.support.fake_openai import ServerProcess

    # 30% in all; 429s are the rate-limit drills' (a 429 engages the adaptive throttle)
    faults = {"500": 0.12, "503": 0.06, "timeout": 0.04, "truncated": 0.04, "malformed": 0.04}
    retry = {"max_attempts": 6, "initial_wait": 0.05, "max_wait": 0.5, "jitter": 0.5, "timeout": 1.0, "max_retry_after": 0.5}
    run_dir = tmp / "fault-run"
    with ServerProcess(latency_ms=10, fault=faults, timeout_sleep=1.5, retry_after=0.05, seed=7, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
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
        repaid = _rerun_repays(srv, n, run_dir, key, concurrency, retry)
    audit = _audit(run_dir, n, key)
    per_trial_max = max(st["counts"].values()) if st["counts"] else 0
    injected = sum(st["faults"].values())
    out = {
        "trials": n, **audit, "first_pass": len(after_first), "passes": passes, "server_calls": st["total"],
        "injected_faults": injected, "fault_rate": round(injected / max(1, st["total"]), 3), "faults": st["faults"],
        "max_attempts_one_trial": per_trial_max, "seconds": round(elapsed, 1), "first_exit": first.returncode,
    }  # fmt: skip
    print(f"transient faults: {json.dumps(out)}", flush=True)
    checks.require(
        per_trial_max <= retry["max_attempts"] * passes, f"attempts per trial <= {retry['max_attempts']} x {passes} pass(es): max {per_trial_max}"
    )
    checks.require(0.25 <= out["fault_rate"] <= 0.35, f"injected fault rate ~30%: {out['fault_rate']}")
    checks.require(first.returncode in (0, 3), f"the first pass ends complete (0) or partial (3): {first.returncode}")
    checks.row("transient faults", audit, repaid, f"{n} trials, {out['fault_rate']:.0%} of calls faulty, {passes} pass(es)")
    return out


def drill_rate_limit(n, concurrency, rps, max_ratio, checks: Checks, tmp: Path) -> dict:
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "rate-run"
    with ServerProcess(latency_ms=100, rate_limit_rps=rps, rate_limit_burst=max(1.0, rps / 5), lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        cmd = _child_cmd(n, srv.api_base, run_dir, concurrency)
        t0 = time.monotonic()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        elapsed = time.monotonic() - t0
        st = srv.stats(keys=True)
        repaid = _rerun_repays(srv, n, run_dir, key, concurrency)
    audit = _audit(run_dir, n, key)
    ok = st["paid_total"]
    limited = st["rate_limited"]
    achieved = ok / max(1e-9, st["paid_span"])  # while calls ran (not start-up)
    ratio = limited / max(1, ok)
    out = {
        "trials": n, **audit, "limit_rps": rps, "concurrency": concurrency, "successes": ok, "429s": limited,
        "ratio_429_per_success": round(ratio, 3), "achieved_rps": round(achieved, 1), "seconds": round(elapsed, 1),
        "exit": done.returncode,
    }  # fmt: skip
    print(f"rate limit: {json.dumps(out)}", flush=True)
    failed = audit["statuses"].get("failed", 0)
    checks.require(done.returncode == 0 and failed == 0, f"exit {done.returncode}, failed rows {failed}")
    checks.require(ratio <= max_ratio, f"429s per success {ratio:.3f} <= {max_ratio} (adapts, does not hammer)")
    checks.require(achieved >= 0.5 * rps, f"throughput under the limit {achieved:.1f}/s >= 50% of {rps}/s (adapts, does not stall)")
    checks.row("rate limit", audit, repaid, f"{n} trials at {rps}/s: {limited} 429s, 0 failed required")
    return out


# ---------------------------------------------------------------- 4-10: what issue 13 found


def _last_line(text: str) -> str:
    lines = [ln for ln in (text or "").strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _manifest(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / "manifest.json").read_text())
    except (OSError, ValueError):
        return {}


def drill_disk_full(n, concurrency, checks: Checks, tmp: Path) -> dict:
    """The store may grow 12 pages past its trials: SQLite's "database or disk is full"."""
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "disk-run"
    with ServerProcess(latency_ms=20, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        full = subprocess.run(_child_cmd(n, srv.api_base, run_dir, concurrency, FAST, max_pages=3), capture_output=True, text=True, timeout=600)
        stored, _, _ = _store(run_dir)
        before = srv.stats(keys=True)
        manifest = _manifest(run_dir)
        resumed, _ = run_here(n, srv.api_base, run_dir, concurrency, FAST)  # space freed: the same run again
        after = srv.stats(keys=True)
    audit = _audit(run_dir, n, key)
    last = _last_line(full.stderr)
    session = (manifest.get("sessions") or [{}])[-1]
    unsaved = before["paid_total"] - len(stored)  # answers paid for that the full disk could not keep
    out = {"trials": n, **audit, "stored_when_full": len(stored), "unsaved_in_flight": unsaved, "exit": full.returncode,
           "line": last, "resume_exit": resumed}  # fmt: skip
    print(f"disk full: {json.dumps(out)}", flush=True)
    checks.require(full.returncode == 4 and "Traceback" not in full.stderr, f"a full disk: exit {full.returncode} (4), no traceback")
    checks.require("database or disk is full" in last and "saved" in last, f"one line says so: {last!r}")
    checks.require(session.get("status") == "stopped" and not (run_dir / "manifest.json.tmp").exists(), "manifest: stopped, no temporary file")
    checks.require(0 < len(stored) < n and unsaved <= concurrency + 64, f"{len(stored)} stored when full; {unsaved} answers in flight not kept")
    checks.require(resumed == 0, f"after freeing space the same command completes: exit {resumed}")
    repaid = _repaid_since(stored, key, before["paid"], after["paid"])
    checks.row("disk full", audit, repaid, f"stopped at {len(stored)}/{n} (exit 4, one line), {unsaved} in-flight answers not kept; resumed")
    return out


def _wait_for_calls(srv, proc, at_least: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while srv.stats()["total"] < at_least and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)


def _hits(run_dir: Path) -> int:
    con = sqlite3.connect(run_dir / "store.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM responses WHERE cache_hit").fetchone()[0]
    finally:
        con.close()


def drill_concurrent(n, concurrency, checks: Checks, tmp: Path) -> dict:
    """Three runs of one study started together, all sharing one cache: two on one run
    directory (one runs, the other is refused) and one in a directory of its own (it
    shares the calls with the first through the cache: each answer is paid once)."""
    from tests.support.fake_openai import ServerProcess

    folder, other, cache = tmp / "together-run", tmp / "together-other", tmp / "together-cache"
    with ServerProcess(latency_ms=50, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        cmds = [_child_cmd(n, srv.api_base, d, concurrency, FAST, cache_dir=cache) for d in (folder, folder, other)]
        procs = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for c in cmds]
        errs = [p.communicate(timeout=600)[1] for p in procs]
        st = srv.stats(keys=True)
        repaid_folder = _rerun_repays(srv, n, folder, key, concurrency, FAST)
    audits = {"folder": _audit(folder, n, key), "other": _audit(other, n, key)}
    codes = [p.returncode for p in procs]
    refused = [e for c, e in zip(codes[:2], errs[:2], strict=True) if c == 2]
    line = _last_line(refused[0]) if refused else ""
    hits = [_hits(folder), _hits(other)]
    out = {"trials": n, **{k: v for a in audits.values() for k, v in a.items() if k != "statuses"}, "exits": codes,
           "refused_line": line, "paid": st["paid_total"], "paid_twice": st["paid_repeated"], "cache_hits": hits}  # fmt: skip
    print(f"runs started together: {json.dumps(out)}", flush=True)
    one_line = bool(refused) and len(refused[0].strip().splitlines()) == 1
    checks.require(sorted(codes[:2]) == [0, 2] and "in use by another llmexp run" in line and one_line,
                   f"two on one folder: one ran, one refused in one line: exits {codes[:2]}, {line!r}")  # fmt: skip
    checks.require(codes[2] == 0, f"the run in its own folder completes: exit {codes[2]}")
    checks.row("two runs, one folder", audits["folder"], repaid_folder, "started together: one ran, the other refused (exit 2, one line)")
    checks.row("two runs, one cache", audits["other"], st["paid_repeated"], f"paid {st['paid_total']} for {n} keys; cache hits {hits[0]} + {hits[1]}")
    return out


def drill_sigterm(n, concurrency, checks: Checks, tmp: Path) -> dict:
    """SIGTERM mid-run (docker stop, Slurm, Kubernetes): the calls in flight are saved."""
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "term-run"
    with ServerProcess(latency_ms=100, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        cmd = _child_cmd(n, srv.api_base, run_dir, concurrency, FAST)
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _wait_for_calls(srv, proc, n // 4)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
        stored, _, _ = _store(run_dir)
        before = srv.stats(keys=True)
        resumed, _ = run_here(n, srv.api_base, run_dir, concurrency, FAST)
        after = srv.stats(keys=True)
    audit = _audit(run_dir, n, key)
    last = _last_line(err)
    unsaved = before["paid_total"] - len(stored)
    out = {"trials": n, **audit, "exit": proc.returncode, "line": last, "stored": len(stored), "paid_not_stored": unsaved}
    print(f"SIGTERM: {json.dumps(out)}", flush=True)
    want = f"interrupted by SIGTERM: saved {len(stored)} answers; run the same command to resume"
    checks.require(proc.returncode == 4 and last == want, f"exit {proc.returncode} (4): {last!r}")
    checks.require(unsaved == 0, f"answers paid but not saved at SIGTERM: {unsaved}")
    checks.require(resumed == 0, f"the same command resumes to the end: exit {resumed}")
    repaid = _repaid_since(stored, key, before["paid"], after["paid"])
    checks.row("SIGTERM", audit, repaid, f"stopped at {len(stored)}/{n} (exit 4), {unsaved} paid answers not saved; resumed")
    return out


def drill_trickle(n, concurrency, checks: Checks, tmp: Path) -> dict:
    """10% of bodies trickle a byte every 0.3 s; then a provider that never answers."""
    from tests.support.fake_openai import ServerProcess

    retry = {**FAST, "timeout": 0.5, "max_attempts": 5}
    run_dir = tmp / "trickle-run"
    with ServerProcess(latency_ms=20, fault={"trickle": 0.1}, trickle_interval=0.3, seed=3, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        t0 = time.monotonic()
        code, _ = run_here(n, srv.api_base, run_dir, concurrency, retry)
        elapsed = time.monotonic() - t0
        st = srv.stats(keys=True)
        repaid = _rerun_repays(srv, n, run_dir, key, concurrency, retry)
    audit = _audit(run_dir, n, key)
    with ServerProcess(fault={"hang": 1.0}, lifetime=900) as silent:
        t1 = time.monotonic()
        hung, hung_err = run_here(n, silent.api_base, tmp / "silent-run", concurrency, {**retry, "hang_timeouts": 8})
        stopped_after = time.monotonic() - t1
    trickled = st["faults"].get("trickle", 0)
    said = next((ln for ln in hung_err.splitlines() if "not answering" in ln), "")
    out = {"trials": n, **audit, "trickled": trickled, "seconds": round(elapsed, 1), "exit": code,
           "silent_exit": hung, "silent_stopped_after_s": round(stopped_after, 1), "silent_line": said}  # fmt: skip
    print(f"trickling provider: {json.dumps(out)}", flush=True)
    # without a deadline one trickled body (~300 bytes at 0.3 s) holds its attempt ~90 s
    checks.require(code == 0 and trickled > 0 and elapsed < 45, f"{trickled} trickled bodies cut at their deadline; {elapsed:.1f} s")
    checks.require(hung == 4 and bool(said) and stopped_after < 20, f"a silent provider is stopped in {stopped_after:.1f} s (exit {hung})")
    checks.row("trickling provider", audit, repaid, f"{trickled} trickled bodies cut; a silent provider stopped in {stopped_after:.0f} s")
    return out


def drill_429_storm(n, concurrency, checks: Checks, tmp: Path) -> dict:
    """40% of all calls get 429: they have their own budget, so none ends failed."""
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "storm-run"
    with ServerProcess(latency_ms=20, fault={"429": 0.4}, retry_after=0.05, seed=5, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        code, _ = run_here(n, srv.api_base, run_dir, concurrency, {**FAST, "max_attempts": 3})
        st = srv.stats(keys=True)
        repaid = _rerun_repays(srv, n, run_dir, key, concurrency, FAST)
    audit = _audit(run_dir, n, key)
    storms = st["faults"].get("429", 0)
    out = {"trials": n, **audit, "429s": storms, "exit": code}
    print(f"429 storm: {json.dumps(out)}", flush=True)
    checks.require(code == 0 and audit["statuses"].get("failed", 0) == 0, f"0 failed trials after {storms} 429s (exit {code})")
    checks.row("429 storm", audit, repaid, f"{storms} 429s for {n} trials (max 3 attempts), 0 failed")
    return out


def _empty_rows(run_dir: Path) -> int:
    con = sqlite3.connect(run_dir / "store.sqlite")
    try:
        return con.execute("SELECT COUNT(*) FROM responses WHERE error_kind = 'empty' AND status = 'failed'").fetchone()[0]
    finally:
        con.close()


def drill_empty(n, concurrency, checks: Checks, tmp: Path) -> dict:
    """20% of answers are empty: asked again, kept (raw, failed) only after 3, never cached
    nor final; running the same command again asks those trials until every one is answered."""
    from tests.support.fake_openai import ServerProcess

    run_dir = tmp / "empty-run"
    with ServerProcess(latency_ms=20, fault={"empty": 0.2}, seed=9, lifetime=900) as srv:
        key = _keys(n, srv.api_base)
        code, _ = run_here(n, srv.api_base, run_dir, concurrency, FAST, cache_dir=tmp / "empty-cache")
        st = srv.stats(keys=True)
        kept_empty = _empty_rows(run_dir)
        repaid, reruns = 0, 0
        while _empty_rows(run_dir) and reruns < 5:  # "run the same command to retry the failed ones"
            repaid += _rerun_repays(srv, n, run_dir, key, concurrency, FAST)
            reruns += 1
    audit = _audit(run_dir, n, key)
    con = sqlite3.connect(run_dir / "store.sqlite")
    blank_final = con.execute("SELECT COUNT(*) FROM responses WHERE status IN ('ok', 'invalid') AND TRIM(COALESCE(raw_text, '')) = ''").fetchone()[0]
    con.close()
    con = sqlite3.connect(tmp / "empty-cache" / "cache.sqlite")
    blank_cached = con.execute("SELECT COUNT(*) FROM responses WHERE TRIM(COALESCE(raw_text, '')) = ''").fetchone()[0]
    con.close()
    empties = st["faults"].get("empty", 0)
    thrice = sum(1 for c in st.get("fault_counts", {}).values() if c.get("empty", 0) >= 3)
    out = {"trials": n, **audit, "empty_answers": empties, "blank_final_rows": blank_final, "blank_cached": blank_cached,
           "kept_as_empty": kept_empty, "empty_three_times": thrice, "exit": code, "reruns": reruns}  # fmt: skip
    print(f"empty answers: {json.dumps(out)}", flush=True)
    checks.require(blank_final == 0 and blank_cached == 0, f"empty answers stored as final: {blank_final}; cached: {blank_cached}")
    checks.require(kept_empty == thrice, f"kept as failed 'empty' only after 3 empty answers: {kept_empty} (trials empty 3 times: {thrice})")
    checks.require(code == (3 if kept_empty else 0), f"the first run is partial exactly when answers stayed empty: exit {code}")
    checks.row("empty answers", audit, repaid,
               f"{empties} empty answers asked again; {kept_empty} kept as failed, 0 final, 0 cached; asked again by {reruns} rerun(s)")
    return out


def _drill_batch(n: int, checks: Checks, tmp: Path) -> dict:
    """11. batch kill/resume (benchmarks/drill_batch.py): killed during upload, after
    creation, polling, download: 0 lost, 0 duplicated, 0 batches submitted twice."""
    from drill_batch import drill_batch  # benchmarks/ is this script's directory

    return drill_batch(n, checks, tmp, _audit)


PLANS = {
    "small": dict(kill_n=1000, kills=4, kill_workers_n=600, kill_workers=3, fault_n=500, rate_n=200, rps=50, n=240, storm_n=150, batch_n=300),
    "full": dict(kill_n=5000, kills=20, kill_workers_n=2000, kill_workers=8, fault_n=5000, rate_n=1000, rps=50, n=1000, storm_n=1000, batch_n=5000),
}


def _drills(plan: dict, checks: Checks, seed: int, max_ratio: float, tmp: Path) -> dict:
    n = plan["n"]
    steps = {
        "kill": lambda: drill_kill(plan["kill_n"], plan["kills"], 16, 20, checks, seed, tmp),
        "kill_workers": lambda: drill_kill(plan["kill_workers_n"], plan["kill_workers"], 16, 20, checks, seed + 1, tmp, workers=2),
        "faults": lambda: drill_faults(plan["fault_n"], 32, checks, tmp),
        "rate_limit": lambda: drill_rate_limit(plan["rate_n"], 32, plan["rps"], max_ratio, checks, tmp),
        "disk_full": lambda: drill_disk_full(n, 16, checks, tmp),
        "concurrent": lambda: drill_concurrent(n, 16, checks, tmp),
        "sigterm": lambda: drill_sigterm(n, 16, checks, tmp),
        "trickle": lambda: drill_trickle(n, 16, checks, tmp),
        "429_storm": lambda: drill_429_storm(plan["storm_n"], 32, checks, tmp),
        "empty": lambda: drill_empty(n, 16, checks, tmp),
        "batch": lambda: _drill_batch(plan["batch_n"], checks, tmp),
    }
    out = {}
    for name, step in steps.items():
        t0 = time.monotonic()
        out[name] = step()
        out[name]["drill_seconds"] = round(time.monotonic() - t0, 1)
        print(f"  ({name}: {out[name]['drill_seconds']} s)", flush=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="the CI version (about 90 s)")
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
    ap.add_argument("--cache-dir", default="", help=argparse.SUPPRESS)
    ap.add_argument("--max-pages", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--no-throttle", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(args)
    seed = args.seed if args.seed is not None else int(time.time())
    plan = PLANS["small" if args.small else "full"]
    print(f"drill ({'small' if args.small else 'full'}), seed {seed}: {plan}", flush=True)
    checks = Checks()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llmexp-drill-") as tmp:
        results: dict = {"seed": seed, "plan": plan, **_drills(plan, checks, seed, args.max_429_ratio, Path(tmp))}
    results["seconds"] = round(time.monotonic() - t0, 1)
    results["violations"] = checks.failures
    results["table"] = checks.table
    checks.print_table()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    print(f"drill took {results['seconds']} s: {'all counts hold' if not checks.failures else str(len(checks.failures)) + ' violated'}")
    return 1 if checks.failures else 0


if __name__ == "__main__":
    sys.exit(main())
