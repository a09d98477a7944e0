"""CLI commands of the run stage: `llmexp run FILE` and `llmexp results RUN_DIR`.

`llmexp run` exits 0 when the run is complete, 3 when it is partial, 4 when it stopped
(`llmexp/runner/status.py` defines them), 2 when it was refused before any call.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import typer

from llmexp.errors import RunError
from llmexp.runner.status import EXIT_CODES, STOPPED, RunStopped


def _echo(text: str) -> None:
    typer.echo(text)


BATCH_HELP = (
    "send the pending trials as provider batches (OpenAI-compatible models, about half price, results within "
    "24 h): submitted, polled and stored; a killed run resumes without submitting a batch twice (see docs/scale.md)"
)

MODEL_HELP = (
    "run this model instead of the study's (repeatable); a model the study does not declare keeps the study's "
    "temperature, max_tokens and other sampling params and its replicates (printed; override with --param, --replicates)"
)
OUT_HELP = (
    "run directory (default runs/<study>-<hash>); an existing run is resumed, or extended in place when the study "
    "only adds trials (more replicates, a model, a design): stored answers are reused, only new trials are called"
)
LIMIT_HELP = "only N trials, sampled across every model x design x cell (spread over the levels, seeded by the study's seed)"
WORKERS_HELP = (
    "processes making the litellm calls (0: one per core); past ~300 calls/s one process is the limit "
    "(see docs/scale.md); the store, cache and rate limits stay in this process"
)
MAX_COST_HELP = (
    "dollars this invocation may spend: no call starts that could exceed it (in-flight calls are reserved at their estimated cost)"
)
ROUTER_HELP = "litellm Router config (JSON/YAML): spread the calls of the models it names over its deployments (see docs/scale.md)"
ALLOW_ENDPOINT_HELP = (
    "a host (or host:port) the study's api_base may send calls to, with your API key (repeatable); loopback is always allowed"
)
PILOT_HELP = (
    "a pilot of N trials sampled like --limit (every design, levels spread from lowest to highest), recorded as a "
    "pilot in the manifest; running the full study later into the same --out reuses its answers"
)


def run_command(
    file: Path = typer.Argument(..., help="the .study file"),
    model: list[str] | None = typer.Option(None, "--model", "-m", help=MODEL_HELP),
    out: Path | None = typer.Option(None, "--out", "-o", help=OUT_HELP),
    limit: int | None = typer.Option(None, "--limit", help=LIMIT_HELP),
    pilot: int | None = typer.Option(None, "--pilot", help=PILOT_HELP),
    concurrency: int = typer.Option(8, "--concurrency", help="calls in flight at once"),
    workers: int = typer.Option(1, "--workers", help=WORKERS_HELP),
    rpm: float | None = typer.Option(None, "--rpm", help="requests per minute per model"),
    tpm: float | None = typer.Option(None, "--tpm", help="tokens per minute per model"),
    dry_run: bool = typer.Option(False, "--dry-run", help="show the plan and cost estimate; make no calls"),
    max_cost: float | None = typer.Option(None, "--max-cost", help=MAX_COST_HELP),
    replicates: int | None = typer.Option(None, "--replicates", help="override every model's replicates"),
    param: list[str] | None = typer.Option(
        None, "--param", help="set a model param for every model run, name=value, e.g. --param temperature=0 (repeatable)"
    ),
    no_cache: bool = typer.Option(False, "--no-cache", help="do not read or write the shared response cache"),
    cache_dir: Path | None = typer.Option(None, "--cache-dir", help="response cache directory (default $LLMEXP_CACHE_DIR or ~/.cache/llmexp)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="no progress display"),
    router: Path | None = typer.Option(None, "--router", help=ROUTER_HELP),
    allow_endpoint: list[str] | None = typer.Option(None, "--allow-endpoint", help=ALLOW_ENDPOINT_HELP),
    trust_endpoints: bool = typer.Option(False, "--trust-endpoints", help="let the study send calls (and your API keys) to any api_base it names"),
    batch: bool = typer.Option(False, "--batch", help=BATCH_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help="with --batch: submit and exit (status stopped); run the same command later to collect"),
    poll_seconds: float = typer.Option(30.0, "--poll-seconds", help="with --batch: seconds between polls of the open batches"),
) -> None:
    """Run a study's trials through the models; prints a summary and the results path.

    Exit status: 0 complete (every trial answered, at most 5% invalid), 3 partial (some
    trials failed, or over 5% invalid: run the same command to retry the failed ones),
    4 stopped (interrupted by SIGINT/SIGTERM, --max-cost reached, a model stopped by a
    permanent failure, or the run store could not be written; run the same command to
    resume), 2 refused (a study error, a run directory in use by another run, an api_base
    that is not loopback and not allowed with --allow-endpoint).

    Pilot, then the full study: `--pilot 40 -o runs/x` asks 40 trials spread over every
    design and cell; the same command without --pilot then asks only the rest.

    Extend a finished run: add replicates, a model or a design to the study file and run
    it again with the same -o: only the new trials are called, the manifest records the
    extension, and results/analyze read all the answers. A change to what was already
    asked (a prompt, a level, a param) is refused, naming what differs.
    """
    from llmexp.compiler import compile_study
    from llmexp.runner.results import RunPlan
    from llmexp.runner.runner import run_study

    study = _study(file, model, replicates, param)
    trials = compile_study(study)
    try:
        result = run_study(
            study,
            trials=trials,
            run_dir=out,
            limit=limit,
            concurrency=concurrency,
            workers=workers,
            dry_run=dry_run,
            max_cost=max_cost,
            cache_dir=cache_dir,
            use_cache=not no_cache,
            progress=not quiet,
            rpm=rpm,
            tpm=tpm,
            command=sys.argv,
            router=router,
            allow_endpoints=True if trust_endpoints else list(allow_endpoint or []),
            pilot=pilot,
            batch={"wait": not no_wait, "poll": poll_seconds} if batch else None,
        )
    except RunStopped as exc:  # stopped: what was saved, then why (one line on stderr)
        if exc.results is not None:
            _summary_or_note(exc.results)
        typer.echo(str(exc), err=True)
        raise typer.Exit(exc.status.exit_code if exc.status is not None else EXIT_CODES[STOPPED]) from None
    if isinstance(result, RunPlan):  # --dry-run: the plan, no calls made
        _echo(str(result))
        return
    _finished(result)


def _finished(result) -> None:
    """A run that ended on its own: the summary, where the results are, and the exit status
    that tells complete (0) from partial (3) and stopped by --max-cost (4)."""
    _summary_or_note(result)
    if result.budget_stop:
        _echo(result.budget_stop)
    _echo(f"results: {result.run_dir}")
    status = result.run_status()
    if status.exit_code:
        raise typer.Exit(status.exit_code)


def _study(file: Path, model: list[str] | None, replicates: int | None, param: list[str] | None = None):
    """The study of `file`, with the --model, --replicates and --param overrides applied; a
    model the study does not declare keeps the study's settings, and the user is told which."""
    from llmexp.cli.lang import check_file
    from llmexp.runner.override import override_models, parse_param

    params = dict(parse_param(item) for item in param or [])
    if replicates is not None and replicates < 1:
        raise RunError("--replicates must be at least 1")
    study = check_file(file)[0]
    override = override_models(study, model, replicates, params)
    note = override.note()
    if note:
        typer.echo(note, err=True)
    return study.with_models(override.models)


