"""Serving: a fused Census model behind the real API on loopback, over HTTP JSON, HTTP binary tensors and
gRPC, at batch 1 and 1024, with 1 and 2 API processes (FUSEBOX_API_WORKERS), against the same model in
ONNX Runtime in process (the ceiling).

    .venv/bin/python bench/serving.py [--seconds 3] [--processes 1,2] [--clients 1,8] [--rounds 2]

Starts the API and a worker on the embedded defaults in a temporary folder, fuses the four Census source
models that bench/census_fusion.py leaves in var/bench/models (one epoch on all training rows: the fused
graph the full job exports, sources and AKF head) and deploys it; the worker is stopped once it has. The
load generator runs on one CPU and the server on the others (the API is started pinned to them, so that
each of its processes and threads inherits that affinity; on a 2-core machine: one each). For each number
of API processes, each protocol and batch size is measured with 1 client and with several, each client on a
connection of its own (the kernel hands each new connection to one of the processes): rows/s, p50/p99
latency, and the server's CPU time per request (every API process, all threads). The process counts take
turns for `--rounds` rounds, and each cell is the median of its rounds, so that a busy minute on this shared
machine does not fall on one process count only. Dynamic batching is on
(the service's defaults). Clients are minimal: a keep-alive HTTP/1.1 client on asyncio (bench/http_load.py)
and grpc.aio sending pre-serialized messages (bench/grpc_load.py). Prints the tables and writes
bench/results/serving.json.
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
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import onnxruntime as ort
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.grpc_load import infer_message, run_grpc_client  # noqa: E402
from bench.http_load import ClientRun, infer_request, run_client  # noqa: E402
from bench.local_service import deploy_census_fusion, local_service  # noqa: E402
from fusion.data.census import load_census  # noqa: E402
from fusion.onnx_runtime import model_feeds  # noqa: E402
from service.client import FuseboxClient  # noqa: E402
from service.core.config import Settings  # noqa: E402
from service.inference.runtime import create_session  # noqa: E402
from service.local_stack import LocalStack, free_port  # noqa: E402

NAME = "census"
PROTOCOLS = ("HTTP JSON", "HTTP binary", "gRPC")
BATCHES = (1, 1024)
WARM_S = 1.0
"""Unmeasured load before each measurement: connections, caches, and each process's first session load."""
RESULTS = ROOT / "bench" / "results"


@dataclass
class Row:
    scenario: str
    processes: int
    batch: int
    clients: int
    rows_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    cpu_us: float
    """Server CPU time per request: every API process's, all threads (in process: this one's)."""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=3.0, help="measured time per scenario")
    parser.add_argument("--processes", default="1,2", help="API process counts to measure")
    parser.add_argument("--clients", default="1,8", help="concurrent client counts to measure")
    parser.add_argument("--rounds", type=int, default=2, help="turns of every process count; cells are medians")
    args = parser.parse_args()
    processes = [int(count) for count in args.processes.split(",")]
    clients = [int(count) for count in args.clients.split(",")]
    client_cpu, server_cpus = _split_cpus()
    census = load_census()
    frame = census.test.head(max(BATCHES)).reset_index(drop=True)
    settings = {"FUSEBOX_GRPC_PORT": str(free_port())}
    with tempfile.TemporaryDirectory(prefix="fusebox-serving-") as scratch:
        folder = Path(scratch)
        os.sched_setaffinity(0, server_cpus)  # what the API, its workers and the ceiling's threads inherit
        with (
            local_service(folder / "service", settings) as service,
            FuseboxClient(service.url, service.api_key, timeout_s=600) as client,
        ):
            session = create_session(str(deploy_census_fusion(client, census, NAME, folder)), Settings())
            service.kill_workers()  # idle from now on: nothing of the server but the API runs
            rows = _ceiling(session, frame, args.seconds)
            measured: list[Row] = []
            for _ in range(args.rounds):
                for count in processes:
                    _restart_api(service, count, server_cpus)
                    os.sched_setaffinity(0, {client_cpu})
                    bench = _Bench(service, session.get_inputs(), frame, args.seconds, count)
                    asyncio.run(bench.warm())
                    for protocol in PROTOCOLS:
                        for batch in BATCHES:
                            for concurrent in clients:
                                measured.append(asyncio.run(bench.measure(protocol, batch, concurrent)))
            rows += _medians(measured)
    print(
        f"load generator on CPU {client_cpu}, server on CPUs {sorted(server_cpus)}; dynamic batching on; "
        f"medians of {args.rounds} rounds (requests: their sum)"
    )
    print(_table(rows))
    print()
    print(_comparison(rows, processes, clients))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "serving.json").write_text(
        json.dumps({"client_cpu": client_cpu, "server_cpus": sorted(server_cpus), "rows": [asdict(r) for r in rows]})
    )


def _split_cpus() -> tuple[int, set[int]]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("this bench pins the load generator and the server to different CPUs: it needs two")
    return cpus[0], set(cpus[1:])


def _restart_api(service: LocalStack, processes: int, server_cpus: set[int]) -> None:
    os.sched_setaffinity(0, server_cpus)
    service.env["FUSEBOX_API_WORKERS"] = str(processes)
    service.restart_api()


