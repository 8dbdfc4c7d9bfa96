"""A job's watched process (worker/supervisor.py), with real child processes: killed past its memory
budget, killed when it does not stop in time after being asked, and left to end by itself otherwise."""

from __future__ import annotations

import os
import signal
import time
from multiprocessing.synchronize import Event

from worker.runner import unexpected_end
from worker.supervisor import CANCEL_GRACE_S, Ending, run_watched

MiB = 2**20


def finishes(seconds: float, stop: Event) -> None:
    time.sleep(seconds)


def grows_forever(stop: Event) -> None:
    """Allocates and touches 20 MiB every few milliseconds, never checking `stop`."""
    held = []
    while True:
        held.append(bytearray(20 * MiB))
        time.sleep(0.005)


def ignores_stop(stop: Event) -> None:
    """A computation that never reaches a point where it checks for a stop."""
    while True:
        sum(range(100_000))


def honours_stop(stop: Event) -> None:
    while not stop.wait(0.01):
        pass
    raise SystemExit(0)


def test_a_process_that_ends_by_itself_gives_its_exit_status() -> None:
    outcome = run_watched(finishes, (0.2,), lambda: False, memory_budget=2**40)
    assert (outcome.ending, outcome.exitcode, outcome.stop_seconds) == (Ending.EXITED, 0, None)


def test_a_process_over_its_memory_budget_is_killed() -> None:
    outcome = run_watched(grows_forever, (), lambda: False, memory_budget=300 * MiB)
    assert outcome.ending == Ending.OVER_BUDGET and outcome.exitcode is not None and outcome.exitcode < 0
    assert outcome.peak_bytes > 300 * MiB


def test_a_process_that_ignores_a_stop_is_killed_after_the_grace_time() -> None:
    asked = time.monotonic() + 0.5
    outcome = run_watched(ignores_stop, (), lambda: time.monotonic() > asked, memory_budget=2**40)
    assert outcome.ending == Ending.STOPPED and outcome.exitcode is not None and outcome.exitcode < 0
    assert outcome.stop_seconds is not None and outcome.stop_seconds >= CANCEL_GRACE_S
    print(f"stopped {outcome.stop_seconds:.2f} s after the request (killed)")


def test_a_process_that_honours_a_stop_ends_by_itself() -> None:
    asked = time.monotonic() + 0.5
    outcome = run_watched(honours_stop, (), lambda: time.monotonic() > asked, memory_budget=2**40)
    assert (outcome.ending, outcome.exitcode) == (Ending.EXITED, 0)
    assert outcome.stop_seconds is not None
    print(f"stopped {outcome.stop_seconds:.2f} s after the request (by itself)")


def killed_from_outside(stop: Event) -> None:
    """What the kernel's out-of-memory killer does to a process."""
    os.kill(os.getpid(), signal.SIGKILL)


def test_a_process_killed_from_outside_ends_with_its_signal() -> None:
    outcome = run_watched(killed_from_outside, (), lambda: False, memory_budget=2**40)
    assert (outcome.ending, outcome.exitcode) == (Ending.EXITED, -signal.SIGKILL)
    assert "out of memory" in unexpected_end(outcome.exitcode)
