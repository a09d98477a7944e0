"""Human baselines that are not one number per cell (called by `baseline.py`).

**Categorical outcomes, per option** (``option COLUMN``: each human row holds the share choosing
one option in one cell, ``count`` its n). Aligned on unit x the levels of the mapped treatments
x option (pooled over units when the baseline has no unit column):

- ``baseline_options``: ``sim`` (share choosing the option; interval as `option_shares`:
  Wilson within one unit, CR2 clustered by unit when pooled over units) beside ``human``
  (Wilson from n), ``abs_error`` and ``floor`` (a perfect simulator's expected |error|:
  E|Binomial(n, h)/n - h|). An option the study does not offer in a condition (`"C" if
  decoy = "present"`) is left out on both sides, never compared as a share of 0; a human
  row missing for an offered option is left out too (unknown, not 0);
- summary rows (``comparison`` = "option shares", appended to ``baseline_summary``): the MAE
  over cell x option with its noise floor, as `baseline.py` computes it for cells (weights =
  human n; ``mae_perfect``; ``mae_corrected``; intervals over units);
- ``baseline_option_effects``: per unit x option, the change in its share from the primary
  treatment's first level to its last (with the decoy minus without), simulated vs human,
  each with a Newcombe (hybrid score) interval built from the two shares' intervals, their
  difference, ratio and whether the signs agree. An option offered at only one of the two
  levels has no effect (missing, with a note).

**Effect sizes** (``compare effect OUTCOME = COLUMN``: the human Cohen's d of the contrast last
level minus first level, per unit): ``baseline_effect_sizes`` per design x model x unit: the
simulated d = (mean at the last level - mean at the first) / the pooled within-condition SD
(`effects.py`'s, ddof 1), its interval from the large-sample variance
(n1 + n2)/(n1 n2) + d^2 / (2 (n1 + n2)) (Hedges & Olkin 1985; answers treated as
independent), the human d, ``d_diff`` = sim - human, ``d_ratio`` and ``sign_agree``; with no
spread in a condition (identical answers) d is missing with a note.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmexp import answers
from llmexp.analysis._categorical import mean_interval, option_offered
from llmexp.analysis._honest import num
from llmexp.analysis._stats import wilson, z_for
from llmexp.analysis.humans import cell_key, level_text
from llmexp.analysis.observations import primary_treatment, to_float
from llmexp.errors import AnalysisError
from llmexp.spec import Study

NAN = float("nan")
GROUP = ["design", "mode", "model", "unit_id", "key"]


def _rows(study: Study) -> pd.DataFrame:
    b = study.baseline
    assert b is not None
    df = pd.DataFrame(list(b.rows))
    for col, val in b.where.items():
        df = df[df[col].astype(str) == str(val)]
    df = df.copy()
    df["unit_id"] = df[b.unit_column].astype(str) if b.unit_column else "all"
    return df


def _lv(row: pd.Series | dict, mapped: dict[str, str]) -> dict:
    return {f"lvl__{t}": row[col] for t, col in mapped.items()}


def human_options(study: Study, out, alpha: float = 0.05) -> pd.DataFrame:
    """Human share of each offered option per unit x cell (rows pooled by n)."""
    b = study.baseline
    assert b is not None and b.option_column and b.n_column
    df = _rows(study)
    labels = list(answers.get(out.answer).labels)
    df = df[df[b.option_column].astype(str).isin(labels)]
    share, n = df[b.outcomes[out.name]].map(to_float), df[b.n_column].map(to_float)
    bad = ~(share.between(0, 1) & (n > 0))
    if bad.any():
        i = bad.to_numpy().nonzero()[0][0]
        raise AnalysisError(
            f"baseline {b.source}: row {i + 1} holds share {share.iloc[i]!r} with n {n.iloc[i]!r}; "
            "a share of an option must lie in [0, 1] and its count be positive"
        )
    offered = [option_offered(out, labels.index(str(r[b.option_column])), _lv(r, dict(b.treatments))) for _, r in df.iterrows()]
    frame = pd.DataFrame(
        {"unit_id": df["unit_id"], "key": cell_key(df, dict(b.treatments)), "option": df[b.option_column].astype(str), "n": n, "_w": share * n}
    )[offered]
    g = frame.groupby(["unit_id", "key", "option"], as_index=False, sort=False)[["n", "_w"]].sum()
    g["human"] = g["_w"] / g["n"]
    lo_hi = np.clip(np.round([wilson(h * m, m, alpha) for h, m in zip(g["human"], g["n"])], 12), 0.0, 1.0)
    return g.assign(human_ci_low=lo_hi[:, 0], human_ci_high=lo_hi[:, 1]).drop(columns="_w").rename(columns={"n": "n_human"})


def sim_options(study: Study, obs_table: pd.DataFrame, out, alpha: float) -> pd.DataFrame:
    """Simulated share of each offered option per design x model x unit x cell."""
    b = study.baseline
    assert b is not None
    data = obs_table[(obs_table["kind"] == "outcome") & (obs_table["target"] == out.name)].copy()
    if data.empty:
        return pd.DataFrame()
    mapped = {t: f"lvl__{t}" for t in b.treatments}
    data["key"] = cell_key(data, mapped)
    data["_unit"] = data["unit_id"].astype(str)
    data["unit_id"] = data["_unit"] if b.unit_column else "all"
    labels, rows = list(answers.get(out.answer).labels), []
    for key, g in data.groupby(GROUP, sort=False):
        clusters = pd.factorize(g["_unit"])[0]
        lv = {c: g[c].iloc[0] for c in g.columns if c.startswith("lvl__") and g[c].nunique() == 1}
        for k, lab in enumerate(labels):
            if not option_offered(out, k, lv):
                continue
            s = mean_interval((g["y"].to_numpy() == k).astype(float), clusters, alpha, zero_one=True)
            rows.append(
                dict(
                    zip(GROUP, key),
                    option=lab,
                    sim=s["mean"],
                    sim_ci_low=s["ci_low"],
                    sim_ci_high=s["ci_high"],
                    n_sim=s["n"],
                    sim_interval=s["inference"],
                )
            )
    return pd.DataFrame(rows)


OPTION_COLUMNS = [
    "design",
    "mode",
    "model",
    "outcome",
    "unit_id",
    "condition",
    "option",
    "sim",
    "sim_ci_low",
    "sim_ci_high",
    "sim_interval",
    "human",
    "human_ci_low",
    "human_ci_high",
    "n_sim",
    "n_human",
    "abs_error",
    "floor",
    "key",
]


def option_cells(study: Study, obs_table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``baseline_options``: simulated beside human per design x unit x cell x offered option."""
    from llmexp.analysis.baseline import perfect_abs_error

    b = study.baseline
    assert b is not None
    parts = []
    for out in study.outcomes:
        if out.name not in b.outcomes or not answers.get(out.answer).categorical:
            continue
        sim, hum = sim_options(study, obs_table, out, alpha), human_options(study, out, alpha)
        if sim.empty:
            continue
        m = sim.merge(hum, on=["unit_id", "key", "option"])
        if m.empty:
            raise AnalysisError(
                f"baseline: no simulated option share of {out.name!r} matches a human row on unit, "
                "level and option (check the baseline's unit, level and option columns)"
            )
        m["abs_error"] = (m["sim"] - m["human"]).abs()
        m["floor"] = [perfect_abs_error(h, n) for h, n in zip(m["human"], m["n_human"])]
        m["condition"] = m["key"].str.replace("|", ", ", regex=False)
        parts.append(m.assign(outcome=out.name)[OPTION_COLUMNS])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=OPTION_COLUMNS)


