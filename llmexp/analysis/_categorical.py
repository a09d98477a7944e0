"""Categorical outcomes: per-option shares, their differences, a test of independence.

An unordered answer ("A", "B", "C") is an option index; its mean means nothing. For each
outcome whose answer type declares ``categorical`` (`llmexp.answers`):

- ``option_shares``: per design x model x condition x option, the share choosing it, pooled
  over units, with a CR2 interval clustered by unit (the estimand: the population of units;
  inference.py); one unit: a Wilson interval (these units, answers independent); a share that
  does not vary across units (e.g. 0 everywhere) gets the Wilson interval on the pooled count,
  said so in ``note``;
- share differences (rows of the ``effects`` table, one per option): the linear probability
  model ``1[y = option] ~ treatments + C(unit)`` of `effects`, i.e. the difference in the
  option's share between conditions with its CR2 interval and the risk difference;
- ``independence``: is the distribution of answers independent of the condition? A
  cluster-aware joint Wald test of every option x treatment coefficient of those models (the
  cluster scores' Hotelling T^2, F(q, G - q), refused when G <= q), beside the Pearson
  chi-square on the pooled counts (not cluster-aware: it treats answers as independent).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmexp.analysis._stats import wilson
from llmexp.analysis.inference import cr2, t_rows

NAN = float("nan")


def _labels(out) -> list[str]:
    from llmexp import answers

    return list(answers.get(out.answer).labels)


def option_shares(data: pd.DataFrame, out, alpha: float) -> pd.DataFrame:
    labels = _labels(out)
    rows = []
    keys = ["model", "design", "cell"]
    for key, g in data.groupby(keys, sort=False, dropna=False):
        units = pd.factorize(g["unit_id"].astype(str))[0]
        lv = {c: g[c].iloc[0] for c in g.columns if c.startswith("lvl__")}
        for k, lab in enumerate(labels):
            if not option_offered(out, k, lv):  # `"C" if decoy = "present"`: no share where it was not an option
                rows.append(dict(outcome=out.name, **dict(zip(keys, key)), **lv, option=lab, n=len(g),
                                 n_units=int(units.max()) + 1 if len(units) else 0, se=NAN, ci_low=NAN,
                                 ci_high=NAN, estimand="", inference="", share=NAN,
                                 note="not an option in this condition"))
                continue
            y = (g["y"].to_numpy() == k).astype(float)
            rows.append(dict(outcome=out.name, **dict(zip(keys, key)), **lv, option=lab,
                             **_share(y, units, alpha)))
    return pd.DataFrame(rows)


def option_offered(out, k: int, lv: dict) -> bool:
    """Whether option `k` was an option in the cell with levels `lv` (`lvl__<treatment>`)."""
    shown_if = getattr(out.answer, "shown_if", ()) or ()
    condition = shown_if[k] if k < len(shown_if) else {}
    return all(f"lvl__{t}" not in lv or _same_level(lv[f"lvl__{t}"], level) for t, level in condition.items())


def _same_level(a, b) -> bool:
    try:
        return abs(float(a) - float(b)) < 1e-9
    except (TypeError, ValueError):
        return str(a) == str(b)


def _share(y: np.ndarray, units: np.ndarray, alpha: float) -> dict:
    out = mean_interval(y, units, alpha, zero_one=True)
    out["share"] = out.pop("mean")
    return out


TRUNCATED = "interval truncated to [0, 1] (a share)"


def mean_interval(y: np.ndarray, units: np.ndarray, alpha: float, zero_one: bool = False,
                  counts: np.ndarray | None = None) -> dict:
    """Mean pooled over units with a CR2 interval clustered by unit (population of units);
    one unit, or no variation across units: Wilson for shares, else missing with a note.
    `counts`: y are cell means of that many answers each (grouped.py: the same interval)."""
    w = np.ones(len(y)) if counts is None else np.asarray(counts, float)
    n, n_units = int(round(w.sum())), int(units.max()) + 1 if len(units) else 0
    total = float(w @ y) if n else NAN
    mean = total / n if n else NAN
    base = dict(n=n, n_units=n_units, mean=mean)
    if n == 0:
        return dict(base, se=NAN, ci_low=NAN, ci_high=NAN, estimand="", inference="", note="no answers")
    if counts is None:
        mean = float(y.mean())
        base["mean"] = mean
    if n_units >= 2:
        ci = (cr2(np.ones((n, 1)), y - mean, units) if counts is None else
              cr2(np.ones((len(y), 1)), w * (y - mean), units, weights=w, n_obs=n, nested=0))
        se = float(np.sqrt(max(ci.vcov[0, 0], 0.0)))
        if se > 0:
            lo_t, hi_t, _ = t_rows(np.array([mean]), np.array([se]), ci.df, alpha)
            lo, hi = float(lo_t[0]), float(hi_t[0])
            clipped = zero_one and (lo < 0.0 or hi > 1.0)
            if zero_one:  # a share lies in [0, 1]: truncating the t interval keeps its coverage
                lo, hi = max(lo, 0.0), min(hi, 1.0)
            return dict(base, se=se, ci_low=lo, ci_high=hi, estimand="population of units",
                        inference="CR2 cluster-robust by unit, t with Satterthwaite df",
                        note=TRUNCATED if clipped else "")
    why = ("one unit: the interval is conditional on it" if n_units < 2 else
           "no variation across units")
    if not zero_one:
        return dict(base, se=NAN, ci_low=NAN, ci_high=NAN, estimand="", inference="",
                    note=f"{why}: no interval over units")
    lo, hi = wilson(float(y.sum()) if counts is None else total, float(n), alpha)
    return dict(base, se=NAN, ci_low=lo, ci_high=hi, estimand="these units",
                inference="Wilson (answers independent)",
                note=f"{why}: Wilson interval on the pooled count (answers treated as independent)")


def share_difference_rows(study, data: pd.DataFrame, out, cluster: str, alpha: float) -> list[dict]:
    """`effects` rows: per option, the change in its share between conditions."""
    from llmexp.analysis.effects import design_rows  # the one estimator of `effects`

    rows: list[dict] = []
    for k, lab in enumerate(_labels(out)):
        ind = data.assign(y=(data["y"] == k).astype(float))
        for (model, design), g in ind.groupby(["model", "design"], sort=False):
            for r in design_rows(study, _Binary(out.name), model, design, g, ("ols",), cluster, alpha):
                r.update(option=lab, term=f"{r['term']} (share choosing {lab!r})")
                rows.append(r)
    return rows


class _Binary:
    """The outcome seen as 'chose this option' (a binary answer) by the effects estimator."""

    answer = "binary"

    def __init__(self, name: str) -> None:
        self.name = name


def independence(study, data: pd.DataFrame, out, alpha: float) -> pd.DataFrame:
    from scipy import stats

    from llmexp.analysis.effects import work_frame

    labels = _labels(out)
    rows = []
    for (model, design), g in data.groupby(["model", "design"], sort=False):
        counts = pd.crosstab(g["cell"], g["y"])
        chi2 = p_chi = dof = NAN
        if counts.shape[0] > 1 and counts.shape[1] > 1:
            chi2, p_chi, dof, _ = stats.chi2_contingency(counts.to_numpy(), correction=False)
        base = dict(outcome=out.name, model=model, design=design, n_obs=len(g),
                    n_units=g["unit_id"].nunique(), n_options=len(labels),
                    n_conditions=g["cell"].nunique(), chi2=float(chi2), chi2_df=float(dof),
                    chi2_p=float(p_chi), chi2_note="Pearson on pooled counts: not cluster-aware")
        w, rhs, _ = work_frame(study, g)
        rows.append(dict(base, **_wald(w, rhs, len(labels))))
    return pd.DataFrame(rows)


def _wald(w: pd.DataFrame, rhs: list[str], n_options: int) -> dict:
    """Cluster-aware joint Wald test that no option's share depends on the treatments."""
    import patsy
    from scipy import stats

    miss = dict(wald_F=NAN, df1=NAN, df2=NAN, p_value=NAN)
    if not rhs or w["y"].nunique() < 2:
        return dict(miss, note="no treatment variation or a single answer: nothing to test")
    fe = " + C(unit_id)" if w["unit_id"].nunique() > 1 else ""
    X = patsy.dmatrix(" + ".join(rhs) + fe, w, return_type="dataframe")
    T = [i for i, c in enumerate(X.columns) if not c.startswith("C(unit_id)") and c != "Intercept"]
    Y = np.column_stack([(w["y"].to_numpy() == k).astype(float) for k in range(1, n_options)])
    Xa = X.to_numpy()
    M = np.linalg.pinv(Xa.T @ Xa)
    B = M @ Xa.T @ Y
    E = Y - Xa @ B
    units = pd.factorize(w["unit_id"].astype(str))[0]
    G = int(units.max()) + 1
    b = B[T, :].ravel()
    q = len(b)
    if G - q < 1:
        return dict(miss, note=f"too few units ({G}) for a cluster-aware test of {q} restrictions")
    scores = np.array([(M @ Xa[units == g].T @ E[units == g])[T, :].ravel() for g in range(G)])
    V = scores.T @ scores * G / (G - 1)
    W = float(b @ np.linalg.pinv(V) @ b)
    F = W * (G - q) / ((G - 1) * q)
    return dict(wald_F=F, df1=float(q), df2=float(G - q), p_value=float(stats.f.sf(F, q, G - q)),
                note="cluster-aware (by unit) Wald test, Hotelling T^2 small-sample F")
