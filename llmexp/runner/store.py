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
`failed` one is retried when the run is resumed (same study into the same directory).
No API key is ever written: params whose name looks like a secret are replaced by "***".
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

from llmexp.errors import RunError

MANIFEST = "manifest.json"
STORE = "store.sqlite"
SCHEMA_VERSION = 1

TRIAL_COLUMNS = (
    "trial_id",
    "cache_key",  # hash of (model, params, messages, answer, draw, replicate): the cache key
    "study",
    "design",
    "mode",
    "model",
    "params",
    "replicate",
    "kind",
    "target",
    "unit_id",
    "unit",
    "persona_id",
    "persona",
    "cell",
    "conditions",
    "pinned",
    "split",
    "answer",
    "messages",
    "order_seed",
)
JSON_TRIAL_COLUMNS = ("params", "unit", "persona", "conditions", "pinned", "split", "answer", "messages")

RESPONSE_COLUMNS = (
    "valid",
    "value",
    "label",
    "probs",
    "prob_mass",
    "condition_values",
    "raw_text",
    "error",
    "status",
    "prompt_tokens",
    "completion_tokens",
    "cost",
    "latency",
    "cache_hit",
    "attempts",
)
# stored per response (besides RESPONSE_COLUMNS)
STORE_EXTRA = ("trial_id", "model", "error_kind", "finished_at")
ROW_FIELDS = ("trial_id", "model") + RESPONSE_COLUMNS + ("error_kind", "finished_at")

FINAL_STATUSES = ("ok", "invalid")

_SECRET_NAME = re.compile(r"(api_?key|secret|token|password|passwd|credential|authorization)", re.I)
_TOKEN_LIMIT_PARAMS = {"max_tokens", "max_completion_tokens", "max_output_tokens", "top_logprobs"}


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and name not in _TOKEN_LIMIT_PARAMS


def redact(obj: Any) -> Any:
    """A copy of `obj` with every secret-named value replaced by "***"."""
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and is_secret_name(k) and v is not None else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


def upsert_sql(table: str, fields: Sequence[str]) -> str:
    return f"INSERT OR REPLACE INTO {table}({','.join(fields)}) VALUES ({','.join('?' * len(fields))})"


def write_many(conn: sqlite3.Connection, sql: str, rows: list) -> int:
    """Run `sql` for every row in one transaction (rolled back on any error); rows changed."""
    conn.execute("BEGIN")
    before = conn.total_changes
    try:
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return conn.total_changes - before


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
        cols = ", ".join(
            f"{name} {kind}"
            for name, kind in [
                ("trial_id", "TEXT PRIMARY KEY"),
                ("model", "TEXT"),
                ("valid", "INTEGER"),
                ("value", "REAL"),
                ("label", "TEXT"),
                ("probs", "TEXT"),
                ("prob_mass", "REAL"),
                ("condition_values", "TEXT"),
                ("raw_text", "TEXT"),
                ("error", "TEXT"),
                ("status", "TEXT"),
                ("prompt_tokens", "INTEGER"),
                ("completion_tokens", "INTEGER"),
                ("cost", "REAL"),
                ("latency", "REAL"),
                ("cache_hit", "INTEGER"),
                ("attempts", "INTEGER"),
                ("error_kind", "TEXT"),
                ("finished_at", "REAL"),
            ]
        )
        c.execute(f"CREATE TABLE IF NOT EXISTS responses ({cols})")
        c.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        c.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    # ------------------------------------------------------------------ trials
    def add_trials(self, rows: Iterable[dict]) -> int:
        """Insert trial rows (dicts of TRIAL_COLUMNS, JSON columns as strings); idempotent."""
        data = []
        for row in rows:
            text = json.dumps({k: row.get(k) for k in TRIAL_COLUMNS}, sort_keys=True, separators=(",", ":"), default=str)
            key = hashlib.sha256(text.encode()).hexdigest()[:32]
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

    def write_responses(self, rows: list[tuple]) -> None:
        """Insert or replace response rows (tuples in ROW_FIELDS order) in one transaction."""
        if not rows:
            return
        write_many(self.conn, upsert_sql("responses", ROW_FIELDS), rows)

    def response_rows(self) -> list[dict]:
        cur = self.conn.execute(f"SELECT {','.join(ROW_FIELDS)} FROM responses")
        return [dict(zip(ROW_FIELDS, r)) for r in cur]

    def close(self) -> None:
        try:
            self.conn.close()
        except Exception:
            pass


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
    `scrub` (text -> text) removes any known secret value that is left."""
    path = Path(run_dir) / MANIFEST
    tmp = path.with_suffix(".json.tmp")
    text = json.dumps(redact_manifest(manifest), indent=2, sort_keys=True, default=str) + "\n"
    if scrub is not None:
        text = scrub(text)
    tmp.write_text(text)
    os.replace(tmp, path)


def package_versions() -> dict:
    from importlib import metadata
    import platform

    out = {"python": platform.python_version()}
    for name in ("llmexp", "litellm", "pydantic", "pandas", "numpy", "tenacity", "llama-cpp-python"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def now_iso(ts: Optional[float] = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts if ts is not None else time.time()))
