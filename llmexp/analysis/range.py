"""Range sensitivity: designs asked in range-split parts vs one full-range design.

For each design with ``split`` parts (e.g. [0, 1] and [1, 2]) and a full-range design of the
same mode and persona (no split), per model x outcome, unit x level cells present in both are
compared (a level in two parts is averaged over them):

- ``mean_abs_diff`` = mean |split - full| over cells, with an interval over units
  (``mad_ci_low/high``: cluster-robust by unit, t(G-1)); ``mean_diff`` = mean(split - full).
  Sampling noise alone makes
  mean_abs_diff positive, so ``noise_floor`` is its expected value when the split changes
  nothing (the mean of its permutation distribution below): read mean_abs_diff against it;
- ``slope_split`` / ``slope_full``: OLS slope of the cell mean on the level (unit fixed effects);
- the TEST (``range_p``, over the ``n_test_cells`` cells holding 3 or more answers: only there
  can a shuffle move a sign-free statistic, so cells with one answer per arm are left out of
  the test and of both floors rather than serving as their own floor): a permutation test of "the split design's answers are exchangeable
  with the full design's within each unit x level cell" (the noise floor is the full-range
  design's own answer-to-answer variation). Statistic: mean over cells of (split - full)^2;
  answers are shuffled between the two designs within each cell (``n_perm`` shuffles,
  p = (1 + #{T* >= T}) / (1 + n_perm)). When the shuffles cannot move the statistic (one answer
  per cell in each design, or identical answers, e.g. deterministic log-probability answers
  asked once) there is no noise floor: ``range_p`` is missing and ``test_note`` says why (ask
  the full-range design with replicates);
- ``boundary_gap`` = mean |part A - part B| at levels asked in two parts (a consistent model
  gives the same answer at the shared boundary), with an interval over units and its
  own noise floor ``boundary_floor``; ``boundary_diff`` = mean(lower part - upper part) with
  its interval and ``boundary_p``, the same permutation test (answers shuffled between the two
  parts within each unit x boundary-level cell; statistic |mean difference|);
- ``flagged`` = min(range_p, boundary_p) < alpha / 2 (Bonferroni over the two tests, so the
  flag's false-alarm rate stays <= alpha); a missing test never flags.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from llmexp import modes
from llmexp.analysis._honest import interval, num
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.baseline import cell_slope
from llmexp.analysis.observations import Observations
from llmexp.errors import AnalysisError
from llmexp.spec import Study

NO_FLOOR = ("no noise floor: shuffling answers within cells cannot change the statistic (one "
            "answer per cell in each arm, or identical answers); ask the full-range design "
            "with replicates")


def _perm(cell: np.ndarray, y: np.ndarray, lab: np.ndarray, stat, n_perm: int,
          rng: np.random.Generator) -> tuple[float, float, float]:
    """(observed statistic, mean of its permutation distribution, p) shuffling y within cells
    (labels fixed); p nan when the permutation distribution is degenerate."""
    order = np.argsort(cell, kind="stable")
    cell, y, lab = cell[order], y[order], lab[order]
    n_c = int(cell.max()) + 1
    n1 = np.bincount(cell, weights=lab, minlength=n_c)
    n0 = np.bincount(cell, weights=1 - lab, minlength=n_c)

    def diffs(yy: np.ndarray) -> np.ndarray:  # (B, N) -> (B, cells)
        s1 = np.stack([np.bincount(cell, weights=r * lab, minlength=n_c) for r in yy])
        s0 = np.stack([np.bincount(cell, weights=r * (1 - lab), minlength=n_c) for r in yy])
        return s1 / n1 - s0 / n0

    obs = float(stat(diffs(y[None, :]))[0])
    block = max(1, min(n_perm, 2_000_000 // max(len(y), 1)))  # bounded memory
    draws = np.concatenate([
        stat(diffs(y[np.argsort(cell[None, :] + rng.random((min(block, n_perm - i), len(y))),
                                axis=1)]))
        for i in range(0, n_perm, block)])
    if np.ptp(draws) <= 1e-12 * max(1.0, abs(obs)) and abs(obs - draws[0]) <= 1e-12 * max(1.0, abs(obs)):
        return obs, float(draws.mean()), float("nan")
    return obs, float(draws.mean()), float((1 + np.sum(draws >= obs - 1e-12)) / (1 + n_perm))


def _unit_boot(values: pd.DataFrame, col: str, alpha: float, n_boot: int,
               rng: np.random.Generator, log: bool = False) -> tuple[float, float]:
    """Interval of the cell mean of `col` over units: cluster-robust (by unit) SE of a mean,
    ``G/(G-1) sum_g (sum_c in g (x_c - mean))^2 / N^2``, with t(G-1) critical values (in a
    balanced design: the t interval of the unit means). nan with one unit. (A percentile
    bootstrap over 6 units covered 88%.) `n_boot` and `rng` are unused (kept for callers)."""
    from scipy import stats  # lazy: see analysis/base.py

    x = values[col].to_numpy(float)
    codes, uniq = pd.factorize(values["unit_id"])
    g, n = len(uniq), len(x)
    if g < 2 or n == 0:
        return float("nan"), float("nan")
    m = float(x.mean())
    s = np.bincount(codes, weights=x - m, minlength=g)
    se = float(np.sqrt(g / (g - 1) * np.sum(s ** 2)) / n)
    q = float(stats.t.ppf(1 - alpha / 2, g - 1))
    if log:  # a mean of |differences| is >= 0: the interval on the log scale (se / m)
        if not (m > 0 and se > 0):
            return float("nan"), float("nan")
        return m * float(np.exp(-q * se / m)), m * float(np.exp(q * se / m))
    return m - q * se, m + q * se


def _split_vs_full(g: pd.DataFrame, f: pd.DataFrame, n_perm: int, rng) -> dict:
    both = pd.concat([g.assign(_lab=1.0), f.assign(_lab=0.0)])
    counts = both.groupby(["unit_id", "level"])["_lab"].agg(["min", "max"])
    shared = counts[(counts["min"] == 0) & (counts["max"] == 1)].index
    both = both.set_index(["unit_id", "level"]).loc[shared].reset_index()
    cell = both.groupby(["unit_id", "level"], sort=False).ngroup().to_numpy()
    keep, sub = _movable(cell)  # d^2 and |d| are unchanged by swapping one answer for one answer
    nan = float("nan")
    if not keep.any():
        return dict(range_stat=nan, range_stat_floor=nan, noise_floor=nan, range_p=nan, n_test_cells=0)
    y, lab = both["y"].to_numpy(float)[keep], both["_lab"].to_numpy(float)[keep]
    t, floor_sq, p = _perm(sub, y, lab, lambda d: np.mean(d ** 2, axis=1), n_perm, rng)
    _, floor_abs, _ = _perm(sub, y, lab, lambda d: np.mean(np.abs(d), axis=1), max(n_perm // 5, 50), rng)
    # the floor of the all-cell mean |diff| needs every compared cell replicated
    return dict(range_stat=t, range_stat_floor=floor_sq, noise_floor=floor_abs if keep.all() else nan, range_p=p,
                n_test_cells=int(sub.max()) + 1)


def _movable(cell: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of cells holding 3 or more answers: only there can a within-cell shuffle change a
    sign-free statistic (|d|, d^2) of the cell's difference. A cell with one answer per arm only
    swaps the sign, so its |d| would be its own 'noise floor' and the test would pass by
    construction (the committed aggregate_split run: 400 of 440 cells were such cells).
    Returns (rows kept, their cells renumbered 0..k-1 for `_perm`)."""
    keep = np.bincount(cell)[cell] >= 3
    return keep, np.unique(cell[keep], return_inverse=True)[1]


