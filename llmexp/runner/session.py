"""One invocation of `run_study` on a run directory: the directory, the manifest, a session.

`open_session` takes the directory's lock (`lock.py`: one process per run directory),
checks that the directory is new or holds a run of the same study (that is how a run is
resumed), writes the manifest with a new session record (status "running") BEFORE the
store exists, then opens the store and stores the selected trials (secret params
redacted). A start killed at any moment therefore leaves a directory the same command
resumes: nothing, a manifest alone, or a manifest and a store; a folder holding only a
store (left by an older llmexp killed at start-up) is recognised as well.
`Session.pending` gives the trials without a final answer; `Session.finish` records how the
session ended (`status.py`: complete, partial, stopped) in the manifest, tolerating a
manifest that cannot be written (a full disk): the store is the record.
"""

from __future__ import annotations

import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.runner import stop_record
from llmexp.runner.batch_ledger import open_trial_ids
from llmexp.runner.endpoints import without_endpoints
from llmexp.runner.extend import NotAnExtension, extension, scope_note
from llmexp.runner.lock import LOCK, RunLock
from llmexp.runner.plan import Selection, prefix_reusers_in_compile_order
from llmexp.runner.redaction import redact, redacted_trials
from llmexp.runner.results import ARCHIVE_TABLE
from llmexp.runner.router import describe as describe_router
from llmexp.runner.status import RunStatus, judge
from llmexp.runner.store import MANIFEST, STORE, RunStore, now_iso, package_versions, read_manifest, write_manifest
from llmexp.seeding import short_hash


def _hash(data: dict) -> str:
    return short_hash(data)


def run_hash(study: Any) -> str:
    """Hash of the study as recorded in the manifest (secret model params redacted)."""
    data = study.model_dump(mode="json", exclude={"source_file"})
    for m in data.get("models") or []:
        m["params"] = redact(m.get("params") or {})
    return _hash(data)


def endpoint_free_hash(spec: dict) -> str:
    """Hash of a study dump (a manifest's `spec`) without its endpoint params: equal for two
    studies that differ only in where their calls go (`api_base`)."""
    data = {k: v for k, v in spec.items() if k != "source_file"}
    data["models"] = [
        {**m, "params": redact(without_endpoints(m.get("params") or {}))} for m in data.get("models") or [] if isinstance(m, dict)
    ]
    return _hash(data)


def default_run_dir(study: Any) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study.name).strip("-") or "study"
    return Path("runs") / f"{safe}-{run_hash(study)}"


# what a run (or a start killed half-way, by this llmexp or an older one) leaves in its directory
OWN_FILES = frozenset({MANIFEST, STORE, STORE + "-wal", STORE + "-shm", STORE + "-journal", LOCK, MANIFEST + ".tmp", stop_record.STOP_RECORD})


def _different_study(run_dir: Path, existing: dict, study: Any, study_hash: str, detail: str = "") -> RunError:
    spec = existing.get("spec")
    if isinstance(spec, dict) and endpoint_free_hash(spec) == endpoint_free_hash(study.model_dump(mode="json")):
        return RunError(
            f"{run_dir} holds a run of this study with another endpoint (api_base): the endpoint is part of every "
            "trial's id and cache key, so its answers cannot be resumed with a new one; keep the old api_base "
            "to resume, or run into another --out directory"
        )
    what = f": {detail}" if detail else ""
    return RunError(
        f"{run_dir} holds a run of a different study (hash {existing.get('study_hash')}, this one {study_hash}){what}; "
        "a run is extended in place only by a study that keeps every stored trial as it was (more replicates, "
        "models or designs); choose another --out directory or delete that one"
    )


def _half_made(run_dir: Path, trial_ids: set[str]) -> bool:
    """Whether a directory without a manifest is a start of this run killed before its
    manifest was written: only llmexp's own files, and a store (if any) holding no trial
    of another study."""
    if any(p.name not in OWN_FILES for p in run_dir.iterdir()):
        return False
    if not (run_dir / STORE).exists():
        return True
    try:
        store = RunStore(run_dir, create=False)
    except RunError:
        return False
    try:
        return {r["trial_id"] for r in store.trial_rows()} <= trial_ids
    finally:
        store.close()


def existing_manifest(run_dir: Path, study: Any, trial_ids: set[str] | None = None, table: dict[str, dict] | None = None) -> dict | None:
    """The manifest of the run to resume in `run_dir`, None for a new run; RunError when
    the directory holds something else (an archive, another study, foreign files). Given
    the new trial table (`table`: trial_id -> row), a study that only adds trials to the
    stored ones extends the run: its manifest comes back updated (`extend.py`)."""
    study_hash = run_hash(study)
    if (run_dir / ARCHIVE_TABLE).exists() and not (run_dir / STORE).exists():
        raise RunError(f"{run_dir} is an archived run (read-only); run into another --out directory")
    if (run_dir / MANIFEST).exists():
        existing = read_manifest(run_dir)
        if existing.get("study_hash") != study_hash:
            if table is None:
                raise _different_study(run_dir, existing, study, study_hash)
            try:
                return extension(run_dir, existing, study, study_hash, table)
            except NotAnExtension as exc:
                raise _different_study(run_dir, existing, study, study_hash, str(exc)) from None
        return existing
    if run_dir.exists() and any(run_dir.iterdir()) and not _half_made(run_dir, trial_ids or set()):
        raise RunError(f"{run_dir} exists and is not an llmexp run directory; choose another --out")
    return None


