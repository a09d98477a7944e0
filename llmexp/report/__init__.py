"""`report(run_dir)`: a self-contained `report.html` (figures as base64, CSS inline) and `report.md`.

The HTML comes from the jinja2 template `template.html.j2` (autoescaped). It opens with a
headline (what was run, on which models, the findings the numbers support with their
intervals, and what cannot be concluded: `headline.py`), a banner when the model is the
synthetic respondent or the embedded toy model, the methods (study file, one rendered
prompt per design, models and parameters, counts, dates, versions, answer validity:
`methods.py`), then one section per requested analysis in report order, from what the
analysis declares (`title`, `description`, `report_section` tables, figures): a short table
with human column names (`tables.py`) and the full table one click away. An analysis that
could not run keeps its section (`<section id='analysis-NAME'>`), which says why.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from llmexp.analysis import AnalysisResult, analyze, get, resolve_requested
from llmexp.errors import LlmexpError
from llmexp.report.by_condition import by_condition, embed_png
from llmexp.report.headline import headline, not_evidence
from llmexp.report.methods import llmexp_version, methods
from llmexp.report.tables import MISSING, markdown, shown

MAX_FULL_ROWS = 500


@dataclass
class ReportPaths:
    html: Path
    markdown: Path
    analysis_dir: Path


def _environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.PackageLoader("llmexp.report", "."),
                              autoescape=True, trim_blocks=True, lstrip_blocks=True,
                              undefined=jinja2.StrictUndefined)


def _is_number(text) -> bool:
    t = str(text).replace(",", "").replace("−", "-")
    if t in (MISSING, "∞", "-∞"):
        return True
    try:
        float(t)
    except ValueError:
        return t.startswith("[") and t.endswith("]")
    return True


def _figures(result: AnalysisResult, name: str) -> list[dict]:
    return embed_png([Path(p) for p in result.figures.get(name, [])])


def _warnings(df: pd.DataFrame, have: list[str]) -> list[str]:
    """A table's ``warning`` values (e.g. "built from ONE cell: ... not a ranking"), once each,
    so they stand above the section's figures rather than only in a table column."""
    if "warning" not in df:
        return []
    found = [str(w) for w in df["warning"].dropna().unique() if str(w).strip()]
    return [w for w in dict.fromkeys(found) if w not in have]


def _section(result: AnalysisResult, name: str) -> dict:
    """One analysis's section for the template."""
    analysis = get(name)
    section: dict[str, Any] = {"name": name, "title": analysis.title, "description": analysis.description,
               "not_run": result.not_run.get(name, ""), "tables": [], "figures": [],
               "notes": list(getattr(result, "analysis_notes", {}).get(name, []))}
    if name in result.not_run:
        return section
    for table, df in analysis.report_section(result.tables):
        section["notes"] += _warnings(df, section["notes"])
        short = shown(table, df, short=True)
        full = shown(table, df.head(MAX_FULL_ROWS), short=False)
        full.n_rows = len(df)
        show_full = len(full.columns) > len(short.columns) or len(df) > len(short.rows)
        section["tables"].append({"short": short, "full": full if show_full else None})
    section["figures"] = _figures(result, name)
    return section


def _counts_line(result: AnalysisResult, responses: pd.DataFrame | None) -> str:
    n = result.summary_data.get("n_responses")
    if responses is None or responses.empty or "status" not in responses:
        return f"{n} responses"
    by = responses["status"].value_counts()
    parts = ", ".join(f"{int(v)} {k}" for k, v in by.items())
    if "valid" in responses:
        parts += f"; {int(responses['valid'].fillna(False).astype(bool).sum())} valid answers"
    designs = responses["design"].nunique() if "design" in responses else 0
    units = responses["unit_id"].nunique() if "unit_id" in responses else 0
    return f"{len(responses)} calls ({parts}) over {designs} designs and {units} units"


def _context(result: AnalysisResult, responses: pd.DataFrame | None, manifest: dict | None,
             fig_dir: Path) -> dict:
    st = result.study
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    meth = methods(st, responses, manifest, generated)
    names = [m["name"] for m in meth.models]
    banners, problems = not_evidence(names)
    invalid = result.tables.get("invalid")
    count_columns = ["model", "design"] + sorted({k for r in meth.counts for k in r} - {"model", "design"})
    ran = [get(n).title for n in result.requested if n not in result.not_run]
    return {
        "study": st, "study_hash": st.hash(), "version": llmexp_version(), "generated": generated,
        "n_responses": result.summary_data.get("n_responses"),
        "what_run": (st.description or st.name) + f" ({len(st.designs) or 1} designs)",
        "model_names": names, "counts_line": _counts_line(result, responses),
        "analyses_line": ", ".join(ran) or "none ran",
        "banners": banners, "banner_problems": problems, "head": headline(result),
        "not_run": [get(n).title for n in result.not_run], "methods": meth,
        "count_columns": count_columns,
        "invalid": shown("invalid", invalid, short=False) if invalid is not None and len(invalid) else None,
        "sections": [_section(result, n) for n in result.requested],
        "notes": result.notes, "is_number": _is_number,
        "by_condition": by_condition(st, result.tables, fig_dir),
        "all_failed": bool(result.requested) and len(result.not_run) == len(result.requested),
        "failure_reasons": list(dict.fromkeys(result.not_run.values())),
    }


