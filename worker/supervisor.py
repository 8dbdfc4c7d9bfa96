"""A job in a process of its own, watched by the worker: its memory against the budget, and a stop request
against the time the job has to honour it.

Inside one process a job cannot be stopped mid-operation: a training step of a huge batch, or one ONNX
Runtime call, runs for as long as it runs, and memory it allocates takes the worker's host with it. In a
child process it can: the worker polls the child's anonymous resident memory (what the job allocated;
memory-mapped component outputs are page cache, which the kernel reclaims) and kills it past the budget,
and it asks the child to stop when the job is cancelled, killing it if it has not stopped within
CANCEL_GRACE_S. The worker itself, and its next job, are untouched either way.

Children come from a fork server that has imported the engine once: starting one costs a fork, not an
import of torch, and the server never ran a thread pool that a fork would leave broken. A child dies with
its parent (PR_SET_PDEATHSIG), so a killed worker leaves no job process behind.
"""

from __future__ import annotations

import ctypes
import logging
import multiprocessing
import multiprocessing.forkserver
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from multiprocessing.synchronize import Event
from pathlib import Path

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 1.0
"""How long a job may take to stop on its own (it checks between steps and between chunks) before it is
killed: with the lease's cancel poll (worker/lease.py), well inside the 2 s a cancel may take."""
WATCH_INTERVAL_S = 0.05
_PR_SET_PDEATHSIG = 1
_PRELOAD = ["worker.runner"]
"""What the fork server imports once, for every child: the job's code, the engine and torch with it."""


class Ending(StrEnum):
    EXITED = "exited"
    """The child ended by itself: `exitcode` says how."""
    OVER_BUDGET = "over budget"
    """Killed: its memory grew past the budget."""
    STOPPED = "stopped"
    """Killed: it did not stop within CANCEL_GRACE_S of being asked to."""


@dataclass(frozen=True)
class Outcome:
    ending: Ending
    exitcode: int | None
    pid: int
    peak_bytes: int
    """The largest anonymous resident memory seen."""
    stop_seconds: float | None
    """From the stop request the worker saw to the child's end; None when no stop was asked for."""


def run_watched(
    target: Callable[..., None], args: tuple[object, ...], should_stop: Callable[[], bool], memory_budget: int
) -> Outcome:
    """Run target(*args, stop_event) in a child process until it ends or is killed."""
    context = _context()
    stop_event = context.Event()
    process = context.Process(target=_child_main, args=(target, args, stop_event), daemon=True)
    process.start()
    assert process.pid is not None
    peak, asked_at, ending = 0, None, Ending.EXITED
    while process.is_alive():
        resident = anonymous_resident_bytes(process.pid)
        peak = max(peak, resident)
        if resident > memory_budget:
            ending = Ending.OVER_BUDGET
            break
        if asked_at is None and should_stop():
            asked_at = time.monotonic()
            stop_event.set()
        if asked_at is not None and time.monotonic() - asked_at > CANCEL_GRACE_S:
            ending = Ending.STOPPED
            break
        process.join(WATCH_INTERVAL_S)
    if process.is_alive():
        process.kill()
    process.join()
    stop_seconds = time.monotonic() - asked_at if asked_at is not None else None
    return Outcome(ending, process.exitcode, process.pid, peak, stop_seconds)


def anonymous_resident_bytes(pid: int) -> int:
    """RssAnon of the process: 0 once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def _child_main(target: Callable[..., None], args: tuple[object, ...], stop_event: Event) -> None:
    _die_with_parent()
    target(*args, stop_event)


def _die_with_parent() -> None:
    """Linux delivers SIGKILL to this process when its parent (the fork server, which exits with the worker) dies."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the child outlives a killed worker, fenced by its attempt
        pass


def prepare() -> None:
    """Start the fork server now (it imports the engine and torch once), not when the first job comes."""
    _context()
    multiprocessing.forkserver.ensure_running()


_contexts: list[multiprocessing.context.ForkServerContext] = []


def _context() -> multiprocessing.context.ForkServerContext:
    if not _contexts:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(_PRELOAD)
        _contexts.append(context)
    return _contexts[0]
