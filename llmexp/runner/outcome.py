"""What one call produced, and the response row it becomes.

`Outcome` is the raw result of a call (text, log-probabilities, usage, or the error);
`build_row` parses the answer against the trial's answer spec and returns the typed
`ResponseRow` the store keeps (columns in `llmexp/schema.py`). Live calls, cache replays
and batch imports all go through `build_row`, so a response means the same wherever it
came from. Every text written is scrubbed of known secrets, the answer text too (a model
may echo a key it was shown). A failed call whose body could not be decoded keeps that
raw body (first 20 kB) in `raw_text`; an answer that stayed empty after its retries is
kept as it came but `failed` (error kind `empty`): a blank body is a provider's glitch, not
the respondent's answer, so it is never final, never cached, and the next run of the same
command asks it again (as the batch path does).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmexp import answers
from llmexp.answers import parse_answer
from llmexp.runner.calls import Call
from llmexp.schema import ResponseRow


@dataclass
class Outcome:
    """What one call produced (before it becomes a store row)."""

    text: str | None = None
    probs: dict | None = None
    prob_mass: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0
    latency: float = 0.0
    attempts: int = 0
    cache_hit: bool = False
    error: str | None = None
    error_kind: str | None = None
    raw_body: str | None = None  # a failed call's undecodable response body
    empty: bool = False  # the answer stayed empty/blank after its retries


def is_blank(text: str | None) -> bool:
    """An answer with nothing to parse: None, empty, whitespace, or no letter, digit or
    punctuation at all (only control or replacement characters)."""
    if text is None or not text.strip():
        return True
    return not any(ch.isprintable() and not ch.isspace() and ch != "\ufffd" for ch in text[:2000])


def cached_outcome(hit: dict) -> Outcome:
    """The Outcome of a cache hit: the stored answer, at no cost and no attempt."""
    return Outcome(
        text=hit["raw_text"],
        probs=json.loads(hit["probs"]) if hit.get("probs") else None,
        prob_mass=hit.get("prob_mass"),
        prompt_tokens=int(hit.get("prompt_tokens") or 0),
        completion_tokens=int(hit.get("completion_tokens") or 0),
        cost=0.0,
        attempts=0,
        cache_hit=True,
    )


def build_row(call: Call, out: Outcome, scrub: Callable[[str], str]) -> ResponseRow:
    """The store row of a call and its outcome (the answer parsed, the error scrubbed)."""
    if out.text is None:  # the call failed
        return ResponseRow(
            trial_id=call.trial_id, model=call.model, valid=False, value=None, label=None, probs=None,
            prob_mass=None, condition_values=None, raw_text=scrub(out.raw_body) if out.raw_body else None,
            error=scrub(out.error or "failed"),
            status="failed", prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
            cost=out.cost, latency=out.latency, cache_hit=out.cache_hit, attempts=out.attempts,
            error_kind=out.error_kind, finished_at=time.time(),
        )  # fmt: skip
    text = scrub(out.text)
    if out.empty:
        return ResponseRow(
            trial_id=call.trial_id, model=call.model, valid=False, value=None, label=None, probs=None,
            prob_mass=None, condition_values=None, raw_text=text, error=f"empty answer after {out.attempts} attempts",
            status="failed", prompt_tokens=out.prompt_tokens, completion_tokens=out.completion_tokens,
            cost=out.cost, latency=out.latency, cache_hit=out.cache_hit, attempts=out.attempts,
            error_kind="empty", finished_at=time.time(),
        )  # fmt: skip
    parsed = parse_answer(text, call.answer, call.conditions)
    probs_json = None
    if out.probs is not None:
        probs_json = json.dumps(out.probs, sort_keys=True)
        atype = answers.find(call.answer)
        if atype is not None:  # the label probabilities give (or confirm) the answer
            parsed = atype.with_probs(parsed, out.probs)
    valid, value, label, error = parsed.valid, parsed.value, parsed.label, parsed.error
    cv = json.dumps(parsed.condition_values, sort_keys=True) if parsed.condition_values is not None else None
    return ResponseRow(
        trial_id=call.trial_id, model=call.model, valid=valid, value=value, label=label, probs=probs_json,
        prob_mass=out.prob_mass, condition_values=cv, raw_text=text, error=error,
        status="ok" if valid else "invalid", prompt_tokens=out.prompt_tokens,
        completion_tokens=out.completion_tokens, cost=out.cost, latency=out.latency,
        cache_hit=out.cache_hit, attempts=out.attempts, error_kind=None if valid else "unparseable",
        finished_at=time.time(),
    )  # fmt: skip
