"""A bounded load run against `/v2/models/{name}/infer` on loopback: many concurrent keep-alive clients
for a fixed time, JSON and binary requests of 1 to 64 rows, while the API process's memory is sampled.

    .venv/bin/python bench/load_inference.py [--clients 64] [--seconds 60]

Deploys a fused Census model as bench/serving.py does (needs the source models bench/census_fusion.py
leaves in var/bench/models). Prints requests, errors, p50/p99 latency and peak server memory; the run
passes with zero errors and memory flat between the first and the last quarter (mean resident memory of
the last quarter within 10% of the first's). Writes bench/results/load_inference.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.http_load import infer_request, run_client  # noqa: E402
from bench.local_service import deploy_census_fusion, local_service  # noqa: E402
from fusion.data.census import load_census  # noqa: E402
from fusion.onnx_runtime import model_feeds  # noqa: E402
from service.client import FuseboxClient  # noqa: E402
from service.local_stack import LocalStack  # noqa: E402

NAME = "census"
BATCHES = (1, 4, 16, 64)
MEMORY_GROWTH_ALLOWED = 0.10
SAMPLE_EVERY_S = 0.25
RESULTS = ROOT / "bench" / "results"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    census = load_census()
    with tempfile.TemporaryDirectory(prefix="fusebox-load-") as scratch:
        folder = Path(scratch)
        with (
            local_service(folder / "service") as service,
            FuseboxClient(service.url, service.api_key, timeout_s=600) as client,
        ):
            model = deploy_census_fusion(client, census, NAME, folder)
            requests = _requests(service, model, census.test)
            runs, memory = asyncio.run(_load(service, requests, args.clients, args.seconds))

    latencies = sorted(latency for run in runs for latency in run.latencies)
    errors = [error for run in runs for error in run.errors]
    quarter = max(1, len(memory) // 4)
    first, last = statistics.mean(memory[:quarter]), statistics.mean(memory[-quarter:])
    growth = last / first - 1
    figures = {
        "clients": args.clients,
        "seconds": args.seconds,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "requests_per_s": len(latencies) / args.seconds,
        "p50_ms": statistics.median(latencies) * 1e3,
        "p99_ms": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1e3,
        "peak_rss_mib": max(memory) / 2**20,
        "first_quarter_rss_mib": first / 2**20,
        "last_quarter_rss_mib": last / 2**20,
        "memory_growth": growth,
    }
    for key, value in figures.items():
        print(f"{key:<22} {value:,.3f}" if isinstance(value, float) else f"{key:<22} {value:,}")
    verdicts = [
        f"target zero errors: {len(errors)} {'PASS' if not errors else 'FAIL'}",
        f"target memory flat (last quarter within {MEMORY_GROWTH_ALLOWED:.0%} of the first): {growth:+.1%} "
        + ("PASS" if growth <= MEMORY_GROWTH_ALLOWED else "FAIL"),
    ]
    print("\n".join(verdicts))
    if errors:
        print(f"first error: {errors[0]}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "load_inference.json").write_text(json.dumps({**figures, "targets": verdicts}, indent=2))


def _requests(service: LocalStack, model: Path, frame) -> list[bytes]:
    """Every client cycles through its own choice of these: JSON and binary, 1 to 64 rows, different rows."""
    host, port = service.url.removeprefix("http://").split(":")
    headers = {"Authorization": f"Bearer {service.api_key}"}
    inputs = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"]).get_inputs()
    requests = []
    for offset, batch in enumerate(BATCHES):
        feeds = model_feeds(inputs, frame.iloc[offset * 64 : offset * 64 + batch])
        requests += [infer_request(host, int(port), NAME, headers, feeds, binary) for binary in (False, True)]
    return requests


async def _load(service: LocalStack, requests: list[bytes], clients: int, seconds: float):
    host, port = service.url.removeprefix("http://").split(":")
    memory: list[int] = []
    deadline = time.perf_counter() + seconds

    async def sample() -> None:
        while time.perf_counter() < deadline:
            memory.append(service.resident_bytes())
            await asyncio.sleep(SAMPLE_EVERY_S)

    sampler = asyncio.create_task(sample())
    runs = await asyncio.gather(
        *(run_client(host, int(port), requests[i % len(requests)], deadline, measured_from=0.0) for i in range(clients))
    )
    await sampler
    return runs, memory


if __name__ == "__main__":
    main()
