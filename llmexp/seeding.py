"""Canonical JSON and the seeded hashes built on it: the one place where a key (a trial's
content, a persona draw, a condition order) becomes a stable number or id.

Trial ids, cache keys and every seeded draw depend on these bytes, so they must never
change: old runs and caches are found again by them (tests/golden pins them).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical(obj: Any) -> str:
    """Compact sorted JSON used for hashes and table cells."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def stable_int(*parts: Any) -> int:
    """A 64-bit integer from a key, stable across processes and platforms (a seed)."""
    digest = hashlib.sha256(canonical(list(parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def text_int(text: str) -> int:
    """A 64-bit integer from a text key: the seeds of the synthetic respondent's, the embedded
    model's and diagnose's draws, whose keys are joined by hand (their bytes predate
    `stable_int` and must not change, so reruns repeat old runs' draws)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def text_hash(text: str, length: int = 16) -> str:
    """The first `length` hex digits of the SHA-256 of `text`: every id llmexp derives from
    content (trial ids, cache keys, study hashes, stored trial rows) is one of these."""
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def short_hash(obj: Any) -> str:
    """A 16-hex-digit id of any JSON-able value (trial ids, cache keys)."""
    return text_hash(canonical(obj))
