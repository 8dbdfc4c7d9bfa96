"""Source model business logic: accept an upload through the engine's intake, store it, list, delete."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from fusion.intake import IntakeLimits
from service.core.errors import Conflict
from service.core.repository import get_owned, list_owned
from service.core.schemas import Page
from service.core.storage import ArtifactStore, StagedFile
from service.models.inspection import inspect_upload
from service.models.models import UploadedModel
from service.models.schemas import ModelMetadata


def create_model(
    session: Session,
    store: ArtifactStore,
    tenant_id: str,
    metadata: ModelMetadata,
    upload: StagedFile,
    weights: StagedFile | None,
    limits: IntakeLimits,
) -> UploadedModel:
    _check_name_free(session, tenant_id, metadata.name)
    for staged in (upload, weights):
        if staged is not None:
            staged.finish()
    companion = (weights.filename or "weights", weights.path) if weights is not None else None
    inspected = inspect_upload(upload.path, companion, metadata, limits)
    with store.scratch_file(".onnx") as scratch:
        with scratch.open("wb") as handle:
            inspected.loaded.write(handle)  # the weights streamed in, never all in memory
        stored = store.adopt_file(scratch)
    model = UploadedModel(
        tenant_id=tenant_id,
        name=metadata.name,
        task_name=metadata.task,
        task_type=metadata.task_type,
        classes=metadata.classes,
        filename=upload.filename or "model.onnx",
        sha256=stored.sha256,
        size_bytes=stored.size,
        signature=inspected.signature,
        decomposition=inspected.decomposition,
    )
    try:
        session.add(model)
        session.commit()
    except BaseException as error:
        session.rollback()
        if stored.created:
            store.delete(stored.sha256)
        if isinstance(error, IntegrityError):  # the same name, uploaded concurrently
            raise _name_taken(metadata.name) from None
        raise
    return model


def list_models(session: Session, tenant_id: str, page: Page, name: str | None = None) -> Sequence[UploadedModel]:
    conditions = [UploadedModel.name == name] if name is not None else []
    return list_owned(session, UploadedModel, tenant_id, page, *conditions)


def get_model(session: Session, tenant_id: str, model_id: uuid.UUID) -> UploadedModel:
    return get_owned(session, UploadedModel, tenant_id, model_id, "model")


def delete_model(session: Session, store: ArtifactStore, tenant_id: str, model_id: uuid.UUID) -> None:
    model = get_model(session, tenant_id, model_id)
    active = [job.id for job in model.jobs if job.active]
    if active:
        raise Conflict(
            f"model '{model.name}' is used by active fusion job(s) {', '.join(map(str, active))}; "
            "wait for them to finish or cancel them first"
        )
    sha256 = model.sha256
    session.delete(model)
    session.commit()
    # The file may be shared with another row holding the same bytes; it goes with the last of them.
    if not session.scalar(select(exists().where(UploadedModel.sha256 == sha256))):
        store.delete(sha256)


def _check_name_free(session: Session, tenant_id: str, name: str) -> None:
    taken = session.scalar(select(func.count()).where(UploadedModel.tenant_id == tenant_id, UploadedModel.name == name))
    if taken:
        raise _name_taken(name)


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a model named '{name}' exists already; choose another name or delete that model first")
