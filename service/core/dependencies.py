"""What routes get injected: a database session, the artifact store, the settings.

The store and the settings come from async providers: FastAPI calls those on the event loop, where a plain
function dependency would cost a worker-thread round trip per request (the infer route's budget is a
fraction of a millisecond).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends
from sqlalchemy.orm import Session

from service.core.config import Settings, get_settings
from service.core.database import get_session_factory
from service.core.storage import ArtifactStore, get_store


def get_session() -> Iterator[Session]:
    with get_session_factory()() as session:
        yield session


async def _store() -> ArtifactStore:
    return get_store()


async def _settings() -> Settings:
    return get_settings()


DbSession = Annotated[Session, Depends(get_session)]
Store = Annotated[ArtifactStore, Depends(_store)]
AppSettings = Annotated[Settings, Depends(_settings)]
