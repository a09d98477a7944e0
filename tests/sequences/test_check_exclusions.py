"""Checks exclude respondents: on a hand-built response table with a known set of failed
checks, and end to end on the synthetic respondent whose attention is set."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from llmexp import check_text
from llmexp.analysis import analyze
from llmexp.analysis.checks import exclude_failed_checks, respondents

STUDY = """study "checked" seed 2
units items
  row item = "a", thing = "an apple"
treatment price = levels(1, 2)
context "You see {thing} for {price} dollars."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
check attention: categorical "red", "blue"
  question "To show you are reading, answer blue."
  expect "blue"
sequence main: buy, attention
modes blind
model "synthetic/r" replicates 40 attention 0.7 effect -2
"""


@pytest.fixture(scope="module")
def study():
    return check_text(STUDY, "t.study")[0]


def _row(tid, follows, kind, target, cell, label, value, status="ok"):
    return {
        "trial_id": tid, "follows": follows, "kind": kind, "target": target, "design": "blind", "mode": "blind",
        "model": "m", "unit_id": "a", "cell": cell, "replicate": 0, "valid": status == "ok", "status": status,
        "label": label, "value": value, "answer": json.dumps({"type": "binary", "labels": ["yes", "no"]}),
        "conditions": json.dumps([{"cell": cell, "levels": {"price": float(cell[-1])}, "values": {"price": float(cell[-1])}}]),
    }  # fmt: skip


def table() -> pd.DataFrame:
    """Six respondents: r1, r2 pass; r3 answers red; r4's check is unparseable (invalid);
    r5's check call failed (unchecked, kept); r6 passes. Buy answers: 1 for passers."""
    rows = []
    plan = [("r1", "price=1", "blue", "ok"), ("r2", "price=2", "blue", "ok"), ("r3", "price=1", "red", "ok"),
            ("r4", "price=2", None, "invalid"), ("r5", "price=1", None, "failed"), ("r6", "price=2", "blue", "ok")]  # fmt: skip
    for rid, cell, label, status in plan:
        rows.append(_row(rid, None, "outcome", "buy", cell, "yes", 1.0))
        rows.append(_row(rid + "c", rid, "check", "attention", cell, label, None if label is None else 1.0, status))
    return pd.DataFrame(rows)


def test_a_respondent_is_the_first_trial_of_its_chain():
    frame = pd.DataFrame({"trial_id": ["a", "b", "c", "d"], "follows": [None, "a", "b", None]})
    assert respondents(frame).tolist() == ["a", "a", "a", "d"]


def test_failed_checks_exclude_their_respondents_and_are_counted(study):
    kept, counts = exclude_failed_checks(study, table())
    assert sorted(kept["trial_id"]) == ["r1", "r2", "r5", "r6"]  # outcome rows only; r3, r4 out
    assert set(kept["kind"]) == {"outcome"}
    rows = counts.sort_values("cell").to_dict("records")
    assert [(r["cell"], r["respondents"], r["failed"], r["unchecked"]) for r in rows] == [
        ("price=1", 3, 1, 1),
        ("price=2", 3, 1, 0),
    ]
    assert rows[0]["excluded_share"] == pytest.approx(1 / 3)


def test_nobody_is_excluded_when_every_check_passes(study):
    frame = table()
    frame.loc[frame.kind == "check", ["label", "status"]] = ["blue", "ok"]
    kept, counts = exclude_failed_checks(study, frame)
    assert len(kept) == 6 and int(counts["failed"].sum()) == 0


def test_analyze_excludes_and_says_so_on_the_synthetic_respondent(study, tmp_path):
    from llmexp.runner import run_study

    results = run_study(study, run_dir=tmp_path / "run", progress=False)
    responses = results.to_pandas()
    assert len(responses) == 2 * 40 * 2
    result = analyze(study, responses, requested=["effects"], figures=False, n_boot=20)
    counts = result.tables["check_exclusions"]
    assert int(counts["respondents"].sum()) == 80
    share = counts["failed"].sum() / 80
    assert 0.15 < share < 0.45  # attention 0.7: about 30% fail (binomial sd 5%)
    failed = int(counts["failed"].sum())
    note = [n for n in result.notes if n.startswith("check 'attention'")]
    assert note == [f"check 'attention' in design blind: {failed} of 80 respondents failed it and were excluded (per cell: table check_exclusions)"]
    assert result.summary_data["n_responses"] == 80 - failed  # the outcome answers of those who passed
