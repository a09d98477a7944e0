"""End-to-end outputs: summary.json, refuters, tables, figures, report, CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

import llmexp.report as report_mod
from llmexp.analysis import analyze, names
from llmexp.report import write_report
from llmexp.spec import Baseline, Design
from tests.support.synthetic_responses import (
    Truth,
    human_baseline_rows,
    make_responses,
    make_study,
    price_expr,
)

ANALYSES = names()  # every registered analysis, in report order


def full_study():
    designs = (
        Design(name="blind", mode="blind"),
        Design(name="unblinded", mode="unblinded"),
        Design(name="fixed", mode="blind", pins={"competitor_price": price_expr().args[1]}),
        Design(name="within", mode="within"),
        Design(name="agg", mode="aggregate"),
        Design(name="agg_split", mode="aggregate", split=((0.0, 1.0), (1.0, 2.0))),
    )
    study = make_study(n_units=10, designs=designs, analyses=ANALYSES)
    truth = Truth(draws=4, leak={"blind": 0.3}, step=0.4, intercept=0.55, invalid_rate=0.02)
    base = Baseline(source="humans.csv", unit_column="product_id",
                    treatments={"price": "price_level"}, outcomes={"purchase": "buy"},
                    retest={"purchase": "buy_retest"}, where={"wave": 3},
                    rows=human_baseline_rows(study, truth, n_per_cell=8))
    study = study.model_copy(update={"baseline": base})
    return study, make_responses(study, truth, seed=4), truth


@pytest.fixture(scope="module")
def full(tmp_path_factory):
    study, df, truth = full_study()
    out = tmp_path_factory.mktemp("analysis")
    res = analyze(study, df, out_dir=out, n_boot=200, refute_simulations=10)
    return study, df, res, out


def test_summary_json_has_every_analysis_and_refuter_verdicts(full):
    study, _, res, out = full
    s = json.loads((out / "summary.json").read_text())
    assert s["analyses"] == list(ANALYSES)
    for key in ("demand_curve", "effects", "leakage", "focalism", "baseline", "range", "refute"):
        assert s[key], key
    refs = {(r["design"], r["check"]): r for r in s["refute"]}
    for d in ("blind", "unblinded", "fixed"):
        # the placebo is a sanity check: a correct estimator passes it
        assert refs[(d, "sanity: placebo treatment")]["verdict"] == "pass"
        assert refs[(d, "sanity: placebo treatment")]["kind"] == "sanity check"
        assert abs(refs[(d, "sanity: placebo treatment")]["check_estimate"]) < 0.1
    # the imagined-mediator check fails where the covariate leaks (blind, leak 0.3) only
    med = "mediator: treatment -> imagined competitor_price"
    assert refs[("blind", med)]["verdict"] == "fail"
    assert refs[("unblinded", med)]["verdict"] == "pass"
    # the fixed design pins the covariate: no imagined path, and no mediator in its graph
    assert refs[("fixed", med)]["verdict"] == "not tested"
    assert "imagined" not in refs[("fixed", "leave-one-unit-out")]["graph"]
    assert "imagined_competitor_price" in refs[("blind", med)]["graph"]
    leak = {r["design"]: r for r in s["leakage"]}
    assert leak["blind"]["flagged"] and not leak["unblinded"]["flagged"]
    foc = {r["design"]: r for r in s["focalism"]}
    # the pinned design's 0.4 step, as a difference in jumps against the unpinned designs;
    # 10 units x 4 draws give it little power (reported), so no flag is asserted
    diffs = [r for r in s["focalism"] if r["role"] == "difference"]
    assert len(diffs) == 5 and all(r["ci_low"] <= 0.4 <= r["ci_high"] for r in diffs)
    assert all(0.2 < r["jump"] < 0.6 and 0 < r["power_step"] < 1 for r in diffs)
    assert not foc["fixed"]["flagged"]  # a single design's jump is descriptive
    assert foc["human"]["role"] == "human"
    ranking = {r["design"]: r for r in s["baseline"]["design_ranking"]}
    assert s["baseline"]["design_ranking"][0]["design"] in ("agg", "agg_split")
    # the reference design has no difference to itself: missing with its reason, not 0 [0, 0]
    assert ranking["blind"]["mae_minus_reference"] is None and "reference design" in ranking["blind"]["diff_ci_note"]
    assert ranking["agg"]["reference"] == "blind"
    # aggregate answers are far less noisy than single draws: paired difference excludes 0
    assert ranking["agg"]["diff_ci_high"] < 0


def test_tables_written_as_csv_and_parquet(full):
    _, _, res, out = full
    for name in ("effects", "leakage", "pooled_cells", "design_ranking", "range", "refute"):
        csv = pd.read_csv(out / "tables" / f"{name}.csv")
        pq = pd.read_parquet(out / "tables" / f"{name}.parquet")
        assert len(csv) == len(pq) == len(res.tables[name]) > 0
    cells = res.tables["pooled_cells"]
    assert (cells["ci_low"] <= cells["mean"]).all() and (cells["mean"] <= cells["ci_high"]).all()
    for f in ("demand_curves", "leakage", "focalism", "cell_errors", "design_ranking", "range"):
        assert (out / "figures" / f"{f}.png").stat().st_size > 1000
        assert (out / "figures" / f"{f}.svg").read_text().lstrip().startswith("<?xml")


def test_report_html_embeds_figures_and_has_sections(full, tmp_path):
    _, _, res, _ = full
    html_path, md_path = write_report(res, tmp_path)
    html = html_path.read_text()
    assert "data:image/png;base64," in html
    for name in ANALYSES:
        assert f"<section id='analysis-{name}'>" in html, name
    assert "95% CI" in html
    md = md_path.read_text()
    assert "## Confound leakage" in md and "| design |" in md


def test_report_and_cli_on_a_run_dir(monkeypatch, tmp_path):
    study, df, _ = full_study()
    study = study.model_copy(update={"analyses": ("effects", "leakage")})
    monkeypatch.setattr(report_mod, "open_run_data", lambda run_dir: (study, df))
    paths = report_mod.report(tmp_path, add=["demand_curve"], n_boot=100)
    html = paths.html.read_text()
    assert paths.html == tmp_path / "report" / "report.html"
    assert "analysis-demand_curve" in html and "analysis-focalism" not in html
    assert (tmp_path / "analysis" / "summary.json").exists()

    from llmexp.cli.analysis import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    r = runner.invoke(app, ["analyze", str(tmp_path), "--only", "leakage"])
    assert r.exit_code == 0, r.output
    assert "leakage competitor_price blind" in r.output
    s = json.loads((tmp_path / "analysis" / "summary.json").read_text())
    assert s["analyses"] == ["leakage"]
    r = runner.invoke(app, ["report", str(tmp_path)])
    assert r.exit_code == 0, r.output
    assert str(tmp_path / "report" / "report.html") in r.output
