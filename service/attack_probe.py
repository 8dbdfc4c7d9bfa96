"""One hostile request sent at a running stack while a health probe measures how the API copes: the answer,
how long it took, the API's resident memory before, at its peak and after, and the latencies of
`GET /v2/health/live` sent every few milliseconds meanwhile.

A development utility, like service/local_stack.py: the hostile-load tests and bench/hostile_load.py both
use it, and the service never imports it. Requests go over raw sockets, so that a body can be as large as
the attacker claims (Content-Length) while only what the server reads is actually sent, and a server that
answers before reading a body is seen to do so.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple

import httpx

from service.local_stack import LocalStack

CHUNK = 1 << 20
PROBE_INTERVAL_S = 0.02
SETTLE_S = 0.3
"""The probe keeps running this long after the answer: what the API still does then counts too."""


@dataclass
class Answer:
    status: int
    body: bytes


@dataclass
class Attack:
    """What one hostile request did to the API."""

    status: int
    body: bytes
    seconds: float
    rss_before: int
    rss_peak: int
    rss_after: int
    health_latencies: list[float] = field(default_factory=list)

    @property
    def rss_growth(self) -> int:
        """Peak over before: what the request cost at its worst."""
        return self.rss_peak - self.rss_before

    @property
    def health_p99(self) -> float:
        """The 99th percentile of the probe's latencies (a probe that got no answer counts as its timeout)."""
        if not self.health_latencies:
            return float("inf")
        ordered = sorted(self.health_latencies)
        return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def raw_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str],
    body: Iterator[bytes] | bytes = b"",
    content_length: int | None = None,
    timeout_s: float = 120,
) -> Answer:
    """Sends the request line and headers, then the body from a thread for as long as the server takes it,
    and reads the answer meanwhile; Content-Length is `content_length` (default: the body's size when
    given as bytes), else the body goes chunked."""
    if isinstance(body, bytes):
        content_length = len(body) if content_length is None else content_length
        view = memoryview(body)  # sliced as it is sent: no copy of a large body before the first byte goes
        chunks: Iterator[bytes] = (bytes(view[i : i + CHUNK]) for i in range(0, len(body), CHUNK))
    else:
        chunks = body
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {content_length}" if content_length is not None else "Transfer-Encoding: chunked")
    connection = socket.create_connection(("127.0.0.1", port), timeout=timeout_s)
    with connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        sender = threading.Thread(target=_send_body, args=(connection, chunks, content_length is None), daemon=True)
        sender.start()
        answer = _read_answer(connection)
    sender.join(timeout=5)
    return answer


def _send_body(connection: socket.socket, chunks: Iterator[bytes], chunked: bool) -> None:
    try:
        for chunk in chunks:
            connection.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n" if chunked else chunk)
        if chunked:
            connection.sendall(b"0\r\n\r\n")
    except OSError:  # the server answered and closed: the rest of the body is never sent
        pass


def _read_answer(connection: socket.socket) -> Answer:
    received = bytearray()
    while b"\r\n\r\n" not in received:
        data = connection.recv(65536)
        if not data:
            raise ConnectionError(f"the server closed the connection without an answer: {bytes(received)!r}")
        received += data
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    fields = dict(
        (name.strip().lower(), value.strip())
        for name, _, value in (line.partition(b":") for line in head.split(b"\r\n")[1:])
    )
    length = int(fields.get(b"content-length", b"0"))
    body = bytearray(rest)
    while len(body) < length:
        data = connection.recv(65536)
        if not data:
            break
        body += data
    return Answer(status, bytes(body[:length]))


class _HealthProbe:
    """`GET /v2/health/live` every PROBE_INTERVAL_S on a connection of its own, and the API's RSS with it."""

    def __init__(self, stack: LocalStack, timeout_s: float = 10) -> None:
        self.stack = stack
        self.timeout_s = timeout_s
        self.latencies: list[float] = []
        self.rss_peak = stack.resident_bytes()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> _HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stopped.set()
        self._thread.join(timeout=self.timeout_s + 5)

    def _run(self) -> None:
        with httpx.Client(base_url=self.stack.url, timeout=self.timeout_s) as client:
            while not self._stopped.is_set():
                self.rss_peak = max(self.rss_peak, self.stack.resident_bytes())
                started = time.perf_counter()
                try:
                    client.get("/v2/health/live").raise_for_status()
                    self.latencies.append(time.perf_counter() - started)
                except httpx.HTTPError:
                    self.latencies.append(self.timeout_s)
                self._stopped.wait(PROBE_INTERVAL_S)


def attack(stack: LocalStack, send: Callable[[], Answer | httpx.Response]) -> Attack:
    """Runs `send` while the health probe runs; the answer and what it cost the API."""
    rss_before = stack.resident_bytes()
    with _HealthProbe(stack) as probe:
        started = time.perf_counter()
        answer = send()
        seconds = time.perf_counter() - started
        time.sleep(SETTLE_S)
    if isinstance(answer, httpx.Response):
        answer = Answer(answer.status_code, answer.content)
    return Attack(
        status=answer.status,
        body=answer.body,
        seconds=seconds,
        rss_before=rss_before,
        rss_peak=max(probe.rss_peak, stack.resident_bytes()),
        rss_after=stack.resident_bytes(),
        health_latencies=probe.latencies,
    )


def filler(total: int, byte: bytes = b" ") -> Iterator[bytes]:
    """`total` bytes, a chunk at a time (never all in memory); spaces by default: JSON whitespace, a body
    that stays valid JSON for as long as the server cares to read it."""
    chunk = byte * CHUNK
    for _ in range(total // CHUNK):
        yield chunk
    if total % CHUNK:
        yield byte * (total % CHUNK)


class FilePart(NamedTuple):
    field: str
    filename: str
    content: Iterator[bytes]
    size: int


def multipart(fields: dict[str, str], *files: FilePart) -> tuple[dict[str, str], Iterator[bytes], int]:
    """A multipart/form-data body of text `fields` and `files`, streamed from each file's `content`: its
    Content-Type header, its chunks and its length."""
    boundary = "fuseboxattackboundary"
    opening = f"--{boundary}\r\nContent-Disposition: form-data; name="
    head = "".join(f'{opening}"{name}"\r\n\r\n{value}\r\n' for name, value in fields.items()).encode()
    binary = "Content-Type: application/octet-stream\r\n\r\n"
    file_heads = [f'{opening}"{part.field}"; filename="{part.filename}"\r\n{binary}'.encode() for part in files]
    tail = f"--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        yield head
        for part, file_head in zip(files, file_heads, strict=True):
            yield file_head
            yield from part.content
            yield b"\r\n"
        yield tail

    length = len(head) + sum(len(file_head) + part.size + 2 for part, file_head in zip(files, file_heads, strict=True))
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    return headers, chunks(), length + len(tail)
