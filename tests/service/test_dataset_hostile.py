"""Parquet uploads whose values would unpack to hundreds of megabytes from a few kilobytes, over HTTP on the
real stack: refused from the footer's schema, fast, with the API's memory barely moving (issue 15)."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers.refusals import nothing_stored, refused
from tests.helpers.stacks import Stack

MOST_SECONDS = 2.0
MOST_GROWTH_BYTES = 200 * 2**20


def compressed(table: pa.Table) -> bytes:
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd", compression_level=19)
    return out.getvalue()


def one_row_of_zeros() -> bytes:
    """One row whose list<int8> holds 2 x 10^8 zeros."""
    zeros = pa.array(np.zeros(200_000_000, dtype=np.int8))
    column = pa.ListArray.from_arrays(pa.array([0, len(zeros)], pa.int32()), zeros)
    return compressed(pa.table({"x": [1.0], "zeros": column}))


def one_huge_string() -> bytes:
    """A few kilobytes holding one string of 500 MB."""
    text = pa.array([b"\0" * 500_000_000], pa.large_binary()).cast(pa.large_string())
    return compressed(pa.table({"x": [1.0], "text": text}))


class PeakResident(threading.Thread):
    """The API's largest resident memory, sampled every 10 ms until stopped."""

    def __init__(self, stack: Stack) -> None:
        super().__init__(daemon=True)
        self.stack = stack
        self.peak = stack.resident_bytes()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.01):
            self.peak = max(self.peak, self.stack.resident_bytes())


@pytest.mark.parametrize(
    ("build", "column", "words"),
    [(one_row_of_zeros, "zeros", "nested values"), (one_huge_string, "text", "text or bytes")],
    ids=["list of 2e8 zeros", "500 MB string"],
)
def test_a_parquet_bomb_is_refused_fast_in_bounded_memory(
    pg_stack: Stack, build: Callable[[], bytes], column: str, words: str
) -> None:
    content = build()
    assert len(content) < 4 * 2**20  # within the stack's upload limit: the footer, not the size, refuses it
    with pg_stack.client() as client, nothing_stored(pg_stack, client):
        client.get("/v2/health/ready")  # a warm API: what follows is the upload's own cost
        before = pg_stack.resident_bytes()
        sampler = PeakResident(pg_stack)
        sampler.start()
        started = time.perf_counter()
        response = client.post("/v1/datasets", files={"file": ("bomb.parquet", content)})
        seconds = time.perf_counter() - started
        sampler.stopped.set()
        sampler.join()
        refused(response, 422, f"'{column}'", "not numeric", words)
    growth = max(sampler.peak, pg_stack.resident_bytes()) - before
    assert seconds < MOST_SECONDS, f"answered after {seconds:.2f} s"
    assert growth < MOST_GROWTH_BYTES, f"the API grew by {growth / 2**20:.0f} MB"
