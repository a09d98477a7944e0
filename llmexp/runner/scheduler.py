"""The asyncio scheduler: a pool of workers driving every pending call to a response row.

One `Scheduler.run()` takes the calls in order with a fixed pool of `concurrency` workers
(low per-call overhead: no pandas, no task per trial, JSON parsed once when the call was
prepared). For each call a worker

- checks the budget (`--max-cost`): a call starts only if spent + reserved (estimated
  cost of in-flight calls) + its own estimate stays within it;
- makes the call through `send`, the one place llmexp calls a model, after the model's
  rate limits (`limits.py`) allow it; transient failures are retried by `retry.py`'s
  policy (tenacity engaged only once a first attempt fails, so a call that succeeds at
  once pays nothing for it), and a 429 engages the model's `Throttle`;
- stops a model at its first permanent failure (authentication, unknown model, bad
  request) with ONE message, or after `max_consecutive_failures` calls in a row failed
  after all retries (a dead endpoint does not burn through thousands of calls);
- hands the response row to the `Writer` (`writer.py`), which commits it within one loop
  iteration, so a killed run loses only the calls in flight.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from llmexp.providers.base import extract_probs
from llmexp.runner.calls import Call
from llmexp.runner.limits import RateLimiter, Throttle
from llmexp.runner.outcome import Outcome, build_row
from llmexp.runner.retry import ModelStopped, RetryPolicy, classify
from llmexp.runner.writer import Writer
from llmexp.schema import ResponseRow


async def send(call: Call, router: Any = None) -> Any:
    """The one place llmexp calls a model: `litellm.acompletion`, or for a model routed
    over several deployments its litellm Router's `acompletion` (same arguments)."""
    if router is not None:
        complete = router.acompletion
    else:
        import litellm  # lazy: importing litellm takes seconds; reading a run never needs it

        complete = litellm.acompletion
    return await complete(model=call.target, messages=call.messages, **call.kwargs)


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

    attempts: int = 0
    started: float = field(default_factory=time.monotonic)


_STOP_HINTS = {
    "auth": "check the API key (e.g. the provider's *_API_KEY environment variable)",
    "permission": "the API key is not allowed to use this model",
    "not_found": "check the model name",
    "bad_request": "the provider rejected the request; check the model name and its params",
}


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
        self._next = 0

    # -- retries
    def _wait(self, state: Any) -> float:
        """tenacity's wait: the policy's backoff after the failed attempt."""
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.retry.backoff(state.attempt_number, exc)

    def _wait_after_first(self, state: Any) -> float:
        """tenacity's wait when it takes over after the first attempt (its attempt 1 is our 2)."""
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.retry.backoff(state.attempt_number + 1, exc)

    def _should_retry(self, exc: BaseException) -> bool:
        kind, transient, _ = classify(exc)
        if transient:
            self.stats.retries += 1
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        return transient

    async def _with_retries(self, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """`attempt()`, retried on transient failures: the first attempt directly,
        tenacity's bookkeeping only once a call fails."""
        try:
            return await attempt()
        except Exception as first:  # noqa: BLE001
            if not self._should_retry(first) or self.retry.max_attempts <= 1:
                raise
            await asyncio.sleep(self.retry.backoff(1, first))
            retrying = AsyncRetrying(
                stop=stop_after_attempt(self.retry.max_attempts - 1),
                wait=self._wait_after_first,
                retry=retry_if_exception(self._should_retry),
                reraise=True,
            )
            return await retrying(attempt)

    # -- one call
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
                return await send(call, state.router)
        tried.attempts += 1
        throttle = state.throttle
        if throttle is not None:
            return await self._throttled(call, state, throttle)
        await state.limiter.acquire(call.est_tokens)
        state.inflight += 1
        try:
            return await send(call, state.router)
        except Exception as exc:
            if classify(exc)[0] == "rate_limit":
                self._engage(state).limited(tried.started, self.retry.pause(exc))
            raise
        finally:
            state.inflight -= 1

    async def _throttled(self, call: Call, state: ModelState, throttle: Throttle) -> Any:
        started = await throttle.enter()
        try:
            await state.limiter.acquire(call.est_tokens)
            resp = await send(call, state.router)
        except Exception as exc:
            if classify(exc)[0] == "rate_limit":
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

    async def _call(self, call: Call, state: ModelState) -> Outcome:
        """Make one call (with retries); every failure becomes an Outcome, never an exception."""
        tried = _Try()
        try:
            resp = await self._with_retries(functools.partial(self._attempt, call, state, tried))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded row
            return self._failure(exc, state, tried)
        latency = time.monotonic() - tried.started
        try:
            text = resp.choices[0].message.content
        except (AttributeError, IndexError):
            text = None
        usage = getattr(resp, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        state.limiter.settle(call.est_tokens, pt + ct)
        probs, mass = extract_probs(resp)
        return Outcome(
            text=text if text is not None else "",
            probs=probs,
            prob_mass=mass,
            prompt_tokens=pt,
            completion_tokens=ct,
            cost=pt * state.price_in + ct * state.price_out,
            latency=latency,
            attempts=tried.attempts,
        )

    def _failure(self, exc: BaseException, state: ModelState, tried: _Try) -> Outcome:
        """The Outcome of a call that failed for good (stopping its model if it must)."""
        kind, transient, stops = classify(exc)
        if transient and kind in self.stats.errors:  # the last attempt was not a retry
            self.stats.retries -= 1
            self.stats.errors[kind] -= 1
        msg = f"{type(exc).__name__}: {exc}"
        if stops:
            self._stop_model(state, kind, exc)
        return Outcome(error=msg[:2000], error_kind=kind, attempts=tried.attempts, latency=time.monotonic() - tried.started)

    def _stop_model(self, state: ModelState, kind: str, exc: BaseException) -> None:
        if state.stopped:
            return
        hint = _STOP_HINTS.get(kind, "")
        detail = self.scrub(str(exc)).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        state.stopped = f"model {state.name} stopped ({kind}): {detail}" + (f" -- {hint}" if hint else "")
        self.on_message(state.stopped)

    # -- workers
    def _take(self) -> Call | None:
        if self._next >= len(self.calls):
            return None
        call = self.calls[self._next]
        self._next += 1
        return call

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
        while True:
            call = self._take()
            if call is None:
                return
            state = self.models[call.model]
            if state.stopped or self.budget_stop or self._over_budget(call):
                stats.skipped += 1
                continue
            self.reserved += call.est_cost
            try:
                out = await self._call(call, state)
            finally:
                self.reserved -= call.est_cost
            if out.error_kind == "stopped":  # the model was stopped while this call waited
                stats.skipped += 1
                continue
            self._record(call, state, out)

    def _record(self, call: Call, state: ModelState, out: Outcome) -> None:
        """Write a finished call's row (and cache row), count it, track its model's failures."""
        self.spent += out.cost
        row = build_row(call, out, self.scrub)
        cache_row = None
        if call.cacheable and out.text is not None:
            cache_row = (call.cache_key, call.model, out.text, row.probs, out.prob_mass, out.prompt_tokens, out.completion_tokens, out.cost)
        self.writer.add(row, cache_row)
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
            workers = [asyncio.create_task(self._worker()) for _ in range(min(self.concurrency, max(1, len(self.calls))))]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                for w in workers:
                    w.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
        finally:
            await self.writer.stop()
        return self.stats
