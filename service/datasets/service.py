"""Dataset business logic: validate an upload, store it as Parquet, record it; list and fetch."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy.orm import Session

from service.core.repository import get_owned, list_owned
from service.core.schemas import Page
from service.core.storage import ArtifactStore, StagedFile
from service.datasets import parsing
from service.datasets.models import Dataset
from service.datasets.schemas import DatasetMetadata


def create_dataset(
    session: Session,
    store: ArtifactStore,
    tenant_id: str,
    upload: StagedFile,
    metadata: DatasetMetadata,
    limits: parsing.TableLimits,
) -> Dataset:
    upload.finish()
    filename = upload.filename or "upload"
    frame, source_format = parsing.read_table(upload.path, filename, limits)
    parsing.check_table(frame, set(metadata.label_columns))
    with store.scratch_file(".parquet") as scratch:
        frame.to_parquet(scratch, index=False)
        stored = store.adopt_file(scratch)
    dataset = Dataset(
        tenant_id=tenant_id,
        name=metadata.name or filename,
        source_format=source_format,
        upload_sha256=upload.sha256,
        sha256=stored.sha256,
        size_bytes=stored.size,
        rows=len(frame),
        columns=parsing.column_statistics(frame),
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


def list_datasets(session: Session, tenant_id: str, page: Page) -> Sequence[Dataset]:
    return list_owned(session, Dataset, tenant_id, page)


def get_dataset(session: Session, tenant_id: str, dataset_id: uuid.UUID) -> Dataset:
    return get_owned(session, Dataset, tenant_id, dataset_id, "dataset")
