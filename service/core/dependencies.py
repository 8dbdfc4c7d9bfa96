"""What routes get injected: a database session, the artifact store, the settings."""

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


DbSession = Annotated[Session, Depends(get_session)]
Store = Annotated[ArtifactStore, Depends(get_store)]
AppSettings = Annotated[Settings, Depends(get_settings)]
