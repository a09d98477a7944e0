"""Keeping API keys out of the run directory: redaction by name, scrubbing by value.

A param whose name looks like a secret (`api_key`, `token`, ...) is replaced by "***"
wherever a run writes params (manifest, stored trial rows); and every secret value known to
the process (such params, secret-named environment variables, keys in a router file) is
scrubbed from free text (the command line, error messages, the manifest) before it is
written. No API key is ever written to a run directory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from typing import Any

_SECRET_NAME = re.compile(r"(api_?key|secret|token|password|passwd|credential|authorization)", re.I)
_TOKEN_LIMIT_PARAMS = {"max_tokens", "max_completion_tokens", "max_output_tokens", "top_logprobs"}
_MAYBE_SECRET = re.compile(r"key|secret|token|password|credential|authorization", re.I)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name)) and name not in _TOKEN_LIMIT_PARAMS


def redact(obj: Any) -> Any:
    """A copy of `obj` with every secret-named value replaced by "***"."""
    if isinstance(obj, dict):
        return {k: ("***" if isinstance(k, str) and is_secret_name(k) and v is not None else redact(v)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    return obj


def secret_values(params_list: Iterable[dict], extra: Iterable[str] = ()) -> list[str]:
    """Secret values to scrub, longest first: secret-named params, secret-named
    environment variables, and `extra` (e.g. literal keys in a router file)."""
    found = set(extra)
    for params in params_list:
        for k, v in (params or {}).items():
            if is_secret_name(str(k)) and isinstance(v, str) and len(v) >= 6:
                found.add(v)
    for k, v in os.environ.items():
        if is_secret_name(k) and isinstance(v, str) and len(v) >= 8:
            found.add(v)
    return sorted(found, key=len, reverse=True)


def scrubber(secrets: list[str]) -> Callable[[str], str]:
    """text -> text with every one of `secrets` replaced by "***"."""
    if not secrets:
        return lambda s: s

    def scrub(text: str) -> str:
        if not text:
            return text
        for sec in secrets:
            if sec in text:
                text = text.replace(sec, "***")
        return text

    return scrub


def redact_params_json(text: str | None) -> str | None:
    """A trial's params JSON with secret-named values redacted (unchanged when it has none)."""
    if not text or not _MAYBE_SECRET.search(text):
        return text
    try:
        return json.dumps(redact(json.loads(text)), sort_keys=True, separators=(",", ":"))
    except json.JSONDecodeError:
        return text


def redacted_trials(rows: list[dict]) -> list[dict]:
    """Copies of the trial rows as the store keeps them: params redacted."""
    out = []
    done: dict = {}  # params strings repeat across trials: redact each once
    for r in rows:
        rr = dict(r)
        p = rr.get("params")
        if p not in done:
            done[p] = redact_params_json(p)
        rr["params"] = done[p]
        out.append(rr)
    return out
