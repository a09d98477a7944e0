"""Cache replay: calls answered before (by any run) are served from the shared cache.

A hit becomes a response row at once (through the same `build_row` as a live call, so the
answer is parsed against this trial's spec), costs 0 and is not rate limited; hits are
written in transactions of 5,000 rows. Only the remaining calls go to the scheduler.
"""

from __future__ import annotations

from collections.abc import Callable

from llmexp.runner.cache import ResponseCache
from llmexp.runner.calls import Call
from llmexp.runner.outcome import build_row, cached_outcome, is_blank
from llmexp.runner.scheduler import Stats
from llmexp.runner.store import RunStore
from llmexp.schema import ResponseRow

BATCH = 5000  # hit rows per transaction


def replay(calls: list[Call], cache: ResponseCache, store: RunStore, stats: Stats, scrub: Callable[[str], str]) -> list[Call]:
    """Write a response row for every call the cache answers; return the other calls."""
    hits = cache.get_many([c.cache_key for c in calls if c.cacheable])
    if not hits:
        return calls
    remaining = []
    rows: list[ResponseRow] = []
    for c in calls:
        h = hits.get(c.cache_key) if c.cacheable else None
        if h is None or h.get("model") != c.model or is_blank(h.get("raw_text")):  # a blank answer is never replayed
            remaining.append(c)
            continue
        out = cached_outcome(h)
        row = build_row(c, out, scrub)
        rows.append(row)
        if len(rows) >= BATCH:  # one transaction per 5,000 hits, not per hit
            store.write_responses(rows)
            rows = []
        stats.count(row, out)
    store.write_responses(rows)
    return remaining
