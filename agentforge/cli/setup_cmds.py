"""`init`, `db upgrade|downgrade|current`, `doctor`."""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Any

import typer

from agentforge import __version__
from agentforge.cli.common import current_user_id, git_identity
from agentforge.cli.output import emit, table
from agentforge.config import default_config_file, get_settings

db_app = typer.Typer(help="Database migrations.", no_args_is_help=True)


def init() -> None:
    """Create the home folder, reach or start the database, migrate it, record your git identity."""
    import sqlalchemy as sa

    from agentforge.db import get_engine, masked
    from models import UserSettings
    from models.migrate import ensure_schema

    settings = get_settings()
    for folder in (settings.home, settings.mirrors_dir, settings.effective_install_root):
        folder.mkdir(parents=True, exist_ok=True)
    eng = get_engine(settings)
    revision = ensure_schema(eng, auto_upgrade=True)
    name, email = git_identity()
    user_id = current_user_id()
    from sqlalchemy.dialects.postgresql import insert

    with eng.begin() as conn:
        conn.execute(
            insert(UserSettings)
            .values(user_id=user_id, git_username=name, git_email=email)
            .on_conflict_do_update(
                index_elements=[UserSettings.user_id],
                set_={"git_username": sa.func.coalesce(UserSettings.git_username, name),
                      "git_email": sa.func.coalesce(UserSettings.git_email, email)},
            )
        )
    data = {"home": str(settings.home), "database": masked(eng.url), "revision": revision,
            "user": user_id, "git_username": name, "git_email": email}
    emit(data, f"Initialised AgentForge in {settings.home}\n  database  {masked(eng.url)} (migration {revision})\n"
               f"  identity  {name or '?'} <{email or '?'}>")


@db_app.command("upgrade")
def db_upgrade(revision: str = typer.Argument("head", help="Target revision")) -> None:
    """Migrate the database up (default: to the newest revision)."""
    from agentforge.db import get_engine
    from models import migrate

    eng = get_engine()
    migrate.upgrade(eng, revision)
    current = migrate.current_revision(eng)
    emit({"revision": current}, f"Database at migration {current}")


@db_app.command("downgrade")
def db_downgrade(revision: str = typer.Argument(..., help="Target revision, e.g. base or -1"),
                 yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask")) -> None:
    """Migrate the database down (drops data of the removed tables)."""
    from agentforge.db import get_engine
    from models import migrate

    if not yes and not typer.confirm(f"Downgrade the database to {revision}? Data in dropped tables is lost"):
        raise typer.Exit(1)
    eng = get_engine()
    migrate.downgrade(eng, revision)
    current = migrate.current_revision(eng)
    emit({"revision": current}, f"Database at migration {current or 'base'}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's migration and the code's newest."""
    from agentforge.db import get_engine
    from models import SCHEMA_HEAD, migrate

    current = migrate.current_revision(get_engine())
    emit({"revision": current, "head": SCHEMA_HEAD},
         f"Database at {current or 'base (not initialised)'}; code head {SCHEMA_HEAD}")


def doctor() -> None:
    """Show what AgentForge is connected to: database, migrations, git, Prefect."""
    from agentforge.db import check_connection, get_engine, masked
    from agentforge.errors import SchemaMismatch
    from models import SCHEMA_HEAD, migrate

    settings = get_settings()
    eng = get_engine(settings)
    facts: dict[str, Any] = {"version": __version__, "home": str(settings.home),
                             "config_file": str(default_config_file()),
                             "database_url": masked(eng.url),
                             "database_mode": "configured" if settings.database_url else "embedded"}
    facts.update(check_connection(eng))
    # As every command does: a new database is created and an older one upgraded here (a
    # database newer than this AgentForge is reported below, untouched).
    mismatch: Exception | None = None
    try:
        migrate.ensure_schema(eng, auto_upgrade=True)
    except SchemaMismatch as exc:
        mismatch = exc
    facts["migration"] = migrate.current_revision(eng)
    facts["migration_head"] = SCHEMA_HEAD
    git = shutil.which("git")
    facts["git"] = (subprocess.run([git, "--version"], capture_output=True, text=True).stdout.strip()
                    if git else "not found")
    api = os.environ.get("PREFECT_API_URL")
    facts["prefect_api"] = f"server {api}" if api else "ephemeral (started in-process per command)"
    rows = [(k, v) for k, v in facts.items()]
    emit(facts, table(["check", "value"], rows, title="agentforge doctor"))
    if mismatch is not None:
        raise mismatch
