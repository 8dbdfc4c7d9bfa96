"""Dataset intake that streams: uploads written to Parquet as they are read, footers judged before any value,
limits that hold whatever the row count, and references in fsspec stores. In process, on small settings;
the hostile files over HTTP, with the API's memory measured, are in test_dataset_hostile.py."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import fsspec
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fsspec.implementations.memory import MemoryFileSystem

from fusion.data.census import CensusData
from fusion.data.tables import ParquetTable, read_all
from service.core.errors import Unprocessable
from service.datasets import references, remote
from service.datasets.limits import TableLimits
from service.datasets.scanning import scan_parquet
from service.datasets.schemas import FileOut
from service.datasets.statistics import MAX_LISTED_VALUES
from service.datasets.uploads import write_upload
from tests.helpers import ROOT

LIMITS = TableLimits(max_columns=60, max_rows=1_000_000, max_chunk_bytes=2**20, max_row_group_bytes=4 * 2**20)


def parquet_bytes(table: pa.Table, **options: Any) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, **options)
    return out.getvalue()


def upload(tmp_path: Path, content: bytes, filename: str, labels: tuple[str, ...] = (), limits: TableLimits = LIMITS):
    path = tmp_path / "upload"
    path.write_bytes(content)
    return write_upload(path, filename, set(labels), limits, tmp_path / "stored.parquet")


def refusal(tmp_path: Path, content: bytes, filename: str, limits: TableLimits = LIMITS) -> str:
    with pytest.raises(Unprocessable) as raised:
        upload(tmp_path, content, filename, limits=limits)
    return " ".join([raised.value.message, *raised.value.problems])


def whole_table_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The column statistics as the whole-table path computed them: pandas' frame, column by column."""
    records = []
    for name in frame.columns:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        present = values[~np.isnan(values)]
        distinct = np.unique(present)
        records.append({
            "name": name, "dtype": str(frame[name].dtype), "missing": int(np.isnan(values).sum()),
            "min": float(present.min()), "max": float(present.max()),
            "integer_valued": bool(np.array_equal(present, np.round(present))),
            "values": distinct.tolist() if len(distinct) <= MAX_LISTED_VALUES else None,
        })  # fmt: skip
    return records


