"""The response cache shared by all runs: a repeated study costs nothing.

Content-addressed by the trial_id, which is a hash of (model, params, messages, answer
spec, replicate): 50 replicates are 50 entries, each replayable. Only calls that returned
an answer (valid or not) are cached; failures never are. Cache hits are not rate limited
and cost 0. Location: `--cache-dir`, else `$LLMEXP_CACHE_DIR`, else `~/.cache/llmexp`;
file `cache.sqlite` (WAL, safe to share between concurrent runs). `synthetic/` models are
never cached (they are free and deterministic already).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable
from pathlib import Path

from llmexp.errors import RunError
from llmexp.runner.store import upsert_sql, write_many

CACHE_FILE = "cache.sqlite"
CACHE_FIELDS = ("key", "model", "raw_text", "probs", "prob_mass", "prompt_tokens", "completion_tokens", "cost", "created")


def default_cache_dir() -> Path:
    env = os.environ.get("LLMEXP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/llmexp").expanduser()


class ResponseCache:
    def __init__(self, directory: Path | str | None = None):
        self.dir = Path(directory).expanduser() if directory else default_cache_dir()
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self.path = self.dir / CACHE_FILE
            self.conn = sqlite3.connect(str(self.path), timeout=30.0, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=30000")
            self.conn.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, model TEXT, raw_text TEXT, "
                "probs TEXT, prob_mass REAL, prompt_tokens INTEGER, completion_tokens INTEGER, cost REAL, created REAL)"
            )
        except (OSError, sqlite3.DatabaseError) as exc:
            raise RunError(f"cannot use the response cache in {self.dir}: {exc} (use --no-cache or --cache-dir)") from exc

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        keys = list(keys)
        out: dict[str, dict] = {}
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            q = f"SELECT {','.join(CACHE_FIELDS)} FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            for row in self.conn.execute(q, chunk):
                out[row[0]] = dict(zip(CACHE_FIELDS, row, strict=True))
        return out

    def put_many(self, rows: list[tuple]) -> None:
        """rows: tuples (key, model, raw_text, probs_json, prob_mass, prompt_tokens, completion_tokens, cost)."""
        if not rows:
            return
        now = time.time()
        data = [tuple(r) + (now,) for r in rows]
        write_many(self.conn, upsert_sql("responses", CACHE_FIELDS), data)

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.conn.close()
