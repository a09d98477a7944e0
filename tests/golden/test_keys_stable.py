"""Safety net for refactors: the keys users' caches and runs depend on never drift.

For every shipped study (and the golden-prompt study) this pins the study hash and a digest
of every trial's `trial_id`, `cache_key` and messages, as written by llmexp 0.1. A change here
means every user's response cache and every resumable run would silently stop matching: if a
key must change on purpose, bump `spec_version` in the manifest, migrate old runs, and rewrite
this file with LLMEXP_UPDATE_GOLDEN=1.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from llmexp import compile as compile_trials
from llmexp import load

REPO = Path(__file__).resolve().parents[2]
KEYS = Path(__file__).resolve().parent / "keys.json"
UPDATE = os.environ.get("LLMEXP_UPDATE_GOLDEN") == "1"
STUDIES = sorted(
    [p.relative_to(REPO).as_posix() for p in (REPO / "studies").glob("*.study")]
    + ["tests/compile/golden/golden.study"]
)


def digest(lines) -> str:
    sha = hashlib.sha256()
    for line in lines:
        sha.update(line.encode("utf-8") + b"\n")
    return sha.hexdigest()


def fingerprint(path: str) -> dict:
    study = load(REPO / path)
    trials = compile_trials(study)
    return {
        "study_hash": study.hash(),
        "trials": int(len(trials)),
        "keys": digest(f"{t}\t{c}" for t, c in zip(trials.trial_id, trials.cache_key)),
        "messages": digest(trials.messages),
    }


def recorded() -> dict:
    return json.loads(KEYS.read_text()) if KEYS.exists() else {}


@pytest.mark.parametrize("path", STUDIES)
def test_keys_of_shipped_study_unchanged(path):
    got = fingerprint(path)
    if UPDATE:
        data = recorded()
        data[path] = got
        KEYS.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    want = recorded().get(path)
    assert want is not None, f"no recorded keys for {path}; run with LLMEXP_UPDATE_GOLDEN=1"
    assert got == want, f"{path}: trial ids, cache keys or prompts changed"
