"""`run_study`: the trial table in, the run directory (responses + manifest) out.

A run is a short sequence of named steps, each in its own module:

    plan.check_arguments, plan.select_trials   which trials, in which order (plan.py)
    plan.dry_run_plan                          the plan without calls (dry_run=True)
    models.preflight                           fail before any call (models.py)
    session.open_session                       run directory, manifest, stored trials
    calls.prepare_calls                        trial rows -> Calls (calls.py)
    replay.replay                              answers from the shared cache (replay.py)
    _execute                                   the scheduler under a progress display
    Session.finish, _results                   the manifest's session record, RunResults
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.cache import ResponseCache
from llmexp.runner.calls import Call, loads, prepare_calls
from llmexp.runner.cost import model_price
from llmexp.runner.limits import RateLimiter
from llmexp.runner.models import preflight, provider
from llmexp.runner.plan import DEFAULT_CONCURRENCY, Selection, check_arguments, dry_run_plan, select_trials
from llmexp.runner.progress import ProgressDisplay
from llmexp.runner.redaction import scrubber, secret_values
from llmexp.runner.replay import replay
from llmexp.runner.results import RunPlan, RunResults
from llmexp.runner.retry import RetryPolicy
from llmexp.runner.router import load_router_config, make_router, routed_models, router_secrets
from llmexp.runner.scheduler import ModelState, Scheduler, Stats
from llmexp.runner.session import Options, Session, default_run_dir, open_session, run_hash
from llmexp.runner.writer import Writer

__all__ = ["run_study", "default_run_dir", "run_hash", "DEFAULT_CONCURRENCY"]


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
) -> RunResults | RunPlan:
    """Run a study's trials through litellm into a run directory; resumable.

    study: a `llmexp.spec.Study`. trials: its trial table (DataFrame or row dicts); compiled
    with `llmexp.compiler.compile_study` when None. run_dir: default
    `runs/<study-name>-<hash>`; an existing run of the same study is resumed (finished
    trials are never called again; failed ones are retried). models: override the study's
    models (names or ModelSpec). limit: only the first N trials in a deterministic order
    spread across models and designs. max_cost: dollars; no call starts that could exceed
    it. cache_dir / use_cache: the shared response cache. rpm / tpm: rate limits applied to
    every model (else each ModelSpec's). dry_run: no calls, returns a `RunPlan`.
    router: a litellm Router config (dict or JSON/YAML file, see `llmexp.runner.router`): calls
    of the models it names go through `Router.acompletion` over its deployments.

    Returns `RunResults`. Raises `RunError` (with `.results`) if a model was stopped by a
    permanent failure (e.g. a missing API key) after saving everything else.
    """
    check_arguments(study, concurrency, limit, max_cost)
    retry = retry or RetryPolicy()
    selection = select_trials(study, trials, models, limit)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(selection.study)
    if dry_run:
        return dry_run_plan(selection, run_dir)

    router_config = load_router_config(router)
    routed = frozenset(routed_models(router_config) & set(selection.model_names))
    preflight([m for m in selection.model_names if m not in routed], _first_params(selection))
    scrub = _scrub_for(selection, router_config)
    options = Options(limit, max_cost, int(concurrency), bool(use_cache), rpm, tpm, command)
    session = open_session(run_dir, selection, options, routed, router_config, scrub)
    cache = None
    try:
        calls = prepare_calls(session.pending(selection), selection.study, selection.study.seed, retry, selection.spec_params, routed)
        stats = Stats(total=len(calls))
        writer = Writer(session.store, None)
        if use_cache and any(c.cacheable for c in calls):  # hits: served at once, cost 0
            cache = writer.cache = ResponseCache(cache_dir)
            calls = replay(calls, cache, session.store, stats, scrub)
        states = _model_states(selection, rpm, tpm, routed, router_config)
        stopped, budget_stop = _run_session(session, _execute(calls, states, writer, stats, options, retry, scrub, progress), states, stats)
    finally:
        session.store.close()
        if cache is not None:
            cache.close()
    return _results(session, stats, stopped, budget_stop)


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


async def _execute(
    calls: list[Call],
    states: dict[str, ModelState],
    writer: Writer,
    stats: Stats,
    options: Options,
    retry: RetryPolicy,
    scrub: Callable[[str], str],
    progress: bool,
) -> str | None:
    """Drive the calls through the scheduler under a progress display; the budget stop
    message, if the budget stopped the run."""
    async with ProgressDisplay(stats, enabled=progress) as display:
        note = _budget_note(calls, options.max_cost)
        if note:
            display.message(note)
        sched = Scheduler(
            calls,
            states,
            writer,
            concurrency=options.concurrency,
            retry=retry,
            max_cost=options.max_cost,
            spent=0.0,
            stats=stats,
            on_message=display.message,
            scrub=scrub,
        )
        await sched.run()
        return sched.budget_stop


def _run_session(session: Session, run: Coroutine[Any, Any, str | None], states: dict[str, ModelState], stats: Stats) -> tuple[dict, str | None]:
    """Run the calls and, however that ends (even interrupted), record in the manifest how
    the session ended. Returns the models stopped by a permanent failure (name -> why) and
    the budget stop message."""
    budget_stop = None
    interrupted = False
    try:
        budget_stop = _run_coro(run)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        stopped = {n: s.stopped for n, s in states.items() if s.stopped}
        session.finish(stats.done, stopped, budget_stop, interrupted)
    return stopped, budget_stop


def _run_coro(coro: Any) -> Any:
    """asyncio.run, also from inside a running loop (e.g. Jupyter): then in a thread."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
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


def _results(session: Session, stats: Stats, stopped: dict, budget_stop: str | None) -> RunResults:
    """The RunResults of the run; RunError (carrying them) when a model was stopped."""
    results = RunResults(session.run_dir, manifest=session.manifest)
    results.stopped = stopped
    results.budget_stop = budget_stop
    results.stats = stats
    if stopped:
        err = RunError(
            "\n".join(stopped.values())
            + f"\nresults so far are saved in {session.run_dir}; fix the problem and run again to resume"
        )
        err.results = results  # type: ignore[attr-defined]
        raise err
    return results
