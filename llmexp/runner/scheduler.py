"""The asyncio scheduler: bounded concurrency, per-model rate limits, retries, budget.

One `Scheduler.run()` drives every pending call through `litellm.acompletion`:

- a fixed pool of `concurrency` workers pulls calls in order (low per-call overhead: no
  pandas, no task per trial, JSON parsed once when the call is prepared);
- per-model token buckets for requests/min and tokens/min (`ModelSpec.rpm/tpm` or CLI),
  acquired before every attempt, so retries count against the limits too;
- retries through tenacity (engaged when a call's first attempt fails, so a call that
  succeeds at once pays nothing for it): exponential backoff with jitter on transient failures
  (429, 5xx, timeouts, connection errors, malformed replies), at most
  `RetryPolicy.max_attempts` attempts, waiting at least the server's `Retry-After`;
- a rate-limited model adapts instead of hammering: its first 429 engages a `Throttle`, an
  AIMD window on that model's calls in flight (halved on a 429, grown by 1/window per
  success, like TCP congestion control), and every 429's Retry-After pauses ALL of that
  model's calls, not only the one that got it;
- permanent failures (authentication, unknown model, bad request) stop that model at once
  with ONE message; `max_consecutive_failures` calls in a row failing after all retries
  also stop it (a dead endpoint does not burn through thousands of calls);
- `--max-cost`: a call starts only if spent + reserved (estimated cost of in-flight calls)
  + its own estimate stays within the budget;
- results go to a `Writer` that commits to the store (and cache) as soon as the event loop is
  idle (all answers that arrived in one loop iteration share one transaction), so a killed
  run loses only the calls in flight.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Callable, Optional

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from llmexp.answers import parse_answer
from llmexp.providers.base import extract_probs

# ---------------------------------------------------------------- retry policy


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    initial_wait: float = 1.0  # seconds before the first retry (doubles each time)
    max_wait: float = 60.0  # cap of one backoff wait
    jitter: float = 1.0  # up to this many seconds (scaled by initial_wait) added at random
    max_retry_after: float = 120.0  # cap on a server's Retry-After
    timeout: float = 120.0  # per-attempt request timeout (seconds)
    max_consecutive_failures: int = 20  # stop a model after this many failed calls in a row


class ModelStopped(Exception):
    pass


# litellm reports a missing API key as a 500 from the OpenAI client ("Missing credentials")
_MISSING_KEY = re.compile(r"missing credentials|api_key client option must be set|no api key provided|invalid api key|incorrect api key", re.I)


def classify(exc: BaseException) -> tuple[str, bool, bool]:
    """(kind, transient, stops_model) for an exception raised by litellm.acompletion."""
    import litellm

    if isinstance(exc, ModelStopped):
        return "stopped", False, False
    if isinstance(exc, litellm.RateLimitError) or type(exc).__name__ in ("RouterRateLimitError", "RouterRateLimitErrorBasic"):
        return "rate_limit", True, False  # (the Router's: every deployment is cooling down)
    if isinstance(exc, (litellm.Timeout, asyncio.TimeoutError, TimeoutError)):
        return "timeout", True, False
    status = getattr(exc, "status_code", None)
    if isinstance(exc, litellm.AuthenticationError) or status == 401 or _MISSING_KEY.search(str(exc)[:2000]):
        return "auth", False, True
    if isinstance(exc, litellm.PermissionDeniedError) or status == 403:
        return "permission", False, True
    if isinstance(exc, litellm.NotFoundError):
        return "not_found", False, True
    if isinstance(exc, (litellm.ContextWindowExceededError, litellm.ContentPolicyViolationError)):
        return "bad_request", False, False  # this trial only
    if isinstance(exc, litellm.BadRequestError):
        return "bad_request", False, True
    if isinstance(exc, (litellm.InternalServerError, litellm.ServiceUnavailableError, litellm.BadGatewayError)):
        return "server", True, False
    if isinstance(exc, litellm.APIConnectionError):
        return "connection", True, False
    if isinstance(status, int):
        if status == 429:
            return "rate_limit", True, False
        if status in (408, 409) or status >= 500:
            return "server", True, False
        if status in (401, 403):
            return "auth", False, True
        if 400 <= status < 500:
            return "bad_request", False, True
    return "error", True, False


def retry_after(exc: BaseException) -> Optional[float]:
    """Seconds the server asked us to wait (Retry-After / retry-after-ms), if any."""
    cooldown = getattr(exc, "cooldown_time", None)  # litellm Router: all deployments cooling down
    if isinstance(cooldown, (int, float)):
        return max(0.0, float(cooldown))
    headers = None
    for attr in ("litellm_response_headers", "headers"):
        headers = getattr(exc, attr, None)
        if headers:
            break
    if not headers:
        resp = getattr(exc, "response", None)
        headers = getattr(resp, "headers", None)
    if not headers:
        return None
    try:
        ms = headers.get("retry-after-ms")
        if ms is not None:
            return max(0.0, float(ms) / 1000.0)
        value = headers.get("retry-after")
    except Exception:
        return None
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        try:
            return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
        except Exception:
            return None


# ---------------------------------------------------------------- rate limits


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

    def __init__(self, rpm: Optional[float] = None, tpm: Optional[float] = None):
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


# ---------------------------------------------------------------- calls


@dataclass(slots=True)
class Call:
    trial_id: str
    model: str  # the study's model name (what is stored)
    target: str  # the model string handed to litellm
    messages: list
    kwargs: dict  # everything else passed to litellm.acompletion
    answer: dict
    conditions: list
    est_tokens: int
    est_cost: float
    cacheable: bool
    cache_key: str


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

    def limited(self, started: float, wait: Optional[float]) -> None:
        now = time.monotonic()
        if started >= self.last_cut:
            self.window = max(1.0, self.window / 2.0)
            self.last_cut = now
            self.cuts += 1
        self.pause_until = max(self.pause_until, now + (wait if wait is not None else 0.0))


@dataclass
class ModelState:
    name: str
    limiter: RateLimiter
    price_in: float = 0.0
    price_out: float = 0.0
    stopped: Optional[str] = None
    consecutive_failures: int = 0
    max_concurrency: Optional[int] = None  # e.g. 1 for the embedded model (one call at a time)
    _gate: Optional[asyncio.Semaphore] = None
    complete: Optional[Callable] = None  # instead of litellm.acompletion (e.g. a Router's)
    inflight: int = 0  # calls of this model in flight (for the throttle's first window)
    throttle: Optional[Throttle] = None  # engaged by the first 429

    @property
    def gate(self) -> Optional[asyncio.Semaphore]:
        if self.max_concurrency and self._gate is None:
            self._gate = asyncio.Semaphore(self.max_concurrency)
        return self._gate


@dataclass
class Outcome:
    """What one call produced (before it becomes a store row)."""

    text: Optional[str] = None
    probs: Optional[dict] = None
    prob_mass: Optional[float] = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0
    attempts: int = 0
    cache_hit: bool = False
    error: Optional[str] = None
    error_kind: Optional[str] = None


def build_row(call: Call, out: Outcome, scrub: Callable[[str], str]) -> tuple:
    """A store row (ROW_FIELDS order) from a call and its outcome."""
    if out.text is None:  # the call failed
        return (
            call.trial_id, call.model, 0, None, None, None, None, None, None,
            scrub(out.error or "failed"), "failed", out.prompt_tokens, out.completion_tokens,
            out.cost, out.latency, int(out.cache_hit), out.attempts, out.error_kind, time.time(),
        )  # fmt: skip
    parsed = parse_answer(out.text, call.answer, call.conditions)
    valid, value, label, error = parsed.valid, parsed.value, parsed.label, parsed.error
    probs_json = None
    if out.probs is not None:
        probs_json = json.dumps(out.probs, sort_keys=True)
        labels = list(call.answer.get("labels") or [])
        if labels and not call.answer.get("per_condition") and call.answer.get("type") in ("binary", "categorical", "likert"):
            total = sum(float(out.probs.get(lab, 0.0)) for lab in labels)
            if total > 0:
                best = max(labels, key=lambda lab: float(out.probs.get(lab, 0.0)))
                if call.answer.get("type") == "binary":
                    value = float(out.probs.get(labels[0], 0.0)) / total
                elif not valid:
                    value = float(labels.index(best))
                    if call.answer.get("type") == "likert":
                        low = call.answer.get("low")
                        value = float((low if low is not None else 1) + labels.index(best))
                if not valid:
                    label = best
                valid, error = True, None
    cv = json.dumps(parsed.condition_values, sort_keys=True) if parsed.condition_values is not None else None
    status = "ok" if valid else "invalid"
    return (
        call.trial_id, call.model, int(valid), value, label, probs_json, out.prob_mass, cv,
        out.text, error, status, out.prompt_tokens, out.completion_tokens, out.cost,
        out.latency, int(out.cache_hit), out.attempts, None if valid else "unparseable", time.time(),
    )  # fmt: skip


# ---------------------------------------------------------------- writer


class Writer:
    """Buffers store rows (and cache rows) and commits them every `interval` s or `batch` rows."""

    def __init__(self, store, cache=None, interval: float = 0.2, batch: int = 64):
        self.store = store
        self.cache = cache
        self.interval = interval
        self.batch = batch
        self.rows: list[tuple] = []
        self.cache_rows: list[tuple] = []
        self._task: Optional[asyncio.Task] = None
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._soon = False
        self.written = 0

    def add(self, row: tuple, cache_row: Optional[tuple] = None) -> None:
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
            rows, self.cache_rows = self.cache_rows, []
            try:
                self.cache.put_many(rows)
            except Exception:  # the cache is an optimisation; the store is the record
                pass

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
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self.flush()


# ---------------------------------------------------------------- scheduler


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


class Scheduler:
    def __init__(
        self,
        calls: list[Call],
        models: dict[str, ModelState],
        writer: Writer,
        concurrency: int = 8,
        retry: Optional[RetryPolicy] = None,
        max_cost: Optional[float] = None,
        spent: float = 0.0,
        stats: Optional[Stats] = None,
        on_message: Optional[Callable[[str], None]] = None,
        scrub: Optional[Callable[[str], str]] = None,
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
        self.budget_stop: Optional[str] = None
        self._next = 0

    # -- the retry machinery
    def _wait(self, state) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self._backoff(state.attempt_number, exc)

    def _wait_after_first(self, state) -> float:
        """tenacity's wait when it takes over after the first attempt (its attempt 1 is our 2)."""
        exc = state.outcome.exception() if state.outcome is not None else None
        return self._backoff(state.attempt_number + 1, exc)

    def _backoff(self, n: int, exc: Optional[BaseException]) -> float:
        """Seconds to wait after failed attempt `n` (1-based)."""
        p = self.retry
        base = min(p.max_wait, p.initial_wait * (2 ** (n - 1)))
        base += random.random() * p.jitter * p.initial_wait
        ra = retry_after(exc) if exc is not None else None
        if ra is not None:  # honour Retry-After: never retry sooner than the server asked
            return max(base, min(ra, p.max_retry_after))
        return base

    def _should_retry(self, exc: BaseException) -> bool:
        kind, transient, _ = classify(exc)
        if transient:
            self.stats.retries += 1
            self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
        return transient

    async def _call(self, call: Call, state: ModelState) -> Outcome:
        import litellm

        attempts = 0
        t0 = time.monotonic()

        async def attempt():
            nonlocal attempts
            if state.stopped:
                raise ModelStopped(state.stopped)
            gate = state.gate
            if gate is None:
                attempts += 1
                throttle = state.throttle
                if throttle is not None:
                    return await self._throttled(call, state, throttle)
                await state.limiter.acquire(call.est_tokens)
                state.inflight += 1
                try:
                    return await (state.complete or litellm.acompletion)(model=call.target, messages=call.messages, **call.kwargs)
                except Exception as exc:
                    if classify(exc)[0] == "rate_limit":
                        self._engage(state).limited(t0, self._pause(exc))
                    raise
                finally:
                    state.inflight -= 1
            async with gate:  # FIFO: calls reach the model in the order they were taken
                if state.stopped:
                    raise ModelStopped(state.stopped)
                attempts += 1
                await state.limiter.acquire(call.est_tokens)
                return await (state.complete or litellm.acompletion)(model=call.target, messages=call.messages, **call.kwargs)

        try:
            try:  # the first attempt directly: tenacity's bookkeeping only once a call fails
                resp = await attempt()
            except Exception as first:  # noqa: BLE001
                if not self._should_retry(first) or self.retry.max_attempts <= 1:
                    raise
                await asyncio.sleep(self._backoff(1, first))
                retrying = AsyncRetrying(
                    stop=stop_after_attempt(self.retry.max_attempts - 1),
                    wait=self._wait_after_first,
                    retry=retry_if_exception(self._should_retry),
                    reraise=True,
                )
                resp = await retrying(attempt)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a recorded row
            kind, transient, stops = classify(exc)
            if transient and kind in self.stats.errors:  # the last attempt was not a retry
                self.stats.retries -= 1
                self.stats.errors[kind] -= 1
            msg = f"{type(exc).__name__}: {exc}"
            if stops:
                self._stop_model(state, kind, exc)
            return Outcome(error=msg[:2000], error_kind=kind, attempts=attempts, latency=time.monotonic() - t0)
        latency = time.monotonic() - t0
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
            attempts=attempts,
        )

    def _pause(self, exc: BaseException) -> Optional[float]:
        ra = retry_after(exc)
        return min(ra, self.retry.max_retry_after) if ra is not None else self.retry.initial_wait

    def _engage(self, state: ModelState) -> Throttle:
        if state.throttle is None:
            state.throttle = Throttle(state.inflight, self.concurrency)
            self.on_message(f"model {state.name} is rate limited (429): adapting its calls in flight")
        return state.throttle

    async def _throttled(self, call: Call, state: ModelState, throttle: Throttle):
        import litellm  # noqa: F401

        started = await throttle.enter()
        try:
            await state.limiter.acquire(call.est_tokens)
            resp = await (state.complete or litellm.acompletion)(model=call.target, messages=call.messages, **call.kwargs)
        except Exception as exc:
            if classify(exc)[0] == "rate_limit":
                throttle.limited(started, self._pause(exc))
            raise
        finally:
            await throttle.leave()
        throttle.success()
        return resp

    def _stop_model(self, state: ModelState, kind: str, exc: BaseException) -> None:
        if state.stopped:
            return
        hint = {
            "auth": "check the API key (e.g. the provider's *_API_KEY environment variable)",
            "permission": "the API key is not allowed to use this model",
            "not_found": "check the model name",
            "bad_request": "the provider rejected the request; check the model name and its params",
        }.get(kind, "")
        detail = self.scrub(str(exc)).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
        state.stopped = f"model {state.name} stopped ({kind}): {detail}" + (f" -- {hint}" if hint else "")
        self.on_message(state.stopped)

    # -- workers
    def _take(self) -> Optional[Call]:
        if self._next >= len(self.calls):
            return None
        call = self.calls[self._next]
        self._next += 1
        return call

    async def _worker(self) -> None:
        stats = self.stats
        while True:
            call = self._take()
            if call is None:
                return
            state = self.models[call.model]
            if state.stopped or self.budget_stop:
                stats.skipped += 1
                continue
            if self.max_cost is not None and call.est_cost > 0:
                if self.spent + self.reserved + call.est_cost > self.max_cost + 1e-12:
                    self.budget_stop = (
                        f"stopped before exceeding --max-cost ${self.max_cost:.4f} "
                        f"(spent ${self.spent:.4f}, in flight ${self.reserved:.4f})"
                    )
                    self.on_message(self.budget_stop)
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
            self.spent += out.cost
            row = build_row(call, out, self.scrub)
            cache_row = None
            if call.cacheable and out.text is not None:
                cache_row = (call.cache_key, call.model, out.text, row[5], out.prob_mass, out.prompt_tokens, out.completion_tokens, out.cost)
            self.writer.add(row, cache_row)
            self._count(row, out)
            if out.text is None:
                state.consecutive_failures += 1
                limit = self.retry.max_consecutive_failures
                if limit and state.consecutive_failures >= limit and not state.stopped:
                    state.stopped = (
                        f"model {state.name} stopped after {state.consecutive_failures} calls in a row "
                        f"failed after retries; last error: {self.scrub(out.error or '')[:300]}"
                    )
                    self.on_message(state.stopped)
            else:
                state.consecutive_failures = 0

    def _count(self, row: tuple, out: Outcome) -> None:
        s = self.stats
        s.done += 1
        status = row[10]
        if status == "ok":
            s.ok += 1
        elif status == "invalid":
            s.invalid += 1
        else:
            s.failed += 1
            kind = out.error_kind or "error"
            s.errors[kind] = s.errors.get(kind, 0) + 1
        s.cost += out.cost
        s.prompt_tokens += out.prompt_tokens
        s.completion_tokens += out.completion_tokens
        if out.cache_hit:
            s.cache_hits += 1

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
