"""Database engine and sessions: a lazy engine, one transaction per ``session_scope()``.

When no database URL is configured, an embedded PostgreSQL (the ``pgserver`` package: real
PostgreSQL binaries from PyPI) is started under ``<home>/pgdata`` on first use and left running
for later commands. A running server is found by reading ``postmaster.pid`` directly (no
import of pgserver on the hot path); a stale pid file after a crash makes pgserver start a
fresh postmaster.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from agentforge.config import Settings, get_settings
from agentforge.errors import ConfigError, DatabaseError, DatabaseUnreachable

EMBEDDED_DB_NAME = "agentforge"
_ACCEPTED_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "postgresql+psycopg3"}

_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def normalise_database_url(raw: str) -> URL:
    """Accept libpq-style ``postgresql://`` / ``postgres://`` URLs and drive them through psycopg 3."""
    text = raw.strip()
    if not text:
        raise ConfigError("the database URL is empty", code="DATABASE_URL_INVALID",
                          hint="Set AGENTFORGE_DATABASE_URL=postgresql://user@host:5432/dbname or unset it.")
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme not in _ACCEPTED_SCHEMES:
        raise ConfigError(
            f"malformed database URL {mask_url_text(text)!r}: expected postgresql://…",
            code="DATABASE_URL_INVALID",
            hint="Use postgresql://user:password@host:5432/dbname (a socket directory as ?host=/path).",
        )
    try:
        url = make_url(text)
        if url.port is not None and not (0 < url.port < 65536):
            raise ValueError("port out of range")
    except (sa_exc.ArgumentError, ValueError) as exc:
        raise ConfigError(
            f"malformed database URL {mask_url_text(text)!r}: {exc}",
            code="DATABASE_URL_INVALID",
            hint="Use postgresql://user:password@host:5432/dbname (a socket directory as ?host=/path).",
        ) from None
    return url.set(drivername="postgresql+psycopg")


def mask_url_text(text: str) -> str:
    """Mask a password in a URL-ish string without parsing it fully (it may be malformed)."""
    if "://" in text and "@" in text:
        head, rest = text.split("://", 1)
        creds, _, tail = rest.rpartition("@")
        if ":" in creds:
            user = creds.split(":", 1)[0]
            return f"{head}://{user}:***@{tail}"
    return text


def masked(url: URL) -> str:
    return url.render_as_string(hide_password=True)


def _running_embedded_socket(pgdata: Path) -> str | None:
    """Socket dir of a live embedded postmaster, read from postmaster.pid, else None."""
    pidfile = pgdata / "postmaster.pid"
    try:
        lines = pidfile.read_text().splitlines()
        pid = int(lines[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    if len(lines) < 8 or lines[7].strip() != "ready":
        return None
    return lines[4].strip() or str(pgdata)


def start_embedded_server(pgdata: Path) -> str:
    """Start (or reuse) the embedded server; return its socket directory."""
    socket_dir = _running_embedded_socket(pgdata)
    if socket_dir:
        return socket_dir
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(pgdata.parent / "run"))
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver

            server = pgserver.get_server(pgdata, cleanup_mode=None)  # type: ignore[attr-defined]
            uri = server.get_uri()
    except Exception as exc:
        raise DatabaseUnreachable(
            f"could not start the embedded PostgreSQL under {pgdata}: {exc}",
            hint="Check the log at " + str(pgdata / "log") + " or set AGENTFORGE_DATABASE_URL to a server.",
        ) from exc
    host = make_url(uri).query.get("host")
    return str(host) if isinstance(host, str) else str(pgdata)


_embedded_urls: dict[str, URL] = {}


def embedded_url(settings: Settings) -> URL:
    # Once per process: the probe connection of ensure_database_exists costs tens of ms.
    cached = _embedded_urls.get(str(settings.pgdata_dir))
    if cached is not None:
        return cached
    socket_dir = start_embedded_server(settings.pgdata_dir)
    admin = URL.create("postgresql+psycopg", username="postgres", database="postgres", query={"host": socket_dir})
    target = admin.set(database=EMBEDDED_DB_NAME)
    ensure_database_exists(target)
    _embedded_urls[str(settings.pgdata_dir)] = target
    return target


def ensure_database_exists(url: URL) -> None:
    """CREATE DATABASE when missing (used for the embedded server and test databases)."""
    try:
        probe = sa.create_engine(url, poolclass=sa.pool.NullPool, connect_args={"connect_timeout": 5})
        with probe.connect():
            return
    except sa_exc.OperationalError as exc:
        if "does not exist" not in str(exc):
            raise unreachable_error(url, exc) from None
    finally:
        probe.dispose()
    admin = sa.create_engine(url.set(database="postgres"), poolclass=sa.pool.NullPool,
                             isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{url.database}"'))
    except sa_exc.ProgrammingError as exc:
        if "already exists" not in str(exc):
            raise
    finally:
        admin.dispose()


def unreachable_error(url: URL, exc: BaseException) -> DatabaseUnreachable:
    detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0] if str(exc) else type(exc).__name__
    return DatabaseUnreachable(
        f"cannot reach the database at {masked(url)}: {detail}",
        hint="Is the server running and the URL right? Unset AGENTFORGE_DATABASE_URL to use the embedded server.",
    )


def database_url(settings: Settings | None = None) -> URL:
    settings = settings or get_settings()
    if settings.database_url:
        return normalise_database_url(settings.database_url)
    return embedded_url(settings)


def get_engine(settings: Settings | None = None) -> Engine:
    """The process-wide engine for the configured database, built on first use."""
    url = database_url(settings)
    key = url.render_as_string(hide_password=False)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = sa.create_engine(
                url,
                pool_pre_ping=True,
                pool_size=10,
                max_overflow=20,
                connect_args={"connect_timeout": 10, "application_name": "agentforge"},
            )
            _engines[key] = engine
    return engine


def dispose_engines() -> None:
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


_sessionmakers: dict[int, sessionmaker[Session]] = {}


@contextlib.contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """One transaction: commit on success, roll back on any exception."""
    engine = engine or get_engine()
    maker = _sessionmakers.get(id(engine))
    if maker is None:
        maker = _sessionmakers[id(engine)] = sessionmaker(bind=engine, expire_on_commit=False)
    session = maker()
    try:
        yield session
        session.commit()
    except sa_exc.OperationalError as exc:
        session.rollback()
        raise unreachable_error(engine.url, exc) from exc
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def check_connection(engine: Engine) -> dict[str, Any]:
    """Server facts for `doctor`; maps connection failures to DatabaseUnreachable."""
    try:
        with engine.connect() as conn:
            version = conn.execute(sa.text("SHOW server_version")).scalar_one()
            database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    except sa_exc.OperationalError as exc:
        raise unreachable_error(engine.url, exc) from None
    except sa_exc.DBAPIError as exc:
        raise DatabaseError(f"database error: {exc.orig}") from None
    return {"server_version": str(version), "database": str(database)}
