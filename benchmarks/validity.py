"""Validity benchmark: every estimator and check against known truth (issue 10).

    python benchmarks/validity.py                # 500 simulations per scenario
    python benchmarks/validity.py --quick        # 50 (development; say so when you quote it)
    python benchmarks/validity.py --sims 200 --only effects --md out.md

A *scenario* is a data-generating process with a known true value, run through llmexp's own
analysis code (not a re-implementation), N times with independent seeds. Per scenario the
runner prints:

- ``bias`` (mean estimate - truth) and ``rel_bias`` (bias / |truth|, non-null scenarios);
- ``coverage``: share of 95% intervals that contain the truth (among non-refused runs);
- ``power`` (non-null) or ``false_alarm`` (null): share of runs that reject / flag;
- ``refused``: share of runs whose estimate was reported missing (NaN, with a reason);
- ``mc_se``: Monte Carlo standard error of the coverage (sqrt(c(1-c)/N)).

Scenarios register themselves with `scenario(...)`. This file holds the effects scenarios;
`benchmarks/validity_checks.py` (leakage, focalism, range, refuters) and
`benchmarks/validity_baseline.py` (human-baseline metrics, elasticities) add theirs when they
exist: the runner imports them. A scenario's `run(seed)` returns an `Outcome`.
"""

from __future__ import annotations

import argparse
import importlib
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# many small fits: BLAS threads only add contention (5x slower on a shared 2-core machine)
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@dataclass
class Outcome:
    """One simulation's result. estimate NaN = refused. `flag` is the check's verdict (for
    checks) or None (then p_value < alpha counts as a rejection)."""

    estimate: float = float("nan")
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    p_value: float = float("nan")
    flag: bool | None = None


@dataclass
class Scenario:
    name: str
    group: str  # "effects", "checks", "baseline", ...
    estimator: str
    truth: float  # the true value; 0 for a null scenario of an effect
    run: Callable[[int], Outcome]
    null: bool = False  # the check should NOT fire (false-alarm scenario)
    units: int | None = None
    answers: str = ""  # "sampled" | "log-prob" | ...
    tags: dict = field(default_factory=dict)


SCENARIOS: list[Scenario] = []


def scenario(**kw) -> Scenario:
    """Register a scenario (keyword arguments of `Scenario`)."""
    s = Scenario(**kw)
    SCENARIOS.append(s)
    return s


def evaluate(s: Scenario, sims: int, seed0: int = 0, alpha: float = 0.05) -> dict:
    """Run `sims` simulations of `s` and summarise them."""
    outs = [s.run(seed0 + i) for i in range(sims)]
    est = np.array([o.estimate for o in outs], dtype=float)
    lo = np.array([o.ci_low for o in outs], dtype=float)
    hi = np.array([o.ci_high for o in outs], dtype=float)
    p = np.array([o.p_value for o in outs], dtype=float)
    flags = np.array([(o.flag if o.flag is not None else (np.isfinite(o.p_value) and o.p_value < alpha))
                      for o in outs], dtype=bool)
    ok = np.isfinite(est)
    has_ci = ok & np.isfinite(lo) & np.isfinite(hi)
    cover = (lo[has_ci] <= s.truth) & (s.truth <= hi[has_ci])
    cov = float(cover.mean()) if has_ci.any() else float("nan")
    bias = float(np.mean(est[ok]) - s.truth) if ok.any() else float("nan")
    rej = float(flags.mean())
    return dict(group=s.group, estimator=s.estimator, scenario=s.name, answers=s.answers,
                units=s.units, truth=s.truth, sims=sims, refused=float(1 - ok.mean()),
                bias=bias, rel_bias=(bias / abs(s.truth) if s.truth else float("nan")),
                bias_mc_se=float(np.std(est[ok], ddof=1) / math.sqrt(ok.sum())) if ok.sum() > 1 else float("nan"),
                coverage=cov, coverage_mc_se=(math.sqrt(cov * (1 - cov) / has_ci.sum())
                                              if has_ci.any() else float("nan")),
                power=(float("nan") if s.null else rej), false_alarm=(rej if s.null else float("nan")),
                mean_width=float(np.mean(hi[has_ci] - lo[has_ci])) if has_ci.any() else float("nan"),
                median_p=float(np.nanmedian(p)) if np.isfinite(p).any() else float("nan"))


def _fmt(v, pct=False) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "-"
    if pct:
        return f"{100 * v:.1f}%"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def markdown(rows: list[dict]) -> str:
    cols = ["estimator", "scenario", "answers", "units", "truth", "sims", "bias", "rel_bias",
            "coverage", "power", "false_alarm", "refused"]
    pct = {"rel_bias", "coverage", "power", "false_alarm", "refused"}
    out = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        out.append("| " + " | ".join(_fmt(r[c], c in pct) for c in cols) + " |")
    return "\n".join(out)


def load_extensions() -> list[str]:
    """Import the other scenario files when present (they call `scenario`)."""
    loaded = []
    for mod in ("validity_effects", "validity_checks", "validity_baseline"):
        if (Path(__file__).parent / f"{mod}.py").exists():
            importlib.import_module(f"benchmarks.{mod}")
            loaded.append(mod)
    return loaded


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sims", type=int, default=500)
    ap.add_argument("--quick", action="store_true", help="50 simulations per scenario")
    ap.add_argument("--only", default="", help="run scenarios whose group/estimator/name contains one of these (comma-separated)")
    ap.add_argument("--exact", action="append", default=[], help="run the scenario with exactly this name (repeatable; names contain commas)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--md", type=Path, default=None, help="also write the table as markdown")
    args = ap.parse_args(argv)
    sims = 50 if args.quick else args.sims
    loaded = load_extensions()
    pats = [p for p in args.only.split(",") if p]
    chosen = [s for s in SCENARIOS if (not pats and not args.exact) or s.name in args.exact
              or any(p in f"{s.group} {s.estimator} {s.name}" for p in pats)]
    print(f"validity: {len(chosen)} scenarios x {sims} simulations ({'quick' if args.quick else 'full'};"
          f" scenario files: {', '.join(loaded)})", flush=True)
    rows = []
    for s in chosen:
        t0 = time.time()
        r = evaluate(s, sims, args.seed)
        rows.append(r)
        print(f"{s.group:9s} {s.estimator:22s} {s.name:34s} bias={_fmt(r['bias'])} "
              f"rel={_fmt(r['rel_bias'], True)} cov={_fmt(r['coverage'], True)} "
              f"pow={_fmt(r['power'], True)} fa={_fmt(r['false_alarm'], True)} "
              f"refused={_fmt(r['refused'], True)} ({time.time() - t0:.0f}s)", flush=True)
    table = markdown(rows)
    print(table)
    if args.md:
        args.md.write_text(table + "\n")
    pd.DataFrame(rows).to_csv(Path(__file__).parent / "results" / "validity_latest.csv", index=False)
    return 0


if __name__ == "__main__":
    # scenario files import `benchmarks.validity`: let them register into this module
    sys.modules.setdefault("benchmarks.validity", sys.modules[__name__])
    raise SystemExit(main())
