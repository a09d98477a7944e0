"""Prompt formatting for a base model, the answer options offered to it, and draw seeds.

A base model does not follow chat turns, so the chat messages are rendered as plain text
ending where the answer starts (`render_prompt`: "...\\nAnswer:"). What the model may answer
comes from the trial's answer type (`llmexp.answers`): its `options()` (label texts scored
as continuations) or its `number_form()` (the grammar of a free number).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmexp import answers
from llmexp.seeding import text_int

ANSWER_CUE = "Answer:"


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content)


def render_prompt(messages: Iterable[dict]) -> str:
    """Chat messages as plain text for a base model, ending where the answer starts.

    System and user turns become paragraphs; an assistant turn becomes "Answer: ...". The
    text ends with "\\nAnswer:" (or continues a final assistant turn, i.e. a prefill).
    """
    parts: list[str] = []
    last_role = None
    for msg in messages:
        role = msg.get("role", "user")
        content = _content_text(msg.get("content")).strip()
        last_role = role
        if role == "assistant":
            parts.append(f"{ANSWER_CUE} {content}".rstrip())
        elif content:
            parts.append(content)
    text = "\n\n".join(parts)
    if last_role == "assistant":
        return text
    return f"{text}\n{ANSWER_CUE}" if text else ANSWER_CUE


def answer_options(answer: Mapping) -> list[tuple[str, str]]:
    """(key, answer text) for each option of an answer spec: its type's `options()`.

    The answer text (after a space) is the continuation scored and the text returned; the
    key names the option in `probs`, matching the spec's labels so the runner can read them
    (likert scales are answered with their numbers, keyed by the point labels when the spec
    has one per point; binary without labels: "Yes"/"No"). [] for a free number or an
    unknown type.
    """
    atype = answers.find(answer)
    return atype.options() if atype is not None else []


def trial_seed(seed: int, trial: dict | None, prompt: str, params: dict) -> int:
    """The draw's seed: study seed + trial id + replicate (reruns repeat, replicates differ)."""
    if trial is not None:
        key = f"{seed}|{trial.get('trial_id')}|{trial.get('replicate')}|{trial.get('kind')}|{trial.get('target')}"
    else:
        key = f"{seed}|{params.get('seed')}|{prompt}"
    return text_int(key) & ((1 << 63) - 1)
