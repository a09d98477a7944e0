"""No false certainty on degenerate data (issue 10, item 1).

Every registered analysis is run through `llmexp.analysis.analyze` on data that cannot support
an interval: one condition in the data, one unit, one answer per cell, all-identical answers,
all-invalid answers. Whatever each analysis returns must not claim certainty it does not
have. The rules (`certainty_violations`) read every table generically, so an analysis added
later is swept too:

- no zero-width interval (``X_low == X_high`` / ``ci_low == ci_high``) with a p-value < 1 in
  the same row;
- no p == 0 (or any p < 1) computed from a zero standard error, no infinite test statistic;
- no flag (a boolean column named like flag / flagged / significant / pass) set on a row
  whose estimate is missing.

A refused analysis (``not_run`` with its reason, or `analyze` raising `LlmexpError` when
nothing could run) is honest and passes. `test_the_rules_can_fail` shows each rule firing
on a table built to break it.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from llmexp.analysis import analyze, names
from llmexp.errors import LlmexpError
from llmexp.spec import Baseline, Design
from tests.support.synthetic_responses import (
    Truth,
    human_baseline_rows,
    make_responses,
    make_study,
    price_expr,
)

FLAG = re.compile(r"(^|_)(flag|flagged|significant|pass|passed|passes)(_|$)", re.I)
STAT_COL = re.compile(r"^(z|t|z_value|t_value|stat|statistic)$", re.I)
ESTIMATE_HINT = re.compile(r"estimate|effect|index|jump|slope|gap|diff|elasticity|mae", re.I)


def _num(df: pd.DataFrame, col: str) -> pd.Series:
    return pd.to_numeric(df[col], errors="coerce")


def _interval_pairs(df: pd.DataFrame) -> list[tuple[str, str]]:
    pairs = []
    for c in df.columns:
        for lo_suffix, hi_suffix in (("_low", "_high"), ("_lo", "_hi"), ("_lower", "_upper")):
            if str(c).endswith(lo_suffix):
                hi = str(c)[: -len(lo_suffix)] + hi_suffix
                if hi in df.columns:
                    pairs.append((str(c), hi))
    return pairs


def _flag_columns(df: pd.DataFrame) -> list[str]:
    out = []
    for c in df.columns:
        if not FLAG.search(str(c)):
            continue
        vals = df[c].dropna()
        if vals.empty or all(isinstance(v, (bool, np.bool_)) for v in vals) or df[c].dtype == bool:
            out.append(str(c))
    return out


def _estimate_columns(df: pd.DataFrame) -> list[str]:
    if "estimate" in df.columns:
        return ["estimate"]
    return [str(c) for c in df.columns if ESTIMATE_HINT.search(str(c))
            and not FLAG.search(str(c)) and not str(c).endswith(("_low", "_high", "_se"))
            and pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool]


def _prefix(col: str, suffixes: tuple[str, ...]) -> str | None:
    for suf in suffixes:
        if col == suf.lstrip("_"):
            return ""
        if col.endswith(suf):
            return col[: -len(suf)]
    return None


def _by_prefix(df: pd.DataFrame, kind: str) -> dict[str, str]:
    """prefix -> column, for p-values (`kind` "p") or standard errors ("se"): `p_value` and
    `se` have prefix ""; `loglog_p` / `loglog_se` have prefix "loglog"."""
    suffixes = {"p": ("_p_value", "_pvalue", "_p", "_pval"), "se": ("_se", "_std_err")}[kind]
    out = {}
    for c in df.columns:
        c = str(c)
        pre = _prefix(c, suffixes) if c not in ("p", "pvalue") else ""
        if pre is not None and pd.api.types.is_numeric_dtype(df[c]) and df[c].dtype != bool:
            out.setdefault(pre, c)
    return out


def _pair_prefix(lo: str) -> str:
    """'ci_low' -> '', 'loglog_ci_low' -> 'loglog', 'jump_low' -> 'jump'."""
    if lo in ("ci_low", "ci_lo", "ci_lower"):
        return ""
    for suf in ("_ci_low", "_ci_lo", "_low", "_lo", "_lower"):
        if lo.endswith(suf):
            return lo[: -len(suf)]
    return lo


def certainty_violations(name: str, df: pd.DataFrame) -> list[str]:
    """Rows of table `name` that claim certainty the data cannot give (see module docstring).

    Wide tables hold several estimates per row (`loglog_ci_low`, `loglog_se`, `loglog_p`):
    an interval, its standard error and its p-value are matched by their name's prefix."""
    if df is None or df.empty:
        return []
    bad: list[str] = []
    pcols, secols = _by_prefix(df, "p"), _by_prefix(df, "se")
    for lo, hi in _interval_pairs(df):
        pre = _pair_prefix(lo)
        a, b = _num(df, lo), _num(df, hi)
        # zero width up to round-off: [0.040, 0.040] with p = 2e-24 came from an SE of 1e-17
        zero = np.isfinite(a) & np.isfinite(b) & ((b - a).abs() <= 1e-9 * np.maximum(1.0, a.abs()))
        claim = pd.Series(False, index=df.index)
        if pre in pcols:
            claim |= _num(df, pcols[pre]) < 1
        if pre in secols:
            claim |= _num(df, secols[pre]) == 0
        bad += [f"{name} row {i}: zero-width {lo}/{hi} = {a[i]} claimed certain"
                for i in df.index[zero & claim]]
    for pre, se_col in secols.items():
        if pre not in pcols:
            continue
        se, p = _num(df, se_col), _num(df, pcols[pre])
        hit = (se == 0) & np.isfinite(p) & (p < 1)
        bad += [f"{name} row {i}: {pcols[pre]}={p[i]} from {se_col}=0" for i in df.index[hit]]
    for sc in [str(c) for c in df.columns if STAT_COL.match(str(c))]:
        st = _num(df, sc)
        bad += [f"{name} row {i}: infinite {sc}" for i in df.index[np.isinf(st)]]
    ests = _estimate_columns(df)
    for fc in _flag_columns(df):
        on = df[fc].map(lambda v: bool(v) if v is not None and v == v else False).astype(bool)
        for ec in ests:
            hit = on & _num(df, ec).isna()
            bad += [f"{name} row {i}: {fc} set on missing {ec}" for i in df.index[hit]]
    return bad


