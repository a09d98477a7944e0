"""The report's results by condition: means and shares per condition with intervals, small
multiples, human numbers side by side, a colour-blind-safe palette, tick labels that do not
run into each other, and a readable report when no analysis can run."""

from __future__ import annotations

import re
import shutil
import sqlite3
from html import unescape

import matplotlib
import numpy as np
import pandas as pd
import pytest

from llmexp.analysis import analyze
from llmexp.report import conditions, figures, report, write_report
from llmexp.report.by_condition import by_condition, comparison_sentences
from tests.report.test_report import visible_text
from tests.support.synthetic_responses import Truth, make_responses, make_study

matplotlib.use("Agg")


def test_split_cell_keeps_commas_inside_level_text():
    names = ["frame", "source"]
    assert conditions.split_cell("frame=gain,source=expert", names) == {"frame": "gain", "source": "expert"}
    menu = "offers=Web only: $59 a year, online access. Print and web: $125"
    assert conditions.split_cell(menu, ["offers"]) == {"offers": "Web only: $59 a year, online access. Print and web: $125"}
    assert conditions.split_cell("a=1|b=x", ["a", "b"]) == {"a": "1", "b": "x"}


def test_canonical_matches_numeric_levels_written_differently():
    assert conditions.canonical("price=0", ["price"]) == conditions.canonical("price=0.0", ["price"])
    assert conditions.canonical("price=0.2", ["price"]) != conditions.canonical("price=0.4", ["price"])


@pytest.fixture(scope="module")
def analysed():
    """A three-unit synthetic study's analysis (effects), shared by the tests below."""
    study = make_study(n_units=3, analyses=("effects",))
    df = make_responses(study, Truth(draws=2), seed=4)
    return study, analyze(study, df, n_boot=50)


def test_means_follow_the_pooled_cells_and_the_study_order(analysed):
    study, res = analysed
    sim = conditions.means(study, res.tables)
    pooled = res.tables["pooled_cells"]
    assert len(sim) == len(pooled)
    merged = sim.merge(pooled, on=["design", "model", "cell"], suffixes=("", "_p"))
    assert np.allclose(merged["mean"], merged["mean_p"])
    designs = [d.name for d in study.designs]
    seen = list(dict.fromkeys(sim["design"]))
    assert seen == [d for d in designs if d in seen]  # declared order, not alphabetical


def test_side_by_side_puts_human_numbers_beside_simulated_ones():
    sim = pd.DataFrame(
        {
            "design": ["blind", "blind"],
            "model": ["m", "m"],
            "outcome": ["y", "y"],
            "condition": ["storm", "calm"],
            "key": ["t=storm", "t=calm"],
            "mean": [0.5, 0.3],
            "ci_low": [0.3, 0.1],
            "ci_high": [0.7, 0.5],
            "n": [20, 20],
        }
    )
    hum = pd.DataFrame({"outcome": ["y"], "key": ["t=storm"], "human": [0.82], "human_ci_low": [0.74], "human_ci_high": [0.88], "human_n": [107.0]})
    side = conditions.side_by_side(sim, hum)
    assert len(side) == 1  # the condition without a human number is not compared
    row = side.iloc[0]
    assert row["condition"] == "storm" and row["human"] == 0.82
    assert row["difference"] == pytest.approx(0.5 - 0.82)


def test_humans_are_pooled_by_n_with_a_wilson_interval_for_shares():
    study = make_study(n_units=2, analyses=("effects",))
    out = study.outcomes[0].name
    tables = {
        "human_cells": pd.DataFrame({"outcome": [out, out], "unit_id": ["u0", "u1"], "key": ["t=a", "t=a"], "n": [100.0, 300.0], "human": [0.2, 0.6]})
    }
    h = conditions.humans(study, tables)
    assert h["human"].iloc[0] == pytest.approx((0.2 * 100 + 0.6 * 300) / 400)
    lo, hi = h["human_ci_low"].iloc[0], h["human_ci_high"].iloc[0]
    assert lo < 0.5 < hi and hi - lo < 0.11  # Wilson on n = 400, not on one unit
    from statsmodels.stats.proportion import proportion_confint

    assert (lo, hi) == pytest.approx(proportion_confint(200, 400, method="wilson"), abs=1e-9)


