"""Alembic environment: the connection comes from the caller (CLI, tests) or from settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from models import Base

config = context.config
target_metadata = Base.metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        # Serialise concurrent migrators (two first commands at once) on one advisory lock.
        connection.exec_driver_sql("SELECT pg_advisory_xact_lock(74657001)")
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        return
    from agentforge.db import get_engine

    with get_engine().connect() as conn:
        _configure(conn)
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported; run against a database")
run_migrations_online()
