"""The Census frozen fusion job at scale, on the real stack: PostgreSQL, Redis, the API and a Celery worker.

    .venv/bin/python bench/scale.py [--rows 1000000,10000000] [--paths auto,per-batch]

For each size: Census training rows drawn with replacement, dense columns jittered slightly, written as a
folder of Parquet files (FILE_ROWS rows each, row groups of ROW_GROUP_ROWS) under the stack's data root,
one row group at a time, so that the bench never holds a whole table; validation and test are the Census
splits. All three are registered by reference, then one frozen job fuses the four Census sources under
census_fusion.py's early-stopping rule. Each size gets a stack of its own (fresh database, fresh Redis
database), so that each process's peak memory is that size's.

The job's source component outputs take the path the worker chooses (`auto`: stored shards when they fit
the component cache's budget, by default 20 GiB, which 1M Census rows do, about 4 KB a row in float32, and
10M do not) or, with `--paths per-batch`, the per-batch ONNX Runtime path (the cache's budget set to 0): so
one 1M-row run of each measures what 10M rows get with the default budget, without writing 10M rows.
`--cache-gib` gives the worker the budget a host with that much disk for the cache would set, so that
`auto` stores the outputs at every size.

Memory: each process tree's peak resident set (the largest VmHWM of its processes, or the largest sum of
their VmRSS sampled every 0.2 s, whichever is more). RSS counts anonymous memory and the file pages mapped
into a process (a memory-mapped file read through stays resident in its RSS while mapped); the worker
maps no component outputs now: shards are read with plain reads, and the per-batch path writes none.
Beside it, the anonymous part (RssAnon, sampled): what the job itself holds.

Beside the largest size, MMoE is trained from scratch in this process on the same streamed tables, under
the same rule. Prints one table and the targets (PASS/FAIL, or NOT MEASURED where the sizes they compare
were not run), and writes bench/results/scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
import fusion  # noqa: E402, F401  (first: it sets torch's OpenMP wait policy, read once when torch loads)

# isort: split
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from bench.census_fusion import SOURCES, TRAINING  # noqa: E402
from bench.local_service import census_job_spec, census_source_paths, upload_census_sources  # noqa: E402
from bench.tables import markdown_table  # noqa: E402
from fusion.akf.baselines import train_baseline  # noqa: E402
from fusion.akf.sources import FusionSource  # noqa: E402
from fusion.data.census import DENSE, CensusData, load_census  # noqa: E402
from fusion.data.tables import ParquetTable, Table  # noqa: E402
from fusion.intake.files import load_model_file  # noqa: E402
from fusion.metrics import task_metric  # noqa: E402
from fusion.training import TrainConfig  # noqa: E402
from service.client import Dataset, FuseboxClient, Job  # noqa: E402
from service.local_databases import fresh_postgres, fresh_redis  # noqa: E402
from service.local_stack import LocalStack  # noqa: E402

RESULTS = ROOT / "bench" / "results"
FILE_ROWS = 1_000_000
ROW_GROUP_ROWS = 65_536
JITTER = 0.01
"""Gaussian noise on each dense column, as a fraction of its standard deviation: rows drawn twice differ."""
JOB_TIMEOUT_S = 24 * 3600
SAMPLE_INTERVAL_S = 0.2
STAGES = {  # the worker's stages, as the job reports them, under the table's column names
    "loading models and data": "load",
    "planning fusion levels": "load",
    "computing source model outputs": "components",
    "training the fusion": "training",
    "exporting the fused model": "export",
    "deploying": "export",
}
TARGET_PEAK_BYTES = 3 * 2**30
TARGET_PEAK_GROWTH = 1.25
TARGET_RATE_RATIO = 0.8
TARGET_WALL_RATIO = 0.5
TARGET_ROWS = 10_000_000
"""The size the targets name; a run that stops short of it says NOT MEASURED instead of passing."""
PATH_SETTINGS = {"auto": {}, "per-batch": {"FUSEBOX_COMPONENT_CACHE_MAX_BYTES": "0"}}
"""The worker's settings for each component path: a budget of 0 leaves the per-batch path only."""


