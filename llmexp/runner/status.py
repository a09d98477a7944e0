"""How a run ended: complete, partial or stopped, and the exit status that says so.

A script or CI job must tell a finished run from one that needs attention, so every
session ends in one of three statuses, recorded in the manifest (`status`,
`status_reason`) and returned by `llmexp run` as its exit status:

    complete  0  every selected trial has a final answer (`ok` or `invalid`) and at most
                 INVALID_LIMIT (5%) of them are `invalid`
    partial   3  the run went through all its calls, but some trials `failed` (retried
                 when the same command runs again) or more than 5% are `invalid`
    stopped   4  the run stopped before making all its calls: interrupted (SIGINT or
                 SIGTERM), --max-cost reached, a model stopped by a permanent failure
                 (bad key, unknown model, a provider that does not answer), or the run
                 store could not be written (disk full)

(2 stays the status of a refused command: bad arguments, a study error, a run directory
in use.) A manifest written by an older llmexp ("incomplete", "interrupted") reads as
stopped; "running" with no process holding the directory's lock reads as stopped too
(the process was killed before it could record how it ended).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from llmexp.errors import RunError

COMPLETE, PARTIAL, STOPPED, RUNNING = "complete", "partial", "stopped", "running"
INVALID_LIMIT = 0.05  # share of invalid answers above which a run is partial
EXIT_CODES = {COMPLETE: 0, PARTIAL: 3, STOPPED: 4, RUNNING: 5}  # running: `llmexp results --check` only
_LEGACY = {"incomplete": STOPPED, "interrupted": STOPPED}


@dataclass
class RunStatus:
    status: str
    reason: str = ""
    counts: dict = field(default_factory=dict)  # over the selected trials: ok, invalid, failed, pending

    @property
    def exit_code(self) -> int:
        return EXIT_CODES.get(self.status, EXIT_CODES[STOPPED])

    def line(self) -> str:
        return f"run status: {self.status}" + (f" ({self.reason})" if self.reason else "")


def judge(selected: Iterable[str], stored: dict[str, str], stop_reason: str | None) -> RunStatus:
    """The status of a session that selected the trial ids `selected`, given the stored
    status of every answered trial and why the session stopped early (None if it did not)."""
    counts = {"ok": 0, "invalid": 0, "failed": 0, "pending": 0}
    for tid in set(selected):
        st = stored.get(tid, "pending")
        counts[st if st in counts else "failed"] += 1
    total = sum(counts.values())
    if stop_reason:
        return RunStatus(STOPPED, stop_reason, counts)
    problems = []
    if counts["failed"]:
        problems.append(f"{counts['failed']} of {total} trials failed; run the same command to retry them")
    if counts["pending"]:
        problems.append(f"{counts['pending']} of {total} trials not answered")
    if counts["invalid"] > INVALID_LIMIT * total:
        problems.append(f"{counts['invalid']} of {total} answers invalid (over {INVALID_LIMIT:.0%})")
    if problems:
        return RunStatus(PARTIAL, "; ".join(problems), counts)
    return RunStatus(COMPLETE, f"{total} trials answered", counts)


def recorded(manifest: dict, running_elsewhere: bool, stop: dict | None = None) -> RunStatus:
    """The status a manifest records (for `llmexp results`), old manifests included. `stop`:
    the stop record (`stop_record.read`), used when the manifest still says running because
    the session that ended could not rewrite it (a full disk)."""
    status = manifest.get("status") or STOPPED
    reason = manifest.get("status_reason") or ""
    if status == RUNNING:
        if running_elsewhere:
            return RunStatus(RUNNING, "a process is running it now")
        sessions = manifest.get("sessions") or [{}]
        if stop is not None and stop.get("session_started") == sessions[-1].get("started") and stop.get("status") in (COMPLETE, PARTIAL, STOPPED):
            return RunStatus(stop["status"], stop.get("reason") or "")
        return RunStatus(STOPPED, "the run process ended without recording how (killed?); run the same command to resume")
    if status in _LEGACY:
        return RunStatus(_LEGACY[status], reason or status)
    return RunStatus(status, reason)


class RunStopped(RunError):
    """The run stopped before making all its calls; `.results` holds what was saved and
    `.status` the RunStatus (exit status 4 on the command line)."""

    def __init__(self, message: str, results: Any = None, status: RunStatus | None = None):
        super().__init__(message)
        self.results = results
        self.status = status