def option_summary(cells: pd.DataFrame, effects: pd.DataFrame, alpha: float) -> list[dict]:
    """Summary rows (one per design x model x outcome) for `baseline_summary`."""
    from llmexp.analysis._stats import safe_corr
    from llmexp.analysis.baseline import unit_bootstrap_mae, weighted_mean

    rows = []
    for (design, mode, model, outcome), m in cells.groupby(["design", "mode", "model", "outcome"], sort=False):
        err, w = (m["sim"] - m["human"]).to_numpy(float), m["n_human"].to_numpy(float)
        r, _ = safe_corr(m["sim"].to_numpy(float), m["human"].to_numpy(float))
        mw, perfect = weighted_mean(np.abs(err), w), weighted_mean(m["floor"], w)
        e = effects[(effects["design"] == design) & (effects["model"] == model) & (effects["outcome"] == outcome)]
        e = e[np.isfinite(e["effect_sim"]) & np.isfinite(e["effect_human"])]
        row = dict(
            design=design,
            mode=mode,
            model=model,
            outcome=outcome,
            comparison="option shares",
            n_cells=len(m),
            n_units=m["unit_id"].nunique(),
            mae=float(np.mean(np.abs(err))),
            rmse=float(np.sqrt(np.mean(err**2))),
            bias=float(np.mean(err)),
            correlation=r,
            mae_weighted=mw,
            mae_perfect=perfect,
            mae_corrected=mw - perfect,
            effect_kind="per-option share: last - first level",
            sign_agreement=float((np.sign(e["effect_sim"]) == np.sign(e["effect_human"])).mean()) if len(e) else NAN,
        )
        row.update(unit_bootstrap_mae(m, alpha, 0, None))
        rows.append(row)
    return rows


