"""The analysis registry: an analysis is one class, and everything else asks the registry.

An analysis defined in this file alone is validated by `llmexp check`, run by `analyze`,
summarised and reported; one that fails is reported as not run while the others go on.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import llmexp.report as report_mod
from llmexp import check_text
from llmexp.analysis import Analysis, Context, analyze, catalogue, names, register, unregister
from llmexp.errors import AnalysisError, StudyError
from llmexp.lang import check_text as lang_check_text
from llmexp.report import write_report
from tests.support.synthetic_responses import Truth, make_responses, make_study


class DesignCounts(Analysis):
    """Valid outcome observations per design: needs two designs to compare."""

    name = "design_counts"
    title = "Observations per design"
    description = "How many valid outcome observations each design produced."
    report_tables = ("design_counts",)
    order = 10_080  # test analyses sort after every built-in one, whatever a contributor adds

    def unsupported(self, study):
        return None if len(study.designs) >= 2 else "it compares designs, and the study has one"

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        counts = ctx.obs.outcomes().groupby("design", as_index=False).size()
        return {"design_counts": counts.rename(columns={"size": "n"})}

    def summary_lines(self, tables):
        return [f"design_counts {r.design}: {r.n}" for r in tables["design_counts"].itertuples()]


class Unfit(Analysis):
    """Always fails the way an analysis whose data cannot support it does."""

    name = "unfit"
    title = "Unfit"
    description = "Never runs."
    report_tables = ("unfit",)
    order = 10_090
    error: Exception = AnalysisError("unfit needs a run this study never makes")

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        raise self.error


@pytest.fixture
def registered():
    """The test's analyses, registered for one test only (the registry is global)."""
    for cls in (DesignCounts, Unfit):
        register(cls)
    yield
    for cls in (DesignCounts, Unfit):
        unregister(cls.name)


STUDY = """study "t" seed 1
units items
  row id = "a", price = 2
  row id = "b", price = 4
treatment x = items.price * levels(1, 2) as money
context "You see {id} for {x}."
outcome buy: binary "yes" / "no"
  question "Do you buy it?"
DESIGNS
analyze effects, design_counts
"""


def test_registered_analysis_is_validated_from_its_declaration(registered):
    study, _ = check_text(STUDY.replace("DESIGNS", "modes blind, unblinded"), "t.study")
    assert study.analyses == ("effects", "design_counts")
    with pytest.raises(StudyError) as info:
        check_text(STUDY.replace("DESIGNS", "modes blind"), "t.study")
    (problem,) = info.value.problems
    assert problem.message == ("analysis 'design_counts' cannot run on this study: "
                               "it compares designs, and the study has one")
    assert (problem.line, problem.column) == (10, 18)
    assert list(catalogue())[-2:] == ["design_counts", "unfit"]  # by `order`


def test_unregistered_analysis_is_unknown_to_check():
    with pytest.raises(StudyError) as info:
        check_text(STUDY.replace("DESIGNS", "modes blind, unblinded"), "t.study")
    assert info.value.problems[0].message == "unknown analysis 'design_counts'"


def test_the_language_gets_its_catalogue_from_the_caller():
    text = STUDY.replace("DESIGNS", "modes blind, unblinded").replace(", design_counts", "")
    with pytest.raises(TypeError):
        lang_check_text(text, "t.study")  # no catalogue: no silent skipping of the checks
    with pytest.raises(StudyError, match="unknown analysis 'effects'"):
        lang_check_text(text, "t.study", analyses={})
    study, _ = lang_check_text(text, "t.study", analyses=catalogue())
    assert study.analyses == ("effects",)


def test_registered_analysis_runs_and_is_reported(registered, tmp_path):
    study = make_study(n_units=4, analyses=("effects", "design_counts"))
    res = analyze(study, make_responses(study, Truth(draws=2), seed=1), out_dir=tmp_path / "a",
                  n_boot=50)
    assert res.requested == ["effects", "design_counts"] and not res.not_run
    assert set(res.table("design_counts")["design"]) == {"blind", "unblinded"}
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert {r["design"] for r in summary["design_counts"]} == {"blind", "unblinded"}
    assert (tmp_path / "a" / "tables" / "design_counts.csv").exists()
    assert "design_counts blind: " in res.summary()
    html_path, md_path = write_report(res, tmp_path / "r")
    html = html_path.read_text()
    assert "<section id='analysis-design_counts'><h2>Observations per design</h2>" in html
    assert "## Observations per design" in md_path.read_text()


@pytest.mark.parametrize("error, reason", [
    (AnalysisError("unfit needs a run this study never makes"), "unfit needs a run this study never makes"),
    (np.linalg.LinAlgError("Singular matrix"), "numerical failure (LinAlgError: Singular matrix)"),
])
def test_failing_analysis_is_not_run_and_the_others_go_on(registered, monkeypatch, tmp_path, error, reason):
    monkeypatch.setattr(Unfit, "error", error)
    study = make_study(n_units=4, analyses=("effects", "unfit", "design_counts"))
    df = make_responses(study, Truth(draws=2), seed=1)
    monkeypatch.setattr(report_mod, "open_run_data", lambda run_dir: (study, df))
    paths = report_mod.report(tmp_path, n_boot=50)

    summary = json.loads((tmp_path / "analysis" / "summary.json").read_text())
    assert summary["analyses"] == ["effects", "design_counts", "unfit"]  # report order
    assert summary["not_run"] == {"unfit": reason}
    assert "unfit" not in summary and summary["effects"] and summary["design_counts"]
    html = paths.html.read_text()
    assert "<section id='analysis-unfit'>" in html and f"Not run: {reason}" in html
    assert "<h3 id='table-effects'>Effects</h3>" in html
    assert "<h3 id='table-design_counts'>Design counts</h3>" in html
    assert f"Not run: {reason}" in paths.markdown.read_text()


def test_nothing_runs_then_analyze_raises(registered):
    study = make_study(n_units=4, analyses=("unfit",))
    df = make_responses(study, Truth(draws=2), seed=1)
    with pytest.raises(AnalysisError, match="unfit needs a run"):
        analyze(study, df)
    res = analyze(study, df, requested=["unfit", "design_counts"])
    assert res.not_run == {"unfit": "unfit needs a run this study never makes"}
    assert "not run: unfit: unfit needs a run this study never makes" in res.summary()


def test_a_bug_in_an_analysis_is_not_hidden(registered, monkeypatch):
    monkeypatch.setattr(Unfit, "error", KeyError("column"))
    study = make_study(n_units=4, analyses=("effects", "unfit"))
    with pytest.raises(KeyError):
        analyze(study, make_responses(study, Truth(draws=2), seed=1))


BUILTIN_IN_REPORT_ORDER = ("demand_curve", "effects", "leakage", "focalism", "baseline", "range", "refute")


def test_builtin_analyses_in_report_order():
    """The report's section order, pinned: a new built-in analysis is added here at the place
    its `order` gives it (docs/ARCHITECTURE.md, 'Add an analysis')."""
    assert names() == BUILTIN_IN_REPORT_ORDER, "a new analysis? add its name to BUILTIN_IN_REPORT_ORDER in report order"


def test_catalogue_loads_no_statistics_or_plotting_library():
    """`llmexp check` asks every analysis's declaration; that must stay light."""
    code = ("import sys, llmexp.analysis as a; a.catalogue(); "
            "print(sorted(m for m in ('statsmodels', 'scipy', 'matplotlib', 'seaborn', 'dowhy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
