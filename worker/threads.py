"""The worker's thread budget, applied once per process: torch's and ONNX Runtime's threads sized to the
CPUs the process may really use (fusion/cpus.py), not to the host's cores.

Workers share hosts. Left alone, torch and ONNX Runtime each start one thread per core of the host, and
when other processes hold some of those cores the threads wait on each other at every operation: a
frozen Census fusion trained 11x slower beside two busy processes.
"""

from __future__ import annotations

import contextlib
import os

import pyarrow as pa
import torch

from fusion.cpus import usable_cpus


def apply_thread_budget(limit: int = 0) -> int:
    """Size this process's threads: the usable CPUs, at most `limit` (FUSEBOX_WORKER_THREADS; 0: none) and
    OMP_NUM_THREADS. Torch's inter-op pool gets one thread: the engine never runs operators side by side. ONNX Runtime
    sessions the engine creates later read FUSEBOX_ORT_THREADS (fusion/onnx_runtime.py). Arrow, which decodes the
    Parquet columns training streams, gets the budget too, not one thread per host core."""
    budget = usable_cpus(limit, _omp_num_threads())
    os.environ["FUSEBOX_ORT_THREADS"] = str(budget)
    torch.set_num_threads(budget)
    pa.set_cpu_count(budget)
    # Settable once per process, before any inter-op work (even asking for the count starts the pool):
    # a prefork child finds it set by its parent.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return budget


def _omp_num_threads() -> int:
    """OMP_NUM_THREADS ("4", or "4,2" for nested levels), which torch alone would follow: a limit too."""
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    return int(first) if first.isdigit() else 0
