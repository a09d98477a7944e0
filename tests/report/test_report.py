"""The HTML report: headline findings with their intervals, the not-evidence banner, methods,
readable tables (no NaN, human column names), sections for analyses that could not run,
warnings turned into notes, autoescaped text."""

from __future__ import annotations

import re
import warnings
from html import unescape

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis import Analysis, Context, analyze, register, unregister
from llmexp.errors import AnalysisError
from llmexp.report import write_report
from llmexp.report.headline import headline, not_evidence
from llmexp.report.tables import display, fmt_number, human
from llmexp.spec import ModelSpec
from tests.support.synthetic_responses import Truth, make_responses, make_study

ROWS = pd.DataFrame({
    "design": ["shown", "spans", "missing"],
    "estimate": [0.5, 0.1, np.nan],
    "se": [0.1, 0.15, np.nan],
    "ci_low": [0.2, -0.2, np.nan],
    "ci_high": [0.8, 0.4, np.nan],
    "p_value": [0.001, 0.5, np.nan],
    "note": ["", "", "one unit: no interval over units"],
})


class Known(Analysis):
    """Returns `ROWS`: one finding, one interval spanning zero, one missing estimate."""

    name = "known_rows"
    title = "Known rows"
    description = "Rows whose verdicts are known."
    report_tables = ("known_rows",)
    order = 85
    rows = ROWS

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return {"known_rows": self.rows.copy()}


class Noisy(Analysis):
    """Raises numerical warnings while it fits, like statsmodels on a degenerate cell."""

    name = "noisy"
    title = "Noisy"
    description = "Warns while it fits."
    report_tables = ("noisy",)
    order = 86

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        with np.errstate(divide="warn", invalid="warn"):
            np.log(np.zeros(3))
            np.log(np.zeros(3))
        warnings.warn("the fit did not converge", RuntimeWarning, stacklevel=1)
        return {"noisy": pd.DataFrame({"design": ["a"], "n": [1]})}


class Broken(Analysis):
    name = "broken"
    title = "Broken"
    description = "Never runs."
    report_tables = ("broken",)
    order = 87

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        raise AnalysisError("too few cells after the pilot: 1 of the 2 needed")


@pytest.fixture
def registered():
    for cls in (Known, Noisy, Broken):
        register(cls)
    yield
    for cls in (Known, Noisy, Broken):
        unregister(cls.name)


def visible_text(html: str) -> str:
    """The page's text as a reader sees it (no tags, no embedded images)."""
    html = re.sub(r"<(style|script)[^>]*>.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def run_known(tmp_path, analyses=("effects", "known_rows"), model="synthetic/test", rows=ROWS,
              monkeypatch=None):
    if monkeypatch is not None:
        monkeypatch.setattr(Known, "rows", rows)
    study = make_study(n_units=4, analyses=analyses)
    study = study.with_models([ModelSpec(name=model)])
    df = make_responses(study, Truth(draws=2), seed=1)
    res = analyze(study, df, out_dir=tmp_path / "analysis", n_boot=50)
    html, md = write_report(res, tmp_path / "report", responses=df)
    return res, html.read_text(), md.read_text()


def test_headline_says_what_the_intervals_support(registered, tmp_path):
    res, html, _ = run_known(tmp_path)
    head = headline(res)
    known = [f for f in head.findings + head.unclear if f.startswith("Known rows")]
    assert any("design shown" in f and "0.5 (95% interval 0.2 to 0.8)" in f
               and "whole interval is above zero" in f for f in head.findings), head.findings
    assert any("design spans" in f and "cannot be concluded, the interval includes zero" in f
               for f in head.unclear), head.unclear
    assert any("design missing" in f and "cannot be concluded, no estimate "
               "(one unit: no interval over units)" in f for f in head.unclear), head.unclear
    assert len(known) == 3
    assert "id=\"headline\"" in html and "What the numbers support" in html
    assert "whole interval is above zero" in html


def test_headline_verdicts_follow_the_numbers(registered, tmp_path, monkeypatch):
    """Data built to break the rule: flip the intervals and the verdicts must flip."""
    flipped = ROWS.assign(ci_low=[-0.1, 0.05, np.nan], ci_high=[0.8, 0.4, np.nan])
    res, _, _ = run_known(tmp_path, rows=flipped, monkeypatch=monkeypatch)
    head = headline(res)
    assert any("design spans" in f for f in head.findings)
    assert any("design shown" in f and "includes zero" in f for f in head.unclear)


def test_tables_have_human_names_rounded_numbers_and_explained_gaps(registered, tmp_path):
    _, html, md = run_known(tmp_path)
    text = visible_text(html)
    assert "NaN" not in text and "nan" not in text.split() and "None" not in text.split()
    section = html[html.index("<section id='analysis-known_rows'>"):]
    section = section[:section.index("</section>")]
    assert "<th>95% CI</th>" in section and "<th>p</th>" in section and "ci_low" not in section
    assert "[0.2, 0.8]" in section and "—" in section
    assert "missing, —: one unit: no interval over units" in section or \
        "one unit: no interval over units" in section.split("not computed")[-1]
    assert "| design | estimate | 95% CI |" in md


