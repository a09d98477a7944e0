"""llmexp benchmarks: one command, one table, every figure measured side by side in one run.

    python benchmarks/run.py            # the recorded table (a few minutes)
    python benchmarks/run.py --quick    # smaller sizes, for development

Each measurement runs in its own child process (clean CPU and peak-memory accounting); the
fake OpenAI-compatible server runs in yet another process (`tests.support.fake_openai`),
so its CPU does not count against the client. Sections:

- throughput: llmexp `run_study` vs plain `litellm.acompletion` (the same calls, the same
  concurrency, no store) at concurrency 16, 64, 256 against a 50 ms mock; the practical
  limit is min(concurrency / latency, the best plain-litellm rate of this run); llmexp's own
  CPU per call is its CPU per call minus plain litellm's;
- baselines: a naive sequential litellm loop, and EDSL (in its own venv, `--edsl-python`)
  on the same yes/no questions against the same mock, at the same concurrency;
- cache: re-running a 10k-trial study served from the response cache;
- batch: 100k trials through `run_study(batch=...)` against the fake batch server
  (`bench_batch.py`): CPU per trial, cost at batch prices (fake prices, labelled);
- compile: 100k trials from a .study file;
- analysis: `llmexp.analysis.analyze_parquet` (demand curves, effects, leakage) streamed from
  synthetic 1M- and 10M-response parquet tables, and `analyze` on the loaded 1M table
  (time, CPU, peak RSS; `benchmarks/analysis_scale.py`);
- local model: seconds per binary trial on the embedded Gemma model, with and without
  prefix (KV cache) reuse.

Writes benchmarks/results/latest.json (all raw figures) and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_batch.py, beside this file
from bench_batch import batch_row, m_batch  # noqa: E402

MODEL = "openai/fake-model"
LATENCY_MS = 50.0
DEFAULT_EDSL_PYTHON = "/tmp/edsl-venv/bin/python"


def _params(api_base: str) -> dict:
    return {"api_base": api_base, "api_key": "sk-fake"}


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: Linux carries ru_maxrss over execve,
    so a child would report its parent's peak at fork time."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ====================================================================== child measurements


def m_plain(a) -> dict:
    """Plain litellm.acompletion, `n` calls, at most `c` in flight (a semaphore)."""
    import litellm

    from tests.support.workload import workload

    _, trials = workload(a.n, MODEL, _params(a.api_base))
    msgs = [json.loads(m) for m in trials["messages"]]
    kw = dict(api_base=a.api_base, api_key="sk-fake", timeout=120, max_retries=0)

    async def go(batch):
        sem = asyncio.Semaphore(a.c)

        async def one(m):
            async with sem:
                r = await litellm.acompletion(model=MODEL, messages=m, **kw)
                return r.choices[0].message.content

        return await asyncio.gather(*(one(m) for m in batch))

    asyncio.run(go([[{"role": "user", "content": f"warm-up {i}"}] for i in range(min(a.c, 32))]))
    cpu0, t0 = time.process_time(), time.perf_counter()
    out = asyncio.run(go(msgs))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {
        "n": a.n, "c": a.c, "wall": wall, "cpu": cpu, "rate": a.n / wall, "cpu_ms_per_call": 1000 * cpu / a.n,
        "answered": sum(1 for x in out if x),
    }  # fmt: skip


def m_llmexp(a) -> dict:
    """`run_study` on `n` trials at concurrency `c` (no cache, no progress display)."""
    from llmexp.runner import run_study
    from tests.support.workload import workload

    tmp = Path(tempfile.mkdtemp(prefix="llmexp-bench-"))
    ws, wt = workload(min(a.c, 32), MODEL, _params(a.api_base), name="warmup")
    run_study(ws, wt, run_dir=tmp / "warm", use_cache=False, progress=False, concurrency=a.c)
    study, trials = workload(a.n, MODEL, _params(a.api_base))
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = run_study(study, trials, run_dir=tmp / "run", use_cache=False, progress=False, concurrency=a.c)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    s = res.stats
    return {"n": a.n, "c": a.c, "wall": wall, "cpu": cpu, "rate": a.n / wall, "cpu_ms_per_call": 1000 * cpu / a.n, "ok": s.ok, "failed": s.failed}


def m_workers(a) -> dict:
    """`run_study(..., workers=N)` (issue 14): the litellm calls made by N worker processes.
    `rate` leaves out the pool's start-up (each worker imports litellm, reported as
    `startup`); `cpu_ms_per_call` is this process's CPU plus the workers'."""
    import llmexp.runner.workers as pool_module
    from llmexp.runner import run_study
    from tests.support.workload import workload

    startups: list[float] = []
    startup_cpu: list[float] = []  # the workers' CPU until ready (importing litellm)
    real_start = pool_module.WorkerPool.start

    async def timed_start(self):
        t = time.perf_counter()
        await real_start(self)
        startups.append(time.perf_counter() - t)
        startup_cpu.extend(_proc_cpu(w.proc.pid) for w in self.workers)

    pool_module.WorkerPool.start = timed_start
    tmp = Path(tempfile.mkdtemp(prefix="llmexp-bench-"))
    ws, wt = workload(min(a.c, 32), MODEL, _params(a.api_base), name="warmup")
    run_study(ws, wt, run_dir=tmp / "warm", use_cache=False, progress=False, concurrency=a.c)
    study, trials = workload(a.n, MODEL, _params(a.api_base))
    kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = run_study(study, trials, run_dir=tmp / "run", use_cache=False, progress=False, concurrency=a.c, workers=a.workers)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    kids_cpu = (kids.ru_utime - kids0.ru_utime) + (kids.ru_stime - kids0.ru_stime)
    startup = sum(startups)
    s = res.stats
    calls_cpu = cpu + kids_cpu - sum(startup_cpu)
    return {"n": a.n, "c": a.c, "workers": a.workers, "wall": wall, "startup": startup, "rate": a.n / (wall - startup),
            "rate_incl_startup": a.n / wall, "cpu_ms_per_call": 1000 * calls_cpu / a.n, "main_cpu_ms_per_call": 1000 * cpu / a.n,
            "startup_cpu_s": sum(startup_cpu), "ok": s.ok, "failed": s.failed}  # fmt: skip


def m_sequential(a) -> dict:
    """The naive loop: one blocking litellm.completion after another."""
    import litellm

    from tests.support.workload import workload

    _, trials = workload(a.n, MODEL, _params(a.api_base))
    kw = dict(api_base=a.api_base, api_key="sk-fake", timeout=120, max_retries=0)
    litellm.completion(model=MODEL, messages=[{"role": "user", "content": "warm-up"}], **kw)
    cpu0, t0 = time.process_time(), time.perf_counter()
    answered = 0
    for m in trials["messages"]:
        r = litellm.completion(model=MODEL, messages=json.loads(m), **kw)
        answered += bool(r.choices[0].message.content)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"n": a.n, "wall": wall, "cpu": cpu, "rate": a.n / wall, "answered": answered}


def m_cache(a) -> dict:
    """Re-run of an `n`-trial study whose answers are all in the response cache."""
    from llmexp.runner import run_study
    from llmexp.runner.cache import ResponseCache
    from tests.support.workload import workload

    tmp = Path(tempfile.mkdtemp(prefix="llmexp-bench-cache-"))
    study, trials = workload(a.n, MODEL, _params(a.api_base), name="cached")
    fill = {}
    if a.fill == "run":  # a real first run against the mock fills the cache
        t0 = time.perf_counter()
        first = run_study(study, trials, run_dir=tmp / "first", cache_dir=tmp / "cache", progress=False, concurrency=a.c)
        fill = {"first_run_wall": time.perf_counter() - t0, "first_run_ok": first.stats.ok}
    else:  # write the cache directly (same rows a run writes)
        cache = ResponseCache(tmp / "cache")
        cache.put_many([(k, MODEL, "yes", None, None, 20, 1, 0.0) for k in trials["cache_key"]])
        cache.close()
    cpu0, t0 = time.process_time(), time.perf_counter()
    res = run_study(study, trials, run_dir=tmp / "again", cache_dir=tmp / "cache", progress=False, concurrency=a.c)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return {"n": a.n, "wall": wall, "cpu": cpu, "cache_hits": res.stats.cache_hits, "ok": res.stats.ok, **fill}


def m_compile(a) -> dict:
    """compile_study on studies/demand_curve.study with replicates raised to reach ~n trials."""
    import llmexp
    from llmexp.compiler import compile_study

    study = llmexp.load(ROOT / "studies" / "demand_curve.study")
    base = len(compile_study(study))
    reps = max(1, round(a.n / base))
    study = study.with_models([m.model_copy(update={"replicates": reps}) for m in study.models])
    t0 = time.perf_counter()
    trials = compile_study(study)
    wall = time.perf_counter() - t0
    return {"trials": len(trials), "replicates": reps, "base_trials": base, "wall": wall, "rate": len(trials) / wall, "peak_rss_mb": _peak_rss_mb()}


def m_analysis(a) -> dict:
    """analyze() on a synthetic response table of ~n rows (peak RSS of this process)."""
    from llmexp.analysis import analyze
    from tests.support.synthetic_responses import Truth, make_responses, make_study

    # a fixed number of units (products), replicates scaled to reach ~n responses: the
    # analyses' cost grows with units x cells (one small model per unit), not with draws
    n_units = a.units
    probe = make_study(n_units=n_units)
    per_draw = len(make_responses(probe, Truth(draws=1), seed=0))
    draws = max(1, round(a.n / per_draw))
    study = make_study(n_units=n_units, analyses=tuple(a.analyses.split(",")))
    if a.path:  # the measuring process: load the table, then analyse it
        import pandas as pd

        responses = pd.read_parquet(a.path)
        rss_before = _peak_rss_mb()
        t0 = time.perf_counter()
        result = analyze(study, responses, figures=False, n_boot=a.n_boot)
        wall = time.perf_counter() - t0
        tables = {k: len(v) for k, v in getattr(result, "tables", {}).items()} if hasattr(result, "tables") else {}
        frame_mb = float(responses.memory_usage(deep=True).sum()) / 2**20
        peak = _peak_rss_mb()
        return {"rows": len(responses), "wall": wall, "rss_before_mb": rss_before, "peak_rss_mb": peak, "tables": tables, "frame_mb": frame_mb}
    # build the table here, analyse it in a fresh process (so its peak memory is the analysis')
    t0 = time.perf_counter()
    responses = make_responses(study, Truth(draws=draws), seed=0)
    make_s = time.perf_counter() - t0
    path = Path(tempfile.mkdtemp(prefix="llmexp-bench-an-")) / "responses.parquet"
    responses.to_parquet(path)
    n_rows = len(responses)
    del responses
    out = child("analysis", timeout=3600, n=a.n, units=a.units, analyses=a.analyses, n_boot=a.n_boot, path=str(path))
    path.unlink()
    return {
        "rows": n_rows, "units": n_units, "draws": draws, "analyses": a.analyses, "n_boot": a.n_boot,
        "make_s": make_s, "make_peak_rss_mb": _peak_rss_mb(), **out,
    }  # fmt: skip


def m_local(a) -> dict:
    """Seconds per binary trial of the embedded model, with prefix reuse (as shipped) or
    with the KV cache and row cache cleared before every call (`--cold`)."""
    import llmexp
    from llmexp.compiler import compile_study
    from llmexp.providers import local
    from llmexp.runner import run_study

    study = llmexp.load(ROOT / "studies" / "demand_quick.study")
    trials = compile_study(study)
    binary = trials[trials["answer"].map(lambda s: '"binary"' in (s if isinstance(s, str) else json.dumps(s)))]
    lm = local.LocalModel.get()  # load once, outside the timing
    if a.min_batch:  # the engine as it was before issue 14 (decode batches of >= 16 tokens)
        local.engine.MIN_BATCH = a.min_batch
    if a.cold:
        orig = local.provider.respond  # the module whose `respond` the litellm provider calls

        def cold_respond(lm_, *args, **kwargs):
            lm_.clear_cache()
            return orig(lm_, *args, **kwargs)

        local.provider.respond = cold_respond
    tmp = Path(tempfile.mkdtemp(prefix="llmexp-bench-local-"))
    run_study(study, binary.head(3), run_dir=tmp / "warm", use_cache=False, progress=False)  # warm-up
    sub = binary.iloc[3 : 3 + a.n]
    decoded0, reused0 = lm.decoded_tokens, lm.reused_tokens
    t0 = time.perf_counter()
    res = run_study(study, sub, run_dir=tmp / "run", use_cache=False, progress=False)
    wall = time.perf_counter() - t0
    return {"n": len(sub), "cold": a.cold, "min_batch": local.engine.MIN_BATCH, "wall": wall, "s_per_trial": wall / len(sub), "ok": res.stats.ok,
            "decoded_tokens": lm.decoded_tokens - decoded0, "reused_tokens": lm.reused_tokens - reused0, "threads": lm.n_threads}


CHILDREN = {
    "plain": m_plain, "llmexp": m_llmexp, "workers": m_workers, "sequential": m_sequential, "cache": m_cache,
    "compile": m_compile, "analysis": m_analysis, "local": m_local, "batch": m_batch,
}  # fmt: skip


# ====================================================================== driver


def child(kind: str, timeout: float = 1800, python: str | None = None, env: dict | None = None, **kw) -> dict:
    cmd = [python or sys.executable, __file__, "--child", kind]
    for k, v in kw.items():
        if v is True:
            cmd.append(f"--{k.replace('_', '-')}")
        elif v is not None and v is not False:
            cmd += [f"--{k.replace('_', '-')}", str(v)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-1500:], "process_wall": time.perf_counter() - t0}
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["process_wall"] = time.perf_counter() - t0
    return out


def edsl_run(python: str, api_base: str, n: int, c: int) -> dict:
    if not Path(python).exists():
        return {"error": f"no EDSL interpreter at {python} (see benchmarks/README.md to install it)"}
    proc = subprocess.run([python, str(ROOT / "benchmarks" / "edsl_bench.py"), "--api-base", api_base, "--n", str(n), "--concurrency", str(c)],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout)[-1500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> dict:
    from importlib import metadata

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for name in ("llmexp", "litellm", "openai", "httpx", "pandas", "numpy", "llama-cpp-python"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[name] = metadata.version(name)
    return {"nproc": os.cpu_count(), "cpu": cpu, "loadavg": os.getloadavg(), "python": platform.python_version(),
            "platform": platform.platform(), "versions": versions,
            "mem_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes (development)")
    ap.add_argument("--edsl-python", default=os.environ.get("EDSL_PYTHON", DEFAULT_EDSL_PYTHON))
    ap.add_argument("--only", default="", help="comma list of sections: throughput,workers,baselines,cache,batch,compile,analysis,local")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "latest.json")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--c", type=int, default=16, help=argparse.SUPPRESS)
    ap.add_argument("--api-base", default="", help=argparse.SUPPRESS)
    ap.add_argument("--fill", default="direct", help=argparse.SUPPRESS)
    ap.add_argument("--analyses", default="demand_curve,effects,leakage", help=argparse.SUPPRESS)
    ap.add_argument("--n-boot", type=int, default=200, help=argparse.SUPPRESS)
    ap.add_argument("--units", type=int, default=100, help=argparse.SUPPRESS)
    ap.add_argument("--path", default="", help=argparse.SUPPRESS)
    ap.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--min-batch", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        import shutil

        before = set(Path(tempfile.gettempdir()).glob("llmexp-bench-*"))
        try:
            print(json.dumps(CHILDREN[a.child](a)), flush=True)
        finally:  # the run directories and caches this child made
            for d in set(Path(tempfile.gettempdir()).glob("llmexp-bench-*")) - before:
                shutil.rmtree(d, ignore_errors=True)
        return 0

    from tests.support.fake_openai import ServerProcess

    q = a.quick
    only = set(filter(None, a.only.split(",")))

    def want(section: str) -> bool:
        return not only or section in only

    sizes = dict(
        tp_n=600 if q else 2000, repeat=2 if q else 3, seq_n=40 if q else 200, edsl_n=200 if q else 1000, cache_n=2000 if q else 10_000,
        compile_n=20_000 if q else 100_000, analysis_n=100_000 if q else 1_000_000, local_n=12 if q else 60,
        concurrency=(16, 64) if q else (16, 64, 256), batch_n=10_000 if q else 100_000,
    )  # fmt: skip
    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    res: dict = {"machine": machine(), "quick": q, "sizes": sizes, "latency_ms": LATENCY_MS, "started": started}
    print(f"machine: {json.dumps(res['machine'])}", flush=True)

    def log(name, out):
        print(f"  {name}: {json.dumps(out)[:400]}", flush=True)

    with ServerProcess(latency_ms=LATENCY_MS, lifetime=3600) as srv:
        if want("throughput"):
            # plain and llmexp alternate, `repeat` times each: other load on the machine
            # comes and goes, so each side keeps its best rate and its lowest CPU per call
            res["plain"], res["llmexp"], res["throughput_runs"] = {}, {}, {}
            for c in sizes["concurrency"]:
                runs = {"plain": [], "llmexp": []}
                for r in range(sizes["repeat"]):
                    for side in ("plain", "llmexp"):
                        out = child(side, n=sizes["tp_n"], c=c, api_base=srv.api_base)
                        log(f"{side} c={c} #{r + 1}", out)
                        runs[side].append(out)
                res["throughput_runs"][c] = runs
                for side in ("plain", "llmexp"):
                    good = [o for o in runs[side] if "error" not in o]
                    if not good:
                        res[side][c] = runs[side][-1]
                        continue
                    best = dict(max(good, key=lambda o: o["rate"]))
                    best["cpu_ms_per_call"] = min(o["cpu_ms_per_call"] for o in good)
                    best["rates"] = [round(o["rate"], 1) for o in good]
                    res[side][c] = best
        if want("workers"):
            res["workers"] = workers_section(srv, q)
        if want("baselines"):
            res["sequential"] = child("sequential", n=sizes["seq_n"], api_base=srv.api_base)
            log("sequential", res["sequential"])
            res["edsl"] = {}
            for c in sizes["concurrency"]:
                res["edsl"][c] = edsl_run(a.edsl_python, srv.api_base, sizes["edsl_n"], c)
                log(f"edsl c={c}", res["edsl"][c])
    if want("cache"):
        with ServerProcess(latency_ms=0, lifetime=1800) as fast:
            res["cache"] = child("cache", n=sizes["cache_n"], c=64, api_base=fast.api_base, fill="direct" if q else "run")
        log("cache", res["cache"])
    if want("batch"):  # the batch path against the fake batch server (benchmarks/bench_batch.py)
        with ServerProcess(latency_ms=0, batch_after=2.0, lifetime=3600) as fast:
            res["batch"] = child("batch", n=sizes["batch_n"], api_base=fast.api_base)
            res["batch"]["server"] = fast.stats()["batches"]
        log("batch", res["batch"])
    if want("compile"):
        res["compile"] = child("compile", n=sizes["compile_n"])
        log("compile", res["compile"])
    if want("analysis"):  # streamed from parquet, 1M and 10M rows: benchmarks/analysis_scale.py
        import analysis_scale

        res["analysis_scale"] = {}
        for rows in (100_000,) if q else (1_000_000, 10_000_000):
            res["analysis_scale"][rows] = analysis_scale.measure(rows, in_memory=rows <= 1_000_000)
            log(f"analysis {rows:,}", res["analysis_scale"][rows])
    if want("local"):
        res["local_warm"] = child("local", n=sizes["local_n"])
        log("local (prefix reuse)", res["local_warm"])
        res["local_before"] = child("local", n=sizes["local_n"], min_batch=16)
        log("local (prefix reuse, before issue 14: batches >= 16 tokens)", res["local_before"])
        res["local_cold"] = child("local", n=sizes["local_n"], cold=True)
        log("local (cold)", res["local_cold"])
        res["local_1thread"] = child("local", n=sizes["local_n"], env={"LLMEXP_LOCAL_THREADS": "1"})
        log("local (prefix reuse, 1 thread)", res["local_1thread"])
    res["loadavg_end"] = os.getloadavg()
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    table = render(res)
    print()
    print(table)
    a.out.with_suffix(".md").write_text(table + "\n")
    return 0


# ====================================================================== the table


def _f(x, fmt="{:.1f}"):
    return "n/a" if x is None else fmt.format(x)


def _proc_cpu(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def workers_section(srv, quick: bool) -> dict:
    """Issue 14: plain litellm in one process vs `run_study(workers=cores)`, alternating, at
    each concurrency (each side keeps its best rate), with the fake server's CPU per call:
    on one machine the server, llmexp's main process and its workers share the cores."""
    n, repeat, cores = (1000, 2, os.cpu_count() or 1) if quick else (5000, 3, os.cpu_count() or 1)
    out: dict = {"workers": cores, "n": n, "plain": {}, "llmexp": {}, "runs": {}}
    for c in (16, 64) if quick else (16, 64, 256):
        runs: dict = {"plain": [], "llmexp": []}
        for r in range(repeat):
            for side in ("plain", "llmexp"):
                before = _proc_cpu(srv.proc.pid)
                kw = {"workers": cores} if side == "llmexp" else {}
                o = child("workers" if side == "llmexp" else "plain", n=n, c=c, api_base=srv.api_base, **kw)
                o["server_cpu_ms_per_call"] = 1000 * (_proc_cpu(srv.proc.pid) - before) / (n + min(c, 32))
                print(f"  {side} c={c} #{r + 1}{' workers=' + str(cores) if kw else ''}: {json.dumps(o)[:300]}", flush=True)
                runs[side].append(o)
        out["runs"][c] = runs
        for side in ("plain", "llmexp"):
            good = [o for o in runs[side] if "rate" in o]
            out[side][c] = dict(max(good, key=lambda o: o["rate"])) if good else runs[side][-1]
            out[side][c]["rates"] = [round(o["rate"], 1) for o in runs[side] if "rate" in o]
    return out


