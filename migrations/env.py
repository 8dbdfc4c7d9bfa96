"""Alembic environment: online migrations only, one transaction, serialised across processes on PostgreSQL."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from service.core.config import get_settings
from service.core.database import create_db_engine
from service.tables import metadata

# Any number to share between API replicas: the one holding this lock migrates, the others wait and find
# the database already at head.
_MIGRATION_LOCK = 0x66_75_73_65


def run_migrations() -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url") or get_settings().sqlalchemy_url
    engine = create_db_engine(url)
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": _MIGRATION_LOCK})
        try:
            context.configure(
                connection=connection,
                target_metadata=metadata,
                render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying them
                compare_type=True,
            )
            with context.begin_transaction():
                context.run_migrations()
        finally:
            if connection.dialect.name == "postgresql":
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _MIGRATION_LOCK})
                connection.commit()
    engine.dispose()


run_migrations()
