"""Thread budgets applied: the worker process's torch threads, the engine's and the API's ONNX Runtime
sessions. Torch's thread settings are process-wide, so the worker is started as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fusion.cpus import usable_cpus
from fusion.onnx_runtime import session_options
from service.core.config import Settings
from service.inference import runtime

ROOT = Path(__file__).resolve().parents[1]
WORKER_START = """
import worker.tasks  # connects the worker's signal receivers, as a starting worker imports it: first
import os, pyarrow, torch
from celery.signals import worker_init
from fusion.onnx_runtime import session_options
worker_init.send(sender=None)
threads = torch.get_num_threads(), torch.get_num_interop_threads(), session_options().intra_op_num_threads
print(*threads, pyarrow.cpu_count())
print(os.environ["OMP_WAIT_POLICY"])
"""


@pytest.mark.parametrize(
    ("worker_threads", "omp_num_threads", "expected"), [("0", None, usable_cpus()), ("1", None, 1), ("0", "1", 1)]
)
def test_a_started_worker_runs_torch_onnx_runtime_and_arrow_on_its_budget_with_sleeping_threads(
    tmp_path: Path, worker_threads: str, omp_num_threads: str | None, expected: int
) -> None:
    environment = {**os.environ, "FUSEBOX_VAR_DIR": str(tmp_path), "FUSEBOX_WORKER_THREADS": worker_threads}
    for inherited in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "FUSEBOX_ORT_THREADS"):
        environment.pop(inherited, None)
    if omp_num_threads:
        environment["OMP_NUM_THREADS"] = omp_num_threads
    finished = subprocess.run(
        [sys.executable, "-c", WORKER_START], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=120
    )
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.split() == [str(expected), "1", str(expected), str(expected), "PASSIVE"]


def test_engine_sessions_stay_within_the_budget_and_do_not_spin() -> None:
    options = session_options(threads=1000)
    assert options.intra_op_num_threads == usable_cpus()
    assert options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"


@pytest.mark.parametrize("threads", [0, 1000])
def test_api_sessions_default_to_the_budget_and_never_exceed_it(threads: int) -> None:
    options = runtime.session_options(Settings(inference_threads=threads, inference_inter_op_threads=1000))
    assert options.intra_op_num_threads == usable_cpus()
    assert options.inter_op_num_threads == usable_cpus()
