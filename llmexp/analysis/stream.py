"""A response table larger than memory: streamed from parquet into cell-level statistics.

`analyze_parquet(study, path)` (in `core.py`) reads the table in batches of rows and only the
columns the observations need (pyarrow), explodes each batch into observations with the
same rules as `build_observations` (exact copies of one prompt are recognised across
batches, `observations.SeenPrompts`), and keeps per cell (design x model x kind x target x
unit x persona x split x condition, and for probes whether the answer echoes the shown
value) the sufficient statistics of `grouped.py`. Memory then grows with the number of
cells, not of answers. The analyses that declare ``on_cells`` (demand curves, effects,
leakage) run on that table and give the same numbers as on the rows
(tests/analysis/test_sufficient_stats.py); the others are listed as not run, with the
reason.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from llmexp.analysis.base import Context
from llmexp.analysis.cells import pooled_cells_from_cells, unit_cells_from_cells
from llmexp.analysis.grouped import compress, merge
from llmexp.analysis.leakage import is_echo
from llmexp.analysis.observations import (
    Observations,
    SeenPrompts,
    build_observations,
    is_numeric_treatment,
    primary_treatment,
)
from llmexp.errors import AnalysisError
from llmexp.spec import Study

# the response columns the observations of the streamed analyses read (unit/persona/pinned
# dictionaries and the raw texts are left on disk)
COLUMNS = (
    "design",
    "mode",
    "model",
    "kind",
    "target",
    "unit_id",
    "persona_id",
    "split",
    "cell",
    "conditions",
    "answer",
    "valid",
    "status",
    "value",
    "probs",
    "condition_values",
)
COPY_COLUMNS = ("messages", "params")  # read only when answers carry probabilities
SUMS = ("nonbin", "n_pos", "slog")  # per-cell sums beside n, mean and m2
BATCH_ROWS = 200_000
NOT_ON_CELLS = (
    "needs the answers one by one; a streamed analysis (analyze_parquet) holds cell-level statistics only: analyse the table in memory for it"
)


def fine_keys(table: pd.DataFrame) -> list[str]:
    """The cells a streamed table is reduced to (every column an analysis on cells reads is
    constant within one)."""
    lv = [c for c in table.columns if c.startswith("lvl__")]
    return ["design", "mode", "model", "kind", "target", "unit_id", "persona_id", "split", "cell", *lv, "level", "shown", "answer_type", "echo"]


def _batch_cells(study: Study, table: pd.DataFrame) -> pd.DataFrame:
    """One batch's observations -> its cells (with echo flags and the log sums of probes)."""
    y = table["y"].to_numpy(float)
    probe = (table["kind"] == "probe").to_numpy()
    echo = np.zeros(len(table), dtype=bool)
    if is_numeric_treatment(study, primary_treatment(study)):
        echo = probe & is_echo(table["y"], table["shown"]).to_numpy()
    pos = y > 0
    table = table.assign(echo=echo)
    sums = {"nonbin": ~((y == 0) | (y == 1)), "n_pos": pos, "slog": np.log(np.where(pos, y, 1.0))}
    return compress(table, fine_keys(table), sums)


def _has_probs(pf) -> bool:
    """Does any answer carry probabilities (so exact copies must be recognised)?"""
    if "probs" not in pf.schema_arrow.names:
        return False
    batches = pf.iter_batches(batch_size=BATCH_ROWS, columns=["probs"])
    return any(batch.column(0).null_count < len(batch) for batch in batches)


def stream_observations(study: Study, path: Path | str, batch_rows: int = BATCH_ROWS) -> tuple[Observations, int]:
    """(observations as a cell table, number of responses) of the parquet table at `path`."""
    import pyarrow.parquet as pq  # lazy: only a streamed analysis needs it

    try:
        pf = pq.ParquetFile(path)
    except (OSError, ValueError) as exc:
        raise AnalysisError(f"cannot read the response table {path}: {exc}") from None
    names = pf.schema_arrow.names
    probs = _has_probs(pf)
    cols = [c for c in COLUMNS + (COPY_COLUMNS if probs else ()) if c in names]
    seen = SeenPrompts() if probs else None
    parts, invalid, total = [], [], 0
    for batch in pf.iter_batches(batch_size=batch_rows, columns=cols):
        frame = batch.to_pandas()
        total += len(frame)
        obs = build_observations(study, frame, allow_empty=True, seen=seen)
        invalid.append(obs.invalid)
        if len(obs.table):
            parts.append(_batch_cells(study, obs.table))
        del frame, obs
    if not parts:
        raise AnalysisError("no valid responses to analyse (every call was invalid or failed)")
    cells = pd.concat(parts, ignore_index=True)
    cells = merge(cells, fine_keys(cells), SUMS) if len(parts) > 1 else cells
    return Observations(table=cells, invalid=_invalid(invalid)), total


def _invalid(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """The batches' invalid-answer counts added up (groups in order of first appearance)."""
    keys = ["design", "model", "kind", "target"]
    counts = ["calls", "invalid_calls", "conditions", "missing_conditions", "exact_copies"]
    t = pd.concat(parts, ignore_index=True).groupby(keys, sort=False, dropna=False)[counts].sum()
    t = t.reset_index()
    t["invalid_share"] = np.where(t["calls"] > 0, t["invalid_calls"] / t["calls"].where(t["calls"] > 0, 1), np.nan)
    return t


def stream_context(
    study: Study, path: Path | str, alpha: float, n_boot: int, seed: int, cluster: str, refute_simulations: int, batch_rows: int = BATCH_ROWS
) -> tuple[Context, int]:
    """The `Context` of a streamed analysis, and the number of responses read."""
    obs, total = stream_observations(study, path, batch_rows)
    ctx = Context(
        study=study,
        responses=pd.DataFrame(),
        obs=obs,
        unit_cells=unit_cells_from_cells(obs.table, alpha, n_boot=min(n_boot, 400), seed=seed),
        pooled_cells=pooled_cells_from_cells(obs.table, alpha, n_boot=n_boot, seed=seed),
        alpha=alpha,
        n_boot=n_boot,
        seed=seed,
        cluster=cluster,
        refute_simulations=refute_simulations,
    )
    return ctx, total
