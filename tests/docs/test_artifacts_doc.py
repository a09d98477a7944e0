"""docs/artifacts.md's column tables must equal the schema's (scripts/gen_artifacts_doc.py)."""

from __future__ import annotations

import importlib.util
import sqlite3
from pathlib import Path

from llmexp import schema

ROOT = Path(__file__).resolve().parents[2]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_artifacts_doc", ROOT / "scripts" / "gen_artifacts_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_artifacts_doc_matches_the_schema():
    committed = (ROOT / "docs" / "artifacts.md").read_text(encoding="utf-8")
    assert _generator().generate(committed) == committed, (
        "docs/artifacts.md is out of date with llmexp/schema.py; "
        "regenerate its column tables with: python scripts/gen_artifacts_doc.py"
    )


def test_every_column_is_documented_once():
    text = (ROOT / "docs" / "artifacts.md").read_text(encoding="utf-8")
    for name in schema.TRIAL_COLUMNS + schema.RESPONSE_COLUMNS:
        assert text.count(f"| `{name}` |") == 1, name


def test_drift_is_detected():
    """A column added to the schema but not to the page makes the check fail."""
    gen = _generator()
    committed = (ROOT / "docs" / "artifacts.md").read_text(encoding="utf-8")
    stale = committed.replace("| `latency` | float | seconds |\n", "")
    assert stale != committed
    assert gen.generate(stale) == committed


def test_store_table_is_the_schema(tmp_path):
    """The run store creates `responses` from the schema, identical to llmexp 0.1's table."""
    old = ROOT / "tests" / "golden" / "runs" / "golden-v0.1" / "store.sqlite"
    with sqlite3.connect(old) as db:
        (sql,) = db.execute("SELECT sql FROM sqlite_master WHERE name = 'responses'").fetchone()
    fresh = schema.create_table_sql("responses", schema.ResponseRow)
    assert fresh.replace("CREATE TABLE IF NOT EXISTS", "CREATE TABLE") == sql
    assert [c.name for c in schema.columns(schema.ResponseRow)] == list(schema.ResponseRow._fields)
