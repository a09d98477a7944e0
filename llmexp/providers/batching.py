"""Provider batch APIs: the request and result shapes, the size limits, the litellm calls.

A `BatchAPI` is what the runner's batch path (`llmexp/runner/batch.py`) needs from a
provider: turn one call into one JSONL request line (`request_line`), parse one line of a
result file back (`parse_line` -> `BatchItem`), upload a file, create, retrieve and find a
batch, download a file. The runner never sees a provider's JSON shapes.

Which models can batch is a capability of their provider (`Provider.batch_api` in
`registry.py`): llmexp's own providers answer in this process and have nothing to batch; an
ordinary litellm model can batch when litellm 1.100.5 creates batches for its provider.
Read from litellm's source (`litellm/batches/main.py::create_batch`): files and batches
are created for the OpenAI-compatible providers (`OPENAI_COMPATIBLE_BATCH_AND_FILES_PROVIDERS`:
openai, hosted_vllm, litellm_proxy), azure, vertex_ai (GCS) and bedrock (S3); Anthropic
batches can be retrieved but NOT created (no "anthropic" branch in `create_batch`). llmexp
wires the OpenAI-compatible shape, the one it can test (tests/support/fake_batches.py);
the others are refused with a sentence saying so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["BatchAPI", "BatchItem", "BatchState", "OpenAIBatchAPI", "TERMINAL", "batch_api_for"]

# batch states after which nothing more happens (OpenAI's names)
TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})

# what a request line's body never carries: connection and client settings
_NOT_IN_BODY = {
    "timeout", "max_retries", "api_base", "base_url", "api_key", "api_version", "organization", "metadata",
    "extra_headers", "custom_llm_provider", "mock_response",
}  # fmt: skip


@dataclass
class BatchItem:
    """One line of a result (output or error) file."""

    custom_id: str
    text: str | None = None  # the answer (None: the request failed)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    error_kind: str | None = None


@dataclass
class BatchState:
    """What a retrieve says about a batch."""

    status: str
    total: int = 0
    completed: int = 0
    failed: int = 0
    output_file_id: str | None = None
    error_file_id: str | None = None
    errors: str | None = None

    @property
    def ended(self) -> bool:
        return self.status in TERMINAL


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


class BatchAPI:
    """A provider's batch API (subclasses fill in the shapes and the calls)."""

    max_requests: ClassVar[int] = 50_000
    max_bytes: ClassVar[int] = 200 * 1024 * 1024
    endpoint: ClassVar[str] = "/v1/chat/completions"

    def __init__(self, litellm_provider: str, model: str, connection: dict):
        self.litellm_provider = litellm_provider
        self.model = model  # the provider's own model name (what a request body names)
        self.connection = connection  # api_base / api_key / organization for the litellm calls

    def key(self) -> str:
        """Which requests may share a file: same provider, endpoint and connection."""
        return json.dumps([self.litellm_provider, self.connection.get("api_base"), self.connection.get("organization")])

    def request_line(self, custom_id: str, messages: list, kwargs: dict) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    def parse_line(self, line: dict) -> BatchItem:  # pragma: no cover - abstract
        raise NotImplementedError


