"""Never lose or double-pay an answer (issue 13): one process per run directory, a shared
cache that two runs use without paying twice, a full disk, how a run ends (exit status and
manifest), SIGTERM, and a start killed before its manifest. Against the fake server over
loopback HTTP."""

from __future__ import annotations

import errno
import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from runhelpers import cli, make_study, make_trials, write_study_file

from llmexp.errors import RunError
from llmexp.runner import open_run, run_study
from llmexp.runner.cache import ResponseCache
from llmexp.runner.lock import RunLock, holder
from llmexp.runner.retry import RetryPolicy
from llmexp.runner.status import RunStopped
from llmexp.runner.store import RunStore, write_manifest, write_many
from llmexp.schema import ResponseRow
from tests.support.fake_openai import FakeOpenAI, content_key

MODEL = "openai/fake-model"
REPO = Path(__file__).resolve().parents[2]
FAST = RetryPolicy(max_attempts=2, initial_wait=0.01, max_wait=0.02, jitter=0.1, timeout=5)


def _params(server):
    return {MODEL: {"api_base": server.api_base, "api_key": "sk-fake-key-for-tests"}}


def _statuses(run_dir: Path) -> dict[str, str]:
    con = sqlite3.connect(run_dir / "store.sqlite")
    try:
        return dict(con.execute("SELECT trial_id, status FROM responses"))
    finally:
        con.close()


# ------------------------------------------------------------ one process per run directory


def test_a_second_run_on_a_locked_directory_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    with FakeOpenAI() as server:
        study = write_study_file(tmp_path, server.api_base, units=2)
        out = tmp_path / "run"
        out.mkdir()
        with RunLock(out):  # another run holds the directory
            assert holder(out) is not None
            code = cli(["run", study, "-o", out, "--quiet", "--no-cache"])
            err = capsys.readouterr().err.strip().splitlines()
            assert server.total == 0
        assert code == 2 and len(err) == 1 and "in use by another llmexp run" in err[0] and f"pid {os.getpid()}" in err[0]
        assert holder(out) is None
        assert cli(["run", study, "-o", out, "--quiet", "--no-cache"]) == 0  # the lock is gone with its holder
        assert server.total == 8


def test_the_lock_dies_with_a_killed_process(tmp_path):
    code = f"from llmexp.runner.lock import RunLock; RunLock({str(tmp_path)!r}).acquire(); print('locked', flush=True); import time; time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(RunError, match="in use"):
            RunLock(tmp_path).acquire()
        assert holder(tmp_path)["pid"] == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    RunLock(tmp_path).acquire().release()  # SIGKILL released it


def test_a_failed_row_never_replaces_an_answer(tmp_path):
    store = RunStore(tmp_path, create=True)
    base = dict.fromkeys(ResponseRow._fields)
    ok = ResponseRow(**{**base, "trial_id": "t1", "model": MODEL, "valid": True, "raw_text": "yes", "status": "ok"})
    failed = ResponseRow(**{**base, "trial_id": "t1", "model": MODEL, "valid": False, "error": "429", "status": "failed"})
    retried = ResponseRow(**{**base, "trial_id": "t2", "model": MODEL, "valid": True, "raw_text": "no", "status": "ok"})
    store.write_responses([ok, failed._replace(trial_id="t2")])
    store.write_responses([failed, retried])  # a late failure for t1; t2's retry succeeded
    assert store.statuses() == {"t1": "ok", "t2": "ok"}
    assert {r.trial_id: r.raw_text for r in store.response_rows()} == {"t1": "yes", "t2": "no"}
    store.close()


# ------------------------------------------------------------ the shared cache


