"""What the remote commands print: plain tables, and a job's progress as it runs."""

from __future__ import annotations

import sys
from typing import TextIO

from fusion.report_table import format_report_table  # standard library only: the engine's own report table
from service.client.schemas import Job

BAR_WIDTH = 30


def report_table(job: Job) -> str:
    return format_report_table(job.report) if job.report else "(the job has no report)"


class JobProgress:
    """Follows a job: stages and each epoch's validation metrics stay on screen, under a progress bar.

    On a terminal the bar redraws in place; into a file or a pipe it is written every 10% and at the end,
    so that logs stay short.
    """

    def __init__(self, out: TextIO = sys.stderr) -> None:
        self.out = out
        self.live = out.isatty()
        self.stage: str | None = None
        self.epochs_shown = 0
        self.drawn_at = -100.0

    def __call__(self, job: Job) -> None:
        notes = []
        if job.stage != self.stage and job.stage and not job.finished:
            notes.append(f"- {job.stage}")
        self.stage = job.stage
        for entry in job.metrics[self.epochs_shown :]:
            metrics = " ".join(f"{task} {value:.4f}" for task, value in entry.validation.items() if value is not None)
            notes.append(f"epoch {entry.epoch}/{job.max_epochs}: train loss {entry.train_loss:.4f} | {metrics}")
        self.epochs_shown = len(job.metrics)
        for note in notes:
            self.out.write(("\r" if self.live else "") + note.ljust(BAR_WIDTH + 40) + "\n")
        if self.live or job.finished or job.progress - self.drawn_at >= 10:
            self.drawn_at = job.progress
            filled = int(job.progress / 100 * BAR_WIDTH)
            bar = f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {job.progress:5.1f}%"
            bar += f" epoch {job.epoch}/{job.max_epochs}"
            bar += pace(job)
            ending = "\n" if job.finished or not self.live else ""
            self.out.write(("\r" if self.live else "") + f"{bar} {job.status}{ending}")
        self.out.flush()


def pace(job: Job) -> str:
    """' | 41,000 rows/s, about 3 min left' while a job trains; '' before its pace is known or once it ended."""
    if job.finished or not job.rows_per_second:
        return ""
    left = "" if job.eta_seconds is None else f", about {duration(job.eta_seconds)} left"
    return f" | {job.rows_per_second:,.0f} rows/s{left}"


def duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
