"""Tables as a reader sees them: human column names, rounded numbers, "—" for a missing value.

Everything here is generic over the analyses' tidy tables: it looks at column names and
types, never at which analysis wrote the table. Conventions the tables follow:

- an interval is a ``X_low`` / ``X_high`` pair (``ci_low``/``ci_high``,
  ``mae_ci_low``/``mae_ci_high``, ``log_ci_low``/``log_ci_high`` ...): shown as one
  "[lo, hi]" column;
- a row's estimate is the column named ``estimate``, else the one just before ``se``
  (``leakage_index``, ``jump``), else the one whose name starts its interval pair;
- a ``note`` (or ``*_note``, ``warning``, ``reason``) column explains a missing value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

MISSING = "—"
# words that read better than the column name made into words
NAMES = {
    "ci": "95% CI", "p_value": "p", "n_obs": "observations", "n_units": "units",
    "n_cells": "cells", "n_clusters": "clusters", "mae": "MAE", "rmse": "RMSE", "se": "std. error",
    "se_type": "std. error type", "unit_id": "unit", "mde80": "MDE (80% power)",
    "invalid_share": "invalid share", "invalid_calls": "invalid calls",
}
# identifying columns, in the order they name a row
KEYS = ("outcome", "design", "covariate", "pinned_design", "role", "term", "contrast", "check",
        "method", "scope", "treatment", "model", "target", "kind", "unit_id", "condition", "option",
        "level", "rank")
NOTE_WORDS = ("note", "warning", "reason")
# estimates that are levels, not differences: "above zero" says nothing about them
LEVEL_COLUMNS = ("share", "mean")


def human(name: str) -> str:
    """A column name in words: ``p_value`` -> "p", ``n_units`` -> "units", ``echo_share`` ->
    "echo share"."""
    if name in NAMES:
        return NAMES[name]
    words = name.replace("_ci", " 95% CI").replace("_", " ").strip()
    return words.replace("mae", "MAE").replace("rmse", "RMSE")


def is_note(column: str) -> bool:
    return any(column == w or column.endswith("_" + w) for w in NOTE_WORDS)


def fmt_number(value, digits: int = 3) -> str:
    """A number rounded for reading: 3 significant digits, integers as integers, "—" for NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return MISSING
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == int(v) and abs(v) < 1e6:
        return str(int(v))
    if abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}" if abs(v) < 10 else f"{v:.1f}"