def test_two_concurrent_runs_sharing_the_cache_pay_each_answer_once(tmp_path):
    with FakeOpenAI(latency=0.03) as server:
        study = make_study(params=_params(server), n_units=4, replicates=3)
        trials = make_trials(study)
        results: dict = {}

        def run(name):
            results[name] = run_study(study, trials, run_dir=tmp_path / name, cache_dir=tmp_path / "cache", progress=False, concurrency=4)

        threads = [threading.Thread(target=run, args=(n,)) for n in ("a", "b")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        st = server.stats(keys=True)
    assert set(results) == {"a", "b"}
    for res in results.values():
        assert res.summary().by_status == {"ok": len(trials)}
    assert st["paid_total"] == len(trials) and st["paid_repeated"] == 0  # nobody paid twice
    hits = sum(int(r.to_pandas()["cache_hit"].sum()) for r in results.values())
    assert hits == len(trials)  # each answer was made by one run and replayed by the other
    con = sqlite3.connect(tmp_path / "cache" / "cache.sqlite")
    assert con.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0  # every claim released
    con.close()


def test_a_run_waits_for_keys_another_live_run_claimed_and_takes_over_dead_claims(tmp_path):
    with FakeOpenAI() as server:
        study = make_study(params=_params(server), n_units=2)
        trials = make_trials(study)
        keys = list(trials["cache_key"])
        other = ResponseCache(tmp_path / "cache")
        claimed, _ = other.claim(keys[:4])  # a live run is making these four calls
        assert claimed == set(keys[:4])
        con = sqlite3.connect(tmp_path / "cache" / "cache.sqlite")
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True).stdout.strip()
        con.execute("INSERT INTO claims VALUES (?, 'gone', ?, ?, ?)", (keys[4], int(dead), other.host, time.time()))
        con.commit()
        con.close()

        def answer_later():
            time.sleep(1.0)
            other.put_many([(k, MODEL, "yes", None, None, 3, 1, 0.0) for k in keys[:4]])

        t = threading.Thread(target=answer_later)
        t.start()
        res = run_study(study, trials, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache", progress=False)
        t.join()
        counts = server.snapshot()
    df = res.to_pandas().set_index("cache_key")
    assert res.summary().by_status == {"ok": len(trials)}
    assert df.loc[keys[:4], "cache_hit"].all() and (df.loc[keys[:4], "raw_text"] == "yes").all()  # waited, not paid
    by_key = {r["cache_key"]: counts[content_key(json.loads(r["messages"]))] for r in trials.to_dict("records")}
    assert [by_key[k] for k in keys[:4]] == [0, 0, 0, 0]
    assert by_key[keys[4]] == 1  # the dead process's claim was stale: called here
    other.close()


# ------------------------------------------------------------ a full disk


def _fail_after(monkeypatch, n_rows: int) -> list:
    """Make the store's response writes fail like a full disk once `n_rows` were written."""
    real = RunStore.write_responses
    written: list = []

    def write_responses(self, rows):
        if len(written) >= n_rows and rows:
            raise sqlite3.OperationalError("database or disk is full")
        real(self, rows)
        written.extend(rows)

    monkeypatch.setattr(RunStore, "write_responses", write_responses)
    return written


def test_a_full_disk_stops_the_run_at_once_keeps_what_it_has_and_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    out = tmp_path / "run"
    with FakeOpenAI(latency=0.02) as server:
        study = write_study_file(tmp_path, server.api_base, units=20)  # 80 trials
        written = _fail_after(monkeypatch, 10)
        code = cli(["run", study, "-o", out, "--quiet", "--no-cache", "--concurrency", "2"])
        calls = server.total
        err = capsys.readouterr().err
        stored_before = set(_statuses(out))
        monkeypatch.setattr(RunStore, "write_responses", _REAL_WRITE)  # space freed: resume
        before = server.snapshot()
        assert cli(["run", study, "-o", out, "--quiet", "--no-cache"]) == 0
        after = server.snapshot()
    lines = err.strip().splitlines()
    assert code == 4 and "Traceback" not in err and len(lines) <= 2
    assert "database or disk is full" in lines[-1] and f"saved {len(written)} answers" in lines[-1]
    assert f"{calls - len(written)} answers received could not be saved" in lines[-1]
    assert stored_before == {r.trial_id for r in written}  # nothing committed was lost
    assert 10 <= len(written) < calls <= len(written) + 6  # no new call started after the error
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sessions"][0]["status"] == "stopped" and "disk is full" in manifest["sessions"][0]["stop_reason"]
    assert manifest["status"] == "complete" and not (out / "manifest.json.tmp").exists()
    df = open_run(out).to_pandas()
    assert len(df) == 80 and df["trial_id"].is_unique
    key_of = {t: content_key(json.loads(m)) for t, m in zip(df["trial_id"], df["messages"], strict=True)}
    assert all(after[key_of[t]] == before[key_of[t]] for t in stored_before)  # nothing stored is paid again


_REAL_WRITE = RunStore.write_responses


def test_a_store_error_is_not_hidden_by_a_failing_rollback():
    class Conn:
        in_transaction = True
        total_changes = 0

        def execute(self, sql):
            if sql == "ROLLBACK":
                raise sqlite3.OperationalError("cannot rollback - no transaction is active")

        def executemany(self, sql, rows):
            raise sqlite3.OperationalError("database or disk is full")

    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        write_many(Conn(), "INSERT", [(1,)])  # type: ignore[arg-type]


def test_a_manifest_that_cannot_be_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    write_manifest(tmp_path, {"study": "x", "status": "running"})

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        write_manifest(tmp_path, {"study": "x", "status": "complete"})
    assert not (tmp_path / "manifest.json.tmp").exists()
    assert json.loads((tmp_path / "manifest.json").read_text())["status"] == "running"  # the old one, whole


# ------------------------------------------------------------ how a run ends


def test_exit_status_and_manifest_tell_complete_partial_and_stopped_apart(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    monkeypatch.setattr("llmexp.runner.runner.RetryPolicy", lambda: FAST)  # the CLI's policy, with short waits
    with FakeOpenAI(always_fail="p0 for 0.5.") as server:
        study = write_study_file(tmp_path, server.api_base, units=4)
        partial = cli(["run", study, "-o", tmp_path / "a", "--quiet", "--no-cache"])
        capsys.readouterr()
        assert cli(["results", tmp_path / "a"]) == 0
        shown = capsys.readouterr().out.splitlines()
        server.always_fail = None
        complete = cli(["run", study, "-o", tmp_path / "a", "--quiet", "--no-cache"])
        stopped = cli(["run", study, "-o", tmp_path / "b", "--quiet", "--no-cache", "--max-cost", "0", "--model", "openai/gpt-4o-mini"])
    assert (partial, complete) == (3, 0)
    assert shown[0].startswith("run status: partial (1 of 16 trials failed")
    assert open_run(tmp_path / "a").manifest["status"] == "complete"
    assert stopped == 4 and open_run(tmp_path / "b").manifest["status"] == "stopped"


def test_a_killed_start_leaves_a_resumable_directory(tmp_path):
    with FakeOpenAI() as server:
        study = make_study(params=_params(server), n_units=2)
        trials = make_trials(study)
        half = tmp_path / "half"  # killed after creating the store, before the manifest (older llmexp)
        store = RunStore(half, create=True)
        store.add_trials(trials.to_dict("records")[:5])
        store.close()
        res = run_study(study, trials, run_dir=half, use_cache=False, progress=False)
        assert res.summary().by_status == {"ok": len(trials)}
        other = make_study(params=_params(server), n_units=2, levels=(0.1, 0.2), name="other")
        foreign = tmp_path / "half-other"  # a half-made directory of `study`, run with another study
        store = RunStore(foreign, create=True)
        store.add_trials(trials.to_dict("records")[:3])
        store.close()
        with pytest.raises(RunError, match="not an llmexp run directory"):  # a store of another study is not adopted
            run_study(other, make_trials(other), run_dir=foreign, use_cache=False, progress=False)


def _signal_at(n: int, signum: int):
    """A responder that sends this process `signum` when the server gets its n-th request
    (the run is then inside its event loop, where llmexp handles the signal)."""
    seen = []

    def responder(messages):
        seen.append(1)
        if len(seen) == n:
            os.kill(os.getpid(), signum)
        return "yes"

    return responder


@pytest.mark.skipif(not hasattr(signal, "SIGTERM"), reason="needs SIGTERM")
def test_sigterm_saves_the_calls_in_flight_and_says_how_to_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    out = tmp_path / "run"
    with FakeOpenAI(latency=0.1, responder=_signal_at(12, signal.SIGTERM)) as server:
        study = write_study_file(tmp_path, server.api_base, units=10)  # 40 trials
        code = cli(["run", study, "-o", out, "--quiet", "--no-cache", "--concurrency", "4"])
        err = capsys.readouterr().err
        paid = server.stats()["paid_total"]
        saved = _statuses(out)
        assert cli(["run", study, "-o", out, "--quiet", "--no-cache"]) == 0
        st = server.stats()
    assert code == 4 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last == f"interrupted by SIGTERM: saved {len(saved)} answers; run the same command to resume"
    assert 12 <= paid == len(saved) < 40  # every answer paid for was saved: nothing in flight lost
    assert st["paid_total"] == 40 and st["paid_repeated"] == 0  # the resume paid only the rest
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sessions"][0]["stop_reason"] == "interrupted by SIGTERM"
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL  # handlers restored


def test_sigint_inside_run_study_becomes_run_stopped(tmp_path):
    with FakeOpenAI(latency=0.1, responder=_signal_at(8, signal.SIGINT)) as server:
        study = make_study(params=_params(server), n_units=4, replicates=4)  # 160 calls
        trials = make_trials(study)
        with pytest.raises(RunStopped, match="interrupted by SIGINT: saved") as info:
            run_study(study, trials, run_dir=tmp_path / "run", use_cache=False, progress=False, concurrency=4, retry=FAST)
        paid = server.stats()["paid_total"]
    assert info.value.status.status == "stopped"
    assert len(_statuses(tmp_path / "run")) == paid < len(trials)  # in-flight answers saved
