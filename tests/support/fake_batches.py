"""The OpenAI Files and Batch endpoints of the fake server (`fake_openai.FakeOpenAI.batches`).

    with FakeOpenAI(batch_after=0.5, batch_item_fail=0.1) as server:
        ... litellm.acreate_file(..., api_base=server.api_base) / acreate_batch / aretrieve_batch ...
        server.batches.stats()   # files uploaded, batches created, results downloaded, paid lines

Serves, in OpenAI's shapes (what litellm 1.100.5 sends for `custom_llm_provider="openai"`):

- `POST /v1/files` (multipart: `purpose`, `file`) -> a file object;
- `POST /v1/batches` (`input_file_id`, `endpoint`, `completion_window`, `metadata`) -> a batch
  object, status "validating";
- `GET /v1/batches/{id}` -> the batch: "in_progress" with growing `request_counts` until
  `batch_after` seconds after its creation, then its end state (`batch_end`: "completed",
  "expired", "cancelled" or "failed"); the output file holds one line per answered request
  (`{"custom_id", "response": {"status_code": 200, "body": <chat.completion>}}`), the error
  file one line per failed request (a fraction `batch_item_fail`, decided from the custom id
  and how often it was submitted, so a retry succeeds; an expired or cancelled batch
  answers only the first `batch_partial` of its lines and reports the rest as
  `batch_expired` / `batch_cancelled`);
- `GET /v1/batches?limit=&after=` -> the batches, newest first (for reconciliation);
- `GET /v1/files/{id}/content` -> the file's bytes.

Anthropic's Message Batches are not served: litellm 1.100.5 can retrieve an Anthropic batch
but cannot create one (`litellm.batches.main.create_batch` has no "anthropic" branch), so
llmexp does not batch Anthropic models (see llmexp/providers/batching.py).

Counters (`stats()`, also under "batches" in `GET /stats`): files uploaded, batches created,
results downloaded, lines submitted per custom id, and lines *paid* per custom id (a line is
paid when its batch ends with an answer for it): `paid_repeated` > 0 means some request was
paid twice, `submitted_twice` counts custom ids in more than one batch that was not
rejected as a whole (legitimate: failed items are submitted again), and
`duplicate_batches` counts batches created again for an input file or metadata tag that
already had one (a submission paid twice: must stay 0).
"""

from __future__ import annotations

import email.parser
import json
import threading
import time
from collections import Counter
from typing import Any

__all__ = ["FakeBatches"]


def _multipart(content_type: str, raw: bytes) -> dict[str, bytes]:
    """The fields of a multipart/form-data body (name -> bytes)."""
    msg = email.parser.BytesParser().parsebytes(b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw)
    out: dict[str, bytes] = {}
    for part in msg.walk():
        name = part.get_param("name", header="content-disposition")
        if name:
            payload = part.get_payload(decode=True)
            out[str(name)] = payload if isinstance(payload, bytes) else b""
    return out