# ---------------------------------------------------------------- degenerate data

DESIGNS = (
    Design(name="blind", mode="blind"),
    Design(name="unblinded", mode="unblinded"),
    Design(name="fixed", mode="blind", pins={"competitor_price": price_expr().args[1]}),
    Design(name="within", mode="within"),
    Design(name="agg", mode="aggregate"),
)


def _study(n_units: int, outcome_type: str = "binary", levels=None):
    kw = {"levels": levels} if levels is not None else {}
    study = make_study(n_units=n_units, designs=DESIGNS, analyses=names(),
                       outcome_type=outcome_type, **kw)
    if outcome_type == "binary":
        base = Baseline(source="humans.csv", unit_column="product_id",
                        treatments={"price": "price_level"}, outcomes={"purchase": "buy"},
                        retest={"purchase": "buy_retest"}, where={"wave": 3},
                        rows=human_baseline_rows(study, Truth(), n_per_cell=3))
        study = study.model_copy(update={"baseline": base})
    return study


def _one_level(df: pd.DataFrame) -> pd.DataFrame:
    """Keep only the answers at one condition (level 1.0): no treatment variation."""
    out = df[df["cell"].isna() | (df["cell"] == "price=1.0")].copy()
    # per-condition designs: keep only the level-1.0 value
    import json

    def keep(cv):
        if cv is None or (isinstance(cv, float) and np.isnan(cv)):
            return cv
        d = json.loads(cv)
        return json.dumps({k: v for k, v in d.items() if k == "price=1.0"})

    out["condition_values"] = out["condition_values"].map(keep)
    return out


