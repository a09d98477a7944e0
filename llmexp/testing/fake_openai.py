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
- "truncated": HTTP 200 whose JSON body is cut short.

`faults` maps a fault to its probability per call; `fail_first` makes every request fail its
first N attempts with the given fault (e.g. {"429": 1}); `always_fail` is a substring: any
request containing it always gets HTTP 500; `status` forces one HTTP status on every call
(e.g. 401 to test authentication failures). The answer text comes from `responder(messages)`
(default: "yes" or "no" from a hash of the content). The server stops by itself after
`lifetime` seconds. Run standalone: `python -m llmexp.testing.fake_openai --port 8000`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

__all__ = ["FakeOpenAI", "content_key"]


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
        faults: Optional[dict] = None,
        fail_first: Optional[dict] = None,
        always_fail: Optional[str] = None,
        status: Optional[int] = None,
        retry_after: Optional[float] = 0.1,
        timeout_sleep: float = 3.0,
        responder: Optional[Callable] = None,
        lifetime: float = 600.0,
        seed: int = 0,
        port: int = 0,
    ):
        self.latency = latency
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
        self.auth_headers: list = []  # Authorization headers seen (for secret tests)
        self.bodies: list = []  # raw request bodies (bounded)
        self._lock = threading.Lock()
        self._port = port
        self._server: Optional[ThreadingHTTPServer] = None
        self._thread: Optional[threading.Thread] = None
        self._timer: Optional[threading.Timer] = None

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

    def start(self) -> "FakeOpenAI":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                if self.path.rstrip("/").endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found", "type": "invalid_request_error"}})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
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
                self.end_headers()
                try:
                    self.wfile.write(body)
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
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

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---------------------------------------------------------------- serving
    def _pick_fault(self, key: str, attempt: int, text: str) -> Optional[str]:
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
        if self.latency:
            time.sleep(self.latency)
        if self.status is not None:
            self._note(str(self.status))
            kind = {401: "invalid_request_error", 403: "permission_error", 404: "not_found_error"}.get(self.status, "error")
            h._json(self.status, {"error": {"message": f"fake server: status {self.status}", "type": kind, "code": str(self.status)}})
            return
        text_all = json.dumps(messages)
        fault = self._pick_fault(key, attempt, text_all)
        if fault:
            self._note(fault)
        if fault == "429":
            headers = {"Retry-After": str(self.retry_after)} if self.retry_after is not None else {}
            h._json(429, {"error": {"message": "fake server: rate limited", "type": "rate_limit_error"}}, headers)
            return
        if fault in ("500", "503"):
            h._json(int(fault), {"error": {"message": f"fake server: error {fault}", "type": "server_error"}})
            return
        if fault == "timeout":
            time.sleep(self.timeout_sleep)
        answer = self.responder(messages)
        prompt_tokens = max(1, len(text_all) // 4)
        completion_tokens = max(1, len(answer) // 4)
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
        h._send(200, data)

    def _note(self, fault: str) -> None:
        with self._lock:
            self.faults_sent[fault] += 1


def main() -> None:  # pragma: no cover - manual use
    import argparse

    parser = argparse.ArgumentParser(description="fake OpenAI-compatible server")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--lifetime", type=float, default=3600.0)
    args = parser.parse_args()
    server = FakeOpenAI(latency=args.latency, lifetime=args.lifetime, port=args.port).start()
    print(f"serving {server.api_base}", flush=True)
    try:
        while server._server is not None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":  # pragma: no cover
    main()