@dataclass
class Options:
    """The run_study arguments a session records in the manifest."""

    limit: int | None
    max_cost: float | None
    concurrency: int
    use_cache: bool
    rpm: float | None
    tpm: float | None
    command: Sequence[str] | None
    pilot: int | None = None  # --pilot N: this session runs a stratified sample of N trials
    workers: int = 1  # --workers N: processes making litellm calls (runner/workers.py); 1: this one


def _manifest(existing: dict | None, study: Any, study_hash: str, options: Options, router_config: dict | None, started: float) -> dict:
    """The manifest to write: the existing run's (resumed) or a new one, with the models,
    package versions and router of this session."""
    manifest = existing or {
        "study": study.name,
        "study_hash": study_hash,
        "spec": study.model_dump(mode="json"),
        "seed": study.seed,
        "created": now_iso(started),
        "sessions": [],
    }
    manifest["models"] = [
        {"name": m.name, "params": dict(m.params), "replicates": m.replicates, "rpm": options.rpm or m.rpm, "tpm": options.tpm or m.tpm}
        for m in study.models
    ]
    manifest["versions"] = package_versions()
    if router_config is not None:
        manifest["router"] = describe_router(router_config)
    return manifest


class Session:
    """An open run directory: its manifest, this session's record, the store and the lock."""

    def __init__(self, run_dir: Path, manifest: dict, record: dict, store: RunStore, scrub: Callable[[str], str], lock: RunLock | None = None):
        self.run_dir = run_dir
        self.manifest = manifest
        self.record = record
        self.store = store
        self.scrub = scrub
        self.lock = lock
        self.manifest_error: str | None = None  # why the final manifest could not be written

    def pending(self, selection: Selection) -> list[dict]:
        """The selected trials without a final answer and not held by an open provider
        batch (`batch_ledger.py`), each once, in run order (a model that reuses prompt
        prefixes gets its own in compile order)."""
        done = self.store.final_ids() | open_trial_ids(self.store)  # a trial in a provider batch waits for it
        seen: set[str] = set()
        rows = []
        for r in selection.rows:
            tid = r["trial_id"]
            if tid in done or tid in seen:
                continue
            seen.add(tid)
            rows.append(r)
        return prefix_reusers_in_compile_order(rows, selection.order)

    def finish(self, selected: Iterable[str], calls_done: int, stop_reason: str | None, details: dict) -> RunStatus:
        """Record how this session ended and the run's status (`status.judge`) in the
        manifest; a manifest that cannot be written (full disk) is noted, not raised."""
        try:
            stored = self.store.statuses()
        except sqlite3.Error:
            stored = {}
        status = judge(selected, stored, stop_reason)
        self.record.update(details)
        self.record.update(ended=now_iso(), calls_done=calls_done, stop_reason=stop_reason, status=status.status)
        self.manifest["status"] = status.status
        self.manifest["status_reason"] = status.reason
        try:
            write_manifest(self.run_dir, self.manifest, self.scrub)
        except Exception as exc:  # noqa: BLE001 - the store is the record; say so, do not crash
            kept = stop_record.write(self.run_dir, status.status, self.scrub(status.reason), self.record["started"])
            where = f"; its status is kept in {stop_record.STOP_RECORD}" if kept else ""
            self.manifest_error = f"the manifest could not be updated ({getattr(exc, 'strerror', None) or exc}){where}"
        return status

    def close(self) -> None:
        self.store.close()
        if self.lock is not None:
            self.lock.release()


def _record(selection: Selection, options: Options, routed: frozenset, scrub: Callable[[str], str], started: float) -> dict:
    """This session's entry in the manifest's `sessions`."""
    return {
        "started": now_iso(started),
        "ended": None,
        "pid": os.getpid(),
        "command": scrub(" ".join(options.command if options.command is not None else sys.argv)),
        "trials_selected": len(selection.rows),
        "limit": options.limit,
        "pilot": options.pilot,
        "max_cost": options.max_cost,
        "concurrency": int(options.concurrency),
        "workers": int(options.workers),
        "cache": bool(options.use_cache),
        "router": sorted(routed) or None,
    }


def _start_error(run_dir: Path, what: str, exc: BaseException) -> RunError:
    detail = getattr(exc, "strerror", None) or str(exc)
    return RunError(f"cannot {what} in {run_dir}: {detail}; nothing was run")


def open_session(
    run_dir: Path, selection: Selection, options: Options, routed: frozenset, router_config: dict | None, scrub: Callable[[str], str]
) -> Session:
    """Lock the directory, check it, write the manifest (status "running"), then open the
    store and store the selected trials: a start killed at any point can be resumed."""
    study = selection.study
    trial_ids = {r["trial_id"] for r in selection.rows}
    existing_manifest(run_dir, study, trial_ids, selection.table)  # refuse a foreign directory before touching it
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _start_error(run_dir, "create the run directory", exc) from None
    lock = RunLock(run_dir).acquire()
    store = None
    try:
        existing = existing_manifest(run_dir, study, trial_ids, selection.table)  # again, under the lock
        started = time.time()
        manifest = _manifest(existing, study, run_hash(study), options, router_config, started)
        record = _record(selection, options, routed, scrub, started)
        manifest.setdefault("sessions", []).append(record)
        scope_note(manifest, len(selection.rows), len(selection.table), options.pilot, options.limit)
        manifest["status"] = "running"
        try:
            write_manifest(run_dir, manifest, scrub)
            store = RunStore(run_dir, create=True)
            store.add_trials(redacted_trials(selection.rows))
            stop_record.reserve(run_dir)  # room for how this session ends, should the disk fill
        except (OSError, sqlite3.Error) as exc:
            raise _start_error(run_dir, "write the run store or manifest", exc) from None
    except BaseException:
        if store is not None:
            store.close()
        lock.release()
        raise
    return Session(run_dir, manifest, record, store, scrub, lock)
