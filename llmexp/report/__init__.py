"""`report(run_dir)`: a self-contained `report.html` (figures as base64) and `report.md`.

One section per requested analysis, in report order, from what the analysis declares (its
`title`, `description`, `report_section` tables and figures); an analysis that could not run
keeps its section, which says why.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from llmexp.analysis import AnalysisResult, analyze, get, resolve_requested


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
                       for a, b in zip(d[lo], d[hi], strict=True)]
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


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}"
         "table{border-collapse:collapse;font-size:12px;margin:1em 0}"
         "td,th{border:1px solid #ccc;padding:3px 6px;text-align:right}th{background:#eee}"
         "img{max-width:100%}.note{color:#555}")


def write_report(result: AnalysisResult, out_dir: Path | str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    st = result.study
    header = (f"study hash {st.hash()}; {result.summary_data.get('n_responses')} responses; "
              f"analyses: {', '.join(result.requested)}")
    h = [f"<!doctype html><html><head><meta charset='utf-8'><title>llmexp report: "
         f"{html.escape(st.name)}</title><style>{STYLE}</style></head><body>",
         f"<h1>Report: {html.escape(st.name)}</h1>", f"<p class='note'>{header}</p>"]
    md = [f"# Report: {st.name}", "", header, ""]
    inv = result.tables.get("invalid")
    if inv is not None and len(inv):
        h.append("<h2 id='invalid'>Answer validity</h2>" + _fmt(inv).to_html(index=False))
        md += ["## Answer validity", "", _md_table(_fmt(inv)), ""]
    for name in result.requested:
        sh, smd = _section(result, name)
        h += sh
        md += smd
    for n in result.notes:
        h.append(f"<p class='note'>note: {html.escape(n)}</p>")
    h.append("</body></html>")
    hp, mp = out_dir / "report.html", out_dir / "report.md"
    hp.write_text("\n".join(h), encoding="utf-8")
    mp.write_text("\n".join(md), encoding="utf-8")
    return hp, mp


def _section(result: AnalysisResult, name: str) -> tuple[list[str], list[str]]:
    """One analysis's section: (html parts, markdown lines)."""
    analysis = get(name)
    h = [f"<section id='analysis-{name}'><h2>{html.escape(analysis.title)}</h2>"
         f"<p class='note'>{html.escape(analysis.description)}</p>"]
    md = [f"## {analysis.title}", "", analysis.description, ""]
    if name in result.not_run:
        why = f"Not run: {result.not_run[name]}"
        h.append(f"<p class='note'>{html.escape(why)}</p>")
        md += [why, ""]
    else:
        for table, df in analysis.report_section(result.tables):
            f = _fmt(df)
            h.append(f"<h3>{html.escape(table)}</h3>" + f.to_html(index=False, escape=True))
            md += [f"### {table}", "", _md_table(f), ""]
    for p in map(Path, result.figures.get(name, [])):
        if p.suffix == ".png":
            b64 = base64.b64encode(p.read_bytes()).decode()
            h.append(f"<figure><img alt='{html.escape(p.stem)}' "
                     f"src='data:image/png;base64,{b64}'/></figure>")
            md += [f"![{p.stem}](../analysis/figures/{p.name})", ""]
    h.append("</section>")
    return h, md


def open_run_data(run_dir: Path | str):
    """(study, responses) of a run directory via the runner's `open_run`."""
    from llmexp.runner import open_run  # lazy: the runner is a separate stage

    run = open_run(run_dir)
    return run.study, run.to_pandas()


def analyze_run(run_dir: Path | str, requested: Iterable[str] | None = None,
                only: Iterable[str] | None = None, add: Iterable[str] | None = None,
                out_dir: Path | str | None = None, **kwargs) -> AnalysisResult:
    study, responses = open_run_data(run_dir)
    req = resolve_requested(study, requested, only, add)
    out = Path(out_dir) if out_dir else Path(run_dir) / "analysis"
    return analyze(study, responses, req, out_dir=out, **kwargs)


def report(run_dir: Path | str, requested: Iterable[str] | None = None,
           only: Iterable[str] | None = None, add: Iterable[str] | None = None,
           out_dir: Path | str | None = None, **kwargs) -> ReportPaths:
    result = analyze_run(run_dir, requested, only, add, **kwargs)
    out = Path(out_dir) if out_dir else Path(run_dir) / "report"
    hp, mp = write_report(result, out)
    assert result.out_dir is not None  # analyze_run always writes the analysis
    return ReportPaths(html=hp, markdown=mp, analysis_dir=result.out_dir)


__all__ = ["report", "write_report", "analyze_run", "open_run_data", "ReportPaths"]
