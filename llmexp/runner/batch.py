"""The batch path of `run_study(batch=True)` / `llmexp run --batch`: provider batch APIs.

Pending trials (after the cache replay) are grouped by model, written as JSONL request
lines by the model's `BatchAPI` (`llmexp/providers/batching.py`), split into files within
the provider's limits (requests and bytes per file), and submitted; the session then polls
every open batch, downloads the output and error files of each batch that ended, and turns
every line into a store row through the same `build_row` as a live call (answer parsing,
the response cache, tokens, cost at the batch price: `cost.batch_price`).

Crash safety rests on the ledger (`batch_ledger.py`), written ahead of every step:

1. the submission and its trials are recorded (state `new`) before the upload;
2. the uploaded file's id is recorded (`uploaded`) before the batch is created;
3. the batch id is recorded (`submitted`) as soon as the provider returns it: from then on
   the batch is only polled, never created again;
4. results and the state `collected` are committed in one transaction.

A kill between 1 and 2 leaves a `new` submission: nothing billable exists at the provider
(an uploaded file costs nothing; only a batch is paid), so it is dropped and its trials are
submitted again. A kill between 2 and 3 is the one window where the provider may hold a
batch whose id was never recorded: on resume the provider's batch listing is searched for
the submission's tag (sent as batch `metadata`) or its input file, and a batch found there is
adopted; only if none exists is the batch created (from the file already uploaded). A kill
during polling or download leaves the batch `submitted`: polled and downloaded again (free).
So no accepted batch is ever created twice and no answered trial is paid twice.

Lines in the error file, lines missing from an expired or cancelled batch, and every line of
a batch that failed as a whole become `failed` rows: pending again, submitted in the next
round (at most `rounds` per session) or by the next run. A model without a batch API is
refused before anything is written (`check_batchable`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.batch_ledger import Ledger, Submission, chunk
from llmexp.runner.cache import ResponseCache
from llmexp.runner.calls import Call, prepare_calls
from llmexp.runner.cost import Price, batch_price, model_price
from llmexp.runner.models import provider
from llmexp.runner.outcome import Outcome, build_row, is_blank
from llmexp.runner.progress import ProgressDisplay
from llmexp.runner.replay import replay
from llmexp.runner.retry import classify
from llmexp.runner.scheduler import Stats
from llmexp.runner.sequences import ready_steps
from llmexp.schema import ResponseRow

__all__ = ["BatchOptions", "BatchRun", "batch_options", "batch_session", "check_batchable", "TAG"]

TAG = "llmexp_submission"  # the batch metadata key a submission is found again by
MAX_ERRORS_IN_ROW = 8  # provider errors in a row (while polling or submitting) before stopping


@dataclass
class BatchOptions:
    """How the batch path runs: wait for the batches (else submit and return), seconds
    between polls, rounds of resubmitting failed items per session."""

    wait: bool = True
    poll: float = 30.0
    rounds: int = 3


def batch_options(batch: Any, params_by_model: dict[str, dict], routed: frozenset) -> BatchOptions:
    """The BatchOptions of `run_study(batch=...)` (True or a dict), after checking that
    every model can batch: RunError (one line) before anything is written otherwise."""
    if routed:
        raise RunError(f"--batch cannot be combined with --router (routed: {', '.join(sorted(routed))}): a batch goes to one provider account")
    try:
        opts = BatchOptions(**batch) if isinstance(batch, dict) else BatchOptions()
    except TypeError as exc:
        raise RunError(f"batch options: {exc}") from None
    if opts.poll <= 0 or opts.rounds < 1:
        raise RunError("batch options: poll must be > 0 seconds and rounds at least 1")
    check_batchable(params_by_model)
    return opts


def check_batchable(model_calls: dict[str, dict]) -> None:
    """RunError (one line, before anything is written) for a model that cannot batch;
    `model_calls`: model -> the kwargs of one of its calls."""
    for model, kwargs in model_calls.items():
        batch_api(model, kwargs)


def batch_api(model: str, kwargs: dict) -> Any:
    """The provider batch API `model` is sent through; RunError saying why it has none."""
    api, why = provider(model).batch_api(model, kwargs)
    if api is None:
        raise RunError(why)
    return api


@dataclass
class BatchRun:
    """One session of the batch path over `calls` (trial id -> Call)."""

    calls: dict[str, Call]
    submit_ids: list[str]  # the calls this session may submit, in run order
    ledger: Ledger
    stats: Stats
    scrub: Callable[[str], str]
    say: Callable[[str], None]
    options: BatchOptions
    tag: str  # the run's prefix of submission ids
    cache: ResponseCache | None = None
    max_cost: float | None = None
    params: dict[str, dict] = field(default_factory=dict)  # model -> the study's params (prices)
    stop_reason: str | None = None
    apis: dict[str, Any] = field(default_factory=dict)
    prices: dict[str, Price] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)  # model -> batch price / live price
    spent: float = 0.0
    errors_in_row: int = 0

    # -- models
    def api(self, model: str) -> Any:
        if model not in self.apis:
            call = next((c for c in self.calls.values() if c.model == model), None)
            self.apis[model] = batch_api(model, call.kwargs if call else {})
        return self.apis[model]

    def price(self, model: str) -> Price:
        if model not in self.prices:
            self.prices[model] = batch_price(model, self.params.get(model) or {})
        return self.prices[model]

    def _estimate(self, call: Call) -> float:
        """A call's live cost estimate at the batch price (the ratio is asked once per model)."""
        if call.model not in self.ratios:
            full = model_price(call.model, self.params.get(call.model) or {})
            self.ratios[call.model] = self.price(call.model).input / full.input if full.input else 0.5
        return call.est_cost * self.ratios[call.model]

    # -- the loop
    async def run(self) -> None:
        """Settle what a killed session left, then submit / poll / collect until every
        batch ended (or, without `wait`, until everything is submitted)."""
        for round_no in range(max(1, self.options.rounds)):
            await self._settle()
            if self.stop_reason:
                return
            await self._submit_pending()
            if not self.options.wait:
                return
            await self._poll_until_done()
            left = self._resubmittable()
            unsent = [s for s in self.ledger.open() if s.state != "submitted"]
            if self.stop_reason or not (left or unsent) or round_no + 1 >= self.options.rounds:
                return
            self.say(f"round {round_no + 2}: submitting {len(left)} failed requests again")

    def _final(self) -> set[str]:
        return self.ledger.store.final_ids()

    def _resubmittable(self) -> list[str]:
        final = self._final()
        held = self.ledger.held()
        return [t for t in self.submit_ids if t not in final and t not in held]

    async def _settle(self) -> None:
        """Submissions a killed session left half-done: `new` ones are dropped (nothing
        billable exists), `uploaded` ones are found at the provider or created."""
        for sub in self.ledger.open():
            if sub.state == "new":
                self.ledger.drop(sub.submission, "upload interrupted; its trials were submitted again")
            elif sub.state == "uploaded":
                await self._guard(self._reconcile(sub))

    async def _reconcile(self, sub: Submission) -> None:
        api = self.api(sub.model)
        tag = {TAG: sub.submission}
        found = await api.find(tag, sub.file_id)
        batch_id = found or await api.create(sub.file_id, tag)
        self.ledger.submitted(sub.submission, batch_id)
        self.say(f"batch {batch_id}: {'found at the provider' if found else 'created'} for submission {sub.submission}")

    # -- submitting
    async def _submit_pending(self) -> None:
        todo = self._resubmittable()
        by_group: dict[tuple[str, str], list[Call]] = {}
        for tid in todo:
            call = self.calls[tid]
            by_group.setdefault((call.model, self.api(call.model).key()), []).append(call)
        for (model, _), calls in by_group.items():
            api = self.api(model)
            lines = ((c.trial_id, api.request_line(c.trial_id, c.messages, c.kwargs)) for c in calls)
            for part in chunk(lines, api.max_requests, api.max_bytes):
                if self.stop_reason or not await self._submit_one(model, api, part):
                    return

    async def _submit_one(self, model: str, api: Any, part: list[tuple[str, bytes]]) -> bool:
        est = sum(self._estimate(self.calls[t]) for t, _ in part)
        if self.max_cost is not None and self.spent + self._open_estimate() + est > self.max_cost + 1e-12:
            self.stop_reason = (
                f"stopped before exceeding --max-cost ${self.max_cost:.4f}: the next batch of {len(part)} requests is estimated at ${est:.4f}"
            )
            self.say(self.stop_reason)
            return False
        sub = Submission(f"{self.tag}-{uuid.uuid4().hex[:12]}", model, api.key(), "new", None, None, None, len(part), est)
        self.ledger.add(sub, [t for t, _ in part])
        data = b"".join(line for _, line in part)
        return await self._guard(self._upload_create(sub, api, data))

    async def _upload_create(self, sub: Submission, api: Any, data: bytes) -> None:
        file_id = await api.upload(data, f"{sub.submission}.jsonl")
        self.ledger.uploaded(sub.submission, file_id)
        batch_id = await api.create(file_id, {TAG: sub.submission})
        self.ledger.submitted(sub.submission, batch_id)
        self.say(f"batch {batch_id}: {sub.n} requests of {sub.model} submitted ({len(data) / 1e6:.1f} MB)")

    def _open_estimate(self) -> float:
        return sum(s.est_cost or 0.0 for s in self.ledger.open())

    async def _guard(self, coro: Any) -> bool:
        """Run a provider step; a provider error is said once and retried at the next poll
        (a permanent one, e.g. a bad key, or too many in a row, stops the session)."""
        try:
            await coro
        except RunError:
            raise
        except Exception as exc:  # noqa: BLE001 - every provider failure becomes a message
            kind, transient, stops = classify(exc)
            self.errors_in_row += 1
            self.stats.errors[f"batch_{kind}"] = self.stats.errors.get(f"batch_{kind}", 0) + 1
            detail = self.scrub(str(exc)).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
            if stops or not transient or self.errors_in_row >= MAX_ERRORS_IN_ROW:
                self.stop_reason = f"batch API error ({kind}): {detail}"
            self.say(f"batch API error ({kind}): {detail}")
            return False
        self.errors_in_row = 0
        return True

    # -- polling
    async def _poll_until_done(self) -> None:
        while not self.stop_reason:
            subs = [s for s in self.ledger.open() if s.state == "submitted"]
            if not subs:
                return
            for sub in subs:
                await self._guard(self._poll(sub))
                if self.stop_reason:
                    return
            if any(s.state == "submitted" for s in self.ledger.open()):
                await asyncio.sleep(self.options.poll)

    async def _poll(self, sub: Submission) -> None:
        api = self.api(sub.model)
        state = await api.retrieve(sub.batch_id)
        if state.status != sub.provider_status:
            self.say(f"batch {sub.batch_id}: {state.status} ({state.completed + state.failed}/{state.total or sub.n})")
        self.ledger.progress(sub.submission, state.status, state.completed, state.failed)
        if state.ended:
            await self._collect(sub, api, state)

    # -- collecting
    async def _collect(self, sub: Submission, api: Any, state: Any) -> None:
        items: dict[str, Any] = {}
        for file_id in (state.error_file_id, state.output_file_id):  # an answer wins over an error
            if file_id:
                for raw in (await api.content(file_id)).splitlines():
                    if raw.strip():
                        item = api.parse_line(json.loads(raw))
                        items[item.custom_id] = item
        why = state.errors or f"the batch {state.status} before answering this request"
        price = self.price(sub.model)
        rows: list[ResponseRow] = []
        outs: list[tuple[Call, ResponseRow, Outcome]] = []
        for tid in self.ledger.trial_ids(sub.submission):
            call = self.calls.get(tid)
            if call is None:  # a trial no longer in the study's table: nothing to parse it against
                continue
            out = _outcome(items.get(tid), price, state.status, why)
            row = build_row(call, out, self.scrub)
            rows.append(row)
            outs.append((call, row, out))
        self.ledger.collect(sub.submission, state.status, rows, self.scrub(state.errors) if state.errors else None)
        self._account(outs)
        n_failed = sum(1 for _, r, _ in outs if r.status == "failed")
        again = f", {n_failed} failed (asked again)" if n_failed else ""
        self.say(f"batch {sub.batch_id}: {state.status}; {len(rows) - n_failed} answers stored{again}")

    def _account(self, outs: list[tuple[Call, ResponseRow, Outcome]]) -> None:
        cache_rows = []
        for call, row, out in outs:
            self.spent += out.cost
            if row.status == "failed":  # asked again (next round or run): counted at the end if still failed
                kind = out.error_kind or "batch_item"
                self.stats.errors[kind] = self.stats.errors.get(kind, 0) + 1
                self.stats.retries += 1
                self.stats.cost += out.cost
                continue
            self.stats.count(row, out)
            if self.cache is not None and call.cacheable and out.text is not None and not out.empty:
                cache_rows.append(
                    (call.cache_key, call.model, row.raw_text, row.probs, out.prob_mass, out.prompt_tokens, out.completion_tokens, out.cost)
                )
        if cache_rows and self.cache is not None:
            with contextlib.suppress(Exception):  # the cache is an optimisation; the store is the record
                self.cache.put_many(cache_rows, [])