def test_figures_use_the_okabe_ito_palette_and_small_multiples(analysed, tmp_path):
    study, res = analysed
    bc = by_condition(study, res.tables, tmp_path)
    assert bc.figures and all(f["file"].endswith(".png") for f in bc.figures)
    assert list(tmp_path.glob("*.svg"))  # every figure also as SVG
    svg = next(tmp_path.glob("*.svg")).read_text()
    colours = set(re.findall(r"#[0-9a-f]{6}", svg.lower()))
    assert figures.OKABE_ITO[0].lower() in colours
    assert not colours & {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728"}  # matplotlib's default cycle
    # one panel per design: the SVG holds one axes title per design
    for d in {d.name for d in study.designs}:
        assert f"{d}" in svg or d.replace("_", " ") in svg


def _overlaps(ax) -> bool:
    fig = ax.figure
    fig.canvas.draw()
    boxes = [t.get_window_extent() for t in ax.get_xticklabels() if t.get_text()]
    return any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_long_condition_labels_do_not_run_into_each_other():
    import matplotlib.pyplot as plt

    order = [f"People who follow this advice number {i} gain many healthy years" for i in range(6)]
    g = pd.DataFrame({"condition": order, "key": order, "mean": np.arange(6.0), "ci_low": np.arange(6.0) - 1, "ci_high": np.arange(6.0) + 1})
    fig, axes = figures._grid(1, wide=True)
    figures._condition_axis(axes[0], g, order, pd.DataFrame(), "mean y")
    assert not _overlaps(axes[0])
    # data built to break it: the same labels unwrapped do overlap
    axes[0].set_xticks(range(6), order)
    assert _overlaps(axes[0])
    plt.close(fig)


def test_tick_numbers_are_readable():
    assert figures.tick(2_500_000) == "2.5M" and figures.tick(45_500) == "45.5k"
    assert figures.tick(1500) == "1,500" and figures.tick(0.25) == "0.25"


def test_missing_interval_draws_no_bar_instead_of_a_fake_one():
    g = pd.DataFrame({"mean": [0.5], "ci_low": [np.nan], "ci_high": [np.nan]})
    assert (figures._err(g, "mean", "ci_low", "ci_high") == 0).all()


def test_a_bound_rounded_past_its_estimate_still_draws(tmp_path):
    """A Wilson bound of 5.6e-17 above a share of 0 (seen on an embedded-model pilot) made
    matplotlib refuse the whole figure."""
    sh = pd.DataFrame(
        {
            "design": ["blind"] * 2,
            "model": ["m"] * 2,
            "outcome": ["c"] * 2,
            "condition": ["absent"] * 2,
            "option": ["A", "B"],
            "share": [0.0, 1.0],
            "ci_low": [5.551115123125783e-17, 0.43],
            "ci_high": [0.56, 1.0],
        }
    )
    assert figures._err(sh, "share", "ci_low", "ci_high").min() == 0.0
    assert figures.shares_figure(sh, "c", tmp_path)


def test_comparison_sentence_states_both_numbers_with_intervals():
    study = make_study(n_units=1, analyses=("effects",))
    out = study.outcomes[0].name
    side = pd.DataFrame(
        {
            "design": ["blind"],
            "model": ["m"],
            "outcome": [out],
            "condition": ["storm"],
            "simulated": [0.64],
            "simulated_ci_low": [0.5],
            "simulated_ci_high": [0.76],
            "human": [0.82],
            "human_ci_low": [0.74],
            "human_ci_high": [0.88],
            "human_n": [107.0],
        }
    )
    (sentence,) = comparison_sentences(study, side)
    assert "64% [50%, 76%]" in sentence and "vs 82% [74%, 88%] of 107 humans" in sentence


def test_report_shows_results_by_condition(analysed, tmp_path):
    study, res = analysed
    html, _ = write_report(res, tmp_path / "report")
    text = html.read_text()
    assert 'id="by-condition"' in text and "Results by condition" in text
    assert "conditions_" in text and "data:image/png;base64," in text


@pytest.fixture
def dead_run(tiny_run, tmp_path):
    """A copy of the tiny run in which every answer is invalid: no analysis can run."""
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("report", "analysis", "run.lock"))
    with sqlite3.connect(run / "store.sqlite") as db:
        db.execute("UPDATE responses SET valid = 0")
    return run


