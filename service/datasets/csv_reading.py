"""CSV uploads read as a stream: pyarrow's CSV reader parses a block at a time, every column as float64.

A whole-file reader would infer each column's type from all its values; a stream cannot, so the first pass
reads every value as a float and gathers the statistics, which then say which columns are whole numbers
without gaps (int64, as pandas would read them) and which are float64. The second pass writes them so.
Every parse problem is a 422 saying what to change.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv

from service.core.errors import Unprocessable
from service.datasets.statistics import ColumnSummary

BLOCK_BYTES = 4 * 2**20
"""Text parsed at a time; also the longest row accepted."""

INT64_RANGE = (-(2.0**63), 2.0**63)
_CONVERSION = re.compile(r"In CSV column #(\d+): CSV conversion error to \w+: invalid value '(.*)'$", re.DOTALL)
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


def float_batches(path: Path, names: Sequence[str]) -> Iterator[pa.RecordBatch]:
    """The rows after the header, a block at a time, every column float64 (empty, NA or nan: missing)."""
    read = pa_csv.ReadOptions(column_names=list(names), skip_rows=1, block_size=BLOCK_BYTES)
    convert = pa_csv.ConvertOptions(column_types=dict.fromkeys(names, pa.float64()))
    try:
        with pa_csv.open_csv(path, read_options=read, convert_options=convert) as reader:
            yield from reader
    except pa.ArrowInvalid as error:
        raise _parse_problem(str(error), path, names) from None


def column_kind(summary: ColumnSummary) -> pa.DataType:
    """int64 for a column of whole numbers without gaps, as pandas reads it; float64 otherwise."""
    low, high = summary.minimum, summary.maximum
    if summary.integer_valued and not summary.missing and low is not None and high is not None:
        return pa.int64() if INT64_RANGE[0] <= low and high < INT64_RANGE[1] else pa.float64()
    return pa.float64()


def not_utf8(byte: int, position: int) -> Unprocessable:
    return Unprocessable(
        f"The file is not UTF-8 text (byte 0x{byte:02x} at position {position}). Save the CSV as UTF-8, or "
        "upload Parquet."
    )


def _parse_problem(message: str, path: Path, names: Sequence[str]) -> Unprocessable:
    conversion = _CONVERSION.search(message)
    if conversion:
        if "\ufffd" in conversion.group(2):
            invalid = _first_invalid_utf8(path)
            if invalid is not None:
                return not_utf8(*invalid)
        value = conversion.group(2)
        shown = value if len(value) <= 40 else f"{value[:37]}..."
        return Unprocessable(
            f"Column(s) '{names[int(conversion.group(1))]}' are not numeric (a value '{shown}'). Encode categories "
            "as integer ids (0, 1, 2, ...) and booleans as 0/1 before uploading."
        )
    counts = _FIELD_COUNT.search(message)
    if counts:
        expected, got = int(counts.group(1)), int(counts.group(2))
        more = "more" if got > expected else "fewer"
        return Unprocessable(
            f"Some rows have {more} fields than the header's {expected} columns. Give every row exactly one value "
            "per column (quote values that contain commas)."
        )
    if "straddles" in message:
        return Unprocessable(
            f"A row is longer than {BLOCK_BYTES:,} bytes, or a quote is never closed. Close every quote, or "
            "upload Parquet."
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
