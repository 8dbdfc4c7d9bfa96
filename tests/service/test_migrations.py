"""The migrations and the ORM models describe the same schema, on SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from service.core.database import create_db_engine
from service.core.migrate import upgrade
from service.local_databases import fresh_postgres
from service.tables import metadata


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fresh.db'}"
        return
    with fresh_postgres() as url:
        yield url.replace("postgresql://", "postgresql+psycopg://")


def test_migrations_match_the_models(fresh_database: str) -> None:
    engine = create_db_engine(fresh_database)
    upgrade(fresh_database)
    upgrade(fresh_database)  # a second start-up finds the database at head and changes nothing
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), metadata)
    engine.dispose()
    assert differences == [], "the ORM models and the migrations differ: add a migration (make migration)"
