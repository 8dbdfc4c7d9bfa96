"""The job memory estimate (fusion/budget.py): the right order of magnitude against a measured training
run, refusing the issue's job and accepting the usual ones; and the memory a worker may use (fusion/memory.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest

from fusion.akf.sources import FusionSource, plan_levels, usable_spine
from fusion.budget import RUNTIME_BYTES, JobShape, SourceShape, estimate_job
from fusion.intake import LoadedModel
from fusion.memory import usable_memory_bytes
from fusion.spec import Hyperparameters, Strategy
from service.jobs.budget import source_shape
from service.models.inspection import summary
from tests.helpers import ROOT

GiB = 2**30

MEASURE = """
import json, sys, threading
import torch
from fusion.akf.model import AKFConfig, AKFusion, FusionLayout, SourceSlot
from fusion.akf.strategies import FrozenFusion, level_key, output_key
from fusion.tasks import Task
from fusion.task_types import TaskType
from fusion.training import TrainConfig, fit

def anonymous():
    line = next(l for l in open("/proc/self/status") if l.startswith("RssAnon:"))
    return int(line.split()[1]) * 1024

c = json.loads(sys.argv[1])
torch.set_num_threads(1)
tasks = [Task(f"t{i}", TaskType.BINARY, f"t{i}") for i in range(c["tasks"])]
slots = tuple(SourceSlot(f"s{i}", i % c["tasks"], (c["width"],) * c["levels"], False) for i in range(c["sources"]))
config = AKFConfig(d_model=c["d_model"], heads=c["heads"], levels=c["levels"], tower_hidden=c["tower_hidden"])
model = FrozenFusion(AKFusion(FusionLayout(tuple(tasks), slots), config))
def rows(n):
    features = {level_key(i, l): torch.randn(n, c["width"]) for i in range(c["sources"]) for l in range(c["levels"])}
    features.update({output_key(i): torch.randn(n) for i in range(c["sources"])})
    return features, {t.label: torch.randint(0, 2, (n,)).float() for t in tasks}
train, validation = rows(c["train_rows"]), rows(c["validation_rows"])
before = peak = anonymous()
done = threading.Event()
def watch():
    global peak
    while not done.wait(0.002):
        peak = max(peak, anonymous())
watcher = threading.Thread(target=watch, daemon=True)
watcher.start()
fit(model, tasks, train, validation, TrainConfig(batch_size=c["batch_size"], max_epochs=1, device="cpu"))
done.set()
watcher.join()
print(json.dumps({"grew": peak - before}))
"""


def shape(
    tasks: int = 2,
    sources: int = 4,
    width: int = 64,
    rows: int = 20_000,
    strategy: Strategy = Strategy.FROZEN,
    **hyperparameters: int,
) -> JobShape:
    levels = hyperparameters.get("levels", 3)
    return JobShape(
        task_widths=(1,) * tasks,
        sources=tuple(
            SourceShape(i % tasks, (width,) * levels, parameters=50_000, input_width=40, activation_width=4 * width)
            for i in range(sources)
        ),
        train_rows=rows,
        validation_rows=rows // 4,
        strategy=strategy,
        hyperparameters=Hyperparameters(**hyperparameters),
    )


def test_the_estimate_is_the_measured_peak_within_a_small_factor() -> None:
    """A real training epoch in a fresh process, its anonymous memory sampled: what the job adds to the
    runtime is within 2x of the estimate (which leaves the runtime out of this comparison)."""
    case = {"tasks": 2, "sources": 4, "width": 32, "levels": 3, "d_model": 64, "heads": 4, "tower_hidden": 32,
            "batch_size": 2048, "train_rows": 8192, "validation_rows": 2048}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-c", MEASURE, json.dumps(case)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    grew = json.loads(done.stdout.strip().splitlines()[-1])["grew"]
    job = JobShape(
        task_widths=(1, 1),
        sources=tuple(SourceShape(task=i % 2, level_widths=(32,) * 3) for i in range(4)),
        train_rows=case["train_rows"],
        validation_rows=case["validation_rows"],
        hyperparameters=Hyperparameters(d_model=64, heads=4, levels=3, tower_hidden=32, batch_size=2048),
    )
    estimated = estimate_job(job).peak_bytes - RUNTIME_BYTES
    print(f"measured growth {grew / 2**20:.0f} MiB, estimated {estimated / 2**20:.0f} MiB")
    assert grew / 2 < estimated < grew * 2


def test_the_issues_job_is_far_over_any_usual_worker() -> None:
    """batch_size 1,000,000, d_model 1024, heads 64, levels 16, tower_hidden 4096 on 20,000 rows."""
    estimate = estimate_job(shape(batch_size=1_000_000, d_model=1024, heads=64, levels=16, tower_hidden=4096))
    assert estimate.peak_bytes > 100 * GiB
    assert estimate.activation_bytes > estimate.parameter_bytes


def test_the_default_and_the_demos_jobs_are_small() -> None:
    assert estimate_job(shape()).peak_bytes < 1 * GiB
    census = SourceShape(task=0, level_widths=(135, 32, 16), parameters=8000, input_width=40, activation_width=400)
    demo = JobShape(
        task_widths=(1, 1),
        sources=(census, census, replace(census, task=1), replace(census, task=1)),
        train_rows=180_000,
        validation_rows=20_000,
        test_rows=100_000,
        hyperparameters=Hyperparameters(max_epochs=30),
    )
    assert estimate_job(demo).peak_bytes < 2 * GiB


def test_rows_cap_the_batch_and_the_buffer() -> None:
    """A batch larger than the data holds only the data's rows; beyond that, rows add nothing but scores."""
    huge_batch = estimate_job(shape(rows=1000, batch_size=1_000_000))
    data_sized_batch = estimate_job(shape(rows=1000, batch_size=1000))
    assert huge_batch.peak_bytes == data_sized_batch.peak_bytes
    small, large = estimate_job(shape(rows=200_000)), estimate_job(shape(rows=2_000_000))
    assert large.activation_bytes == small.activation_bytes and large.parameter_bytes == small.parameter_bytes
    assert large.data_bytes < 2 * small.data_bytes


