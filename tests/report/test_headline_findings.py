"""The headline states as findings only what the numbers support (issue 10 / 12): leakage is
judged without echoes of the shown price, a design's own focalism jump is descriptive, and the
refuters' rows (checks that repeat the effect estimate) are not findings. Built on the
committed embedded-model run, whose raw blind leakage index 0.41 [0.12, 0.70] the old headline
stated as a finding although 30% of those answers repeat the price shown."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from llmexp.analysis.core import AnalysisResult
from llmexp.report.headline import headline
from llmexp.spec import Study

TABLES = Path(__file__).resolve().parents[2] / "docs" / "replication" / "run" / "analysis" / "tables"


def _result(**tables: pd.DataFrame) -> AnalysisResult:
    study = Study.model_construct(name="s", designs=(), models=())
    return AnalysisResult(study=study, requested=list(tables), tables=tables, summary_data={})


def test_leakage_with_echoes_is_judged_without_them():
    leak = pd.read_parquet(TABLES / "leakage.parquet")
    blind = leak[(leak["design"] == "blind") & (leak["covariate"] == "competitor_price")].iloc[0]
    assert blind["ci_low"] > 0 and blind["ci_no_echo_low"] < 0 < blind["ci_no_echo_high"]  # the data that broke it
    head = headline(_result(leakage=leak))
    assert not any("competitor_price" in f and "design blind" in f for f in head.findings)
    said = [u for u in head.unclear if "design blind (competitor_price)" in u][0]
    assert "30% of the answers repeat the value shown" in said and "without them 0.187" in said


def test_leakage_without_echoes_is_a_finding_when_its_interval_excludes_zero():
    leak = pd.read_parquet(TABLES / "leakage.parquet").head(1).copy()
    leak[["echo_share", "ci_no_echo_low", "ci_no_echo_high", "index_no_echo"]] = [0.0, 0.2, 0.6, 0.4]
    assert [f for f in headline(_result(leakage=leak)).findings if "leakage index" in f]


def test_focalism_findings_are_differences_in_jumps_only():
    foc = pd.read_parquet(TABLES / "focalism.parquet")
    unpinned = foc[(foc["role"] == "unpinned") & (foc["ci_low"] > 0)]
    assert len(unpinned)  # e.g. unblinded's own jump 0.010 [0.002, 0.017]: descriptive
    head = headline(_result(focalism=foc))
    assert not any("unpinned" in s for s in head.findings + head.unclear)
    assert any("competitor_fixed - blind" in s for s in head.findings + head.unclear)  # pinned minus unpinned


def test_refuter_rows_are_not_findings():
    ref = pd.read_parquet(TABLES / "refute.parquet")
    head = headline(_result(refute=ref))
    assert head.findings == [] and head.unclear == []
