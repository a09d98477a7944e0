"""Analysis at scale: `analyze_parquet` (demand curves, effects, leakage) on 1M and 10M
synthetic responses, time and peak RSS, each in a fresh child process.

    python benchmarks/analysis_scale.py                 # 1M and 10M rows
    python benchmarks/analysis_scale.py --rows 1000000  # one size
    python benchmarks/analysis_scale.py --in-memory     # also `analyze` on the loaded frame

The table is written on the fly into a temporary directory (deleted afterwards) with the
response-table columns of docs/artifacts.md: 100 products x 11 price levels x 2 designs
(blind, unblinded), an outcome (binary purchase) and a probe (the competitor's price) per
call, the draws scaled to reach the row count, 2% invalid calls. It is drawn vectorised
(numpy, one parquet row group per design x product), from the same data-generating process
as `tests.support.synthetic_responses` (linear-probability purchase with unit intercepts and
slopes, a leaking probe). Peak RSS is the measuring child's VmHWM (imports included).
`run.py` calls `measure()` for its table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N_UNITS = 100
TARGETS = {1_000_000: (10.0, 1024.0), 10_000_000: (60.0, 2048.0)}  # rows -> (s, MB)


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def _chunk(study, d, ui: int, draws: int, rng, eff: dict):
    """The rows of one design x product: outcome and probe rows of every level x draw."""
    import numpy as np
    import pyarrow as pa

    from llmexp.seeding import canonical

    unit = study.units.rows[ui]
    levels = np.array([float(x) for x in study.treatments[0].levels])
    lv = np.repeat(levels, draws)
    rep = np.tile(np.arange(draws), len(levels))
    m = len(lv)
    p = np.clip(0.8 + eff["a"][ui] + (-0.3 + eff["b"][ui]) * lv, 0.01, 0.99)
    buy = (rng.random(m) < p).astype(float)
    leak = 0.3 if d.name == "unblinded" else 0.0
    v = eff["base"][ui] * (1 + leak * (lv - levels.mean())) * (1 + 0.1 * rng.standard_normal(m))
    conds = [canonical([{"cell": f"price={x}", "levels": {"price": x}, "values": {"price": round(x * unit["regular_price"], 2)}}]) for x in levels]
    cond = np.repeat(np.array(conds, dtype=object), draws)
    cells = np.repeat(np.array([f"price={x}" for x in levels], dtype=object), draws)
    invalid = rng.random(2 * m) < 0.02
    kind = np.array(["outcome", "probe"] * m, dtype=object)
    value = np.empty(2 * m)
    value[0::2], value[1::2] = buy, np.round(v, 4)
    tid = [f"{d.name}-{unit['product_id']}-{i}" for i in range(2 * m)]
    ans = {
        "outcome": canonical(study.outcomes[0].answer.model_dump(mode="json")),
        "probe": canonical(study.covariates[0].probe.answer.model_dump(mode="json")),
    }
    label = np.where(value == 1, "purchase", "not purchase").astype(object)
    label[1::2] = None
    value = np.where(invalid, np.nan, value)
    cols = {
        "trial_id": tid, "study": ["synthetic"] * (2 * m), "design": [d.name] * (2 * m),
        "mode": [d.mode] * (2 * m), "model": ["synthetic/test"] * (2 * m), "params": ["{}"] * (2 * m),
        "replicate": np.repeat(rep, 2), "kind": kind,
        "target": np.where(kind == "outcome", "purchase", "competitor_price").astype(object),
        "unit_id": [unit["product_id"]] * (2 * m), "unit": [canonical(unit)] * (2 * m),
        "persona_id": pa.nulls(2 * m, pa.string()), "persona": pa.nulls(2 * m, pa.string()),
        "cell": np.repeat(cells, 2), "conditions": np.repeat(cond, 2), "pinned": ["{}"] * (2 * m),
        "split": pa.nulls(2 * m, pa.string()),
        "answer": np.where(kind == "outcome", ans["outcome"], ans["probe"]).astype(object),
        "messages": [f'[{{"role": "user", "content": "synthetic {t}"}}]' for t in tid],
        "valid": ~invalid, "value": value, "label": np.where(invalid, None, label),
        "probs": pa.nulls(2 * m, pa.string()), "condition_values": pa.nulls(2 * m, pa.string()),
        "raw_text": np.where(invalid, "?", value.astype(str)).astype(object),
        "error": np.where(invalid, "unparseable", None).astype(object),
        "status": np.where(invalid, "invalid", "ok").astype(object),
        "prompt_tokens": np.full(2 * m, 10), "completion_tokens": np.full(2 * m, 2),
        "cost": np.zeros(2 * m), "latency": np.zeros(2 * m), "cache_hit": np.zeros(2 * m, bool),
        "attempts": np.ones(2 * m, dtype=np.int64),
    }  # fmt: skip
    return pa.table({k: (v if isinstance(v, pa.Array) else pa.array(v)) for k, v in cols.items()})


def write_table(path: Path, rows: int, seed: int = 0) -> dict:
    """A synthetic response table of about `rows` rows at `path`; returns its shape."""
    import numpy as np
    import pyarrow.parquet as pq

    from tests.support.synthetic_responses import make_study

    study = make_study(n_units=N_UNITS)
    per_draw = 2 * len(study.designs) * N_UNITS * len(study.treatments[0].levels)
    draws = max(1, round(rows / per_draw))
    rng = np.random.default_rng(seed)
    eff = {
        "a": rng.normal(0, 0.05, N_UNITS),
        "b": rng.normal(0, 0.05, N_UNITS),
        "base": rng.uniform(0.8, 1.2, N_UNITS) * np.array([u["regular_price"] for u in study.units.rows]),
    }
    writer, n = None, 0
    for d in study.designs:
        for ui in range(N_UNITS):
            t = _chunk(study, d, ui, draws, rng, eff)
            writer = writer or pq.ParquetWriter(path, t.schema)
            writer.write_table(t)
            n += t.num_rows
    assert writer is not None
    writer.close()
    return {"rows": n, "units": N_UNITS, "draws": draws, "file_mb": path.stat().st_size / 2**20}


def child_measure(path: str, in_memory: bool) -> dict:
    """In the measuring process: analyse the table (streamed, or loaded then analysed)."""
    from llmexp.analysis import analyze, analyze_parquet
    from tests.support.synthetic_responses import make_study

    study = make_study(n_units=N_UNITS)
    rss0 = _peak_rss_mb()
    cpu0, t0 = time.process_time(), time.perf_counter()
    if in_memory:
        import pandas as pd

        frame = pd.read_parquet(path)
        t1 = time.perf_counter()
        result = analyze(study, frame, figures=False)
        load_s = t1 - t0
    else:
        result = analyze_parquet(study, path, figures=False)
        load_s = 0.0
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    e = result.table("effects")
    slope = e[(e["design"] == "blind") & (e["method"] == "ols") & (e["scope"] == "design")]
    return {
        "wall": wall,
        "cpu_s": cpu,
        "loadavg": os.getloadavg()[0],
        "load_s": load_s,
        "peak_rss_mb": _peak_rss_mb(),
        "rss_after_imports_mb": rss0,
        "not_run": result.not_run,
        "blind_slope": float(slope["estimate"].iloc[0]),
        "blind_slope_se": float(slope["se"].iloc[0]),
        "cells": len(result.table("unit_cells")),
    }


def measure(rows: int, in_memory: bool = False, timeout: float = 3600) -> dict:
    """Write a table of `rows` rows in a temporary directory, analyse it in a child process
    (and, with `in_memory`, also load it and run `analyze` in another), delete it."""
    tmp = Path(tempfile.mkdtemp(prefix="llmexp-scale-"))
    try:
        t0 = time.perf_counter()
        shape = write_table(tmp / "responses.parquet", rows)
        out: dict = {**shape, "write_s": time.perf_counter() - t0}
        modes = [("streamed", False)] + ([("in_memory", True)] if in_memory else [])
        for name, mem in modes:
            cmd = [sys.executable, __file__, "--child", str(tmp / "responses.parquet")]
            cmd += ["--in-memory"] if mem else []
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, "OPENBLAS_NUM_THREADS": "1"})
            out[name] = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.returncode == 0 else {"error": (proc.stderr or proc.stdout)[-1500:]}
        return out
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def rows_for_table(res: dict) -> list[tuple[str, str, str, bool | None]]:
    """(measure, result, target, met) rows for run.py's table."""
    out = []
    for rows, r in sorted(res.items(), key=lambda kv: int(kv[0])):
        s_max, mb_max = TARGETS.get(int(rows), (None, None))
        target = f"<= {s_max:.0f} s, <= {mb_max / 1024:.0f} GB" if s_max else "-"
        st = r.get("streamed", {})
        name = f"analysis of {r['rows']:,} responses, streamed from parquet ({r['units']} units x {r['draws']} draws; demand_curve, effects, leakage)"
        if "error" in st:
            out.append((name, "error: " + st["error"][-300:], target, False))
            continue
        out.append(
            (
                name,
                f"{st['wall']:.1f} s wall, {st['cpu_s']:.1f} s CPU (load average "
                f"{st['loadavg']:.1f}), peak RSS {st['peak_rss_mb']:.0f} MB (after imports "
                f"{st['rss_after_imports_mb']:.0f} MB; parquet file {r['file_mb']:.0f} MB)",
                target,
                (st["wall"] <= s_max and st["peak_rss_mb"] <= mb_max) if s_max else None,
            )
        )
        mem = r.get("in_memory")
        if mem and "error" not in mem:
            out.append(
                (
                    "  same table loaded into pandas, then `analyze`",
                    f"{mem['wall']:.1f} s wall, {mem['cpu_s']:.1f} s CPU ({mem['load_s']:.1f} s reading), peak RSS {mem['peak_rss_mb']:.0f} MB",
                    "-",
                    None,
                )
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, action="append", help="table size(s); default 1M and 10M")
    ap.add_argument("--in-memory", action="store_true", help="also load the table and run analyze")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        print(json.dumps(child_measure(a.child, a.in_memory)), flush=True)
        return 0
    res = {}
    for rows in a.rows or [1_000_000, 10_000_000]:
        res[rows] = measure(rows, in_memory=a.in_memory and rows <= 2_000_000)
        print(json.dumps({rows: res[rows]}), flush=True)
    for row in rows_for_table(res):
        print("| " + " | ".join([row[0], row[1], row[2], {True: "yes", False: "NO", None: "-"}[row[3]]]) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
