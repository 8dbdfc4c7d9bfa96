"""Peak memory of a frozen fusion streamed from Parquet, against the number of rows.

    python bench/stream_memory.py prepare FOLDER --files 10    # 10 files of 100,000 generated rows, 2 sources
    python bench/stream_memory.py fuse FOLDER --files 2        # fuse the first 2 files (200,000 rows)

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

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fusion.akf.pipeline import FusionData, FusionSettings, fuse
from fusion.akf.sources import FusionSource
from fusion.data.schema import CategoricalFeature, FeatureSchema
from fusion.data.tables import ParquetTable, split_table
from fusion.intake.files import load_model_file
from fusion.tasks import Task, TaskType
from fusion.training import TrainConfig
from fusion.zoo import build_single_task_model, export_onnx, train_model

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
    """The largest RssAnon and RssFile seen, read from /proc/self/status every 50 ms until stopped."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peaks = {"RssAnon": 0, "RssFile": 0}
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.05):
            for line in Path("/proc/self/status").read_text().splitlines():
                name, _, value = line.partition(":")
                if name in self.peaks:
                    self.peaks[name] = max(self.peaks[name], int(value.split()[0]) // 1024)


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
    sampler.stopped.set()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"rows {train.num_rows + validation.num_rows:,}  seconds {time.perf_counter() - started:.0f}  "
        f"peak RSS {peak_mb:.0f} MB (anonymous {sampler.peaks['RssAnon']} MB, file-backed "
        f"{sampler.peaks['RssFile']} MB)  fused AUC {result.report.tasks[0].fused.validation:.4f}  "
        f"components {result.report.component_outputs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "fuse"))
    parser.add_argument("folder", type=Path)
    parser.add_argument("--files", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(1)
    (prepare if args.command == "prepare" else fuse_files)(args.folder, args.files)


if __name__ == "__main__":
    main()
