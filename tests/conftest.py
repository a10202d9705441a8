"""Test fixtures: a real PostgreSQL database per test session, isolated from the user's.

``AGENTFORGE_TEST_DATABASE_URL`` (a server URL; CI points it at the machine's PostgreSQL)
is used when set, otherwise an embedded server (pgserver) is started once per session in a
temporary folder. Either way a fresh, uniquely named database is created, migrated to head,
and dropped at the end; the process environment is pointed at it (and at a temporary home
folder) before any AgentForge code runs, so the user's own database and files are never
touched — CLI subprocesses inherit the same environment.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_TMP = Path(tempfile.mkdtemp(prefix="agentforge-tests-"))
os.environ["AGENTFORGE_HOME"] = str(_SESSION_TMP / "home")
os.environ["AGENTFORGE_CONFIG_FILE"] = str(_SESSION_TMP / "config.toml")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.pop("DATABASE_URL", None)
os.environ.pop("GITHUB_TOKEN", None)
os.environ.setdefault("GIT_CONFIG_NOSYSTEM", "1")


def _server_url() -> str:
    explicit = os.environ.get("AGENTFORGE_TEST_DATABASE_URL")
    if explicit:
        return explicit
    from agentforge.db import start_embedded_server

    socket_dir = start_embedded_server(_SESSION_TMP / "pgdata")
    return f"postgresql://postgres@/postgres?host={socket_dir}"


def _create_database() -> tuple[str, str]:
    import sqlalchemy as sa

    from agentforge.db import normalise_database_url

    server = normalise_database_url(_server_url())
    name = f"agentforge_test_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return server.set(database=name).render_as_string(hide_password=False), name


_TEST_DB_URL, _TEST_DB_NAME = _create_database()
os.environ["AGENTFORGE_DATABASE_URL"] = _TEST_DB_URL


def _drop_database() -> None:
    import sqlalchemy as sa

    from agentforge.db import dispose_engines, normalise_database_url

    dispose_engines()
    url = normalise_database_url(_TEST_DB_URL)
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT",
                             poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{_TEST_DB_NAME}" WITH (FORCE)'))
    admin.dispose()


def _stop_embedded_server() -> None:
    """The embedded server this session started (if any) must not outlive the session."""
    import signal

    pidfile = _SESSION_TMP / "pgdata" / "postmaster.pid"
    try:
        pid = int(pidfile.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    try:
        os.kill(pid, signal.SIGINT)  # PostgreSQL's "fast" shutdown
    except ProcessLookupError:
        return
    import time

    for _ in range(100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    try:
        _drop_database()
    finally:
        _stop_embedded_server()
        shutil.rmtree(_SESSION_TMP, ignore_errors=True)


@pytest.fixture(scope="session")
def database_url() -> str:
    return _TEST_DB_URL


@pytest.fixture(scope="session")
def engine(database_url: str):  # type: ignore[no-untyped-def]
    from agentforge.db import get_engine
    from models.migrate import ensure_schema

    eng = get_engine()
    ensure_schema(eng, auto_upgrade=True)
    return eng


@pytest.fixture()
def db_session(engine):  # type: ignore[no-untyped-def]
    """A session inside a connection-level transaction, rolled back after the test."""
    from sqlalchemy.orm import Session

    conn = engine.connect()
    trans = conn.begin()
    session = Session(bind=conn, join_transaction_mode="create_savepoint")
    try:
        yield session
    finally:
        session.close()
        trans.rollback()
        conn.close()


_TABLES = [
    "webhook_deliveries", "sync_operations", "component_changes", "component_dependencies", "deployments", "lock_holds",
    "composition_instances", "compositions", "repository_tags", "forks", "components", "repositories",
    "user_settings", "system_config",
]


@pytest.fixture()
def clean_db(engine):  # type: ignore[no-untyped-def]
    """For flow and CLI tests whose work commits in other sessions/processes: truncate around the test."""
    import sqlalchemy as sa

    def truncate() -> None:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE " + ", ".join(_TABLES) + " CASCADE"))

    truncate()
    yield engine
    truncate()


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh AgentForge home folder for one test (mirrors, installs, bundles)."""
    from agentforge.config import reset_settings_cache

    folder = tmp_path / "home"
    monkeypatch.setenv("AGENTFORGE_HOME", str(folder))
    reset_settings_cache()
    yield folder
    reset_settings_cache()


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[None]:
    """One temporary Prefect API for the whole session (started on first use, ~12 s)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
