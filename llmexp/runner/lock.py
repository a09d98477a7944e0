"""One process at a time per run directory: an OS lock on `RUN_DIR/run.lock`.

`RunLock.acquire` takes an exclusive `fcntl.flock` on the lock file without waiting; the
kernel releases it when the process ends in any way (exit, exception, SIGKILL), so a killed
run never leaves a directory locked. A second `llmexp run` on a locked directory is refused
with one line naming the holder (the pid and start time written into the lock file).
`holder(run_dir)` tells a reader (`llmexp results`) whether a run is in progress there.
Where `fcntl` does not exist (Windows) no lock is taken.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

from llmexp.errors import RunError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no advisory locks, one run per directory is on the user
    fcntl = None  # type: ignore[assignment]

LOCK = "run.lock"


def _describe(info: dict | None) -> str:
    if not info:
        return "another process"
    started = info.get("started")
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)) if isinstance(started, (int, float)) else "?"
    return f"pid {info.get('pid', '?')} on {info.get('host', '?')}, started {when}"


def _read_info(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


class RunLock:
    """The exclusive lock of one run directory, held from `acquire` to `release`."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        """Take the lock or raise RunError (one line) if another process holds it."""
        if fcntl is None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise RunError(f"cannot lock the run directory {self.path.parent}: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise RunError(
                f"{self.path.parent} is in use by another llmexp run ({_describe(_read_info(self.path))}); "
                "wait for it to finish, or stop it, then run the same command to resume"
            ) from None
        info = json.dumps({"pid": os.getpid(), "host": os.uname().nodename, "started": time.time()})
        with contextlib.suppress(OSError):  # informational only: a full disk must not stop the lock
            os.ftruncate(fd, 0)
            os.pwrite(fd, info.encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def holder(run_dir: Path | str) -> dict | None:
    """The holder's info ({pid, host, started}) if a process holds `run_dir`'s lock now,
    else None (also where locks do not exist)."""
    path = Path(run_dir) / LOCK
    if fcntl is None or not path.exists():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_info(path) or {}
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def describe_holder(info: dict) -> str:
    return _describe(info)