def test_format_helpers():
    assert human("p_value") == "p" and human("echo_share") == "echo share"
    assert human("n_units") == "units"
    assert fmt_number(float("nan")) == "—" and fmt_number(0.123456) == "0.123"
    assert fmt_number(12.3456) == "12.3" and fmt_number(3.0) == "3" and fmt_number(123456.7) == "123,457"
    wide = pd.DataFrame({"design": ["a", "b"], "estimate": [1.0, 2.0], "se": [0.1, 0.1],
                         "ci_low": [0.5, 1.5], "ci_high": [1.5, 2.5], "extra_1": [1, 2],
                         "extra_2": [3, 4], "note": ["", ""]})
    short = display(wide, short=True)
    assert list(short.columns) == ["design", "estimate", "95% CI"]  # empty notes dropped
    assert "extra 1" in display(wide, short=False).columns


@pytest.mark.parametrize("model, expected", [
    ("synthetic/respondent", "synthetic respondent"),
    ("llmexp/gemma3-270m", "small embedded toy model"),
    ("openai/gpt-4o-mini", None),
])
def test_banner_for_simulated_and_toy_models(registered, tmp_path, model, expected):
    _, html, _ = run_known(tmp_path, model=model)
    banners, problems = not_evidence([model])
    assert not problems
    if expected is None:
        assert not banners and "id=\"not-evidence\"" not in html
    else:
        assert expected in banners[0] and "not evidence about people" in banners[0]
        assert "id=\"not-evidence\"" in html and expected in html


def test_an_analysis_that_cannot_run_gets_its_section(registered, tmp_path):
    res, html, md = run_known(tmp_path, analyses=("effects", "broken", "known_rows"))
    assert res.not_run == {"broken": "too few cells after the pilot: 1 of the 2 needed"}
    section = html[html.index("<section id='analysis-broken'>"):]
    assert "This analysis could not run" in section[:600]
    assert "Not run: too few cells after the pilot: 1 of the 2 needed" in section[:600]
    assert "Could not run: Broken" in html
    assert "<section id='analysis-known_rows'>" in html


def test_numerical_warnings_become_notes_not_spam(registered, tmp_path):
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        res, html, _ = run_known(tmp_path, analyses=("noisy", "known_rows"))
    assert not [str(w.message) for w in leaked]
    notes = res.analysis_notes["noisy"]
    assert any("divide by zero encountered in log (2 times)" in n for n in notes), notes
    assert any("RuntimeWarning: the fit did not converge" in n for n in notes), notes
    section = html[html.index("<section id='analysis-noisy'>"):]
    assert "the fit did not converge" in section[:2000]
    assert "known_rows" not in res.analysis_notes


def test_numerical_warnings_leak_without_the_catch(registered, tmp_path, monkeypatch):
    """The check above fails when the catch is gone: the warnings reach the caller."""
    import llmexp.analysis.core as core

    class NoCatch:
        def __init__(self, notes):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return None

    monkeypatch.setattr(core, "caught", NoCatch)
    with warnings.catch_warnings(record=True) as leaked:
        warnings.simplefilter("always")
        res, _, _ = run_known(tmp_path, analyses=("noisy", "known_rows"))
    assert any("did not converge" in str(w.message) for w in leaked)
    assert "noisy" not in res.analysis_notes


def test_text_is_escaped(registered, tmp_path):
    study = make_study(n_units=4, analyses=("known_rows",))
    study = study.model_copy(update={"description": "<script>alert(1)</script> & more"})
    df = make_responses(study, Truth(draws=2), seed=1)
    res = analyze(study, df, n_boot=50, figures=False)
    html = write_report(res, tmp_path, responses=df)[0].read_text()
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in html


def test_methods_show_prompts_models_counts_and_versions(registered, tmp_path):
    import llmexp

    _, html, _ = run_known(tmp_path)
    methods = html[html.index("<section id=\"methods\">"):html.index("<section id='analysis-")]
    assert "Prompts: one per design" in methods
    assert methods.count("<div class=\"prompt\">") == 2  # blind and unblinded
    assert "<span class=\"role\">user" in methods  # the messages as the model saw them
    assert "synthetic/test" in methods and f"<dd>{llmexp.__version__}</dd>" in methods
    assert "Answer validity" in methods and "The study file" in methods


@pytest.mark.slow
def test_report_of_a_real_run(tiny_report):
    html = tiny_report.read_text()
    text = visible_text(html)
    assert "tiny-demand" in html and "synthetic respondent" in html
    assert "NaN" not in text
    assert "Would you purchase this product?" in html  # a rendered prompt
    assert 'study "tiny-demand"' in unescape(html)  # the study file itself
    for name in ("effects", "leakage"):
        assert f"<section id='analysis-{name}'>" in html
    assert re.search(r"src=\"data:image/png;base64,", html)
