"""`diagnose(study, ...)`: simulate a study many times on the synthetic respondent.

DeclareDesign's diagnosis, for llmexp's designs (docs/diagnose.md):

- **model**: the synthetic respondent (llmexp/providers/respondent.py) with stated params
  (effect, leakage, focalism, noise, ...) standing in for every model of the study;
- **inquiries** (estimands), per model x design:
  ``effect``: the treatment slope of `llmexp.analysis.effects` (OLS, unit fixed effects). Its
  true value is the same regression applied to the *interventional* expected answers
  (the respondent with leakage, focalism and range effects switched off): the effect an ideal,
  unconfounded experiment on these units and levels measures. A blind design with leakage, or
  a design with focalism, is therefore biased, as it should be.
  ``leakage``: the leakage index of `llmexp.analysis.leakage` per probed covariate. Its true
  value is the index computed on the respondent's expected probe answers (0 when nothing leaks);
- **data strategy**: the study's compiled trial table at the chosen replicates;
- **answer strategy**: the analysis's own estimators, in a verified closed form
  (`llmexp.diagnose.estimators`), with the same standard errors and tests.

Per estimand: bias (mean estimate - truth), RMSE, power (share of simulations with p < alpha),
coverage (share of (1 - alpha) intervals holding the truth), and the expected calls, tokens and
cost of the real study at those replicates (`llmexp run --dry-run`'s own estimate).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from llmexp import providers
from llmexp.compiler import compile_study
from llmexp.diagnose.errors import DiagnoseError
from llmexp.diagnose.estimators import (
    effects_plans,
    focalism_plans,
    interaction_plans,
    leakage_plan,
    normalise_by_unit,
)
from llmexp.diagnose.respondent import draw_answers, observation_frame, respondent_params
from llmexp.export import csv_safe
from llmexp.providers.respondent import loads
from llmexp.runner import run_study
from llmexp.runner.results import RunPlan
from llmexp.seeding import text_int

MAX_CELLS = 4_000_000  # rows x sims held in memory at once




@dataclass
class Diagnosis:
    """What `diagnose` returns: one row per replicates x model x design x estimand."""

    study: Any
    table: pd.DataFrame
    costs: pd.DataFrame  # one row per replicates: calls, tokens, cost (+ the dry-run text)
    params: dict  # the respondent's params per model
    sims: int
    alpha: float
    seed: int
    power_target: float | None = None
    seconds: float = 0.0
    notes: list = field(default_factory=list)

    def recommended(self) -> pd.DataFrame:
        """Per estimand, the smallest replicates whose power reaches the target."""
        t = self.table
        if self.power_target is None or t.empty:
            return t.iloc[0:0]
        return t[t["meets_power"]]

    def to_dict(self) -> dict:
        def clean(df: pd.DataFrame) -> list:
            return json.loads(df.to_json(orient="records"))

        return {
            "study": self.study.name,
            "sims": self.sims,
            "alpha": self.alpha,
            "seed": self.seed,
            "power_target": self.power_target,
            "respondent_params": self.params,
            "estimands": clean(self.table),
            "cost": clean(self.costs.drop(columns=["dry_run_text"], errors="ignore")),
            "notes": list(self.notes),
            "seconds": self.seconds,
        }

    def write(self, path) -> Path:
        """Write the table to .json (everything), .csv or .parquet (the estimand table)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        suffix = path.suffix.lower()
        if suffix == ".json":
            path.write_text(json.dumps(self.to_dict(), indent=2))
        elif suffix == ".csv":
            csv_safe(self.table).to_csv(path, index=False)  # no formula injection (llmexp/export.py)
        elif suffix == ".parquet":
            self.table.to_parquet(path, index=False)
        else:
            raise DiagnoseError(f"cannot write {path}: use a .json, .csv or .parquet file name")
        return path

    def __str__(self) -> str:
        cols = ["replicates", "model", "design", "estimand", "target", "truth", "bias", "rmse",
                "power", "coverage"]
        lines = [f"diagnosis of {self.study.name}: {self.sims} simulations, alpha {self.alpha}"]
        if not self.table.empty:
            lines.append(self.table[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        for r in self.costs.itertuples():
            lines.append(f"replicates {r.replicates}: {r.dry_run_text.splitlines()[0]}")
        return "\n".join(lines)


def parse_replicates(text: str | None) -> list[int] | None:
    """'1,2,5,10' -> [1, 2, 5, 10]; also '1-4' ranges. None -> the study's own replicates."""
    if text is None or str(text).strip() == "":
        return None
    out: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if "-" in part:
                a, b = (int(x) for x in part.split("-", 1))
                out.extend(range(a, b + 1))
            else:
                out.append(int(part))
        except ValueError:
            raise DiagnoseError(f"--replicates: {part!r} is not a whole number (use e.g. 1,2,5,10)") from None
    if not out or any(r < 1 for r in out):
        raise DiagnoseError("--replicates: every value must be at least 1")
    return sorted(set(out))


def dry_run_estimate(study, trials):
    """The cost estimate `llmexp run FILE --dry-run` prints for a fresh run of `study`."""
    with tempfile.TemporaryDirectory() as tmp:
        plan = run_study(study, trials=trials, run_dir=Path(tmp) / "never-created", dry_run=True,
                         progress=False)
    assert isinstance(plan, RunPlan)  # dry_run=True returns the plan
    return plan.estimate


def _with_replicates(study, r: int | None):
    if r is None:
        return study
    return study.with_models([m.model_copy(update={"replicates": int(r)}) for m in study.models])


def _seed_rng(seed: int, *keys: Any) -> np.random.Generator:
    h = text_int(json.dumps([int(seed), *map(str, keys)]))
    return np.random.default_rng(np.random.SeedSequence([int(seed), h]))


def _summarise(est: np.ndarray, se: np.ndarray, p: np.ndarray, lo: np.ndarray, hi: np.ndarray,
               truth: float, alpha: float) -> dict:
    ok = np.isfinite(est)
    est, se, p, lo, hi = est[ok], se[ok], p[ok], lo[ok], hi[ok]
    n = len(est)
    if n == 0:
        return dict(sims_ok=0)
    reject = np.where(np.isfinite(p), p < alpha, False)  # a missing estimate never rejects
    power = float(reject.mean())
    has_ci = np.isfinite(lo) & np.isfinite(hi)
    refused = float(1 - has_ci.mean())
    # coverage among the simulations with an interval (the others report none: `refused`)
    cover = float(((lo <= truth) & (truth <= hi))[has_ci].mean()) if has_ci.any() else float("nan")
    err = est - truth
    return dict(
        sims_ok=n,
        mean_estimate=float(est.mean()),
        bias=float(err.mean()),
        rmse=float(np.sqrt((err ** 2).mean())),
        sd_estimate=float(est.std(ddof=1)) if n > 1 else float("nan"),
        mean_se=float(np.nanmean(se)) if np.isfinite(se).any() else float("nan"),
        power=power,
        power_mcse=float(np.sqrt(power * (1 - power) / n)),
        coverage=cover,
        coverage_mcse=float(np.sqrt(cover * (1 - cover) / max(int(has_ci.sum()), 1))),
        refused=refused,
    )


def _draw_frame(frame: pd.DataFrame, params: Mapping, rng: np.random.Generator, k: int) -> np.ndarray:
    """Answers (rows x k) for a frame whose rows may mix answer specs."""
    Y = np.empty((len(frame), k))
    pos = np.arange(len(frame))
    for (aj, kind, mode), idx in frame.groupby(["answer_json", "kind", "mode"], sort=False).indices.items():
        Y[pos[idx]] = draw_answers(frame.iloc[idx], loads(aj) or {}, kind, mode, params, rng, k)
    return Y


def diagnose_trials(study, trials: pd.DataFrame, params_by_model: Mapping[str, Mapping], *,
                    sims: int = 200, alpha: float = 0.05, seed: int = 0,
                    designs: Sequence[str] | None = None, cluster: str = "auto",
                    key: Any = None) -> list[dict]:
    """Estimand rows for one compiled trial table (one replicates setting)."""
    rows: list[dict] = []
    probed = [c.name for c in study.covariates if c.probe is not None and not c.specified]
    cache: dict[str, list[dict]] = {}
    for model in dict.fromkeys(trials["model"]):
        params = dict(params_by_model[model])
        sub = trials[trials["model"] == model]
        if designs:
            sub = sub[sub["design"].isin(designs)]
        if sub.empty:
            continue
        spec = next((m for m in study.models if m.name == model), None)
        sig = json.dumps([params, spec.replicates if spec else None], sort_keys=True, default=str)
        if sig not in cache:
            cache[sig] = _diagnose_model(study, sub, params, sims, alpha, seed, cluster, probed, key)
        rows.extend(dict(r, model=model) for r in cache[sig])
    return rows


def _estimand_jobs(study, frame: pd.DataFrame, cluster: str, probed: list, alpha: float = 0.05) -> list[dict]:
    """Every estimand of the analysis this diagnosis covers, as a fixed regression plan."""
    jobs: list[dict] = []
    outcomes = frame[frame["kind"] == "outcome"]
    pinned = any(d.pins for d in study.designs)
    for out in study.outcomes:
        data = outcomes[outcomes["target"] == out.name]
        for design, g in data.groupby("design", sort=False):
            try:
                plans = effects_plans(study, g, cluster)
            except ValueError as exc:
                jobs.append(dict(meta=dict(design=design, estimand="effect", target=out.name, note=str(exc))))
                continue
            for meta, plan in plans:
                jobs.append(dict(meta=dict(design=design, estimand="effect", target=out.name, **meta),
                                 plan=plan, rows=g.index.to_numpy(), truth_col="ev0"))
        try:
            for meta, plan in interaction_plans(study, data, cluster):
                jobs.append(dict(meta=dict(estimand="difference", target=out.name, **meta), plan=plan,
                                 rows=data.index.to_numpy(), truth_col="ev"))
        except ValueError as exc:
            jobs.append(dict(meta=dict(design="(all)", estimand="difference", target=out.name,
                                       note=f"design differences not diagnosed: {exc}")))
        if pinned:
            try:
                for fmeta, fplan, rows in focalism_plans(study, data, cluster=cluster, alpha=alpha):
                    jobs.append(dict(meta=dict(estimand="focalism", target=out.name, **fmeta), plan=fplan,
                                     rows=rows, truth_col="ev"))
            except ValueError as exc:
                jobs.append(dict(meta=dict(design="(all)", estimand="focalism", target=out.name,
                                           note=f"focalism not diagnosed: {exc}")))
    probes = frame[(frame["kind"] == "probe") & frame["target"].isin(probed)]
    probes = probes[np.isfinite(probes["level"])]
    for (cov, design), g in probes.groupby(["target", "design"], sort=False):
        if g["level"].nunique() < 2:
            continue
        try:
            lmeta, lplan, codes = leakage_plan(g, cluster, alpha)
        except ValueError as exc:
            jobs.append(dict(meta=dict(design=design, estimand="leakage", target=cov,
                                       note=f"leakage not diagnosed: {exc}")))
            continue
        jobs.append(dict(meta=dict(design=design, estimand="leakage", target=cov, **lmeta), plan=lplan,
                         rows=g.index.to_numpy(), codes=codes, truth_col="ev"))
    for job in jobs:
        job["meta"].setdefault("mode", _mode_of(frame, job))
    return jobs


def _mode_of(frame: pd.DataFrame, job: dict):
    d = job["meta"].get("design")
    modes = frame.loc[frame["design"] == d, "mode"]
    return modes.iloc[0] if len(modes) else None


def _diagnose_model(study, trials, params, sims, alpha, seed, cluster, probed, key) -> list[dict]:
    """One simulated data set = answers to every trial; all estimands are fitted on it."""
    frame = observation_frame(study, trials, params).reset_index(drop=True)
    jobs = _estimand_jobs(study, frame, cluster, probed, alpha)
    live = [j for j in jobs if "plan" in j]
    for job in live:
        ev = frame[job["truth_col"]].to_numpy(float)[job["rows"]]
        ev_target = frame["ev"].to_numpy(float)[job["rows"]]
        if "codes" in job:
            ev = normalise_by_unit(ev, job["codes"])[:, 0]
            ev_target = normalise_by_unit(ev_target, job["codes"])[:, 0]
        job["truth"] = float(job["plan"].point(ev)[0])
        job["target"] = float(job["plan"].point(ev_target)[0])
        job["est"], job["se"] = [], []
    rng = _seed_rng(seed, key)
    chunk = max(1, min(sims, MAX_CELLS // max(len(frame), 1)))
    done = 0
    while live and done < sims:
        k = min(chunk, sims - done)
        Y = _draw_frame(frame, params, rng, k)
        for job in live:
            Yj = Y[job["rows"]]
            if "codes" in job:
                Yj = normalise_by_unit(Yj, job["codes"])
            e, s_ = job["plan"].fit(Yj)
            job["est"].append(e[0])
            job["se"].append(s_[0])
        done += k
    rows = []
    for job in jobs:
        if "plan" not in job:
            rows.append(dict(job["meta"]))
            continue
        est, se = np.concatenate(job["est"]), np.concatenate(job["se"])
        p, lo, hi = job["plan"].inference(est, se, alpha)
        rows.append(dict(job["meta"], truth=_tidy(job["truth"]), design_target=_tidy(job["target"]),
                         **_summarise(est, se, p, lo, hi, job["truth"], alpha)))
    order = {d.name: i for i, d in enumerate(study.designs)}
    kinds = {"effect": 0, "leakage": 1, "focalism": 2, "difference": 3}
    rows.sort(key=lambda r: (r["estimand"] == "difference", order.get(r.get("design"), 99),
                             kinds.get(r["estimand"], 9)))
    return rows


def _tidy(v: float) -> float:
    """Exact zeros print as zeros (a true value of -2e-17 is 0)."""
    return 0.0 if abs(v) < 1e-12 else v


def diagnose(
    study,
    *,
    sims: int = 200,
    replicates: Iterable[int] | None = None,
    params: Mapping[str, Any] | None = None,
    seed: int = 0,
    designs: Sequence[str] | None = None,
    alpha: float = 0.05,
    power_target: float | None = None,
    cluster: str = "auto",
) -> Diagnosis:
    """Diagnose `study` (a `llmexp.spec.Study`) by simulation on the synthetic respondent.

    sims: simulated data sets per design and replicates setting. replicates: e.g. [1, 2, 5, 10]
    to sweep (every model gets that many replicates, as `llmexp run --replicates`); None = the
    study's own. params: the synthetic respondent's params (effect, leakage, confound,
    focalism, noise, baseline, unit_sd, ... see llmexp/providers/respondent.py) overriding
    the defaults and a synthetic model's own params. designs: only these designs. alpha: test
    level (power = share of p < alpha; intervals at 1 - alpha). power_target: mark, per
    estimand, the smallest replicates reaching this power.
    """
    t0 = time.time()
    reps, overrides = _checked_options(study, sims, replicates, params, designs, alpha, power_target)
    params_by_model = {m.name: respondent_params(study, m.name, overrides) for m in study.models}
    all_rows, cost_rows = [], []
    for r in reps:
        rows, cost = _diagnose_replicates(study, r, params_by_model, sims=int(sims), alpha=float(alpha),
                                          seed=int(seed), designs=designs, cluster=cluster)
        all_rows.extend(rows)
        cost_rows.append(cost)
    table = _estimand_table(all_rows, power_target)
    notes = []
    notes += underpowered(table, reps, power_target or 0.8)
    hosted = [m.name for m in study.models if not providers.for_model(m.name).simulated]
    if hosted:
        notes.append("the synthetic respondent stands in for " + ", ".join(hosted)
                     + " (simulated answers are not evidence about those models)")
    return Diagnosis(study=study, table=table, costs=pd.DataFrame(cost_rows),
                     params=params_by_model, sims=int(sims), alpha=float(alpha), seed=int(seed),
                     power_target=power_target, seconds=time.time() - t0, notes=notes)


def underpowered(table: pd.DataFrame, reps: list, target: float) -> list[str]:
    """Notes for estimands with a nonzero truth whose power stays below `target` at the
    study's own size (its replicates; the largest swept replicates when it sweeps)."""
    if table.empty or "power" not in table:
        return []
    t = table[table["truth"].abs() > 1e-9] if "truth" in table else table.iloc[0:0]
    if reps != [None] and len(t):
        t = t[t["replicates"] == max(r for r in reps if r is not None)]
    notes = []
    for r in t.itertuples():
        if np.isfinite(r.power) and r.power < target:
            notes.append(f"{r.model} {r.design} {r.estimand} ({r.target}): power {r.power:.2f} < "
                         f"{target:.2f} at replicates {r.replicates}; this design cannot reach "
                         f"{target:.0%} power at this size")
    return notes


def _checked_options(study, sims, replicates, params, designs, alpha, power_target) -> tuple[list, dict]:
    """(replicates settings, respondent param overrides), or a DiagnoseError naming the option."""
    if int(sims) < 2:
        raise DiagnoseError("--sims must be at least 2")
    if not 0 < float(alpha) < 1:
        raise DiagnoseError("--alpha must be between 0 and 1")
    if power_target is not None and not 0 < float(power_target) < 1:
        raise DiagnoseError("--power must be between 0 and 1 (e.g. 0.8)")
    known = [d.name for d in study.designs]
    if designs:
        bad = [d for d in designs if d not in known]
        if bad:
            raise DiagnoseError(f"unknown design(s) {', '.join(bad)}; the study has {', '.join(known)}")
    reps = sorted({int(r) for r in replicates}) if replicates is not None else [None]
    if any(r is not None and r < 1 for r in reps):
        raise DiagnoseError("--replicates: every value must be at least 1")
    overrides = dict(params or {})
    for k, v in overrides.items():
        try:
            float(v)
        except (TypeError, ValueError):
            raise DiagnoseError(f"respondent param {k}={v!r} is not a number") from None
    return reps, overrides


def _diagnose_replicates(study, r: int | None, params_by_model: Mapping, **options: Any) -> tuple[list[dict], dict]:
    """(estimand rows, cost row) for one replicates setting (None: the study's own)."""
    st = _with_replicates(study, r)
    trials = compile_study(st)
    est = dry_run_estimate(st, trials)
    rlabel = r if r is not None else ",".join(sorted({str(m.replicates) for m in st.models}))
    cost = dict(replicates=rlabel, calls=est.calls,
                prompt_tokens=sum(m.prompt_tokens for m in est.models.values()),
                completion_tokens=sum(m.completion_tokens for m in est.models.values()),
                cost=est.total, unpriced=",".join(est.unpriced),
                models=est.to_dict()["models"], dry_run_text=str(est))
    rows = diagnose_trials(st, trials, params_by_model, key=r, **options)
    for row in rows:
        row["replicates"] = rlabel
        row["calls"] = est.calls
        row["cost"] = est.total
        spec = next((m for m in st.models if m.name == row["model"]), None)
        if spec is not None and spec.name in est.models:
            row["model_calls"] = est.models[spec.name].calls
    return rows, cost


LEAD_COLUMNS = ["replicates", "model", "design", "mode", "estimand", "target", "treatment", "term",
                "reference", "pinned_design", "covariate", "role",
                "truth", "design_target", "mean_estimate", "bias", "rmse", "sd_estimate", "mean_se",
                "power", "power_mcse", "coverage", "coverage_mcse", "sims_ok", "n_obs", "n_units",
                "se_type", "n_clusters", "model_calls", "calls", "cost"]


def _estimand_table(all_rows: list[dict], power_target: float | None) -> pd.DataFrame:
    """The estimand rows as a table (lead columns first), `meets_power` marked per estimand."""
    lead = LEAD_COLUMNS
    table = pd.DataFrame(all_rows)
    if not table.empty:
        table = table[[c for c in lead if c in table] + [c for c in table if c not in lead]]
        table["meets_power"] = False
        if power_target is not None:
            key_cols = [c for c in ("model", "design", "estimand", "target", "term", "pinned_design",
                                    "covariate") if c in table]
            for _, g in table.groupby(key_cols, sort=False, dropna=False):
                hit = g[g["power"] >= power_target]
                if len(hit):
                    table.loc[hit.index[0], "meets_power"] = True
    return table
