"""Golden prompts: the rendered messages of one fixed trial per mode, byte for byte (for the
sequential mode, the messages of every step of one respondent's conversation, in order).

Set LLMEXP_UPDATE_GOLDEN=1 to rewrite the files after a deliberate wording change."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

from llmexp import check as check_study
from llmexp import modes
from llmexp.compiler import compile_study

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("LLMEXP_UPDATE_GOLDEN") == "1"

# file -> which trial: design, kind, target, unit, cell (None for multi-condition trials)
# [, study file in golden/ (default golden.study)]. A new mode gets a small study file of its
# own: golden.study must not change (a v0.1 run archive of it is resumed with no call,
# tests/golden/test_old_runs.py).
CASES: dict[str, tuple] = {
    "blind": ("blind", "outcome", "buy", "nuts", "price=1.5"),
    "blind_probe": ("blind", "probe", "rival_price", "crisps", "price=0.5"),
    "unblinded": ("unblinded", "outcome", "buy", "nuts", "price=1"),
    "unblinded_probe": ("unblinded", "probe", "rival_price", "nuts", "price=1"),
    "within": ("within", "outcome", "buy", "crisps", None),
    "aggregate": ("aggregate", "outcome", "buy", "crisps", None),
    "blind_persona_pinned": ("persona_pinned", "outcome", "buy", "crisps", "price=1"),
}
# golden files of the sequential mode: (study file, design); every step of replicate 0
SEQUENCES = {"sequential": ("sequential.study", "steps")}


DEFAULT_STUDY = "golden.study"


@functools.cache
def _study(file: str):
    return check_study(GOLDEN / file)[0]


@functools.cache
def _trials(file: str):
    return compile_study(_study(file))


def _design_mode(file: str, design: str) -> str:
    by_design = {d.name: d.mode for d in _study(file).designs}
    assert design in by_design, (
        f"design {design!r} is not in tests/compile/golden/{file}: give the case a small study file of its own "
        f"(the 6th item of its CASES entry; golden.study itself must not change)"
    )
    return by_design[design]


def render(row) -> str:
    parts = []
    for message in json.loads(row["messages"]):
        parts.append(f"[{message['role']}]\n{message['content']}\n")
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_prompt(name):
    design, kind, target, unit, cell, *file = CASES[name]
    study_file = file[0] if file else DEFAULT_STUDY
    _design_mode(study_file, design)
    trials = _trials(study_file)
    rows = trials[(trials.design == design) & (trials.kind == kind) & (trials.target == target) & (trials.unit_id == unit)]
    if cell is not None:
        rows = rows[rows.cell == cell]
    assert len(rows) == 1, f"{name}: {len(rows)} matching trials in {study_file} (design, kind, target, unit, cell)"
    _check_golden(name, render(rows.iloc[0]))


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"missing {path}; run with LLMEXP_UPDATE_GOLDEN=1 to create it"
    assert text.encode("utf-8") == path.read_bytes(), f"prompt of {name} changed; see {path}"


@pytest.mark.parametrize("name", sorted(SEQUENCES))
def test_golden_conversation(name):
    file, design = SEQUENCES[name]
    rows = _trials(file)
    rows = rows[(rows.design == design) & (rows.replicate == 0)].sort_values("exposure")
    assert list(rows.exposure) == list(range(len(rows))) and len(rows) == 3
    steps = [f"--- step {int(r['exposure'])} ({r['cell']})\n{render(r)}" for _, r in rows.iterrows()]
    _check_golden(name, "\n".join(steps))


def _mode_of_each_golden() -> set[str]:
    """The mode behind every golden file (asked of the studies, not written here)."""
    found = {_design_mode(case[5] if len(case) > 5 else DEFAULT_STUDY, case[0]) for case in CASES.values()}
    return found | {_design_mode(file, design) for file, design in SEQUENCES.values()}


def test_every_mode_has_a_golden_file():
    """A new mode in the registry fails here until its prompt is pinned."""
    missing = set(modes.names()) - _mode_of_each_golden()
    assert not missing, (
        f"no golden prompt for mode(s) {sorted(missing)}: add a small study using it to tests/compile/golden/ and a "
        "CASES entry naming it, then run once with LLMEXP_UPDATE_GOLDEN=1 (docs/ARCHITECTURE.md, 'Add a blinding mode')"
    )
