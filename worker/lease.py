"""A worker's hold on the job it runs: a heartbeat thread that also watches for cancel requests.

The thread beats every interval (service/jobs/lifecycle.py's `heartbeat`, fenced by the attempt number),
and learns from the same beat whether a cancel was asked for; between beats it reads the cancel flag every
`poll_s`, so that a cancel is seen within a fraction of the 2 s a job has to stop in. The job only checks
two events and never waits for the database. Heartbeats come from their own thread, so long steps without
progress reports (source model outputs, export) do not look like a dead worker; a killed worker
stops beating, and the lost-job sweep (service/jobs/recovery.py) requeues its job.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from types import TracebackType

from service.jobs import lifecycle
from service.jobs.lifecycle import LeaseState

log = logging.getLogger(__name__)


class JobLease:
    def __init__(self, job_id: uuid.UUID, attempt: int, interval_s: float, poll_s: float = 0.2) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.interval_s = interval_s
        self.poll_s = min(poll_s, interval_s)
        self.cancel_requested = threading.Event()
        self.lost = threading.Event()
        """Set when the job is no longer this attempt's: requeued and taken by another worker, or ended."""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{job_id}", daemon=True)

    @property
    def should_stop(self) -> bool:
        return self.cancel_requested.is_set() or self.lost.is_set()

    def __enter__(self) -> JobLease:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        last_beat = time.monotonic()
        while not self._stopped.wait(self.poll_s):
            beat = time.monotonic() - last_beat >= self.interval_s
            try:
                if beat:
                    state = lifecycle.heartbeat(self.job_id, self.attempt)
                    last_beat = time.monotonic()
                else:
                    state = lifecycle.lease_state(self.job_id, self.attempt)
            except Exception:  # a database hiccup: the sweep tolerates gaps up to the heartbeat timeout
                log.warning("job %s: heartbeat failed", self.job_id, exc_info=True)
                continue
            if state == LeaseState.LOST:
                self.lost.set()
                self._stopped.set()
            elif state == LeaseState.CANCEL_REQUESTED:
                self.cancel_requested.set()
