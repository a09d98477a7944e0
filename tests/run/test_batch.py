"""The batch path (`run_study(batch=...)`, `llmexp run --batch`) against the fake batch server:
answers stored like live ones, batch prices, size limits, failed/expired/cancelled batches,
and resuming after a kill in every window without creating an accepted batch twice."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from llmexp.errors import RunError
from llmexp.providers.batching import OpenAIBatchAPI
from llmexp.runner import run_study
from llmexp.runner.batch_ledger import chunk
from llmexp.runner.cost import batch_price, model_price
from llmexp.runner.status import RunStopped
from tests.support.fake_openai import FakeOpenAI, default_responder
from tests.support.workload import workload

MODEL = "openai/fake-model"
PRICE = {"input_cost_per_token": 2e-6, "output_cost_per_token": 8e-6}  # fake prices
FAST = {"poll": 0.02}


def _setup(server, n=60, **params):
    return workload(n, MODEL, {"api_base": server.api_base, "api_key": "sk-fake-batch", **PRICE, **params})


def _run(study, trials, run_dir, batch=None, **kw):
    return run_study(study, trials, run_dir=run_dir, progress=False, use_cache=False, batch=batch or FAST, **kw)


def _rows(run_dir: Path) -> list[dict]:
    con = sqlite3.connect(run_dir / "store.sqlite")
    con.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in con.execute("SELECT * FROM responses")]
    finally:
        con.close()


def _ledger(run_dir: Path) -> list[tuple]:
    con = sqlite3.connect(run_dir / "store.sqlite")
    try:
        return con.execute("SELECT state, provider_status, n FROM batches ORDER BY created").fetchall()
    finally:
        con.close()


def test_batch_answers_are_stored_parsed_priced_at_half_and_split_by_size(tmp_path, monkeypatch):
    monkeypatch.setattr(OpenAIBatchAPI, "max_requests", 25)
    with FakeOpenAI(batch_after=0.05) as server:
        study, trials = _setup(server)
        res = _run(study, trials, tmp_path / "run")
        stats = server.batches.stats()
    rows = _rows(tmp_path / "run")
    assert res.status.status == "complete"
    assert len(rows) == 60 and {r["status"] for r in rows} == {"ok"}
    assert stats["batches_created"] == 3 and stats["files_uploaded"] == 3 and stats["paid_total"] == 60
    assert _ledger(tmp_path / "run") == [("collected", "completed", 25), ("collected", "completed", 25), ("collected", "completed", 10)]
    assert server.total == 0  # no live call at all
    uploaded = b"".join(v for k, v in server.batches.files.items() if not k.startswith("file-out"))
    assert b"sk-fake-batch" not in uploaded and b"input_cost_per_token" not in uploaded  # no key, no llmexp param sent
    assert b'"timeout"' not in uploaded and b'"max_retries"' not in uploaded  # client settings of the live call
    msgs = dict(zip(trials["trial_id"], trials["messages"], strict=True))
    for r in rows:  # the server's answer for that prompt, parsed to its label; priced at half the (fake) price
        assert r["label"] == default_responder(json.loads(msgs[r["trial_id"]]))
        assert r["cost"] == pytest.approx(r["prompt_tokens"] * 1e-6 + r["completion_tokens"] * 4e-6) and r["cost"] > 0


def test_batch_price_uses_litellm_batch_rates_else_half():
    assert batch_price("openai/gpt-4o-mini").input == pytest.approx(7.5e-08)  # litellm's input_cost_per_token_batches
    assert batch_price("openai/gpt-4o-mini").output == pytest.approx(3e-07)
    p = batch_price("openai/unknown-x", PRICE)
    assert (p.input, p.output) == (pytest.approx(1e-6), pytest.approx(4e-6))
    assert model_price("openai/unknown-x", PRICE).input == 2e-6


def test_chunk_respects_request_and_byte_limits():
    lines = [(f"t{i}", b"x" * 10) for i in range(25)]
    assert [len(c) for c in chunk(lines, 10, 10_000)] == [10, 10, 5]
    assert [len(c) for c in chunk(lines, 100, 35)] == [3] * 8 + [1]
    assert [t for c in chunk(lines, 7, 10_000) for t, _ in c] == [t for t, _ in lines]  # all, once, in order
    with pytest.raises(RunError, match=r"^the request of trial t0 \(10 bytes\) is larger than the provider's batch file limit \(5 bytes\)$"):
        list(chunk(lines, 100, 5))


def test_failed_items_go_back_to_pending_and_are_resubmitted(tmp_path):
    with FakeOpenAI(batch_after=0.0, batch_item_fail=0.25, seed=1) as server:
        study, trials = _setup(server)
        res = _run(study, trials, tmp_path / "run", batch={**FAST, "rounds": 6})
        stats = server.batches.stats()
    assert res.status.status == "complete" and {r["status"] for r in _rows(tmp_path / "run")} == {"ok"}
    assert stats["batches_created"] > 1 and stats["lines_submitted"] > 60  # the failed ones, again
    assert stats["paid_total"] == 60 and stats["paid_repeated"] == 0 and stats["duplicate_batches"] == 0


def test_expired_batch_keeps_its_answers_and_the_rest_are_asked_again(tmp_path):
    with FakeOpenAI(batch_after=0.0, batch_end="expired", batch_partial=0.5) as server:
        study, trials = _setup(server, n=40)
        res = _run(study, trials, tmp_path / "run", batch={**FAST, "rounds": 1})
        rows = _rows(tmp_path / "run")
        assert res.status.status == "partial"
        assert sum(r["status"] == "ok" for r in rows) == 20
        assert {r["error_kind"] for r in rows if r["status"] == "failed"} == {"batch_item"}
        server.batches.end = "completed"
        _run(study, trials, tmp_path / "run")
        stats = server.batches.stats()
    assert {r["status"] for r in _rows(tmp_path / "run")} == {"ok"}
    assert stats["paid_total"] == 40 and stats["paid_repeated"] == 0


def test_batch_failed_as_a_whole_fails_its_trials_with_the_reason(tmp_path):
    with FakeOpenAI(batch_after=0.0, batch_end="failed") as server:
        study, trials = _setup(server, n=10)
        res = _run(study, trials, tmp_path / "run", batch={**FAST, "rounds": 1})
        stats = server.batches.stats()
    rows = _rows(tmp_path / "run")
    assert res.status.status == "partial" and stats["paid_total"] == 0 and stats["batches_created"] == 1
    assert {r["error_kind"] for r in rows} == {"batch_failed"}
    assert all(r["error"] == "batch failed: fake server: batch failed" for r in rows)


class _Killed(KeyboardInterrupt):
    """Stands for a SIGKILL at one point of the batch path (nothing after it runs)."""


def _die_after(monkeypatch, name):
    real = getattr(OpenAIBatchAPI, name)

    async def dying(self, *args, **kwargs):
        await real(self, *args, **kwargs)
        raise _Killed(name)

    monkeypatch.setattr(OpenAIBatchAPI, name, dying)


def test_a_kill_in_every_window_never_creates_a_batch_twice(tmp_path, monkeypatch):
    """Killed after the upload (file id not recorded), after the creation (batch id not
    recorded), during polling and during the download; then the run completes."""
    with FakeOpenAI(batch_after=0.0) as server:
        study, trials = _setup(server, n=30)
        states = []
        for window in ("upload", "create", "retrieve", "content"):
            with monkeypatch.context() as m:
                _die_after(m, window)
                with pytest.raises(RunStopped):
                    _run(study, trials, tmp_path / "run")
            states.append([s for s, _, _ in _ledger(tmp_path / "run")])
        res = _run(study, trials, tmp_path / "run")
        stats = server.batches.stats()
    # upload: the `new` submission is dropped and uploaded again (a file costs nothing);
    # create: the batch is found at the provider by its tag; then only polled and downloaded
    assert states == [["new"], ["dropped", "uploaded"], ["dropped", "submitted"], ["dropped", "submitted"]]
    assert res.status.status == "complete"
    assert stats["files_uploaded"] == 2 and stats["batches_created"] == 1
    assert stats["duplicate_batches"] == 0 and stats["paid_repeated"] == 0 and stats["paid_total"] == 30
    rows = _rows(tmp_path / "run")
    assert len(rows) == 30 and {r["status"] for r in rows} == {"ok"}


def test_no_wait_submits_and_a_live_run_leaves_held_trials_alone(tmp_path):
    with FakeOpenAI(batch_after=0.3) as server:
        study, trials = _setup(server, n=20)
        with pytest.raises(RunStopped, match="1 batches submitted, not ended yet"):
            _run(study, trials, tmp_path / "run", batch={**FAST, "wait": False})
        live = run_study(study, trials, run_dir=tmp_path / "run", progress=False, use_cache=False)
        assert server.total == 0 and live.status.status == "partial"  # held by the open batch: not asked live
        _run(study, trials, tmp_path / "run")
        stats = server.batches.stats()
    assert stats["batches_created"] == 1 and stats["paid_total"] == 20
    assert {r["status"] for r in _rows(tmp_path / "run")} == {"ok"}


def test_max_cost_stops_before_submitting_a_batch_over_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(OpenAIBatchAPI, "max_requests", 10)
    with FakeOpenAI(batch_after=0.0) as server:
        study, trials = _setup(server, n=30)
        # each batch of 10 is estimated at about $0.0105 (full max_tokens at half of the fake price)
        with pytest.raises(RunStopped, match=r"stopped before exceeding --max-cost \$0\.0250: the next batch of 10 requests"):
            _run(study, trials, tmp_path / "run", max_cost=0.025, batch={**FAST, "wait": False})
        created = server.batches.stats()["batches_created"]
    assert created == 2


def test_models_without_a_batch_api_are_refused_before_anything_is_written(tmp_path):
    study, trials = workload(5, "synthetic/respondent", {})
    with pytest.raises(RunError) as err:
        run_study(study, trials, run_dir=tmp_path / "syn", progress=False, batch=True)
    assert str(err.value) == (
        "model 'synthetic/respondent' is answered in this process by llmexp (synthetic): it has no batch API -- run it without --batch"
    )
    study, trials = workload(5, "anthropic/claude-3-5-haiku-latest", {"api_key": "sk-ant-fake"})
    with pytest.raises(RunError) as err:
        run_study(study, trials, run_dir=tmp_path / "ant", progress=False, batch=True)
    assert str(err.value) == (
        "model 'anthropic/claude-3-5-haiku-latest' cannot run as a batch: llmexp's batch path covers the OpenAI-compatible "
        "providers (hosted_vllm, litellm_proxy, openai), not anthropic (litellm 1.100.5 cannot create Anthropic batches; "
        "Azure, Vertex AI and Bedrock batches are not wired in llmexp yet) -- run it without --batch"
    )
    assert not (tmp_path / "syn").exists() and not (tmp_path / "ant").exists()
    import llmexp  # the Python API spells it the same way

    with pytest.raises(RunError, match=r"^model 'synthetic/respondent' is answered in this process by llmexp \(synthetic\)"):
        llmexp.run(workload(5, "synthetic/respondent", {})[0], out=tmp_path / "api", quiet=True, batch=True)


def test_bad_batch_options_are_refused(tmp_path):
    study, trials = workload(5, MODEL, {"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-x"})
    with pytest.raises(RunError, match=r"^batch options: poll must be > 0 seconds and rounds at least 1$"):
        run_study(study, trials, run_dir=tmp_path / "r", progress=False, batch={"poll": 0})
    with pytest.raises(RunError, match=r"^batch options: .*unexpected keyword argument 'pol'"):
        run_study(study, trials, run_dir=tmp_path / "r", progress=False, batch={"pol": 1})


def test_without_reconciliation_a_kill_after_creation_would_pay_twice(tmp_path, monkeypatch):
    """The drill's counters catch the bug the ledger prevents: with the provider's listing
    ignored, the resume creates the batch again and every request is paid twice."""

    async def nothing_found(self, tag, file_id, pages=20):
        return None

    monkeypatch.setattr(OpenAIBatchAPI, "find", nothing_found)
    with FakeOpenAI(batch_after=0.0) as server:
        study, trials = _setup(server, n=10)
        with monkeypatch.context() as m:
            _die_after(m, "create")
            with pytest.raises(RunStopped):
                _run(study, trials, tmp_path / "run")
        _run(study, trials, tmp_path / "run")
        stats = server.batches.stats()
    assert stats["duplicate_batches"] == 1 and stats["paid_repeated"] == 10


def test_cli_batch_refuses_a_model_without_batch_api_in_one_line(tmp_path, capsys):
    from llmexp.cli import main

    study = Path(__file__).parents[2] / "studies" / "demand_curve.study"
    argv = ["run", str(study), "--model", "synthetic/respondent", "--batch", "-o", str(tmp_path / "r"), "--quiet", "--limit", "2"]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(
        "model 'synthetic/respondent' is answered in this process by llmexp (synthetic): it has no batch API -- run it without --batch"
    )
    assert err.splitlines()[-1].startswith("model 'synthetic") and not (tmp_path / "r").exists()  # one line, nothing written


def test_request_and_result_lines_in_openai_shape():
    api = OpenAIBatchAPI("openai", "gpt-x", {"api_base": "http://127.0.0.1:1/v1", "api_key": "sk-secret"})
    line = json.loads(
        api.request_line("t1", [{"role": "user", "content": "hi"}], {"max_tokens": 5, "timeout": 3, "api_key": "sk-secret", "max_retries": 0})
    )
    assert line == {"custom_id": "t1", "method": "POST", "url": "/v1/chat/completions",
                    "body": {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 5}}  # fmt: skip
    ok = {
        "custom_id": "a",
        "response": {
            "status_code": 200,
            "body": {"choices": [{"message": {"content": "yes"}}], "usage": {"prompt_tokens": 7, "completion_tokens": 1}},
        },
    }
    item = api.parse_line(ok)
    assert (item.custom_id, item.text, item.prompt_tokens, item.completion_tokens, item.error) == ("a", "yes", 7, 1, None)
    http500 = {"custom_id": "b", "response": {"status_code": 500, "body": {"error": {"message": "boom", "type": "server_error"}}}}
    assert api.parse_line(http500).error == "batch item server_error: boom"
    expired = {"custom_id": "c", "response": None, "error": {"code": "batch_expired", "message": "not run"}}
    assert api.parse_line(expired).error == "batch item batch_expired: not run" and api.parse_line(expired).text is None


def test_batch_with_router_is_refused(tmp_path):
    study, trials = workload(5, MODEL, {"api_base": "http://127.0.0.1:9/v1", "api_key": "sk-x"})
    router = {"model_list": [{"model_name": MODEL, "litellm_params": {"model": MODEL, "api_base": "http://127.0.0.1:9/v1", "api_key": "sk-x"}}]}
    with pytest.raises(RunError) as err:
        run_study(study, trials, run_dir=tmp_path / "r", progress=False, batch=True, router=router)
    assert str(err.value) == "--batch cannot be combined with --router (routed: openai/fake-model): a batch goes to one provider account"


def test_a_permanent_provider_error_stops_the_session_in_one_line_without_the_key(tmp_path, monkeypatch):
    import litellm

    async def refused(self, data, name):
        raise litellm.AuthenticationError(message="invalid key sk-fake-batch", llm_provider="openai", model="fake-model")

    monkeypatch.setattr(OpenAIBatchAPI, "upload", refused)
    with FakeOpenAI() as server:
        study, trials = _setup(server, n=5)
        with pytest.raises(RunStopped) as err:
            _run(study, trials, tmp_path / "run")
    text = str(err.value)
    assert text.startswith("batch API error (auth): litellm.AuthenticationError: invalid key ***") and "sk-fake-batch" not in text
    assert text.endswith("saved 0 answers; run the same command to resume") and "\n" not in text
