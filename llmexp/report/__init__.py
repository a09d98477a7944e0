"""`report(run_dir)`: a self-contained `report.html` (figures as base64) and `report.md`."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import pandas as pd

from llmexp.analysis.core import AnalysisResult, analyze

TITLES = {
    "demand_curve": ("Demand curves", ["demand_summary"],
                     "Pooled curves per design (elasticities exclude the free level)."),
    "effects": ("Treatment effects", ["effects"],
                "Regression coefficients with cluster-robust 95% intervals; scope 'interaction' "
                "rows are slope differences against the reference design."),
    "leakage": ("Confound leakage", ["leakage"],
                "Leakage index = slope of the probed covariate (normalised by its unit mean) per "
                "1.0 of the treatment level; 0 in an ideal experiment."),
    "focalism": ("Focalism", ["focalism"],
                 "Jump at the pinned value beyond a smooth (cubic) trend; step share = partial R² "
                 "of the step on the cell means."),
    "baseline": ("Human baseline", ["design_ranking", "baseline_summary"],
                 "Per-cell MAE vs humans (bootstrap-over-units 95% CI), shape and elasticity "
                 "agreement, test-retest normalisation."),
    "range": ("Range sensitivity", ["range"],
              "Split-range vs full-range aggregate answers over the same cells."),
    "refute": ("DoWhy refutations", ["refute"],
               "Backdoor linear regression; placebo treatment and random common cause refuters."),
}

SUMMARY_ROWS = {"demand_summary": lambda d: d[d["scope"] == "pooled"] if "scope" in d else d}


@dataclass
class ReportPaths:
    html: Path
    markdown: Path
    analysis_dir: Path


def _fmt(df: pd.DataFrame) -> pd.DataFrame:
    """Round numbers and show intervals as one '[lo, hi]' column."""
    d = df.copy()
    pairs = [("ci_low", "ci_high", "95% CI"), ("mae_ci_low", "mae_ci_high", "MAE 95% CI"),
             ("mad_ci_low", "mad_ci_high", "95% CI"), ("peak_ci_low", "peak_ci_high", "peak 95% CI"),
             ("loglog_ci_low", "loglog_ci_high", "log-log 95% CI"),
             ("diff_ci_low", "diff_ci_high", "difference 95% CI")]
    for lo, hi, name in pairs:
        if lo in d and hi in d:
            d[name] = [f"[{a:.3f}, {b:.3f}]" if pd.notna(a) and pd.notna(b) else ""
                       for a, b in zip(d[lo], d[hi])]
            d = d.drop(columns=[lo, hi])
    for c in d.columns:
        if pd.api.types.is_float_dtype(d[c]):
            d[c] = d[c].map(lambda v: "" if pd.isna(v) else (f"{v:.3g}" if abs(v) < 1e-3 and v != 0
                                                              else f"{v:.3f}"))
    return d.dropna(axis=1, how="all")


def _md_table(df: pd.DataFrame) -> str:
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join("---" for _ in cols) + " |"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join("" if v is None else str(v).replace("|", "/")
                                       for v in row) + " |")
    return "\n".join(lines)


def write_report(result: AnalysisResult, out_dir: Path | str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    st = result.study
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>llmexp report: "
         f"{html.escape(st.name)}</title><style>body{{font-family:sans-serif;max-width:1200px;"
         "margin:2em auto;color:#222}table{border-collapse:collapse;font-size:12px;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}"
         "img{max-width:100%}.note{color:#555}</style></head><body>",
         f"<h1>Report: {html.escape(st.name)}</h1>",
         f"<p class='note'>study hash {st.hash()}; {result.summary_data.get('n_responses')} "
         f"responses; analyses: {', '.join(result.requested)}</p>"]
    md = [f"# Report: {st.name}", "",
          f"study hash {st.hash()}; {result.summary_data.get('n_responses')} responses; "
          f"analyses: {', '.join(result.requested)}", ""]
    inv = result.tables.get("invalid")
    if inv is not None and len(inv):
        h.append("<h2 id='invalid'>Answer validity</h2>" + _fmt(inv).to_html(index=False))
        md += ["## Answer validity", "", _md_table(_fmt(inv)), ""]
    for name in result.requested:
        title, tabs, blurb = TITLES[name]
        h.append(f"<section id='analysis-{name}'><h2>{html.escape(title)}</h2>"
                 f"<p class='note'>{html.escape(blurb)}</p>")
        md += [f"## {title}", "", blurb, ""]
        for t in tabs:
            df = result.tables.get(t)
            if df is None or df.empty:
                continue
            df = SUMMARY_ROWS.get(t, lambda d: d)(df)
            f = _fmt(df)
            h.append(f"<h3>{html.escape(t)}</h3>" + f.to_html(index=False, escape=True))
            md += [f"### {t}", "", _md_table(f), ""]
        for p in result.figures.get(name, []):
            p = Path(p)
            if p.suffix == ".png":
                b64 = base64.b64encode(p.read_bytes()).decode()
                h.append(f"<figure><img alt='{html.escape(p.stem)}' "
                         f"src='data:image/png;base64,{b64}'/></figure>")
                md += [f"![{p.stem}](../analysis/figures/{p.name})", ""]
        h.append("</section>")
    for n in result.notes:
        h.append(f"<p class='note'>note: {html.escape(n)}</p>")
    h.append("</body></html>")
    hp, mp = out_dir / "report.html", out_dir / "report.md"
    hp.write_text("\n".join(h), encoding="utf-8")
    mp.write_text("\n".join(md), encoding="utf-8")
    return hp, mp


def open_run_data(run_dir: Path | str):
    """(study, responses) of a run directory via the runner's `open_run`."""
    from llmexp.runner import open_run  # lazy: the runner is a separate stage

    run = open_run(run_dir)
    return run.study, run.to_pandas()


def analyze_run(run_dir: Path | str, requested: Optional[Iterable[str]] = None,
                only: Optional[Iterable[str]] = None, add: Optional[Iterable[str]] = None,
                out_dir: Optional[Path | str] = None, **kwargs) -> AnalysisResult:
    from llmexp.analysis.core import resolve_requested

    study, responses = open_run_data(run_dir)
    req = resolve_requested(study, requested, only, add)
    out = Path(out_dir) if out_dir else Path(run_dir) / "analysis"
    return analyze(study, responses, req, out_dir=out, **kwargs)


def report(run_dir: Path | str, requested: Optional[Iterable[str]] = None,
           only: Optional[Iterable[str]] = None, add: Optional[Iterable[str]] = None,
           out_dir: Optional[Path | str] = None, **kwargs) -> ReportPaths:
    result = analyze_run(run_dir, requested, only, add, **kwargs)
    out = Path(out_dir) if out_dir else Path(run_dir) / "report"
    hp, mp = write_report(result, out)
    return ReportPaths(html=hp, markdown=mp, analysis_dir=result.out_dir)


__all__ = ["report", "write_report", "analyze_run", "open_run_data", "ReportPaths"]