@dataclass
class SizeResult:
    rows: int
    path: str
    """auto or per-batch: how the bench configured the worker; `component_outputs` says what it did."""
    write_seconds: float
    stage_seconds: dict[str, float]
    """register (statistics), load, components, training, export; a stage never observed is absent."""
    job_seconds: float
    """POST to succeeded."""
    training_seconds: float
    total_seconds: float
    rows_per_second: float
    component_outputs: str
    peak_bytes: dict[str, int]
    disk_bytes: dict[str, int]
    test_auc: dict[str, float]
    """Per task, the fused model's; per source model, its own."""
    epochs: str

    @property
    def end_to_end_seconds(self) -> float:
        """What the service spends on the data: registration (its statistics pass) and the whole job."""
        return self.stage_seconds["register"] + self.job_seconds


@dataclass
class BaselineResult:
    rows: int
    seconds: float
    training_seconds: float
    rows_per_second: float
    peak_bytes: int
    test_auc: dict[str, float] = field(default_factory=dict)
    epochs: str = ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="training rows per size, comma-separated")
    parser.add_argument("--folder", type=Path, help="where the stacks and tables go (default: a temporary one)")
    parser.add_argument(
        "--max-epochs", type=int, default=TRAINING.max_epochs, help="fewer for a quick check of the bench itself"
    )
    parser.add_argument("--paths", default="auto", help="component paths per size: auto, per-batch, or both")
    parser.add_argument("--skip-mmoe", action="store_true", help="no MMoE: the wall-time target is then not measured")
    parser.add_argument(
        "--cache-gib", type=float, help="the worker's component cache budget for `auto` (default: the service's)"
    )
    args = parser.parse_args()
    sizes = sorted(int(size) for size in args.rows.split(","))
    paths = args.paths.split(",")
    if unknown := set(paths) - set(PATH_SETTINGS):
        parser.error(f"--paths: unknown {sorted(unknown)}; use {', '.join(PATH_SETTINGS)}")
    warnings.simplefilter("ignore")
    torch.set_num_threads(2)
    # SIGTERM (from `timeout`, say) unwinds like Ctrl-C: the stacks, databases and tables are removed.
    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(f"stopped by signal {number}"))
    census_source_paths()  # before anything slow: the benchmark needs them
    census = load_census()
    training = replace(TRAINING, max_epochs=args.max_epochs)
    settings = dict(PATH_SETTINGS)
    if args.cache_gib is not None:
        settings["auto"] = {"FUSEBOX_COMPONENT_CACHE_MAX_BYTES": str(int(args.cache_gib * 2**30))}
    with _scratch(args.folder) as folder:
        results = [
            result
            for rows in sizes
            for result in _run_size(census, rows, folder / f"rows-{rows}", training, {p: settings[p] for p in paths})
        ]
        baseline = None if args.skip_mmoe else _mmoe(census, folder / f"rows-{sizes[-1]}", training)
    print(_table(results, baseline))
    for result in results:
        print(f"{result.rows:,} rows, {result.path}: {result.component_outputs}")
    verdicts = [*_targets(results, baseline), *_projection(results, baseline)]
    for line in verdicts:
        print(line)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "scale.json").write_text(
        json.dumps(
            {
                "sizes": [asdict(result) for result in results],
                "mmoe": asdict(baseline) if baseline else None,
                "targets": verdicts,
                "settings": {**training.__dict__, "file_rows": FILE_ROWS, "row_group_rows": ROW_GROUP_ROWS},
            },
            indent=2,
        )
    )


@contextmanager
def _scratch(folder: Path | None) -> Iterator[Path]:
    """The given folder (kept: a 10M-row table takes a while to write), or a temporary one (removed)."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        yield folder
        return
    with tempfile.TemporaryDirectory(prefix="fusebox-scale-") as temporary:
        yield Path(temporary)


# The tables


def write_training_table(census: CensusData, rows: int, folder: Path, seed: int = 0) -> None:
    """`rows` Census training rows drawn with replacement, dense columns jittered, one row group at a time:
    memory stays at one row group whatever `rows` is."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    spread = census.train[DENSE].std().to_numpy(dtype=np.float32) * JITTER
    schema = pa.Schema.from_pandas(census.train, preserve_index=False)
    for number, start in enumerate(range(0, rows, FILE_ROWS)):
        file_rows = min(FILE_ROWS, rows - start)
        with pq.ParquetWriter(folder / f"part-{number:04d}.parquet", schema) as writer:
            for group_start in range(0, file_rows, ROW_GROUP_ROWS):
                count = min(ROW_GROUP_ROWS, file_rows - group_start)
                writer.write_table(_row_group(census.train, count, spread, rng, schema))


