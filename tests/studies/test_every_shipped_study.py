"""Every shipped study, as a stratified pilot on the synthetic respondent, runs, analyses and
reports with no Python warning (issue 12: "analyze and report print no Python warnings on any
shipped study"); a pilot report and a new-product willingness-to-pay study read well in Chromium.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

import llmexp

STUDIES = Path(__file__).resolve().parents[2] / "studies"
SHIPPED = sorted(p.stem for p in STUDIES.glob("*.study"))

NEW_PRODUCT = '''study "new-product-wtp"
  description "Willingness to pay for three new products, described plainly or with a sustainability claim"
  seed 5
units concepts
  row concept_id = "bottle", concept = "a self-cleaning water bottle"
  row concept_id = "lamp", concept = "a solar desk lamp"
  row concept_id = "socks", concept = "merino running socks"
treatment claim = levels("plain" = "", "eco" = "It is made from recycled materials.") between
  description "product claim"
context """
  A new product is about to launch: {concept}. {claim}
  """
outcome wtp: money valid 0 to 500
  question "What is the most you would pay for it, in dollars?"
modes blind, unblinded
model "synthetic/respondent" replicates 3
analyze effects
'''


def _quiet_report(study: Path, out: Path, **run):
    from llmexp.report import report

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = llmexp.run(study, out=out, models="synthetic/respondent", quiet=True, **run)
        return Path(res.run_dir), report(res.run_dir, n_boot=50)


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_a_pilot_of_every_shipped_study_reports_without_warnings(name, tmp_path):
    run, paths = _quiet_report(STUDIES / f"{name}.study", tmp_path / "run", pilot=40, replicates=1)
    assert paths.html.exists() and "Headline" in paths.html.read_text()
    assert (run / "analysis" / "summary.json").exists()


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["new_product", "demand_pilot"])
def test_new_product_and_pilot_reports_read_well_in_chromium(shape, tmp_path):
    from tests.report.test_browser import BROWSER, measure

    if BROWSER is None:
        pytest.skip("no Chromium: apt-get install chromium")
    if shape == "new_product":
        study = tmp_path / "wtp.study"
        study.write_text(NEW_PRODUCT)
        _, paths = _quiet_report(study, tmp_path / "run")
        assert "plain" in paths.html.read_text() and "eco" in paths.html.read_text()
    else:
        _, paths = _quiet_report(STUDIES / "demand_quick.study", tmp_path / "run", pilot=20, replicates=1)
    m = measure(paths.html, tmp_path)
    assert m["scroll_width"] <= m["width"] == 1280, m
    assert m["images"] >= 1 and m["broken"] == 0, m
    assert not m["nan"] and m["headline"], m
