"""Running Alembic from code: upgrade, downgrade, current revision, drift check."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa

import migrations
from agentforge.errors import AgentForgeError, SchemaMismatch
from models import SCHEMA_HEAD

if TYPE_CHECKING:
    from alembic.config import Config
    from sqlalchemy.engine import Engine

# Alembic is imported inside the functions that need it: the common path (the database is
# already at SCHEMA_HEAD) is one query and must not pay for loading Alembic.
MIGRATIONS_DIR = Path(migrations.__file__).parent


def alembic_config(engine: Engine | None = None) -> Config:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return cfg


def script_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's revision, read with one query (no migration scripts loaded)."""
    with engine.connect() as conn:
        exists = conn.execute(sa.text("SELECT to_regclass('public.alembic_version')")).scalar()
        if exists is None:
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


def _check_revision(revision: str) -> None:
    """A target the migration chain does not hold is the user's mistake, named as such."""
    if revision in ("head", "base") or revision.startswith(("+", "-")) or _known(revision):
        return
    raise AgentForgeError(f"migration {revision!r} does not exist (revisions run from base to {SCHEMA_HEAD!r})",
                          code="MIGRATION_UNKNOWN", hint="`agentforge db current` shows where the database is; "
                                                         "pass head, base or an existing revision.")


def upgrade(engine: Engine, revision: str = "head") -> None:
    from alembic import command

    _check_revision(revision)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def downgrade(engine: Engine, revision: str) -> None:
    from alembic import command

    _check_revision(revision)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _known(revision: str) -> bool:
    from alembic.script import ScriptDirectory

    try:
        return ScriptDirectory.from_config(alembic_config()).get_revision(revision) is not None
    except Exception:
        return False


def ensure_schema(engine: Engine, *, auto_upgrade: bool = True) -> str:
    """Bring the database to the code's head; refuse a database newer than the code."""
    current = current_revision(engine)
    if current == SCHEMA_HEAD:
        return current
    if current is not None and not _known(current):
        raise SchemaMismatch(
            f"the database is at migration {current!r}, which this AgentForge does not know "
            f"(its newest is {SCHEMA_HEAD!r})",
            hint="Upgrade AgentForge, or point AGENTFORGE_DATABASE_URL at another database.",
        )
    if not auto_upgrade:
        raise SchemaMismatch(
            f"the database is at migration {current or 'none'}, the code needs {SCHEMA_HEAD}",
            hint="Run `agentforge db upgrade`.",
        )
    upgrade(engine)
    return SCHEMA_HEAD


def check_drift(engine: Engine) -> list[str]:
    """Differences between the models and the migrated database (what `alembic check` reports)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from models import Base

    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        diffs = compare_metadata(ctx, Base.metadata)
    return [repr(d) for d in diffs]
