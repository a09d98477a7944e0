"""The adaptive throttle: a rate-limited model backs off (AIMD) instead of hammering."""

from __future__ import annotations

import asyncio

from llmexp.runner import run_study
from llmexp.runner.limits import Throttle
from llmexp.runner.retry import RetryPolicy
from tests.support.fake_openai import FakeOpenAI
from tests.support.workload import workload


def test_window_halves_once_per_round_and_grows_per_success():
    async def go():
        t = Throttle(inflight=16, ceiling=32)
        assert t.window == 8
        started = await t.enter()
        t.limited(started, 0.0)  # a call started after the last cut: cut
        assert t.window == 4 and t.cuts == 1
        t.limited(started - 10, 0.0)  # started before that cut: same round, no second cut
        assert t.window == 4 and t.cuts == 1
        await t.leave()
        for _ in range(4):
            t.success()
        assert 4.9 < t.window < 5.0  # +1/window per success: about one per round
        t.window = 1.0
        t.limited(await t.enter(), 0.0)
        assert t.window == 1.0  # never below one call in flight
        await t.leave()

    asyncio.run(go())


def test_rate_limited_run_completes_and_engages_the_throttle(tmp_path):
    retry = RetryPolicy(max_attempts=8, initial_wait=0.02, max_wait=0.2, jitter=0.5, timeout=5.0, max_retry_after=0.5)
    with FakeOpenAI(rate_limit_rps=100, rate_limit_burst=4) as server:
        study, trials = workload(60, "openai/fake-model", {"api_base": server.api_base, "api_key": "sk-fake"})
        res = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, concurrency=16, retry=retry)
        st = server.stats()
    assert res.stats.ok == 60 and res.stats.failed == 0
    assert st["paid_total"] == 60
    assert st["rate_limited"] > 0  # the burst of 16 met a bucket of 4
    assert res.stats.errors.get("rate_limit", 0) == st["rate_limited"]  # each 429 retried, none lost
