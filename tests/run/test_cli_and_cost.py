"""The `run` / `results` commands, cost estimates and the rate-limit buckets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from runhelpers import make_study, make_trials

from llmexp.cli import main
from llmexp.runner import estimate_cost, run_study
from llmexp.runner.cost import DEFAULT_COMPLETION_TOKENS, model_price
from llmexp.runner.limits import Bucket
from llmexp.runner.retry import retry_after

STUDY = Path(__file__).parents[2] / "studies" / "demand_curve.study"


def _main(argv):
    try:
        main(argv)
    except SystemExit as exc:
        return exc.code
    return 0


def test_run_and_results_commands(tmp_path, capsys):
    out = tmp_path / "run"
    code = _main(["run", str(STUDY), "--model", "synthetic/respondent", "--limit", "40", "-o", str(out), "--quiet", "--replicates", "2"])
    assert code == 0
    text = capsys.readouterr().out
    assert "status: ok 40" in text and f"results: {out}" in text
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["study"] == "cpg-demand" and manifest["models"][0]["replicates"] == 2
    assert manifest["versions"]["litellm"] == "1.100.5"
    assert manifest["spec"]["models"][0]["name"] == "synthetic/respondent"

    code = _main(["results", str(out), "--export", str(tmp_path / "out.csv")])
    assert code == 0
    text = capsys.readouterr().out
    assert "by design:" in text and "exported" in text
    df = pd.read_csv(tmp_path / "out.csv")
    assert len(df) == 40 and {"trial_id", "status", "value", "raw_text"} <= set(df.columns)

    # same command again: resumes, nothing new to do
    code = _main(["run", str(STUDY), "--model", "synthetic/respondent", "--limit", "40", "-o", str(out), "--quiet", "--replicates", "2"])
    assert code == 0
    assert len(json.loads((out / "manifest.json").read_text())["sessions"]) == 2


def test_user_mistakes_exit_2_with_a_message(tmp_path, capsys):
    assert _main(["results", str(tmp_path / "nope")]) == 2
    assert "no run directory" in capsys.readouterr().err
    assert _main(["run", str(STUDY), "--model", "nosuchprovider/x", "-o", str(tmp_path / "r"), "--quiet"]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert _main(["results", str(tmp_path)]) == 2
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "file.txt").write_text("x")
    assert _main(["run", str(STUDY), "--model", "synthetic/respondent", "-o", str(tmp_path / "junk"), "--quiet", "--limit", "2"]) == 2
    assert "not an llmexp run directory" in capsys.readouterr().err


def test_dry_run_makes_no_calls_and_estimates(tmp_path, capsys):
    out = tmp_path / "run"
    code = _main(["run", str(STUDY), "--model", "openai/gpt-4o-mini", "--dry-run", "-o", str(out), "--limit", "100"])
    assert code == 0
    text = capsys.readouterr().out
    assert "dry run: 100 trials" in text and "estimated cost: $" in text and "first prompt:" in text
    assert not out.exists()


def test_estimate_cost_uses_litellm_prices():
    study = make_study(models=("openai/gpt-4o-mini", "synthetic/respondent"), params={"openai/gpt-4o-mini": {"max_tokens": 5}})
    trials = make_trials(study)
    est = estimate_cost(study, trials)
    gpt = est.models["openai/gpt-4o-mini"]
    price = model_price("openai/gpt-4o-mini")
    assert price.known and price.input > 0 and price.output > 0
    assert gpt.calls == len(trials) // 2 and gpt.completion_tokens == 5 * gpt.calls
    assert gpt.cost == pytest.approx(gpt.prompt_tokens * price.input + gpt.completion_tokens * price.output)
    assert 10 * gpt.calls < gpt.prompt_tokens < 100 * gpt.calls  # the hand-made prompts are short
    assert est.models["synthetic/respondent"].cost == 0
    assert model_price("llmexp/gemma3-270m").cost(1000, 1000) == 0
    unknown = make_study(models=("openai/no-such-model-xyz",))
    e2 = estimate_cost(unknown, make_trials(unknown))
    assert e2.unpriced == ["openai/no-such-model-xyz"]
    assert e2.models["openai/no-such-model-xyz"].completion_tokens == DEFAULT_COMPLETION_TOKENS * len(make_trials(unknown))


def test_token_bucket_math():
    b = Bucket(per_minute=60, burst_seconds=2.0)  # 1 per second, burst 2
    b.stamp = 100.0
    b.level = b.capacity
    assert b.wait_time(1, 100.0) == 0
    b.level -= 1
    assert b.wait_time(1, 100.0) == 0
    b.level -= 1
    assert b.wait_time(1, 100.0) == pytest.approx(1.0)
    assert b.wait_time(1, 100.5) == pytest.approx(0.5)
    t = Bucket(per_minute=600)  # tokens: capacity 20
    t.stamp, t.level = 0.0, 0.0
    assert t.wait_time(1000, 0.0) == pytest.approx(2.0)  # bigger than capacity: wait for a full bucket


def test_retry_after_header_parsing():
    class E(Exception):
        def __init__(self, headers):
            self.litellm_response_headers = headers

    assert retry_after(E({"retry-after": "3"})) == 3.0
    assert retry_after(E({"retry-after-ms": "250"})) == 0.25
    assert retry_after(E({})) is None
    assert retry_after(Exception("x")) is None


def test_backoff_honours_retry_after_and_grows():
    from llmexp.runner.limits import RateLimiter
    from llmexp.runner.retry import RetryPolicy
    from llmexp.runner.scheduler import ModelState, Scheduler, _Try

    class RateLimited(Exception):
        def __init__(self, seconds):
            self.litellm_response_headers = {"retry-after": str(seconds)}

    policy = RetryPolicy(initial_wait=0.5, max_wait=8, jitter=0, max_retry_after=30, max_attempts=10)
    sched = Scheduler([], {}, writer=None, retry=policy)
    model = ModelState(name="m", limiter=RateLimiter())

    def wait(n, exc):  # the scheduler's wait after a call's n-th failed attempt
        return sched._retry_wait(exc, model, _Try(attempts=n))

    waits = [wait(n, Exception("500")) for n in range(1, 7)]
    assert waits == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]  # exponential, capped
    assert wait(1, RateLimited(7)) == 7.0  # never sooner than the server asked
    assert wait(5, RateLimited(1)) == 8.0  # backoff already longer
    assert wait(1, RateLimited(3600)) == 30.0  # absurd Retry-After capped
    assert wait(10, Exception("500")) is None  # the attempt budget is spent


def test_missing_api_key_is_caught_before_any_call(tmp_path, monkeypatch):
    import litellm

    from llmexp.errors import RunError
    from llmexp.runner.retry import classify

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    study = make_study(models=("openai/gpt-4o-mini",), n_units=1)
    with pytest.raises(RunError, match="OPENAI_API_KEY"):
        run_study(study, make_trials(study), run_dir=tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    # the same problem surfacing mid-run (litellm reports it as a 500) stops the model
    exc = litellm.InternalServerError(
        message="OpenAIException - Missing credentials. Please pass an `api_key`", llm_provider="openai", model="gpt-4o-mini"
    )
    assert classify(exc) == ("auth", False, True)
    assert classify(litellm.InternalServerError(message="boom", llm_provider="openai", model="m")) == ("server", True, False)


@pytest.mark.parametrize("tty", [False, True])
def test_progress_display_plain_and_live(tty):
    import asyncio
    import io

    from llmexp.runner.progress import ProgressDisplay, status_line
    from llmexp.runner.scheduler import Stats

    class Stream(io.StringIO):
        def isatty(self):
            return tty

    stats = Stats(total=10, done=4, ok=3, failed=1, cost=0.0123, retries=2, errors={"rate_limit": 2, "server": 1})
    line = status_line(stats)
    for part in ("4/10 calls", "/s", "ETA", "$0.0123", "failed 1", "rate_limit 2", "server 1"):
        assert part in line
    stream = Stream()

    async def go():
        async with ProgressDisplay(stats, enabled=True, stream=stream, interval=0.01) as display:
            display.message("model x stopped (auth): no key")
            stats.done = 10

    asyncio.run(go())
    out = stream.getvalue()
    assert "model x stopped (auth): no key" in out
    assert ("10/10" in out) if tty else ("10/10 calls" in out)


def test_an_archived_run_reads_like_the_run_and_is_read_only(tmp_path):
    """`results --archive` writes manifest + parquet; open_run/analysis read it unchanged;
    running into it is refused rather than silently starting a new store."""
    import pandas as pd

    import llmexp
    from llmexp.errors import RunError
    from llmexp.runner import open_run, run_study
    from llmexp.spec import ModelSpec

    study = llmexp.load(Path(__file__).resolve().parents[2] / "studies" / "asian_disease.study")
    study = study.with_models([ModelSpec(name="synthetic/respondent", params={"effect": -1.0}, replicates=2)])
    run = run_study(study, run_dir=tmp_path / "run", progress=False, use_cache=False)
    archive = run.archive(tmp_path / "archive")
    assert sorted(p.name for p in archive.iterdir()) == ["manifest.json", "responses.parquet"]
    original, archived = run.to_pandas(), open_run(archive).to_pandas()
    pd.testing.assert_frame_equal(original.reset_index(drop=True), archived.reset_index(drop=True), check_dtype=False)
    assert open_run(archive).summary().calls == run.summary().calls == len(original)
    with pytest.raises(RunError, match="archived"):
        run_study(study, run_dir=archive, progress=False, use_cache=False)
