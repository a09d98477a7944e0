"""The report's "Results by condition" section and its "simulated vs human" headline lines.

What was found, per condition, before any model of it: the mean (or share) in every
condition of every design with its interval (figure + short table), the share of each option
for categorical outcomes, and, when the study has a human baseline, the human number beside
the simulated one, as numbers ("blind: 50% [30%, 70%] vs humans 82% [74%, 88%], n = 107").
Frames come from `conditions.py`, figures from `figures.py`; a figure that cannot be drawn
becomes a note, never a failed report.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from llmexp.report import conditions, figures
from llmexp.report.tables import Shown, fmt_number, shown
from llmexp.spec import Study

MAX_SENTENCES = 6
MAX_ROWS = 60


@dataclass
class ByCondition:
    figures: list[dict] = field(default_factory=list)  # alt, b64, file
    tables: list[Shown] = field(default_factory=list)
    side_by_side: Shown | None = None
    comparisons: list[str] = field(default_factory=list)  # headline sentences
    notes: list[str] = field(default_factory=list)


def embed_png(paths: list[Path], alt: str | None = None) -> list[dict]:
    """The PNGs among `paths` as the template embeds them (base64), with their alt text
    (`alt`, else the file's name in words)."""
    return [
        {"alt": alt or p.stem.replace("_", " "), "b64": base64.b64encode(p.read_bytes()).decode(), "file": p.name}
        for p in paths
        if p.suffix == ".png" and p.exists()
    ]


def _ylabel(study: Study, outcome: str) -> tuple[str, bool]:
    _, share, first = conditions.outcome_kind(study, outcome)
    return (f'share answering "{first}"', True) if share else (f"mean {outcome}", False)


def _percent(v, share: bool) -> str:
    if share:
        try:
            return f"{100 * float(v):.0f}%" if pd.notna(v) else "—"
        except (TypeError, ValueError):
            return "—"
    return fmt_number(v)


def _interval(lo, hi, share: bool) -> str:
    if pd.isna(lo) or pd.isna(hi):
        return "(no interval)"
    return f"[{_percent(lo, share)}, {_percent(hi, share)}]"


def summary_sentence(side: pd.DataFrame) -> str:
    """Many conditions: one sentence with the mean absolute difference per design."""
    per = side.assign(gap=side["difference"].abs()).groupby(["design", "model"], sort=False)["gap"]
    many_models = side["model"].nunique() > 1
    parts = [f"{d} ({m})" if many_models else str(d) for d, m in per.mean().index]
    values = ", ".join(f"{p} {fmt_number(v)}" for p, v in zip(parts, per.mean().to_numpy()))
    return (
        f"Simulated vs human (pooled over units) in {side['condition'].nunique()} conditions: mean absolute "
        f"difference per design {values} (every condition in the figure and table below)."
    )


def comparison_sentences(study: Study, side: pd.DataFrame) -> list[str]:
    """ "design blind, condition X: 50% [30%, 70%] answered "unfair" (simulated) vs 82%
    [74%, 88%] of 107 humans": one per row of the side-by-side table, first rows first."""
    out = []
    for r in side.head(MAX_SENTENCES).itertuples(index=False):
        label, share = _ylabel(study, str(r.outcome))
        what = label.replace("share answering", "answered").replace("mean ", "mean ")
        n = f"{fmt_number(r.human_n)} humans" if pd.notna(r.human_n) else "humans"
        who = f"{r.design} ({r.model})" if side["model"].nunique() > 1 else str(r.design)
        out.append(
            f'{who}, {r.outcome} in condition "{r.condition}": '
            f"{_percent(r.simulated, share)} {_interval(r.simulated_ci_low, r.simulated_ci_high, share)} "
            f"{what} (simulated) vs {_percent(r.human, share)} "
            f"{_interval(r.human_ci_low, r.human_ci_high, share)} of {n}."
        )
    return out


def _draw(study: Study, frames: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame], fig_dir: Path, notes: list[str]) -> list[dict]:
    sim, units, hum, sh = frames
    out: list[dict] = []
    for outcome in dict.fromkeys(list(sim.get("outcome", [])) + list(sh.get("outcome", []))):
        try:
            if not sh.empty and outcome in set(sh["outcome"]):
                paths = figures.shares_figure(sh, outcome, fig_dir)
            else:
                label, share = _ylabel(study, outcome)
                per_unit = not units.empty and outcome in set(units["outcome"])
                paths = figures.means_figure(units if per_unit else sim, hum, outcome, label, fig_dir, share=share)
        except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
            notes.append(f"figure for {outcome} not drawn ({type(exc).__name__}: {exc})")
            continue
        out += embed_png(paths, f"{outcome} by condition")
    return out


def _varying(df: pd.DataFrame) -> pd.DataFrame:
    """Without the naming columns (model, outcome) that hold one value: the title says it."""
    same = [c for c in ("model", "outcome") if c in df and df[c].nunique() <= 1]
    return df.drop(columns=same)


def _means_table(sim: pd.DataFrame) -> pd.DataFrame:
    cols = ["design", "model", "outcome", "condition", "mean", "ci_low", "ci_high", "n", "n_units"]
    return _varying(sim[[c for c in cols if c in sim.columns]])


def _shares_table(sh: pd.DataFrame) -> pd.DataFrame:
    cols = ["design", "model", "outcome", "condition", "option", "share", "ci_low", "ci_high", "n", "note"]
    return _varying(sh[[c for c in cols if c in sh.columns]])


def _shown(name: str, df: pd.DataFrame, most: int = MAX_ROWS) -> Shown:
    """All columns, at most `most` rows (the rest in the analysis tables on disk)."""
    s = shown(name, df.head(most), short=False)
    s.n_rows, s.truncated = len(df), len(df) > most
    return s


def by_condition(study: Study, tables: dict[str, pd.DataFrame], fig_dir: Path) -> ByCondition:
    """The section's figures, tables and headline sentences from the analysis tables."""
    res = ByCondition()
    sim, sh = conditions.means(study, tables), conditions.shares(study, tables)
    hum = conditions.humans(study, tables)
    units = conditions.unit_means(study, tables)
    res.figures = _draw(study, (sim, units, hum, sh), fig_dir, res.notes)
    for frame in (sim, sh):
        n = len(frame[["design", "model"]].drop_duplicates()) if not frame.empty else 0
        if n > figures.MAX_PANELS:
            res.notes.append(f"the figures show the first {figures.MAX_PANELS} of {n} design x model panels; the tables below list them all")
    if not sim.empty:
        res.tables.append(_shown("means_by_condition", _means_table(sim)))
    if not sh.empty:
        res.tables.append(_shown("shares_by_condition", _shares_table(sh)))
    side = conditions.side_by_side(sim, hum)
    if not side.empty:
        res.side_by_side = _shown("simulated_vs_human", _varying(side), conditions.MAX_SIDE_BY_SIDE)
        res.comparisons = comparison_sentences(study, side) if len(side) <= MAX_SENTENCES else [summary_sentence(side)]
    elif not hum.empty:
        res.notes.append("the human cells match no simulated condition, so no side-by-side comparison could be made")
    return res
