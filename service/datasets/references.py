"""Datasets by reference: Parquet files read in place under the data root (FUSEBOX_DATA_ROOT), which every
API and worker host mounts, like the artifact store, or in a cloud object store (remote.py). Nothing is copied.

A URI is a path relative to the root (or an absolute path, or file:// URL, inside it): one Parquet file, a
folder of them, or a glob. Whatever it names must stay inside the root once `..` and symlinks are resolved.
Because the files are not copied, each is recorded with its size and modification time: a job compares
them before it trains (`changes`), so that it never trains on other data than its statistics describe.
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

from service.core.errors import Unprocessable
from service.datasets import remote
from service.datasets.remote import FoundFiles
from service.datasets.scanning import ParquetInput

UNREAD_SCHEMES = frozenset({"abfs", "abfss", "az", "hdfs", "http", "https"})


def resolve(uri: str, root: Path) -> FoundFiles:
    """The Parquet files `uri` names, sorted: in a cloud store, or resolved and all inside `root`."""
    parts = urlsplit(uri)
    if parts.scheme in remote.CLOUD_SCHEMES:
        return remote.resolve(uri)
    files = _local_files(uri, parts.scheme, parts.netloc, parts.path, root)
    recorded = fingerprints(files, root)  # before any read: a write after it shows as a change
    local = pafs.LocalFileSystem()
    return FoundFiles(
        [ParquetInput(local, str(file), entry["path"]) for file, entry in zip(files, recorded, strict=True)], recorded
    )


def _local_files(uri: str, scheme: str, netloc: str, url_path: str, root: Path) -> list[Path]:
    if scheme in UNREAD_SCHEMES:
        raise Unprocessable(
            f"{scheme}:// URLs are not read. Mount the storage on every host under the data root "
            f"(FUSEBOX_DATA_ROOT, here {root}) and register the path relative to it, or use s3:// or gs://."
        )
    if scheme not in ("", "file") or (scheme == "file" and netloc not in ("", "localhost")):
        raise Unprocessable(
            f"Unknown URI scheme '{scheme}:'. Give a path relative to the data root ({root}): "
            "a Parquet file, a folder of Parquet files, or a glob such as 'train/*.parquet'; or an s3:// or gs:// URL."
        )
    try:
        return _files(uri, url_path if scheme == "file" else None, root.resolve())
    except (OSError, ValueError) as error:  # a name too long for the file system, a NUL byte, ...
        shown = uri if len(uri) <= 80 else f"{uri[:77]}..."
        reason = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        raise Unprocessable(f"'{shown}' is not a usable path ({reason}). Give a path under the data root.") from None


def _files(uri: str, file_url_path: str | None, root: Path) -> list[Path]:
    given = Path(unquote(file_url_path) if file_url_path is not None else uri)
    path = given if given.is_absolute() else root / given
    if remote.GLOB_CHARACTERS & set(str(given)):
        files = [Path(match) for match in sorted(glob.glob(str(path), recursive=True)) if Path(match).is_file()]
        if not files:
            raise Unprocessable(f"No file matches '{uri}' under the data root ({root}). Check the pattern.")
    else:
        _inside(path, root, uri)
        if not path.exists():
            raise Unprocessable(f"'{uri}' does not exist under the data root ({root}). Check the path.")
        files = sorted(path.glob("*.parquet")) if path.is_dir() else [path]
        if not files:
            raise Unprocessable(f"The folder '{uri}' has no .parquet files. Point at a folder of Parquet files.")
    return [_inside(file, root, uri) for file in files]


def fingerprints(files: list[Path], root: Path) -> list[dict[str, Any]]:
    """What the dataset row records of each file: its path under the root, size and modification time."""
    return [_fingerprint(file.relative_to(root).as_posix(), file.stat()) for file in files]


def changes(recorded: list[dict[str, Any]], root: Path) -> list[str]:
    """How the recorded files differ from what is on disk now; empty when they are as registered."""
    found = []
    for entry in recorded:
        if "url" in entry:
            changed = remote.change(entry)
            if changed:
                found.append(changed)
            continue
        path = root / entry["path"]
        if not path.is_file():
            found.append(f"'{entry['path']}' is gone")
            continue
        now = _fingerprint(entry["path"], path.stat())
        if now["size"] != entry["size"]:
            found.append(f"'{entry['path']}' changed size ({entry['size']:,} -> {now['size']:,} bytes)")
        elif now["mtime_ns"] != entry["mtime_ns"]:
            found.append(f"'{entry['path']}' was modified")
    return found


def change_message(name: str, recorded: list[dict[str, Any]], root: Path) -> str | None:
    """Why a job must not train on the dataset `name` now; None when its files are as registered."""
    found = changes(recorded, root)
    if not found:
        return None
    return f"dataset '{name}' changed since it was registered: {'; '.join(found)}; register it again"


def _inside(path: Path, root: Path, uri: str) -> Path:
    """`path` with `..` and symlinks resolved; a 422 when that leaves the root."""
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        raise Unprocessable(
            f"'{uri}' is outside the data root ({root}), once '..' and symlinks are resolved. Put the data "
            "(not a symlink to it) under FUSEBOX_DATA_ROOT and give its path relative to that folder."
        )
    return resolved


def _fingerprint(path: str, stat: os.stat_result) -> dict[str, Any]:
    return {"path": path, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
