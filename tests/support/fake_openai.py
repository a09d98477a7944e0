"""A local fake OpenAI-compatible chat server for tests and benchmarks (no network, no keys).

    with FakeOpenAI(latency=0.01, faults={"429": 0.2, "500": 0.1}) as server:
        litellm.completion(model="openai/fake-model", api_base=server.api_base,
                           api_key="sk-fake", messages=[...])
        server.count(messages)    # calls the server received for these messages
        server.total              # all calls

Serves POST /v1/chat/completions on 127.0.0.1 (random free port) from a thread. It counts
calls per request content (a hash of the messages) and can inject faults, decided
deterministically from (content, attempt number) so a test is reproducible:

- "429": rate limited, with a `Retry-After` header (`retry_after` seconds);
- "500": internal server error; "503": service unavailable;
- "timeout": sleeps `timeout_sleep` seconds before answering (the client should time out);
- "malformed": HTTP 200 with a body that is not JSON;
- "truncated": HTTP 200 whose JSON body is cut short;
- "trickle": HTTP 200 headers at once, then the body one byte every `trickle_interval`
  seconds (a client's read timeout never fires: only a wall-clock deadline ends it);
- "empty": HTTP 200, a well-formed completion whose content is "" (a provider glitch);
- "hang": reads the request and never answers (until the client goes away).

Per request content, `fault_counts[key]` counts the faults sent (e.g. how many 429s one
trial got).

`faults` maps a fault to its probability per call; `fail_first` makes every request fail its
first N attempts with the given fault (e.g. {"429": 1}); `always_fail` is a substring: any
request containing it always gets HTTP 500; `status` forces one HTTP status on every call
(e.g. 401 to test authentication failures). The answer text comes from `responder(messages)`
(default: "yes" or "no" from a hash of the content). The server stops by itself after
`lifetime` seconds.

For benchmarks and drills (issue #6) it also has:

- a latency distribution: `latency` is the mean; `latency_dist` is "fixed" (default),
  "uniform" (latency +- latency_spread), "exponential" or "lognormal" (sigma = latency_spread
  as a fraction of the mean); drawn per call from a seeded RNG;
- fixed token counts (`prompt_tokens`, `completion_tokens`; default: ~chars/4);
- a server-side rate limit: `rate_limit_rps` (token bucket, burst `rate_limit_burst`):
  requests beyond it get 429 with the true wait in `retry-after-ms` and whole seconds in
  `Retry-After` (as OpenAI sends them); injected "429" faults use `retry_after`;
- "paid" calls: a call is paid when the server delivered a complete 200 answer to a client
  that was still connected (a client killed while its request slept is not charged), counted
  per request content in `paid`;
- `GET /stats`: the counters as JSON (total, paid, faults, rate limited, per-content counts
  with `?keys=1`), so a benchmark can read them from another process.

The OpenAI Files and Batch endpoints (`/v1/files`, `/v1/batches`) are served by
`tests/support/fake_batches.py` (`server.batches`; options `batch_after`, `batch_item_fail`,
`batch_end`, `batch_partial`; its counters under "batches" in `GET /stats`).

Run in its own process (so its CPU does not count against a benchmark's client):

    python -m tests.support.fake_openai --port 0 --latency-ms 50 --lifetime 600

prints `port N` then `serving http://127.0.0.1:N/v1` and exits by itself (hard) after
`--lifetime` seconds or `--max-requests` requests. `ServerProcess` (below) does that from Python.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

__all__ = ["FakeOpenAI", "ServerProcess", "content_key"]


def content_key(messages) -> str:
    """The key the server counts calls by: a hash of the messages."""
    text = json.dumps(messages, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _unit(*parts) -> float:
    h = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def default_responder(messages) -> str:
    return "yes" if _unit("answer", content_key(messages)) < 0.5 else "no"


class FakeOpenAI:
    def __init__(
        self,
        latency: float = 0.0,
        faults: dict | None = None,
        fail_first: dict | None = None,
        always_fail: str | None = None,
        status: int | None = None,
        retry_after: float | None = 0.1,
        timeout_sleep: float = 3.0,
        responder: Callable | None = None,
        lifetime: float = 600.0,
        seed: int = 0,
        port: int = 0,
        latency_dist: str = "fixed",
        latency_spread: float = 0.0,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        rate_limit_rps: float | None = None,
        rate_limit_burst: float | None = None,
        max_requests: int | None = None,
        trickle_interval: float = 0.5,
        batch_after: float = 0.0,
        batch_item_fail: float = 0.0,
        batch_end: str = "completed",
        batch_partial: float = 0.5,
    ):
        if latency_dist not in ("fixed", "uniform", "exponential", "lognormal"):
            raise ValueError(f"unknown latency_dist {latency_dist!r}")
        self.latency = latency
        self.latency_dist = latency_dist
        self.latency_spread = latency_spread
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens
        self.rate_limit_rps = rate_limit_rps
        self.rate_limit_burst = rate_limit_burst if rate_limit_burst is not None else (rate_limit_rps or 0.0)
        self.max_requests = max_requests
        self._rng = random.Random(seed)
        self._bucket_level = float(self.rate_limit_burst or 1.0)
        self._bucket_stamp = time.monotonic()
        self.paid: Counter = Counter()  # content key -> complete 200 answers delivered
        self.rate_limited = 0  # 429s sent by the rate limit (not by injected faults)
        self.abandoned = 0  # requests whose client disconnected before the answer
        self._first_paid: float | None = None
        self._last_paid = 0.0
        self.faults = dict(faults or {})
        self.fail_first = dict(fail_first or {})
        self.always_fail = always_fail
        self.status = status
        self.retry_after = retry_after
        self.timeout_sleep = timeout_sleep
        self.responder = responder or default_responder
        self.lifetime = lifetime
        self.seed = seed
        self.counts: Counter = Counter()  # content key -> calls received
        self.faults_sent: Counter = Counter()  # fault -> times injected
        self.fault_counts: dict[str, Counter] = {}  # content key -> fault -> times injected
        self.trickle_interval = trickle_interval
        self.auth_headers: list = []  # Authorization headers seen (for secret tests)
        self.bodies: list = []  # raw request bodies (bounded)
        self._lock = threading.Lock()
        self._port = port
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timer: threading.Timer | None = None
        from tests.support.fake_batches import FakeBatches  # the Files and Batch endpoints

        self.batches = FakeBatches(self, after=batch_after, item_fail=batch_item_fail, end=batch_end, partial=batch_partial)

    # ---------------------------------------------------------------- control
    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return self._server.server_address[1]

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def count(self, messages) -> int:
        with self._lock:
            return self.counts[content_key(messages)]

    def snapshot(self) -> Counter:
        with self._lock:
            return Counter(self.counts)

    def stats(self, keys: bool = False) -> dict:
        """The counters as a JSON-able dict (what `GET /stats` returns)."""
        with self._lock:
            out = {
                "total": sum(self.counts.values()),
                "distinct": len(self.counts),
                "paid_total": sum(self.paid.values()),
                "paid_distinct": len(self.paid),
                "paid_repeated": sum(v - 1 for v in self.paid.values() if v > 1),
                "faults": dict(self.faults_sent),
                "rate_limited": self.rate_limited,
                "abandoned": self.abandoned,
                # seconds from the first to the last answer delivered (server-side throughput)
                "paid_span": (self._last_paid - self._first_paid) if self._first_paid is not None else 0.0,
            }
            if keys:
                out["counts"] = dict(self.counts)
                out["paid"] = dict(self.paid)
                out["fault_counts"] = {k: dict(v) for k, v in self.fault_counts.items()}
        out["batches"] = self.batches.stats(keys)
        return out

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # headers and body go out in one write with TCP_NODELAY: otherwise Nagle's
            # algorithm holds the body until the client's delayed ACK (~40 ms a call)
            disable_nagle_algorithm = True

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if fake.batches.handle(self, "GET", self.path, b""):
                    return
                if self.path.split("?")[0].rstrip("/").endswith("/stats"):
                    self._json(200, fake.stats(keys="keys=1" in self.path))
                elif self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                if not fake.batches.handle(self, "POST", self.path, raw):
                    fake._handle(self, raw)

            def _json(self, code, obj, headers=None):
                body = json.dumps(obj).encode()
                self._send(code, body, headers)

            def _send(self, code, body: bytes, headers=None, content_length=None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(content_length if content_length is not None else len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self._headers_buffer.append(b"\r\n")  # end_headers, without its own flush
                data = b"".join(self._headers_buffer) + body
                self._headers_buffer = []
                try:
                    self.wfile.write(data)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # hundreds of clients connect at once in benchmarks

            def handle_error(self, request, client_address):  # a killed client is not news
                if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
                    return
                super().handle_error(request, client_address)

        self._server = Server(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._server is not None:
            server, self._server = self._server, None
            self._stopped_port = server.server_address[1]
            threading.Thread(target=server.shutdown, daemon=True).start()
            server.server_close()

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- serving
    def _pick_fault(self, key: str, attempt: int, text: str) -> str | None:
        if self.always_fail and self.always_fail in text:
            return "500"
        budget = 0
        for fault, n in self.fail_first.items():
            budget += int(n)
            if attempt <= budget:
                return fault
        u = _unit(self.seed, key, attempt)
        acc = 0.0
        for fault, p in self.faults.items():
            acc += float(p)
            if u < acc:
                return fault
        return None

    def _sleep_latency(self) -> None:
        mean = self.latency
        if not mean:
            return
        if self.latency_dist == "fixed":
            delay = mean
        else:
            with self._lock:
                rng = self._rng
                if self.latency_dist == "uniform":
                    delay = rng.uniform(mean - self.latency_spread, mean + self.latency_spread)
                elif self.latency_dist == "exponential":
                    delay = rng.expovariate(1.0 / mean)
                else:  # lognormal with the given mean; sigma = latency_spread
                    sigma = self.latency_spread or 0.5
                    delay = rng.lognormvariate(math.log(mean) - sigma * sigma / 2, sigma)
        time.sleep(max(0.0, delay))

    def _rate_limited(self) -> float | None:
        """None if the call may go on, else the seconds until the bucket has a token."""
        if not self.rate_limit_rps:
            return None
        with self._lock:
            now = time.monotonic()
            cap = max(1.0, float(self.rate_limit_burst or 1.0))
            self._bucket_level = min(cap, self._bucket_level + (now - self._bucket_stamp) * self.rate_limit_rps)
            self._bucket_stamp = now
            if self._bucket_level >= 1.0:
                self._bucket_level -= 1.0
                return None
            self.rate_limited += 1
            return (1.0 - self._bucket_level) / self.rate_limit_rps

    @staticmethod
    def _client_gone(h) -> bool:
        """True if the client closed its connection (EOF) while we were sleeping."""
        try:
            sock = h.connection
            readable, _, _ = select.select([sock], [], [], 0)
            if not readable:
                return False
            return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def _handle(self, h, raw: bytes) -> None:
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            h._json(400, {"error": {"message": "invalid JSON body", "type": "invalid_request_error"}})
            return
        messages = body.get("messages") or []
        key = content_key(messages)
        with self._lock:
            self.counts[key] += 1
            attempt = self.counts[key]
            self.auth_headers.append(h.headers.get("Authorization"))
            if len(self.bodies) < 10000:
                self.bodies.append(raw.decode("utf-8", "replace"))
            n_total = sum(self.counts.values()) if self.max_requests else 0
        if self.max_requests and n_total >= self.max_requests:
            threading.Thread(target=self.stop, daemon=True).start()
        wait = self._rate_limited()
        if wait is not None:  # like OpenAI: the true wait in retry-after-ms, whole seconds in Retry-After
            self._note("rate_limit")
            headers = {"retry-after-ms": str(max(1, int(wait * 1000 + 0.999))), "Retry-After": str(max(1, int(wait + 0.999)))}
            h._json(429, {"error": {"message": "fake server: rate limit exceeded", "type": "rate_limit_error"}}, headers)
            return
        self._sleep_latency()
        if self.status is not None:
            self._note(str(self.status))
            kind = {401: "invalid_request_error", 403: "permission_error", 404: "not_found_error"}.get(self.status, "error")
            h._json(self.status, {"error": {"message": f"fake server: status {self.status}", "type": kind, "code": str(self.status)}})
            return
        text_all = json.dumps(messages)
        fault = self._pick_fault(key, attempt, text_all)
        if fault:
            self._note(fault, key)
        if fault == "hang":
            self._hang(h)
            return
        if fault == "429":
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            h._json(429, {"error": {"message": "fake server: rate limited", "type": "rate_limit_error"}}, headers)
            return
        if fault in ("500", "503"):
            h._json(int(fault), {"error": {"message": f"fake server: error {fault}", "type": "server_error"}})
            return
        if fault == "timeout":
            time.sleep(self.timeout_sleep)
        answer = "" if fault == "empty" else self.responder(messages)
        prompt_tokens = self.prompt_tokens if self.prompt_tokens is not None else max(1, len(text_all) // 4)
        completion_tokens = self.completion_tokens if self.completion_tokens is not None else max(1, len(answer) // 4)
        resp = {
            "id": f"chatcmpl-{key}-{attempt}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "fake-model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens, "total_tokens": prompt_tokens + completion_tokens},
        }
        data = json.dumps(resp).encode()
        if fault == "malformed":
            h._send(200, b"<html>upstream proxy error</html>")
            return
        if fault == "truncated":
            h._send(200, data[: len(data) // 2])
            return
        if fault == "trickle":
            self._trickle(h, data)
            return
        if self._client_gone(h):  # the client died while we slept: nothing delivered, not paid
            with self._lock:
                self.abandoned += 1
            return
        with self._lock:
            self.paid[key] += 1
            now = time.monotonic()
            if self._first_paid is None:
                self._first_paid = now
            self._last_paid = now
        h._send(200, data)

    def _note(self, fault: str, key: str | None = None) -> None:
        with self._lock:
            self.faults_sent[fault] += 1
            if key is not None:
                self.fault_counts.setdefault(key, Counter())[fault] += 1

    def _hang(self, h) -> None:
        """Never answer: wait until the client goes away (or the server stops)."""
        while self._server is not None and not self._client_gone(h):
            time.sleep(0.05)

    def _trickle(self, h, data: bytes) -> None:
        """Headers now, then the body a byte at a time: alive, but never done in time."""
        h.send_response(200)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for i in range(len(data)):
            try:
                h.wfile.write(data[i : i + 1])
                h.wfile.flush()
            except (BrokenPipeError, ConnectionResetError, OSError):
                return
            if self._server is None:
                return
            time.sleep(self.trickle_interval)


class ServerProcess:
    """The fake server in a child process (`python -m tests.support.fake_openai`).

        with ServerProcess(latency_ms=50, lifetime=300) as srv:
            srv.api_base, srv.stats()

    Extra keyword arguments become CLI flags (`fault={"500": 0.1}` -> `--fault 500=0.1`).
    The child exits by itself after `lifetime` seconds even if this process dies."""

    def __init__(self, python: str | None = None, lifetime: float = 600.0, **options):
        self.python = python or sys.executable
        self.lifetime = lifetime
        self.options = options
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ServerProcess:
        cmd = [self.python, "-m", "tests.support.fake_openai", "--port", "0", "--lifetime", str(self.lifetime)]
        for name, value in self.options.items():
            if value is None or value is False:
                continue
            flag = "--" + name.replace("_", "-")
            if isinstance(value, dict):
                for k, v in value.items():
                    cmd += [flag, f"{k}={v}"]
            elif value is True:
                cmd.append(flag)
            else:
                cmd += [flag, str(value)]
        repo = str(Path(__file__).resolve().parents[2])  # `tests.support` importable from any cwd
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        line = self.proc.stdout.readline()
        if not line.startswith("port "):
            self.stop()
            raise RuntimeError(f"fake server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def stats(self, keys: bool = False) -> dict:
        url = f"http://127.0.0.1:{self.port}/stats" + ("?keys=1" if keys else "")
        with urllib.request.urlopen(url, timeout=30) as resp:
            return json.loads(resp.read())

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self) -> ServerProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv=None) -> None:  # pragma: no cover - exercised through ServerProcess
    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server on 127.0.0.1 (stops by itself)")
    parser.add_argument("--port", type=int, default=0, help="0: a free port (printed)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="mean latency per call")
    parser.add_argument("--latency", type=float, default=None, help="mean latency in seconds (alternative)")
    parser.add_argument("--latency-dist", default="fixed", choices=["fixed", "uniform", "exponential", "lognormal"])
    parser.add_argument("--latency-spread", type=float, default=0.0, help="uniform: +- seconds; lognormal: sigma")
    parser.add_argument("--prompt-tokens", type=int, default=None)
    parser.add_argument("--completion-tokens", type=int, default=None)
    parser.add_argument("--fault", action="append", default=[], help="FAULT=P, e.g. 500=0.1, timeout=0.05, truncated=0.05, 429=0.1")
    parser.add_argument("--rate-limit-rps", type=float, default=None, help="429 beyond this many requests/s")
    parser.add_argument("--rate-limit-burst", type=float, default=None)
    parser.add_argument("--retry-after", type=float, default=0.1, help="Retry-After seconds on 429")
    parser.add_argument("--timeout-sleep", type=float, default=3.0, help="seconds the 'timeout' fault sleeps")
    parser.add_argument("--trickle-interval", type=float, default=0.5, help="seconds between the bytes of a 'trickle' body")
    parser.add_argument("--fail-first", action="append", default=[], help="FAULT=N: every request's first N attempts get FAULT")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lifetime", type=float, default=600.0, help="hard limit: exit after this many seconds")
    parser.add_argument("--max-requests", type=int, default=None, help="exit after this many requests")
    parser.add_argument("--batch-after", type=float, default=0.0, help="seconds a batch takes to end")
    parser.add_argument("--batch-item-fail", type=float, default=0.0, help="fraction of batch lines that fail")
    parser.add_argument("--batch-end", default="completed", choices=["completed", "expired", "cancelled", "failed"])
    parser.add_argument("--batch-partial", type=float, default=0.5, help="expired/cancelled: fraction of lines answered")
    args = parser.parse_args(argv)
    faults = {}
    for item in args.fault:
        name, _, p = item.partition("=")
        faults[name] = float(p)
    fail_first = {}
    for item in args.fail_first:
        name, _, n = item.partition("=")
        fail_first[name] = int(n)
    latency = args.latency if args.latency is not None else args.latency_ms / 1000.0
    server = FakeOpenAI(
        latency=latency, latency_dist=args.latency_dist, latency_spread=args.latency_spread,
        prompt_tokens=args.prompt_tokens, completion_tokens=args.completion_tokens, faults=faults,
        rate_limit_rps=args.rate_limit_rps, rate_limit_burst=args.rate_limit_burst, retry_after=args.retry_after,
        timeout_sleep=args.timeout_sleep, seed=args.seed, lifetime=args.lifetime, port=args.port,
        max_requests=args.max_requests, trickle_interval=args.trickle_interval, fail_first=fail_first,
        batch_after=args.batch_after, batch_item_fail=args.batch_item_fail, batch_end=args.batch_end,
        batch_partial=args.batch_partial,
    ).start()  # fmt: skip
    # hard limit, whatever the serving threads do
    killer = threading.Timer(args.lifetime + 2.0, lambda: os._exit(0))
    killer.daemon = True
    killer.start()
    print(f"port {server.port}", flush=True)
    print(f"serving {server.api_base}", flush=True)
    try:
        while server._server is not None:
            time.sleep(0.2)
    except KeyboardInterrupt:
        server.stop()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()
