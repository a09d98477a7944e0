"""The asyncio scheduler: a pool of workers driving every pending call to a response row.

One `Scheduler.run()` takes the calls from a `CallQueue` (`queue.py`: run order, and the
shared cache's claims, so two runs never pay for one key twice) with a fixed pool of
`concurrency` workers (low per-call overhead: no pandas, no task per trial, JSON parsed
once when the call was prepared). For each call a worker

- checks the budget (`--max-cost`): a call starts only if spent + reserved (estimated
  cost of in-flight calls) + its own estimate stays within it;
- makes the call through `send`, the one place llmexp calls a model, after the model's
  rate limits (`limits.py`) allow it, under a wall-clock deadline per attempt; failures
  are retried by `retry.py`'s policy: transient ones within `max_attempts`, 429s on their
  own budget (Retry-After honoured, the model's `Throttle` engaged), an empty answer a few
  times before it is kept;
- stops a model at its first permanent failure (authentication, unknown model, bad
  request) with ONE message, after `max_consecutive_failures` calls in a row failed after
  all retries, or when its attempts keep timing out (a provider that does not answer is
  detected in minutes);
- hands the response row to the `Writer` (`writer.py`), which commits it within one loop
  iteration, so a killed run loses only the calls in flight.

`stop(reason)` (a store that cannot be written, SIGINT/SIGTERM) stops starting calls at
once; calls in flight finish (and are saved) unless `grace` seconds pass first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmexp.providers.base import extract_probs
from llmexp.runner.calls import Call
from llmexp.runner.limits import RateLimiter, Throttle
from llmexp.runner.outcome import Outcome, build_row, cached_outcome, is_blank
from llmexp.runner.queue import CallQueue
from llmexp.runner.retry import DEADLINE_SLACK, EmptyAnswer, ModelStopped, RetryPolicy, classify, raw_body
from llmexp.runner.transport import complete, usage
from llmexp.runner.writer import Writer
from llmexp.schema import ResponseRow


async def send(call: Call, router: Any = None) -> Any:
    """A `Call` sent through `transport.complete` (the one place llmexp calls a model)."""
    return await complete(call.target, call.messages, call.kwargs, router)


@dataclass
class ModelState:
    name: str
    limiter: RateLimiter
    price_in: float = 0.0
    price_out: float = 0.0
    stopped: str | None = None
    consecutive_failures: int = 0
    max_concurrency: int | None = None  # e.g. 1 for the embedded model (one call at a time)
    _gate: asyncio.Semaphore | None = None
    router: Any = None  # a litellm Router that sends this model's calls (see `send`)
    inflight: int = 0  # calls of this model in flight (for the throttle's first window)
    throttle: Throttle | None = None  # engaged by the first 429
    timeouts_in_row: int = 0  # attempts timed out since the model last answered
    last_answer: float = field(default_factory=time.monotonic)  # when it last answered (or the run began)
    warned: bool = False  # "not answering" was said

    @property
    def gate(self) -> asyncio.Semaphore | None:
        if self.max_concurrency and self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrency)
        return self._gate


@dataclass
class Stats:
    total: int = 0
    done: int = 0
    ok: int = 0
    invalid: int = 0
    failed: int = 0
    cache_hits: int = 0
    retries: int = 0
    skipped: int = 0
    cost: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: dict = field(default_factory=dict)  # kind -> count (failed calls and retries)
    started: float = field(default_factory=time.monotonic)
    waiting: int = 0  # calls waiting for another run's answer (shared cache)
    abandoned: int = 0  # calls cancelled in flight when the run stopped (asked again on resume)
    unsaved: int = 0  # answers received that the store could not keep

    def count(self, row: ResponseRow, out: Outcome) -> None:
        """Count one finished call (a live call or a cache hit)."""
        self.done += 1
        if row.status == "ok":
            self.ok += 1
        elif row.status == "invalid":
            self.invalid += 1
        else:
            self.failed += 1
            kind = out.error_kind or "error"
            self.errors[kind] = self.errors.get(kind, 0) + 1
        self.cost += out.cost
        self.prompt_tokens += out.prompt_tokens
        self.completion_tokens += out.completion_tokens
        if out.cache_hit:
            self.cache_hits += 1


@dataclass
class _Try:
    """One call's attempts so far and when it started."""

    attempts: int = 0  # requests sent (the stored `attempts`)
    limited: int = 0  # of them answered 429 (not counted against max_attempts)
    limited_wait: float = 0.0  # seconds waited on 429s
    empties: int = 0  # answers that came back empty
    prompt_tokens: int = 0  # usage of the empty answers (paid too)
    completion_tokens: int = 0
    started: float = field(default_factory=time.monotonic)


