"""The `refute` analysis: the design's causal graph (DoWhy), identification, and checks that
can fail.

**Graph** (`graph_for`): treatment -> outcome; every unspecified covariate the prompt leaves to
the model's imagination is an *imagined mediator*, ``treatment -> imagined_<cov> -> outcome``
(unobserved in the outcome calls; its probe answers measure the first arrow; a covariate the
design pins is specified there, so it is no mediator: ``not tested``); persona
attributes and pinned covariates are causes of the outcome only, never of the treatment
(the treatment is randomized). DoWhy identifies the effect (``identify_effect``: the backdoor
set is empty) and estimates it by ``backdoor.linear_regression``: the *total* effect, which
includes the path through the imagined covariates. The effect an ideal experiment measures is
the direct path only, so the checks ask whether the other path is open.

**Checks** (one row each per outcome x design x model; p-values two-sided; a check that cannot
be computed says ``not tested`` with the reason, never ``pass``):

- ``mediator: treatment -> imagined <cov>`` (refuter): the imagined covariate's echo-free
  leakage index in this design (`leakage.index_variants`, wild cluster bootstrap by unit).
  ``fail`` when p < alpha: the estimate includes the path through the covariate, so it is not
  the effect of the treatment alone. ``not tested`` when the design asked no probe.
- ``unobserved common cause (robustness value)`` (sensitivity): Cinelli & Hazlett's robustness
  value RV_{q=1, alpha} (DoWhy's `LinearSensitivityAnalyzer.robustness_value_func`) computed
  from the cluster-robust t of the unit fixed-effects slope: the share of the residual
  variance of both treatment and outcome an unobserved cause (e.g. an imagined covariate)
  must explain to make the interval include 0. ``fail`` when RV < ``rv_min`` (1%): the
  estimate is not robust (including when it is not significant at all).
- ``leave-one-unit-out`` (refuter): the estimate is significant (wild bootstrap) and stays
  significant with the same sign when any single unit is dropped; ``fail`` when one unit
  carries it; ``not tested`` when the full estimate is not significant (nothing to refute).
- ``sanity: placebo treatment`` (sanity check, NOT a refuter): the treatment permuted within
  units ``num_simulations`` times; the mean placebo estimate is tested against 0 (t test).
  The treatment is randomized, so a correct estimator passes by construction: ``fail`` means
  the estimation pipeline is broken, never that the effect is robust.

Dropped, because on a randomized treatment they pass by construction: DoWhy's
``random_common_cause``, ``dummy_outcome`` and the row-subset refuter (subsets of rows centre
on the full estimate; their one-sided, capped p-values said "pass" in 100% of simulations,
including data confounded by leakage, issue 10).
"""

from __future__ import annotations

import logging
import re
import warnings

import numpy as np
import pandas as pd

from llmexp.analysis._wild import wild_test
from llmexp.analysis.base import Analysis, Context, register
from llmexp.analysis.leakage import index_variants
from llmexp.analysis.observations import Observations, is_numeric_treatment, primary_treatment
from llmexp.errors import AnalysisError
from llmexp.spec import Study

RV_MIN = 0.01
N_BOOT = 399


def _safe(name: str) -> str:
    return re.sub(r"\W", "_", name)


def treatment_values(study: Study, df: pd.DataFrame) -> np.ndarray:
    """Numeric level, or for a two-level categorical treatment 1[level == second level]."""
    prim = primary_treatment(study)
    if is_numeric_treatment(study, prim):
        return df["level"].to_numpy(float)
    levels = study.treatment(prim).levels
    return (df[f"lvl__{prim}"].astype(str) == str(levels[-1])).to_numpy(float)


def imagined(study: Study, design: str | None = None) -> list[str]:
    """The unspecified covariates, less those `design` pins: the graph's imagined mediators."""
    pins = study.design(design).pins if design is not None else {}
    return [c.name for c in study.covariates if not c.specified and pins.get(c.name) is None]


def outcome_causes(df: pd.DataFrame) -> list[str]:
    """Persona and pinned columns that vary: causes of the outcome only."""
    return [_safe(c) for c in df.columns if c.startswith(("pin__", "persona__"))
            and df[c].astype(str).nunique() > 1]


def graph_for(mediators: list[str], causes: list[str] = ()) -> str:  # type: ignore[assignment]
    edges = ["treatment -> outcome;"]
    for m in mediators:
        node = f"imagined_{_safe(m)}"
        edges += [f"treatment -> {node};", f"{node} -> outcome;"]
    edges += [f"{c} -> outcome;" for c in causes]
    return "digraph { " + " ".join(edges) + " }"


def robustness_value(t_stat: float, dof: float, alpha: float = 0.05, q: float = 1.0) -> float:
    """Cinelli & Hazlett's RV_{q, alpha} (the formula of DoWhy's LinearSensitivityAnalyzer)."""
    from scipy import stats

    if not np.isfinite(t_stat) or dof <= 1:
        return float("nan")
    f_q = q * abs(t_stat) / np.sqrt(dof)
    f_crit = abs(stats.t.ppf(alpha / 2, dof - 1)) / np.sqrt(dof - 1)
    f = f_q - f_crit
    if f < 0:
        return 0.0
    if f_q > 1 / f_crit:
        return float((f_q ** 2 - f_crit ** 2) / (1 + f_q ** 2))
    return float(0.5 * (np.sqrt(f ** 4 + 4 * f ** 2) - f ** 2))


