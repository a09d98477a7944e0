"""Study spec -> trial table: one row per model call, for every design and model.

The compiler only enumerates (designs x models); each design's mode, found in the
`llmexp.modes` registry, renders its own trials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pandas as pd

from llmexp import modes
from llmexp.errors import LlmexpError
from llmexp.schema import TRIAL_COLUMNS
from llmexp.spec import ModelSpec, Study


def renderer(study: Study, design_name: str) -> modes.Mode:
    """The mode object that renders one design's trials."""
    design = study.design(design_name)
    return modes.get(design.mode)(study, design)


MAX_TRIALS = 2_000_000  # a trial table beyond this is almost surely a typo (replicates 100000000)


def count_trials(study: Study, designs: Iterable[str] | None = None, models: list[ModelSpec] | None = None) -> int:
    """The size of the trial table, computed without rendering it."""
    wanted = list(designs) if designs else [d.name for d in study.designs]
    return sum(renderer(study, name).count(model) for model in models or study.models for name in wanted if name in {d.name for d in study.designs})


def iter_trials(study: Study, designs: Iterable[str] | None = None, models: list[ModelSpec] | None = None) -> Iterator[dict]:
    """The trial rows, model by model and design by design (see `compile_study`)."""
    wanted = list(designs) if designs else [d.name for d in study.designs]
    unknown = [d for d in wanted if d not in {x.name for x in study.designs}]
    if unknown:
        raise LlmexpError(f"no design named {unknown[0]!r}; the study has: {', '.join(d.name for d in study.designs)}")
    for model in models or study.models:
        for name in wanted:
            yield from renderer(study, name).trials(model)


def compile_study(
    study: Study,
    designs: Iterable[str] | None = None,
    models: list[ModelSpec] | None = None,
) -> pd.DataFrame:
    """The trial table (see docs/artifacts.md); deterministic for a given study and seed."""
    expected = count_trials(study, designs, models)
    if expected > MAX_TRIALS:
        raise LlmexpError(
            f"study {study.name!r} would compile to {expected:,} trials (more than {MAX_TRIALS:,}); "
            "check replicates, persona counts and levels"
        )
    rows = list(iter_trials(study, designs, models))
    frame = pd.DataFrame.from_records(rows, columns=list(TRIAL_COLUMNS))
    duplicated = frame["trial_id"].duplicated()
    if duplicated.any():  # two designs rendering the same thing under the same name
        raise LlmexpError(f"internal: duplicate trial id {frame.loc[duplicated, 'trial_id'].iloc[0]}")
    return frame


def write_trials(trials: pd.DataFrame, path: str | Path) -> Path:
    """Write the trial table as JSONL (sorted keys, one trial a line) or parquet."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".parquet":
        trials.to_parquet(path, index=False)
    elif path.suffix in (".jsonl", ".json"):
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for record in trials.to_dict(orient="records"):
                clean = {k: (None if _is_missing(v) else v) for k, v in record.items()}
                handle.write(json.dumps(clean, sort_keys=True, ensure_ascii=False) + "\n")
    else:
        raise LlmexpError(f"{path}: choose an output ending in .jsonl or .parquet")
    return path


def _is_missing(value) -> bool:
    try:
        return value is None or (isinstance(value, float) and value != value)
    except TypeError:
        return False
