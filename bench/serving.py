"""Serving over HTTP: a fused Census model behind a real uvicorn server on loopback, against the same
model in ONNX Runtime in process (the ceiling).

    .venv/bin/python bench/serving.py [--seconds 3]

Starts the API and a worker on the embedded defaults in a temporary folder, fuses the four Census source
models that bench/census_fusion.py leaves in var/bench/models (one epoch on all training rows: the fused
graph the full job exports, sources and AKF head, with no task answered by a source alone) and deploys it.
Then measures rows/s and p50/p99 latency: one client at batch 1 and 1024, JSON and binary tensors; 32
concurrent batch-1 clients with dynamic batching off and on, and the API process's CPU time per request (all
its threads).
Clients are a minimal keep-alive HTTP/1.1 client on asyncio, so that the load generator takes little of the
CPU it shares with the server. Prints a table and the targets, and writes bench/results/serving.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_load import infer_request, run_client  # noqa: E402
from bench.local_service import deploy_census_fusion, local_service  # noqa: E402
from fusion.data.census import load_census  # noqa: E402
from fusion.onnx_runtime import model_feeds  # noqa: E402
from service.client import FuseboxClient  # noqa: E402
from service.core.config import Settings  # noqa: E402
from service.inference.runtime import create_session  # noqa: E402

NAME = "census"
CLIENTS = 32
RESULTS = ROOT / "bench" / "results"


@dataclass
class Row:
    scenario: str
    batch: int
    clients: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_us: float
    """CPU time per request: the API process's (in process: this one's, ONNX Runtime's threads included)."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per scenario")
    args = parser.parse_args()
    census = load_census()
    frame = census.test.head(1024).reset_index(drop=True)
    with tempfile.TemporaryDirectory(prefix="fusebox-serving-") as scratch:
        folder = Path(scratch)
        with (
            local_service(folder / "service") as service,
            FuseboxClient(service.url, service.api_key, timeout_s=600) as client,
        ):
            session = create_session(str(deploy_census_fusion(client, census, NAME, folder)), Settings())
            rows = _ceiling(session, frame, args.seconds)
            host, port = service.url.removeprefix("http://").split(":")
            headers = {"Authorization": f"Bearer {service.api_key}"}
            http = _HttpBench(host, int(port), headers, session, frame, args.seconds, service.processes["api"].pid)
            _set_batching(client, 0)
            for batch in (1, 1024):
                for binary in (False, True):
                    rows.append(asyncio.run(http.measure(batch, binary, clients=1)))
            rows.append(asyncio.run(http.measure(1, True, clients=CLIENTS, label="batching off")))
            _set_batching(client, None)  # the service's defaults: batching on
            before = client.deployment_batching(NAME, 1)  # its counters include every run so far
            rows.append(asyncio.run(http.measure(1, True, clients=CLIENTS, label="batching on")))
            after = client.deployment_batching(NAME, 1)
            batching = {"requests": after.requests - before.requests, "runs": after.runs - before.runs}

    print(_table(rows))
    verdicts = _targets(rows)
    for line in verdicts:
        print(line)
    print(
        f"batching on (its warm-up included): {batching['requests']:,} requests in {batching['runs']:,} ONNX Runtime "
        "calls"
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(
        json.dumps({"rows": [asdict(row) for row in rows], "targets": verdicts, "batching": batching}, indent=2)
    )


def _set_batching(client: FuseboxClient, wait_ms: float | None) -> None:
    client.set_deployment_batching(NAME, 1, max_batch_wait_ms=wait_ms)
    time.sleep(Settings().inference_deployment_cache_s + 0.1)


def _ceiling(session: ort.InferenceSession, frame: pd.DataFrame, seconds: float) -> list[Row]:
    """The same file in ONNX Runtime in this process, with the service's session settings."""
    rows = []
    for batch in (1, 1024):
        feed = model_feeds(session.get_inputs(), frame.head(batch))
        session.run(None, feed)
        latencies = []
        cpu_started = time.process_time()
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            session.run(None, feed)
            latencies.append(time.perf_counter() - started)
        cpu = time.process_time() - cpu_started
        rows.append(_row("in-process ONNX Runtime (ceiling)", batch, 1, latencies, sum(latencies), cpu))
    return rows


class _HttpBench:
    def __init__(
        self,
        host: str,
        port: int,
        headers: dict[str, str],
        session: ort.InferenceSession,
        frame: pd.DataFrame,
        seconds: float,
        server_pid: int,
    ) -> None:
        self.host, self.port, self.headers = host, port, headers
        self.inputs, self.frame, self.seconds = session.get_inputs(), frame, seconds
        self.server_pid = server_pid

    async def measure(self, batch: int, binary: bool, clients: int, label: str = "") -> Row:
        feeds = model_feeds(self.inputs, self.frame.head(batch))
        request = infer_request(self.host, self.port, NAME, self.headers, feeds, binary)
        deadline = time.perf_counter() + 0.5 + self.seconds
        measured_from = time.perf_counter() + 0.5  # the first half second warms connections and caches
        cpu_from = asyncio.create_task(self._server_cpu_after(0.5))
        runs = await asyncio.gather(
            *(run_client(self.host, self.port, request, deadline, measured_from) for _ in range(clients))
        )
        cpu = _cpu_seconds(self.server_pid) - await cpu_from
        if errors := [error for run in runs for error in run.errors]:
            raise RuntimeError(f"{len(errors)} failed requests, the first: {errors[0]}")
        latencies = [latency for run in runs for latency in run.latencies]
        scenario = f"HTTP {'binary' if binary else 'JSON'}" + (f", {clients} clients, {label}" if label else "")
        return _row(scenario, batch, clients, latencies, self.seconds, cpu)

    async def _server_cpu_after(self, delay: float) -> float:
        await asyncio.sleep(delay)
        return _cpu_seconds(self.server_pid)


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far, all its threads."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _row(scenario: str, batch: int, clients: int, latencies: list[float], seconds: float, cpu_seconds: float) -> Row:
    ordered = sorted(latencies)
    return Row(
        scenario=scenario,
        batch=batch,
        clients=clients,
        rows_per_s=len(latencies) * batch / seconds,
        p50_ms=statistics.median(ordered) * 1e3,
        p99_ms=ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
        requests=len(latencies),
        cpu_us=cpu_seconds / len(latencies) * 1e6,
    )


def _table(rows: list[Row]) -> str:
    lines = [
        "| scenario | batch | clients | rows/s | p50 ms | p99 ms | requests | CPU us/request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scenario} | {r.batch} | {r.clients} | {r.rows_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
        f"{r.requests:,} | {r.cpu_us:,.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def _targets(rows: list[Row]) -> list[str]:
    def find(scenario: str, batch: int) -> Row:
        return next(r for r in rows if r.scenario == scenario and r.batch == batch)

    ceiling = find("in-process ONNX Runtime (ceiling)", 1024)
    model_cpu = find("in-process ONNX Runtime (ceiling)", 1).cpu_us
    binary = find("HTTP binary", 1024)
    single = find("HTTP binary", 1)
    off = find(f"HTTP binary, {CLIENTS} clients, batching off", 1)
    on = find(f"HTTP binary, {CLIENTS} clients, batching on", 1)
    share = binary.rows_per_s / ceiling.rows_per_s
    gain = on.rows_per_s / off.rows_per_s
    tail = on.p99_ms / single.p99_ms
    return [
        f"target binary batch-1024 >= 50% of the in-process ceiling: {'PASS' if share >= 0.5 else 'FAIL'} "
        f"({share:.0%}: {binary.rows_per_s:,.0f} vs {ceiling.rows_per_s:,.0f} rows/s)",
        f"target {CLIENTS} clients, batching on >= 3x batching off: {'PASS' if gain >= 3 else 'FAIL'} "
        f"({gain:.2f}x: {on.rows_per_s:,.0f} vs {off.rows_per_s:,.0f} rows/s)",
        f"target {CLIENTS} clients, batching on p99 <= 4x the batch-1 p99: {'PASS' if tail <= 4 else 'FAIL'} "
        f"({tail:.2f}x: {on.p99_ms:.2f} vs {single.p99_ms:.2f} ms; vs batching off p99 {off.p99_ms:.2f} ms)",
        f"server CPU per batch-1 request: {single.cpu_us:,.0f} us with one client; {off.cpu_us:,.0f} us and "
        f"{on.cpu_us:,.0f} us with {CLIENTS} clients, batching off and on; ONNX Runtime in process: {model_cpu:,.0f} "
        f"us per batch-1 call. Batching merges the calls, not the HTTP and Python work of each request",
    ]


if __name__ == "__main__":
    main()