def fe_slope(x: np.ndarray, y: np.ndarray, units: np.ndarray, alpha: float = 0.05,
             n_boot: int = N_BOOT, seed: int = 0) -> dict:
    """Slope of y on x with unit intercepts; wild cluster bootstrap by unit."""
    codes = pd.factorize(units)[0]
    X = np.column_stack([np.eye(codes.max() + 1)[codes], x])
    res = wild_test(X, y, X.shape[1] - 1, codes, alpha=alpha, n_boot=n_boot, seed=seed)
    res["dof"] = len(y) - (codes.max() + 2)
    return res


def _row(check: str, kind: str, verdict: str, detail: str, estimate=np.nan, statistic=np.nan,
         p_value=np.nan) -> dict:
    return dict(check=check, kind=kind, verdict=verdict, detail=detail, check_estimate=estimate,
                statistic=statistic, p_value=p_value)


def placebo_check(x, y, units, alpha, sims, seed, estimator=None) -> dict:
    """Sanity check: the treatment permuted within units; mean placebo estimate vs 0."""
    from scipy import stats

    est_fn = estimator or (lambda xx: fe_slope(xx, y, units, alpha, n_boot=9)["estimate"])
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"x": x, "u": units})
    draws = np.array([est_fn(frame.groupby("u")["x"].transform(
        lambda s: rng.permutation(s.to_numpy())).to_numpy()) for _ in range(sims)])
    if sims < 3 or np.std(draws) == 0:
        return _row("sanity: placebo treatment", "sanity check", "not tested",
                    "too few placebo draws or no variation")
    t = float(np.mean(draws) / (np.std(draws, ddof=1) / np.sqrt(sims)))
    p = float(2 * stats.t.sf(abs(t), sims - 1))
    return _row("sanity: placebo treatment", "sanity check", "fail" if p < alpha else "pass",
                f"mean placebo estimate {np.mean(draws):.4g} over {sims} within-unit permutations "
                "(passes by construction on a randomized treatment: a failure means a broken "
                "estimator)", float(np.mean(draws)), t, p)


def sensitivity_check(full: dict, alpha: float, rv_min: float = RV_MIN) -> dict:
    name = "unobserved common cause (robustness value)"
    if not np.isfinite(full["se"]):
        return _row(name, "sensitivity", "not tested", f"no interval: {full['note']}")
    t = full["estimate"] / full["se"]
    rv = robustness_value(t, full["dof"], alpha)
    return _row(name, "sensitivity", "fail" if rv < rv_min else "pass",
                f"an unobserved cause explaining {100 * rv:.2f}% of the residual variance of "
                f"treatment and outcome makes the {100 * (1 - alpha):.0f}% interval include 0 "
                f"(fail below {100 * rv_min:g}%)", rv, t, full["p_value"])


def loo_check(x, y, units, full: dict, alpha: float, seed: int) -> dict:
    name = "leave-one-unit-out"
    if not (np.isfinite(full["p_value"]) and full["p_value"] < alpha):
        return _row(name, "refuter", "not tested", "the estimate is not significant: nothing to "
                    "refute", p_value=full["p_value"])
    worst, worst_p = None, 0.0
    for u in pd.unique(units):
        keep = units != u
        r = fe_slope(x[keep], y[keep], units[keep], alpha, n_boot=199, seed=seed)
        p = r["p_value"] if np.sign(r["estimate"]) == np.sign(full["estimate"]) else 1.0
        if not np.isfinite(p):
            p = 1.0
        if p >= worst_p:
            worst, worst_p = u, p
    verdict = "fail" if worst_p >= alpha else "pass"
    return _row(name, "refuter", verdict, f"largest p without one unit: {worst_p:.3g} "
                f"(without {worst})", statistic=worst_p, p_value=full["p_value"])


def mediator_checks(study, obs, design, model, alpha, seed) -> list[dict]:
    probes = obs.probes()
    pinned = [c for c in imagined(study) if c not in imagined(study, design)]
    rows = [_row(f"mediator: treatment -> imagined {cov}", "refuter", "not tested",
                 "the prompt pins this covariate in this design: no imagined path")
            for cov in pinned]
    for cov in imagined(study, design):
        name = f"mediator: treatment -> imagined {cov}"
        g = probes[(probes["target"] == cov) & (probes["design"] == design)
                   & (probes["model"] == model)]
        g = g[np.isfinite(g["level"]) & np.isfinite(g["y"])]
        if g.empty or g["level"].nunique() < 2:
            rows.append(_row(name, "refuter", "not tested", "no probe answers at two or more "
                             "levels in this design: the imagined path cannot be checked"))
            continue
        g = g.assign(v_norm=g["y"] / g.groupby("unit_id")["y"].transform("mean").replace(0, np.nan))
        r = index_variants(g, pd.factorize(g["unit_id"].astype(str))[0], alpha, N_BOOT, seed)
        p = r["p_no_echo"]
        verdict = "not tested" if not np.isfinite(p) else ("fail" if p < alpha else "pass")
        rows.append(_row(name, "refuter", verdict,
                         f"echo-free leakage index {r['index_no_echo']:.3g} "
                         f"[{r['ci_no_echo_low']:.3g}, {r['ci_no_echo_high']:.3g}]"
                         + (f" ({r['note']})" if r["note"] else ""),
                         r["index_no_echo"], np.nan, p))
    return rows


