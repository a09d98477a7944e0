"""Sequence steps: when a later question of a conversation can be asked, and what is sent.

A `sequence` compiles to one trial per question; a later step names the trial it follows
(the trial table's `follows`) and its `messages` hold only its own new turn. A step is asked
once the step it follows has a final answer (`ok` or `invalid`) in the run store: its
messages are then the earlier step's full messages, the model's stored answer as an
assistant turn, and its own turn; its cache key is the compiled key with every earlier
answer added, so a cached answer is reused only for the same conversation.

Everything is read back from the run store (the trials and the answers it holds), so a run
killed between two steps resumes from there: answered steps are never asked again and the
next step is built from the stored answer. A step whose earlier step failed (or was not
selected) waits, and is counted so the run can say so.
"""

from __future__ import annotations

import json
from typing import Any

from llmexp.runner.store import RunStore
from llmexp.seeding import canonical, short_hash


def _messages(text: Any) -> list[dict]:
    value = json.loads(text) if isinstance(text, str) else text
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value or [])


def _conversation(trial_id: str, trials: dict[str, dict], answers: dict[str, str | None]) -> tuple[list[dict], list[str]] | None:
    """The full messages of a trial and the earlier answers they contain; None while an
    earlier step has no final answer (or is unknown to the store)."""
    chain = []
    current: str | None = trial_id
    while current is not None:
        row = trials.get(current)
        if row is None:
            return None
        chain.append(row)
        current = row.get("follows")
    chain.reverse()
    messages: list[dict] = []
    earlier: list[str] = []
    for row in chain[:-1]:
        if row["trial_id"] not in answers:
            return None
        text = answers[row["trial_id"]] or ""
        messages += _messages(row["messages"]) + [{"role": "assistant", "content": text}]
        earlier.append(text)
    return messages + _messages(chain[-1]["messages"]), earlier


def ready_steps(rows: list[dict], store: RunStore) -> tuple[list[dict], list[dict]]:
    """Split pending trial rows into those that can be asked now (first questions, and
    later steps with the conversation so far filled in) and the steps still waiting."""
    if not any(r.get("follows") for r in rows):
        return rows, []
    trials = {t["trial_id"]: t for t in store.trial_rows()}
    trials.update({r["trial_id"]: r for r in rows})
    answers = store.final_answers()
    ready, waiting = [], []
    for row in rows:
        if not row.get("follows"):
            ready.append(row)
            continue
        built = _conversation(row["trial_id"], trials, answers)
        if built is None:
            waiting.append(row)
            continue
        messages, earlier = built
        key = short_hash([row.get("cache_key") or row["trial_id"], earlier])
        ready.append({**row, "messages": canonical(messages), "cache_key": key})
    return ready, waiting


def waiting_note(n: int) -> str:
    """What the run records about the `n` steps it could not ask."""
    return (
        f"{n} later question{'s' if n != 1 else ''} of a sequence could not be asked: the question before "
        f"{'them' if n != 1 else 'it'} has no answer yet (its call failed, or it was not selected); "
        "run the same command again to resume"
    )
