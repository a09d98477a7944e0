"""The `refute` analysis (DoWhy): graph from the spec, identification, backdoor linear
regression, refuters.

Graph: treatment (the normalised level of the primary treatment; for a two-level categorical
treatment the indicator of its second level) -> outcome; every specified
covariate that varies in the data (``pin__*``) and every persona attribute (``persona__*``;
categorical ones one-hot encoded) is a common cause (-> treatment, -> outcome).
Estimate: ``backdoor.linear_regression``. Refuters (kept fast, ``num_simulations`` each):

- ``placebo_treatment_refuter`` (permuted treatment): DoWhy tests whether 0 lies inside the
  distribution of placebo estimates; verdict ``pass`` when it does (p > 0.05: a permuted
  treatment has no effect, so the estimator does not manufacture one), ``fail`` otherwise;
- ``random_common_cause``: ``pass`` when adding a random common cause leaves the estimate
  inside its simulated distribution (p > 0.05); ``fail`` otherwise.
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pandas as pd

from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.errors import AnalysisError
from llmexp.spec import Study


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


def treatment_values(study: Study, df: pd.DataFrame) -> np.ndarray:
    """Numeric level, or for a two-level categorical treatment 1[level == second level]."""
    prim = primary_treatment(study)
    if is_numeric_treatment(study, prim):
        return df["level"].to_numpy(float)
    levels = study.treatment(prim).levels
    return (df[f"lvl__{prim}"].astype(str) == str(levels[-1])).to_numpy(float)


def causal_frame(study: Study, df: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    w = pd.DataFrame({"treatment": treatment_values(study, df),
                      "outcome": df["y"].to_numpy(float)})
    causes: list[str] = []
    for col in df.columns:
        if not (col.startswith("pin__") or col.startswith("persona__")):
            continue
        s = df[col]
        num = pd.to_numeric(s, errors="coerce")
        if num.notna().all():
            if num.nunique() > 1:
                name = _safe(col)
                w[name] = num.to_numpy(float)
                causes.append(name)
        elif s.nunique() > 1:
            dummies = pd.get_dummies(s.astype(str), prefix=_safe(col), drop_first=True, dtype=float)
            for c in dummies.columns:
                name = _safe(c)
                w[name] = dummies[c].to_numpy()
                causes.append(name)
    return w, causes


def graph_for(causes: list[str]) -> str:
    edges = ["treatment -> outcome;"]
    for c in causes:
        edges += [f"{c} -> treatment;", f"{c} -> outcome;"]
    return "digraph { " + " ".join(edges) + " }"


def refute(study: Study, obs: Observations, num_simulations: int = 20, seed: int = 0,
           max_rows: int = 5000) -> pd.DataFrame:
    prim = primary_treatment(study)
    if not is_numeric_treatment(study, prim) and len(study.treatment(prim).levels) != 2:
        raise AnalysisError(f"refute: treatment {prim!r} is categorical with more than two levels; "
                            "the linear backdoor estimate needs a numeric or two-level treatment")
    # dowhy logs an ERROR when pygraphviz is missing, then falls back to pydot / networkx
    logging.getLogger("dowhy").setLevel(logging.CRITICAL)
    from dowhy import CausalModel

    rows = []
    data = obs.outcomes()
    for (target, design, model), g in data.groupby(["target", "design", "model"], sort=False):
        tv = treatment_values(study, g)
        g = g[np.isfinite(tv)]
        if len(np.unique(tv[np.isfinite(tv)])) < 2 or len(g) < 10:
            continue
        if len(g) > max_rows:
            g = g.sample(max_rows, random_state=seed)
        w, causes = causal_frame(study, g)
        base = dict(outcome=target, design=design, mode=g["mode"].iloc[0], model=model,
                    n_obs=len(w), common_causes=",".join(causes))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            np.random.seed(seed)
            cm = CausalModel(data=w, treatment="treatment", outcome="outcome",
                             graph=graph_for(causes))
            ident = cm.identify_effect(proceed_when_unidentifiable=True)
            est = cm.estimate_effect(ident, method_name="backdoor.linear_regression",
                                     test_significance=False)
            for method, kw in (("placebo_treatment_refuter", {"placebo_type": "permute"}),
                               ("random_common_cause", {})):
                ref = cm.refute_estimate(ident, est, method_name=method,
                                         num_simulations=num_simulations,
                                         random_state=seed, **kw)
                res = ref.refutation_result or {}
                p = float(res.get("p_value", np.nan))
                verdict = "pass" if p > 0.05 else "fail"
                rows.append(dict(base, refuter=method, estimate=float(est.value),
                                 new_effect=float(np.mean(ref.new_effect)), p_value=p,
                                 verdict=verdict))
    if not rows:
        raise AnalysisError("refute: no design has enough outcome responses at two or more levels")
    return pd.DataFrame(rows)


@register
class Refute(Analysis):
    name = "refute"
    title = "DoWhy refutations"
    description = ("Backdoor linear regression; placebo treatment and random common cause "
                   "refuters.")
    report_tables = ("refute",)
    order = 70

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return {"refute": refute(ctx.study, ctx.obs, num_simulations=ctx.refute_simulations,
                                 seed=ctx.seed)}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("refute")
        if t is None or not len(t):
            return []
        return [f"refute {r.design} {r.refuter}: {r.verdict} (p={r.p_value:.3g})"
                for r in t.itertuples()]
