"""The artifact store: content addressing, atomic placement, limits, nothing left behind."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from service.core.storage import ArtifactStore, SizeLimitExceeded


def leftovers(store: ArtifactStore) -> list[Path]:
    return list(store.scratch.iterdir())


def test_files_are_named_by_their_sha256_and_stored_once(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    first = store.put_bytes(b"fusebox")
    second = store.put_bytes(b"fusebox")
    assert first.sha256 == hashlib.sha256(b"fusebox").hexdigest() and first.size == 7
    assert first.created and not second.created
    assert store.path(first.sha256).read_bytes() == b"fusebox"
    assert leftovers(store) == []


def test_staged_uploads_hash_while_streaming_and_stop_at_the_limit(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with store.stage(limit=10) as staged:
        staged.write(b"12345")
        staged.write(b"67890")
        stored = store.adopt(staged)
    assert stored.sha256 == hashlib.sha256(b"1234567890").hexdigest()
    with pytest.raises(SizeLimitExceeded), store.stage(limit=10) as staged:
        staged.write(b"12345678901")
    assert leftovers(store) == [] and len(list(store.objects.rglob("*"))) == 2  # one folder, one file


def test_scratch_files_are_removed_unless_adopted(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    with store.scratch_file(".parquet") as path:
        path.write_bytes(b"abc")
        stored = store.adopt_file(path)
    with store.scratch_file() as path:
        path.write_bytes(b"never adopted")
    assert leftovers(store) == [] and store.exists(stored.sha256)
    store.delete(stored.sha256)
    assert not store.exists(stored.sha256)


def test_only_digests_name_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="sha256"):
        ArtifactStore(tmp_path).path("../../etc/passwd")


def test_only_stale_staged_files_are_swept(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path)
    kept = store.put_bytes(b"stored")
    with store.stage() as streaming:
        streaming.write(b"still arriving")
        left = store.scratch / "upload-left-by-a-killed-api"
        left.write_bytes(b"half an upload")
        an_hour_ago = time.time() - 3600
        os.utime(left, (an_hour_ago, an_hour_ago))
        assert store.remove_stale_staging(max_age_s=1800) == [left]
        assert streaming.path.exists() and store.exists(kept.sha256)