def _workers_rows(res: dict) -> list[str]:
    """The table rows of `workers_section`."""
    w = res.get("workers")
    if not w:
        return []
    lat, cores = res["latency_ms"] / 1000.0, w["workers"]
    ceiling = max((p.get("rate", 0) for p in w["plain"].values()), default=0)
    lines = []
    for c in sorted(w["llmexp"], key=int):
        ours, p = w["llmexp"][c], w["plain"].get(c, {})
        if "rate" not in ours or "rate" not in p:
            lines.append(f"| throughput c={c}, --workers {cores} | error: {(ours.get('error') or p.get('error') or '')[-200:]} | >= 90% | NO |")
            continue
        limit = min(int(c) / lat, cores * ceiling)
        frac = ours["rate"] / limit
        lines.append(
            f"| throughput c={c}, --workers {cores} ({w['n']} trials, best of {len(ours['rates'])}) | {ours['rate']:.0f}/s = "
            f"{100 * frac:.0f}% of physical limit {limit:.0f}/s (min(C/latency {int(c) / lat:.0f}/s, {cores} x plain-litellm ceiling "
            f"{ceiling:.0f}/s)); {ours['rate'] / p['rate']:.2f}x plain litellm at c={c} ({p['rate']:.0f}/s); pool start-up "
            f"{ours['startup']:.1f} s (rate with it {ours['rate_incl_startup']:.0f}/s); "
            f"CPU per call (start-up excluded): llmexp {ours['cpu_ms_per_call']:.2f} ms "
            f"(main process {ours['main_cpu_ms_per_call']:.2f}), plain {p['cpu_ms_per_call']:.2f} ms, fake server "
            f"{ours['server_cpu_ms_per_call']:.2f} ms, so {cores} cores allow at most "
            f"{1000 * cores / (ours['cpu_ms_per_call'] + ours['server_cpu_ms_per_call']):.0f}/s; "
            f"runs: llmexp {ours['rates']}, plain {p['rates']} | >= 90% | {'yes' if frac >= 0.9 else 'NO'} |"
        )
    top = max(w["llmexp"], key=int)
    ours, p = w["llmexp"][top], w["plain"].get(top, {})
    if "rate" in ours and "rate" in p:
        ratio = ours["rate"] / p["rate"]
        lines.append(f"| --workers {cores} vs plain litellm in one process, c={top} | {ratio:.2f}x | >= 1.7x | {'yes' if ratio >= 1.7 else 'NO'} |")
    return lines