_STOP_HINTS = {
    "auth": "check the API key (e.g. the provider's *_API_KEY environment variable)",
    "permission": "the API key is not allowed to use this model",
    "not_found": "check the model name",
    "bad_request": "the provider rejected the request; check the model name and its params",
}


def _text(resp: Any) -> str | None:
    try:
        return resp.choices[0].message.content
    except (AttributeError, IndexError, TypeError):
        return None


class Scheduler:
    def __init__(
        self,
        calls: list[Call],
        models: dict[str, ModelState],
        writer: Writer,
        concurrency: int = 8,
        retry: RetryPolicy | None = None,
        max_cost: float | None = None,
        spent: float = 0.0,
        stats: Stats | None = None,
        on_message: Callable[[str], None] | None = None,
        scrub: Callable[[str], str] | None = None,
        cache: Any = None,
    ):
        self.calls = calls
        self.models = models
        self.writer = writer
        self.concurrency = max(1, int(concurrency))
        self.retry = retry or RetryPolicy()
        self.max_cost = max_cost
        self.spent = spent
        self.reserved = 0.0
        self.stats = stats or Stats()
        self.on_message = on_message or (lambda msg: None)
        self.scrub = scrub or (lambda s: s)
        self.budget_stop: str | None = None
        self.stop_reason: str | None = None  # why the run stopped starting calls (store, signal)
        self.queue = CallQueue(calls, cache, chunk=max(64, 2 * self.concurrency), on_message=self.on_message)
        self._workers: list[asyncio.Task] = []
        self.pool: Any = None  # a `workers.WorkerPool`: plain litellm calls made in worker processes

    # -- stopping
    def stop(self, reason: str, grace: float | None = None) -> None:
        """Start no more calls; cancel the calls in flight after `grace` seconds (now if 0)."""
        if self.stop_reason is None:
            self.stop_reason = reason
        if grace is None:
            return
        if grace <= 0:
            self._cancel_inflight()
        else:
            asyncio.get_running_loop().call_later(grace, self._cancel_inflight)

    def _cancel_inflight(self) -> None:
        for w in self._workers:
            w.cancel()

    def _stopping(self) -> bool:
        return self.stop_reason is not None or self.budget_stop is not None

    # -- retries
    def _retry_wait(self, exc: BaseException, state: ModelState, tried: _Try, deadline: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None to give up on the call."""
        deadline = deadline or self.retry.timeout + DEADLINE_SLACK
        kind, transient, _ = classify(exc)
        if kind == "timeout":
            self._timed_out(state, deadline)
        if not transient or state.stopped or self._stopping():
            return None
        if kind == "rate_limit":
            wait = self.retry.rate_limit_wait(tried.limited, exc)
            if tried.limited_wait + wait > self.retry.max_rate_limit_wait:
                return None
            tried.limited_wait += wait
        elif kind == "empty":
            if tried.empties >= self.retry.empty_attempts or tried.attempts - tried.limited >= self.retry.max_attempts:
                return None
            wait = self.retry.backoff(tried.empties, exc)
        else:
            if tried.attempts - tried.limited >= self.retry.max_attempts:
                return None
            wait = self.retry.backoff(tried.attempts - tried.limited, exc)
        self.stats.retries += 1
        self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        return wait

    def _timed_out(self, state: ModelState, deadline: float) -> None:
        """An attempt timed out. A model whose attempts keep timing out with no answer in
        between is not answering: say so once (nearly) a whole request timeout passed in
        silence -- litellm's own timeout fires at the timeout, before the hard deadline's
        slack, so the first round of timeouts already says it -- and stop it after
        `hang_timeouts` in a row and two deadlines of silence (or 3 in a row and
        `hang_seconds` of silence, for a run with few calls in flight)."""
        state.timeouts_in_row += 1
        n = state.timeouts_in_row
        silent = time.monotonic() - state.last_answer
        if state.stopped or n < 3:
            return
        if not state.warned and silent >= 0.9 * (deadline - DEADLINE_SLACK):
            state.warned = True
            self.on_message(f"model {state.name} is not answering: {n} attempts in a row timed out, no answer for {silent:.0f} s")
        if not ((n >= self.retry.hang_timeouts and silent >= 2 * deadline) or silent >= self.retry.hang_seconds):
            return
        state.stopped = (
            f"model {state.name} stopped (not answering): {n} attempts in a row timed out and no answer came "
            f"for {silent:.0f} s -- check the provider (or raise the timeout) and run the same command again"
        )
        self.on_message(state.stopped)

    # -- one attempt
    def _dispatch(self, call: Call, state: ModelState) -> Any:
        """The attempt's coroutine: in a worker process (`--workers N`) or here (`send`)."""
        if self.pool is not None and self.pool.takes(call, state):
            return self.pool.send(call)
        return send(call, state.router)

    async def _send(self, call: Call, state: ModelState) -> Any:
        """`send` under the attempt's wall-clock deadline; an answer resets the model's
        timeout count."""
        if call.deadline:
            resp = await asyncio.wait_for(self._dispatch(call, state), call.deadline + DEADLINE_SLACK)
        else:
            resp = await self._dispatch(call, state)
        state.timeouts_in_row = 0
        state.warned = False
        state.last_answer = time.monotonic()
        return resp

    async def _attempt(self, call: Call, state: ModelState, tried: _Try) -> Any:
        """One attempt: wait for the model's gate, throttle and rate limits, then send."""
        if state.stopped:
            raise ModelStopped(state.stopped)
        gate = state.gate
        if gate is not None:
            async with gate:  # FIFO: calls reach the model in the order they were taken
                if state.stopped:
                    raise ModelStopped(state.stopped)
                tried.attempts += 1
                await state.limiter.acquire(call.est_tokens)
                return await self._send(call, state)
        tried.attempts += 1
        throttle = state.throttle
        if throttle is not None:
            return await self._throttled(call, state, throttle, tried)
        await state.limiter.acquire(call.est_tokens)
        state.inflight += 1
        try:
            return await self._send(call, state)
        except Exception as exc:
            if classify(exc)[0] == "rate_limit":
                tried.limited += 1
                self._engage(state).limited(tried.started, self.retry.pause(exc))
            raise
        finally:
            state.inflight -= 1

    async def _throttled(self, call: Call, state: ModelState, throttle: Throttle, tried: _Try) -> Any:
        started = await throttle.enter()
        try:
            await state.limiter.acquire(call.est_tokens)
            resp = await self._send(call, state)
        except Exception as exc:
            if classify(exc)[0] == "rate_limit":
                tried.limited += 1
                throttle.limited(started, self.retry.pause(exc))
            raise
        finally:
            await throttle.leave()
        throttle.success()
        return resp

    def _engage(self, state: ModelState) -> Throttle:
        if state.throttle is None:
            state.throttle = Throttle(state.inflight, self.concurrency)
            self.on_message(f"model {state.name} is rate limited (429): adapting its calls in flight")
        return state.throttle

    # -- one call
    async def _answer(self, call: Call, state: ModelState, tried: _Try) -> tuple[Any, str]:
        """Attempts until one returns a non-empty answer, or raise the last failure."""
        while True:
            try:
                resp = await self._attempt(call, state, tried)
                text = _text(resp)
                if is_blank(text):
                    pt, ct = usage(resp)
                    tried.empties += 1
                    tried.prompt_tokens += pt
                    tried.completion_tokens += ct
                    raise EmptyAnswer(resp, text or "")
                return resp, text or ""
            except Exception as exc:
                wait = self._retry_wait(exc, state, tried, call.deadline + DEADLINE_SLACK if call.deadline else None)
                if wait is None:
                    raise
                await asyncio.sleep(wait)

    async def _call(self, call: Call, state: ModelState) -> Outcome:
        """Make one call (with retries); every failure becomes an Outcome, never an exception."""
        tried = _Try()
        try:
            resp, text = await self._answer(call, state, tried)
        except EmptyAnswer as empty:  # still empty after its retries: kept raw, failed (asked again next run)
            if tried.empties < self.retry.empty_attempts and (state.stopped or self._stopping()):
                return self._failure(empty, state, tried)  # cut short by a stop: asked again on resume
            return self._outcome(call, state, tried, empty.response, empty.text, empty=True)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded row
            return self._failure(exc, state, tried)
        return self._outcome(call, state, tried, resp, text)

    def _outcome(self, call: Call, state: ModelState, tried: _Try, resp: Any, text: str, empty: bool = False) -> Outcome:
        pt, ct = usage(resp)
        if empty:  # every empty answer was paid for
            pt, ct = tried.prompt_tokens, tried.completion_tokens
        state.limiter.settle(call.est_tokens, pt + ct)
        probs, mass = extract_probs(resp) if not empty else (None, None)
        return Outcome(
            text=text,
            probs=probs,
            prob_mass=mass,
            prompt_tokens=pt,
            completion_tokens=ct,
            cost=pt * state.price_in + ct * state.price_out,
            latency=time.monotonic() - tried.started,
            attempts=tried.attempts,
            empty=empty,
            error_kind="empty" if empty else None,
        )

    def _failure(self, exc: BaseException, state: ModelState, tried: _Try) -> Outcome:
        """The Outcome of a call that failed for good (stopping its model if it must)."""
        kind, _, stops = classify(exc)
        msg = f"{type(exc).__name__}: {exc}"
        if stops:
            self._stop_model(state, kind, exc)
        return Outcome(
            error=msg[:2000], error_kind=kind, attempts=tried.attempts, latency=time.monotonic() - tried.started, raw_body=raw_body(exc)
        )

    def _stop_model(self, state: ModelState, kind: str, exc: BaseException) -> None:
        if state.stopped:
            return
        hint = _STOP_HINTS.get(kind, "")
        detail = self.scrub(str(exc)).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        state.stopped = f"model {state.name} stopped ({kind}): {detail}" + (f" -- {hint}" if hint else "")
        self.on_message(state.stopped)

    # -- workers
    def _over_budget(self, call: Call) -> bool:
        """Whether starting `call` could exceed --max-cost (then the run stops taking calls)."""
        if self.max_cost is None or call.est_cost <= 0:
            return False
        if self.spent + self.reserved + call.est_cost <= self.max_cost + 1e-12:
            return False
        self.budget_stop = (
            f"stopped before exceeding --max-cost ${self.max_cost:.4f} "
            f"(spent ${self.spent:.4f}, in flight ${self.reserved:.4f})"
        )
        self.on_message(self.budget_stop)
        return True

    async def _worker(self) -> None:
        stats = self.stats
        while not self._stopping():
            taken = await self.queue.take()
            stats.waiting = self.queue.n_waiting
            if taken is None:
                return
            what, call, hit = taken
            if what == "hit" and hit is not None:  # answered meanwhile by another run sharing the cache
                out = cached_outcome(hit)
                row = build_row(call, out, self.scrub)
                self.writer.add(row)
                stats.count(row, out)
                continue
            state = self.models[call.model]
            if state.stopped or self._stopping() or self._over_budget(call):
                stats.skipped += 1
                self.writer.release(call)
                continue
            self.reserved += call.est_cost
            try:
                out = await self._call(call, state)
            except asyncio.CancelledError:
                stats.abandoned += 1
                raise
            finally:
                self.reserved -= call.est_cost
            if out.error_kind == "stopped":  # the model was stopped while this call waited
                stats.skipped += 1
                self.writer.release(call)
                continue
            self._record(call, state, out)

    def _record(self, call: Call, state: ModelState, out: Outcome) -> None:
        """Write a finished call's row (and cache row), count it, track its model's failures."""
        self.spent += out.cost
        row = build_row(call, out, self.scrub)
        cache_row = None
        if call.cacheable and out.text is not None and not out.empty:
            cache_row = (call.cache_key, call.model, row.raw_text, row.probs, out.prob_mass, out.prompt_tokens, out.completion_tokens, out.cost)
        self.writer.add(row, cache_row, call.cache_key if call.cacheable else None)
        self.stats.count(row, out)
        if out.text is not None:
            state.consecutive_failures = 0
            return
        state.consecutive_failures += 1
        limit = self.retry.max_consecutive_failures
        if limit and state.consecutive_failures >= limit and not state.stopped:
            state.stopped = (
                f"model {state.name} stopped after {state.consecutive_failures} calls in a row "
                f"failed after retries; last error: {self.scrub(out.error or '')[:300]}"
            )
            self.on_message(state.stopped)

    async def run(self) -> Stats:
        self.writer.start()
        try:
            n = min(self.concurrency, max(1, len(self.calls)))
            self._workers = [asyncio.create_task(self._worker()) for _ in range(n)]
            try:
                done = await asyncio.gather(*self._workers, return_exceptions=True)
            except BaseException:  # run() itself was cancelled (KeyboardInterrupt)
                self._cancel_inflight()
                await asyncio.gather(*self._workers, return_exceptions=True)
                raise
            errors = [d for d in done if isinstance(d, BaseException) and not isinstance(d, asyncio.CancelledError)]
            if errors:
                raise errors[0]
            self.stats.skipped += self.queue.drop_waiting() + len(self.queue)
        finally:
            await self.writer.stop()
            self.stats.unsaved = self.writer.unsaved
            self.stats.waiting = 0
        return self.stats