def _ceiling(session: ort.InferenceSession, frame: pd.DataFrame, seconds: float) -> list[Row]:
    """The same file in ONNX Runtime in this process, with the service's session settings, on the server's CPUs."""
    rows = []
    for batch in BATCHES:
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
        rows.append(_row("in-process ONNX Runtime (ceiling)", 0, batch, 1, latencies, sum(latencies), cpu))
    return rows


class _Bench:
    def __init__(
        self, service: LocalStack, inputs: list[ort.NodeArg], frame: pd.DataFrame, seconds: float, processes: int
    ) -> None:
        self.service, self.inputs, self.frame = service, inputs, frame
        self.seconds, self.processes = seconds, processes
        self.host, port = service.url.removeprefix("http://").split(":")
        self.port = int(port)

    def _client(self, protocol: str, batch: int) -> Callable[[float, float], Awaitable[ClientRun]]:
        feeds = model_feeds(self.inputs, self.frame.head(batch))
        if protocol == "gRPC":
            message = infer_message(NAME, feeds)
            return lambda deadline, start: run_grpc_client(
                self.service.grpc_target, message, self.service.api_key, deadline, start
            )
        request = infer_request(self.host, self.port, NAME, self.service.headers, feeds, protocol == "HTTP binary")
        return lambda deadline, start: run_client(self.host, self.port, request, deadline, start)

    async def warm(self) -> None:
        """Several connections of each protocol, so that every process has loaded the model."""
        deadline = time.perf_counter() + 3 * WARM_S
        runs = [self._client(protocol, 1)(deadline, deadline) for protocol in PROTOCOLS for _ in range(8)]
        await asyncio.gather(*runs)

    async def measure(self, protocol: str, batch: int, clients: int) -> Row:
        client = self._client(protocol, batch)
        measured_from = time.perf_counter() + WARM_S
        deadline = measured_from + self.seconds
        cpu_from = asyncio.create_task(self._server_cpu_after(WARM_S))
        runs = await asyncio.gather(*(client(deadline, measured_from) for _ in range(clients)))
        cpu = _server_cpu_seconds(self.service) - await cpu_from
        if errors := [error for run in runs for error in run.errors]:
            raise RuntimeError(f"{protocol}: {len(errors)} failed requests, the first: {errors[0]}")
        latencies = [latency for run in runs for latency in run.latencies]
        return _row(protocol, self.processes, batch, clients, latencies, self.seconds, cpu)

    async def _server_cpu_after(self, delay: float) -> float:
        await asyncio.sleep(delay)
        return _server_cpu_seconds(self.service)


def _server_cpu_seconds(service: LocalStack) -> float:
    """User and system CPU time so far of every process of the API's session (its supervisor and workers)."""
    session = service.processes["api"].pid
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[3]) == session:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def _row(
    scenario: str,
    processes: int,
    batch: int,
    clients: int,
    latencies: list[float],
    seconds: float,
    cpu_seconds: float,
) -> Row:
    ordered = sorted(latencies)
    return Row(
        scenario=scenario,
        processes=processes,
        batch=batch,
        clients=clients,
        rows_per_s=len(latencies) * batch / seconds,
        p50_ms=statistics.median(ordered) * 1e3,
        p99_ms=ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
        requests=len(latencies),
        cpu_us=cpu_seconds / len(latencies) * 1e6,
    )


def _medians(rows: list[Row]) -> list[Row]:
    """One row per scenario, in the order first measured: the median of each figure over its rounds."""
    rounds: dict[tuple[str, int, int, int], list[Row]] = {}
    for row in rows:
        rounds.setdefault((row.scenario, row.processes, row.batch, row.clients), []).append(row)
    return [
        Row(
            *key,
            rows_per_s=statistics.median(r.rows_per_s for r in same),
            p50_ms=statistics.median(r.p50_ms for r in same),
            p99_ms=statistics.median(r.p99_ms for r in same),
            requests=sum(r.requests for r in same),
            cpu_us=statistics.median(r.cpu_us for r in same),
        )
        for key, same in rounds.items()
    ]


def _table(rows: list[Row]) -> str:
    lines = [
        "| scenario | API processes | batch | clients | rows/s | p50 ms | p99 ms | requests | server CPU us/request |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.scenario} | {r.processes or '-'} | {r.batch} | {r.clients} | {r.rows_per_s:,.0f} | {r.p50_ms:.2f} | "
        f"{r.p99_ms:.2f} | {r.requests:,} | {r.cpu_us:,.0f} |"
        for r in rows
    ]
    return "\n".join(lines)


def _comparison(rows: list[Row], processes: list[int], clients: list[int]) -> str:
    """rows/s side by side: the protocols at each setting, and each protocol's gain from more processes."""
    found = {(r.scenario, r.processes, r.batch, r.clients): r.rows_per_s for r in rows}
    header = "| API processes | batch | clients | " + " | ".join(f"{p} rows/s" for p in PROTOCOLS)
    header += " | gRPC / HTTP JSON | gRPC / HTTP binary |"
    lines = [header, "|---" * (5 + len(PROTOCOLS)) + "|"]
    for count in processes:
        for batch in BATCHES:
            for concurrent in clients:
                speeds = [found[protocol, count, batch, concurrent] for protocol in PROTOCOLS]
                lines.append(
                    f"| {count} | {batch} | {concurrent} | "
                    + " | ".join(f"{speed:,.0f}" for speed in speeds)
                    + f" | {speeds[2] / speeds[0]:.2f}x | {speeds[2] / speeds[1]:.2f}x |"
                )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
