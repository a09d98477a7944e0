"""The stop record: how a session ended, written where a full disk cannot stop it.

A run that stops because its disk is full usually cannot rewrite its manifest either (an
atomic rewrite needs room for a new file), so the manifest would keep saying "running" and
`llmexp results` could only guess why the run ended. So each session reserves the space
first: `reserve` writes a file of STOP_RECORD_SIZE blanks while the disk has room, and
`write` overwrites those same bytes in place (no new block is needed) with the status and
reason, only when the manifest could not be written. `read` gives it back to the status
reader (`status.recorded`), which trusts it only for the session the manifest last recorded.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

STOP_RECORD = "stop-record.json"
STOP_RECORD_SIZE = 4096  # bytes reserved: a status, a reason (cut to fit) and the session's start


def reserve(run_dir: Path) -> bool:
    """Blank the record and claim its bytes on disk (at a session's start); False when even
    that failed (the disk is already full: the session's start will say so anyway)."""
    try:
        with open(Path(run_dir) / STOP_RECORD, "wb") as f:
            f.write(b" " * STOP_RECORD_SIZE)
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False


def write(run_dir: Path, status: str, reason: str, session_started: str) -> bool:
    """Write the record over its reserved bytes (never growing the file); False if it could
    not be written (no reserve, or the file system refused even that)."""
    path = Path(run_dir) / STOP_RECORD
    record = {"status": status, "reason": reason, "session_started": session_started}
    data = json.dumps(record).encode()
    while len(data) > STOP_RECORD_SIZE and record["reason"]:
        record["reason"] = record["reason"][: len(record["reason"]) // 2] + "..."
        data = json.dumps(record).encode()
    try:
        if path.stat().st_size < STOP_RECORD_SIZE:
            return False
        with open(path, "r+b") as f:
            f.write(data.ljust(STOP_RECORD_SIZE))
            f.flush()
            os.fsync(f.fileno())
        return True
    except OSError:
        return False


def read(run_dir: Path) -> dict | None:
    """The record of the last session that could not write its manifest, or None."""
    try:
        text = (Path(run_dir) / STOP_RECORD).read_text(encoding="utf-8").strip()
        record = json.loads(text) if text else None
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"status", "reason", "session_started"} <= set(record) else None
