"""The report's headline: the findings the numbers support, what cannot be concluded, and a
warning when the answers come from a simulated respondent or a toy model.

Findings are read generically from the tables each analysis shows in its report section
(`Analysis.report_section`): every row with an estimate and an interval (`tables.py`
conventions) is one candidate; its interval either excludes zero (a finding, said with the
interval) or it does not, or the estimate is missing (it cannot be concluded, with the row's
note). No analysis name is compared here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from llmexp.analysis import AnalysisResult, get
from llmexp.report.tables import LEVEL_COLUMNS, estimate_column, fmt_number, human, row_note, varying_keys

MAX_FINDINGS = 8
MAX_UNCLEAR = 6


@dataclass
class Headline:
    findings: list[str] = field(default_factory=list)
    unclear: list[str] = field(default_factory=list)
    more_findings: int = 0
    more_unclear: int = 0


def _finite(v) -> bool:
    try:
        return v is not None and math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def _label(row: pd.Series, keys: list[str]) -> str:
    """"design blind (slope, ols)": the first identifying column named, the others' values."""
    named = [k for k in keys if isinstance(row[k], str) and row[k]]
    if not named:
        return ""
    rest = ", ".join(str(row[k]) for k in named[1:])
    return f"{human(named[0])} {row[named[0]]}" + (f" ({rest})" if rest else "")


def row_sentence(title: str, row: pd.Series, est: str, keys: list[str], level: int
                 ) -> tuple[bool, str]:
    """(supported, the sentence) for one table row with an estimate and its interval."""
    label = _label(row, keys)
    what = f"{title}{' — ' + label if label else ''}: {human(est)}"
    v, lo, hi = row[est], row["ci_low"], row["ci_high"]
    if not (_finite(v) and _finite(lo) and _finite(hi)):
        why = row_note(row) or "the data do not identify it"
        return False, f"{what}: cannot be concluded, no estimate ({why})."
    nums = f"{fmt_number(v)} ({level}% interval {fmt_number(lo)} to {fmt_number(hi)})"
    if float(lo) > 0 or float(hi) < 0:
        sign = "above" if float(lo) > 0 else "below"
        return True, f"{what} {nums}: the whole interval is {sign} zero."
    return False, f"{what} {nums}: cannot be concluded, the interval includes zero."


def _interleave(groups: list[list[str]]) -> list[str]:
    """One from each analysis in turn, so no analysis crowds out the others."""
    out: list[str] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def _findings(analysis, tables: dict[str, pd.DataFrame], level: int) -> list[tuple[bool, str]]:
    """The analysis's own findings when it writes them, else its headline tables read row by row."""
    own = analysis.findings(tables, level)
    if own is not None:
        return own
    out = []
    for _, df in analysis.headline_tables(tables):
        est = estimate_column(df)
        if est is None or est in LEVEL_COLUMNS:  # levels are shown by condition, not as findings
            continue
        keys = varying_keys(df)
        out += [row_sentence(analysis.title, row, est, keys, level) for _, row in df.iterrows()]
    return out


def headline(result: AnalysisResult, alpha: float = 0.05) -> Headline:
    """The findings of every analysis that ran, headline analyses first."""
    level = round(100 * (1 - alpha))
    found: list[list[str]] = []
    unclear: list[list[str]] = []
    ran = [get(n) for n in result.requested if n not in result.not_run]
    for analysis in sorted(ran, key=lambda a: not a.headline):
        yes: list[str] = []
        no: list[str] = []
        for ok, text in _findings(analysis, result.tables, level):
            (yes if ok else no).append(text)
        found.append(yes)
        unclear.append(no)
    f, u = _interleave(found), _interleave(unclear)
    return Headline(findings=f[:MAX_FINDINGS], unclear=u[:MAX_UNCLEAR],
                    more_findings=max(0, len(f) - MAX_FINDINGS),
                    more_unclear=max(0, len(u) - MAX_UNCLEAR))


def not_evidence(models: list[str]) -> tuple[list[str], list[str]]:
    """(warnings, problems): a warning for each model whose answers are not evidence about
    people or about LLMs (the provider says it is `simulated` or a `toy`); a problem when the
    providers cannot be asked (e.g. litellm is not importable)."""
    try:
        from llmexp.providers import for_model
    except ImportError as exc:
        return [], [f"whether {', '.join(models)} is a simulated or toy model could not be "
                    f"checked ({exc})"]
    warnings = []
    for name in models:
        provider = for_model(name)
        if provider.simulated:
            warnings.append(f"{name} is llmexp's synthetic respondent: a formula, not a language "
                            "model. Its answers test the pipeline; they are not evidence about "
                            "people or about LLMs.")
        elif getattr(provider, "toy", False):
            warnings.append(f"{name} is the small embedded toy model: its answers show how the "
                            "study runs; they are not evidence about people, nor about the LLMs "
                            "people use.")
    return warnings, []