def _newcombe(p1, l1, u1, p2, l2, u2) -> tuple[float, float, float]:
    """p2 - p1 with Newcombe's hybrid interval from the two shares' own intervals."""
    d = p2 - p1
    return d, d - float(np.hypot(p2 - l2, u1 - p1)), d + float(np.hypot(u2 - p2, p1 - l1))


def option_effects(study: Study, cells: pd.DataFrame) -> pd.DataFrame:
    """``baseline_option_effects``: each option's share at the last level of the primary
    treatment minus at its first, simulated vs human, per design x model x unit."""
    t = study.treatment(primary_treatment(study))
    first, last = f"{t.name}={level_text(t.levels[0])}", f"{t.name}={level_text(t.levels[-1])}"
    c = cells.assign(
        _t=cells["key"].map(lambda k: next((p for p in k.split("|") if p.startswith(t.name + "=")), "")),
        _rest=cells["key"].map(lambda k: "|".join(p for p in k.split("|") if not p.startswith(t.name + "="))),
    )
    rows = []
    keys = ["design", "mode", "model", "outcome", "unit_id", "_rest", "option"]
    for key, g in c.groupby(keys, sort=False):
        a, z = g[g["_t"] == first], g[g["_t"] == last]
        row = dict(zip(keys, key), contrast=f"{level_text(t.levels[-1])} - {level_text(t.levels[0])}")
        row["other_levels"] = row.pop("_rest")
        if a.empty or z.empty:
            at = level_text(t.levels[0]) if a.empty else level_text(t.levels[-1])
            rows.append(dict(row, effect_sim=NAN, effect_human=NAN, note=f"not an option (or no human share) at {t.name} = {at}: no effect"))
            continue
        a, z = a.iloc[0], z.iloc[0]
        s = _newcombe(a.sim, a.sim_ci_low, a.sim_ci_high, z.sim, z.sim_ci_low, z.sim_ci_high)
        h = _newcombe(a.human, a.human_ci_low, a.human_ci_high, z.human, z.human_ci_low, z.human_ci_high)
        rows.append(
            dict(
                row,
                effect_sim=s[0],
                effect_sim_ci_low=s[1],
                effect_sim_ci_high=s[2],
                effect_human=h[0],
                effect_human_ci_low=h[1],
                effect_human_ci_high=h[2],
                effect_diff=s[0] - h[0],
                effect_ratio=s[0] / h[0] if h[0] else NAN,
                sign_agree=bool(np.sign(s[0]) == np.sign(h[0])),
                note="",
            )
        )
    out = pd.DataFrame(rows)
    return out.drop(columns="other_levels") if (out["other_levels"] == "").all() else out