def _boundary(g: pd.DataFrame, alpha: float, n_boot: int, rng) -> dict:
    """Levels asked in two parts: |A - B| and A - B (A = the part starting lower)."""
    g = g.assign(_start=g["split"].map(lambda v: float(json.loads(v)[0]) if isinstance(v, str)
                                       else float(v[0])))
    nparts = g.groupby(["unit_id", "level"])["_start"].transform("nunique")
    b = g[nparts == 2].copy()
    out = dict(boundary_gap=np.nan, boundary_gap_ci_low=np.nan, boundary_gap_ci_high=np.nan,
               boundary_floor=np.nan, boundary_diff=np.nan, boundary_diff_ci_low=np.nan,
               boundary_diff_ci_high=np.nan, boundary_p=np.nan, n_boundary_cells=0)
    if b.empty:
        return out
    b["_lab"] = (b["_start"] == b.groupby(["unit_id", "level"])["_start"].transform("min")
                 ).astype(float)
    cells = b.groupby(["unit_id", "level", "_lab"])["y"].mean().unstack("_lab")
    cd = pd.DataFrame({"unit_id": cells.index.get_level_values(0),
                       "diff": (cells[1.0] - cells[0.0]).to_numpy()})
    cd["gap"] = cd["diff"].abs()
    gl, gh = _unit_boot(cd, "gap", alpha, n_boot, rng, log=True)
    dl, dh = _unit_boot(cd, "diff", alpha, n_boot, rng)
    cell = b.groupby(["unit_id", "level"], sort=False).ngroup().to_numpy()
    yv, lab = b["y"].to_numpy(float), b["_lab"].to_numpy(float)
    _, _, p = _perm(cell, yv, lab, lambda d: np.abs(np.mean(d, axis=1)), n_boot, rng)
    keep, sub = _movable(cell)
    floor = float("nan")
    if keep.any():  # the sign-flip test above is informative with one answer per part; |d| is not
        _, floor, _ = _perm(sub, yv[keep], lab[keep], lambda d: np.mean(np.abs(d), axis=1), max(n_boot // 5, 50), rng)
    out.update(boundary_gap=float(cd["gap"].mean()), boundary_gap_ci_low=gl,
               boundary_gap_ci_high=gh, boundary_floor=floor,
               boundary_diff=float(cd["diff"].mean()), boundary_diff_ci_low=dl,
               boundary_diff_ci_high=dh, boundary_p=p, n_boundary_cells=len(cd))
    return out


def _flag(row: dict, alpha: float) -> dict:
    ps = [p for p in (row["range_p"], row["boundary_p"]) if np.isfinite(p)]
    note = "" if np.isfinite(row["range_p"]) else "range_p: " + NO_FLOOR
    if row["n_boundary_cells"] and not np.isfinite(row["boundary_p"]):
        note = (note + "; " if note else "") + "boundary_p: " + NO_FLOOR
    return dict(flagged=bool(ps) and min(ps) < alpha / 2, test_note=note)


def _compare(d, full, model, target, g: pd.DataFrame, f: pd.DataFrame, alpha: float,
             n_boot: int, rng) -> tuple[dict, pd.DataFrame] | None:
    sc = g.groupby(["unit_id", "level", "split"], as_index=False)["y"].mean().groupby(
        ["unit_id", "level"], as_index=False)["y"].mean()
    fc = f.groupby(["unit_id", "level"], as_index=False)["y"].mean()
    m = sc.merge(fc, on=["unit_id", "level"], suffixes=("_split", "_full"))
    if m.empty:
        return None
    m["diff"] = m["y_split"] - m["y_full"]
    lo, hi = _unit_boot(m.assign(a=m["diff"].abs()), "a", alpha, n_boot, rng, log=True)
    row = dict(design=d.name, full_design=full.name, model=model, outcome=target,
               parts=str([list(p) for p in d.split]), n_cells=len(m),
               mean_abs_diff=float(m["diff"].abs().mean()), mad_ci_low=lo, mad_ci_high=hi,
               mean_diff=float(m["diff"].mean()), slope_split=cell_slope(m, "y_split"),
               slope_full=cell_slope(m, "y_full"))
    row.update(_split_vs_full(g, f, n_boot, rng))
    row.update(_boundary(g, alpha, n_boot, rng))
    row.update(_flag(row, alpha))
    return row, m.assign(design=d.name, full_design=full.name, model=model, outcome=target)


def range_sensitivity(study: Study, obs: Observations, alpha: float = 0.05, n_boot: int = 1000,
                      seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`n_boot` is both the bootstrap size and the number of permutations."""
    split_designs = [d for d in study.designs if d.split]
    if not split_designs:
        raise AnalysisError("range needs a design asked in range-split parts (split ...)")
    rng = np.random.default_rng(seed)
    data = obs.outcomes()
    data = data[np.isfinite(data["y"].astype(float))]
    rows, cells = [], []
    for d in split_designs:
        fulls = [f for f in study.designs if not f.split and f.mode == d.mode
                 and f.persona == d.persona] or [f for f in study.designs
                                                 if not f.split and f.mode == d.mode]
        if not fulls:
            raise AnalysisError(
                f"range: design {d.name!r} is split but there is no full-range {d.mode} design "
                "to compare it with (add one without split)")
        full = fulls[0]
        for (model, target), g in data[data["design"] == d.name].groupby(["model", "target"]):
            f = data[(data["design"] == full.name) & (data["model"] == model)
                     & (data["target"] == target)]
            got = None if f.empty else _compare(d, full, model, target, g, f, alpha, n_boot, rng)
            if got is not None:
                rows.append(got[0])
                cells.append(got[1])
    cell_df = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame()
    return pd.DataFrame(rows), cell_df


NO_GAP = "n/a (no level asked in two parts)"


MAD_NOTE = "one unit, or no spread of the differences over units"  # why the MAD difference has no interval


def _p(p: float) -> str:
    return f"{p:.3f}" if np.isfinite(p) else "n/a (no noise floor)"


def _floor(x: float, single: int) -> str:
    return f"{x:.3f}" if np.isfinite(x) else f"n/a: one answer per arm in {single} cells"


@register
class Range(Analysis):
    name = "range"
    title = "Range sensitivity"
    description = "Split-range vs full-range aggregate answers over the same cells."
    report_tables = ("range",)
    order = 60

    def unsupported(self, study: Study) -> str | None:
        splitting = " or ".join(modes.with_capability("can_split"))
        if not any(modes.get(d.mode).can_split and d.split for d in study.designs):
            return f"no {splitting} design with split"
        if not any(modes.get(d.mode).can_split and not d.split for d in study.designs):
            return f"no full-range {splitting} design to compare the split with"
        return None

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        table, cells = range_sensitivity(ctx.study, ctx.obs, ctx.alpha, ctx.n_boot, ctx.seed)
        return {"range": table, "range_cells": cells}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("range")
        if t is None or not len(t):
            return []
        return [f"range {r.design} vs {r.full_design}: mean |diff| "
                f"{num(r.mean_abs_diff)} {interval(r.mad_ci_low, r.mad_ci_high, MAD_NOTE)} (noise floor "
                f"{_floor(r.noise_floor, r.n_cells - r.n_test_cells)}), p {_p(r.range_p)} over {r.n_test_cells} cells with 3+ answers; "
                f"boundary gap {num(r.boundary_gap, missing=NO_GAP)} "
                f"(floor {_floor(r.boundary_floor, r.n_boundary_cells)}), p {_p(r.boundary_p)}"
                + (" FLAGGED" if r.flagged else "") for r in t.itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.range_figure(tables.get("range_cells"), out_dir)