class FakeBatches:
    """Files and batches held in memory; answers come from the chat server's responder."""

    def __init__(self, fake: Any, after: float = 0.0, item_fail: float = 0.0, end: str = "completed", partial: float = 0.5):
        self.fake = fake
        self.after = after
        self.item_fail = item_fail
        self.end = end
        self.partial = partial
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict] = {}
        self.order: list[str] = []
        self.files_uploaded = 0
        self.batches_created = 0
        self.results_downloaded = 0
        self.retrieves = 0
        self.submitted: Counter = Counter()  # custom_id -> lines submitted in batches
        self.paid: Counter = Counter()  # custom_id -> answered lines of ended batches
        self.created_for: Counter = Counter()  # (metadata tag or input file) -> batches created for it
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- counters
    def stats(self, keys: bool = False) -> dict:
        """The counters, after every batch moved on by the clock: a provider runs (and
        bills) every batch it accepted, whether or not anyone polls it."""
        with self._lock:
            for batch in self.batches.values():
                if batch["status"] in ("validating", "in_progress"):
                    self._advance(batch)
            out = {
                "files_uploaded": self.files_uploaded,
                "batches_created": self.batches_created,
                "results_downloaded": self.results_downloaded,
                "retrieves": self.retrieves,
                "lines_submitted": sum(self.submitted.values()),
                "submitted_twice": sum(1 for v in self.submitted.values() if v > 1),
                "duplicate_batches": sum(v - 1 for v in self.created_for.values() if v > 1),
                "paid_total": sum(self.paid.values()),
                "paid_repeated": sum(v - 1 for v in self.paid.values() if v > 1),
                "states": dict(Counter(b["status"] for b in self.batches.values())),
            }
            if keys:
                out["paid"] = dict(self.paid)
                out["submitted"] = dict(self.submitted)
            return out

    # ---------------------------------------------------------------- routing
    def handle(self, h: Any, method: str, path: str, raw: bytes) -> bool:
        """Serve `path` if it is a files or batches endpoint; False otherwise."""
        parts = [p for p in path.split("?")[0].split("/") if p]
        if "files" not in parts and "batches" not in parts:
            return False
        rest = parts[parts.index("files" if "files" in parts else "batches") :]
        if method == "POST" and rest == ["files"]:
            h._json(200, self._upload(h.headers.get("Content-Type", ""), raw))
        elif method == "POST" and rest == ["batches"]:
            self._create(h, raw)
        elif method == "GET" and rest == ["batches"]:
            h._json(200, self._list(path))
        elif method == "GET" and len(rest) == 2 and rest[0] == "batches":
            self._retrieve(h, rest[1])
        elif method == "GET" and len(rest) == 3 and rest[0] == "files" and rest[2] == "content":
            self._content(h, rest[1])
        else:
            h._json(404, {"error": {"message": f"fake server: no {method} {path}", "type": "invalid_request_error"}})
        return True

    # ---------------------------------------------------------------- files
    def _upload(self, content_type: str, raw: bytes) -> dict:
        fields = _multipart(content_type, raw)
        data = fields.get("file", b"")
        with self._lock:
            self.files_uploaded += 1
            fid = f"file-{len(self.files) + 1:06d}"
            self.files[fid] = data
        return self._file_obj(fid, data, (fields.get("purpose") or b"batch").decode())

    @staticmethod
    def _file_obj(fid: str, data: bytes, purpose: str) -> dict:
        return {"id": fid, "object": "file", "bytes": len(data), "created_at": int(time.time()), "filename": f"{fid}.jsonl",
                "purpose": purpose, "status": "processed"}  # fmt: skip

    def _content(self, h: Any, fid: str) -> None:
        with self._lock:
            data = self.files.get(fid)
            if data is not None and fid.startswith(("file-out", "file-err")):
                self.results_downloaded += 1
        if data is None:
            h._json(404, {"error": {"message": f"no such file {fid}", "type": "invalid_request_error"}})
            return
        h.send_response(200)
        h.send_header("Content-Type", "application/octet-stream")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data)
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ---------------------------------------------------------------- batches
    def _create(self, h: Any, raw: bytes) -> None:
        body = json.loads(raw or b"{}")
        fid = body.get("input_file_id")
        with self._lock:
            data = self.files.get(fid)
            if data is None:
                h._json(400, {"error": {"message": f"no such file {fid}", "type": "invalid_request_error"}})
                return
            lines = [json.loads(x) for x in data.splitlines() if x.strip()]
            self.batches_created += 1
            self.created_for[json.dumps([fid, body.get("metadata") or {}], sort_keys=True)] += 1
            bid = f"batch_{self.batches_created:06d}"
            for line in lines:
                self.submitted[line.get("custom_id")] += 1
            self.batches[bid] = {
                "id": bid, "object": "batch", "endpoint": body.get("endpoint"), "input_file_id": fid,
                "completion_window": body.get("completion_window", "24h"), "status": "validating",
                "created_at": int(time.time()), "metadata": body.get("metadata") or {}, "output_file_id": None,
                "error_file_id": None, "errors": None, "request_counts": {"total": len(lines), "completed": 0, "failed": 0},
                "_t0": time.monotonic(), "_lines": lines,
            }  # fmt: skip
            self.order.append(bid)
            h._json(200, self._public(self.batches[bid]))

    @staticmethod
    def _public(batch: dict) -> dict:
        return {k: v for k, v in batch.items() if not k.startswith("_")}

    def _list(self, path: str) -> dict:
        query = dict(q.split("=", 1) for q in path.partition("?")[2].split("&") if "=" in q)
        limit = int(query.get("limit", 20))
        with self._lock:
            ids = list(reversed(self.order))
            if query.get("after") in ids:
                ids = ids[ids.index(query["after"]) + 1 :]
            page = [self._public(self.batches[b]) for b in ids[:limit]]
            more = len(ids) > limit
        return {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None, "has_more": more}  # fmt: skip

    def _retrieve(self, h: Any, bid: str) -> None:
        with self._lock:
            self.retrieves += 1
            batch = self.batches.get(bid)
            if batch is None:
                h._json(404, {"error": {"message": f"no such batch {bid}", "type": "invalid_request_error"}})
                return
            if batch["status"] in ("validating", "in_progress"):
                self._advance(batch)
            h._json(200, self._public(batch))

    def _advance(self, batch: dict) -> None:
        """Move a batch on by the clock: in progress, then its end state (lock held)."""
        elapsed = time.monotonic() - batch["_t0"]
        total = batch["request_counts"]["total"]
        if elapsed < self.after:
            batch["status"] = "in_progress"
            batch["request_counts"]["completed"] = int(total * elapsed / self.after) if self.after else 0
            return
        if self.end == "failed":  # rejected as a whole (e.g. validation): nothing ran, nothing paid
            batch["status"] = "failed"
            batch["errors"] = {"object": "list", "data": [{"code": "invalid_request", "message": "fake server: batch failed"}]}
            for line in batch["_lines"]:
                self.submitted[line.get("custom_id")] -= 1
            return
        self._finish(batch)

    def _finish(self, batch: dict) -> None:
        from tests.support.fake_openai import _unit

        lines = batch["_lines"]
        cut = len(lines) if self.end == "completed" else int(len(lines) * self.partial)
        out, err = [], []
        for i, line in enumerate(lines):
            cid = line.get("custom_id")
            if i >= cut:
                err.append(self._error_line(cid, f"batch_{self.end}", f"this request was not run: the batch {self.end}"))
            elif _unit(self.fake.seed, "batch-fail", cid, self.submitted[cid]) < self.item_fail:
                err.append(self._error_line(cid, "server_error", "fake server: item failed"))
            else:
                out.append(self._answer_line(cid, line.get("body") or {}))
                self.paid[cid] += 1
        bid = batch["id"]
        if out:
            self.files[f"file-out-{bid}"] = ("\n".join(out) + "\n").encode()
            batch["output_file_id"] = f"file-out-{bid}"
        if err:
            self.files[f"file-err-{bid}"] = ("\n".join(err) + "\n").encode()
            batch["error_file_id"] = f"file-err-{bid}"
        batch["status"] = self.end
        batch["request_counts"] = {"total": len(lines), "completed": len(out), "failed": len(err)}
        batch["completed_at"] = int(time.time())

    def _answer_line(self, cid: str, body: dict) -> str:
        messages = body.get("messages") or []
        answer = self.fake.responder(messages)
        pt = self.fake.prompt_tokens if self.fake.prompt_tokens is not None else max(1, len(json.dumps(messages)) // 4)
        ct = self.fake.completion_tokens if self.fake.completion_tokens is not None else max(1, len(answer) // 4)
        resp = {
            "id": f"chatcmpl-{cid}", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": pt, "completion_tokens": ct, "total_tokens": pt + ct},
        }  # fmt: skip
        return json.dumps({"id": f"req-{cid}", "custom_id": cid, "response": {"status_code": 200, "request_id": cid, "body": resp}, "error": None})

    @staticmethod
    def _error_line(cid: str, code: str, message: str) -> str:
        if code.startswith("batch_"):
            return json.dumps({"id": f"req-{cid}", "custom_id": cid, "response": None, "error": {"code": code, "message": message}})
        body = {"error": {"message": message, "type": code}}
        return json.dumps({"id": f"req-{cid}", "custom_id": cid, "response": {"status_code": 500, "body": body}, "error": None})