def cohen_d(first: np.ndarray, last: np.ndarray, sd: float, alpha: float) -> dict:
    """(mean(last) - mean(first)) / sd with the Hedges-Olkin large-sample interval."""
    n1, n2 = len(first), len(last)
    if n1 < 2 or n2 < 2 or not (np.isfinite(sd) and sd > 0):
        why = "fewer than 2 answers in a condition" if min(n1, n2) < 2 else "no spread within the conditions"
        return dict(d_sim=NAN, d_ci_low=NAN, d_ci_high=NAN, n_first=n1, n_last=n2, note=f"{why}: no Cohen's d")
    d = float((np.mean(last) - np.mean(first)) / sd)
    se = float(np.sqrt((n1 + n2) / (n1 * n2) + d * d / (2 * (n1 + n2))))
    q = z_for(alpha)
    return dict(d_sim=d, d_ci_low=d - q * se, d_ci_high=d + q * se, n_first=n1, n_last=n2, note="")


def effect_sizes(study: Study, obs_table: pd.DataFrame, alpha: float) -> pd.DataFrame:
    """``baseline_effect_sizes``: simulated vs human Cohen's d per design x model x unit."""
    from llmexp.analysis.effects import cohens_d_sd  # the `effects` table's denominator

    b = study.baseline
    assert b is not None
    t = study.treatment(primary_treatment(study))
    lo, hi = level_text(t.levels[0]), level_text(t.levels[-1])
    hum = _rows(study)
    rows = []
    for out, col in b.effects.items():
        human = dict(zip(hum["unit_id"], hum[col].map(to_float)))
        data = obs_table[(obs_table["kind"] == "outcome") & (obs_table["target"] == out)].copy()
        data["unit_id"] = data["unit_id"].astype(str) if b.unit_column else "all"
        data["_t"] = data[f"lvl__{t.name}"].map(level_text)
        for (design, mode, model, unit), g in data.groupby(["design", "mode", "model", "unit_id"], sort=False):
            if unit not in human:
                continue
            g = g[g["_t"].isin([lo, hi])]
            lv = [c for c in g.columns if c.startswith("lvl__")]
            row = dict(
                design=design,
                mode=mode,
                model=model,
                outcome=out,
                unit_id=unit,
                contrast=f"{hi} - {lo}",
                **cohen_d(g.loc[g["_t"] == lo, "y"].to_numpy(float), g.loc[g["_t"] == hi, "y"].to_numpy(float), cohens_d_sd(g[[*lv, "y"]]), alpha),
            )
            h = human[unit]
            rows.append(
                dict(
                    row,
                    d_human=h,
                    d_diff=row["d_sim"] - h,
                    d_ratio=row["d_sim"] / h if h else NAN,
                    sign_agree=bool(np.sign(row["d_sim"]) == np.sign(h)) if np.isfinite(row["d_sim"]) else None,
                )
            )
    return pd.DataFrame(rows)


def effect_summary(sizes: pd.DataFrame) -> pd.DataFrame:
    """Per design x model x outcome: mean simulated and human d, mean |difference|, signs."""
    rows = []
    for (design, mode, model, outcome), g in sizes.groupby(["design", "mode", "model", "outcome"], sort=False):
        ok = g[np.isfinite(g["d_sim"].astype(float))]
        rows.append(
            dict(
                design=design,
                mode=mode,
                model=model,
                outcome=outcome,
                n_units=len(g),
                n_units_with_d=len(ok),
                mean_d_sim=float(ok["d_sim"].mean()) if len(ok) else NAN,
                mean_d_human=float(g["d_human"].mean()),
                mean_abs_d_diff=float(ok["d_diff"].abs().mean()) if len(ok) else NAN,
                sign_agreement=float(ok["sign_agree"].astype(bool).mean()) if len(ok) else NAN,
                note="" if len(ok) else "no unit has a simulated Cohen's d",
            )
        )
    first = ["design", "outcome", "mean_d_sim", "mean_d_human", "mean_abs_d_diff", "sign_agreement"]  # what a reader compares
    out = pd.DataFrame(rows)
    return out[first + [c for c in out.columns if c not in first]]


