"""The three classic studies shipped with human figures (anchoring, decoy, snow shovel) check,
compile, run on the synthetic respondent, analyse and report, and their prompts never show a
condition label, a treatment identifier or a validation range.

tests/golden pins every shipped study (these three included).
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path

import pytest

import llmexp

STUDIES = Path(__file__).resolve().parents[2] / "studies"

# per study: the words a prompt must never contain (level labels, treatment names, the valid
# range's bounds and the column names holding them)
HIDDEN = {
    "anchoring": [r"\blow\b", r"\bhigh\b", r"\banchor\b", r"valid", r"\b100,?000\b", r"\b1,?000,?000\b", r"\b10,?000,?000\b"],
    "decoy": [r"\babsent\b", r"\bpresent\b", r"menu_offers", r"\bdecoy\b"],
    "snow_shovel": [r"after_storm", r"ordinary_day", r"\btiming\b"],
}


def _texts(trials) -> list[tuple[str, str]]:
    """(cell, all the prompt's text) per trial."""
    return [(row.cell, "\n".join(m["content"] for m in json.loads(row.messages))) for row in trials.itertuples()]


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_prompts_hide_labels_identifiers_and_ranges(name):
    trials = llmexp.compile(STUDIES / f"{name}.study")
    assert len(trials) > 0
    for cell, text in _texts(trials):
        for pattern in HIDDEN[name]:
            assert not re.search(pattern, text, re.IGNORECASE), (name, cell, pattern, text)


def test_hidden_words_are_caught_when_present():
    """The patterns above do find what they look for (the check can fail)."""
    leaky = "The anchor shown (low) was drawn; answer a number between 1 and 100000."
    assert all(re.search(p, leaky, re.IGNORECASE) for p in (r"\banchor\b", r"\blow\b", r"\b100,?000\b"))


def test_decoy_absent_arm_offers_no_print_only_option():
    trials = llmexp.compile(STUDIES / "decoy.study")
    for row in trials.itertuples():
        labels = json.loads(row.answer)["labels"]
        absent = row.cell.endswith("=absent")
        assert ("Print only" in labels) != absent, (row.cell, labels)
        text = json.loads(row.messages)[-1]["content"]
        offered = text[text.rindex("exactly one of:") :]  # the unblinded design statement names both menus
        assert ("Print only" in offered) != absent


def test_anchoring_asks_the_comparison_then_the_estimate_with_each_questions_own_anchor():
    trials = llmexp.compile(STUDIES / "anchoring.study")
    first = trials[trials["target"] == "comparison"]
    seen = {(r.unit_id, r.cell): t for r, (_, t) in zip(first.itertuples(), _texts(first))}
    assert "than 45500 feet" in seen[("everest", "anchor=high")].replace(",", "")
    assert "than 100 babies" in seen[("babies", "anchor=low")].replace(",", "")
    second = trials[trials["target"] == "estimate"]
    ids = set(first["trial_id"])
    assert len(second) == len(first) and second["follows"].isin(ids).all()  # one conversation


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each study run on the synthetic respondent with 2 replicates, and its report."""
    from llmexp.report import report

    out = {}
    for name in sorted(HIDDEN):
        folder = tmp_path_factory.mktemp(name)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # analyse and report print no Python warning
            res = llmexp.run(STUDIES / f"{name}.study", out=folder / "run", models="synthetic/respondent", replicates=2, quiet=True)
            paths = report(res.run_dir, n_boot=50)
        out[name] = (Path(res.run_dir), paths)
    return out


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_runs_analyses_and_reports(runs, name):
    run, paths = runs[name]
    html = paths.html.read_text()
    assert "Results by condition" in html
    assert "could not run" not in html.lower()
    assert (run / "analysis" / "tables" / "pooled_cells.csv").exists()


def test_snow_shovel_report_puts_simulated_beside_82_percent_of_107(runs):
    html = runs["snow_shovel"][1].html.read_text()
    assert re.search(r"vs 82% \[7\d%, 8\d%\] of 107 humans", html), "no side-by-side sentence"


def test_data_readmes_cite_their_sources():
    for folder, cite in (("anchoring", "Klein"), ("decoy", "Ariely"), ("snow_shovel", "Kahneman")):
        text = (STUDIES / "data" / folder / "README.md").read_text()
        assert cite in text and "Provenance" in text


FACTORIAL = '''study "framing-credibility"
  description "2x2: gain/loss frame x expert/anonymous source; agreement 1-7"
  seed 3
units advice
  row advice = "exercise"
treatment frame = levels("gain" = "People who exercise gain years of healthy life.",
                         "loss" = "People who do not exercise lose years of healthy life.") between
  description "framing of the advice"
treatment source = levels("expert" = "a professor of medicine", "anon" = "an anonymous forum post") between
  description "source of the advice"
context """
  You read this, from {source}: {frame}
  """
outcome agree: likert 1 to 7
  question "How much do you agree that you should exercise more?"
modes blind, unblinded
model "synthetic/respondent" replicates 3
analyze effects
'''


@pytest.mark.slow
@pytest.mark.parametrize("name", [*sorted(HIDDEN), "factorial"])
def test_reports_read_well_in_chromium(runs, name, tmp_path):
    """No horizontal overflow at 1280 px, every figure loaded, no NaN, a headline: for the
    three classic studies and a 2x2 Likert factorial (an interaction plot)."""
    from tests.report.test_browser import BROWSER, measure

    if BROWSER is None:
        pytest.skip("no Chromium: apt-get install chromium")
    if name == "factorial":
        from llmexp.report import report

        path = tmp_path / "factorial.study"
        path.write_text(FACTORIAL)
        html = report(llmexp.run(path, out=tmp_path / "run", quiet=True).run_dir, n_boot=50).html
        assert "gain · expert" in html.read_text()  # the factorial cells, each named by its labels
    else:
        html = runs[name][1].html
    m = measure(html, tmp_path)
    assert m["scroll_width"] <= m["width"] == 1280, m
    assert m["images"] >= 1 and m["broken"] == 0, m
    assert not m["nan"] and m["headline"], m