def _row_group(
    train: pd.DataFrame, count: int, spread: np.ndarray, rng: np.random.Generator, schema: pa.Schema
) -> pa.Table:
    drawn = train.iloc[rng.integers(0, len(train), count)].reset_index(drop=True)
    noise = rng.standard_normal((count, len(DENSE))).astype(np.float32) * spread
    drawn[DENSE] = drawn[DENSE].to_numpy(dtype=np.float32) + noise
    return pa.Table.from_pandas(drawn, schema=schema, preserve_index=False)


def write_held_out(census: CensusData, folder: Path) -> None:
    """The Census validation and test splits, as they are: every size is scored on the same rows."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("validation", "test"):
        getattr(census, split).to_parquet(folder / f"{split}.parquet", index=False)


# The stack


@contextmanager
def real_stack(folder: Path, settings: dict[str, str]) -> Iterator[LocalStack]:
    """The API and one worker on PostgreSQL and Redis, each stopped and dropped afterwards."""
    with (
        fresh_postgres("fusebox_scale") as database,
        fresh_redis(claim_s=JOB_TIMEOUT_S) as broker,
        LocalStack.start(
            folder, database, broker, settings={"FUSEBOX_WORKER_DEVICE": "cpu", **settings}, log_level="warning"
        ) as stack,
    ):
        yield stack


class PeakMemory(threading.Thread):
    """The peak resident memory of each named process and its descendants: their own high-water marks
    (VmHWM) where they are alive to read, and the largest sum of their VmRSS seen every SAMPLE_INTERVAL_S.
    Beside it, `{name} anonymous`: the largest sum of RssAnon, what the job holds, without file-backed
    pages (mapped files, such as ONNX Runtime's and torch's libraries), which the kernel reclaims under
    pressure."""

    def __init__(self, pids: dict[str, int]) -> None:
        super().__init__(daemon=True)
        self.pids = pids
        self.peaks = dict.fromkeys([*pids, *(f"{name} anonymous" for name in pids)], 0)
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_INTERVAL_S):
            for name, pid in self.pids.items():
                tree = _process_tree(pid)
                hwm = max((_status_bytes(each, "VmHWM") for each in tree), default=0)
                self.peaks[name] = max(self.peaks[name], hwm, sum(_status_bytes(each, "VmRSS") for each in tree))
                anonymous = sum(_status_bytes(each, "RssAnon") for each in tree)
                self.peaks[f"{name} anonymous"] = max(self.peaks[f"{name} anonymous"], anonymous)

    def __enter__(self) -> PeakMemory:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.join(timeout=5)


def _process_tree(pid: int) -> list[int]:
    """The process and its descendants (from /proc/<pid>/task/*/children), as far as they are alive."""
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        for children in Path(f"/proc/{current}/task").glob("*/children"):
            try:
                pending.extend(int(child) for child in children.read_text().split())
            except OSError:
                continue
    return tree


def _status_bytes(pid: int, key: str) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith(f"{key}:")), f"{key}: 0 kB")
    return int(line.split()[1]) * 1024


# One size through the stack


def _run_size(
    census: CensusData, rows: int, folder: Path, training: TrainConfig, paths: dict[str, dict[str, str]]
) -> list[SizeResult]:
    """Writes the table, then, per component path (with the worker's settings for it), registers it and
    runs the job on a stack of its own."""
    service = folder / "service"
    data = service / "data" / "scale"
    started = time.perf_counter()
    write_training_table(census, rows, data / "train")
    write_held_out(census, data)
    written = time.perf_counter() - started
    print(f"{rows:,} rows written in {written:.0f} s", file=sys.stderr)
    results = []
    for path, settings in paths.items():
        # A stack of its own: a fresh artifact store (no component cache from the other path) and database.
        _remove_artifacts(service)
        results.append(_run_path(rows, path, settings, service, training, written))
        print(json.dumps(asdict(results[-1])), file=sys.stderr, flush=True)  # kept should a later run not end
    _remove_artifacts(service)  # the stored outputs of 10M rows take 40 GB: the next size needs the disk
    return results