def _in_study_order(study: Study, sizes: pd.DataFrame) -> pd.DataFrame:
    """Rows by outcome, then unit (the units table's order), then design (the study's)."""
    if sizes.empty:
        return sizes
    design = {d.name: i for i, d in enumerate(study.designs)}
    unit = {str(r[study.units.key]): i for i, r in enumerate(study.units.rows)}
    order = sizes.assign(_u=sizes["unit_id"].map(unit), _d=sizes["design"].map(design))
    return order.sort_values(["outcome", "_u", "_d"], kind="stable").drop(columns=["_u", "_d"]).reset_index(drop=True)


def compare_kinds(study: Study, obs_table: pd.DataFrame, alpha: float) -> tuple[dict[str, pd.DataFrame], list[dict]]:
    """The tables of both kinds, and the option-share rows for `baseline_summary`."""
    b = study.baseline
    tables: dict[str, pd.DataFrame] = {}
    summary: list[dict] = []
    unnamed = [o.name for o in study.outcomes if b is not None and o.name in b.outcomes and answers.get(o.answer).categorical]
    if unnamed and b is not None and not b.option_column:  # `check` refuses this; a Study built in Python may not
        raise AnalysisError(
            f"baseline: {unnamed[0]!r} is categorical: its human rows need an option column (option COLUMN); its mean option index would mean nothing"
        )
    if b is not None and b.option_column:
        cells = option_cells(study, obs_table, alpha)
        effects = option_effects(study, cells) if len(cells) else pd.DataFrame(columns=["design", "model", "outcome", "effect_sim", "effect_human"])
        tables.update(baseline_options=cells, baseline_option_effects=effects)
        summary = option_summary(cells, effects, alpha)
    if b is not None and b.effects:
        sizes = effect_sizes(study, obs_table, alpha)
        tables["baseline_effect_sizes"] = sizes = _in_study_order(study, sizes)
        if len(sizes):
            tables["baseline_effect_summary"] = effect_summary(sizes)
    return tables, summary


def _signed(x) -> str:
    return num(x, "+.2f")


def summary_lines(tables: dict[str, pd.DataFrame]) -> list[str]:
    """Digest lines: each option's effect and each unit's Cohen's d, simulated vs human."""
    lines = []
    eff = tables.get("baseline_option_effects")
    for r in [] if eff is None or not len(eff) else eff.itertuples():
        if np.isfinite(r.effect_sim):
            lines.append(
                f"baseline {r.design} {r.outcome} share of {r.option!r} ({r.contrast}): simulated "
                f"{_signed(r.effect_sim)} [{_signed(r.effect_sim_ci_low)}, {_signed(r.effect_sim_ci_high)}] vs human "
                f"{_signed(r.effect_human)} [{_signed(r.effect_human_ci_low)}, {_signed(r.effect_human_ci_high)}]"
            )
    sizes = tables.get("baseline_effect_sizes")
    for r in [] if sizes is None or not len(sizes) else sizes.itertuples():
        sim = f"{_signed(r.d_sim)} [{_signed(r.d_ci_low)}, {_signed(r.d_ci_high)}]" if np.isfinite(r.d_sim) else f"n/a ({r.note})"
        lines.append(f"baseline {r.design} {r.outcome} {r.unit_id} Cohen's d ({r.contrast}): simulated {sim} vs human {_signed(r.d_human)}")
    return lines
