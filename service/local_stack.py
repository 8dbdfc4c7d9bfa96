"""A whole fusebox stack on this machine, for the test suite and the benchmarks: the API (uvicorn) and
Celery workers as subprocesses, on a free loopback port, with their settings in their environment and a
log file per process in the stack's folder.

A development utility: the service itself never imports it. Tests and benchmarks both start stacks and
must not import each other, so the one runner lives here. It imports neither the engine nor torch: it only
starts processes and talks HTTP.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import httpx

SOURCE_ROOT = Path(__file__).resolve().parents[1]
"""The folder holding the `service` and `worker` packages. The processes start there, so that `python -m`
runs this checkout's code even where another checkout is installed."""

STOP_TIMEOUT_S = 20
"""How long a process may take over a graceful shutdown (SIGTERM) before it is killed (SIGKILL)."""


@dataclass
class LocalStack:
    """A running API and its workers. Stop it with `stop()`, or use it as a context manager."""

    folder: Path
    """Logs (`{process}.log`), the embedded database and broker (`var/`), and the artifacts."""
    env: dict[str, str]
    """Every process's environment: restarted processes get the same settings."""
    port: int
    log_level: str = "info"
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    """By name: `api`, `worker`, and `worker-N` for workers added later; killed ones stay, with their logs."""
    api_key: str = ""
    """The key of the tenant `local`, which the API creates at its first start."""

    @classmethod
    def start(
        cls,
        folder: Path,
        database_url: str | None = None,
        broker_url: str = "filesystem://",
        settings: Mapping[str, str] | None = None,
        workers: int = 1,
        log_level: str = "info",
    ) -> Self:
        """The API, ready, then `workers` workers. By default on the embedded defaults: SQLite and kombu's
        filesystem broker under `folder`. `settings` are more FUSEBOX_* variables; `log_level` is both
        uvicorn's and Celery's (a benchmark keeps logging off the measured path with "warning")."""
        folder.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "FUSEBOX_VAR_DIR": str(folder / "var"),
            "FUSEBOX_ARTIFACT_ROOT": str(folder / "artifacts"),
            "FUSEBOX_DATA_ROOT": str(folder / "data"),
            "DATABASE_URL": database_url or f"sqlite:///{folder / 'var' / 'fusebox.db'}",
            "CELERY_BROKER_URL": broker_url,
            "PYTHONUNBUFFERED": "1",
            **(settings or {}),
        }
        stack = cls(folder=folder, env=env, port=free_port(), log_level=log_level)
        try:
            stack.start_api()  # first: it migrates the database the workers read
            for _ in range(workers):
                stack.add_worker()
        except BaseException:
            stack.stop()
            raise
        stack.api_key = (folder / "var" / "api-key").read_text().strip()
        return stack

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def artifacts(self) -> Path:
        return Path(self.env["FUSEBOX_ARTIFACT_ROOT"])

    @property
    def data_root(self) -> Path:
        """Where datasets registered by reference must lie."""
        return Path(self.env["FUSEBOX_DATA_ROOT"])

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    def client(self, api_key: str | None = None, timeout_s: float = 60) -> httpx.Client:
        """A client acting for the tenant `local`, or for whoever holds `api_key` ("" for no key at all)."""
        key = self.api_key if api_key is None else api_key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=timeout_s, headers=headers)

    @property
    def grpc_target(self) -> str:
        """host:port of the gRPC inference service; the stack serves it when started with FUSEBOX_GRPC_PORT."""
        return f"127.0.0.1:{self.env['FUSEBOX_GRPC_PORT']}"

    def start_api(self, ready_timeout_s: float = 90) -> None:
        """The API as process `api` (again, after it was killed), on the stack's port, in FUSEBOX_API_WORKERS
        processes (`python -m service.serve`); ready when this returns."""
        self._start(
            "api",
            [sys.executable, "-m", "service.serve", "--host", "127.0.0.1", "--port", str(self.port),
             "--log-level", self.log_level],
        )  # fmt: skip
        self.wait_ready(ready_timeout_s)

    def restart_api(self) -> None:
        """SIGKILL to the API, then a new one on the same port: the API holds no state of its own."""
        self.kill("api")
        self.start_api()

    def add_worker(self) -> str:
        """One more worker (`worker`, then `worker-N`); returns its name. It is not waited for: a job queued
        meanwhile waits in the queue."""
        name = "worker" if "worker" not in self.processes else f"worker-{len(self.processes)}"
        self._start(
            name,
            [sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker", "--pool=solo", "--concurrency=1",
             "--queues=fusion", f"--loglevel={self.log_level.upper()}", f"--hostname={name}-{uuid.uuid4().hex[:6]}@%h"],
        )  # fmt: skip
        return name

    def live_workers(self) -> list[str]:
        return [
            name for name, process in self.processes.items() if name.startswith("worker") and process.poll() is None
        ]

    def kill(self, name: str) -> None:
        """SIGKILL to the process's group: no graceful shutdown, no acknowledgement, no last word."""
        process = self.processes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

    def kill_workers(self) -> None:
        for name in self.live_workers():
            self.kill(name)

    def wait_ready(self, timeout_s: float = 90) -> None:
        """Until the API answers ready; fails at once, with the logs, if the API process exits."""
        deadline = time.monotonic() + timeout_s
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.processes["api"].poll() is not None:
                    raise RuntimeError(f"the API exited during start-up\n{self.logs()}")
                try:
                    if client.get("/v2/health/ready", timeout=2).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        raise RuntimeError(f"the API did not become ready in {timeout_s:.0f}s\n{self.logs()}")

    def log_path(self, name: str) -> Path:
        return self.folder / f"{name}.log"

    def logs(self, tail_chars: int = 4000) -> str:
        """The end of every process's log: for the message of a failure."""
        return "\n".join(
            f"--- {name} ---\n" + self.log_path(name).read_text(errors="replace")[-tail_chars:]
            for name in self.processes
        )

    def resident_bytes(self, name: str = "api") -> int:
        """The process's resident memory now (VmRSS), in bytes."""
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024

    def stop(self) -> None:
        """SIGTERM to every process's group, then SIGKILL to those still running after STOP_TIMEOUT_S."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in self.processes.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    def _start(self, name: str, command: list[str]) -> None:
        """Appends to the process's log, so that a restarted process keeps its predecessor's lines."""
        with self.log_path(name).open("ab") as log:
            self.processes[name] = subprocess.Popen(
                command, cwd=SOURCE_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )


def free_port() -> int:
    """A loopback port nothing listens on now (the OS's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
