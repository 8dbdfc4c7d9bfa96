"""Objects in cloud stores (s3://, gs://) read as pyarrow files through fsspec, and what identifies one
version of an object: the same for the API's statistics and the engine's reads.

fsspec finds the store's implementation (s3fs, gcsfs: the `cloud` extra) from the URL, and raises
ImportError naming it when it is not installed.
"""

from __future__ import annotations

from typing import Any

import fsspec
import pyarrow as pa
import pyarrow.fs as pafs
from fsspec import AbstractFileSystem

VERSION_KEYS = ("ETag", "etag", "generation", "md5Hash")
"""What s3fs and gcsfs call an object's version, in order of preference."""
TIME_KEYS = ("LastModified", "updated", "mtime", "created")
"""The modification time, for stores that give no version."""


def is_url(entry: object) -> bool:
    return isinstance(entry, str) and "://" in entry and not entry.startswith("file://")


def url_filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec file system of `url`, and the object's path in it."""
    fs, path = fsspec.core.url_to_fs(url)
    return fs, path


def arrow_filesystem(fs: AbstractFileSystem) -> pafs.FileSystem:
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs))


def open_url(url: str) -> pa.NativeFile:
    fs, path = url_filesystem(url)
    return arrow_filesystem(fs).open_input_file(path)


def object_version(info: dict[str, Any]) -> str:
    """The object's ETag (or generation, or checksum), else its modification time, as the store lists it."""
    for key in (*VERSION_KEYS, *TIME_KEYS):
        if info.get(key) is not None:
            return str(info[key])
    return ""