def _remove_artifacts(service: Path) -> None:
    for leftover in ("var", "artifacts"):
        shutil.rmtree(service / leftover, ignore_errors=True)


def _run_path(
    rows: int, path: str, settings: dict[str, str], service: Path, training: TrainConfig, written: float
) -> SizeResult:
    data = service / "data" / "scale"
    with (
        real_stack(service, settings) as stack,
        PeakMemory({"api": stack.processes["api"].pid, "worker": stack.processes["worker"].pid}) as memory,
        FuseboxClient(stack.url, stack.api_key, timeout_s=JOB_TIMEOUT_S) as client,
    ):
        models = upload_census_sources(client)
        started = time.perf_counter()
        datasets = _register(client)
        registered = time.perf_counter() - started
        job, stages = _run_job(client, f"scale-{rows}", models, datasets, training)
        disk = {"data": _disk_bytes(data), "component cache": _disk_bytes(stack.artifacts / "component-cache")}
    result = _size_result(rows, job, {"register": registered, **stages}, dict(memory.peaks), disk)
    return replace(result, path=path, write_seconds=written)


def _register(client: FuseboxClient) -> dict[str, Dataset]:
    """The three splits by reference: the API reads their statistics, batch by batch, in place."""
    labels = ["income", "never_married"]
    uris = {"train": "scale/train", "validation": "scale/validation.parquet", "test": "scale/test.parquet"}
    return {split: client.add_dataset(uri, name=split, label_columns=labels) for split, uri in uris.items()}


def _run_job(
    client: FuseboxClient,
    name: str,
    models: dict[str, list[str]],
    datasets: dict[str, Dataset],
    training: TrainConfig,
) -> tuple[Job, dict[str, float]]:
    """The frozen job from POST to its end; the seconds of each stage, from the stage changes polled."""
    hyperparameters = {
        "batch_size": training.batch_size,
        "max_epochs": training.max_epochs,
        "patience": training.patience,
        "learning_rate": training.learning_rate,
        "seed": training.seed,
    }
    changes: list[tuple[float, str]] = []
    record = _stage_recorder(changes)
    started = time.perf_counter()
    job = client.create_job(census_job_spec(name, models, datasets, hyperparameters=hyperparameters))
    job = client.wait_for_job(job.id, on_update=record, poll_interval_s=0.5, timeout_s=JOB_TIMEOUT_S)
    ended = time.perf_counter()
    if job.status != "succeeded":
        sys.exit(f"the {name} job {job.status}: {job.error}")
    return job, {"job": ended - started, **_stage_seconds(changes, ended)}


def _stage_recorder(changes: list[tuple[float, str]]) -> Callable[[Job], None]:
    """Appends (time, stage) whenever the job's stage differs from the last one seen."""

    def record(job: Job) -> None:
        if job.stage and (not changes or changes[-1][1] != job.stage):
            changes.append((time.perf_counter(), job.stage))

    return record


def _stage_seconds(changes: list[tuple[float, str]], ended: float) -> dict[str, float]:
    """Each column's seconds: from a stage's first sighting to the next change, summed over its stages."""
    seconds: dict[str, float] = {}
    for (at, stage), (until, _) in zip(changes, [*changes[1:], (ended, "")], strict=True):
        if column := STAGES.get(stage):
            seconds[column] = seconds.get(column, 0.0) + until - at
    return seconds


def _disk_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def _size_result(
    rows: int, job: Job, stages: dict[str, float], peaks: dict[str, int], disk: dict[str, int]
) -> SizeResult:
    report = job.report or {}
    auc = {entry["task"]: entry["exported"]["test"] for entry in report["tasks"]}
    for entry in report["tasks"]:
        auc |= {source: score["test"] for source, score in entry["sources"].items()}
    job_seconds = stages.pop("job")
    return SizeResult(
        rows=rows,
        path="",
        write_seconds=0.0,
        stage_seconds=stages,
        job_seconds=job_seconds,
        training_seconds=report["training_seconds"],
        total_seconds=report["total_seconds"],
        rows_per_second=report["rows_per_second"],
        component_outputs=report.get("component_outputs", ""),
        peak_bytes=peaks,
        disk_bytes=disk,
        test_auc=auc,
        epochs=f"{report['best_epoch']}/{report['epochs_run']}",
    )


