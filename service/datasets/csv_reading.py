"""CSV uploads read as a stream: pyarrow's CSV reader parses a block at a time.

A whole-file reader infers each column's type from all its values; a stream cannot. So the first pass reads
every value as text, parses it as a float for the statistics, and notes whether every value of a column
was written as a whole number; such a column without gaps is int64, as pandas would read it, the others are
float64. The second pass parses each column as its type and writes it. Every problem is a 422 saying what
to change.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from service.core.errors import Unprocessable
from service.datasets.statistics import ColumnSummary

BLOCK_BYTES = 4 * 2**20
"""Text parsed at a time (a row longer than that makes a block of its own); the header is read from as many bytes."""

_NOT_A_NUMBER = re.compile(r"Failed to parse string: '(.*)' as a scalar", re.DOTALL)
_FIELD_COUNT = re.compile(r"Expected (\d+) columns, got (\d+)")


def read_header(path: Path) -> list[str]:
    """The column names on the first line, read from at most BLOCK_BYTES bytes."""
    with path.open("rb") as handle:
        head = handle.read(BLOCK_BYTES)
    end = head.find(b"\n")
    if end < 0 and len(head) == BLOCK_BYTES:
        raise Unprocessable(
            f"The first line is longer than {BLOCK_BYTES:,} bytes. Put the column names on the first line, "
            "or upload Parquet."
        )
    try:
        line = (head if end < 0 else head[:end]).decode("utf-8-sig").rstrip("\r")
    except UnicodeDecodeError as error:
        raise not_utf8(error.object[error.start], error.start) from None
    try:
        header = next(csv.reader([line]), None)
    except csv.Error as error:  # a name past the csv module's field limit, a stray quote
        raise Unprocessable(f"The header row could not be parsed ({error}). Give the columns short names.") from None
    if not header:
        raise Unprocessable("The CSV file has no header row. Put the column names on the first line.")
    return header


def text_batches(path: Path, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The rows after the header, a block at a time, every column as text (empty, NA or nan: null)."""
    read = pa_csv.ReadOptions(column_names=list(names), skip_rows=1, block_size=BLOCK_BYTES)
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()), strings_can_be_null=True)
    try:
        with pa_csv.open_csv(path, read_options=read, convert_options=convert) as reader:
            yield from reader
    except pa.ArrowInvalid as error:
        raise _parse_problem(str(error), path) from None


def typed(text: pa.Array, kind: pa.DataType) -> pa.Array:
    """A text column parsed as `kind`, as `numbers` found it parses."""
    return pc.cast(pc.utf8_trim_whitespace(text), kind)


def numbers(text: pa.Array, name: str, whole: bool) -> tuple[np.ndarray, bool]:
    """A text column's values as float64 (NaN where missing), and whether they and all before them (`whole`)
    were written as whole numbers."""
    text = pc.utf8_trim_whitespace(text)
    try:
        values = pc.cast(text, pa.float64())
    except pa.ArrowInvalid as error:
        found = _NOT_A_NUMBER.search(str(error))
        value = (found.group(1) if found else "").encode("unicode_escape").decode("ascii")
        shown = value if len(value) <= 40 else f"{value[:37]}..."
        raise Unprocessable(
            f"Column(s) '{name}' are not numeric (a value '{shown}'). Encode categories as integer ids "
            "(0, 1, 2, ...) and booleans as 0/1 before uploading."
        ) from None
    if whole:
        try:
            pc.cast(text, pa.int64())
        except pa.ArrowInvalid:  # a fraction, an exponent, '1.0', or past int64
            whole = False
    return values.to_numpy(zero_copy_only=False), whole


def column_kind(summary: ColumnSummary, whole: bool) -> pa.DataType:
    """int64 for a column of whole numbers (as written) without gaps, as pandas reads it; float64 otherwise."""
    return pa.int64() if whole and not summary.missing else pa.float64()


def not_utf8(byte: int, position: int) -> Unprocessable:
    return Unprocessable(
        f"The file is not UTF-8 text (byte 0x{byte:02x} at position {position}). Save the CSV as UTF-8, or "
        "upload Parquet."
    )


def _parse_problem(message: str, path: Path) -> Unprocessable:
    if "invalid UTF8" in message:
        invalid = _first_invalid_utf8(path)
        if invalid is not None:
            return not_utf8(*invalid)
    counts = _FIELD_COUNT.search(message)
    if counts:
        expected, got = int(counts.group(1)), int(counts.group(2))
        more = "more" if got > expected else "fewer"
        return Unprocessable(
            f"Some rows have {more} fields than the header's {expected} columns. Give every row exactly one value "
            "per column (quote values that contain commas)."
        )
    return Unprocessable(f"The CSV file could not be parsed: {' '.join(message.split())}")


def _first_invalid_utf8(path: Path) -> tuple[int, int] | None:
    """(byte, position) of the first byte that is not UTF-8, read a block at a time."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    with path.open("rb") as handle:
        while block := handle.read(BLOCK_BYTES):
            pending = decoder.getstate()[0]  # the start of a character cut by the previous block
            try:
                decoder.decode(block)
            except UnicodeDecodeError as error:
                return error.object[error.start], offset - len(pending) + error.start
            offset += len(block)
    return None
