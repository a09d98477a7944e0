"""Retry policy: which failures are transient, how long to wait, when a model is stopped.

`classify(exc)` sorts an exception raised by a model call into (kind, transient,
stops_model): transient failures (429, 5xx, timeouts, connection errors, malformed bodies,
empty answers) are retried with exponential backoff and jitter (`RetryPolicy.backoff`),
never sooner than the server's `Retry-After` (`retry_after`); permanent ones
(authentication, unknown model, bad request) stop that model at once.

Budgets, per call: `max_attempts` requests that failed or came back empty (a 429 is not
one of them); 429s have their own budget, `max_rate_limit_wait` seconds of waiting in
all, each wait the server's Retry-After (capped by `max_retry_after`) or a short backoff;
an empty or blank answer is asked again up to `empty_attempts` times before it is kept
(as `failed`, kind `empty`: never cached, asked again by the next run). Every attempt has a wall-clock deadline, `timeout` (or the
model's own `timeout` param) plus `DEADLINE_SLACK`: a server that sends headers and then
trickles its body cannot hold it longer. A model whose attempts keep timing out with no answer in between
(`hang_timeouts` in a row, or 3 in a row and no answer for `hang_seconds`) is stopped as
not answering. The scheduler applies the policy; this module only decides.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime


@dataclass
class RetryPolicy:
    max_attempts: int = 5
    initial_wait: float = 1.0  # seconds before the first retry (doubles each time)
    max_wait: float = 60.0  # cap of one backoff wait
    jitter: float = 1.0  # up to this many seconds (scaled by initial_wait) added at random
    max_retry_after: float = 120.0  # cap on a server's Retry-After
    timeout: float = 120.0  # per-attempt request timeout (seconds)
    max_consecutive_failures: int = 20  # stop a model after this many failed calls in a row
    max_rate_limit_wait: float = 900.0  # seconds one call may wait on 429s in all (429s are not attempts)
    empty_attempts: int = 3  # an empty/blank answer is asked this many times before it is kept as failed
    hang_timeouts: int = 8  # attempts in a row timing out (no answer between): the model is not answering
    hang_seconds: float = 300.0  # ... or 3 in a row and no answer from the model for this long

    def backoff(self, n: int, exc: BaseException | None) -> float:
        """Seconds to wait after failed attempt `n` (1-based)."""
        base = min(self.max_wait, self.initial_wait * (2 ** (n - 1)))
        base += random.random() * self.jitter * self.initial_wait
        ra = retry_after(exc) if exc is not None else None
        if ra is not None:  # honour Retry-After: never retry sooner than the server asked
            return max(base, min(ra, self.max_retry_after))
        return base

    def rate_limit_wait(self, n: int, exc: BaseException) -> float:
        """Seconds to wait after the call's `n`-th 429 (1-based): the server's Retry-After
        (capped), else a backoff that stops growing after a few steps."""
        ra = retry_after(exc)
        if ra is not None:
            return min(ra, self.max_retry_after) + random.random() * 0.1 * self.initial_wait
        return min(self.max_wait, self.initial_wait * (2 ** min(n - 1, 4))) + random.random() * self.jitter * self.initial_wait

    def pause(self, exc: BaseException) -> float:
        """How long a 429 pauses every call of its model: the server's Retry-After (capped),
        else the first backoff step."""
        ra = retry_after(exc)
        return min(ra, self.max_retry_after) if ra is not None else self.initial_wait


class ModelStopped(Exception):
    """Raised instead of calling a model that was stopped while the call waited."""


class EmptyAnswer(Exception):
    """A 200 answer with no usable text (empty, blank, or no text characters at all)."""

    def __init__(self, response: object, text: str):
        super().__init__(f"empty answer {text[:40]!r}")
        self.response = response
        self.text = text


class RemoteFailure(Exception):
    """A model call's failure in a worker process (`workers.py`), classified there by
    `classify`: it carries the verdict, the server's Retry-After (as `cooldown_time`, which
    `retry_after` reads) and a malformed body (as the JSONDecodeError `raw_body` finds)."""

    def __init__(self, message: str, classified: tuple[str, bool, bool], wait: float | None = None, body: str | None = None):
        super().__init__(message)
        self.classified = classified
        self.cooldown_time = wait
        if body is not None:
            self.__cause__ = json.JSONDecodeError("malformed body", body, 0)


# seconds a deadline adds to the timeout: the client's own work (litellm imports the
# provider's SDK during a process's first call, ~0.7 s), so that alone never times out
DEADLINE_SLACK = 1.0
RAW_BODY_LIMIT = 20_000  # characters of a malformed body kept in the store


def raw_body(exc: BaseException) -> str | None:
    """The raw body of a response the client could not decode (malformed or truncated
    JSON), found in the exception's chain; None for any other failure."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, json.JSONDecodeError):
            return e.doc[:RAW_BODY_LIMIT]
        stack += [e.__cause__, e.__context__]
    return None


# litellm reports a missing API key as a 500 from the OpenAI client ("Missing credentials")
_MISSING_KEY = re.compile(r"missing credentials|api_key client option must be set|no api key provided|invalid api key|incorrect api key", re.I)


def classify(exc: BaseException) -> tuple[str, bool, bool]:
    """(kind, transient, stops_model) for an exception raised by a model call."""
    import litellm  # lazy: importing litellm takes seconds; reading a run never needs it

    if isinstance(exc, ModelStopped):
        return "stopped", False, False
    if isinstance(exc, RemoteFailure):  # classified in the worker process that made the call
        return exc.classified
    if isinstance(exc, EmptyAnswer):
        return "empty", True, False
    if isinstance(exc, litellm.RateLimitError) or type(exc).__name__ in ("RouterRateLimitError", "RouterRateLimitErrorBasic"):
        return "rate_limit", True, False  # (the Router's: every deployment is cooling down)
    if isinstance(exc, (litellm.Timeout, asyncio.TimeoutError, TimeoutError)):
        return "timeout", True, False
    if raw_body(exc) is not None:
        return "malformed", True, False  # a 200 whose body is not (whole) JSON
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
    return _classify_status(status)


def _classify_status(status: object) -> tuple[str, bool, bool]:
    """An exception litellm did not type: decide by its HTTP status, else transient."""
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


def retry_after(exc: BaseException) -> float | None:
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
