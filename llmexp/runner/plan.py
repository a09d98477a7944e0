"""Which trials a run makes, in which order: argument checks, selection, the dry-run plan.

`select_trials` turns the study (and an optional trial table, model override and limit)
into the rows to run: trial-table rows normalised to plain values (`records`), put in
the stratified order of `sampling.py` (every model x design x cell, seeded) so a `--limit`
or `--pilot` run samples every arm and spans its levels, then cut to the limit.
`dry_run_plan` is what `run_study(dry_run=True)` returns: the selection, what is still
unanswered in the run directory and the cost.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.cost import estimate_cost
from llmexp.runner.models import provider
from llmexp.runner.override import override_models
from llmexp.runner.results import RunPlan
from llmexp.runner.sampling import stratified, take
from llmexp.runner.store import STORE, RunStore
from llmexp.schema import JSON_TRIAL_COLUMNS, TRIAL_COLUMNS
from llmexp.schema import plain_cell as clean
from llmexp.spec import ModelSpec, Study

DEFAULT_CONCURRENCY = 8


def check_arguments(study: Any, concurrency: int | None, limit: int | None, max_cost: float | None) -> None:
    """Reject impossible arguments before anything is read or written."""
    if not isinstance(study, Study):
        raise RunError("run_study needs a llmexp.spec.Study (use llmexp.load(path) to read a .study file)")
    if concurrency is None or int(concurrency) < 1:
        raise RunError("concurrency must be at least 1")
    if limit is not None and int(limit) < 1:
        raise RunError("limit must be at least 1")
    if max_cost is not None and float(max_cost) < 0:
        raise RunError("max cost must be >= 0")


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def records(trials: Any) -> list[dict]:
    """The trial table (DataFrame or row dicts) as dicts of the schema's trial columns:
    plain python values, JSON columns as canonical JSON text."""
    rows = trials.to_dict("records") if hasattr(trials, "to_dict") else [dict(r) for r in trials]
    out = []
    for row in rows:
        missing = [c for c in ("trial_id", "model", "messages", "answer") if c not in row]
        if missing:
            raise RunError(f"the trial table lacks column(s) {', '.join(missing)} (see docs/artifacts.md)")
        rec = {k: clean(row.get(k)) for k in TRIAL_COLUMNS}
        for k in JSON_TRIAL_COLUMNS:
            if rec.get(k) is not None and not isinstance(rec[k], str):
                rec[k] = _dumps(rec[k])
        if rec.get("replicate") is not None:
            rec["replicate"] = int(rec["replicate"])
        for name in ("order_seed", "exposure"):
            if rec.get(name) is not None:
                rec[name] = int(rec[name])
        out.append(rec)
    return out


def prefix_reusers_in_compile_order(rows: list[dict], order: dict) -> list[dict]:
    """A model that reuses the prompt prefix shared with its previous call (the embedded
    model's KV cache) gets its trials in compile order (neighbours share the longest
    prefixes), in the slots its trials had. Other models keep the stratified order."""
    slots = [i for i, r in enumerate(rows) if provider(str(r["model"])).reuses_prompt_prefix]
    if not slots:
        return rows
    serial = sorted((rows[i] for i in slots), key=lambda r: order.get(id(r), 0))
    out = list(rows)
    for i, r in zip(slots, serial, strict=True):
        out[i] = r
    return out


def _normalize_models(study: Study, models: Any) -> list[ModelSpec]:
    """ModelSpecs as given; a name the study does not declare carries over the study's
    sampling params and replicates (`override.py`)."""
    return override_models(study, models).models


def _compile(study: Study) -> Any:
    # lazy: the compiler pulls in every mode's renderer; a caller passing trials= skips it
    try:
        from llmexp.compiler import compile_study
    except ImportError as exc:
        raise RunError(f"the compiler is not available ({exc}); pass trials= explicitly") from exc
    return compile_study(study)


@dataclass
class Selection:
    """The trials a run makes, in run order, and what they need from the study."""

    study: Study  # with the models override applied
    rows: list[dict]  # in run order (stratified, limited)
    order: dict[int, int]  # id(row) -> position in the trial table (compile order)
    spec_params: dict[str, dict]  # model name -> the study's params for it
    model_names: list[str]  # models of the selected rows, first appearance first
    table: dict[str, dict] = field(default_factory=dict)  # trial_id -> row: the whole trial table


def select_trials(study: Study, trials: Any, models: Sequence | None, limit: int | None) -> Selection:
    """The rows to run: the study's (or the given) trial table, for the requested models,
    in the stratified order (models x designs x cells), the first `limit` of them (whole
    respondents: linked rows are never split)."""
    if models:
        study = study.with_models(_normalize_models(study, models))
        if trials is not None:
            names = {m.name for m in study.models}
            rows_all = [r for r in records(trials) if r["model"] in names]
            if not rows_all:
                raise RunError("none of the given trials uses the requested model(s)")
        else:
            rows_all = records(_compile(study))
    else:
        rows_all = records(trials if trials is not None else _compile(study))
    if not rows_all:
        raise RunError("the study compiles to no trials")
    order = {id(r): i for i, r in enumerate(rows_all)}
    rows = take(stratified(rows_all, study.seed), None if limit is None else int(limit))
    return Selection(
        study=study,
        rows=rows,
        order=order,
        spec_params={m.name: dict(m.params) for m in study.models},
        model_names=list(dict.fromkeys(r["model"] for r in rows)),
        table={r["trial_id"]: r for r in rows_all},
    )


def dry_run_plan(selection: Selection, run_dir: Path) -> RunPlan:
    """The plan without calls: the selected trials, how many are still unanswered in
    `run_dir` (when it holds a run), and the cost estimate of those."""
    done: set[str] = set()
    if (run_dir / STORE).exists():
        try:
            st = RunStore(run_dir, create=False)
            done = st.final_ids()
            st.close()
        except RunError:
            pass
    pending = [r for r in selection.rows if r["trial_id"] not in done]
    est = estimate_cost(selection.study, pending, selection.spec_params)
    return RunPlan(study=selection.study, run_dir=run_dir, rows=selection.rows, pending=len({r["trial_id"] for r in pending}), estimate=est)
