"""Migrations on a real server: one head, round trip with data, no drift, newer DB refused."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from agentforge.db import normalise_database_url
from agentforge.errors import SchemaMismatch
from models import SCHEMA_HEAD, migrate


@pytest.fixture()
def scratch_engine(database_url: str):  # type: ignore[no-untyped-def]
    """A separate, empty database on the same server, dropped afterwards."""
    url = normalise_database_url(database_url)
    name = f"agentforge_mig_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    eng = sa.create_engine(url.set(database=name), poolclass=sa.pool.NullPool)
    yield eng
    eng.dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def test_single_head_matches_code_constant() -> None:
    from alembic.script import ScriptDirectory

    heads = ScriptDirectory.from_config(migrate.alembic_config()).get_heads()
    assert heads == [SCHEMA_HEAD]


def test_round_trip_with_data(scratch_engine) -> None:
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO repositories (name, url, type) VALUES ('t', 'file:///srv/t', 'MIXED')"))
        conn.execute(sa.text("INSERT INTO system_config (key, value) VALUES ('k', '1')"))
    migrate.downgrade(scratch_engine, "base")
    with scratch_engine.connect() as conn:
        left = conn.execute(sa.text(
            "SELECT count(*) FROM pg_tables WHERE schemaname='public' AND tablename <> 'alembic_version'")).scalar()
        types = conn.execute(sa.text(
            "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
            "WHERE n.nspname = 'public' AND t.typtype = 'e'")).scalar()
        funcs = conn.execute(sa.text(
            "SELECT count(*) FROM pg_proc WHERE proname IN ('log_component_change', 'update_component_timestamp')"
        )).scalar()
    assert (left, types, funcs) == (0, 0, 0)
    migrate.upgrade(scratch_engine)
    assert migrate.current_revision(scratch_engine) == SCHEMA_HEAD
    assert migrate.check_drift(scratch_engine) == []


def test_database_newer_than_code_is_refused(scratch_engine) -> None:
    migrate.upgrade(scratch_engine)
    with scratch_engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999_future'"))
    with pytest.raises(SchemaMismatch, match="9999_future"):
        migrate.ensure_schema(scratch_engine)


def test_ensure_schema_upgrades_an_empty_database(scratch_engine) -> None:
    assert migrate.current_revision(scratch_engine) is None
    assert migrate.ensure_schema(scratch_engine) == SCHEMA_HEAD
