"""The service as the tests run it, for real: service/local_stack.py's API and worker subprocesses, with
small upload limits, training on the CPU and frequent progress reports."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Mapping
from pathlib import Path

from service.local_stack import LocalStack, free_port
from tests.helpers import ROOT

TEST_SETTINGS = {
    "FUSEBOX_MAX_MODEL_BYTES": str(4 * 2**20),
    "FUSEBOX_MAX_DATASET_BYTES": str(4 * 2**20),
    "FUSEBOX_MAX_DATASET_COLUMNS": "60",
    "FUSEBOX_MAX_DATASET_ROWS": "1000000",
    "FUSEBOX_WORKER_DEVICE": "cpu",
    "FUSEBOX_PROGRESS_INTERVAL_S": "0.2",
}
"""Small limits, so that oversized uploads are cheap to make; the CPU, whatever the machine has; progress
often enough for a short job to report some."""


class Stack(LocalStack):
    """A running stack, and what tests do to it beyond HTTP: its admin CLI and its artifact files."""

    def admin(self, *arguments: str) -> str:
        """Runs `fusebox admin ...` against this stack's database; returns what it printed."""
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "admin", *arguments],
            cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def new_tenant(self, prefix: str = "tenant") -> str:
        """Creates a tenant of a fresh name with `fusebox admin`; returns its first API key."""
        printed = self.admin("create-tenant", f"{prefix}-{uuid.uuid4().hex[:8]}")
        return printed.strip().splitlines()[-1]

    def stored_files(self) -> set[Path]:
        """Everything under the artifact root: to show that a refused upload left nothing behind."""
        return {path for path in self.artifacts.rglob("*") if path.is_file()}


def start_stack(
    folder: Path,
    database_url: str | None = None,
    broker_url: str = "filesystem://",
    settings: Mapping[str, str] | None = None,
) -> Stack:
    """The API, ready, and one worker; on the embedded defaults unless given a database and a broker. Every
    stack serves gRPC too, on a port of its own. `settings` add to or override TEST_SETTINGS."""
    grpc = {"FUSEBOX_GRPC_PORT": str(free_port())}
    return Stack.start(folder, database_url, broker_url, settings={**TEST_SETTINGS, **grpc, **(settings or {})})