def fmt_cell(value) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float | int | bool):
        return fmt_number(value)
    if hasattr(value, "dtype") or isinstance(value, (list, tuple, dict)):  # numpy scalars, lists
        try:
            return fmt_number(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return str(value)
    text = str(value)
    return MISSING if text.lower() in ("nan", "none", "<na>") else text


def interval_pairs(columns) -> list[tuple[str, str, str]]:
    """(low, high, shown name) for every ``X_low``/``X_high`` pair."""
    cols = list(columns)
    out = []
    for c in cols:
        if c.endswith("_low") and c[:-4] + "_high" in cols:
            stem = c[:-4]
            base = stem[:-3] if stem.endswith("_ci") else stem
            name = "95% CI" if stem == "ci" else f"{human(base)} 95% CI"
            out.append((c, stem + "_high", name))
    return out


def estimate_column(df: pd.DataFrame) -> str | None:
    """The column holding a row's estimate, when the table has one with an interval."""
    cols = list(df.columns)
    if "ci_low" not in cols or "ci_high" not in cols:
        return None
    if "estimate" in cols:
        return "estimate"
    for level in LEVEL_COLUMNS:  # a table of levels (a mean or share per condition)
        if level in cols:
            return level
    if "se" in cols and cols.index("se") > 0:
        before = cols[cols.index("se") - 1]
        if pd.api.types.is_numeric_dtype(df[before]):
            return before
    numeric = [c for c in cols if pd.api.types.is_numeric_dtype(df[c]) and not c.startswith("ci_")]
    return numeric[0] if numeric else None


def _estimates(df: pd.DataFrame, most: int = 3) -> list[str]:
    """Up to `most` (estimate, interval low, interval high) column groups, in table order:
    ``estimate`` with ``ci_low``/``ci_high``, ``point_elasticity`` with ``point_ci_*`` ..."""
    out: list[str] = []
    est = estimate_column(df)
    if est:
        out += [est, "ci_low", "ci_high"]
    for lo, hi, _ in interval_pairs(df.columns):
        if lo == "ci_low" or len(out) >= 3 * most:
            continue
        base = lo[:-4]
        base = base[:-3] if base.endswith("_ci") else base
        found = [c for c in df.columns if (c == base or c.startswith(base + "_")) and c not in (lo, hi)
                 and pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool
                 and not c.endswith(("_se", "_p", "_low", "_high"))]
        if found:
            out += [found[0], lo, hi]
    return out


def varying_keys(df: pd.DataFrame) -> list[str]:
    """The identifying columns whose value differs between rows (they name a row)."""
    keys = [k for k in KEYS if k in df.columns and df[k].astype(str).nunique() > 1]
    if not keys:
        keys = [k for k in KEYS if k in df.columns][:1]
    return keys


def row_note(row: pd.Series) -> str:
    notes = [str(row[c]) for c in row.index if is_note(c) and isinstance(row[c], str) and row[c].strip()]
    return "; ".join(notes)


@dataclass
class Shown:
    """A table ready for the template: header words, cell strings, and notes on missing cells."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[str]]
    n_rows: int
    missing_notes: list[str] = field(default_factory=list)
    truncated: bool = False


def _interval(lo, hi) -> str:
    a, b = fmt_number(lo), fmt_number(hi)
    return MISSING if MISSING in (a, b) else f"[{a}, {b}]"


def display(df: pd.DataFrame, short: bool, max_rows: int = 12) -> pd.DataFrame:
    """`df` with intervals joined, (short: only the columns a reader needs), numbers as text."""
    d = df.reset_index(drop=True)
    pairs = interval_pairs(d.columns)
    if short:
        keys = varying_keys(d)
        keep = keys + _estimates(d)
        keep += [c for c in ("p_value", "n_obs", "n_cells", "flagged", "verdict") if c in d]
        keep += [c for c in d.columns if c.endswith("_human") and c not in keep]  # beside the simulated one
        if len(keep) <= len(keys) + 1:  # no estimate: the first columns
            keep = list(d.columns[:8])
        keep += [c for c in d.columns if is_note(c)]
        keep = list(dict.fromkeys(keep))
        d = d[keep].head(max_rows)
        pairs = interval_pairs(d.columns)
    out = pd.DataFrame(index=d.index)
    done: set[str] = set()
    for c in d.columns:
        if c in done:
            continue
        pair = next((p for p in pairs if p[0] == c or p[1] == c), None)
        if pair:
            out[pair[2]] = [_interval(a, b) for a, b in zip(d[pair[0]], d[pair[1]], strict=True)]
            done.update(pair[:2])
            continue
        if is_note(c):  # a missing note is no note, not a missing value
            out[human(c)] = ["" if fmt_cell(v) == MISSING else fmt_cell(v) for v in d[c]]
        else:
            out[human(c)] = [fmt_cell(v) for v in d[c]]
        done.add(c)
    # a column with nothing in it says nothing
    empty = [c for c in out.columns if (out[c] == MISSING).all() or (out[c] == "").all()]
    return out.drop(columns=empty)


def shown(name: str, df: pd.DataFrame, short: bool = True, max_rows: int = 12) -> Shown:
    d = display(df, short, max_rows)
    notes = []
    raw = df.reset_index(drop=True).head(len(d))
    for i, row in d.iterrows():
        if (row == MISSING).any():
            why = row_note(raw.loc[i]) if i in raw.index else ""
            label = ", ".join(str(row[c]) for c in d.columns[:2])
            notes.append(f"{label}: {why}" if why else f"{label}: not computed for this row")
    title = human(name)
    return Shown(name=name, title=title[:1].upper() + title[1:], columns=list(d.columns),
                 rows=[list(r) for r in d.itertuples(index=False)], n_rows=len(df),
                 missing_notes=list(dict.fromkeys(notes))[:8], truncated=short and len(df) > len(d))


def markdown(s: Shown) -> str:
    lines = ["| " + " | ".join(s.columns) + " |", "| " + " | ".join("---" for _ in s.columns) + " |"]
    lines += ["| " + " | ".join(str(v).replace("|", "/") for v in r) + " |" for r in s.rows]
    return "\n".join(lines)
