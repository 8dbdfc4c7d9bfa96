"""Peak memory of a frozen fusion streamed from Parquet, and of the API taking a dataset upload, against
the number of rows.

    python bench/stream_memory.py prepare FOLDER --files 10    # 10 files of 100,000 generated rows, 2 sources
    python bench/stream_memory.py fuse FOLDER --files 2        # fuse the first 2 files (200,000 rows)
    python bench/stream_memory.py upload FOLDER --rows 250000,1000000,3000000

`upload` writes Census-shaped tables (41 columns: 32 integer ids, 9 floats) of each size as CSV and as
Parquet, uploads each to the API of a local stack (SQLite, no worker), and prints a table of the API's
resident memory before and at its peak while it streams the file to Parquet and gathers the statistics.

`fuse` prints the rows, the seconds, the process's peak resident memory (ru_maxrss), and the peaks of its
two parts, sampled from /proc: anonymous memory (what the job holds) and file-backed pages (the memory-mapped
component outputs and libraries, which the kernel reclaims under pressure). Run it for two sizes and compare.
Data is generated and written file by file, so `prepare` stays small too.
"""

from __future__ import annotations

import argparse
import resource
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import fusion  # noqa: F401  (first: it sets torch's OpenMP wait policy, read once when torch loads)

# isort: split
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import torch

from fusion.akf.pipeline import FusionData, FusionSettings, fuse
from fusion.akf.sources import FusionSource
from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.data.tables import ParquetTable, split_table
from fusion.intake.files import load_model_file
from fusion.tasks import Task, TaskType
from fusion.training import TrainConfig
from fusion.zoo import build_single_task_model, export_onnx, train_model
from service.local_stack import LocalStack

TASK = Task("converted", TaskType.BINARY, "converted")
SCHEMAS = {
    "behaviour": FeatureSchema(categorical=(CategoricalFeature("region", 8),), dense=("x0", "x1", "x2", "x3")),
    "profile": FeatureSchema(categorical=(CategoricalFeature("channel", 5),), dense=("x4", "x5", "x6", "x7")),
}
FILE_ROWS = 100_000
TRAINING = TrainConfig(batch_size=1024, learning_rate=3e-3, max_epochs=1, device="cpu")


