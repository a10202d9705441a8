"""`config get|set|unset|ls [KEY]` over user_settings and system_config, and the auto-sync hook.

Keys, validation and precedence (flag > environment > database > config file > default) live in
:mod:`agentforge.services.settings`; this module only parses the command line and prints.
``github.token`` is a secret: `config set github.token` reads it without echo (or ``--stdin``),
never from the command line, and stores it encrypted (:mod:`agentforge.services.publish`).

No command here imports Prefect.
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from agentforge.cli.common import engine
from agentforge.cli.output import STATE, emit, err_console, table
from agentforge.errors import ConfigError

config_app = typer.Typer(
    help="Settings: user preferences (user_settings) and system settings (system_config). "
         "Precedence: command-line flag > environment (AGENTFORGE_<KEY>) > database > config file > default.",
    no_args_is_help=True)


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value) or "(none)"
    if isinstance(value, dict):
        import json

        return json.dumps(value, sort_keys=True)
    return str(value)


@config_app.command("ls")
def config_ls() -> None:
    """Every setting with its effective value, where it comes from, and what it does."""
    from agentforge.db import session_scope
    from agentforge.services.settings import resolve_all

    with session_scope(engine()) as session:
        rows = resolve_all(session=session)
    data = [{"key": r.key, "value": r.value, "source": r.source, "description": r.description} for r in rows]
    emit(data, table(["key", "value", "source", "description"],
                     [(d["key"], _shown(d["value"]), d["source"], d["description"]) for d in data]))


@config_app.command("get")
def config_get(key: str = typer.Argument(..., help="A key from `agentforge config ls`, or custom.NAME")) -> None:
    """The effective value of KEY and where it comes from."""
    from agentforge.db import session_scope
    from agentforge.services.settings import resolve

    with session_scope(engine()) as session:
        r = resolve(key, session=session)
    emit({"key": r.key, "value": r.value, "source": r.source}, f"{_shown(r.value)}  [dim]({r.source})[/]")


@config_app.command("set")
def config_set(
    key: str = typer.Argument(..., help="A key from `agentforge config ls`, custom.NAME, or github.token"),
    value: str | None = typer.Argument(None, help="The value (not for github.token, which is prompted for)"),
    stdin: bool = typer.Option(False, "--stdin", help="Read the value from standard input (one line)"),
) -> None:
    """Store a setting in the database (validated for its key)."""
    from agentforge.services.settings import SECRET_KEYS, setting_key

    spec = setting_key(key)
    if spec.name in SECRET_KEYS:
        from agentforge.services.publish import set_github_token

        if value is not None:
            raise ConfigError(f"{spec.name} is never given on the command line (shell history, process list)",
                              code="CONFIG_SECRET", hint=f"`agentforge config set {spec.name}` prompts for it; "
                                                         "or pipe it with --stdin.")
        secret = sys.stdin.readline() if stdin else typer.prompt("GitHub token", hide_input=True)
        engine()
        set_github_token(secret.strip())
        emit({"key": spec.name, "stored": True}, f"{spec.name} stored (encrypted)")
        return
    if stdin:
        if value is not None:
            raise ConfigError(f"{spec.name}: give the value or --stdin, not both", code="CONFIG_VALUE_INVALID")
        value = sys.stdin.readline().rstrip("\n")
    if value is None:
        raise ConfigError(f"{spec.name}: no value given", code="CONFIG_VALUE_INVALID",
                          hint=f"`agentforge config set {spec.name} VALUE`; `config unset {spec.name}` removes it.")
    from agentforge.db import session_scope
    from agentforge.services.settings import resolve, set_value

    with session_scope(engine()) as session:
        stored = set_value(spec.name, value, session=session)
    with session_scope(engine()) as session:
        effective = resolve(spec.name, session=session)
    data = {"key": spec.name, "value": stored, "effective": effective.value, "source": effective.source}
    emit(data, f"{spec.name} = {_shown(stored)}")
    if effective.source == "environment":
        err_console.print(f"warning: {effective.key} is overridden by the environment "
                          f"(AGENTFORGE_{effective.key.upper()})", markup=False)


@config_app.command("unset")
def config_unset(key: str = typer.Argument(..., help="A key from `agentforge config ls`, or github.token")) -> None:
    """Remove a stored setting: the config file's value or the default applies again."""
    from agentforge.services.settings import SECRET_KEYS, setting_key

    spec = setting_key(key)
    if spec.name in SECRET_KEYS:
        from agentforge.services.publish import unset_github_token

        engine()
        removed = unset_github_token()
    else:
        from agentforge.db import session_scope
        from agentforge.services.settings import unset_value

        with session_scope(engine()) as session:
            removed = unset_value(spec.name, session=session)
    emit({"key": spec.name, "removed": removed}, f"{spec.name} removed" if removed else f"{spec.name} was not set")


def auto_sync_before(command: str) -> list[str]:
    """What lock/install/deploy call before starting their flow: when ``auto_sync`` is on, sync the
    active repositories whose last sync is older than ``auto_sync_max_age_seconds`` (the resolver
    may read any registered repository, so all of them count). Returns the names synced.

    A repository that fails to sync does not stop the command: it resolves from what was synced
    before, and the failure is printed as a warning.
    """
    from agentforge.db import session_scope
    from agentforge.services.settings import stale_repositories

    with session_scope(engine()) as session:
        names = stale_repositories(session=session)
    if not names:
        return []
    from agentforge.cli.repo_cmds import run_sync

    if not STATE.json:
        err_console.print(f"auto_sync: syncing {', '.join(names)} before {command}", markup=False)
    results = run_sync(names)
    for r in results:
        if r.status == "failed":
            err_console.print(f"warning: auto_sync of {r.name} failed: {r.error or r.message}", markup=False)
    return names


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
