"""The run store, the scheduler and the results reader share one schema (llmexp/schema.py):
rows are typed `ResponseRow`s, the response table has exactly the schema's columns."""

from __future__ import annotations

import pytest
from runhelpers import make_study, make_trials

from llmexp import schema
from llmexp.runner import open_run, run_study
from llmexp.runner.store import RunStore

SYN = "synthetic/respondent"


def test_a_run_stores_typed_rows_and_reads_back_the_schema_columns(tmp_path):
    study = make_study(models=(SYN,), n_units=1, replicates=2)
    res = run_study(study, make_trials(study), run_dir=tmp_path / "run", progress=False)
    store = RunStore(tmp_path / "run", create=False)
    try:
        rows = store.response_rows()
    finally:
        store.close()
    assert rows and all(isinstance(r, schema.ResponseRow) for r in rows)
    assert {r.status for r in rows} == {"ok"} and all(r.model == SYN and r.finished_at for r in rows)
    df = open_run(res.run_dir).to_pandas()
    assert list(df.columns) == list(schema.TRIAL_COLUMNS + schema.RESPONSE_COLUMNS)
    assert df["valid"].map(type).eq(bool).all() and df["cache_hit"].map(type).eq(bool).all()
    assert str(df["value"].dtype) == "float64" and str(df["latency"].dtype) == "float64"


def test_readers_name_only_schema_columns():
    assert schema.names("design", "valid") == ("design", "valid")
    with pytest.raises(KeyError, match="not_a_column"):
        schema.names("design", "not_a_column")
    json_cols = {c.name for c in schema.columns(schema.TrialRow) if c.json}
    assert set(schema.JSON_TRIAL_COLUMNS) == json_cols and "messages" in json_cols
    assert schema.BOOL_RESPONSE_COLUMNS == ("valid", "cache_hit")