def rows(count: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    dense = rng.standard_normal((count, 8)).astype(np.float32)
    frame = pd.DataFrame(dense, columns=[f"x{i}" for i in range(8)])
    frame["region"] = rng.integers(0, 8, count)
    frame["channel"] = rng.integers(0, 5, count)
    frame[TASK.label] = (rng.random(count) < 1 / (1 + np.exp(-0.9 * dense.sum(axis=1)))).astype(np.float32)
    return frame


def prepare(folder: Path, files: int) -> None:
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for i in range(files):
        table = pa.Table.from_pandas(rows(FILE_ROWS, seed=100 + i), preserve_index=False)
        pq.write_table(table, folder / "data" / f"part{i:04d}.parquet", row_group_size=32_768)
    for name, schema in SCHEMAS.items():
        torch.manual_seed(0)
        model = build_single_task_model("mlp", schema, TASK, hidden=(32, 16))
        train_model(model, [TASK], rows(20_000, 1), rows(5_000, 2), schema, TRAINING)
        export_onnx(model, schema, TASK, folder / f"{name}.onnx", dynamo=False)


class PeakSampler(threading.Thread):
    """The largest VmRSS, RssAnon and RssFile (MB) of a process (this one by default), read from
    /proc/PID/status every 50 ms until stopped."""

    def __init__(self, pid: int | str = "self") -> None:
        super().__init__(daemon=True)
        self.status = Path(f"/proc/{pid}/status")
        self.peaks = {"VmRSS": 0, "RssAnon": 0, "RssFile": 0}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            self.sample()

    def sample(self) -> None:
        for line in self.status.read_text().splitlines():
            name, _, value = line.partition(":")
            if name in self.peaks:
                self.peaks[name] = max(self.peaks[name], int(value.split()[0]) // 1024)

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.sample()


def fuse_files(folder: Path, files: int) -> None:
    paths = sorted((folder / "data").glob("*.parquet"))[:files]
    train, validation = split_table(ParquetTable(paths), 0.1, seed=0)
    sources = [
        FusionSource(name=name, task=TASK.name, loaded=load_model_file(folder / f"{name}.onnx")) for name in SCHEMAS
    ]
    sampler = PeakSampler()
    sampler.start()
    started = time.perf_counter()
    result = fuse([TASK], sources, FusionData(train, validation), FusionSettings(training=TRAINING))
    sampler.stop()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rows {train.num_rows + validation.num_rows:,}  seconds {time.perf_counter() - started:.0f}  "
        f"peak RSS {peak_mb:.0f} MB (anonymous {sampler.peaks['RssAnon']} MB, file-backed "
        f"{sampler.peaks['RssFile']} MB)  fused AUC {result.report.tasks[0].fused.validation:.4f}  "
        f"components {result.report.component_outputs}"
    )


UPLOAD_CHUNK_ROWS = 250_000


def census_shaped(count: int, seed: int) -> pa.Table:
    """Rows shaped like Census: 32 integer id columns, 9 floats (rounded, as a CSV export would have them)."""
    rng = np.random.default_rng(seed)
    columns = {f"id{i}": rng.integers(0, 50, count) for i in range(32)}
    columns |= {f"x{i}": np.round(rng.random(count), 4) for i in range(9)}
    return pa.table(columns)


def write_upload_files(folder: Path, rows: int) -> dict[str, Path]:
    """The table of `rows` rows as one CSV and one Parquet file, written a chunk at a time."""
    paths = {"csv": folder / f"upload-{rows}.csv", "parquet": folder / f"upload-{rows}.parquet"}
    schema = census_shaped(1, 0).schema
    with pa_csv.CSVWriter(paths["csv"], schema) as csv_out, pq.ParquetWriter(paths["parquet"], schema) as pq_out:
        for start in range(0, rows, UPLOAD_CHUNK_ROWS):
            table = census_shaped(min(UPLOAD_CHUNK_ROWS, rows - start), seed=start)
            csv_out.write_table(table)
            pq_out.write_table(table, row_group_size=UPLOAD_CHUNK_ROWS)
    return paths


def upload_memory(folder: Path, sizes: list[int]) -> None:
    settings = {"FUSEBOX_MAX_DATASET_BYTES": str(64 * 2**30)}
    lines = ["| format | rows | file MB | seconds | API RSS before MB | API peak RSS MB | growth MB |"]
    lines.append("|---|---|---|---|---|---|---|")
    with LocalStack.start(folder / "stack", settings=settings, workers=0, log_level="warning") as stack:
        pid = stack.processes["api"].pid
        with stack.client(timeout_s=3600) as client:
            for rows in sizes:
                for kind, path in write_upload_files(folder, rows).items():
                    before = PeakSampler(pid)
                    before.sample()
                    sampler = PeakSampler(pid)
                    sampler.start()
                    started = time.perf_counter()
                    with path.open("rb") as handle:
                        response = client.post("/v1/datasets", files={"file": (path.name, handle)})
                    seconds = time.perf_counter() - started
                    sampler.stop()
                    assert response.status_code == 201, response.text
                    assert response.json()["rows"] == rows
                    start_mb, peak_mb = before.peaks["VmRSS"], sampler.peaks["VmRSS"]
                    lines.append(
                        f"| {kind} | {rows:,} | {path.stat().st_size / 2**20:,.0f} | {seconds:.1f} | {start_mb} | "
                        f"{peak_mb} | {peak_mb - start_mb} |"
                    )
                    path.unlink()
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "fuse", "upload"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, default=2)
    parser.add_argument("--rows", default="250000,1000000,3000000", help="upload: table sizes, comma-separated")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.command == "upload":
        upload_memory(args.folder, [int(size) for size in args.rows.split(",")])
    else:
        (prepare if args.command == "prepare" else fuse_files)(args.folder, args.files)


if __name__ == "__main__":
    main()
