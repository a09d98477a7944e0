"""Reading a run's store from tests, without the runner: what a killed or finished run kept."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def final_trial_ids(run_dir: Path) -> set[str]:
    """Trials with a final answer (ok or invalid); empty while the store does not exist yet or
    is being created by a process that may be killed at any moment."""
    path = Path(run_dir) / "store.sqlite"
    if not path.exists():
        return set()
    con = sqlite3.connect(path, timeout=10)
    try:
        return {r[0] for r in con.execute("SELECT trial_id FROM responses WHERE status IN ('ok','invalid')")}
    except sqlite3.OperationalError:
        return set()
    finally:
        con.close()


def response_rows(run_dir: Path) -> list[tuple]:
    """(trial_id, status, raw_text) of every stored response."""
    con = sqlite3.connect(Path(run_dir) / "store.sqlite")
    try:
        return con.execute("SELECT trial_id, status, raw_text FROM responses").fetchall()
    finally:
        con.close()
