"""Extending a run in place: a changed study that only adds trials reuses every stored answer.

A run directory is resumed by the study that made it (same study hash). A study changed
by adding replicates, a model or a design is a *pure extension* of it when every trial
the run stored is still in the new trial table, with the same trial id and an identical
row (prompt, params, answer spec, unit, cell...): then the stored answers are exactly the
answers the new study would get for those trials (a trial id is a hash of what is sent,
and cache keys do not change), so the run continues with only the new trials. The
manifest then takes the new study (hash and spec, which analyses read) and records the
extension in `extensions`: when, the hashes before and after, the study's changes
(`llmexp.diff`), and the trial counts. Anything else (a stored trial missing from the new
study, or asked differently) is a different study and is refused with what differs.

A run started as a pilot (`--pilot N`) is recorded in the manifest's `pilot`: later
sessions of the full study in the same directory reuse its answers like any resume.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.redaction import redact, redacted_trials
from llmexp.runner.store import STORE, RunStore, now_iso
from llmexp.schema import TRIAL_COLUMNS
from llmexp.seeding import canonical
from llmexp.spec import Study, diff


class NotAnExtension(RunError):
    """The new study drops or changes trials the run already stored (says which)."""


def _stored_form(row: dict) -> dict:
    """A trial row as the store keeps it (params redacted, JSON-normalised)."""
    return json.loads(canonical({k: row.get(k) for k in TRIAL_COLUMNS}))


def _stored_rows(run_dir: Path) -> list[dict]:
    if not (run_dir / STORE).exists():
        return []
    store = RunStore(run_dir, create=False)
    try:
        return store.trial_rows()
    finally:
        store.close()


def _by_arm(rows: list[dict]) -> str:
    counts = Counter(f"{r.get('model')} / {r.get('design')}" for r in rows)
    return ", ".join(f"{arm}: {n}" for arm, n in sorted(counts.items()))


def _spec_changes(old_spec: Any, study: Study) -> list[str]:
    """The study's changes as `llmexp.diff` names them (secret params redacted)."""
    try:
        old = Study.model_validate(old_spec).model_copy(update={"source_file": None})  # not part of the hash
        data = study.model_dump(mode="json")
        data["source_file"] = None
        for m in data.get("models") or []:
            m["params"] = redact(m.get("params") or {})
        return [str(c) for c in diff(old, Study.model_validate(data))]
    except Exception:  # noqa: BLE001 - an unreadable old spec: the trial check still decides
        return []


def _mismatch(stored: list[dict], table: dict[str, dict]) -> tuple[list[dict], list[tuple[dict, list[str]]]]:
    """(stored rows missing from the new table, [(stored row, columns that differ)])."""
    missing: list[dict] = []
    changed: list[tuple[dict, list[str]]] = []
    present = [table[tid] for tid in {str(r.get("trial_id")) for r in stored} if tid in table]
    new_forms = {str(r["trial_id"]): _stored_form(r) for r in redacted_trials(present)}  # one pass: params redacted once each
    for row in stored:
        form = new_forms.get(str(row.get("trial_id")))
        if form is None:
            missing.append(row)
            continue
        columns = [k for k in TRIAL_COLUMNS if row.get(k) != form.get(k)]
        if columns:
            changed.append((row, columns))
    return missing, changed


def _refusal(stored: list[dict], missing: list[dict], changed: list, changes: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"{len(missing)} of its {len(stored)} stored trials are not in this study ({_by_arm(missing)})")
    if changed:
        row, columns = changed[0]
        parts.append(f"{len(changed)} stored trials would be asked differently (e.g. trial {row.get('trial_id')}: {', '.join(columns)} differ)")
    if changes:
        shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
        parts.append(f"the study changed: {shown}")
    return "; ".join(parts)


def extension(run_dir: Path, existing: dict, study: Study, study_hash: str, table: dict[str, dict]) -> dict:
    """The manifest of `run_dir` extended to `study` (a copy, with the extension recorded);
    `NotAnExtension` saying what differs when the study drops or changes a stored trial."""
    stored = _stored_rows(run_dir)
    changes = _spec_changes(existing.get("spec"), study)
    missing, changed = _mismatch(stored, table)
    if missing or changed:
        raise NotAnExtension(_refusal(stored, missing, changed, changes))
    stored_ids = {str(r.get("trial_id")) for r in stored}
    added = [r for tid, r in table.items() if tid not in stored_ids]
    manifest = dict(existing)
    manifest["extensions"] = [
        *(existing.get("extensions") or []),
        {
            "at": now_iso(),
            "from_hash": existing.get("study_hash"),
            "to_hash": study_hash,
            "changes": changes,
            "trials_stored_before": len(stored_ids),
            "trials_in_study_before": existing.get("trials_in_study"),
            "trials_in_study_after": len(table),
            "trials_added": len(added),
            "trials_added_by_arm": dict(Counter(f"{r.get('model')} / {r.get('design')}" for r in added)),
        },
    ]
    manifest.update(study_hash=study_hash, spec=study.model_dump(mode="json"), seed=study.seed, study=study.name)
    return manifest


def scope_note(manifest: dict, selected: int, table_size: int, pilot: int | None, limit: int | None) -> None:
    """Record in the manifest how much of the study this session selected: `pilot` while
    the newest session is a pilot (cleared by a later session of the whole study), and
    the size of the full trial table."""
    manifest["trials_in_study"] = table_size
    if pilot is not None:
        manifest["pilot"] = {"requested": int(pilot), "trials_selected": selected, "trials_in_study": table_size, "at": now_iso()}
    elif limit is None and manifest.get("pilot"):
        manifest["pilot"] = None


def scope_lines(manifest: dict) -> list[str]:
    """What `llmexp results` says of a pilot and of each extension (indented lines)."""
    lines = []
    pilot = manifest.get("pilot")
    if isinstance(pilot, dict):
        lines.append(
            f"  pilot: {pilot.get('trials_selected')} of the study's {pilot.get('trials_in_study')} trials "
            "(the same command without --pilot asks the rest, reusing these answers)"
        )
    for ext in manifest.get("extensions") or []:
        what = "; ".join(ext.get("changes") or []) or "no change to the trials"
        lines.append(f"  extended {ext.get('at')}: +{ext.get('trials_added')} trials ({what})")
    return lines
