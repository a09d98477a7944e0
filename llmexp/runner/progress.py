"""Progress display: a live rich bar on a terminal, plain periodic lines otherwise.

Shows done/total, rate, ETA, cost so far, errors by kind and the calls waiting for another
run's answer (a shared cache); the scheduler's notes (a model rate limited, not answering,
stopped; the run stopping) are printed as they happen. The display reads the
scheduler's `Stats` on a timer (never per call), so it adds no per-call overhead.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any, TextIO

from llmexp.runner.scheduler import Stats


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


def status_line(stats: Stats) -> str:
    elapsed = max(1e-9, time.monotonic() - stats.started)
    rate = stats.done / elapsed
    left = stats.total - stats.done - stats.skipped
    eta = left / rate if rate > 0 else float("inf")
    errs = ", ".join(f"{k} {v}" for k, v in sorted(stats.errors.items()) if v)
    parts = [
        f"{stats.done}/{stats.total} calls",
        f"{rate:.1f}/s",
        f"ETA {_fmt_eta(eta) if left > 0 else '0s'}",
        f"${stats.cost:.4f}",
        f"ok {stats.ok}",
        f"invalid {stats.invalid}",
        f"failed {stats.failed}",
    ]
    if stats.cache_hits:
        parts.append(f"cached {stats.cache_hits}")
    if stats.retries:
        parts.append(f"retries {stats.retries}")
    if stats.waiting:
        parts.append(f"waiting for another run {stats.waiting}")
    if errs:
        parts.append(f"errors: {errs}")
    return " | ".join(parts)


class ProgressDisplay:
    """Use as `async with ProgressDisplay(stats, enabled=...)`; `.message(text)` prints a note."""

    def __init__(self, stats: Stats, enabled: bool = True, stream: TextIO | None = None, interval: float = 10.0):
        self.stats = stats
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.interval = interval
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._progress: Any = None  # rich.progress.Progress (rich imported only on a terminal)
        self._task_id = None
        self._timer: asyncio.Task | None = None
        self._console: Any = None

    def message(self, text: str) -> None:
        if self._console is not None:
            self._console.print(text, markup=False, highlight=False)
        else:
            print(text, file=self.stream, flush=True)

    async def __aenter__(self) -> ProgressDisplay:
        if not self.enabled:
            return self
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._console = Console(file=self.stream, highlight=False)
            self._progress = Progress(
                BarColumn(bar_width=20),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=self._console,
                transient=False,
                refresh_per_second=4,
            )
            self._progress.start()
            self._task_id = self._progress.add_task("run", total=self.stats.total, info="", rate="")
            self._timer = asyncio.get_running_loop().create_task(self._tick(0.25))
        else:
            self._timer = asyncio.get_running_loop().create_task(self._tick(self.interval))
        return self

    def _render(self) -> None:
        s = self.stats
        if self._progress is not None:
            errs = " ".join(f"{k}:{v}" for k, v in sorted(s.errors.items()) if v)
            info = f"${s.cost:.4f} ok {s.ok} inv {s.invalid} fail {s.failed}"
            if s.cache_hits:
                info += f" cached {s.cache_hits}"
            if s.waiting:
                info += f" waiting {s.waiting}"
            if errs:
                info += f" | {errs}"
            elapsed = max(1e-9, time.monotonic() - s.started)
            rate = f"{s.done / elapsed:.1f}/s"
            self._progress.update(self._task_id, completed=s.done + s.skipped, total=s.total, info=info, rate=rate)
        else:
            print(status_line(s), file=self.stream, flush=True)

    async def _tick(self, every: float) -> None:
        while True:
            await asyncio.sleep(every)
            self._render()

    async def __aexit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._timer
        if not self.enabled:
            return
        self._render()
        if self._progress is not None:
            self._progress.stop()
