"""The response cache shared by all runs: a repeated study costs nothing.

Content-addressed by the trial_id, which is a hash of (model, params, messages, answer
spec, replicate): 50 replicates are 50 entries, each replayable. Only calls that returned
an answer (valid or not) are cached; failures and empty answers never are. The first
answer stored under a key stays (a blank one, cached by an older llmexp, gives way). Cache hits are not rate limited and
cost 0. Location: `--cache-dir`, else `$LLMEXP_CACHE_DIR`, else `~/.cache/llmexp`; file
`cache.sqlite` (WAL). `synthetic/` models are never cached (they are free and
deterministic already).

Several processes may share the cache (two runs of one study, a study split over run
directories): before a live call, a run CLAIMS its key (table `claims`: key, owner, pid,
host, time), in chunks, in one transaction. A key claimed by another live process is not
called again: the run waits for that process's answer to reach the cache and replays it
(`Scheduler` defers such calls). A claim is released when its answer is cached (same
transaction) or its call fails, and all of a process's claims when it ends. A claim whose
process is gone (its pid is not alive on this host) or that is older than `CLAIM_TTL` is
stale and taken over, so a killed run never blocks another.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Sequence
from pathlib import Path

from llmexp.errors import RunError
from llmexp.runner.store import write_many

CACHE_FILE = "cache.sqlite"
CACHE_FIELDS = ("key", "model", "raw_text", "probs", "prob_mass", "prompt_tokens", "completion_tokens", "cost", "created")
CLAIM_TTL = 3600.0  # seconds: a claim this old is stale whatever its pid (pid reuse, other host)
_CHUNK = 500  # keys per SQL statement (SQLite's variable limit)
_PUT = (
    f"INSERT INTO responses({','.join(CACHE_FIELDS)}) VALUES ({','.join('?' * len(CACHE_FIELDS))}) "
    f"ON CONFLICT(key) DO UPDATE SET {', '.join(f'{f} = excluded.{f}' for f in CACHE_FIELDS if f != 'key')} "
    "WHERE TRIM(COALESCE(responses.raw_text, '')) = ''"
)


def default_cache_dir() -> Path:
    env = os.environ.get("LLMEXP_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/llmexp").expanduser()


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host (a process of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def _chunks(keys: Sequence[str]) -> Iterable[Sequence[str]]:
    for i in range(0, len(keys), _CHUNK):
        yield keys[i : i + _CHUNK]


class ResponseCache:
    def __init__(self, directory: Path | str | None = None):
        self.dir = Path(directory).expanduser() if directory else default_cache_dir()
        self.owner = uuid.uuid4().hex  # this process's claims (a pid may be reused)
        self.host = socket.gethostname()
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
            self.conn.execute("CREATE TABLE IF NOT EXISTS claims (key TEXT PRIMARY KEY, owner TEXT, pid INTEGER, host TEXT, at REAL)")
        except (OSError, sqlite3.DatabaseError) as exc:
            raise RunError(f"cannot use the response cache in {self.dir}: {exc} (use --no-cache or --cache-dir)") from exc

    def get_many(self, keys: Iterable[str]) -> dict[str, dict]:
        keys = list(keys)
        out: dict[str, dict] = {}
        for chunk in _chunks(keys):
            q = f"SELECT {','.join(CACHE_FIELDS)} FROM responses WHERE key IN ({','.join('?' * len(chunk))})"
            for row in self.conn.execute(q, list(chunk)):
                out[row[0]] = dict(zip(CACHE_FIELDS, row, strict=True))
        return out

    def put_many(self, rows: list[tuple], release: Sequence[str] = ()) -> None:
        """Store answers and release claims, in one transaction. rows: tuples (key, model,
        raw_text, probs_json, prob_mass, prompt_tokens, completion_tokens, cost); release:
        keys whose call ended without a cacheable answer."""
        if not rows and not release:
            return
        now = time.time()
        data = [tuple(r) + (now,) for r in rows]
        done = [(r[0], self.owner) for r in rows] + [(k, self.owner) for k in release]
        write_many(self.conn, _PUT, data, [("DELETE FROM claims WHERE key = ? AND owner = ?", done)])

    # ------------------------------------------------------------------ claims
    def _stale(self, pid: int, host: str, at: float, now: float) -> bool:
        return now - at > CLAIM_TTL or (host == self.host and not pid_alive(pid))

    def claim(self, keys: Sequence[str]) -> tuple[set[str], set[str]]:
        """Claim `keys` for live calls by this process. Returns (claimed, cached): the keys
        this process may call now, and the keys already answered in the cache. The other
        keys are being called by another live process."""
        keys = list(dict.fromkeys(keys))
        if not keys:
            return set(), set()
        now = time.time()
        cached: set[str] = set()
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                cached |= {r[0] for r in self.conn.execute(f"SELECT key FROM responses WHERE key IN ({marks})", list(chunk))}
                held = self.conn.execute(f"SELECT key, owner, pid, host, at FROM claims WHERE key IN ({marks})", list(chunk)).fetchall()
                stale = [(k, o) for k, o, pid, host, at in held if o != self.owner and self._stale(int(pid or 0), str(host), float(at or 0), now)]
                self.conn.executemany("DELETE FROM claims WHERE key = ? AND owner = ?", stale)
            todo = [k for k in keys if k not in cached]
            self.conn.executemany(
                "INSERT OR IGNORE INTO claims(key, owner, pid, host, at) VALUES (?,?,?,?,?)",
                [(k, self.owner, os.getpid(), self.host, now) for k in todo],
            )
            claimed: set[str] = set()
            for chunk in _chunks(todo):
                q = f"SELECT key FROM claims WHERE owner = ? AND key IN ({','.join('?' * len(chunk))})"
                claimed |= {r[0] for r in self.conn.execute(q, [self.owner, *chunk])}
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            raise
        return claimed, cached

    def claim_holders(self) -> dict[int, int]:
        """pid -> keys claimed, for the claims of other processes (progress messages)."""
        q = "SELECT pid, COUNT(*) FROM claims WHERE owner != ? GROUP BY pid"
        return {int(pid or 0): int(n) for pid, n in self.conn.execute(q, (self.owner,))}

    def release_all(self) -> None:
        """Drop every claim of this process (at the end of a run, however it ends)."""
        with contextlib.suppress(sqlite3.Error):
            self.conn.execute("DELETE FROM claims WHERE owner = ?", (self.owner,))

    def __len__(self) -> int:
        return self.conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        self.release_all()
        with contextlib.suppress(Exception):
            self.conn.close()
