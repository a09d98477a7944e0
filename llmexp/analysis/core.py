"""`analyze(study, responses)`: run the requested analyses, write tidy tables and summary.json.

Requested analyses come from ``study.analyses`` by default (names in ``llmexp.spec.ANALYSES``:
demand_curve, effects, leakage, focalism, baseline, range, refute). Per-cell tables (``unit_cells``,
``pooled_cells``) and the invalid-answer counts (``invalid``) are always produced.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from llmexp.errors import AnalysisError
from llmexp.spec import ANALYSES, Study


@dataclass
class AnalysisResult:
    study: Study
    requested: list[str]
    tables: dict[str, pd.DataFrame]
    summary_data: dict
    figures: dict[str, list[Path]] = field(default_factory=dict)
    out_dir: Optional[Path] = None
    notes: list[str] = field(default_factory=list)

    def table(self, name: str) -> pd.DataFrame:
        if name not in self.tables:
            raise AnalysisError(f"no table {name!r}; have {', '.join(sorted(self.tables))}")
        return self.tables[name]

    def summary(self) -> str:
        """Plain-text digest of the headline numbers."""
        lines = [f"study {self.study.name} ({self.summary_data.get('n_responses')} responses); "
                 f"analyses: {', '.join(self.requested)}"]
        inv = self.tables.get("invalid")
        if inv is not None and len(inv):
            lines.append(f"invalid calls: {int(inv['invalid_calls'].sum())} of {int(inv['calls'].sum())}")
        t = self.tables
        if "effects" in t and len(t["effects"]) and "estimate" in t["effects"]:
            for r in t["effects"].dropna(subset=["estimate"]).itertuples():
                lines.append(f"effect [{r.scope}] {r.outcome} {r.design} {r.method} {r.term}: "
                             f"{r.estimate:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] p={r.p_value:.3g}")
        if "demand_summary" in t and len(t["demand_summary"]):
            d = t["demand_summary"]
            for r in d[d["scope"] == "pooled"].itertuples():
                lines.append(f"demand {r.design}: arc elasticity {r.arc_elasticity:.2f}, "
                             f"log-log {r.loglog_elasticity:.2f}, inverted U={r.inverted_u}")
        if "leakage" in t and len(t["leakage"]) and "leakage_index" in t["leakage"]:
            for r in t["leakage"].itertuples():
                lines.append(f"leakage {r.covariate} {r.design}: index {r.leakage_index:.3f} "
                             f"[{r.ci_low:.3f}, {r.ci_high:.3f}]{' FLAGGED' if r.flagged else ''}")
        if "focalism" in t and len(t["focalism"]) and "jump" in t["focalism"]:
            for r in t["focalism"].itertuples():
                lines.append(f"focalism {r.design} ({r.role}): jump {r.jump:.3f} "
                             f"[{r.ci_low:.3f}, {r.ci_high:.3f}], step share {r.step_share:.3f}"
                             f"{' FLAGGED' if r.flagged else ''}")
        if "design_ranking" in t and len(t["design_ranking"]):
            for r in t["design_ranking"].itertuples():
                lines.append(f"baseline rank {r.rank}: {r.design} MAE {r.mae:.3f} "
                             f"[{r.mae_ci_low:.3f}, {r.mae_ci_high:.3f}]")
        if "range" in t and len(t["range"]):
            for r in t["range"].itertuples():
                lines.append(f"range {r.design} vs {r.full_design}: mean |diff| "
                             f"{r.mean_abs_diff:.3f} [{r.mad_ci_low:.3f}, {r.mad_ci_high:.3f}]")
        if "refute" in t and len(t["refute"]):
            for r in t["refute"].itertuples():
                lines.append(f"refute {r.design} {r.refuter}: {r.verdict} (p={r.p_value:.3g})")
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)

    def write(self, out_dir: Path) -> Path:
        out_dir = Path(out_dir)
        (out_dir / "tables").mkdir(parents=True, exist_ok=True)
        for name, df in self.tables.items():
            df = _flat(df)
            df.to_csv(out_dir / "tables" / f"{name}.csv", index=False)
            df.to_parquet(out_dir / "tables" / f"{name}.parquet", index=False)
        (out_dir / "summary.json").write_text(json.dumps(self.summary_data, indent=2))
        self.out_dir = out_dir
        return out_dir / "summary.json"


def _flat(df: pd.DataFrame) -> pd.DataFrame:
    """Mixed-type object columns -> strings so parquet can store them."""
    df = df.copy()
    for c in df.columns:
        if df[c].dtype == object:
            kinds = {type(v) for v in df[c].dropna()}
            if len(kinds) > 1 or (kinds and not kinds <= {str}):
                df[c] = df[c].map(lambda v: None if v is None or (isinstance(v, float) and v != v)
                                  else str(v))
    return df


def resolve_requested(study: Study, requested: Optional[Iterable[str]] = None,
                      only: Optional[Iterable[str]] = None, add: Optional[Iterable[str]] = None
                      ) -> list[str]:
    base = list(requested) if requested is not None else (list(study.analyses) or ["effects"])
    if only:
        base = list(only)
    for a in add or ():
        if a not in base:
            base.append(a)
    bad = [a for a in base if a not in ANALYSES]
    if bad:
        raise AnalysisError(f"unknown analysis {', '.join(bad)}; choose from {', '.join(ANALYSES)}")
    return [a for a in ANALYSES if a in base]


def analyze(study: Study, responses: pd.DataFrame, requested: Optional[Iterable[str]] = None,
            out_dir: Optional[Path | str] = None, alpha: float = 0.05, n_boot: int = 1000,
            seed: int = 0, figures: bool = True, refute_simulations: int = 20,
            cluster: str = "auto") -> AnalysisResult:
    """Run the requested analyses; with `out_dir`, write tables, summary.json and figures."""
    try:  # many small regressions: BLAS threads only add contention
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return _analyze(study, responses, requested, out_dir, alpha, n_boot, seed, figures,
                        refute_simulations, cluster)
    with threadpool_limits(1):
        return _analyze(study, responses, requested, out_dir, alpha, n_boot, seed, figures,
                        refute_simulations, cluster)


def _analyze(study, responses, requested, out_dir, alpha, n_boot, seed, figures,
             refute_simulations, cluster) -> AnalysisResult:
    from llmexp.analysis import plots
    from llmexp.analysis.baseline import compare_baseline, load_baseline
    from llmexp.analysis.cells import pooled_cells, unit_cells
    from llmexp.analysis.observations import build_observations

    req = resolve_requested(study, requested)
    obs = build_observations(study, responses)
    uc = unit_cells(obs, alpha, n_boot=min(n_boot, 400), seed=seed)
    pc = pooled_cells(obs, alpha, n_boot=n_boot, seed=seed)
    tables: dict[str, pd.DataFrame] = {"invalid": obs.invalid, "unit_cells": uc, "pooled_cells": pc}
    notes: list[str] = []
    human_ind = human_cells = None
    if study.baseline is not None:
        try:
            bd = load_baseline(study)
            human_cells = bd.cells.rename(columns={"mean": "human"})
            human_ind = bd.individual if bd.individual is not None else bd.cells.rename(
                columns={"mean": "y"})
        except AnalysisError as exc:
            if "baseline" in req:
                raise
            notes.append(f"human baseline not used: {exc}")
    if "demand_curve" in req:
        from llmexp.analysis.demand import demand_curves

        tables.update(demand_curves(study, obs, uc, pc, alpha))
    if "effects" in req:
        from llmexp.analysis.effects import estimate_effects

        tables["effects"] = estimate_effects(study, obs, cluster=cluster, alpha=alpha)
    if "leakage" in req:
        from llmexp.analysis.leakage import leakage

        tables["leakage"], tables["leakage_points"] = leakage(study, obs, alpha, cluster)
    if "focalism" in req:
        from llmexp.analysis.focalism import focalism

        tables["focalism"], tables["focalism_thresholds"] = focalism(
            study, obs, human=human_ind, alpha=alpha)
    if "baseline" in req:
        tables.update(compare_baseline(study, uc, obs.table, alpha, n_boot, seed))
    if "range" in req:
        from llmexp.analysis.range_check import range_sensitivity

        tables["range"], tables["range_cells"] = range_sensitivity(study, obs, alpha, n_boot, seed)
    if "refute" in req:
        from llmexp.analysis.causal import refute

        tables["refute"] = refute(study, obs, num_simulations=refute_simulations, seed=seed)
    from llmexp.analysis.summary import build_summary

    summ = build_summary(study, req, tables, n_responses=len(responses))
    if notes:
        summ["notes"] = notes
    result = AnalysisResult(study=study, requested=req, tables=tables, summary_data=summ,
                            notes=notes)
    if out_dir is not None:
        out_dir = Path(out_dir)
        result.write(out_dir)
        if figures:
            fdir = out_dir / "figures"
            figs = {}
            if "demand_curve" in req:
                figs["demand_curve"] = plots.demand_figure(tables.get("demand_points"), fdir,
                                                           human_cells)
            if "leakage" in req:
                figs["leakage"] = plots.leakage_figure(tables.get("leakage_points"), fdir)
            if "focalism" in req:
                figs["focalism"] = plots.focalism_figure(obs.table, tables.get("focalism"), fdir,
                                                         human_ind)
            if "baseline" in req:
                figs["baseline"] = (plots.error_heatmap(tables.get("baseline_cells"), fdir)
                                    + plots.ranking_figure(tables.get("design_ranking"), fdir))
            if "range" in req:
                figs["range"] = plots.range_figure(tables.get("range_cells"), fdir)
            result.figures = {k: v for k, v in figs.items() if v}
    return result
