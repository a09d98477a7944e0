"""Rate limits: per-model token buckets, and the AIMD throttle a 429 engages.

`RateLimiter` enforces a model's requests/min and tokens/min (`ModelSpec.rpm/tpm` or the
CLI's) before every attempt, so retries count against the limits too. `Throttle` is how a
rate-limited model adapts instead of hammering: its first 429 engages an AIMD window on
that model's calls in flight (halved on a 429, grown by 1/window per success, like TCP
congestion control), and every 429's Retry-After pauses ALL of the model's calls.
"""

from __future__ import annotations

import asyncio
import random
import time


class Bucket:
    """A token bucket: `rate` units per second, holding at most `capacity`."""

    __slots__ = ("rate", "capacity", "level", "stamp")

    def __init__(self, per_minute: float, burst_seconds: float = 2.0, min_capacity: float = 1.0):
        self.rate = per_minute / 60.0
        self.capacity = max(min_capacity, self.rate * burst_seconds)
        self.level = self.capacity
        self.stamp = time.monotonic()

    def _refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, amount: float, now: float) -> float:
        self._refill(now)
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate


class RateLimiter:
    """Requests/min and tokens/min for one model; `acquire` waits until both allow a call."""

    def __init__(self, rpm: float | None = None, tpm: float | None = None):
        self.requests = Bucket(rpm) if rpm else None
        self.tokens = Bucket(tpm, min_capacity=1.0) if tpm else None

    @property
    def active(self) -> bool:
        return self.requests is not None or self.tokens is not None

    async def acquire(self, tokens: int) -> None:
        if not self.active:
            return
        while True:
            now = time.monotonic()
            wait = 0.0
            if self.requests is not None:
                wait = max(wait, self.requests.wait_time(1, now))
            if self.tokens is not None:
                wait = max(wait, self.tokens.wait_time(tokens, now))
            if wait <= 0:
                if self.requests is not None:
                    self.requests.level -= 1
                if self.tokens is not None:
                    self.tokens.level -= tokens
                return
            await asyncio.sleep(wait + random.random() * 0.01)

    def settle(self, estimated: int, actual: int) -> None:
        """Charge the difference between the estimated and the actual token use."""
        if self.tokens is not None and actual:
            self.tokens.level -= actual - estimated


class Throttle:
    """AIMD window on one model's calls in flight, engaged by the model's first 429.

    `window` calls may be in flight; a 429 halves it (once per round: only calls started
    after the last cut can cut it again) and pauses every call of the model until the
    server's Retry-After has passed; each success grows it by 1/window, up to `ceiling`."""

    def __init__(self, inflight: int, ceiling: int):
        self.ceiling = max(1, ceiling)
        self.window = max(1.0, inflight / 2.0)
        self.inflight = 0
        self.pause_until = 0.0
        self.last_cut = time.monotonic()
        self.cuts = 0
        self._cond = asyncio.Condition()

    async def enter(self) -> float:
        async with self._cond:
            await self._cond.wait_for(lambda: self.inflight < int(self.window))
            self.inflight += 1
        wait = self.pause_until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        return time.monotonic()

    async def leave(self) -> None:
        async with self._cond:
            self.inflight -= 1
            self._cond.notify(max(1, int(self.window) - self.inflight))

    def success(self) -> None:
        self.window = min(float(self.ceiling), self.window + 1.0 / self.window)

    def limited(self, started: float, wait: float | None) -> None:
        now = time.monotonic()
        if started >= self.last_cut:
            self.window = max(1.0, self.window / 2.0)
            self.last_cut = now
            self.cuts += 1
        self.pause_until = max(self.pause_until, now + (wait if wait is not None else 0.0))
