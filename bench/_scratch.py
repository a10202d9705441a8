"""A scratch database for a benchmark run (shared by the bench scripts).

``AGENTFORGE_TEST_DATABASE_URL`` when set (a database of its own is created there and dropped
afterwards), otherwise an embedded PostgreSQL under the run's temporary folder, stopped at the
end (it outlives its process by design — the CLI reuses it — so a benchmark stops it itself).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["scratch_database"]


@contextmanager
def scratch_database(tmp: Path, *, keep: bool = False) -> Iterator[str]:
    """Yield the URL of a new, empty database; ``keep`` leaves it (and an embedded server) running."""
    import sqlalchemy as sa

    from agentforge.db import dispose_engines, normalise_database_url, start_embedded_server

    server = os.environ.get("AGENTFORGE_TEST_DATABASE_URL")
    pgdata = tmp / "pgdata"
    if not server:
        server = f"postgresql://postgres@/postgres?host={start_embedded_server(pgdata)}"
    base = normalise_database_url(server)
    name = f"agentforge_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(base.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        dispose_engines()
        if not keep:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        if not keep:
            stop_embedded(pgdata)


def stop_embedded(pgdata: Path) -> None:
    """A fast shutdown of the embedded postmaster this run started (by its pid), if any."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.is_file():
        return
    pid = int(pidfile.read_text().split("\n", 1)[0])
    try:
        os.kill(pid, signal.SIGINT)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.1)
    except (ProcessLookupError, PermissionError):
        return
