"""The report's methods section: the study file, one rendered prompt per design, the models
and their parameters, counts, dates and versions (from the run's manifest when there is one)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


def llmexp_version() -> str:
    """The installed llmexp's version (the package metadata: this layer does not import the
    top-level `llmexp` module)."""
    from importlib import metadata

    try:
        return metadata.version("llmexp")
    except metadata.PackageNotFoundError:
        return "unknown"


@dataclass
class Prompt:
    design: str
    mode: str
    messages: list[tuple[str, str]]  # (role, content)


@dataclass
class Methods:
    study_text: str
    study_text_source: str
    prompts: list[Prompt] = field(default_factory=list)
    models: list[dict] = field(default_factory=list)  # name, params, replicates
    counts: list[dict] = field(default_factory=list)  # model, design, status counts
    n_responses: int = 0
    dates: list[tuple[str, str]] = field(default_factory=list)  # (what, when)
    versions: list[tuple[str, str]] = field(default_factory=list)


def study_text(study, manifest: dict | None) -> tuple[str, str]:
    """(text, where it came from): the .study file when it is still there, else the summary."""
    source = getattr(study, "source_file", None) or ((manifest or {}).get("spec") or {}).get("source_file")
    if source and str(source).endswith(".study"):
        path = Path(source)
        try:
            if path.is_file():
                return path.read_text(encoding="utf-8"), str(path)
        except OSError:
            pass
    return study.summary(), "the study's summary (the .study file was not found)"


def _messages(value) -> list[tuple[str, str]]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return [("user", value)]
    if not isinstance(value, (list, tuple)):
        return []
    return [(str(m.get("role", "")), str(m.get("content", ""))) for m in value if isinstance(m, dict)]


def prompts(responses: pd.DataFrame) -> list[Prompt]:
    """The first outcome prompt of each design, as the model saw it."""
    if responses is None or responses.empty or "messages" not in responses:
        return []
    out = []
    df = responses
    if "kind" in df:  # an outcome question shows the design better than a probe
        df = pd.concat([df[df["kind"] == "outcome"], df[df["kind"] != "outcome"]])
    for design, rows in df.groupby("design", sort=False, dropna=False):
        first = rows.iloc[0]
        out.append(Prompt(design=str(design), mode=str(first.get("mode", "")),
                          messages=_messages(first["messages"])))
    return out


def counts(responses: pd.DataFrame) -> list[dict]:
    if responses is None or responses.empty or "status" not in responses:
        return []
    table = responses.groupby(["model", "design", "status"], dropna=False).size().unstack(fill_value=0)
    return [{"model": m, "design": d, **{str(k): int(v) for k, v in row.items()}}
            for (m, d), row in table.iterrows()]


def models(study, manifest: dict | None) -> list[dict]:
    if manifest and manifest.get("models"):
        return [{"name": m.get("name"), "params": m.get("params") or {},
                 "replicates": m.get("replicates")} for m in manifest["models"]]
    return [{"name": m.name, "params": dict(m.params), "replicates": m.replicates} for m in study.models]


def _dates(manifest: dict | None, generated: str) -> list[tuple[str, str]]:
    out = []
    m = manifest or {}
    if m.get("created"):
        out.append(("run created", str(m["created"])))
    sessions = m.get("sessions")
    ended = [str(s["ended"]) for s in (sessions if isinstance(sessions, list) else [])
             if isinstance(s, dict) and s.get("ended")]
    if ended:
        out.append(("last session ended", str(max(ended))))
    if m.get("status"):
        out.append(("run status", str(m["status"]) + (f" ({m['status_reason']})" if m.get("status_reason") else "")))
    out.append(("report generated", generated))
    return out


def methods(study, responses: pd.DataFrame | None, manifest: dict | None, generated: str) -> Methods:
    text, source = study_text(study, manifest)
    versions = [("llmexp (this report)", llmexp_version())]
    for k, v in sorted(((manifest or {}).get("versions") or {}).items()):
        versions.append((f"{k} (the run)", str(v)))
    return Methods(study_text=text, study_text_source=source,
                   prompts=prompts(responses) if responses is not None else [],
                   models=models(study, manifest),
                   counts=counts(responses) if responses is not None else [],
                   n_responses=0 if responses is None else len(responses),
                   dates=_dates(manifest, generated), versions=versions)