def _outcome(item: Any, price: Price, status: str, why: str) -> Outcome:
    """The Outcome of one request of an ended batch (its result line, or none)."""
    if item is None:
        return Outcome(error=f"batch {status}: {why}"[:2000], error_kind=f"batch_{status}", attempts=1)
    cost = item.prompt_tokens * price.input + item.completion_tokens * price.output
    if item.text is None:
        return Outcome(error=item.error, error_kind=item.error_kind, attempts=1, cost=cost,
                       prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens)  # fmt: skip
    if is_blank(item.text):  # a blank answer is never final: asked again like a live one
        return Outcome(error="empty answer in the batch", error_kind="empty", attempts=1, cost=cost, raw_body=item.text,
                       prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens)  # fmt: skip
    return Outcome(text=item.text, prompt_tokens=item.prompt_tokens, completion_tokens=item.completion_tokens, cost=cost, attempts=1)


# ---------------------------------------------------------------- the session


def _calls_for(session: Any, selection: Any, retry: Any) -> tuple[list[Call], list[Call]]:
    """(pending calls of the selection, calls of the trials held by open batches): the
    pending ones are submitted; the held ones are collected (and, when selected and
    answered by a failure, submitted again)."""
    # a later question of a `sequence` goes out once the one before it is answered, with the
    # conversation so far (sequences.py): here, in a later run (or round) than its predecessor
    pending, _waiting = ready_steps(session.pending(selection), session.store)  # without the trials held by open batches
    calls = prepare_calls(pending, selection.study, selection.study.seed, retry, selection.spec_params)
    held = Ledger(session.store).held()
    extra: list[Call] = []
    if held:
        rows = [r for r in session.store.trial_rows() if r["trial_id"] in held]
        ready, waiting = ready_steps(list({r["trial_id"]: r for r in rows}.values()), session.store)
        extra = prepare_calls(ready + waiting, selection.study, selection.study.seed, retry, selection.spec_params)
    return calls, extra


