"""Runs written by llmexp 0.1 stay readable and resumable after every refactor.

`runs/golden-v0.1` is a live run directory (manifest + SQLite store) and
`runs/golden-v0.1-archive` its archive (manifest + parquet), both written by llmexp 0.1 from
`tests/compile/golden/golden.study` on the synthetic respondent. Each test works on a copy.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest

from llmexp.cli import main

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
STUDY = REPO / "tests" / "compile" / "golden" / "golden.study"


def cli(capsys, *args: str) -> tuple[int, str]:
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out + out.err


@pytest.fixture
def old_run(tmp_path):
    for name in ("golden-v0.1", "golden-v0.1-archive"):
        shutil.copytree(HERE / "runs" / name, tmp_path / name)
    return tmp_path


def responses(run: Path) -> list[tuple]:
    with sqlite3.connect(run / "store.sqlite") as db:
        return sorted(db.execute("SELECT * FROM responses").fetchall())


@pytest.mark.parametrize("name", ["golden-v0.1", "golden-v0.1-archive"])
def test_old_run_reads_and_analyses(old_run, capsys, name):
    code, text = cli(capsys, "results", str(old_run / name))
    assert code == 0, text
    assert "trials 34, calls recorded 34, not yet run 0" in text
    code, text = cli(capsys, "analyze", str(old_run / name), "--only", "effects")
    assert code == 0, text
    assert (old_run / name / "analysis" / "tables" / "effects.csv").stat().st_size > 0


def test_old_live_run_resumes_without_a_single_call(old_run, capsys, tmp_path):
    run = old_run / "golden-v0.1"
    before = responses(run)
    code, text = cli(
        capsys, "run", str(STUDY), "--model", "synthetic/respondent", "-o", str(run), "--no-cache", "-q"
    )
    assert code == 0, text
    assert responses(run) == before  # every trial matched a stored answer: nothing re-asked
