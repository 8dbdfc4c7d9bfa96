"""Datasets in cloud object stores (s3://, gs://), read in place through fsspec, as pyarrow file systems.

The `cloud` extra (pip install 'fusebox[cloud]') brings the fsspec implementations, s3fs and gcsfs, on the
API and every worker host; credentials come from the environment, wherever each library looks for them.
Without the extra, such a URL is a 422 that names it. As for local files, nothing is copied: every object
is recorded with its size and its ETag (or modification time, where the store gives no ETag), and a job
compares them before it trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fsspec import AbstractFileSystem

from fusion.data.objects import arrow_filesystem, object_version, url_filesystem
from service.core.errors import Unprocessable
from service.datasets.scanning import ParquetInput

CLOUD_SCHEMES = {"s3": "s3fs", "gs": "gcsfs", "gcs": "gcsfs"}
"""The URL schemes read through fsspec, and the package of the cloud extra that reads each."""
EXTRA = "fusebox[cloud]"
GLOB_CHARACTERS = frozenset("*?[")


@dataclass(frozen=True)
class FoundFiles:
    """A reference's files: how scanning reads them, and what the dataset row records of each."""

    inputs: list[ParquetInput]
    recorded: list[dict[str, Any]]


def filesystem(url: str) -> tuple[AbstractFileSystem, str]:
    """The fsspec file system of `url`, and the path in it; a 422 naming the extra when it is missing."""
    scheme = url.split("://", 1)[0]
    try:
        return url_filesystem(url)
    except ImportError:
        package = CLOUD_SCHEMES.get(scheme, "its fsspec implementation")
        raise Unprocessable(
            f"{scheme}:// URLs need the cloud extra, which this server lacks: pip install '{EXTRA}' (it brings "
            f"{package}) on the API and every worker host. Or mount the storage under the data root "
            "(FUSEBOX_DATA_ROOT) and register the path relative to it."
        ) from None
    except (ValueError, OSError) as error:
        raise Unprocessable(f"'{url}' is not a usable URL ({error}).") from None


def resolve(url: str) -> FoundFiles:
    fs, path = filesystem(url)
    return resolve_in(fs, path, url)


def resolve_in(fs: AbstractFileSystem, path: str, url: str) -> FoundFiles:
    """The Parquet objects `path` names in `fs` (one object, a folder of them, or a glob), sorted."""
    try:
        if GLOB_CHARACTERS & set(path):
            paths = [found for found in fs.glob(path) if fs.isfile(found)]
            if not paths:
                raise Unprocessable(f"No object matches '{url}'. Check the pattern.")
        elif fs.isdir(path):
            paths = fs.glob(f"{path.rstrip('/')}/*.parquet")
            if not paths:
                raise Unprocessable(f"'{url}' has no .parquet objects. Point at a folder of Parquet files.")
        elif fs.isfile(path):
            paths = [path]
        else:
            raise Unprocessable(f"'{url}' does not exist. Check the URL (and the credentials of the API host).")
        infos = [fs.info(found) for found in sorted(paths)]
    except (OSError, ValueError) as error:  # a missing bucket, denied access, ...
        raise Unprocessable(f"'{url}' could not be listed: {error}") from None
    readable = arrow_filesystem(fs)
    urls = [fs.unstrip_protocol(info["name"]) for info in infos]
    return FoundFiles(
        inputs=[ParquetInput(readable, info["name"], shown) for info, shown in zip(infos, urls, strict=True)],
        recorded=[fingerprint(shown, info) for shown, info in zip(urls, infos, strict=True)],
    )


def fingerprint(url: str, info: dict[str, Any]) -> dict[str, Any]:
    """What the dataset row records of one object: its URL, size, and version (ETag, or else mtime)."""
    return {"url": url, "size": int(info["size"]), "version": object_version(info)}


def change(entry: dict[str, Any]) -> str | None:
    """How the object `entry` records differs from the store now; None when it is as registered."""
    fs, path = filesystem(entry["url"])
    try:
        info = fs.info(path)
    except FileNotFoundError:
        return f"'{entry['url']}' is gone"
    now = fingerprint(entry["url"], info)
    if now["size"] != entry["size"]:
        return f"'{entry['url']}' changed size ({entry['size']:,} -> {now['size']:,} bytes)"
    if now["version"] != entry["version"]:
        return f"'{entry['url']}' was modified"
    return None