# MMoE from scratch


def _mmoe(census: CensusData, folder: Path, training: TrainConfig) -> BaselineResult:
    """MMoE trained from scratch in this process on the largest size's files, streamed as the worker
    streams them; its peak memory counted from a reset high-water mark (clear_refs 5)."""
    data = folder / "service" / "data" / "scale"
    splits: dict[str, Table] = {
        "train": ParquetTable(data / "train"),
        "validation": ParquetTable(data / "validation.parquet"),
        "test": ParquetTable(data / "test.parquet"),
    }
    Path("/proc/self/clear_refs").write_text("5")
    started = time.perf_counter()
    baseline = train_baseline("mmoe", census.tasks, census_sources(), splits, training)
    seconds = time.perf_counter() - started
    labels = census.test
    return BaselineResult(
        rows=splits["train"].num_rows,
        seconds=seconds,
        training_seconds=baseline.training.seconds,
        rows_per_second=baseline.training.rows_per_second,
        peak_bytes=_status_bytes(os.getpid(), "VmHWM"),
        test_auc={
            task.name: task_metric(task, baseline.predictions["test"][task.name], labels[task.label].to_numpy())
            for task in census.tasks
        },
        epochs=f"{baseline.training.best_epoch}/{len(baseline.training.history)}",
    )


def census_sources() -> list[FusionSource]:
    """The four Census source models, for the baseline's feature schema (the union of their inputs)."""
    return [
        FusionSource(name=f"{task}_{family}", task=task, loaded=load_model_file(path))
        for (family, task, _), path in zip(SOURCES, census_source_paths(), strict=True)
    ]


# The table and the targets


