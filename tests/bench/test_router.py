"""A study through litellm's Router over two deployments (two fake servers on loopback),
with the store and resume guarantees of a plain run."""

from __future__ import annotations

import json
import sqlite3

import pytest

from llmexp.errors import RunError
from llmexp.runner import run_study
from llmexp.runner.retry import RetryPolicy
from llmexp.runner.router import load_router_config
from tests.support.fake_openai import FakeOpenAI, content_key
from tests.support.workload import workload

FAST = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.5, timeout=5.0, max_retry_after=0.2)
MODEL = "openai/fake-model"


def _router(*servers, keys=("sk-deployment-a-123", "sk-deployment-b-456"), **settings):
    return {
        "model_list": [
            {"model_name": MODEL, "litellm_params": {"model": MODEL, "api_base": s.api_base, "api_key": k}}
            for s, k in zip(servers, keys)
        ],
        "router_settings": {"routing_strategy": "simple-shuffle", **settings},
    }


def _stored(run_dir):
    con = sqlite3.connect(run_dir / "store.sqlite")
    try:
        return con.execute("SELECT trial_id, status FROM responses").fetchall()
    finally:
        con.close()


def test_router_spreads_calls_over_two_deployments(tmp_path):
    with FakeOpenAI() as a, FakeOpenAI() as b:
        # the study's own api_base points nowhere: routed calls use the deployments'
        study, trials = workload(60, MODEL, {"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-study-key-789"})
        res = run_study(study, trials, run_dir=tmp_path / "run", router=_router(a, b), use_cache=False,
                        progress=False, concurrency=8, retry=FAST)
        assert res.stats.ok == 60
        assert a.total > 0 and b.total > 0 and a.total + b.total == 60
        assert {h for h in a.auth_headers} == {"Bearer sk-deployment-a-123"}
        assert {h for h in b.auth_headers} == {"Bearer sk-deployment-b-456"}
    rows = _stored(tmp_path / "run")
    assert len(rows) == 60 and {s for _, s in rows} == {"ok"}
    manifest = (tmp_path / "run" / "manifest.json").read_text()
    assert "sk-deployment-a-123" not in manifest and "sk-deployment-b-456" not in manifest
    assert json.loads(manifest)["router"]["model_list"][0]["litellm_params"]["api_key"] == "***"


def test_resume_across_router_and_plain_runs_repeats_nothing(tmp_path):
    with FakeOpenAI() as a, FakeOpenAI() as b:
        study, trials = workload(40, MODEL, {"api_base": a.api_base, "api_key": "sk-fake"})
        run_dir = tmp_path / "run"
        run_study(study, trials, run_dir=run_dir, router=_router(a, b), limit=25, use_cache=False, progress=False, concurrency=4, retry=FAST)
        # the same run directory resumed without a router: only the 15 missing trials are asked
        run_study(study, trials, run_dir=run_dir, use_cache=False, progress=False, concurrency=4, retry=FAST)
        counts = a.snapshot() + b.snapshot()
    keys = {content_key(json.loads(m)) for m in trials["messages"]}
    assert set(counts) == keys and max(counts.values()) == 1  # each trial paid once
    rows = _stored(run_dir)
    assert len(rows) == 40 and len({t for t, _ in rows}) == 40


def test_a_failing_deployment_is_cooled_down(tmp_path):
    with FakeOpenAI() as good, FakeOpenAI(status=500) as bad:
        study, trials = workload(40, MODEL, {})
        config = _router(good, bad, allowed_fails=1, cooldown_time=30)
        res = run_study(study, trials, run_dir=tmp_path / "run", router=config, use_cache=False, progress=False, concurrency=4, retry=FAST)
        assert res.stats.ok == 40  # our retries land on the healthy deployment
        assert good.total >= 40
        assert bad.total < 20  # cooled down after its failures, not called for every trial


def test_router_config_errors(tmp_path):
    with pytest.raises(RunError, match="model_list"):
        load_router_config({"model_list": []})
    with pytest.raises(RunError, match="litellm_params.model"):
        load_router_config({"model_list": [{"model_name": "x", "litellm_params": {}}]})
    bad = tmp_path / "router.json"
    bad.write_text("{not json")
    with pytest.raises(RunError, match=r"router.json:1:2"):
        load_router_config(bad)
    good = tmp_path / "r.json"
    good.write_text(json.dumps([{"model_name": "m", "litellm_params": {"model": "openai/m"}}]))
    assert load_router_config(good)["model_list"][0]["model_name"] == "m"