def batch_session(session: Any, selection: Any, options: Any, retry: Any, scrub: Callable[[str], str], progress: bool,
                  cache_dir: Any, end: Any, batch: BatchOptions, run_coro: Callable[[Any], Any]) -> None:  # fmt: skip
    """The batch path's `_run_session`: prepare, replay the cache, run the batches, and
    record in the manifest how the session ended (`end` is the runner's `_End`)."""
    cache = None
    run: BatchRun | None = None
    try:
        calls, extra = _calls_for(session, selection, retry)
        end.stats.total = len(calls) + len(extra)
        if options.use_cache and any(c.cacheable for c in calls):
            cache = ResponseCache(cache_dir)
            calls = replay(calls, cache, session.store, end.stats, scrub)
        selected = {r["trial_id"] for r in selection.rows}
        run = BatchRun(
            calls={c.trial_id: c for c in calls + extra}, ledger=Ledger(session.store), stats=end.stats, scrub=scrub,
            submit_ids=[c.trial_id for c in calls] + [c.trial_id for c in extra if c.trial_id in selected],
            say=lambda m: None, options=batch, tag=str(session.manifest.get("study_hash") or "run")[:8],
            cache=cache, max_cost=options.max_cost, params=selection.spec_params,
        )  # fmt: skip
        run_coro(_drive(run, progress))
    except KeyboardInterrupt:
        end.interrupted = "interrupted (the batches submitted are recorded and collected by the next run)"
    except (OSError, sqlite3.Error) as exc:  # the store (or the ledger) could not be written
        end.store_error = exc
    finally:
        if cache is not None:
            cache.close()
        _finish(session, selection, end, run)


async def _drive(run: BatchRun, progress: bool) -> None:
    async with ProgressDisplay(run.stats, enabled=progress) as display:
        run.say = display.message
        started = time.monotonic()
        await run.run()
        counts = run.ledger.counts()
        display.message(f"batches: {', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} ({time.monotonic() - started:.0f} s)")


def _finish(session: Any, selection: Any, end: Any, run: BatchRun | None) -> None:
    reason = None
    if run is not None and run.stop_reason:
        reason = run.stop_reason
    elif run is not None and not run.options.wait and run.ledger.open():
        reason = f"{len(run.ledger.open())} batches submitted, not ended yet (no wait); run the same command to collect them"
    if reason and not end.interrupted:
        end.interrupted = reason
    if run is not None:  # the trials that end this session failed count once, as a live call's would
        try:
            stored = session.store.statuses()
        except sqlite3.Error:
            stored = {}
        still = sum(1 for t in set(run.submit_ids) if stored.get(t) == "failed")
        end.stats.failed += still
        end.stats.done += still
    details = {"batch": run.ledger.counts() if run is not None else None}
    end.status = session.finish({r["trial_id"] for r in selection.rows}, end.stats.done, end.reason(), details)
