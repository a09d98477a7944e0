"""Shared helpers of the diagnose tests (named uniquely: test folders share one import path)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
QUICK = REPO / "studies" / "demand_quick.study"

SMALL_STUDY = """
study "diag-small"
  seed 3

units products from "products.csv"
  key product_id
  columns regular_price: money

treatment price = products.regular_price * levels(0 to 2 step 0.5)

unspecified competitor_price
  probe "A similar product from another brand costs $___." as money

context \"\"\"
  You are shopping for {{category}}.
  You find {{product}} for {{price}}.
  \"\"\"

outcome purchase: binary "purchase" / "not purchase"
  question "Would you purchase this product?"

modes blind, unblinded

model "synthetic/respondent" {params} replicates {replicates}

analyze effects, leakage
"""


def write_small_study(directory: Path, params: str = "effect -1.2 leakage 0.1 noise 0.2",
                      replicates: int = 2, n_units: int = 8) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rows = ["product_id,category,product,regular_price"]
    for i in range(n_units):
        rows.append(f"p{i},Category {i},Product {i},{2.0 + 0.5 * i:.2f}")
    (directory / "products.csv").write_text("\n".join(rows) + "\n")
    path = directory / "small.study"
    path.write_text(SMALL_STUDY.format(params=params, replicates=replicates))
    return path
