"""Small shared rules for honest numbers in small or sparse data (a 20-trial pilot).

Why a module: the same two questions come up in every analysis that fits unit effects or
prints a summary line. (1) Is a slope identified at all once each unit has its own
intercept? Only the variation WITHIN units carries it: a unit asked at one level is fitted
exactly by its intercept and tells nothing about the slope. (2) How does a possibly missing
number print? Never as "nan": as the number, or "n/a" with the reason.
"""

from __future__ import annotations

import math

import numpy as np


def within_rank(x: np.ndarray, units: np.ndarray) -> int:
    """Rank of the columns of `x` after removing each unit's mean: how many slopes unit
    effects leave identified (0 when every unit was asked at a single condition)."""
    x = np.asarray(x, dtype=float).reshape(len(units), -1)
    codes = np.unique(np.asarray(units), return_inverse=True)[1]
    sums = np.zeros((int(codes.max()) + 1 if len(codes) else 0, x.shape[1]))
    np.add.at(sums, codes, x)
    counts = np.bincount(codes).astype(float)[:, None]
    demeaned = x - (sums / np.maximum(counts, 1.0))[codes]
    if not len(demeaned):
        return 0
    scale = max(1.0, float(np.abs(x).max()))
    return int(np.linalg.matrix_rank(demeaned, tol=1e-9 * scale * max(demeaned.shape)))


def finite(x) -> bool:
    """A real, finite number (None, NaN, inf and non-numbers are not)."""
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def num(x, spec: str = ".3f", missing: str = "n/a") -> str:
    """`x` formatted, or `missing` (never "nan") when it is not a finite number."""
    return format(float(x), spec) if finite(x) else missing


def reason_text(note) -> str:
    """A note as text ('' when missing)."""
    return "" if note is None or (isinstance(note, float) and math.isnan(note)) else str(note)


def interval(lo, hi, note=None, spec: str = ".3f") -> str:
    """'[lo, hi]', or '(no interval: REASON)' when either end is missing."""
    if finite(lo) and finite(hi):
        return f"[{format(float(lo), spec)}, {format(float(hi), spec)}]"
    why = reason_text(note)
    return f"(no interval: {why})" if why else "(no interval)"


def p_text(p, prefix: str = " p=") -> str:
    """' p=0.0123', or '' when the p-value is missing (the interval's reason says why)."""
    return f"{prefix}{float(p):.3g}" if finite(p) else ""
