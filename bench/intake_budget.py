"""Model intake under amplifying uploads, on a live API (embedded defaults, no worker).

    .venv/bin/python bench/intake_budget.py [--weights-mib 1024]

Uploads, one at a time: the 20000 x 20000 ConstantOfShape model, the 40 chained 3000 x 3000 MatMuls (both
refused by the intake budget), and a valid model whose weights file holds --weights-mib MiB (accepted and
stored). For each: the answer, the seconds to it, the API's peak resident memory above what it held before
(VmHWM, reset per upload), the peak of its anonymous memory (the heap, sampled; a mapped weights file is
not in it), and the slowest /v2/health/live answer while the upload ran. Prints one table.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import BinaryIO

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from service.local_stack import LocalStack  # noqa: E402
from tests.helpers.amplifiers import chained_matmuls, constant_of_shape_bomb, external_mlp  # noqa: E402

SAMPLE_S = 0.01


def status_kib(pid: int, field: str) -> int:
    lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    return int(next(line.split()[1] for line in lines if line.startswith(f"{field}:")))


class Watch:
    """While an upload runs: the API's anonymous memory, sampled, and the health route's answer times."""

    def __init__(self, stack: LocalStack) -> None:
        self.pid = stack.processes["api"].pid
        self.url = stack.url
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")  # VmHWM starts again from the current RSS
        self.rss_before = status_kib(self.pid, "VmRSS")
        self.anon_before = status_kib(self.pid, "RssAnon")
        self.anon_peak = self.anon_before
        self.health: list[float] = []
        self.done = threading.Event()
        self.threads = [threading.Thread(target=self._sample), threading.Thread(target=self._probe_health)]

    def _sample(self) -> None:
        while not self.done.wait(SAMPLE_S):
            self.anon_peak = max(self.anon_peak, status_kib(self.pid, "RssAnon"))

    def _probe_health(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            while not self.done.wait(0.05):
                start = time.perf_counter()
                client.get("/v2/health/live")
                self.health.append(time.perf_counter() - start)

    def __enter__(self) -> Watch:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.done.set()
        for thread in self.threads:
            thread.join()

    def row(self, name: str, status: int, seconds: float) -> str:
        peak = (status_kib(self.pid, "VmHWM") - self.rss_before) / 1024
        anon = (self.anon_peak - self.anon_before) / 1024
        health = f"{max(self.health):.3f}" if self.health else "- (none sent: too quick)"
        return f"| {name} | {status} | {seconds:.2f} | {peak:,.0f} | {anon:,.0f} | {health} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights-mib", type=int, default=1024)
    args = parser.parse_args()
    side = int((args.weights_mib * 2**20 // 4) ** 0.5)
    with tempfile.TemporaryDirectory(prefix="intake-bench-") as scratch:
        folder = Path(scratch)
        content, weights, _ = external_mlp(folder, side)
        heavy = f"valid model, {weights.stat().st_size / 2**20:,.0f} MiB weights"
        uploads: list[tuple[str, Callable[[httpx.Client], httpx.Response]]] = [
            ("ConstantOfShape 20000x20000", lambda c: send(c, "bomb", constant_of_shape_bomb().SerializeToString())),
            ("40 chained 3000x3000 MatMuls", lambda c: send(c, "chain", chained_matmuls().SerializeToString())),
            (heavy, lambda c: send(c, "heavy", content, weights)),
        ]
        rows = ["| upload | status | seconds | peak RSS growth MiB | peak anon growth MiB | slowest health s |"]
        rows.append("| --- | --- | --- | --- | --- | --- |")
        with LocalStack.start(folder / "stack", workers=0, log_level="warning") as stack, stack.client() as client:
            for name, upload in uploads:
                with Watch(stack) as watch:
                    start = time.perf_counter()
                    status = upload(client).status_code
                    seconds = time.perf_counter() - start
                rows.append(watch.row(name, status, seconds))
    print("\n".join(rows))


def send(client: httpx.Client, name: str, content: bytes, weights: Path | None = None) -> httpx.Response:
    with ExitStack() as opened:
        files: dict[str, tuple[str, bytes | BinaryIO]] = {"file": ("model.onnx", content)}
        if weights is not None:
            files["weights"] = ("model.onnx.data", opened.enter_context(weights.open("rb")))
        return client.post("/v1/models", files=files, data={"name": name, "task": "income"}, timeout=600)


if __name__ == "__main__":
    main()
