"""The `agentforge` command line (Typer + Rich). Read-only commands never import Prefect."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Attach every command group; modules are imported here, never Prefect."""
    import importlib

    for module_name in ("repo_cmds", "catalog_cmds", "lock_cmds", "compose_cmds", "dev_cmds", "demo_cmds", "serve_cmds",
                        "publish_cmds", "config_cmds", "trust_cmds"):
        try:
            module = importlib.import_module(f"agentforge.cli.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"agentforge.cli.{module_name}":
                continue  # not built yet
            raise
        module.register(app)
