"""The fake OpenAI-compatible server used by benchmarks and drills (issue #6): its own
process, port printed, counters by request content, rate limit, paid calls, lifetime."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from tests.support.fake_openai import FakeOpenAI, ServerProcess, content_key, main
from tests.support.workload import workload


def _post(api_base, content):
    body = json.dumps({"model": "fake-model", "messages": [{"role": "user", "content": content}]}).encode()
    req = urllib.request.Request(api_base + "/chat/completions", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), None


def test_server_process_counts_by_content_and_exits_by_itself():
    with ServerProcess(latency_ms=1, lifetime=60, prompt_tokens=7, completion_tokens=2) as srv:
        status, _, body = _post(srv.api_base, "hello")
        assert status == 200 and body["usage"] == {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
        _post(srv.api_base, "hello")
        _post(srv.api_base, "other")
        st = srv.stats(keys=True)
        assert st["total"] == 3 and st["distinct"] == 2 and st["paid_total"] == 3 and st["paid_repeated"] == 1
        assert st["counts"][content_key([{"role": "user", "content": "hello"}])] == 2
    assert srv.proc.poll() is not None


def test_server_process_hard_lifetime():
    srv = ServerProcess(lifetime=0.5).start()
    try:
        assert srv.proc.wait(timeout=60) == 0  # stopped by itself, nobody asked it to
    finally:
        srv.stop()


def test_rate_limit_answers_429_with_retry_after():
    with FakeOpenAI(rate_limit_rps=0.001, rate_limit_burst=2) as server:
        codes = [_post(server.api_base, f"q{i}")[:2] for i in range(4)]
        assert [c for c, _ in codes] == [200, 200, 429, 429]
        headers = {k.lower(): v for k, v in codes[2][1].items()}
        assert int(headers["retry-after-ms"]) > 0 and int(headers["retry-after"]) >= 1
        st = server.stats()
        assert st["rate_limited"] == 2 and st["paid_total"] == 2 and st["faults"] == {"rate_limit": 2}


def test_latency_distributions_and_faults_are_seeded():
    with pytest.raises(ValueError):
        FakeOpenAI(latency_dist="pareto")
    with FakeOpenAI(latency=0.001, latency_dist="lognormal", latency_spread=0.3, faults={"500": 0.5}, seed=4) as a:
        first = [_post(a.api_base, f"q{i}")[0] for i in range(20)]
    with FakeOpenAI(latency=0.001, latency_dist="exponential", faults={"500": 0.5}, seed=4) as b:
        second = [_post(b.api_base, f"q{i}")[0] for i in range(20)]
    assert first == second and set(first) == {200, 500}  # faults depend on (seed, content, attempt)


def test_cli_rejects_unknown_latency_dist():
    with pytest.raises(SystemExit):
        main(["--latency-dist", "pareto"])


def test_workload_has_distinct_prompts_and_ids():
    study, trials = workload(123, "openai/fake-model", {"api_base": "http://127.0.0.1:9/v1"})
    assert len(trials) == 123
    assert trials["trial_id"].is_unique and trials["messages"].is_unique and trials["cache_key"].is_unique
    assert study.models[0].name == "openai/fake-model"
