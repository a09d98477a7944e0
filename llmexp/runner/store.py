"""The run directory: `manifest.json` + `store.sqlite`, written so no finished work is lost.

Layout of a run directory::

    RUN_DIR/
      manifest.json   what ran: study name + hash, the full spec (secrets redacted), models
                      and params, seed, package versions, sessions (start/end, command line)
      store.sqlite    SQLite (WAL): table `trials` (every trial row of the trial table) and
                      table `responses` (one row per trial_id, written as each call ends)
      analysis/, report/   written later by `llmexp analyze` / `llmexp report`

Responses are committed in small batches (every ~0.2 s or 64 rows), so a killed process
loses at most the calls in flight. A response with status `ok` or `invalid` is final; a
`failed` one is retried when the run is resumed (same study into the same directory). A
final row is never replaced (`response_insert_sql`): a late `failed` row cannot overwrite
an answer. A write error is raised as it happened (a failing rollback never hides it), and
the manifest is written to a temporary file, fsynced and renamed, so a full disk leaves
the old manifest, never a truncated one.
No API key is ever written: params whose name looks like a secret are replaced by "***"
(`redaction.py`). The columns of both tables are defined in `llmexp/schema.py`.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.redaction import redact
from llmexp.schema import ADDED_TRIAL_COLUMNS, RESPONSE_STORE_COLUMNS, TRIAL_COLUMNS, ResponseRow, create_table_sql
from llmexp.seeding import canonical, text_hash

MANIFEST = "manifest.json"
STORE = "store.sqlite"
SCHEMA_VERSION = 1


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def response_insert_sql(fields: Sequence[str] = RESPONSE_STORE_COLUMNS) -> str:
    """Insert response rows; an existing row is replaced only while it is not final: a
    `failed` row gives way to a retry's row, an `ok`/`invalid` one is never replaced (a
    late failure from another attempt or process cannot overwrite an answer)."""
    updates = ", ".join(f"{f} = excluded.{f}" for f in fields if f != "trial_id")
    return (
        f"INSERT INTO responses({','.join(fields)}) VALUES ({','.join('?' * len(fields))}) "
        f"ON CONFLICT(trial_id) DO UPDATE SET {updates} WHERE responses.status NOT IN ('ok', 'invalid')"
    )


def write_many(conn: sqlite3.Connection, sql: str, rows: Sequence[Sequence[Any]], extra: Sequence[tuple[str, Sequence[Sequence[Any]]]] = ()) -> int:
    """Run `sql` for every row (and each `(sql, rows)` of `extra`) in one transaction;
    rows changed. On an error the transaction is rolled back and THAT error is raised: a
    rollback that fails too (SQLite may already have rolled back, e.g. on a full disk)
    never hides it."""
    conn.execute("BEGIN IMMEDIATE")
    before = conn.total_changes
    try:
        conn.executemany(sql, rows)
        for more_sql, more_rows in extra:
            conn.executemany(more_sql, more_rows)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
    return conn.total_changes - before


_INSERT_RESPONSE = response_insert_sql()


class RunStore:
    """The SQLite store of one run directory."""

    def __init__(self, run_dir: Path | str, create: bool = True):
        self.run_dir = Path(run_dir)
        path = self.run_dir / STORE
        if not path.exists() and not create:
            raise RunError(f"{self.run_dir} is not a run directory (no {STORE})")
        if create:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.conn = _connect(path)
            self._init()
        except sqlite3.DatabaseError as exc:
            raise RunError(f"cannot open {path}: {exc}") from exc

    def _init(self) -> None:
        c = self.conn
        c.execute(
            "CREATE TABLE IF NOT EXISTS trials (seq INTEGER PRIMARY KEY, row_key TEXT UNIQUE, "
            "trial_id TEXT NOT NULL, design TEXT, model TEXT, row TEXT NOT NULL)"
        )
        c.execute("CREATE INDEX IF NOT EXISTS trials_tid ON trials(trial_id)")
        c.execute(create_table_sql("responses", ResponseRow))
        c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ------------------------------------------------------------------ trials
    def add_trials(self, rows: Iterable[dict]) -> int:
        """Insert trial rows (dicts of TRIAL_COLUMNS, JSON columns as strings); idempotent."""
        data = []
        for row in rows:
            stored = {k: row.get(k) for k in TRIAL_COLUMNS if not (k in ADDED_TRIAL_COLUMNS and row.get(k) is None)}
            text = canonical(stored)
            key = text_hash(text, 32)
            data.append((key, row["trial_id"], row.get("design"), row.get("model"), text))
        return write_many(self.conn, "INSERT OR IGNORE INTO trials(row_key, trial_id, design, model, row) VALUES (?,?,?,?,?)", data)

    def trial_rows(self) -> list[dict]:
        return [json.loads(r[0]) for r in self.conn.execute("SELECT row FROM trials ORDER BY seq")]

    def n_trials(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]

    # --------------------------------------------------------------- responses
    def final_ids(self) -> set[str]:
        """trial_ids with a final answer (ok or invalid): never asked again."""
        q = "SELECT trial_id FROM responses WHERE status IN ('ok', 'invalid')"
        return {r[0] for r in self.conn.execute(q)}

    def final_answers(self) -> dict[str, str | None]:
        """trial_id -> stored raw answer text, for trials with a final answer (what a later
        question of a sequence is asked after)."""
        q = "SELECT trial_id, raw_text FROM responses WHERE status IN ('ok', 'invalid')"
        return dict(self.conn.execute(q))

    def write_responses(self, rows: Sequence[ResponseRow]) -> None:
        """Insert response rows in one transaction (a final row is never replaced)."""
        if not rows:
            return
        write_many(self.conn, _INSERT_RESPONSE, rows)

    def statuses(self) -> dict[str, str]:
        """trial_id -> stored status, for every response row."""
        return dict(self.conn.execute("SELECT trial_id, status FROM responses"))

    def response_rows(self) -> list[ResponseRow]:
        cur = self.conn.execute(f"SELECT {','.join(RESPONSE_STORE_COLUMNS)} FROM responses")
        return [ResponseRow._make(r) for r in cur]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()


# ---------------------------------------------------------------- manifest


def read_manifest(run_dir: Path | str) -> dict:
    path = Path(run_dir) / MANIFEST
    if not path.exists():
        raise RunError(f"{run_dir} is not a run directory (no {MANIFEST})")
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise RunError(f"cannot read {path}: {exc}") from exc


def redact_manifest(manifest: dict) -> dict:
    """A copy with every model's secret-named params replaced by "***" (spec and models)."""
    out = json.loads(json.dumps(manifest, default=str))
    for models in ((out.get("spec") or {}).get("models") or [], out.get("models") or []):
        for m in models:
            if isinstance(m, dict) and isinstance(m.get("params"), dict):
                m["params"] = redact(m["params"])
    return out


def write_manifest(run_dir: Path | str, manifest: dict, scrub=None) -> None:
    """Atomically (re)write the manifest; model params named like secrets are redacted and
    `scrub` (text -> text) removes any known secret value that is left.

    Written to `manifest.json.tmp`, fsynced, renamed over the manifest, then the directory
    fsynced: a crash or a full disk leaves the previous manifest whole. On any error the
    temporary file is removed (no 0-byte leftover) and the error raised."""
    path = Path(run_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(redact_manifest(manifest), indent=2, sort_keys=True, default=str) + "\n"
    if scrub is not None:
        text = scrub(text)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename in `directory` durable (where the OS allows opening a directory)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def package_versions() -> dict:
    import platform
    from importlib import metadata

    out = {"python": platform.python_version()}
    for name in ("llmexp", "litellm", "pydantic", "pandas", "numpy", "llama-cpp-python"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def now_iso(ts: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts if ts is not None else time.time()))
