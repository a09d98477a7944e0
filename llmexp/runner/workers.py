"""Worker processes for litellm calls: the runner past one core (`llmexp run --workers N`).

One `litellm.acompletion` costs about 3 ms of CPU (request building, the OpenAI SDK's
transforms, response parsing, litellm's logging and cost bookkeeping), so one process tops out
near 300 calls/s whatever the concurrency. With `workers > 1` the run keeps ONE process that
owns everything with a guarantee attached (the scheduler: run order, concurrency, rate limits,
429 throttle, retries, the --max-cost budget; the store writer; the shared cache's claims) and
hands only the model call itself to `workers` child processes (`python -m
llmexp.runner.workers`), each running litellm in its own event loop. So the store, the cache
and the budget work exactly as with one process: a worker never writes anything, it sends the
request and returns the answer's text, token counts and label probabilities (or the failure,
already classified by `retry.classify`, as a `RemoteFailure`).

Which calls go to a worker: plain litellm models not routed by a litellm Router (a Router's
cooldowns and llmexp's own providers, e.g. the embedded model, live in the main process).

Lifetime: workers read requests from their stdin; when it closes (the run ended, or the
main process died, SIGKILL included) a worker exits at once, abandoning its calls in flight
(they were never recorded, so a resume asks them again, as with one process). On Linux the
kernel also kills a worker the moment the run's process dies (PR_SET_PDEATHSIG). Workers
ignore SIGINT/SIGTERM: the main process decides how a run stops. A worker that dies fails
its calls in flight as transient connection errors (retried by the policy).

Frames on the pipes: a 4-byte big-endian length, then a pickle. Requests: ("call", id,
model, messages, kwargs) and ("cancel", id); replies: ("ready", pid), ("ok", id, text,
prompt_tokens, completion_tokens, provider_specific_fields) and ("err", id, type name,
message, kind, transient, stops, retry_after, raw body).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import pickle
import signal
import struct
import sys
from collections.abc import AsyncIterator
from typing import Any

from llmexp.errors import RunError
from llmexp.runner.retry import RemoteFailure

START_TIMEOUT = 120.0  # seconds a worker may take to import litellm and say it is ready
PARENT_ENV = "LLMEXP_WORKER_PARENT"  # the run's pid, for the worker's parent-death check
_HEADER = struct.Struct(">I")


def resolve_workers(workers: int | None) -> int:
    """The number of worker processes: 0 or None means one per core; 1 means none (the
    calls are made in the run's own process)."""
    if workers is not None and int(workers) < 0:
        raise RunError(f"--workers must be 0 (one per core) or more, not {workers}")
    if workers is None or int(workers) == 0:
        return max(1, os.cpu_count() or 1)
    return int(workers)


def _frame(obj: Any) -> bytes:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


async def _read_frame(reader: asyncio.StreamReader) -> Any:
    (size,) = _HEADER.unpack(await reader.readexactly(_HEADER.size))
    return pickle.loads(await reader.readexactly(size))


# ---------------------------------------------------------------- replies in the main process


class _Message:
    __slots__ = ("content", "provider_specific_fields")

    def __init__(self, content: str | None, fields: dict | None) -> None:
        self.content = content
        self.provider_specific_fields = fields


class _Choice:
    __slots__ = ("message",)

    def __init__(self, message: _Message) -> None:
        self.message = message


class _Usage:
    __slots__ = ("prompt_tokens", "completion_tokens")

    def __init__(self, prompt_tokens: int, completion_tokens: int) -> None:
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = completion_tokens


class RemoteReply:
    """A worker's answer with the parts of a litellm ModelResponse the scheduler reads
    (`choices[0].message.content` / `.provider_specific_fields`, `usage`)."""

    __slots__ = ("choices", "usage")

    def __init__(self, text: str | None, prompt_tokens: int, completion_tokens: int, fields: dict | None) -> None:
        self.choices = [_Choice(_Message(text, fields))]
        self.usage = _Usage(prompt_tokens, completion_tokens)


_failure_types: dict[str, type[RemoteFailure]] = {}


def _failure(reply: tuple) -> RemoteFailure:
    """The exception a worker's ("err", ...) reply stands for, named like the original
    (stored error messages read "RateLimitError: ..." as with one process)."""
    _, _, name, message, kind, transient, stops, wait, body = reply
    cls = _failure_types.get(name)
    if cls is None:
        cls = _failure_types[name] = type(str(name), (RemoteFailure,), {})
    return cls(message, (kind, transient, stops), wait, body)


class _Worker:
    """One worker process and the calls it has in flight."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.pending: dict[int, asyncio.Future] = {}
        self.alive = True
        self.reader_task: asyncio.Task | None = None

    def write(self, obj: Any) -> None:
        stdin = self.proc.stdin
        if stdin is not None and not stdin.is_closing():
            stdin.write(_frame(obj))

    async def read_replies(self) -> None:
        """Resolve the futures of this worker's calls as its replies arrive; when it dies,
        fail the calls still in flight (transient: the scheduler retries them)."""
        stdout = self.proc.stdout
        try:
            while stdout is not None:
                reply = await _read_frame(stdout)
                fut = self.pending.pop(reply[1], None)
                if fut is None or fut.done():
                    continue
                if reply[0] == "ok":
                    fut.set_result(RemoteReply(reply[2], reply[3], reply[4], reply[5]))
                else:
                    fut.set_exception(_failure(reply))
        except (asyncio.IncompleteReadError, ConnectionError, pickle.UnpicklingError, EOFError):
            pass
        finally:
            self.alive = False
            lost = RemoteFailure(f"worker process {self.proc.pid} exited", ("connection", True, False))
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(lost)
            self.pending.clear()


class WorkerPool:
    """`n` worker processes making litellm calls for the main process (see the module doc)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.workers: list[_Worker] = []
        self._next_id = 0
        self._takes: dict[str, bool] = {}

    async def start(self) -> None:
        """Start the workers and wait until each has imported litellm."""
        env = {**os.environ, "PYTHONUNBUFFERED": "1", PARENT_ENV: str(os.getpid())}
        for _ in range(self.n):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "llmexp.runner.workers", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env
            )
            self.workers.append(_Worker(proc))
        for w in self.workers:
            try:
                assert w.proc.stdout is not None
                hello = await asyncio.wait_for(_read_frame(w.proc.stdout), START_TIMEOUT)
            except (TimeoutError, asyncio.IncompleteReadError, pickle.UnpicklingError, EOFError) as exc:
                await self.close()
                raise RunError(f"a worker process could not start ({type(exc).__name__}); run with --workers 1") from None
            if hello[0] != "ready":
                await self.close()
                raise RunError(f"a worker process could not start: {hello!r}; run with --workers 1")
            w.reader_task = asyncio.create_task(w.read_replies())

    def takes(self, call: Any, state: Any) -> bool:
        """Whether `call` goes to a worker: a plain litellm model, not routed by a Router."""
        if state.router is not None:
            return False
        hit = self._takes.get(call.model)
        if hit is None:
            from llmexp.runner.models import provider

            hit = self._takes[call.model] = not provider(call.model).litellm_provider
        return hit

    async def send(self, call: Any) -> RemoteReply:
        """Make `call` in the least busy live worker; raises what the call raised there."""
        live = [w for w in self.workers if w.alive]
        if not live:
            raise RemoteFailure("no worker process is running", ("connection", True, False))
        worker = min(live, key=lambda w: len(w.pending))
        self._next_id += 1
        key = self._next_id
        fut: asyncio.Future = asyncio.get_running_loop().create_future()
        worker.pending[key] = fut
        worker.write(("call", key, call.target, call.messages, call.kwargs))
        try:
            return await fut
        except asyncio.CancelledError:  # a deadline or a stop: the worker drops the call too
            if worker.pending.pop(key, None) is not None and worker.alive:
                worker.write(("cancel", key))
            raise

    async def close(self) -> None:
        """Close the workers' stdin (they exit at once) and reap them (killed after 5 s)."""
        for w in self.workers:
            if w.proc.stdin is not None:
                w.proc.stdin.close()
        for w in self.workers:
            try:
                await asyncio.wait_for(w.proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    w.proc.kill()
                await w.proc.wait()
            if w.reader_task is not None:
                w.reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await w.reader_task


@contextlib.asynccontextmanager
async def worker_pool(workers: int, calls: list, states: dict) -> AsyncIterator[WorkerPool | None]:
    """A started pool for `workers` > 1 when some call can use it, else None (one process).
    `states`: the scheduler's `ModelState` per model (a routed model's calls stay here)."""
    pool = WorkerPool(workers) if workers > 1 else None
    if pool is not None and not any(pool.takes(c, states[c.model]) for c in calls):
        pool = None
    if pool is not None:
        await pool.start()
    try:
        yield pool
    finally:
        if pool is not None:
            await pool.close()


# ---------------------------------------------------------------- the worker process


def _reply_failure(key: int, exc: BaseException) -> tuple:
    from llmexp.runner.retry import classify, raw_body, retry_after

    kind, transient, stops = classify(exc)
    try:
        wait = retry_after(exc)
    except Exception:  # noqa: BLE001 - a header the parser cannot read: no Retry-After
        wait = None
    return ("err", key, type(exc).__name__, str(exc)[:20_000], kind, transient, stops, wait, raw_body(exc))


async def _one(key: int, model: str, messages: list, kwargs: dict, out: Any) -> None:
    from llmexp.runner.transport import complete, usage  # the same call site as the run's own process

    try:
        resp = await complete(model, messages, kwargs)
        msg = resp.choices[0].message
        fields = getattr(msg, "provider_specific_fields", None)
        reply: tuple = ("ok", key, msg.content, *usage(resp), dict(fields) if isinstance(fields, dict) else None)
    except asyncio.CancelledError:
        return
    except Exception as exc:  # noqa: BLE001 - every failure goes back to the scheduler
        reply = _reply_failure(key, exc)
    try:
        out.write(_frame(reply))
    except Exception as exc:  # noqa: BLE001 - e.g. an answer that does not pickle
        out.write(_frame(_reply_failure(key, exc)))


def _forget(tasks: dict, key: int, _task: asyncio.Task) -> None:
    tasks.pop(key, None)


async def _serve(in_fd: int, out_fd: int) -> None:
    """Answer ("call", ...) frames from `in_fd` until it closes; replies go to `out_fd`."""
    import litellm  # noqa: F401 - heavy: imported once, before saying ready

    from llmexp.providers.registry import ensure_registered

    ensure_registered()  # the same litellm settings as the main process
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**30)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(in_fd, "rb", buffering=0))
    transport, protocol = await loop.connect_write_pipe(asyncio.Protocol, os.fdopen(out_fd, "wb", buffering=0))
    transport.write(_frame(("ready", os.getpid())))
    tasks: dict[int, asyncio.Task] = {}
    while True:
        try:
            msg = await _read_frame(reader)
        except (asyncio.IncompleteReadError, ConnectionError, EOFError):
            os._exit(0)  # the main process closed the pipe or died: drop the calls in flight
        if msg[0] == "call":
            task = asyncio.create_task(_one(msg[1], msg[2], msg[3], msg[4], transport))
            tasks[msg[1]] = task
            task.add_done_callback(functools.partial(_forget, tasks, msg[1]))
        elif msg[0] == "cancel" and msg[1] in tasks:
            tasks[msg[1]].cancel()


def _die_with_parent() -> None:
    """Linux: have the kernel SIGKILL this worker the moment the run's process dies, so its
    calls in flight are dropped at once, as they would be in one process (else: the
    stdin EOF, noticed within one loop iteration)."""
    parent = int(os.environ.get(PARENT_ENV) or 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if parent and os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(0)


def main() -> None:
    """Entry point of a worker process (`python -m llmexp.runner.workers`)."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)  # the main process decides how a run stops
    if sys.platform.startswith("linux"):
        _die_with_parent()
    in_fd, out_fd = os.dup(0), os.dup(1)
    os.dup2(2, 1)  # anything printed goes to stderr, never into the reply stream
    asyncio.run(_serve(in_fd, out_fd))


if __name__ == "__main__":
    main()
