"""Range sensitivity: designs asked in range-split parts vs one full-range design.

For each design with ``split`` parts (e.g. [0, 1] and [1, 2]) and a full-range design of the
same mode and persona (no split), per model x outcome, unit x level cells present in both are
compared (a level in two parts is averaged over them):

- ``mean_abs_diff`` = mean |split - full| over cells (the summary number), with a bootstrap over
  units interval; ``mean_diff`` = mean(split - full);
- ``slope_split`` / ``slope_full``: OLS slope of the cell mean on the level (unit fixed effects);
- ``boundary_gap`` = mean |part A - part B| at levels asked in two parts (a consistent model
  gives the same answer at the shared boundary).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp import modes
from llmexp.analysis._stats import percentile_ci
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.baseline import _slope
from llmexp.analysis.observations import Observations
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def range_sensitivity(study: Study, obs: Observations, alpha: float = 0.05, n_boot: int = 1000,
                      seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    split_designs = [d for d in study.designs if d.split]
    if not split_designs:
        raise AnalysisError("range needs a design asked in range-split parts (split ...)")
    rng = np.random.default_rng(seed)
    data = obs.outcomes()
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
            if f.empty:
                continue
            parts = g.groupby(["unit_id", "level", "split"], as_index=False)["y"].mean()
            gap = parts.groupby(["unit_id", "level"])["y"].agg(lambda v: v.max() - v.min()
                                                               if len(v) > 1 else np.nan)
            sc = parts.groupby(["unit_id", "level"], as_index=False)["y"].mean()
            fc = f.groupby(["unit_id", "level"], as_index=False)["y"].mean()
            m = sc.merge(fc, on=["unit_id", "level"], suffixes=("_split", "_full"))
            if m.empty:
                continue
            m["diff"] = m["y_split"] - m["y_full"]
            cells.append(m.assign(design=d.name, full_design=full.name, model=model,
                                  outcome=target))
            codes, uniq = pd.factorize(m["unit_id"])
            gn = len(uniq)
            lo = hi = np.nan
            if gn > 1:
                sums = np.bincount(codes, weights=m["diff"].abs().to_numpy(), minlength=gn)
                cnt = np.bincount(codes, minlength=gn).astype(float)
                w = rng.multinomial(gn, np.full(gn, 1 / gn), size=n_boot).astype(float)
                lo, hi = percentile_ci((w @ sums) / (w @ cnt), alpha)
            rows.append(dict(design=d.name, full_design=full.name, model=model, outcome=target,
                             parts=str([list(p) for p in d.split]), n_cells=len(m),
                             mean_abs_diff=float(m["diff"].abs().mean()), mad_ci_low=lo,
                             mad_ci_high=hi, mean_diff=float(m["diff"].mean()),
                             slope_split=_slope(m, "y_split"), slope_full=_slope(m, "y_full"),
                             boundary_gap=float(gap.mean()) if gap.notna().any() else np.nan))
    cell_df = pd.concat(cells, ignore_index=True) if cells else pd.DataFrame()
    return pd.DataFrame(rows), cell_df


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
                f"{r.mean_abs_diff:.3f} [{r.mad_ci_low:.3f}, {r.mad_ci_high:.3f}]"
                for r in t.itertuples()]

    def figures(self, ctx: Context, tables: dict[str, pd.DataFrame], out_dir: Path) -> list[Path]:
        from llmexp.analysis import plots  # lazy: matplotlib only when drawing

        return plots.range_figure(tables.get("range_cells"), out_dir)