def _summary_or_note(results) -> None:
    """The run's summary; a store that cannot be read back (a full disk) is noted instead."""
    try:
        _echo(str(results.summary()))
    except (RunError, OSError, sqlite3.Error) as exc:
        typer.echo(f"(the summary could not be read: {exc})", err=True)


def results_command(
    run_dir: Path = typer.Argument(..., help="a run directory written by `llmexp run`"),
    export: Path | None = typer.Option(
        None,
        "--export",
        help="write the response table to out.csv, out.parquet or out.jsonl (CSV text cells a spreadsheet would run as formulas get a leading ')",
    ),
    examples: int = typer.Option(5, "--examples", help="how many invalid answers to show"),
    archive: Path | None = typer.Option(
        None, "--archive", help="write a compact read-only copy (manifest + parquet) to this folder; analyze/report read it"
    ),
    check: bool = typer.Option(
        False, "--check", help="exit with the run's status, for scripts: 0 complete, 3 partial, 4 stopped, 5 running"
    ),
) -> None:
    """Summarise a run: its status first (complete, partial, stopped, or running while a
    process holds it), then calls by status/model/design, tokens, cost, invalid answers.

    Exit status 0 (the summary was printed) unless --check: then the status `llmexp run`
    ended with (0 complete, 3 partial, 4 stopped), or 5 while another process runs it."""
    from llmexp.runner.results import open_run

    results = open_run(run_dir)
    _echo(str(results.summary(examples=examples)))
    if export is not None:
        path = results.export(export)
        _echo(f"exported {path}")
    if archive is not None:
        path = results.archive(archive)
        _echo(f"archived {run_dir} to {path} (read it with llmexp results/analyze/report)")
    if check and (code := results.run_status().exit_code):
        raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
    app.command("results")(results_command)
