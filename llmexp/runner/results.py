"""Reading a run directory back: `open_run(run_dir) -> RunResults`.

`RunResults.summary()` starts with the run's status (`status.py`: complete, partial,
stopped; "running" while a process holds the directory's lock). `export` writes CSV cells
that a spreadsheet cannot run as formulas (`llmexp.export`); parquet and JSON keep values
as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.export import csv_safe
from llmexp.runner import stop_record
from llmexp.runner.extend import scope_lines
from llmexp.runner.lock import holder
from llmexp.runner.status import RunStatus, recorded
from llmexp.runner.store import STORE, RunStore, read_manifest
from llmexp.schema import BOOL_RESPONSE_COLUMNS, FLOAT_RESPONSE_COLUMNS, RESPONSE_COLUMNS, TRIAL_COLUMNS, ResponseRow

ARCHIVE_TABLE = "responses.parquet"  # an archived run: manifest.json + this table, no store
# a stored response's public columns, in RESPONSE_COLUMNS order
_PUBLIC = itemgetter(*(ResponseRow._fields.index(c) for c in RESPONSE_COLUMNS))


def _archived_rows(path: Path) -> tuple[list[dict], dict[str, ResponseRow]]:
    """Trial and response rows of an archived run, as the store would give them (an
    archive keeps no `error_kind` nor `finished_at`)."""
    import pandas as pd  # lazy: pandas is only needed for archives and tables

    frame = pd.read_parquet(path)
    frame = frame.astype(object).where(frame.notna(), None)
    trials, responses = [], {}
    for record in frame.to_dict(orient="records"):
        trials.append({k: record.get(k) for k in TRIAL_COLUMNS})
        if record.get("status") not in (None, "pending"):
            responses[record["trial_id"]] = ResponseRow(**{k: record.get(k) for k in ResponseRow._fields})
    return trials, responses


@dataclass
class RunSummary:
    run_dir: str
    study: str
    trials: int
    calls: int
    pending: int
    by_status: dict
    by_model: dict  # model -> {status: n, prompt_tokens, completion_tokens, cost}
    by_design: dict  # design -> {status: n}
    by_mode: dict  # mode -> {calls, cost, prompt_tokens, completion_tokens}
    prompt_tokens: int
    completion_tokens: int
    cost: float
    cache_hits: int
    invalid: int
    invalid_examples: list = field(default_factory=list)  # [{trial_id, raw_text, error}]
    failed_reasons: dict = field(default_factory=dict)  # error kind -> n
    failed_examples: list = field(default_factory=list)
    status: str = ""  # complete / partial / stopped / running (status.py)
    status_reason: str = ""
    scope: list = field(default_factory=list)  # a pilot, the extensions (extend.scope_lines)

    def to_dict(self) -> dict:
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [f"run status: {self.status}" + (f" ({self.status_reason})" if self.status_reason else "")] if self.status else []
        lines += [
            f"run {self.run_dir} (study {self.study})",
            *self.scope,
            f"  trials {self.trials}, calls recorded {self.calls}, not yet run {self.pending}",
            "  status: " + ", ".join(f"{k} {v}" for k, v in sorted(self.by_status.items())),
            f"  tokens: {self.prompt_tokens} prompt + {self.completion_tokens} completion; "
            f"cost ${self.cost:.4f}; cache hits {self.cache_hits}",
        ]
        if self.by_model:
            lines.append("  by model:")
            for name, d in self.by_model.items():
                st = ", ".join(f"{k} {d[k]}" for k in ("ok", "invalid", "failed") if d.get(k))
                lines.append(f"    {name}: {st or 'no calls'}; tokens {d['prompt_tokens']}+{d['completion_tokens']}; ${d['cost']:.4f}")
        if self.by_design:
            lines.append("  by design:")
            for name, d in self.by_design.items():
                st = ", ".join(f"{k} {d[k]}" for k in ("ok", "invalid", "failed", "pending") if d.get(k))
                lines.append(f"    {name}: {st}")
        if self.by_mode:
            lines.append("  by mode: " + "; ".join(f"{k} {v['calls']} calls ${v['cost']:.4f}" for k, v in self.by_mode.items()))
        if self.invalid:
            lines.append(f"  invalid answers: {self.invalid}, e.g.:")
            for ex in self.invalid_examples:
                text = (ex["raw_text"] or "").replace("\n", " ")[:80]
                lines.append(f"    {text!r}: {ex['error']}")
        if self.failed_reasons:
            lines.append("  failed calls by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(self.failed_reasons.items())))
            for ex in self.failed_examples:
                lines.append(f"    {(ex['error'] or '')[:160]}")
        return "\n".join(lines)


class RunResults:
    """A run directory: `.study`, `.manifest`, `.to_pandas()`, `.summary()`."""

    def __init__(self, run_dir: Path | str, manifest: dict | None = None):
        self.run_dir = Path(run_dir)
        self.manifest = manifest if manifest is not None else read_manifest(self.run_dir)
        self._study: Any = None  # the manifest's Study, validated on first use
        self.stopped: dict = {}
        self.budget_stop: str | None = None
        self.stats: Any = None  # the session's scheduler Stats, on the results run_study returns
        self.status: RunStatus | None = None  # how the session run_study just made ended

    def run_status(self) -> RunStatus:
        """How the run ended (or that it is running now), as its manifest records it."""
        if self.status is not None:
            return self.status
        return recorded(self.manifest, running_elsewhere=holder(self.run_dir) is not None, stop=stop_record.read(self.run_dir))

    def __repr__(self) -> str:
        return f"RunResults({str(self.run_dir)!r})"

    @property
    def study(self):
        if self._study is None:
            from llmexp.spec import Study

            try:
                self._study = Study.model_validate(self.manifest["spec"])
            except Exception as exc:
                raise RunError(f"the study in {self.run_dir}/manifest.json does not validate: {exc}") from exc
        return self._study

    def _rows(self) -> tuple[list[dict], dict[str, ResponseRow]]:
        archived = self.run_dir / ARCHIVE_TABLE
        if not (self.run_dir / STORE).exists() and archived.exists():
            return _archived_rows(archived)
        store = RunStore(self.run_dir, create=False)
        try:
            trials = store.trial_rows()
            responses = {r.trial_id: r for r in store.response_rows()}
        finally:
            store.close()
        return trials, responses

    def to_pandas(self, include_pending: bool = False):
        """One row per call: all trial columns + the response columns (docs/artifacts.md).

        include_pending: also the trials without a response yet (status "pending").
        """
        import pandas as pd

        trials, responses = self._rows()
        out = []
        for t in trials:
            r = responses.get(t["trial_id"])
            if r is None and not include_pending:
                continue
            row = {k: t.get(k) for k in TRIAL_COLUMNS}
            if r is None:
                row.update({k: None for k in RESPONSE_COLUMNS})
                row["status"] = "pending"
            else:
                row.update(zip(RESPONSE_COLUMNS, _PUBLIC(r), strict=True))
                for k in BOOL_RESPONSE_COLUMNS:
                    row[k] = bool(row[k]) if row[k] is not None else None
            out.append(row)
        df = pd.DataFrame(out, columns=list(TRIAL_COLUMNS) + list(RESPONSE_COLUMNS))
        if len(df):
            for k in FLOAT_RESPONSE_COLUMNS:
                df[k] = df[k].astype("float64")
        return df

    def summary(self, examples: int = 5) -> RunSummary:
        trials, responses = self._rows()
        by_status: dict = {}
        by_model: dict = {}
        by_design: dict = {}
        by_mode: dict = {}
        invalid_examples: list[dict] = []
        failed_examples: list[dict] = []
        failed_reasons: dict = {}
        seen: set = set()
        calls = 0
        pending = 0
        for t in trials:
            r = responses.get(t["trial_id"])
            status = r.status if r is not None else "pending"
            d = by_design.setdefault(t.get("design") or "-", {})
            d[status] = d.get(status, 0) + 1
            if t["trial_id"] in seen:
                continue
            seen.add(t["trial_id"])
            if r is None:
                pending += 1
                continue
            calls += 1
            by_status[status] = by_status.get(status, 0) + 1
            m = by_model.setdefault(t["model"], {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0})
            m[status] = m.get(status, 0) + 1
            m["prompt_tokens"] += r.prompt_tokens or 0
            m["completion_tokens"] += r.completion_tokens or 0
            m["cost"] += r.cost or 0.0
            md = by_mode.setdefault(t.get("mode") or "-", {"calls": 0, "cost": 0.0, "prompt_tokens": 0, "completion_tokens": 0})
            md["calls"] += 1
            md["cost"] += r.cost or 0.0
            md["prompt_tokens"] += r.prompt_tokens or 0
            md["completion_tokens"] += r.completion_tokens or 0
            if status == "invalid" and len(invalid_examples) < examples:
                invalid_examples.append({"trial_id": t["trial_id"], "raw_text": r.raw_text, "error": r.error})
            if status == "failed":
                kind = r.error_kind or "error"
                failed_reasons[kind] = failed_reasons.get(kind, 0) + 1
                if len(failed_examples) < examples:
                    failed_examples.append({"trial_id": t["trial_id"], "error": r.error})
        return RunSummary(
            run_dir=str(self.run_dir),
            study=self.manifest.get("study", ""),
            trials=len(seen),
            calls=calls,
            pending=pending,
            by_status=by_status,
            by_model=by_model,
            by_design=by_design,
            by_mode=by_mode,
            prompt_tokens=sum(m["prompt_tokens"] for m in by_model.values()),
            completion_tokens=sum(m["completion_tokens"] for m in by_model.values()),
            cost=sum(m["cost"] for m in by_model.values()),
            cache_hits=sum(1 for r in responses.values() if r.cache_hit),
            invalid=by_status.get("invalid", 0),
            invalid_examples=invalid_examples,
            failed_reasons=failed_reasons,
            failed_examples=failed_examples,
            status=self.run_status().status,
            status_reason=self.run_status().reason,
            scope=scope_lines(self.manifest),
        )

    def archive(self, out_dir: Path | str) -> Path:
        """Write a compact, read-only copy of the run: manifest + one parquet table.

        `open_run`, `llmexp analyze` and `llmexp report` read it like the run itself (no
        model is called); it is small enough to commit beside a paper or a report.
        """
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest = dict(self.manifest)
        if manifest.get("status") == "running":  # how it ended, if the run could only say so in its stop record
            status = self.run_status()
            manifest.update(status=status.status, status_reason=status.reason)
        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        self.to_pandas(include_pending=True).to_parquet(out_dir / ARCHIVE_TABLE, index=False)
        return out_dir

    def export(self, path: Path | str) -> Path:
        """Write the response table to .csv or .parquet."""
        path = Path(path)
        df = self.to_pandas()
        suffix = path.suffix.lower()
        if suffix == ".csv":  # text cells that a spreadsheet would run as formulas get a leading '
            csv_safe(df).to_csv(path, index=False)
        elif suffix in (".parquet", ".pq"):
            df.to_parquet(path, index=False)
        elif suffix in (".jsonl", ".json"):
            df.to_json(path, orient="records", lines=True)
        else:
            raise RunError(f"cannot export to {path.name}: use a .csv, .parquet or .jsonl file name")
        return path


@dataclass
class RunPlan:
    """What `run_study(..., dry_run=True)` returns: the plan, no calls made."""

    study: Any
    run_dir: Path
    rows: list
    pending: int
    estimate: Any

    def counts(self) -> dict:
        out: dict = {}
        for r in self.rows:
            key = (r["model"], r.get("design"))
            out[key] = out.get(key, 0) + 1
        return out

    def __str__(self) -> str:
        lines = [f"dry run: {len(self.rows)} trials ({self.pending} not yet answered) -> {self.run_dir}"]
        for (model, design), n in self.counts().items():
            lines.append(f"  {model} / {design}: {n}")
        lines.append(str(self.estimate))
        if self.rows:
            msgs = json.loads(self.rows[0]["messages"]) if isinstance(self.rows[0]["messages"], str) else self.rows[0]["messages"]
            lines.append("first prompt:")
            for m in msgs:
                lines.append(f"  [{m.get('role')}] {m.get('content')}")
        return "\n".join(lines)


def open_run(run_dir: Path | str) -> RunResults:
    """Open a run directory (manifest + store), or an archive of one, for reading."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunError(f"no run directory at {run_dir}")
    manifest = read_manifest(run_dir)
    if not (run_dir / STORE).exists() and not (run_dir / ARCHIVE_TABLE).exists():
        raise RunError(f"{run_dir} has a manifest but no store.sqlite (nor an archived {ARCHIVE_TABLE})")
    return RunResults(run_dir, manifest=manifest)
