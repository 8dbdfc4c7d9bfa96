"""A fusebox service for benchmarks: the API (and optionally one worker) as subprocesses on the
embedded defaults in a folder of their own, on a free loopback port; stopped on exit."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class LocalService:
    url: str
    api_key: str
    folder: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def api_pid(self) -> int:
        return self.processes["api"].pid

    def resident_bytes(self, name: str = "api") -> int:
        """The process's resident memory now (VmRSS), in bytes."""
        status = Path(f"/proc/{self.processes[name].pid}/status").read_text()
        kib = next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))
        return int(kib) * 1024


@contextmanager
def local_service(folder: Path, worker: bool = False, env: dict[str, str] | None = None) -> Iterator[LocalService]:
    folder.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    environment = {
        **os.environ,
        "FUSEBOX_VAR_DIR": str(folder / "var"),
        "DATABASE_URL": "",
        "CELERY_BROKER_URL": "filesystem://",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    commands = {
        "api": [sys.executable, "-m", "uvicorn", "service.main:app", "--port", str(port), "--log-level", "warning"]
    }
    if worker:
        commands["worker"] = [sys.executable, "-m", "celery", "-A", "worker.app:celery_app", "worker", "--pool=solo",
                              "--concurrency=1", "--loglevel=WARNING", f"--hostname=bench-{port}@%h"]  # fmt: skip
    service = LocalService(url=f"http://127.0.0.1:{port}", api_key="", folder=folder)
    try:
        for name, command in commands.items():
            log = (folder / f"{name}.log").open("wb")
            service.processes[name] = subprocess.Popen(
                command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        _wait_ready(service)
        service.api_key = (folder / "var" / "api-key").read_text().strip()
        yield service
    finally:
        for process in service.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in service.processes.values():
            process.wait(timeout=30)


def _wait_ready(service: LocalService, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.processes["api"].poll() is not None:
            raise RuntimeError(f"the API exited; see {service.folder / 'api.log'}")
        try:
            if httpx.get(f"{service.url}/v2/health/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the API did not become ready in {timeout:.0f}s; see {service.folder / 'api.log'}")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
