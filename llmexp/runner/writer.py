"""The writer: response rows reach the store (and the cache) as soon as the loop is idle.

All answers that arrived in one event-loop iteration share one transaction, and a timer
commits whatever is left every `interval` seconds, so a killed run loses only the calls in
flight while the store is not hit once per call.

A store write that fails (a full disk: SQLite's "database or disk is full", ENOSPC, an I/O
error) is never swallowed: the rows stay in memory, the first error is kept in `error`
and reported through `on_error` (the scheduler stops starting calls at once), and
`stop()` tries those rows once more; whatever still cannot be written is counted in
`unsaved`. Cache rows are written (and the run's cache claims released) independently:
the cache is an optimisation, and on another disk it may keep answers the store could not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from llmexp.schema import ResponseRow


class Writer:
    """Buffers store rows (and cache rows) and commits them every `interval` s or `batch` rows."""

    def __init__(
        self, store: Any, cache: Any = None, interval: float = 0.2, batch: int = 64, on_error: Callable[[BaseException], None] | None = None
    ):
        self.store = store
        self.cache = cache
        self.interval = interval
        self.batch = batch
        self.on_error = on_error
        self.rows: list[ResponseRow] = []
        self.cache_rows: list[tuple] = []
        self.released: list[str] = []  # cache keys whose call ended without a cacheable answer
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon = False
        self.written = 0
        self.error: BaseException | None = None  # the first store write error
        self.unsaved = 0  # rows that could not be written at all (set by stop())

    def add(self, row: ResponseRow, cache_row: tuple | None = None, release: str | None = None) -> None:
        self.rows.append(row)
        if self.cache is not None:
            if cache_row is not None:
                self.cache_rows.append(cache_row)
            elif release is not None:
                self.released.append(release)
        if len(self.rows) >= self.batch:
            self.flush()
        elif not self._soon and self._loop is not None:
            # commit once the loop has handled every answer that is ready now: one
            # transaction per loop iteration, and nothing finished waits for the timer
            self._soon = True
            self._loop.call_soon(self._flush_soon)

    def release(self, call: Any) -> None:
        """A call that was not made after all: release its cache claim at the next flush."""
        if self.cache is not None and getattr(call, "cacheable", False):
            self.released.append(call.cache_key)

    def _flush_soon(self) -> None:
        self._soon = False
        self.flush()

    def _write_store(self) -> None:
        try:
            self.store.write_responses(self.rows)
        except Exception as exc:  # noqa: BLE001 - any failure to write keeps the rows and stops the run
            if self.error is None:
                self.error = exc
                if self.on_error is not None:
                    self.on_error(exc)
            return
        self.written += len(self.rows)
        self.rows = []

    def flush(self, retry_failed: bool = False) -> None:
        """Commit the buffered rows. After a store error, rows are kept and only written
        again when `retry_failed` (at stop), so a failing disk is not hammered per answer."""
        if self.rows and (self.error is None or retry_failed):
            self._write_store()
        if self.cache_rows or self.released:
            rows_c, self.cache_rows = self.cache_rows, []
            released, self.released = self.released, []
            with contextlib.suppress(Exception):  # the cache is an optimisation; the store is the record
                self.cache.put_many(rows_c, released)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self.flush()

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._tick())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.flush(retry_failed=True)
        self.unsaved = len(self.rows)
