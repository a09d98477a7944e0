"""Golden prompts: the rendered messages of one fixed trial per mode, byte for byte.

Set LLMEXP_UPDATE_GOLDEN=1 to rewrite the files after a deliberate wording change."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from llmexp import check as check_study
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
    text = render(rows.iloc[0])
    path = GOLDEN / f"{name}.txt"
    if UPDATE:
        path.write_bytes(text.encode("utf-8"))
    assert path.exists(), f"missing {path}; run with LLMEXP_UPDATE_GOLDEN=1 to create it"
    assert text.encode("utf-8") == path.read_bytes(), f"prompt of {name} changed; see {path}"


def test_every_mode_has_a_golden_file():
    modes = {CASES[name][0] for name in CASES}
    assert {"blind", "unblinded", "within", "aggregate"} <= modes
