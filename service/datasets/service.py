"""Dataset business logic: validate an upload and store it as Parquet, or register Parquet files in place
under the data root; record either; list and fetch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from service.core.repository import get_owned, list_owned
from service.core.schemas import Page
from service.core.storage import ArtifactStore, StagedFile
from service.datasets import references
from service.datasets.limits import TableLimits
from service.datasets.models import Dataset
from service.datasets.scanning import scan_parquet
from service.datasets.schemas import DatasetMetadata, DatasetReference
from service.datasets.uploads import write_upload


def create_dataset(
    session: Session,
    store: ArtifactStore,
    tenant_id: str,
    upload: StagedFile,
    metadata: DatasetMetadata,
    limits: TableLimits,
) -> Dataset:
    upload.finish()
    filename = upload.filename or "upload"
    with store.scratch_file(".parquet") as scratch:
        written = write_upload(upload.path, filename, set(metadata.label_columns), limits, scratch)
        stored = store.adopt_file(scratch)
    dataset = Dataset(
        tenant_id=tenant_id,
        name=metadata.name or filename,
        source_format=written.source_format,
        upload_sha256=upload.sha256,
        sha256=stored.sha256,
        size_bytes=stored.size,
        rows=written.rows,
        columns=written.columns,
    )
    try:
        session.add(dataset)
        session.commit()
    except BaseException:
        session.rollback()
        if stored.created:
            store.delete(stored.sha256)
        raise
    return dataset


def register_reference(
    session: Session, tenant_id: str, reference: DatasetReference, data_root: Path, limits: TableLimits
) -> Dataset:
    """Nothing is copied: each file's size and mtime (or ETag) are recorded, for jobs to find them unchanged."""
    found = references.resolve(reference.uri, data_root)  # recorded before reading: a later write shows as a change
    scanned = scan_parquet(found.inputs, set(reference.label_columns), limits)
    dataset = Dataset(
        tenant_id=tenant_id,
        name=reference.name or reference.uri,
        source_kind="reference",
        source_format="parquet",
        uri=reference.uri,
        files=found.recorded,
        size_bytes=sum(entry["size"] for entry in found.recorded),
        rows=scanned.rows,
        columns=scanned.columns,
    )
    session.add(dataset)
    session.commit()
    return dataset


def list_datasets(session: Session, tenant_id: str, page: Page) -> Sequence[Dataset]:
    return list_owned(session, Dataset, tenant_id, page)


def get_dataset(session: Session, tenant_id: str, dataset_id: uuid.UUID) -> Dataset:
    return get_owned(session, Dataset, tenant_id, dataset_id, "dataset")
