"""The runner against a local fake OpenAI-compatible server, through litellm over real HTTP."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from runhelpers import make_study, make_trials

from llmexp.errors import RunError
from llmexp.runner import open_run, run_study
from llmexp.runner.retry import RetryPolicy
from tests.support.fake_openai import FakeOpenAI

MODEL = "openai/fake-model"


def _params(server, **extra):
    return {MODEL: {"api_base": server.api_base, "api_key": "sk-fake-key-for-tests", **extra}}


def _store_rows(run_dir: Path) -> list[dict]:
    con = sqlite3.connect(run_dir / "store.sqlite")
    con.row_factory = sqlite3.Row
    rows = [dict(r) for r in con.execute("SELECT * FROM responses")]
    con.close()
    return rows


def test_faults_every_trial_answered_or_failed_with_reason(tmp_path):
    # The client's timeout is generous (1.5 s; the injected timeout sleeps 3 s) so that on a loaded
    # machine an attempt cannot time out before its request reached the server: every attempt
    # counted must be a request served.
    retry = RetryPolicy(max_attempts=4, initial_wait=0.01, max_wait=0.05, jitter=0.5, timeout=1.5, max_retry_after=0.3)
    faults = {"429": 0.12, "500": 0.12, "timeout": 0.04, "malformed": 0.06, "truncated": 0.06}
    with FakeOpenAI(faults=faults, always_fail="p1 for $6.00", retry_after=0.2, timeout_sleep=3.0, seed=3) as server:
        study = make_study(params=_params(server), n_units=3, replicates=3)
        trials = make_trials(study)
        res = run_study(study, trials, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False, retry=retry, concurrency=6)
        counts = server.snapshot()
        injected = dict(server.faults_sent)
        limited = {k: c.get("429", 0) for k, c in server.fault_counts.items()}

    df = res.to_pandas()
    assert len(df) == len(trials)
    assert df["trial_id"].is_unique
    assert set(df["trial_id"]) == set(trials["trial_id"])
    assert set(df["status"]) <= {"ok", "failed"}
    # faults of every kind were really injected, and most calls still succeeded by retrying
    assert {"429", "500", "malformed", "truncated"} <= set(injected)
    assert (df["attempts"] > 1).any()
    failed = df[df["status"] == "failed"]
    assert len(failed) >= 2 * 3  # the always-failing content: 2 designs x 3 replicates
    assert failed["error"].notna().all() and (failed["error"].str.len() > 0).all()
    for _, row in df.iterrows():
        messages = json.loads(row["messages"])
        from tests.support.fake_openai import content_key

        served = counts[content_key(messages)]
        assert served == row["attempts"], (row["trial_id"], served, row["attempts"])
        counted = served - limited.get(content_key(messages), 0)  # 429s have their own budget
        assert counted <= retry.max_attempts
        if "p1 for $6.00" in messages[0]["content"]:
            assert row["status"] == "failed" and counted == retry.max_attempts
            assert "500" in row["error"] or "error" in row["error"].lower()
        if row["status"] == "ok":
            assert row["valid"] and row["label"] in ("yes", "no")
            assert row["value"] == (1.0 if row["label"] == "yes" else 0.0)
            assert row["prompt_tokens"] > 0


def test_failed_calls_are_retried_on_resume_and_completed_ones_not(tmp_path):
    retry = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.1, timeout=5)
    with FakeOpenAI(always_fail="p0 for $0.00") as server:
        study = make_study(params=_params(server), n_units=2)
        trials = make_trials(study)
        first = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, retry=retry)
        s1 = first.summary()
        assert s1.by_status.get("failed") == 2 and s1.by_status.get("ok") == len(trials) - 2
        before = server.snapshot()
        server.always_fail = None  # the endpoint recovers
        second = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, retry=retry)
        after = server.snapshot()
    assert second.summary().by_status == {"ok": len(trials)}
    retried = {k for k in after if after[k] != before.get(k, 0)}
    assert len(retried) == 2  # only the two failed trials were called again
    assert all(after[k] - before[k] == 1 for k in retried)


def test_permanent_failure_stops_the_model_with_one_message(tmp_path):
    with FakeOpenAI(status=401) as server:
        study = make_study(params=_params(server), n_units=4, replicates=5)
        trials = make_trials(study)
        with pytest.raises(RunError) as info:
            run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, concurrency=4)
        total = server.total
    msg = str(info.value)
    assert msg.count("stopped") == 1 and "auth" in msg and MODEL in msg
    assert total <= 4  # at most the calls already in flight, not one per trial
    res = info.value.results
    summary = res.summary()
    assert summary.pending >= len(trials) - 4
    assert summary.by_status.get("failed", 0) == total
    assert open_run(tmp_path / "run").manifest["status"] == "stopped"


def test_cache_makes_a_repeated_study_free(tmp_path):
    with FakeOpenAI() as server:
        study = make_study(params=_params(server, input_cost_per_token=1e-6, output_cost_per_token=2e-6), n_units=2, replicates=2)
        trials = make_trials(study)
        first = run_study(study, trials, run_dir=tmp_path / "a", cache_dir=tmp_path / "cache", progress=False)
        calls_after_first = server.total
        second = run_study(study, trials, run_dir=tmp_path / "b", cache_dir=tmp_path / "cache", progress=False, rpm=1)
        calls_after_second = server.total
    assert calls_after_first == len(trials)
    assert calls_after_second == calls_after_first  # zero provider calls the second time
    d1, d2 = first.to_pandas(), second.to_pandas()
    assert not d1["cache_hit"].any() and d1["cost"].sum() > 0
    assert d2["cache_hit"].all() and d2["cost"].sum() == 0 and (d2["attempts"] == 0).all()
    assert list(d1.sort_values("trial_id")["raw_text"]) == list(d2.sort_values("trial_id")["raw_text"])


def test_resume_never_repeats_completed_trials(tmp_path):
    with FakeOpenAI() as server:
        study = make_study(params=_params(server), n_units=3)
        trials = make_trials(study)
        part = run_study(study, trials, run_dir=tmp_path / "run", limit=7, use_cache=False, progress=False)
        df_part = part.to_pandas()
        assert len(df_part) == 7 and set(df_part["design"]) == {"blind", "unblinded"}  # spread across designs
        full = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False)
        counts = server.snapshot()
    assert server.total == len(trials)
    assert all(v == 1 for v in counts.values())
    df = full.to_pandas()
    assert len(df) == len(trials) and df["trial_id"].is_unique
    assert len(open_run(tmp_path / "run").manifest["sessions"]) == 2


def test_resume_refuses_a_different_study(tmp_path):
    with FakeOpenAI() as server:
        study = make_study(params=_params(server), n_units=1)
        run_study(study, make_trials(study), run_dir=tmp_path / "run", use_cache=False, progress=False)
        other = make_study(params=_params(server, temperature=0.5), n_units=1)  # every trial asked differently
        with pytest.raises(RunError, match="different study"):
            run_study(other, make_trials(other), run_dir=tmp_path / "run", use_cache=False, progress=False)


def test_no_secret_is_written_anywhere(tmp_path, monkeypatch):
    env_secret = "sk-test-SECRET1234567890abcdef"
    param_secret = "sk-param-SECRET0987654321fedcba"
    monkeypatch.setenv("OPENAI_API_KEY", env_secret)
    retry = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, timeout=5)
    with FakeOpenAI(always_fail="p1 for $3.00") as server:
        study = make_study(params={MODEL: {"api_base": server.api_base, "api_key": param_secret}}, n_units=2)
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False, retry=retry)
        seen_auth = set(server.auth_headers)
    assert f"Bearer {param_secret}" in seen_auth  # the key was really used
    assert res.summary().by_status.get("failed")  # error texts were stored too
    files = [p for d in (tmp_path / "run", tmp_path / "cache") for p in d.rglob("*") if p.is_file()]
    assert any(p.name == "manifest.json" for p in files) and any(p.name == "cache.sqlite" for p in files)
    for path in files:
        data = path.read_bytes()
        assert env_secret.encode() not in data, path
        assert param_secret.encode() not in data, path
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["models"][0]["params"]["api_key"] == "***"


def test_max_cost_stops_before_exceeding_budget(tmp_path):
    with FakeOpenAI() as server:
        price = {"input_cost_per_token": 1e-4, "output_cost_per_token": 1e-4, "max_tokens": 10}
        study = make_study(params=_params(server, **price), n_units=4, replicates=3)
        trials = make_trials(study)
        budget = 0.05
        res = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, max_cost=budget, concurrency=4)
        calls = server.total
    df = res.to_pandas()
    assert 0 < calls < len(trials)
    assert df["cost"].sum() <= budget
    assert res.budget_stop and "max-cost" in res.budget_stop
    assert open_run(tmp_path / "run").summary().pending == len(trials) - len(df)


def test_open_run_gives_back_study_and_contract_columns(tmp_path):
    with FakeOpenAI() as server:
        study = make_study(params=_params(server), n_units=1)
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", use_cache=False, progress=False)
    again = open_run(res.run_dir)
    assert again.study.name == study.name and again.study.treatments == study.treatments
    assert again.study.models[0].params["api_key"] == "***"  # redacted, never the key
    df = again.to_pandas()
    contract = (Path(__file__).parents[2] / "docs" / "artifacts.md").read_text()
    for col in ("valid", "value", "label", "probs", "prob_mass", "condition_values", "raw_text", "error", "status",
                "prompt_tokens", "completion_tokens", "cost", "latency", "cache_hit", "attempts", "trial_id", "messages"):
        assert f"`{col}`" in contract and col in df.columns
    assert df["valid"].dtype == bool and df["cache_hit"].dtype == bool
    out = again.export(tmp_path / "out.parquet")
    import pandas as pd

    assert len(pd.read_parquet(out)) == len(df)


def test_invalid_answers_are_stored_counted_and_not_asked_again(tmp_path):
    def responder(messages):
        text = messages[-1]["content"]
        return "Hmm, hard to say." if "p0 for $0.00" in text else ("Yes." if "p0" in text else "I would say no.")

    with FakeOpenAI(responder=responder) as server:
        study = make_study(params=_params(server), n_units=2)
        trials = make_trials(study)
        res = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False)
        df = res.to_pandas()
        again = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False)
        total = server.total
    assert total == len(trials)  # the second run asked nothing
    bad = df[df["status"] == "invalid"]
    assert len(bad) == 2 and (bad["raw_text"] == "Hmm, hard to say.").all()
    assert not bad["valid"].any() and bad["value"].isna().all() and bad["error"].str.contains("none of the labels").all()
    good = df[df["status"] == "ok"]
    assert set(good["label"]) == {"yes", "no"}
    s = again.summary()
    assert s.invalid == 2 and s.invalid_examples[0]["raw_text"] == "Hmm, hard to say."
    assert "invalid answers: 2" in str(s)
