"""Which call a worker makes next, and the shared cache's claims (`cache.py`).

Without a cache the calls go out in run order. With one, each chunk of calls has its keys
claimed in one transaction before any of them goes out: a claimed call is made live; a key
already in the cache (another run answered it since this run's replay) is replayed; a key
another live process claimed waits. Waiting calls are polled (one query for all of them,
every `poll` seconds, backing off to 2 s) once the other calls are taken: when the other
process's answer reaches the cache it is replayed, when its claim is released or stale
(that process failed the call, ended or was killed) the call is claimed and made here.
Two runs sharing a cache therefore split the work and never pay for one key twice.
A cache that fails (its disk, a lock timeout) stops the claims: calls then go out unclaimed,
which is what a run without a cache does.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from llmexp.runner.calls import Call
from llmexp.runner.outcome import is_blank


class CallQueue:
    """`take()` gives ("call", call, None) to make live, ("hit", call, cached) to replay,
    or None when nothing is left."""

    def __init__(
        self, calls: list[Call], cache: Any = None, chunk: int = 64, on_message: Callable[[str], None] | None = None, poll: float = 0.2
    ):
        self.calls = calls
        self.cache = cache
        self.chunk = max(1, chunk)
        self.on_message = on_message or (lambda msg: None)
        self.poll = poll
        self._next = 0
        self.ready: deque[Call] = deque()
        self.hits: deque[tuple[Call, dict]] = deque()
        self.waiting: dict[str, list[Call]] = {}
        self._wait = poll
        self._polled = 0.0
        self._told = False

    def __len__(self) -> int:
        """Calls not taken yet (waiting ones included)."""
        return len(self.calls) - self._next + len(self.ready) + len(self.hits) + sum(map(len, self.waiting.values()))

    @property
    def n_waiting(self) -> int:
        return sum(map(len, self.waiting.values()))

    def _disable(self, exc: BaseException) -> None:
        """The cache cannot be used for claims: every call goes out unclaimed."""
        self.on_message(f"the response cache cannot be used to coordinate with other runs ({exc}); calling without claims")
        self.cache = None
        for calls in self.waiting.values():
            self.ready.extend(calls)
        self.waiting.clear()

    def _sort(self, calls: list[Call], claimed: set[str], cached: set[str]) -> None:
        """Put each call, in order, in ready, hits (looked up now) or waiting."""
        hits = self.cache.get_many(cached) if cached and self.cache is not None else {}
        for c in calls:
            if not c.cacheable:
                self.ready.append(c)
                continue
            hit = hits.get(c.cache_key)
            if hit is not None and hit.get("model") == c.model and not is_blank(hit.get("raw_text")):
                self.hits.append((c, hit))
            elif c.cache_key in claimed or c.cache_key in cached:
                self.ready.append(c)  # claimed by us (or a blank cached answer: ask again)
            else:
                self.waiting.setdefault(c.cache_key, []).append(c)

    def _claim(self, calls: list[Call]) -> None:
        keys = [c.cache_key for c in calls if c.cacheable]
        if not keys or self.cache is None:
            self.ready.extend(calls)
            return
        try:
            claimed, cached = self.cache.claim(keys)
            self._sort(calls, claimed, cached)
        except Exception as exc:  # noqa: BLE001 - the cache is an optimisation
            self._disable(exc)
            self.ready.extend(calls)

    def _refill(self) -> None:
        calls = self.calls[self._next : self._next + self.chunk]
        self._next += len(calls)
        self._claim(calls)

    def _poll_waiting(self) -> None:
        waiting, self.waiting = self.waiting, {}
        self._claim([c for cs in waiting.values() for c in cs])
        self._polled = time.monotonic()
        self._wait = self.poll if len(self.waiting) < len(waiting) else min(2.0, self._wait * 1.5)

    def _tell_waiting(self) -> None:
        if self._told or self.cache is None:
            return
        self._told = True
        try:
            holders = ", ".join(f"pid {pid}" for pid in sorted(self.cache.claim_holders())) or "another process"
        except Exception:  # noqa: BLE001
            holders = "another process"
        self.on_message(f"{self.n_waiting} calls are being made by another llmexp run sharing the cache ({holders}): waiting for its answers")

    async def take(self) -> tuple[str, Call, dict | None] | None:
        while True:
            if self.hits:
                call, hit = self.hits.popleft()
                return "hit", call, hit
            if self.ready:
                return "call", self.ready.popleft(), None
            if self._next < len(self.calls):
                self._refill()
                continue
            if not self.waiting:
                return None
            self._tell_waiting()
            delay = self._polled + self._wait - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
                continue  # another worker may have polled meanwhile
            self._poll_waiting()

    def drop_waiting(self) -> int:
        """Forget the calls still waiting (the run is stopping); how many there were."""
        n = self.n_waiting
        self.waiting.clear()
        return n