def _dowhy_total(w: pd.DataFrame, graph: str) -> tuple[float, str]:
    logging.getLogger("dowhy").setLevel(logging.CRITICAL)
    from dowhy import CausalModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cm = CausalModel(data=w[["treatment", "outcome"]], treatment="treatment",
                         outcome="outcome", graph=graph)
        ident = cm.identify_effect(proceed_when_unidentifiable=False)
        est = cm.estimate_effect(ident, method_name="backdoor.linear_regression",
                                 test_significance=False)
    backdoor = ident.get_backdoor_variables() or []
    return float(est.value), "backdoor set {" + ", ".join(backdoor) + "}"


def refute(study: Study, obs: Observations, num_simulations: int = 20, seed: int = 0,
           alpha: float = 0.05, max_rows: int = 5000) -> pd.DataFrame:
    prim = primary_treatment(study)
    if not is_numeric_treatment(study, prim) and len(study.treatment(prim).levels) != 2:
        raise AnalysisError(f"refute: treatment {prim!r} is categorical with more than two levels; "
                            "the linear estimate needs a numeric or two-level treatment")
    rows = []
    data = obs.outcomes()
    for (target, design, model), g in data.groupby(["target", "design", "model"], sort=False):
        tv = treatment_values(study, g)
        ok = np.isfinite(tv) & np.isfinite(g["y"].to_numpy(float))
        g, tv = g[ok], tv[ok]
        if len(np.unique(tv)) < 2 or len(g) < 10:
            continue
        if len(g) > max_rows:
            keep = np.random.default_rng(seed).choice(len(g), max_rows, replace=False)
            g, tv = g.iloc[np.sort(keep)], tv[np.sort(keep)]
        y, units = g["y"].to_numpy(float), g["unit_id"].astype(str).to_numpy()
        graph = graph_for(imagined(study, design), outcome_causes(g))
        total, ident = _dowhy_total(pd.DataFrame({"treatment": tv, "outcome": y}), graph)
        full = fe_slope(tv, y, units, alpha, seed=seed)
        base = dict(outcome=target, design=design, mode=g["mode"].iloc[0], model=model,
                    n_obs=len(g), n_units=len(pd.unique(units)), estimate=full["estimate"],
                    ci_low=full["ci_low"], ci_high=full["ci_high"], dowhy_total_effect=total,
                    identified=ident, graph=graph)
        checks = (mediator_checks(study, obs, design, model, alpha, seed)
                  + [sensitivity_check(full, alpha), loo_check(tv, y, units, full, alpha, seed),
                     placebo_check(tv, y, units, alpha, num_simulations, seed)])
        rows += [dict(base, **c) for c in checks]
    if not rows:
        raise AnalysisError("refute: no design has enough outcome responses at two or more levels")
    return pd.DataFrame(rows)


@register
class Refute(Analysis):
    name = "refute"
    title = "Causal graph and refutations"
    description = ("DoWhy graph with the unspecified covariates as imagined mediators; checks that "
                   "can fail: the imagined-mediator path (echo-free leakage), the robustness value "
                   "to an unobserved cause, leave-one-unit-out; the placebo is a sanity check.")
    report_tables = ("refute",)
    order = 70

    def headline_tables(self, tables: dict[str, pd.DataFrame]) -> list[tuple[str, pd.DataFrame]]:
        """None: its rows are checks of the effects analysis's estimate (the estimate column
        repeats that effect under each check's name), read in its own section, not findings."""
        return []

    def run(self, ctx: Context) -> dict[str, pd.DataFrame]:
        return {"refute": refute(ctx.study, ctx.obs, num_simulations=ctx.refute_simulations,
                                 seed=ctx.seed, alpha=ctx.alpha)}

    def summary_lines(self, tables: dict[str, pd.DataFrame]) -> list[str]:
        t = tables.get("refute")
        if t is None or not len(t):
            return []
        return [f"refute {r.design} {r.check}: {r.verdict}" + _stat(r) for r in t.itertuples()]


def _stat(r) -> str:
    if r.kind == "sensitivity" and np.isfinite(r.check_estimate):
        return f" (RV={100 * r.check_estimate:.2f}%)"
    if r.check == "leave-one-unit-out" and np.isfinite(r.statistic):
        return f" (largest p without one unit {r.statistic:.3g})"
    return f" (p={r.p_value:.3g})" if np.isfinite(r.p_value) else ""