@pytest.mark.parametrize("knob", ["batch_size", "d_model", "levels", "tower_hidden"])
def test_each_knob_raises_the_estimate(knob: str) -> None:
    base = {"batch_size": 1024, "d_model": 64, "heads": 2, "levels": 3, "tower_hidden": 64}
    bigger = {**base, knob: base[knob] * 4}
    assert estimate_job(shape(**bigger)).peak_bytes > estimate_job(shape(**base)).peak_bytes


def test_finetuning_keeps_optimiser_state_for_the_sources_too() -> None:
    frozen = estimate_job(shape(strategy=Strategy.FROZEN))
    finetune = estimate_job(shape(strategy=Strategy.FINETUNE))
    assert finetune.parameter_bytes > frozen.parameter_bytes + 4 * 4 * 50_000 * 4


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


MEMINFO = "MemTotal:       16384000 kB\nMemFree:        1000 kB\n"


def test_usable_memory_is_the_hosts_without_a_cgroup_limit(tmp_path: Path) -> None:
    root = write(tmp_path, {"proc/meminfo": MEMINFO, "proc/self/cgroup": "0::/\n", "sys/fs/cgroup/memory.max": "max\n"})
    assert usable_memory_bytes(root) == 16384000 * 1024


def test_usable_memory_is_the_strictest_cgroup_v2_limit_on_the_way_up(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "proc/meminfo": MEMINFO,
            "proc/self/cgroup": "0::/workers.slice/worker-1.service\n",
            "sys/fs/cgroup/memory.max": "max\n",
            "sys/fs/cgroup/workers.slice/memory.max": f"{6 * GiB}\n",
            "sys/fs/cgroup/workers.slice/worker-1.service/memory.max": "max\n",
        },
    )
    assert usable_memory_bytes(root) == 6 * GiB


def test_cgroup_v1_no_limit_is_a_huge_number_that_limits_nothing(tmp_path: Path) -> None:
    unlimited = {"proc/meminfo": MEMINFO, "proc/self/cgroup": "5:memory:/\n"}
    root = write(tmp_path, {**unlimited, "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712\n"})
    assert usable_memory_bytes(root) == 16384000 * 1024
    (root / "sys/fs/cgroup/memory/memory.limit_in_bytes").write_text(f"{3 * GiB}\n")
    assert usable_memory_bytes(root) == 3 * GiB


def test_the_api_picks_the_fused_components_as_the_engine_does(
    zoo_models: dict[tuple[str, str], LoadedModel],
) -> None:
    """The API sees only what intake recorded (service/models/inspection.py); the widths it estimates with
    are those plan_levels fuses, or close: within 2x in total over the levels where intake resolved every
    shape, and never less than half (a shape it could not resolve counts as the widest) elsewhere."""
    for (family, exporter), loaded in zoo_models.items():
        signature, decomposition = asdict(loaded.signature), summary(loaded)
        source = FusionSource(name=family, task="t", loaded=loaded)
        widest = max(usable_spine(source).values())
        for levels in (1, 3, 5):
            estimated = source_shape(signature, decomposition, task=0, levels=levels).level_widths
            fused = plan_levels(source, levels).widths
            assert len(estimated) == len(fused) == levels
            high = 2 * sum(fused) if all_shapes_known(decomposition) else levels * widest
            assert sum(fused) / 2 <= sum(estimated) <= high, (family, exporter, estimated, fused)


def all_shapes_known(decomposition: dict) -> bool:
    def known(component: dict) -> bool:
        return all(output["shape"] is not None for output in component["outputs"]) and all(
            known(child) for child in component["children"]
        )

    return all(known(component) for component in decomposition["components"])


def test_the_estimate_reads_the_engine_defaults_it_copies() -> None:
    """fusion/budget.py stays torch-free, so it copies three engine defaults: they must not drift apart."""
    import inspect

    from fusion import budget
    from fusion.akf.model import AKFConfig
    from fusion.training import TrainConfig, score

    assert TrainConfig().buffer_rows == budget.SHUFFLE_BUFFER_ROWS
    assert AKFConfig().ffn_multiplier == budget.FFN_MULTIPLIER
    assert inspect.signature(score).parameters["batch_size"].default == budget.SCORING_BATCH_ROWS
