"""`run_study(workers=N)` / `llmexp run --workers N`: litellm calls made in worker processes.

What must hold: the same answers as one process, each paid once; a worker's failures reach
the scheduler classified as they would be in one process (Retry-After, malformed bodies,
permanent errors); a worker that dies fails only its calls in flight (retried elsewhere);
workers exit when the run's process dies (SIGKILL included), so nothing keeps paying for
calls no store will record.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import httpx
import litellm
import pytest

from llmexp.errors import RunError
from llmexp.runner import run_study
from llmexp.runner.retry import RemoteFailure, classify, raw_body, retry_after
from llmexp.runner.store import RunStore
from llmexp.runner.workers import WorkerPool, _failure, _reply_failure, resolve_workers
from tests.support.fake_openai import FakeOpenAI
from tests.support.workload import workload


def _answers(run_dir) -> dict:
    store = RunStore(run_dir, create=False)
    try:
        return {r.trial_id: (r.status, r.raw_text, r.attempts > 0) for r in store.response_rows()}
    finally:
        store.close()


def test_same_answers_as_one_process_each_paid_once(tmp_path):
    with FakeOpenAI(faults={"500": 0.1, "429": 0.1}, retry_after=0.05, seed=5) as server:
        study, trials = workload(60, params={"api_base": server.api_base, "api_key": "sk-fake"})
        fast = dict(use_cache=False, progress=False, concurrency=16)
        one = run_study(study, trials, run_dir=tmp_path / "one", **fast)
        paid_one = server.stats()["paid_total"]
        two = run_study(study, trials, run_dir=tmp_path / "two", workers=2, **fast)
        paid_two = server.stats()["paid_total"] - paid_one
        manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert one.stats.ok == two.stats.ok == 60
    assert paid_one == paid_two == 60  # every trial paid exactly once, 5xx and 429s retried
    assert two.stats.errors.get("rate_limit", 0) > 0 and two.stats.errors.get("server", 0) > 0
    assert _answers(tmp_path / "one") == _answers(tmp_path / "two")
    assert manifest["sessions"][-1]["workers"] == 2


def _rate_limit_error() -> litellm.RateLimitError:
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    response = httpx.Response(429, headers={"retry-after-ms": "1500"}, request=request)
    return litellm.RateLimitError("slow down", llm_provider="openai", model="m", response=response)


def test_failures_keep_their_classification():
    """A worker's failure, sent back as a frame, classifies like the original exception."""
    limited = _rate_limit_error()
    back = _failure(_reply_failure(1, limited))
    assert classify(back) == classify(limited) == ("rate_limit", True, False)
    assert retry_after(back) == retry_after(limited) == 1.5
    assert f"{type(back).__name__}: {back}" == f"{type(limited).__name__}: {limited}"

    try:
        json.loads('{"choices": [')
    except json.JSONDecodeError as cause:
        try:
            raise litellm.APIError(500, "bad body", "openai", "m") from cause
        except litellm.APIError as exc:
            malformed = exc
    back = _failure(_reply_failure(2, malformed))
    assert classify(back)[0] == "malformed" and raw_body(back) == '{"choices": ['

    auth = litellm.AuthenticationError("bad key", llm_provider="openai", model="m")
    assert classify(_failure(_reply_failure(3, auth))) == ("auth", False, True)
    # without the verdict it carries, the stand-in would pass for an unknown transient error
    assert classify(Exception(str(auth))) == ("error", True, False)
    assert classify(RemoteFailure("x", ("auth", False, True))) == ("auth", False, True)


def test_a_dead_worker_fails_only_its_calls():
    class Call:
        model = "openai/fake-model"

        def __init__(self, i, api_base):
            self.target = self.model
            self.messages = [{"role": "user", "content": f"slow question {i}"}]
            self.kwargs = {"api_base": api_base, "api_key": "sk-fake", "max_retries": 0, "timeout": 30}

    async def go(api_base):
        pool = WorkerPool(2)
        await pool.start()
        try:
            tasks = [asyncio.ensure_future(pool.send(Call(i, api_base))) for i in range(8)]
            await asyncio.sleep(0.3)  # all 8 sent, 4 per worker, none answered yet
            os.kill(pool.workers[0].proc.pid, signal.SIGKILL)
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await pool.close()

    with FakeOpenAI(latency=1.5) as server:
        out = asyncio.run(go(server.api_base))
    lost = [o for o in out if isinstance(o, BaseException)]
    answered = [o for o in out if not isinstance(o, BaseException)]
    assert len(lost) == 4 and all(classify(e) == ("connection", True, False) for e in lost)
    assert len(answered) == 4 and all(a.choices[0].message.content in ("yes", "no") for a in answered)


def test_workers_exit_when_the_run_process_is_killed(tmp_path):
    script = textwrap.dedent(
        """
        import asyncio, sys
        from llmexp.runner.workers import WorkerPool

        async def main():
            pool = WorkerPool(1)
            await pool.start()
            print(pool.workers[0].proc.pid, flush=True)
            await asyncio.sleep(600)

        asyncio.run(main())
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    try:
        worker = int(proc.stdout.readline())
        os.kill(worker, 0)  # alive
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                os.kill(worker, 0)
            except ProcessLookupError:
                break
            with open(f"/proc/{worker}/stat") as fh:  # a zombie (reaped by init later) has exited
                if fh.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            time.sleep(0.05)
        else:
            pytest.fail(f"worker {worker} still running 10 s after its run process was killed")
    finally:
        if proc.poll() is None:
            proc.kill()


def test_workers_argument():
    assert resolve_workers(1) == 1
    assert resolve_workers(3) == 3
    assert resolve_workers(0) == (os.cpu_count() or 1)
    with pytest.raises(RunError) as err:
        resolve_workers(-2)
    assert str(err.value) == "--workers must be 0 (one per core) or more, not -2"


def test_a_dry_run_refuses_the_workers_a_real_run_refuses(tmp_path):
    """A dry run promises what the real run will do, so it checks --workers too (it used to
    print a plan for `--workers -1`)."""
    study, trials = workload(5, params={"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-fake"})
    with pytest.raises(RunError, match="--workers must be 0"):
        run_study(study, trials, run_dir=tmp_path / "r", dry_run=True, workers=-1, progress=False)
    assert run_study(study, trials, run_dir=tmp_path / "r", dry_run=True, workers=2, progress=False).pending == 5
    assert not (tmp_path / "r").exists()


def test_a_worker_that_cannot_start_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")  # exits at once, says nothing

    async def go():
        await WorkerPool(2).start()

    with pytest.raises(RunError) as err:
        asyncio.run(go())
    assert str(err.value) == "a worker process could not start (IncompleteReadError); run with --workers 1"
