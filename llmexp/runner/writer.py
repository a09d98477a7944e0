"""The writer: response rows reach the store (and the cache) as soon as the loop is idle.

All answers that arrived in one event-loop iteration share one transaction, and a timer
commits whatever is left every `interval` seconds, so a killed run loses only the calls in
flight while the store is not hit once per call.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from llmexp.schema import ResponseRow


class Writer:
    """Buffers store rows (and cache rows) and commits them every `interval` s or `batch` rows."""

    def __init__(self, store: Any, cache: Any = None, interval: float = 0.2, batch: int = 64):
        self.store = store
        self.cache = cache
        self.interval = interval
        self.batch = batch
        self.rows: list[ResponseRow] = []
        self.cache_rows: list[tuple] = []
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._soon = False
        self.written = 0

    def add(self, row: ResponseRow, cache_row: tuple | None = None) -> None:
        self.rows.append(row)
        if cache_row is not None and self.cache is not None:
            self.cache_rows.append(cache_row)
        if len(self.rows) >= self.batch:
            self.flush()
        elif not self._soon and self._loop is not None:
            # commit once the loop has handled every answer that is ready now: one
            # transaction per loop iteration, and nothing finished waits for the timer
            self._soon = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._soon = False
        self.flush()

    def flush(self) -> None:
        if self.rows:
            rows, self.rows = self.rows, []
            self.store.write_responses(rows)
            self.written += len(rows)
        if self.cache_rows:
            rows_c, self.cache_rows = self.cache_rows, []
            with contextlib.suppress(Exception):  # the cache is an optimisation; the store is the record
                self.cache.put_many(rows_c)

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
        self.flush()
