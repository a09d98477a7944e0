"""Attention/manipulation checks: respondents who failed one are left out of every analysis.

A `check` is asked inside a `sequence`, so its trial and the outcome trials of the same
respondent form one chain of `follows` links in the trial table; a respondent is the chain,
named by its first trial. A respondent fails when a check of theirs was answered (status
`ok` or `invalid`) with anything but its expected option (an unparseable answer fails too:
it is not the expected one). All that respondent's rows are dropped before the observations
are built; how many respondents were excluded, per design, model and cell, is the table
`check_exclusions`, and `analyze` says so in a note. A check whose call failed checks
nobody: that respondent stays, and is counted as `unchecked`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmexp.spec import Study

CHECK_KIND = "check"  # the trial kind of a check (llmexp.modes renders it)
COLUMNS = ["design", "model", "cell", "check", "respondents", "failed", "unchecked", "excluded_share"]


def respondents(responses: pd.DataFrame) -> pd.Series:
    """Each row's respondent: the trial id at the start of its chain of `follows` links
    (its own id for a trial asked alone)."""
    ids = responses["trial_id"].astype(str)
    if "follows" not in responses.columns:
        return ids
    parent = {t: f for t, f in zip(ids, responses["follows"], strict=True) if isinstance(f, str) and f}

    def root(tid: str) -> str:
        seen = 0
        while tid in parent and seen <= len(parent):  # a cycle cannot come from the compiler; bounded anyway
            tid, seen = parent[tid], seen + 1
        return tid

    return ids.map(root)


def _verdicts(study: Study, rows: pd.DataFrame) -> pd.DataFrame:
    """One row per check trial: its respondent, whether it was answered and whether it failed."""
    expect = {c.name: c.expect for c in study.checks}
    answered = rows["status"].isin(["ok", "invalid"]).to_numpy()
    labels = rows["label"].where(rows["label"].notna(), None).tolist() if "label" in rows.columns else [None] * len(rows)
    failed = np.array([a and lab != expect.get(t) for a, lab, t in zip(answered, labels, rows["target"], strict=True)], dtype=bool)
    return rows.assign(answered=answered, failed=failed)


def exclude_failed_checks(study: Study, responses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """The responses without the respondents who failed a check, and the per-cell counts
    (None when the study has no checks or the table holds no check trial)."""
    if not study.checks or "kind" not in responses.columns or not (responses["kind"] == CHECK_KIND).any():
        return responses, None
    who = respondents(responses)
    is_check = (responses["kind"] == CHECK_KIND).to_numpy()
    verdicts = _verdicts(study, responses[is_check]).assign(respondent=who[is_check].to_numpy())
    failed = set(verdicts.loc[verdicts["failed"], "respondent"])
    kept = responses[~is_check & ~who.isin(failed).to_numpy()]
    return kept, _counts(verdicts)


def _counts(verdicts: pd.DataFrame) -> pd.DataFrame:
    keys = ["design", "model", "cell", "target"]
    frame = verdicts.assign(cell=verdicts["cell"].fillna("(all)") if "cell" in verdicts.columns else "(all)")
    per_respondent = frame.groupby([*keys, "respondent"], sort=False, dropna=False).agg(failed=("failed", "any"), answered=("answered", "any"))
    grouped = per_respondent.groupby(level=keys, sort=False, dropna=False)
    table = pd.DataFrame(
        {
            "respondents": grouped.size(),
            "failed": grouped["failed"].sum().astype(int),
            "unchecked": (~per_respondent["answered"]).groupby(level=keys, sort=False, dropna=False).sum().astype(int),
        }
    ).reset_index()
    table = table.rename(columns={"target": "check"})
    table["excluded_share"] = table["failed"] / table["respondents"]
    return table[COLUMNS]


def exclusion_note(table: pd.DataFrame) -> str:
    """One line for `analyze` and the report: how many respondents each check excluded."""
    parts = []
    for (check, design), part in table.groupby(["check", "design"], sort=False):
        failed, total = int(part["failed"].sum()), int(part["respondents"].sum())
        unchecked = int(part["unchecked"].sum())
        text = f"check '{check}' in design {design}: {failed} of {total} respondents failed it and were excluded"
        parts.append(text + (f" ({unchecked} not checked: the call failed)" if unchecked else ""))
    return "; ".join(parts) + " (per cell: table check_exclusions)"