def render(res: dict) -> str:
    m = res["machine"]
    lines = [
        f"Machine: {m['nproc']} cores ({m['cpu']}), {m['mem_gb']} GB, Python {m['python']}, "
        + ", ".join(f"{k} {v}" for k, v in m["versions"].items())
        + f"; mock latency {res['latency_ms']:.0f} ms{' (--quick)' if res['quick'] else ''}"
        + (
            f"; load average {m['loadavg'][0]:.1f} at start, {res['loadavg_end'][0]:.1f} at end"
            if m.get("loadavg") and res.get("loadavg_end")
            else ""
        ),
        "",
        "| measure | result | target | met |",
        "| --- | --- | --- | --- |",
    ]

    def row(name, result, target, met):
        lines.append(f"| {name} | {result} | {target} | {'yes' if met else ('NO' if met is not None else '-')} |")

    lat = res["latency_ms"] / 1000.0
    plain, lx = res.get("plain") or {}, res.get("llmexp") or {}
    ceiling = max((p.get("rate", 0) for p in plain.values()), default=0) or None
    for c in sorted(lx, key=int):
        p, ours = plain.get(c, {}), lx[c]
        if "error" in ours or "error" in p:
            row(f"throughput c={c}", f"error: {(ours.get('error') or p.get('error'))[-200:]}", "", False)
            continue
        physical = int(c) / lat
        practical = min(physical, ceiling)
        frac = ours["rate"] / practical
        reps = f", best of {len(ours.get('rates') or [1])}" if ours.get("rates") else ""
        row(f"throughput c={c} ({ours['n']} trials{reps})",
            f"{ours['rate']:.0f}/s = {100 * frac:.0f}% of practical limit {practical:.0f}/s "
            f"(physical {physical:.0f}/s, plain-litellm ceiling {ceiling:.0f}/s); "
            f"{100 * ours['rate'] / p['rate']:.0f}% of plain litellm at c={c} ({p['rate']:.0f}/s); "
            f"runs: llmexp {ours.get('rates', '')}, plain {p.get('rates', '')}",
            ">= 90%", frac >= 0.9)  # fmt: skip
    for c in sorted(lx, key=int):
        p, ours = plain.get(c, {}), lx[c]
        if "error" in ours or "error" in p:
            continue
        own = ours["cpu_ms_per_call"] - p["cpu_ms_per_call"]
        row(f"llmexp own CPU per call, c={c}",
            f"{own:.2f} ms (llmexp {ours['cpu_ms_per_call']:.2f} ms - plain litellm {p['cpu_ms_per_call']:.2f} ms)",
            "<= 0.5 ms", own <= 0.5)  # fmt: skip
    seq = res.get("sequential")
    if seq and "error" not in seq:
        for c in sorted(lx, key=int):
            if "rate" in lx[c]:
                row(f"vs naive sequential loop, c={c}", f"{lx[c]['rate'] / seq['rate']:.1f}x ({seq['rate']:.1f}/s sequential)", "-", None)
    for c, e in sorted((res.get("edsl") or {}).items(), key=lambda kv: int(kv[0])):
        if "error" in e:
            row(f"vs EDSL, c={c}", "EDSL failed: " + e["error"].strip().splitlines()[-1][:200], ">= 5x", False)
        elif c in lx and "rate" in lx[c]:
            ratio = lx[c]["rate"] / e["rate"]
            cpu_ratio = (1000 * e["cpu"] / e["n"]) / lx[c]["cpu_ms_per_call"]
            row(f"vs EDSL {e.get('edsl', '')}, c={c} ({e['n']} yes/no)",
                f"{ratio:.1f}x the rate (EDSL {e['rate']:.0f}/s, {e['answered']}/{e['n']} answered); "
                f"EDSL CPU per call {1000 * e['cpu'] / e['n']:.1f} ms = {cpu_ratio:.1f}x llmexp's",
                ">= 5x", ratio >= 5)  # fmt: skip
    ch = res.get("cache")
    if ch:
        if "error" in ch:
            row("cached re-run", "error: " + ch["error"][-200:], "<= 5 s", False)
        else:
            first = f", first run {ch['first_run_wall']:.0f} s" if "first_run_wall" in ch else ""
            row(f"cached re-run of {ch['n']:,} trials",
                f"{ch['wall']:.2f} s in run_study ({ch['process_wall']:.1f} s for the process incl. imports{first}); {ch['cache_hits']:,} hits",
                "<= 5 s", ch["wall"] <= 5 * ch["n"] / 10_000)  # fmt: skip
    batch_row(res, row)
    co = res.get("compile")
    if co:
        if "error" in co:
            row("compile", "error: " + co["error"][-200:], "<= 10 s", False)
        else:
            row(f"compile {co['trials']:,} trials", f"{co['wall']:.2f} s ({co['rate']:,.0f} trials/s, peak RSS {co['peak_rss_mb']:.0f} MB)",
                "<= 10 s", co["wall"] <= 10 * co["trials"] / 100_000)  # fmt: skip
    an = res.get("analysis")
    if an:
        if "error" in an:
            row("analysis", "error: " + an["error"][-300:], "<= 30 s, <= 2 GB", False)
        else:
            row(f"analysis of {an['rows']:,} responses ({an['units']} units x {an['draws']} draws; {an['analyses']}; {an['n_boot']} bootstrap draws)",
                f"{an['wall']:.1f} s, peak RSS {an['peak_rss_mb']:.0f} MB "
                f"(process with the table loaded: {an['rss_before_mb']:.0f} MB; the frame itself {an.get('frame_mb', 0):.0f} MB)",
                "<= 30 s, <= 2 GB", an["wall"] <= 30 and an["peak_rss_mb"] <= 2048)  # fmt: skip
    if res.get("analysis_scale"):
        import analysis_scale

        for measured in analysis_scale.rows_for_table(res["analysis_scale"]):
            row(*measured)
    for key, label in (("local_warm", "with prefix reuse"), ("local_before", "with prefix reuse, before issue 14 (batches >= 16)"),
                       ("local_cold", "without prefix reuse"), ("local_1thread", "with prefix reuse, 1 thread")):
        lo = res.get(key)
        if lo:
            if "error" in lo:
                row(f"local model {label}", "error: " + lo["error"][-200:], "<= 0.15 s", False)
            else:
                prompt_tokens = lo["reused_tokens"] + lo["decoded_tokens"]
                row(f"local model, binary trial, {label}",
                    f"{lo['s_per_trial']:.3f} s/trial ({lo['n']} trials, {lo['threads']} threads, "
                    f"{lo['reused_tokens']} of {prompt_tokens} prompt tokens reused)",
                    "<= 0.15 s" if key not in ("local_cold", "local_before") else "-",
                    lo["s_per_trial"] <= 0.15 if key not in ("local_cold", "local_before") else None)  # fmt: skip
    lines += _workers_rows(res)
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