class TestStatistics:
    def test_a_census_csv_gives_the_whole_table_statistics(self, tmp_path: Path, census_small: CensusData) -> None:
        csv_path = tmp_path / "census.csv"
        census_small.train.to_csv(csv_path, index=False)
        written = upload(tmp_path, csv_path.read_bytes(), "census.csv")
        assert written.source_format == "csv" and written.rows == len(census_small.train)
        assert written.columns == whole_table_records(pd.read_csv(csv_path))
        stored = pd.read_parquet(tmp_path / "stored.parquet")
        pd.testing.assert_frame_equal(stored, pd.read_csv(csv_path), check_dtype=True)

    def test_a_census_parquet_file_gives_the_whole_table_statistics(
        self, tmp_path: Path, census_small: CensusData
    ) -> None:
        content = parquet_bytes(pa.Table.from_pandas(census_small.train, preserve_index=False), row_group_size=3000)
        written = upload(tmp_path, content, "census.parquet")
        assert written.source_format == "parquet" and written.rows == len(census_small.train)
        assert written.columns == whole_table_records(census_small.train)
        pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "stored.parquet"), census_small.train)

    def test_a_csv_of_several_blocks_is_read_whole(self, tmp_path: Path) -> None:
        rows = 400_000  # about 9 MB of text: three blocks of the streaming reader
        frame = pd.DataFrame(
            {"a": np.arange(rows), "b": np.arange(rows) / 4, "label": np.tile([1.0, np.nan], rows // 2)}
        )
        content = frame.to_csv(index=False).encode()
        written = upload(tmp_path, content, "long.csv", labels=("label",))
        assert written.rows == rows
        a, b, label = written.columns
        assert (a["dtype"], a["min"], a["max"], a["integer_valued"]) == ("int64", 0.0, rows - 1.0, True)
        assert (b["dtype"], b["max"], b["integer_valued"]) == ("float64", (rows - 1) / 4, False)
        assert (label["dtype"], label["missing"], label["values"]) == ("float64", rows // 2, [1.0])
        assert pq.ParquetFile(tmp_path / "stored.parquet").metadata.num_row_groups > 1


class TestLimits:
    def test_rows_past_the_limit_are_refused_while_a_csv_streams(self, tmp_path: Path) -> None:
        content = b"a,b\n" + b"0,0\n" * 1_001
        small = TableLimits(60, 1_000, 2**20, 2**22)
        assert "more than 1,000 rows" in refusal(tmp_path, content, "long.csv", small)
        assert upload(tmp_path, content, "long.csv", limits=TableLimits(60, 1_001, 2**20, 2**22)).rows == 1_001

    def test_rows_past_the_limit_are_refused_from_a_parquet_footer(self, tmp_path: Path) -> None:
        content = parquet_bytes(pa.table({"x": np.zeros(1_001, dtype=np.int8)}))
        assert "more than 1,000 rows" in refusal(tmp_path, content, "t.parquet", TableLimits(60, 1_000, 2**20, 2**22))

    def test_a_column_chunk_decoding_past_the_limit(self, tmp_path: Path) -> None:
        # 200,000 int64 zeros compress to almost nothing, and decode to 1.6 MB: over the 1 MiB chunk limit.
        content = parquet_bytes(pa.table({"x": np.zeros(200_000, dtype=np.int64)}), compression="zstd")
        message = refusal(tmp_path, content, "t.parquet")
        assert "column 'x' of row group 0 decodes to 1,600,000 bytes" in message and "row_group_size" in message
        chunked = parquet_bytes(pa.table({"x": np.zeros(200_000, dtype=np.int64)}), row_group_size=100_000)
        assert upload(tmp_path, chunked, "t.parquet").rows == 200_000

    def test_a_row_group_decoding_past_the_limit(self, tmp_path: Path) -> None:
        table = pa.table({f"c{i}": np.zeros(100_000) for i in range(6)})  # 800 KB a column, 4.8 MB in all
        message = refusal(tmp_path, parquet_bytes(table), "t.parquet")
        assert "row group 0 decodes to 4,800,000 bytes" in message and "per row group" in message

    def test_too_many_columns(self, tmp_path: Path) -> None:
        header = ",".join(f"c{i}" for i in range(61)).encode()
        assert "61 columns; at most 60" in refusal(tmp_path, header + b"\n" + b",".join([b"1"] * 61), "wide.csv")

    def test_a_huge_footer(self, tmp_path: Path) -> None:
        content = b"PAR1" + b"\0" * 16 + (2**30).to_bytes(4, "little") + b"PAR1"
        assert "footer of 1,073,741,824 bytes" in refusal(tmp_path, content, "t.parquet")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"a,b\n1,x\n", ["'b' are not numeric", "'x'", "integer ids"]),
        (b"a,b\n1,true\n", ["'b' are not numeric", "booleans as 0/1"]),
        (b"a,b\n1,2\n3\n", ["fewer fields than the header's 2 columns"]),
        (b"a,b\n1,2,3\n", ["more fields than the header's 2 columns"]),
        (b"a,b\n1," + b"x" * 5_000_000 + b"\n", ["'b' are not numeric (a value '" + "x" * 37 + "...')"]),
        (b'a,b\n1,"2\n3,4\n', ["'b' are not numeric", "a value '2\\n3,4'"]),
        (b"a,b\n1,2\n" + "é".encode("latin-1") + b",3\n", ["not UTF-8", "byte 0xe9 at position 8"]),
        (b"a,b\n", ["no rows"]),
        (b"\n1,2\n", ["no header row"]),
        (b"a," + b"b" * 300 + b"\n1,2\n", ["longer than 255 characters"]),
        (b"a,b\n1,inf\n", ["column 'b' has infinite values"]),
        (b"a,b\n1,\n", ["column 'b' has 1 missing value(s) (first in data row 1)", "label_columns"]),
    ],
    ids=["text", "boolean", "short row", "long row", "huge value", "open quote", "latin-1", "no rows", "no header",
         "long name", "infinite", "missing"],
)  # fmt: skip
def test_an_unusable_csv_is_refused_with_what_to_change(tmp_path: Path, content: bytes, words: list[str]) -> None:
    message = refusal(tmp_path, content, "t.csv")
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    ("table", "words"),
    [
        (pa.table({"x": [1.0], "tags": pa.array([[1, 2]], pa.list_(pa.int8()))}), ["'tags'", "nested values"]),
        (pa.table({"x": [1.0], "point": [{"a": 1}]}), ["'point'", "nested values"]),
        (pa.table({"x": [1.0], "m": pa.array([[(1, 2)]], pa.map_(pa.int8(), pa.int8()))}), ["'m'", "nested values"]),
        (pa.table({"x": [1.0], "city": ["Paris"]}), ["'city' are not numeric", "text or bytes", "integer ids"]),
        (pa.table({"x": [1.0], "blob": [b"\0"]}), ["'blob'", "text or bytes"]),
        (pa.table({"x": [1.0], "ok": [True]}), ["'ok'", "(bool)", "0/1"]),
    ],
    ids=["list", "struct", "map", "string", "binary", "boolean"],
)
def test_a_parquet_file_with_columns_of_unusable_types(tmp_path: Path, table: pa.Table, words: list[str]) -> None:
    message = refusal(tmp_path, parquet_bytes(table), "t.parquet")
    for word in words:
        assert word in message


