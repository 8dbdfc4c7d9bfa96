"""The rows an Open Inference Protocol request declares, read while its body streams in.

Every input carries `"shape": [rows, ...]`, and clients write it before the data (tritonclient does, and
so does the binary extension, whose JSON header comes before any tensor bytes). So a request for more rows
than the limit is refused at its first chunk, before megabytes of numbers are received, parsed into Python
objects and checked: parsing holds the interpreter's lock, even on a worker thread, and the event loop
would wait for it. The full check after parsing stays (protocol.py, service.py); this one only comes first.
"""

from __future__ import annotations

import re

from service.core.errors import TooLarge

_SHAPE = re.compile(rb'"shape"\s*:\s*\[\s*(\d{1,19})')
_OVERLAP = 64
"""Bytes of the previous chunk scanned again: a `"shape": [1000000` split between two chunks is still found."""


class DeclaredRows:
    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._tail = b""

    def feed(self, chunk: bytes) -> None:
        """TooLarge as soon as a shape declares more rows than the limit."""
        window = self._tail + chunk
        for match in _SHAPE.finditer(window):
            rows = int(match.group(1))
            if rows > self.max_rows:
                raise TooLarge(f"{rows:,} rows are more than the limit of {self.max_rows:,} per request")
        self._tail = window[-_OVERLAP:]