def _markdown(ctx: dict) -> str:
    st, head = ctx["study"], ctx["head"]
    md = [f"# {st.name}", "", st.description or "", "", *[f"> **{b}**" for b in ctx["banners"]], "",
          "## Headline", "", f"- Models: {', '.join(ctx['model_names'])}", f"- Responses: {ctx['counts_line']}", ""]
    md += [f"- {f}" for f in head.findings] + [""] + [f"- {f}" for f in head.unclear] + [""]
    bc = ctx["by_condition"]
    if bc.comparisons:
        md += ["### Simulated vs human", ""] + [f"- {c}" for c in bc.comparisons] + [""]
    if bc.tables or bc.side_by_side:
        md += ["## Results by condition", ""]
        for t in [*bc.tables, *([bc.side_by_side] if bc.side_by_side else [])]:
            md += [f"### {t.title}", "", markdown(t), ""]
        md += [f"![{f['alt']}](figures/{f['file']})\n" for f in bc.figures]
    if ctx["invalid"] is not None:
        md += ["## Answer validity", "", markdown(ctx["invalid"]), ""]
    for s in ctx["sections"]:
        md += [f"## {s['title']}", "", s["description"], ""]
        if s["not_run"]:
            md += [f"Not run: {s['not_run']}", ""]
        md += [f"Note: {n}" for n in s["notes"]]
        for t in s["tables"]:
            md += [f"### {t['short'].title}", "", markdown(t["short"]), ""]
        md += [f"![{f['alt']}](../analysis/figures/{f['file']})\n" for f in s["figures"]]
    md += [f"note: {n}" for n in ctx["notes"]]
    return "\n".join(md) + "\n"


def write_report(result: AnalysisResult, out_dir: Path | str, responses: pd.DataFrame | None = None,
                 manifest: dict | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md for an analysis `result` into `out_dir`; `responses`
    (the run's response table) and `manifest` add the prompts, counts and dates."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = _context(result, responses, manifest, out_dir / "figures")
    html_text = _environment().get_template("template.html.j2").render(**ctx)
    hp, mp = out_dir / "report.html", out_dir / "report.md"
    hp.write_text(html_text, encoding="utf-8")
    mp.write_text(_markdown(ctx), encoding="utf-8")
    return hp, mp


def open_run_data(run_dir: Path | str):
    """(study, responses) of a run directory via the runner's `open_run`."""
    from llmexp.runner import open_run  # lazy: the runner is a separate stage

    run = open_run(run_dir)
    return run.study, run.to_pandas()


def read_manifest(run_dir: Path | str) -> dict | None:
    path = Path(run_dir) / "manifest.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _analyze(run_dir, requested, only, add, out_dir, **kwargs) -> tuple[AnalysisResult, pd.DataFrame]:
    study, responses = open_run_data(run_dir)
    req = resolve_requested(study, requested, only, add)
    out = Path(out_dir) if out_dir else Path(run_dir) / "analysis"
    return analyze(study, responses, req, out_dir=out, **kwargs), responses


def analyze_run(run_dir: Path | str, requested: Iterable[str] | None = None,
                only: Iterable[str] | None = None, add: Iterable[str] | None = None,
                out_dir: Path | str | None = None, **kwargs) -> AnalysisResult:
    return _analyze(run_dir, requested, only, add, out_dir, **kwargs)[0]


def _nothing_ran(run_dir, requested, only, add, exc: Exception) -> tuple[AnalysisResult, pd.DataFrame]:
    """When no analysis can run (e.g. every answer invalid, or too few cells after a pilot),
    the report still says what was run and why each analysis could not run."""
    study, responses = open_run_data(run_dir)
    req = resolve_requested(study, requested, only, add)
    reasons = dict(getattr(exc, "not_run", None) or {})
    not_run = {name: reasons.get(name, str(exc)) for name in req}
    result = AnalysisResult(study=study, requested=req, tables={},
                            summary_data={"n_responses": len(responses)}, not_run=not_run)
    return result, responses


def report(run_dir: Path | str, requested: Iterable[str] | None = None,
           only: Iterable[str] | None = None, add: Iterable[str] | None = None,
           out_dir: Path | str | None = None, **kwargs) -> ReportPaths:
    """Analyse the run and write its report; a run on which no analysis can run still gets a
    report that says why (the analysis folder is then not written)."""
    try:
        result, responses = _analyze(run_dir, requested, only, add, None, **kwargs)
    except Exception as exc:  # an analysis's own failure types vary; the marked ones are reported
        if not (isinstance(exc, LlmexpError) or hasattr(exc, "not_run")):
            raise
        result, responses = _nothing_ran(run_dir, requested, only, add, exc)
    out = Path(out_dir) if out_dir else Path(run_dir) / "report"
    hp, mp = write_report(result, out, responses=responses, manifest=read_manifest(run_dir))
    return ReportPaths(html=hp, markdown=mp, analysis_dir=result.out_dir or Path(run_dir) / "analysis")


__all__ = ["report", "write_report", "analyze_run", "open_run_data", "read_manifest", "ReportPaths"]
