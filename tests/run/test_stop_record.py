"""A session that cannot rewrite its manifest at the end (a full disk) keeps how it ended in
the stop record it reserved at its start, so `llmexp results` says what happened instead of
guessing "killed?" from a manifest still reading "running"."""

from __future__ import annotations

import errno
import json

from runhelpers import make_study, make_trials

from llmexp.runner import open_run, run_study, session, stop_record


def _disk_full_at_the_end(monkeypatch):
    """The manifest can be written while the session starts, not when it ends."""
    real = session.write_manifest

    def write(run_dir, manifest, scrub):
        if manifest.get("status") != "running":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(run_dir, manifest, scrub)

    monkeypatch.setattr(session, "write_manifest", write)


def test_results_read_how_a_session_ended_when_its_manifest_could_not_be_written(tmp_path, monkeypatch):
    study = make_study(models=("synthetic/respondent",), n_units=2)
    trials = make_trials(study)
    _disk_full_at_the_end(monkeypatch)
    res = run_study(study, trials, run_dir=tmp_path / "r", use_cache=False, progress=False)
    assert json.loads((tmp_path / "r" / "manifest.json").read_text())["status"] == "running"  # could not be rewritten
    status = open_run(tmp_path / "r").run_status()
    assert (status.status, status.reason) == (res.run_status().status, res.run_status().reason) == ("complete", f"{len(trials)} trials answered")
    assert (tmp_path / "r" / stop_record.STOP_RECORD).stat().st_size == stop_record.STOP_RECORD_SIZE  # written in place
    archived = open_run(open_run(tmp_path / "r").archive(tmp_path / "archive")).run_status()  # the archive says it too
    assert (archived.status, archived.reason) == (status.status, status.reason)


def test_a_record_of_another_session_is_not_trusted(tmp_path, monkeypatch):
    study = make_study(models=("synthetic/respondent",), n_units=2)
    trials = make_trials(study)
    _disk_full_at_the_end(monkeypatch)
    run_study(study, trials, run_dir=tmp_path / "r", use_cache=False, progress=False)
    assert stop_record.write(tmp_path / "r", "complete", "", "an earlier session")
    status = open_run(tmp_path / "r").run_status()
    assert status.status == "stopped" and "killed?" in status.reason


def test_the_record_never_grows_its_file(tmp_path):
    assert not stop_record.write(tmp_path, "stopped", "why", "t0")  # nothing reserved: nothing written
    assert stop_record.reserve(tmp_path) and stop_record.read(tmp_path) is None
    assert stop_record.write(tmp_path, "stopped", "x" * 10_000, "t0")  # a long reason is cut to fit
    record = stop_record.read(tmp_path)
    assert record is not None and record["status"] == "stopped" and record["reason"].endswith("...")
    assert (tmp_path / stop_record.STOP_RECORD).stat().st_size == stop_record.STOP_RECORD_SIZE
