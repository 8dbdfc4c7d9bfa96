"""The artifact store: content-addressed files under one root that every host mounts.

A file's name is the sha256 of its bytes, so the same model uploaded twice is stored once and a name
can never point at other bytes. Files are written to a temporary file beside their final place, hashed
while they stream in, and renamed into place: a reader never sees half a file, a crash leaves only a
temporary file behind.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import IO

from service.core.config import get_settings

CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    created: bool
    """False when the store held these bytes already (deleting on rollback must then leave them)."""


class SizeLimitExceeded(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"more than {limit:,} bytes")
        self.limit = limit


class StagedFile:
    """A temporary file that hashes and counts what is written to it, and refuses to grow past a limit."""

    def __init__(self, handle: IO[bytes], path: Path, limit: int | None) -> None:
        self._handle = handle
        self.path = path
        self.limit = limit
        self.size = 0
        self._digest = hashlib.sha256()
        self.filename: str | None = None

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.limit is not None and self.size > self.limit:
            raise SizeLimitExceeded(self.limit)
        self._digest.update(chunk)
        self._handle.write(chunk)

    def finish(self) -> None:
        """Flush to disk; after this the staged bytes survive a crash once renamed."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.objects = root / "sha256"
        self.scratch = root / "tmp"
        for folder in (self.objects, self.scratch):
            folder.mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        if len(sha256) != 64 or not all(c in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a sha256 digest: {sha256!r}")
        return self.objects / sha256[:2] / sha256[2:]

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).exists()

    @contextmanager
    def stage(self, limit: int | None = None) -> Iterator[StagedFile]:
        """A temporary file on the store's file system (so that adopting it is a rename), removed on exit
        unless it was adopted."""
        handle = tempfile.NamedTemporaryFile(dir=self.scratch, prefix="upload-", delete=False)  # noqa: SIM115
        staged = StagedFile(handle, Path(handle.name), limit)
        try:
            yield staged
        finally:
            handle.close()
            staged.path.unlink(missing_ok=True)

    def remove_stale_staging(self, max_age_s: float) -> list[Path]:
        """Staged files untouched for `max_age_s`: left by a request that died with its process (a killed API
        never runs its clean-up). Writing touches a file, so one still streaming in is never among them."""
        cutoff = time.time() - max_age_s
        removed = []
        for path in self.scratch.iterdir():
            try:
                if path.is_file() and path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed.append(path)
            except FileNotFoundError:  # adopted or removed by its request meanwhile
                continue
        return removed

    def adopt(self, staged: StagedFile) -> StoredFile:
        """Move a finished staged file into place under its hash."""
        staged.finish()
        return self._place(staged.path, staged.sha256, staged.size)

    @contextmanager
    def scratch_file(self, suffix: str = "") -> Iterator[Path]:
        """A path for a library to write to (pandas, ONNX), removed on exit unless adopted."""
        handle, name = tempfile.mkstemp(dir=self.scratch, prefix="write-", suffix=suffix)
        os.close(handle)
        try:
            yield Path(name)
        finally:
            Path(name).unlink(missing_ok=True)

    def adopt_file(self, path: Path) -> StoredFile:
        """Move a finished scratch file into place under its hash (read once to compute it)."""
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK_BYTES):
                digest.update(chunk)
            os.fsync(handle.fileno())
        return self._place(path, digest.hexdigest(), path.stat().st_size)

    def put_bytes(self, data: bytes) -> StoredFile:
        with self.stage() as staged:
            for start in range(0, len(data), CHUNK_BYTES):
                staged.write(data[start : start + CHUNK_BYTES])
            return self.adopt(staged)

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def job_folder(self, job_id: object) -> Path:
        """Per-job working files (epoch checkpoints), shared by whichever worker runs the job."""
        folder = self.root / "jobs" / str(job_id)
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def remove_job_folder(self, job_id: object) -> None:
        """A job's working files, once nothing will resume it."""
        shutil.rmtree(self.root / "jobs" / str(job_id), ignore_errors=True)

    @property
    def component_cache(self) -> Path:
        return self.root / "component-cache"

    def _place(self, temporary: Path, sha256: str, size: int) -> StoredFile:
        target = self.path(sha256)
        if target.exists():
            temporary.unlink(missing_ok=True)
            return StoredFile(sha256, size, created=False)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
        return StoredFile(sha256, size, created=True)


@lru_cache
def get_store() -> ArtifactStore:
    return ArtifactStore(get_settings().artifacts)