def _identical(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    import json

    out.loc[out["kind"] == "outcome", "value"] = 1.0
    out.loc[out["kind"] == "outcome", "label"] = "purchase"
    out.loc[out["kind"] == "probe", "value"] = 5.0
    out["probs"] = None
    out["condition_values"] = out["condition_values"].map(
        lambda cv: cv if not isinstance(cv, str) else json.dumps({k: 1.0 for k in json.loads(cv)}))
    return out


def _invalid(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    out["valid"] = False
    out["status"] = "invalid"
    out["value"] = None
    out["label"] = None
    out["condition_values"] = None
    return out


def _cases():
    yield "one_level", _study(6), lambda s: _one_level(make_responses(s, Truth(draws=3), seed=1))
    yield "one_unit", _study(1), lambda s: make_responses(s, Truth(draws=3), seed=2)
    yield "one_answer_per_cell", _study(6), lambda s: make_responses(s, Truth(draws=1), seed=3)
    yield "one_answer_logprob", _study(3), lambda s: make_responses(
        s, Truth(draws=1, logprobs=True), seed=4)
    yield "identical", _study(6), lambda s: _identical(make_responses(s, Truth(draws=3), seed=5))
    yield "identical_number", _study(6, "number"), lambda s: _identical(
        make_responses(s, Truth(draws=3), seed=6))
    yield "two_levels_one_unit", _study(1, levels=(1.0, 2.0)), lambda s: make_responses(
        s, Truth(draws=1), seed=7)
    yield "all_invalid", _study(6), lambda s: _invalid(make_responses(s, Truth(draws=2), seed=8))
    yield "sparse_pilot", _study(6), lambda s: _sparse(make_responses(
        s, Truth(draws=1, logprobs=True), seed=9))


def _sparse(df: pd.DataFrame, n: int = 20) -> pd.DataFrame:
    """A 20-trial pilot: a few answers scattered over designs, units and levels (most units
    seen at one level in a design), as `llmexp run --limit 20` leaves them."""
    return df.sample(n=min(n, len(df)), random_state=20).sort_index()


NAN_NUMBER = re.compile(r"(?<![a-z])nan(?![a-z])|(?<![a-z])inf(?![a-z])", re.I)


def nan_lines(lines: list[str]) -> list[str]:
    """Summary lines that print a missing number as "nan" (or "inf") instead of a reason."""
    return [x for x in lines if NAN_NUMBER.search(x)]


CASES = {name: (study, build) for name, study, build in _cases()}


@pytest.mark.parametrize("case", sorted(CASES))
def test_no_false_certainty_in_any_analysis(case):
    study, build = CASES[case]
    df = build(study)
    try:
        res = analyze(study, df, requested=names(), n_boot=50, refute_simulations=3, figures=False)
    except LlmexpError:
        return  # refused with a reason: honest
    bad: list[str] = []
    for tname, table in res.tables.items():
        bad += certainty_violations(tname, table)
    assert not bad, f"{case}: " + "; ".join(bad[:12])
    assert not nan_lines(res.summary().splitlines()), f"{case}: " + "\n".join(
        nan_lines(res.summary().splitlines())[:8])
    assert not any("ZeroDivisionError" in why for why in res.not_run.values())


def test_the_nan_rule_can_fail():
    assert nan_lines(["effect slope: 0.031 [nan, nan] p=nan", "power nan for a 0.2 step",
                      "x: 1.0 [-inf, 2]"]) == ["effect slope: 0.031 [nan, nan] p=nan",
                                               "power nan for a 0.2 step", "x: 1.0 [-inf, 2]"]
    assert nan_lines(["point elasticity 0.06 (no interval: one unit)", "financial info"]) == []


def test_the_rules_can_fail():
    """Each rule fires on a row built to break it, and stays quiet on honest rows."""
    nan = float("nan")
    zero_width = pd.DataFrame({"estimate": [0.2], "ci_low": [0.2], "ci_high": [0.2], "p_value": [0.0]})
    assert certainty_violations("t", zero_width)
    named = pd.DataFrame({"jump": [0.2], "jump_low": [0.2], "jump_high": [0.2], "jump_p": [0.3]})
    assert certainty_violations("t", named)
    wide = pd.DataFrame({"loglog": [0.0], "loglog_se": [0.0], "loglog_ci_low": [0.0],
                         "loglog_ci_high": [0.0], "quad_p": [0.3], "quad_se": [0.1]})
    assert certainty_violations("t", wide)
    assert certainty_violations("t", wide.assign(loglog_ci_high=0.1, loglog_se=0.05)) == []
    round_off = pd.DataFrame({"estimate": [0.04], "ci_low": [0.04 - 1e-16], "ci_high": [0.04 + 1e-16],
                              "p_value": [2e-24]})
    assert certainty_violations("t", round_off)
    zero_se = pd.DataFrame({"estimate": [0.2], "se": [0.0], "p_value": [0.0]})
    assert certainty_violations("t", zero_se)
    inf_z = pd.DataFrame({"estimate": [0.2], "z": [np.inf]})
    assert certainty_violations("t", inf_z)
    flag = pd.DataFrame({"estimate": [nan], "flagged": [True]})
    assert certainty_violations("t", flag)
    passed = pd.DataFrame({"new_effect": [nan], "pass": [True]})
    assert certainty_violations("t", passed)
    significant = pd.DataFrame({"slope": [nan], "significant_increase": [True]})
    assert certainty_violations("t", significant)
    honest = pd.DataFrame({"estimate": [nan, 0.2], "se": [nan, 0.1], "ci_low": [nan, 0.0],
                           "ci_high": [nan, 0.4], "p_value": [nan, 0.04], "flagged": [False, True],
                           "note": ["no variation", None]})
    assert certainty_violations("t", honest) == []
    # a zero-width interval with p = 1 (or no p at all) is not claimed certainty
    assert certainty_violations("t", pd.DataFrame({"ci_low": [1.0], "ci_high": [1.0], "p_value": [1.0]})) == []