class TestCloudReferences:
    """fsspec's in-memory file system stands in for a bucket: the same listing, info and reads as s3fs's."""

    @pytest.fixture
    def bucket(self) -> MemoryFileSystem:
        fs = fsspec.filesystem("memory")  # one store per process: emptied for each test
        if fs.exists("/bucket"):
            fs.rm("/bucket", recursive=True)
        frame = pd.DataFrame({"x": np.arange(300) / 3, "y": np.tile([0, 1, 1], 100)})
        for part in range(3):
            fs.pipe(f"/bucket/train/part-{part}.parquet", frame.iloc[part * 100 : (part + 1) * 100].to_parquet())
        fs.pipe("/bucket/train/notes.txt", b"not data")
        return fs

    @pytest.mark.parametrize(("path", "files"), [("/bucket/train", 3), ("/bucket/train/part-[12].parquet", 2)])
    def test_a_folder_or_glob_is_scanned_and_fingerprinted(
        self, bucket: MemoryFileSystem, path: str, files: int
    ) -> None:
        found = remote.resolve_in(bucket, path, f"memory://{path}")
        assert [entry["url"] for entry in found.recorded][-1] == "memory:///bucket/train/part-2.parquet"
        assert len(found.recorded) == files and all(entry["size"] > 0 and entry["version"] for entry in found.recorded)
        assert FileOut.model_validate(found.recorded[0]).url == found.recorded[0]["url"]  # the API shows it
        scanned = scan_parquet(found.inputs, {"y"}, LIMITS)
        assert scanned.rows == files * 100 and scanned.columns[1]["values"] == [0.0, 1.0]
        assert references.changes(found.recorded, Path("/nowhere")) == []
        bucket.pipe("/bucket/train/part-2.parquet", pd.DataFrame({"x": [1.0], "y": [0]}).to_parquet())
        (changed,) = references.changes(found.recorded, Path("/nowhere"))
        assert changed.startswith("'memory:///bucket/train/part-2.parquet' changed size")
        bucket.rm("/bucket/train/part-2.parquet")
        assert references.changes(found.recorded, Path("/nowhere")) == [
            "'memory:///bucket/train/part-2.parquet' is gone"
        ]

    def test_the_engine_reads_the_objects_by_url(self, bucket: MemoryFileSystem) -> None:
        urls = [entry["url"] for entry in remote.resolve_in(bucket, "/bucket/train", "memory:///bucket/train").recorded]
        table = ParquetTable(urls)
        assert table.num_rows == 300 and table.columns == ["x", "y"] and len(table.chunks) == 3
        assert read_all(table, ["x"])["x"].tolist() == (np.arange(300) / 3).tolist()
        before = table.fingerprint(["x"])
        bucket.pipe("/bucket/train/part-0.parquet", pd.DataFrame({"x": [0.5], "y": [1]}).to_parquet())
        assert ParquetTable(urls).fingerprint(["x"]) != before

    def test_what_names_no_parquet_object(self, bucket: MemoryFileSystem) -> None:
        for path, words in (
            ("/bucket/none-*.parquet", "No object matches"),
            ("/bucket/missing.parquet", "does not exist"),
        ):
            with pytest.raises(Unprocessable, match=words):
                remote.resolve_in(bucket, path, f"memory://{path}")
        bucket.mkdir("/bucket/empty")
        bucket.pipe("/bucket/empty/readme.txt", b"")
        with pytest.raises(Unprocessable, match=r"has no \.parquet objects"):
            remote.resolve_in(bucket, "/bucket/empty", "memory:///bucket/empty")

    @pytest.mark.parametrize(("url", "package"), [("s3://bucket/train/", "s3fs"), ("gs://bucket/train/", "gcsfs")])
    def test_without_the_cloud_extra_the_refusal_names_it(self, tmp_path: Path, url: str, package: str) -> None:
        try:
            __import__(package)
            pytest.skip(f"{package} is installed here")
        except ImportError:
            pass
        with pytest.raises(Unprocessable) as raised:
            references.resolve(url, tmp_path)
        assert "pip install 'fusebox[cloud]'" in raised.value.message and package in raised.value.message

    def test_unknown_schemes_keep_their_refusal(self, tmp_path: Path) -> None:
        with pytest.raises(Unprocessable, match="Unknown URI scheme 'ftp:'"):
            references.resolve("ftp://host/a.parquet", tmp_path)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin a process to one")
def test_arrow_runs_no_more_threads_than_the_process_may_use() -> None:
    code = (
        "import os; import pyarrow as pa; before = pa.cpu_count(); "  # arrow sized its pool for every core
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); "
        "from service.datasets.limits import cap_arrow_threads; cap_arrow_threads(); print(before, pa.cpu_count())"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after = map(int, done.stdout.split())
    assert before >= 2 and after == 1