class OpenAIBatchAPI(BatchAPI):
    """OpenAI's Batch API (and the OpenAI-compatible servers litellm treats alike):
    at most 50,000 requests and 200 MB per input file, results within 24 h."""

    def __init__(self, litellm_provider: str, model: str, connection: dict, body_params: frozenset[str] | None = None):
        super().__init__(litellm_provider, model, connection)
        self.body_params = body_params

    def request_line(self, custom_id: str, messages: list, kwargs: dict) -> bytes:
        body = {"model": self.model, "messages": messages}
        for k, v in kwargs.items():
            if k not in _NOT_IN_BODY and (self.body_params is None or k in self.body_params):
                body[k] = v
        line = {"custom_id": custom_id, "method": "POST", "url": self.endpoint, "body": body}
        return json.dumps(line, separators=(",", ":"), ensure_ascii=False).encode() + b"\n"

    def parse_line(self, line: dict) -> BatchItem:
        cid = str(line.get("custom_id"))
        resp = line.get("response") or {}
        err = line.get("error")
        body = resp.get("body") if isinstance(resp, dict) else None
        if err or not isinstance(body, dict) or int(resp.get("status_code") or 0) != 200:
            detail = err or (body or {}).get("error") or {}
            code = str(_get(detail, "code") or _get(detail, "type") or f"http_{resp.get('status_code')}")
            message = str(_get(detail, "message") or "the batch request failed")
            return BatchItem(cid, error=f"batch item {code}: {message}"[:2000], error_kind="batch_item")
        usage = body.get("usage") or {}
        try:
            text = body["choices"][0]["message"].get("content")
        except (KeyError, IndexError, TypeError, AttributeError):
            text = None
        pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
        if text is None:
            return BatchItem(cid, prompt_tokens=pt, completion_tokens=ct, error="batch item: no answer text", error_kind="batch_item")
        return BatchItem(cid, text=text, prompt_tokens=pt, completion_tokens=ct)

    # -- the litellm calls (lazy import: litellm takes seconds to import)
    async def upload(self, data: bytes, name: str) -> str:
        import litellm

        obj = await litellm.acreate_file(
            file=(name, data, "application/jsonl"), purpose="batch", custom_llm_provider=self.litellm_provider, **self.connection
        )
        return str(_get(obj, "id"))

    async def create(self, file_id: str, tag: dict[str, str]) -> str:
        import litellm

        obj = await litellm.acreate_batch(
            completion_window="24h", endpoint=self.endpoint, input_file_id=file_id,  # type: ignore[arg-type]
            custom_llm_provider=self.litellm_provider, metadata=tag, **self.connection,  # type: ignore[arg-type]
        )  # fmt: skip
        return str(_get(obj, "id"))

    async def retrieve(self, batch_id: str) -> BatchState:
        import litellm

        obj = await litellm.aretrieve_batch(batch_id=batch_id, custom_llm_provider=self.litellm_provider, **self.connection)  # type: ignore[arg-type]
        counts = _get(obj, "request_counts") or {}
        errors = _get(obj, "errors")
        data = _get(errors, "data") or []
        return BatchState(
            status=str(_get(obj, "status")),
            total=int(_get(counts, "total", 0) or 0),
            completed=int(_get(counts, "completed", 0) or 0),
            failed=int(_get(counts, "failed", 0) or 0),
            output_file_id=_get(obj, "output_file_id"),
            error_file_id=_get(obj, "error_file_id"),
            errors="; ".join(str(_get(e, "message")) for e in data)[:500] or None,
        )

    async def find(self, tag: dict[str, str], file_id: str, pages: int = 20) -> str | None:
        """The id of a batch this provider already accepted with this tag (or input file),
        from its listing (newest first): how a submission killed after the provider
        accepted it, before its id was recorded, is found again instead of re-created."""
        import litellm

        after = None
        for _ in range(pages):
            page = await litellm.alist_batches(after=after, limit=100, custom_llm_provider=self.litellm_provider, **self.connection)  # type: ignore[arg-type]
            data = _get(page, "data") or []
            for b in data:
                meta = _get(b, "metadata") or {}
                if _get(b, "input_file_id") == file_id or all(_get(meta, k) == v for k, v in tag.items()):
                    return str(_get(b, "id"))
            if not data or not _get(page, "has_more"):
                return None
            after = _get(data[-1], "id")
        return None

    async def content(self, file_id: str) -> bytes:
        import litellm

        obj = await litellm.afile_content(file_id=file_id, custom_llm_provider=self.litellm_provider, **self.connection)  # type: ignore[arg-type]
        data = _get(obj, "content")
        if data is None and hasattr(obj, "read"):
            data = obj.read()
        return data if isinstance(data, bytes) else str(data or "").encode()


def _connection(kwargs: dict) -> dict:
    conn = {}
    base = kwargs.get("api_base") or kwargs.get("base_url")
    if base:
        conn["api_base"] = base
    for k in ("api_key", "organization"):
        if kwargs.get(k):
            conn[k] = kwargs[k]
    return conn


def batch_api_for(model: str, kwargs: dict) -> tuple[BatchAPI | None, str]:
    """The batch API of an ordinary litellm model called with `kwargs`, or (None, why not)."""
    import litellm
    from litellm.types.utils import OPENAI_COMPATIBLE_BATCH_AND_FILES_PROVIDERS

    try:
        name, provider_name, _, _ = litellm.get_llm_provider(model)
    except Exception:  # noqa: BLE001 - litellm cannot place it: the preflight says so
        return None, f"litellm does not know the provider of {model!r}"
    if provider_name not in OPENAI_COMPATIBLE_BATCH_AND_FILES_PROVIDERS:
        return None, (
            f"model {model!r} cannot run as a batch: llmexp's batch path covers the OpenAI-compatible providers "
            f"({', '.join(sorted(OPENAI_COMPATIBLE_BATCH_AND_FILES_PROVIDERS))}), not {provider_name} (litellm "
            f"{litellm_version()} cannot create Anthropic batches; Azure, Vertex AI and Bedrock batches are not "
            "wired in llmexp yet) -- run it without --batch"
        )
    try:
        supported = litellm.get_supported_openai_params(model=name, custom_llm_provider=provider_name)
    except Exception:  # noqa: BLE001
        supported = None
    body = frozenset(supported) | {"logprobs", "top_logprobs", "seed"} if supported else None
    return OpenAIBatchAPI(provider_name, name, _connection(kwargs), body), ""


def litellm_version() -> str:
    from importlib import metadata

    try:
        return metadata.version("litellm")
    except metadata.PackageNotFoundError:  # pragma: no cover
        return "?"
