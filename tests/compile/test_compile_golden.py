"""Golden prompts: the rendered messages of one fixed trial per mode, byte for byte (for the
sequential mode, the messages of every step of one respondent's conversation, in order).

Set LLMEXP_UPDATE_GOLDEN=1 to rewrite the files after a deliberate wording change."""

from __future__ import annotations

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
CASES = {
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


@pytest.fixture(scope="module")
def trials():
    study, _ = check_study(GOLDEN / "golden.study")
    return compile_study(study)


def render(row) -> str:
    parts = []
    for message in json.loads(row["messages"]):
        parts.append(f"[{message['role']}]\n{message['content']}\n")
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_prompt(trials, name):
    design, kind, target, unit, cell = CASES[name]
    rows = trials[(trials.design == design) & (trials.kind == kind) & (trials.target == target) & (trials.unit_id == unit)]
    if cell is not None:
        rows = rows[rows.cell == cell]
    assert len(rows) == 1, f"{name}: {len(rows)} matching trials"
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
    study, _ = check_study(GOLDEN / file)
    rows = compile_study(study)
    rows = rows[(rows.design == design) & (rows.replicate == 0)].sort_values("exposure")
    assert list(rows.exposure) == list(range(len(rows))) and len(rows) == 3
    steps = [f"--- step {int(r['exposure'])} ({r['cell']})\n{render(r)}" for _, r in rows.iterrows()]
    _check_golden(name, "\n".join(steps))


def _mode_of_each_golden() -> set[str]:
    """The mode behind every golden file (asked of the studies, not written here)."""
    golden, _ = check_study(GOLDEN / "golden.study")
    by_design = {d.name: d.mode for d in golden.designs}
    found = {by_design[case[0]] for case in CASES.values()}
    for file, design in SEQUENCES.values():
        study, _ = check_study(GOLDEN / file)
        found |= {d.mode for d in study.designs if d.name == design}
    return found


def test_every_mode_has_a_golden_file():
    """A new mode in the registry fails here until its prompt is pinned."""
    assert set(modes.names()) <= _mode_of_each_golden()
