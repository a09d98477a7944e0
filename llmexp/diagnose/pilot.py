"""Respondent params from a (small) real run: `llmexp diagnose FILE --pilot RUN_DIR`.

The synthetic respondent's structure (llmexp/providers/respondent.py) is fitted to the
pilot's answers, on the primary treatment's normalised level x in [0, 1]:

- ``effect``, ``baseline``, ``unit_sd``: binomial GLM ``y ~ (x - 0.5) + C(unit_id)`` on the
  first binary outcome in the designs without leakage in the respondent's model (those whose
  mode is not blind; the blind ones only if there is nothing else): effect = the slope, baseline =
  sigmoid(mean unit intercept), unit_sd = sd of the unit intercepts (>= 3 units);
- ``leakage``: the leakage index of the blind designs' probes (per 1.0 of level) times the
  level range, averaged over probed covariates;
- ``confound``: (blind slope - effect) / leakage when both exist and |leakage| >= 0.05;
- ``noise``: the sd of the probes' relative residual (v / unit mean - fitted).

Focalism and range sensitivity are not estimated (pass --focalism / --param). These are point
estimates from a pilot: the diagnosis then treats them as the truth; pass the values you want
to power the study for when the pilot is small.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmexp import answers, modes
from llmexp.analysis.observations import build_observations, is_numeric_treatment, primary_treatment
from llmexp.diagnose.errors import DiagnoseError
from llmexp.errors import LlmexpError
from llmexp.runner import open_run


@dataclass
class PilotEstimate:
    params: dict
    notes: list = field(default_factory=list)


def _logit_fit(g: pd.DataFrame):
    # statsmodels is heavy to import (~1 s) and only a --pilot diagnosis fits with it
    import statsmodels.api as sm
    import statsmodels.formula.api as smf

    fe = " + C(unit_id)" if g["unit_id"].nunique() > 1 else ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return smf.glm("y ~ xc" + fe, data=g, family=sm.families.Binomial()).fit()


def _unit_intercepts(res, units: list) -> np.ndarray:
    params = res.params
    base = float(params["Intercept"])
    out = [base]
    for u in units[1:]:
        key = next((k for k in params.index if k.startswith("C(unit_id)") and k.endswith(f"[T.{u}]")), None)
        out.append(base + (float(params[key]) if key else 0.0))
    return np.array(out)


def _open_pilot(run_dir) -> tuple[Any, pd.DataFrame, Any]:
    """(study, responses, observations) of the pilot run, or a DiagnoseError."""
    try:
        results = open_run(Path(run_dir))
        rstudy = results.study
        responses = results.to_pandas()
        return rstudy, responses, build_observations(rstudy, responses)
    except LlmexpError as exc:
        raise DiagnoseError(f"--pilot {run_dir}: {exc}") from None


def _level_frame(rstudy: Any, obs: Any) -> pd.DataFrame:
    """The observation rows with x (the primary treatment's normalised level), xc = x - 0.5,
    and `is_blind` (the row's mode is blind: the respondent's model leaks there)."""
    prim = primary_treatment(rstudy)
    if not is_numeric_treatment(rstudy, prim):
        raise DiagnoseError("--pilot needs a numeric primary treatment (e.g. a price)")
    levels = [float(v) for v in rstudy.treatment(prim).levels]
    lo, hi = min(levels), max(levels)
    span = (hi - lo) or 1.0
    t = obs.table.copy()
    t["x"] = (t["level"] - lo) / span
    t["xc"] = t["x"] - 0.5
    t["is_blind"] = t["mode"].map(lambda m: bool(modes.MODES.get(m, modes.Mode).blind)).astype(bool)
    return t[np.isfinite(t["x"])]


def _estimate_effect(clean: pd.DataFrame, blind: pd.DataFrame, params: dict, notes: list) -> None:
    """effect, baseline, unit_sd from the outcome rows without leakage (else the blind ones)."""
    source = clean if len(clean) else blind
    if len(source) == 0 or source["x"].nunique() < 2:
        notes.append("pilot: too few outcome answers to estimate the effect")
        return
    res = _logit_fit(source)
    params["effect"] = float(res.params["xc"])
    units = sorted(source["unit_id"].unique())
    icpt = _unit_intercepts(res, units)
    params["baseline"] = float(1 / (1 + math.exp(-float(np.mean(icpt)))))
    if len(units) >= 3:
        params["unit_sd"] = float(np.std(icpt, ddof=1))
    if source is blind:
        notes.append("pilot: no unblinded design; the effect is the blind slope (confounded)")


def _estimate_leakage(rstudy: Any, t: pd.DataFrame, clean: pd.DataFrame, blind: pd.DataFrame,
                      params: dict, notes: list) -> None:
    """leakage and noise from the blind designs' probes; confound when the effect is known."""
    probed = [c.name for c in rstudy.covariates if c.probe is not None and not c.specified]
    pr = t[(t["kind"] == "probe") & t["target"].isin(probed) & t["is_blind"]].copy()
    if not (len(pr) and pr["x"].nunique() >= 2):
        notes.append("pilot: no blind probe answers, leakage not estimated")
        return
    means = pr.groupby(["design", "model", "target", "unit_id"])["y"].transform("mean")
    pr["v_norm"] = pr["y"] / means.where(means != 0)
    pr = pr[np.isfinite(pr["v_norm"])]
    leaks, resid = [], []
    for _, g in pr.groupby("target"):
        b = np.polyfit(g["x"], g["v_norm"], 1)
        leaks.append(float(b[0]))
        resid.append(g["v_norm"] - np.polyval(b, g["x"]))
    params["leakage"] = float(np.mean(leaks))
    params["noise"] = float(np.std(pd.concat(resid), ddof=2))
    if "effect" in params and len(blind) and len(clean) and abs(params["leakage"]) >= 0.05:
        bslope = float(_logit_fit(blind).params["xc"])
        params["confound"] = (bslope - params["effect"]) / params["leakage"]


def pilot_params(run_dir, study=None) -> PilotEstimate:
    """Estimate the synthetic respondent's params from the run directory `run_dir`."""
    rstudy, responses, obs = _open_pilot(run_dir)
    notes = [f"respondent params estimated from the pilot run {run_dir} ({len(responses)} calls)"]
    t = _level_frame(rstudy, obs)
    # the respondent's effect is a logit slope: fit it on the first outcome valued 1/0 by label
    binary = [o.name for o in rstudy.outcomes if answers.get(o.answer).first_label_share]
    params: dict = {}
    if not binary:
        notes.append("pilot: no binary outcome, effect/baseline not estimated")
    else:
        out = t[(t["kind"] == "outcome") & (t["target"] == binary[0])]
        pinned_designs = {d.name for d in rstudy.designs if d.pins}
        unpinned = out[~out["design"].isin(pinned_designs)]
        clean, blind = unpinned[~unpinned["is_blind"]], unpinned[unpinned["is_blind"]]
        _estimate_effect(clean, blind, params, notes)
        _estimate_leakage(rstudy, t, clean, blind, params, notes)
    if not params:
        raise DiagnoseError(f"--pilot {run_dir}: nothing could be estimated from this run")
    notes.append("pilot estimates: " + ", ".join(f"{k} {v:.3g}" for k, v in params.items()))
    return PilotEstimate(params=params, notes=notes)
