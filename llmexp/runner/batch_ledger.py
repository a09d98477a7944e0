"""The batch ledger: every provider batch of a run, in the run store, written ahead.

Two tables in `store.sqlite` (created by the first batch run; a run that never batched has
neither):

    batches(submission PK, model, conn, state, file_id, batch_id UNIQUE, provider_status,
            n, done, failed, est_cost, created, updated, note)
    batch_items(submission, trial_id)      the trials each submission holds

A submission moves through states, each transition one committed transaction written
BEFORE the next step acts on it:

    new        recorded with its trials before anything is uploaded
    uploaded   the input file's id (the provider has the file; files cost nothing)
    submitted  the provider's batch id: from now on it is only polled, never re-created
    collected  its results are in `responses` (written in the same transaction)
    dropped    a `new` submission whose upload was interrupted: nothing of it can be
               billed, its trials go back to the pool

`open` submissions (new, uploaded, submitted) hold their trials: no other batch (and no
live call of a later `llmexp run` without --batch) asks them again.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.store import RunStore, response_insert_sql, write_many

OPEN = ("new", "uploaded", "submitted")
_INSERT_RESPONSE = response_insert_sql()

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS batches (submission TEXT PRIMARY KEY, model TEXT NOT NULL, conn TEXT NOT NULL, "
    "state TEXT NOT NULL, file_id TEXT, batch_id TEXT UNIQUE, provider_status TEXT, n INTEGER NOT NULL, "
    "done INTEGER DEFAULT 0, failed INTEGER DEFAULT 0, est_cost REAL DEFAULT 0, created REAL, updated REAL, note TEXT)",
    "CREATE TABLE IF NOT EXISTS batch_items (submission TEXT NOT NULL, trial_id TEXT NOT NULL, PRIMARY KEY (submission, trial_id))",
    "CREATE INDEX IF NOT EXISTS batch_items_tid ON batch_items(trial_id)",
)


@dataclass
class Submission:
    submission: str
    model: str
    conn: str
    state: str
    file_id: str | None
    batch_id: str | None
    provider_status: str | None
    n: int
    est_cost: float


def has_ledger(store: RunStore) -> bool:
    """Whether this run ever batched (the ledger tables exist)."""
    q = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'batches'"
    return store.conn.execute(q).fetchone() is not None


def open_trial_ids(store: RunStore) -> set[str]:
    """Trials held by a batch that is not collected yet (never asked again meanwhile)."""
    if not has_ledger(store):
        return set()
    q = f"SELECT i.trial_id FROM batch_items i JOIN batches b USING (submission) WHERE b.state IN {OPEN}"
    return {r[0] for r in store.conn.execute(q)}


class Ledger:
    """The batches table of one run store."""

    def __init__(self, store: RunStore):
        self.store = store
        self.conn = store.conn
        for sql in _SCHEMA:
            self.conn.execute(sql)

    def _set(self, submission: str, **values: Any) -> None:
        values["updated"] = time.time()
        cols = ", ".join(f"{k} = ?" for k in values)
        write_many(self.conn, f"UPDATE batches SET {cols} WHERE submission = ?", [(*values.values(), submission)])

    def add(self, sub: Submission, trial_ids: Sequence[str]) -> None:
        """Record a submission and its trials (state `new`), before any upload."""
        now = time.time()
        row = (sub.submission, sub.model, sub.conn, "new", sub.n, sub.est_cost, now, now)
        write_many(
            self.conn, "INSERT INTO batches(submission, model, conn, state, n, est_cost, created, updated) VALUES (?,?,?,?,?,?,?,?)",
            [row], [("INSERT OR IGNORE INTO batch_items VALUES (?, ?)", [(sub.submission, t) for t in trial_ids])],
        )  # fmt: skip

    def uploaded(self, submission: str, file_id: str) -> None:
        self._set(submission, state="uploaded", file_id=file_id)

    def submitted(self, submission: str, batch_id: str) -> None:
        self._set(submission, state="submitted", batch_id=batch_id)

    def progress(self, submission: str, status: str, done: int, failed: int) -> None:
        self._set(submission, provider_status=status, done=done, failed=failed)

    def drop(self, submission: str, note: str) -> None:
        self._set(submission, state="dropped", note=note)

    def collect(self, submission: str, status: str, rows: Sequence[Sequence[Any]], note: str | None = None) -> None:
        """Store a batch's response rows and mark it collected, in one transaction: a kill
        before the commit leaves it `submitted` (polled and downloaded again, free)."""
        update = "UPDATE batches SET state = 'collected', provider_status = ?, note = ?, updated = ? WHERE submission = ?"
        write_many(self.conn, _INSERT_RESPONSE, rows, [(update, [(status, note, time.time(), submission)])])

    def open(self) -> list[Submission]:
        q = (
            "SELECT submission, model, conn, state, file_id, batch_id, provider_status, n, est_cost FROM batches "
            f"WHERE state IN {OPEN} ORDER BY created"
        )
        return [Submission(*r) for r in self.conn.execute(q)]

    def trial_ids(self, submission: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT trial_id FROM batch_items WHERE submission = ?", (submission,))]

    def held(self) -> set[str]:
        return open_trial_ids(self.store)

    def counts(self) -> dict[str, int]:
        return dict(self.conn.execute("SELECT state, COUNT(*) FROM batches GROUP BY state").fetchall())


def chunk(items: Iterable[tuple[str, bytes]], max_requests: int, max_bytes: int) -> Iterator[list[tuple[str, bytes]]]:
    """Split (trial_id, request line) pairs into files within the provider's limits, one
    file at a time (memory holds one file, not every request of a large run)."""
    cur: list[tuple[str, bytes]] = []
    size = 0
    for tid, line in items:
        if len(line) > max_bytes:
            raise RunError(f"the request of trial {tid} ({len(line)} bytes) is larger than the provider's batch file limit ({max_bytes} bytes)")
        if cur and (len(cur) >= max_requests or size + len(line) > max_bytes):
            yield cur
            cur, size = [], 0
        cur.append((tid, line))
        size += len(line)
    if cur:
        yield cur