def _table(results: list[SizeResult], baseline: BaselineResult | None) -> str:
    header = ("rows", "path", "register s", "load s", "components s", "training s", "export s", "job s",
              "train rows/s", "API peak MB", "worker peak MB", "worker anon MB", "data MB", "cache MB", "epochs",
              "test AUC (fused; sources)")  # fmt: skip
    cells = [
        (f"{r.rows:,}", r.path, *(_seconds(r.stage_seconds.get(column)) for column in
                          ("register", "load", "components", "training", "export")),
         f"{r.job_seconds:.1f}", f"{r.rows_per_second:,.0f}", _mb(r.peak_bytes["api"]), _mb(r.peak_bytes["worker"]),
         _mb(r.peak_bytes["worker anonymous"]), _mb(r.disk_bytes["data"]), _mb(r.disk_bytes["component cache"]),
         r.epochs,
         "; ".join(f"{name} {auc:.4f}" for name, auc in r.test_auc.items()))
        for r in results
    ]  # fmt: skip
    if baseline is None:
        cells.append((f"{results[-1].rows:,}", "MMoE", *["-"] * (len(header) - 3), "not run (--skip-mmoe)"))
    else:
        cells.append(
            (f"{baseline.rows:,}", "MMoE", "-", "-", "-", _seconds(baseline.training_seconds), "-",
             f"{baseline.seconds:.1f}", f"{baseline.rows_per_second:,.0f}", "-",
             f"{_mb(baseline.peak_bytes)} (bench)", "-", "-", "-", baseline.epochs,
             "MMoE from scratch: " + "; ".join(f"{name} {auc:.4f}" for name, auc in baseline.test_auc.items()))
        )  # fmt: skip
    return markdown_table(header, cells)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _mb(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def _targets(results: list[SizeResult], baseline: BaselineResult | None) -> list[str]:
    """Each target, compared between the smallest and the largest size the worker chose its path for
    (auto). A target between sizes needs two of them; every target is set at 10M rows, and a smaller
    run says NOT MEASURED, with what it gave."""
    auto = [r for r in results if r.path == "auto"] or results
    smallest, largest = auto[0], auto[-1]

    def verdict(ok: bool) -> str:
        if largest.rows >= TARGET_ROWS:
            return _verdict(ok)
        return f"NOT MEASURED at {TARGET_ROWS:,} rows ({_verdict(ok)} at {largest.rows:,})"

    peak, first_peak = largest.peak_bytes["worker"], smallest.peak_bytes["worker"]
    lines = [
        f"target worker peak RSS at {largest.rows:,} rows <= 3 GB: {verdict(peak <= TARGET_PEAK_BYTES)} "
        f"({_mb(peak)} MB)",
    ]
    if largest.rows == smallest.rows:
        lines += [
            f"target worker peak RSS growth and training rows/s between sizes: NOT MEASURED (one size, "
            f"{largest.rows:,} rows, ran)"
        ]
    else:
        between = f"{largest.rows:,} vs {smallest.rows:,} rows"
        growth_ok = peak <= TARGET_PEAK_GROWTH * first_peak
        rate_ok = largest.rows_per_second >= TARGET_RATE_RATIO * smallest.rows_per_second
        lines += [
            f"target worker peak RSS {between} <= {TARGET_PEAK_GROWTH}x: {verdict(growth_ok)} "
            f"({_mb(peak)} MB vs {_mb(first_peak)} MB, {peak / first_peak:.2f}x)",
            f"target training rows/s {between} >= {TARGET_RATE_RATIO}x: {verdict(rate_ok)} "
            f"({largest.rows_per_second:,.0f} vs {smallest.rows_per_second:,.0f}, "
            f"{largest.rows_per_second / smallest.rows_per_second:.2f}x)",
        ]
    if baseline is None:
        return [*lines, "target frozen job end to end <= 0.5x MMoE from scratch: NOT MEASURED (--skip-mmoe)"]
    wall_ok = largest.end_to_end_seconds <= TARGET_WALL_RATIO * baseline.seconds
    lines.append(
        f"target frozen job end to end (registration + POST to succeeded) <= {TARGET_WALL_RATIO}x MMoE from "
        f"scratch at {largest.rows:,} rows: {verdict(wall_ok)} ({largest.end_to_end_seconds:.1f} s vs "
        f"{baseline.seconds:.1f} s, {largest.end_to_end_seconds / baseline.seconds:.2f}x)"
    )
    return lines


def _projection(results: list[SizeResult], baseline: BaselineResult | None) -> list[str]:
    """What the largest size run predicts for the per-batch path (the one 10M Census rows get), and how
    long a 10M bench would take, scaling rows linearly: every stage streams, so time goes with rows."""
    largest = max(r.rows for r in results)
    if largest >= TARGET_ROWS:
        return []
    at_largest = {r.path: r for r in results if r.rows == largest}
    lines = []
    if {"auto", "per-batch"} <= set(at_largest):
        stored, per_batch = at_largest["auto"], at_largest["per-batch"]
        lines.append(
            f"at {largest:,} rows, per-batch vs auto: training rows/s {per_batch.rows_per_second:,.0f} vs "
            f"{stored.rows_per_second:,.0f} ({per_batch.rows_per_second / stored.rows_per_second:.2f}x), worker "
            f"peak {_mb(per_batch.peak_bytes['worker'])} vs {_mb(stored.peak_bytes['worker'])} MB, job "
            f"{per_batch.end_to_end_seconds:.0f} vs {stored.end_to_end_seconds:.0f} s"
        )
    scale = TARGET_ROWS / largest
    reference = at_largest.get("per-batch") or next(iter(at_largest.values()))
    job = scale * (reference.write_seconds + reference.end_to_end_seconds)
    mmoe = scale * baseline.seconds if baseline else 0.0
    lines.append(
        f"projected {TARGET_ROWS:,}-row bench (x{scale:.0f} the {largest:,}-row {reference.path} run: table "
        f"{scale * reference.write_seconds:,.0f} s, job {scale * reference.end_to_end_seconds:,.0f} s; MMoE "
        f"{mmoe:,.0f} s{'' if baseline else ', not run'}): {(job + mmoe) / 60:,.0f} minutes, same epochs"
    )
    return lines


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


if __name__ == "__main__":
    main()
