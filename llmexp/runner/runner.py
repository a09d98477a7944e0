"""`run_study`: the trial table in, the run directory (responses + manifest) out.

A run is a short sequence of named steps, each in its own module:

    plan.check_arguments, plan.select_trials   which trials, in which order (plan.py)
    endpoints.check_endpoints                  no API key sent to a host the user did not allow
    plan.dry_run_plan                          the plan without calls (dry_run=True)
    models.preflight                           fail before any call (models.py)
    session.open_session                       lock, run directory, manifest, stored trials
    calls.prepare_calls                        trial rows -> Calls (calls.py)
    replay.replay                              answers from the shared cache (replay.py)
    _execute                                   the scheduler under a progress display, with
                                               SIGINT/SIGTERM stopping it gracefully
    Session.finish, _results                   the manifest's status (status.py), RunResults

How a run ends is one of `status.py`'s three statuses: complete and partial runs return
their `RunResults` (`.status`); a run stopped by --max-cost returns them too; any other
stop (a signal, a model stopped by a permanent failure, a store that cannot be written)
raises `RunStopped` carrying them, after everything that could be saved was saved.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmexp.runner.batch import batch_options, batch_session
from llmexp.runner.cache import ResponseCache
from llmexp.runner.calls import Call, prepare_calls
from llmexp.runner.cost import model_price
from llmexp.runner.endpoints import check_endpoints
from llmexp.runner.limits import RateLimiter
from llmexp.runner.models import preflight, provider
from llmexp.runner.plan import DEFAULT_CONCURRENCY, Selection, check_arguments, dry_run_plan, select_trials
from llmexp.runner.progress import ProgressDisplay
from llmexp.runner.redaction import scrubber, secret_values
from llmexp.runner.replay import replay
from llmexp.runner.results import RunPlan, RunResults
from llmexp.runner.retry import RetryPolicy
from llmexp.runner.router import load_router_config, make_router, routed_models, router_secrets
from llmexp.runner.sampling import pilot_limit
from llmexp.runner.scheduler import ModelState, Scheduler, Stats
from llmexp.runner.sequences import ready_steps, waiting_note
from llmexp.runner.session import Options, Session, default_run_dir, existing_manifest, open_session, run_hash
from llmexp.runner.status import STOPPED, RunStatus, RunStopped
from llmexp.runner.workers import resolve_workers, worker_pool
from llmexp.runner.writer import Writer
from llmexp.schema import json_cell as loads

__all__ = ["run_study", "default_run_dir", "run_hash", "DEFAULT_CONCURRENCY"]

INTERRUPT_GRACE = 5.0  # seconds calls in flight get to finish after SIGINT/SIGTERM (a second signal: none)


def run_study(
    study,
    trials=None,
    run_dir: str | Path | None = None,
    models: Sequence | None = None,
    limit: int | None = None,
    concurrency: int = DEFAULT_CONCURRENCY,
    dry_run: bool = False,
    max_cost: float | None = None,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    *,
    use_cache: bool = True,
    rpm: float | None = None,
    tpm: float | None = None,
    retry: RetryPolicy | None = None,
    command: Sequence[str] | None = None,
    router: str | Path | dict | None = None,
    allow_endpoints: Sequence[str] | bool | None = None,
    pilot: int | None = None,
    batch: bool | dict | None = None,
    workers: int = 1,
) -> RunResults | RunPlan:
    """Run a study's trials through litellm into a run directory; resumable.

    study: a `llmexp.spec.Study`. trials: its trial table (DataFrame or row dicts); compiled
    with `llmexp.compiler.compile_study` when None. run_dir: default
    `runs/<study-name>-<hash>`; an existing run of the same study is resumed (finished
    trials are never called again; failed ones are retried). models: override the study's
    models (names or ModelSpec). limit: only the first N trials in a deterministic order
    spread across models and designs. max_cost: dollars; no call starts that could exceed
    it. cache_dir / use_cache: the shared response cache. rpm / tpm: rate limits applied to
    every model (else each ModelSpec's). dry_run: no calls, returns a `RunPlan` (after the
    same endpoint and run-directory checks as a run). router: a litellm Router config (dict
    or JSON/YAML file, see `llmexp.runner.router`): calls of the models it names go through
    `Router.acompletion` over its deployments. allow_endpoints: hosts (or host:port) a
    study's `api_base`/`base_url` may point to besides loopback, or True to trust any: a
    study would otherwise send the user's API keys wherever it says. pilot: like limit (N
    trials, stratified across models x designs x cells), recorded in the manifest as a pilot;
    the full study run later into the same directory reuses its answers. batch: True (or a
    dict of `llmexp.runner.batch.BatchOptions`: wait, poll, rounds) sends the pending trials
    as provider batches (`runner/batch.py`) instead of live calls. workers: processes making
    the litellm calls (`runner/workers.py`; 0: one per core; 1, the default: this process).

    Returns `RunResults` (`.status`: "complete", "partial", or "stopped" by --max-cost).
    Raises `RunStopped` (a RunError, with `.results`) when the run stopped otherwise: a
    model stopped by a permanent failure (e.g. a missing API key), SIGINT/SIGTERM, or a
    run store that cannot be written; everything that could be saved is saved.
    """
    check_arguments(study, concurrency, limit, max_cost)
    n_workers = resolve_workers(workers)  # before a dry run too: it promises what a real run does
    retry = retry or RetryPolicy()
    selection = select_trials(study, trials, models, pilot_limit(pilot, limit))
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(selection.study)
    check_endpoints(_params_by_model(selection), allow_endpoints)
    if dry_run:
        existing_manifest(run_dir, selection.study, {r["trial_id"] for r in selection.rows}, selection.table)
        return dry_run_plan(selection, run_dir)

    router_config = load_router_config(router)
    routed = frozenset(routed_models(router_config) & set(selection.model_names))
    first_params = _first_params(selection)
    preflight([m for m in selection.model_names if m not in routed], first_params)
    batch_opts = batch_options(batch, first_params, routed) if batch else None
    scrub = _scrub_for(selection, router_config)
    options = Options(limit, max_cost, int(concurrency), bool(use_cache), rpm, tpm, command, pilot=pilot, workers=n_workers)
    with _sigterm_as_interrupt():
        session = open_session(run_dir, selection, options, routed, router_config, scrub)
        end = _End(stats=Stats())
        try:
            if batch_opts is not None:  # provider batch APIs instead of live calls
                batch_session(session, selection, options, retry, scrub, progress, cache_dir, end, batch_opts, _run_coro)
            else:
                _run_session(session, selection, options, retry, scrub, progress, router_config, routed, cache_dir, end)
        finally:
            session.close()
    return _results(session, end)


@dataclass
class _End:
    """How the session went: its stats, scheduler, and why it stopped early (if it did)."""

    stats: Stats
    sched: Scheduler | None = None
    interrupted: str | None = None  # a KeyboardInterrupt (or SIGTERM) outside the event loop
    store_error: BaseException | None = None  # the cache replay could not write the store
    status: RunStatus = field(default_factory=lambda: RunStatus(STOPPED))
    stopped: dict = field(default_factory=dict)  # model -> why it was stopped
    waiting: int = 0  # later questions of sequences not asked: the question before has no answer

    def reason(self) -> str | None:
        """Why the session stopped before making all its calls (None: it did not)."""
        sched = self.sched
        reasons = []
        if self.store_error is not None:
            reasons.append(store_failure(self.store_error))
        if sched is not None and sched.stop_reason:
            reasons.append(sched.stop_reason)
        elif self.interrupted:
            reasons.append(self.interrupted)
        reasons += list(self.stopped.values())
        if sched is not None and sched.budget_stop:
            reasons.append(sched.budget_stop)
        return "; ".join(reasons) or None


def store_failure(exc: BaseException) -> str:
    """What a store write error means, in one line."""
    text = str(exc).strip()
    detail = getattr(exc, "strerror", None) or (text.splitlines()[0] if text else type(exc).__name__)
    return f"the run store could not be written ({detail})"


def _run_session(
    session: Session, selection: Selection, options: Options, retry: RetryPolicy, scrub: Callable[[str], str],
    progress: bool, router_config: dict | None, routed: frozenset, cache_dir: str | Path | None, end: _End,
) -> None:  # fmt: skip
    """Prepare the calls, replay cached answers, make the rest, and, however that ends
    (even interrupted), record in the manifest how the session ended."""
    cache = None
    states: dict[str, ModelState] = {}
    try:
        # a later question of a sequence is asked once the one before it is answered: one
        # round of calls per step (sequences.py); a study without sequences has one round
        rows, waiting = ready_steps(session.pending(selection), session.store)
        end.stats.total = len(rows) + len(waiting)
        states = _model_states(selection, options.rpm, options.tpm, routed, router_config)
        while rows:
            calls = prepare_calls(rows, selection.study, selection.study.seed, retry, selection.spec_params, routed)
            writer = Writer(session.store, cache)
            if cache is None and options.use_cache and any(c.cacheable for c in calls):  # hits: served at once, cost 0
                cache = writer.cache = ResponseCache(cache_dir)
            if cache is not None:
                calls = replay(calls, cache, session.store, end.stats, scrub)
            end.sched = Scheduler(
                calls, states, writer, concurrency=options.concurrency, retry=retry, max_cost=options.max_cost,
                spent=end.stats.cost, stats=end.stats, scrub=scrub, cache=cache,
            )  # fmt: skip
            _run_coro(_execute(end.sched, calls, options, progress))
            if end.sched.stop_reason or end.sched.budget_stop:
                break
            rows, waiting = ready_steps(waiting, session.store)
        end.waiting = len(waiting)
    except (sqlite3.Error, OSError) as exc:  # the replay's store writes (the writer's are caught there)
        end.store_error = exc
    except KeyboardInterrupt:
        end.interrupted = "interrupted"
    finally:
        if cache is not None:
            cache.close()
        end.stopped = {n: s.stopped for n, s in states.items() if s.stopped}
        details: dict[str, Any] = {"stopped": end.stopped or None, "budget_stop": end.sched.budget_stop if end.sched else None}
        details["unsaved"] = end.stats.unsaved or None
        details["sequence_waiting"] = waiting_note(end.waiting) if end.waiting else None
        end.status = session.finish({r["trial_id"] for r in selection.rows}, end.stats.done, end.reason(), details)


def _params_by_model(selection: Selection) -> dict[str, list[dict]]:
    """Every distinct params dict each model is called with (study and trial table)."""
    out: dict[str, dict[str, dict]] = {}
    for name, params in selection.spec_params.items():
        out.setdefault(name, {})[repr(sorted(params.items()))] = params
    seen: set = set()
    for r in selection.rows:
        key = (r["model"], r.get("params"))
        if key in seen:
            continue
        seen.add(key)
        p = loads(r.get("params"))
        if isinstance(p, dict):
            out.setdefault(r["model"], {})[repr(sorted(p.items()))] = p
    return {m: list(v.values()) for m, v in out.items()}


def _first_params(selection: Selection) -> dict[str, dict]:
    """Each model's params as its first trial gives them (else the study's): what the
    preflight checks (an api_key param, an api_base)."""
    first: dict[str, dict] = {}
    for r in selection.rows:
        if r["model"] not in first:
            p = loads(r.get("params"))
            first[r["model"]] = p if isinstance(p, dict) and p else selection.spec_params.get(r["model"], {})
    return first


def _scrub_for(selection: Selection, router_config: dict | None) -> Callable[[str], str]:
    """The scrubber of every secret this run knows (params, environment, router file)."""
    all_params = [dict(loads(r.get("params")) or {}) for r in selection.rows[:1000]] + list(selection.spec_params.values())
    return scrubber(secret_values(all_params, router_secrets(router_config)))


def _model_states(selection: Selection, rpm: float | None, tpm: float | None, routed: frozenset, router_config: dict | None) -> dict[str, ModelState]:
    """Per model: rate limits, price, concurrency cap and (when routed) the Router."""
    router_obj = make_router(router_config) if routed and router_config is not None else None
    states = {}
    for name in selection.model_names:
        spec = next((m for m in selection.study.models if m.name == name), None)
        price = model_price(name, selection.spec_params.get(name) or {})
        states[name] = ModelState(
            name=name,
            max_concurrency=provider(name).concurrency_cap,
            limiter=RateLimiter(rpm or (spec.rpm if spec else None), tpm or (spec.tpm if spec else None)),
            price_in=price.input,
            price_out=price.output,
            router=router_obj if name in routed else None,
        )
    return states


def _budget_note(calls: list[Call], max_cost: float | None) -> str | None:
    if max_cost is None:
        return None
    est = sum(c.est_cost for c in calls)
    if est > max_cost:
        return f"note: estimated cost ${est:.4f} exceeds --max-cost ${max_cost:.4f}; the run stops before exceeding it"
    return None


async def _execute(sched: Scheduler, calls: list[Call], options: Options, progress: bool) -> None:
    """Drive the calls through the scheduler under a progress display; a store write error
    or SIGINT/SIGTERM stops it from starting calls at once."""
    async with ProgressDisplay(sched.stats, enabled=progress) as display:
        sched.on_message = sched.queue.on_message = display.message
        note = _budget_note(calls, options.max_cost)
        if note:
            display.message(note)

        def on_store_error(exc: BaseException) -> None:
            sched.stop(store_failure(exc))
            display.message(f"stopping: {store_failure(exc)}; no new calls start, the calls in flight are finishing")

        sched.writer.on_error = on_store_error
        with _signals(sched, display.message):
            async with worker_pool(options.workers, calls, sched.models) as sched.pool:
                await sched.run()


def _on_signal(sched: Scheduler, signum: int, say: Callable[[str], None]) -> None:
    name = signal.Signals(signum).name
    if sched.stop_reason and sched.stop_reason.startswith("interrupted"):
        sched.stop(sched.stop_reason, grace=0)  # a second signal: stop now
        say(f"{name} again: stopping now (calls in flight are asked again on resume)")
        return
    sched.stop(f"interrupted by {name}", grace=INTERRUPT_GRACE)
    say(f"{name}: no new calls start; saving the calls in flight (up to {INTERRUPT_GRACE:g} s; {name} again to stop now)")


@contextlib.contextmanager
def _signals(sched: Scheduler, say: Callable[[str], None]) -> Iterator[None]:
    """SIGINT and SIGTERM stop the scheduler gracefully while it runs (main thread only)."""
    loop = asyncio.get_running_loop()
    installed = []
    saved = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if saved is not None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, _on_signal, sched, sig, say)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - e.g. Windows
                pass
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
        if signal.SIGTERM in installed:
            signal.signal(signal.SIGTERM, saved)


def _raise_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Outside the event loop (start-up, the end), SIGTERM interrupts like SIGINT: the
    session is still recorded as stopped instead of the process vanishing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_coro(coro: Coroutine[Any, Any, Any]) -> Any:
    """asyncio.run, also from inside a running loop (e.g. Jupyter): then in a thread.
    (Run outside the `except` block: inside it, every exception the calls raise would
    carry this RuntimeError as its context instead of their own cause.)"""
    try:
        asyncio.get_running_loop()
        in_loop = True
    except RuntimeError:
        in_loop = False
    if not in_loop:
        return asyncio.run(coro)
    box: dict = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


def _stop_message(session: Session, end: _End) -> str:
    """The one line (or one line per stopped model) saying why the run stopped and what
    was saved."""
    stats = end.stats
    saved = max(0, stats.done - stats.unsaved)
    sched = end.sched
    lost = f"; {stats.unsaved} answers received could not be saved" if stats.unsaved else ""
    manifest = f"; {session.manifest_error}" if session.manifest_error else ""
    if end.store_error is not None or (sched is not None and sched.stop_reason and sched.stop_reason.startswith("the run store")):
        why = store_failure(end.store_error) if end.store_error is not None else str(sched.stop_reason if sched else "")
        return f"stopped: {why}; saved {saved} answers{lost}{manifest}; free disk space and run the same command to resume"
    if (sched is not None and sched.stop_reason) or end.interrupted:
        why = (sched.stop_reason if sched is not None and sched.stop_reason else None) or end.interrupted or "interrupted"
        return f"{why}: saved {saved} answers{lost}{manifest}; run the same command to resume"
    return (
        "\n".join(end.stopped.values())
        + f"\nresults so far are saved in {session.run_dir}; fix the problem and run again to resume{manifest}"
    )


def _results(session: Session, end: _End) -> RunResults:
    """The RunResults of the run; RunStopped (carrying them) when it stopped for any reason
    but --max-cost."""
    results = RunResults(session.run_dir, manifest=session.manifest)
    results.stopped = end.stopped
    results.budget_stop = end.sched.budget_stop if end.sched is not None else None
    results.stats = end.stats
    results.status = end.status
    only_budget = results.budget_stop is not None and end.reason() == results.budget_stop
    if end.status.status == STOPPED and not only_budget:
        raise RunStopped(_stop_message(session, end), results, end.status)
    return results
