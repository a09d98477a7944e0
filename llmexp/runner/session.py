"""One invocation of `run_study` on a run directory: the directory, the manifest, a session.

`open_session` checks that the directory is new or holds a run of the same study (that is
how a run is resumed), writes the manifest with a new session record (status "running")
before any call, opens the store and stores the selected trials (secret params redacted).
`Session.pending` gives the trials without a final answer; `Session.finish` records how the
session ended (complete, incomplete, interrupted) in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.plan import Selection, prefix_reusers_in_compile_order
from llmexp.runner.redaction import redact, redacted_trials
from llmexp.runner.results import ARCHIVE_TABLE
from llmexp.runner.router import describe as describe_router
from llmexp.runner.store import MANIFEST, STORE, RunStore, now_iso, package_versions, read_manifest, write_manifest


def run_hash(study: Any) -> str:
    """Hash of the study as recorded in the manifest (secret model params redacted)."""
    data = study.model_dump(mode="json", exclude={"source_file"})
    for m in data.get("models") or []:
        m["params"] = redact(m.get("params") or {})
    return hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:16]


def default_run_dir(study: Any) -> Path:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", study.name).strip("-") or "study"
    return Path("runs") / f"{safe}-{run_hash(study)}"


def existing_manifest(run_dir: Path, study_hash: str) -> dict | None:
    """The manifest of the run to resume in `run_dir`, None for a new run; RunError when
    the directory holds something else (an archive, another study, foreign files)."""
    if (run_dir / ARCHIVE_TABLE).exists() and not (run_dir / STORE).exists():
        raise RunError(f"{run_dir} is an archived run (read-only); run into another --out directory")
    if (run_dir / MANIFEST).exists():
        existing = read_manifest(run_dir)
        if existing.get("study_hash") != study_hash:
            raise RunError(
                f"{run_dir} holds a run of a different study (hash {existing.get('study_hash')}, this one {study_hash}); "
                "choose another --out directory or delete that one"
            )
        return existing
    if run_dir.exists() and any(run_dir.iterdir()):
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
    """An open run directory: its manifest, this session's record and the store."""

    def __init__(self, run_dir: Path, manifest: dict, record: dict, store: RunStore, scrub: Callable[[str], str]):
        self.run_dir = run_dir
        self.manifest = manifest
        self.record = record
        self.store = store
        self.scrub = scrub

    def pending(self, selection: Selection) -> list[dict]:
        """The selected trials without a final answer, each once, in run order (a model
        that reuses prompt prefixes gets its own in compile order)."""
        done = self.store.final_ids()
        seen: set[str] = set()
        rows = []
        for r in selection.rows:
            tid = r["trial_id"]
            if tid in done or tid in seen:
                continue
            seen.add(tid)
            rows.append(r)
        return prefix_reusers_in_compile_order(rows, selection.order)

    def finish(self, calls_done: int, stopped: dict, budget_stop: str | None, interrupted: bool) -> None:
        """Record how this session ended and the run's status in the manifest."""
        self.record["ended"] = now_iso()
        self.record["calls_done"] = calls_done
        self.record["stopped"] = stopped or None
        self.record["budget_stop"] = budget_stop
        self.manifest["status"] = "interrupted" if interrupted else ("incomplete" if stopped or budget_stop else "complete")
        write_manifest(self.run_dir, self.manifest, self.scrub)


def open_session(
    run_dir: Path, selection: Selection, options: Options, routed: frozenset, router_config: dict | None, scrub: Callable[[str], str]
) -> Session:
    """Check the directory, open the store, write the manifest (status "running") and store
    the selected trials: after this, a killed run can be resumed."""
    study = selection.study
    study_hash = run_hash(study)
    existing = existing_manifest(run_dir, study_hash)
    store = RunStore(run_dir, create=True)
    try:
        started = time.time()
        manifest = _manifest(existing, study, study_hash, options, router_config, started)
        record = {
            "started": now_iso(started),
            "ended": None,
            "command": scrub(" ".join(options.command if options.command is not None else sys.argv)),
            "trials_selected": len(selection.rows),
            "limit": options.limit,
            "max_cost": options.max_cost,
            "concurrency": int(options.concurrency),
            "cache": bool(options.use_cache),
            "router": sorted(routed) or None,
        }
        manifest.setdefault("sessions", []).append(record)
        manifest["status"] = "running"
        write_manifest(run_dir, manifest, scrub)
        store.add_trials(redacted_trials(selection.rows))
    except BaseException:
        store.close()
        raise
    return Session(run_dir, manifest, record, store, scrub)
