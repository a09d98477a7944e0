"""Running a `sequence` against the fake OpenAI server: each later question is sent after the
earlier turns and the model's stored answers, every step is asked once, a failed step makes
the next wait (visibly) until a resume, a SIGKILL mid-sequence resumes without asking any
answered step again, and the response cache key includes the earlier answers."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmexp import load
from llmexp.runner import run_study
from llmexp.runner.sequences import ready_steps
from llmexp.runner.status import PARTIAL
from llmexp.runner.store import RunStore
from tests.support.fake_openai import FakeOpenAI, content_key
from tests.support.runstore import final_trial_ids, response_rows

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


@pytest.fixture(autouse=True)
def _fake_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake")  # the fake server takes any key


STUDY = """study "anchoring" seed 5
units items
  row item = "everest", thing = "Mount Everest"
  row item = "nile", thing = "the Nile"
  key item
treatment anchor = levels(2000, 12000)
context "Think about {thing}."
outcome higher: binary "higher" / "lower"
  question "Is it higher or lower than {anchor} metres?"
outcome estimate: number 0 to 20000
  question "How high is it, in metres?"
check attention: categorical "red", "blue"
  question "To show you are reading, answer blue."
  expect "blue"
sequence anchoring: higher, estimate, attention
modes blind
model "openai/fake-model" api_base "BASE" temperature 0 replicates REPS
"""


def respond(messages) -> str:
    """The fake model: answers the last user turn."""
    last = messages[-1]["content"]
    if "higher or lower" in last:
        return "higher"
    if "How high" in last:
        return "8848"
    return "blue"


def write_study(folder: Path, server: FakeOpenAI, n_units: int = 2) -> Path:
    """The study; with more units, every conversation is distinct (the server counts by content)."""
    text = STUDY.replace("BASE", server.api_base).replace("REPS", "1")
    more = "".join(f'  row item = "peak{i}", thing = "peak number {i}"\n' for i in range(n_units - 2))
    path = folder / "seq.study"
    path.write_text(text.replace("  key item\n", more + "  key item\n"))
    return path


def sent(server: FakeOpenAI) -> list[list[dict]]:
    return [json.loads(b)["messages"] for b in server.bodies]


def test_each_step_is_sent_after_the_earlier_turns_golden(tmp_path):
    with FakeOpenAI(responder=respond) as server:
        study = load(write_study(tmp_path, server))
        results = run_study(study, run_dir=tmp_path / "run", use_cache=False, progress=False)
        assert results.status.status == "complete"
        calls = sent(server)
    assert len(calls) == 2 * 2 * 3  # units x cells x steps
    assert all(n == 1 for n in server.counts.values())  # every step asked once
    last = [m for m in calls if "answer blue" in m[-1]["content"] and "the Nile" in m[1]["content"] and "12,000" in m[1]["content"]]
    assert last == [[
        {"role": "system", "content": "Imagine you are the person in the situation below. Answer as that person would, in their own voice."},
        {"role": "user", "content": 'Think about the Nile.\n\nIs it higher or lower than 12,000 metres?\n\nAnswer with exactly one of: "higher" or "lower".'},  # noqa: E501
        {"role": "assistant", "content": "higher"},
        {"role": "user", "content": "How high is it, in metres?\n\nAnswer with a number between 0 and 20000 only."},
        {"role": "assistant", "content": "8848"},
        {"role": "user", "content": 'To show you are reading, answer blue.\n\nAnswer with exactly one of: "red", "blue".'},
    ]]  # fmt: skip
    table = results.to_pandas()
    assert sorted(table.groupby("target").size().items()) == [("attention", 4), ("estimate", 4), ("higher", 4)]
    assert set(table.loc[table.target == "estimate", "value"]) == {8848.0}


def test_a_failed_step_makes_the_next_wait_then_resume_asks_each_once(tmp_path):
    with FakeOpenAI(responder=respond, always_fail="How high") as server:
        study = load(write_study(tmp_path, server))
        run_dir = tmp_path / "run"
        from llmexp.runner.retry import RetryPolicy

        retry = RetryPolicy(max_attempts=1, max_consecutive_failures=0, initial_wait=0.01, jitter=0.0)
        first = run_study(study, run_dir=run_dir, use_cache=False, progress=False, retry=retry)
        assert first.status.status == PARTIAL
        assert not any("answer blue" in m[-1]["content"] for m in sent(server))  # the third step never went out
        manifest = json.loads((run_dir / "manifest.json").read_text())
        assert manifest["sessions"][-1]["sequence_waiting"] == (
            "4 later questions of a sequence could not be asked: the question before them has no answer yet "
            "(its call failed, or it was not selected); run the same command again to resume"
        )
        before = server.snapshot()
        server.always_fail = None
        second = run_study(study, run_dir=run_dir, use_cache=False, progress=False, retry=retry)
        assert second.status.status == "complete"
        after = server.snapshot()
    firsts = [m for m in sent(server) if len(m) == 2]
    assert len(firsts) == 4 and all(after[content_key(m)] == before[content_key(m)] == 1 for m in firsts)
    thirds = [m for m in sent(server) if len(m) == 6]
    assert len(thirds) == 4 and all(after[content_key(m)] == 1 for m in thirds)
    rows = response_rows(run_dir)
    assert len(rows) == 12 and {s for _, s, _ in rows} == {"ok"}


def test_the_cache_key_of_a_step_includes_the_earlier_answers(tmp_path):
    with FakeOpenAI(responder=respond) as server:
        study = load(write_study(tmp_path, server))
        from llmexp.compiler import compile_study
        from llmexp.runner.plan import records

        rows = records(compile_study(study))
    second = [r for r in rows if r["target"] == "estimate"][0]
    keys = []
    for answer in ("higher", "lower"):
        store = RunStore(tmp_path / f"store-{answer}")
        store.add_trials(rows)
        store.conn.execute(
            "INSERT INTO responses (trial_id, model, valid, raw_text, status, prompt_tokens, completion_tokens, cost, latency, "
            "cache_hit, attempts) VALUES (?, 'm', 1, ?, 'ok', 0, 0, 0, 0, 0, 1)",
            (second["follows"], answer),
        )
        ready, waiting = ready_steps([second], store)
        store.close()
        assert waiting == [] and len(ready) == 1
        assert json.loads(ready[0]["messages"])[2] == {"role": "assistant", "content": answer}
        keys.append(ready[0]["cache_key"])
    assert keys[0] != keys[1] and second["cache_key"] not in keys


def test_a_cached_sequence_is_replayed_without_calls(tmp_path):
    with FakeOpenAI(responder=respond) as server:
        study = load(write_study(tmp_path, server))
        run_study(study, run_dir=tmp_path / "a", cache_dir=tmp_path / "cache", progress=False)
        n = server.total
        again = run_study(study, run_dir=tmp_path / "b", cache_dir=tmp_path / "cache", progress=False)
        assert server.total == n == 12
    assert again.status.status == "complete" and len(response_rows(tmp_path / "b")) == 12


CHILD = r"""
import os, sys
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
from llmexp import load
from llmexp.runner import run_study
run_study(load(sys.argv[1]), run_dir=sys.argv[2], use_cache=False, progress=False, concurrency=2)
"""


def _targets(run_dir: Path) -> dict[str, str]:
    con = sqlite3.connect(run_dir / "store.sqlite", timeout=10)
    try:
        return {tid: json.loads(row)["target"] for tid, row in con.execute("SELECT trial_id, row FROM trials")}
    finally:
        con.close()


@pytest.mark.slow  # two fresh processes (litellm import): ~30 s on a loaded 2-core machine
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_sigkill_mid_sequence_then_resume(tmp_path):
    with FakeOpenAI(responder=respond, latency=0.1) as server:
        path = write_study(tmp_path, server, n_units=8)  # 16 respondents x 3 steps
        run_dir = tmp_path / "run"
        script = tmp_path / "child.py"
        script.write_text(CHILD)
        proc = subprocess.Popen([sys.executable, str(script), str(path), str(run_dir)], env=dict(os.environ))
        try:
            deadline = time.monotonic() + 120
            while True:  # kill once the second step is under way
                if len(final_trial_ids(run_dir)) >= 20:
                    break
                assert proc.poll() is None, "the run ended before it could be killed"
                assert time.monotonic() < deadline, "the run made no progress"
                time.sleep(0.02)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=30)
        targets = _targets(run_dir)
        saved = final_trial_ids(run_dir)
        assert 16 < len(saved) < 48
        assert {targets[t] for t in saved} >= {"higher", "estimate"}
        before = server.snapshot()
        bodies = len(server.bodies)
        done = subprocess.run([sys.executable, str(script), str(path), str(run_dir)], env=dict(os.environ), timeout=120)
        assert done.returncode == 0
        after = server.snapshot()
        resumed = [json.loads(b)["messages"] for b in server.bodies[bodies:]]
    rows = response_rows(run_dir)
    assert len(rows) == 48 and len({t for t, _, _ in rows}) == 48 and {s for _, s, _ in rows} == {"ok"}
    # no answered step was asked again: every call of the resume is a conversation not
    # completed before the kill (first asked now, or in flight when the process died)
    assert all(before[content_key(m)] <= 1 and after[content_key(m)] - before[content_key(m)] == 1 for m in resumed)
    assert len(resumed) >= 48 - len(saved)


def test_a_sequence_through_the_batch_api_asks_each_step_in_a_later_run(tmp_path):
    """A batch holds no conversation yet to come: each run submits the questions whose earlier
    answers are stored, with those answers in their messages."""
    with FakeOpenAI(responder=respond, batch_after=0.01) as server:
        study = load(write_study(tmp_path, server))
        statuses = []
        for _ in range(3):
            res = run_study(study, run_dir=tmp_path / "run", use_cache=False, progress=False, batch={"poll": 0.02})
            statuses.append(res.status.status)
        uploads = [v.decode() for k, v in server.batches.files.items() if not k.startswith("file-out")]
        assert server.total == 0  # no live call
    assert statuses == [PARTIAL, PARTIAL, "complete"]
    requests = [json.loads(line)["body"]["messages"] for text in uploads for line in text.splitlines() if line.strip()]
    assert sorted(len(m) for m in requests) == [2] * 4 + [4] * 4 + [6] * 4  # each step once, after the earlier turns
    assert all(m[2] == {"role": "assistant", "content": "higher"} for m in requests if len(m) > 2)
    rows = response_rows(tmp_path / "run")
    assert len(rows) == 12 and {s for _, s, _ in rows} == {"ok"}
