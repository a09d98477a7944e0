"""A small run on the synthetic respondent, made once per test session (about a second)."""

from __future__ import annotations

from pathlib import Path

import pytest

STUDY = '''study "tiny-demand"
  description "A tiny pricing study on the synthetic respondent, for the report tests"
  seed 3

units products
  row product_id = "tea", category = "tea", product = "green tea", regular_price = 4
  row product_id = "jam", category = "jam", product = "strawberry jam", regular_price = 3
  row product_id = "oil", category = "oil", product = "olive oil", regular_price = 9
  columns regular_price: money

treatment price = products.regular_price * levels(0.5, 1, 1.5)

unspecified competitor_price
  probe "In the same store, a similar product from another brand costs $___." as money

context """
  You are shopping for {category} at a grocery store.
  You find {product} for {price}.
  """

outcome purchase: binary "purchase" / "not purchase"
  question "Would you purchase this product?"

modes blind, unblinded

model "synthetic/respondent" replicates 2

analyze effects, leakage
'''


def write_study(folder: Path) -> Path:
    path = folder / "tiny.study"
    path.write_text(STUDY)
    return path


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A finished run directory of `STUDY` on the synthetic respondent."""
    import llmexp

    folder = tmp_path_factory.mktemp("tiny")
    results = llmexp.run(write_study(folder), out=folder / "run", quiet=True)
    return Path(results.run_dir)


@pytest.fixture(scope="session")
def tiny_report(tiny_run) -> Path:
    from llmexp.report import report

    return report(tiny_run, n_boot=100).html