def test_a_run_where_no_analysis_can_run_still_gets_a_readable_report(dead_run):
    paths = report(dead_run, n_boot=20)
    html = paths.html.read_text()
    text = unescape(visible_text(html))
    assert "No analysis could run" in text
    for name in ("analysis-effects", "analysis-leakage"):
        section = html[html.index(f"<section id='{name}'>") :]
        section = unescape(section[: section.index("</section>")])
        assert "Not run: no valid responses to analyse" in section
    assert "Prompts: one per design" in text and "Counts" in text  # the run is still described
    assert "0 valid answers" in text and "no directional finding" not in text
    assert "NaN" not in text


def test_table_warnings_become_section_notes_once():
    from llmexp.report import _warnings

    df = pd.DataFrame({"design": ["a", "b", "c"], "warning": ["built from ONE cell", "built from ONE cell", None]})
    assert _warnings(df, []) == ["built from ONE cell"]
    assert _warnings(df, ["built from ONE cell"]) == []
    assert _warnings(df.drop(columns="warning"), []) == []


def _demand_points(designs: int) -> pd.DataFrame:
    rows = []
    for d in range(designs):
        for lv in (0.5, 1.0, 1.5):
            rows.append(
                {"design": f"d{d}", "model": "m", "target": "buy", "level": lv, "mean": 1 - lv / 2, "ci_low": 0.9 - lv / 2, "ci_high": 1.1 - lv / 2}
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("designs", "panels"), [(2, 1), (3, 1), (5, 5)])
def test_demand_curves_become_small_multiples_with_many_designs(tmp_path, designs, panels):
    from llmexp.analysis.plots import demand_figure

    human = pd.DataFrame({"outcome": ["buy"] * 3, "level": [0.5, 1.0, 1.5], "human": [0.8, 0.5, 0.2], "n": [10, 10, 10]})
    paths = demand_figure(_demand_points(designs), tmp_path, human=human)
    svg = next(p for p in paths if p.suffix == ".svg").read_text()
    assert len(re.findall(r'<g id="axes_\d+"', svg)) == panels


def test_more_panels_than_fit_are_said_to_be_cut(tmp_path):
    study = make_study(n_units=1, analyses=("effects",))
    out = study.outcomes[0].name
    t = study.treatments[0].name
    rows = [
        {
            "design": f"d{i:02d}",
            "mode": "blind",
            "model": "m",
            "target": out,
            "cell": f"{t}={lv}",
            "level": np.nan,
            "n": 5,
            "n_units": 1,
            "mean": 0.5,
            "ci_low": 0.3,
            "ci_high": 0.7,
        }
        for i in range(figures.MAX_PANELS + 1)
        for lv in ("a", "b")
    ]
    bc = by_condition(study, {"pooled_cells": pd.DataFrame(rows)}, tmp_path)
    assert any(f"first {figures.MAX_PANELS} of {figures.MAX_PANELS + 1}" in n for n in bc.notes), bc.notes
    few = by_condition(study, {"pooled_cells": pd.DataFrame(rows[:4])}, tmp_path)
    assert not few.notes and few.figures


def test_many_conditions_get_one_summary_sentence_with_the_gap_per_design():
    from llmexp.report.by_condition import summary_sentence

    side = pd.DataFrame(
        {
            "design": ["blind"] * 3 + ["aggregate"] * 3,
            "model": ["m"] * 6,
            "condition": ["0", "1", "2"] * 2,
            "difference": [0.1, -0.3, 0.2, 0.05, -0.05, 0.0],
        }
    )
    text = summary_sentence(side)
    assert "in 3 conditions" in text and "blind 0.2, aggregate 0.0333" in text


@pytest.mark.parametrize(("scales", "per_unit"), [((1.0, 2.0, 3.0), False), ((10.0, 1e4, 1e6), True)])
def test_units_are_drawn_apart_only_when_their_scales_differ(scales, per_unit):
    study = make_study(n_units=3, analyses=("effects",), outcome_type="number")
    numeric = study.outcomes[0].name
    assert not any(conditions.outcome_kind(study, numeric)[:2])
    t = study.treatments[0].name
    rows = [
        {
            "design": "blind",
            "model": "m",
            "target": numeric,
            "unit_id": f"u{i}",
            "cell": f"{t}={lv}",
            "mean": s * (1 + lv),
            "ci_low": s,
            "ci_high": s * 3,
        }
        for i, s in enumerate(scales)
        for lv in (0, 1)
    ]
    got = conditions.unit_means(study, {"unit_cells": pd.DataFrame(rows)})
    assert (not got.empty) == per_unit
