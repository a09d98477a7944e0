"""`llmexp diagnose FILE`: the table, JSON/CSV output, and clear errors (exit 2, no traceback)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from diaghelp import QUICK

from llmexp.cli import main


def _run(capsys, *args):
    code = 0
    try:
        main(list(args))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    out = capsys.readouterr()
    return code, out.out, out.err


def test_quick_study_prints_the_table_and_the_dry_run_cost(capsys, tmp_path):
    code, out, err = _run(capsys, "diagnose", str(QUICK), "--sims", "50", "--replicates", "1,3")
    assert code == 0, err
    for design in ("blind", "unblinded", "aggregate", "competitor_fixed"):
        assert design in out
    assert "leakage competitor_price" in out and "power" in out and "coverage" in out
    # one cost line per replicates setting, identical to `llmexp run --dry-run`'s
    for reps in (1, 3):
        code_r, out_r, err_r = _run(capsys, "run", str(QUICK), "--dry-run", "--replicates", str(reps),
                                    "--out", str(tmp_path / f"fresh{reps}"))
        assert code_r == 0, err_r
        line = next(s for s in out_r.splitlines() if s.startswith("estimated cost:"))
        assert f"replicates {reps}: {line}" in out
        assert f"for {468 * reps} calls" in line


def test_json_and_csv_outputs(capsys, tmp_path):
    code, out, err = _run(capsys, "diagnose", str(QUICK), "--sims", "20", "--replicates", "1,2", "--json",
                          "--design", "blind,unblinded", "--leakage", "0.4", "--power", "0.8",
                          "--param", "noise=0.1", "-o", str(tmp_path / "d.csv"))
    assert code == 0, err
    data = json.loads(out)
    assert data["sims"] == 20 and data["power_target"] == 0.8
    assert {e["design"] for e in data["estimands"]} == {"blind", "unblinded"}
    assert {e["replicates"] for e in data["estimands"]} == {1, 2}
    params = next(iter(data["respondent_params"].values()))
    assert params["leakage"] == 0.4 and params["noise"] == 0.1
    assert [c["calls"] for c in data["cost"]] == [468, 936]
    csv = pd.read_csv(tmp_path / "d.csv")
    assert len(csv) == len(data["estimands"]) and {"bias", "rmse", "power", "coverage"} <= set(csv.columns)


@pytest.mark.parametrize("args,message", [
    (["--sims", "1"], "--sims must be at least 2"),
    (["--sims", "abc"], "Invalid value for '--sims'"),
    (["--replicates", "0,2"], "at least 1"),
    (["--replicates", "1,x"], "not a whole number"),
    (["--design", "nope"], "unknown design"),
    (["--param", "effect"], "use name=value"),
    (["--param", "effect=big"], "not a number"),
    (["--alpha", "2"], "--alpha must be between 0 and 1"),
    (["--power", "80"], "--power must be between 0 and 1"),
    (["--out", "x.txt"], ".json, .csv or .parquet"),
    (["--pilot", "/nonexistent/run"], "no run directory"),
])
def test_bad_options_give_a_clear_error(capsys, args, message):
    code, out, err = _run(capsys, "diagnose", str(QUICK), "--sims", "5", *args) if args[0] != "--sims" else \
        _run(capsys, "diagnose", str(QUICK), *args)
    assert code == 2
    assert message in out + err
    assert "Traceback" not in out + err


def test_missing_study_file(capsys, tmp_path):
    code, out, err = _run(capsys, "diagnose", str(tmp_path / "none.study"))
    assert code == 2 and "Traceback" not in err
