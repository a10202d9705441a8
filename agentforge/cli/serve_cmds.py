"""`agentforge serve` (every flow as a Prefect deployment) and `agentforge webhook serve`."""

from __future__ import annotations

import typer

from agentforge.cli.common import engine, prepare_prefect
from agentforge.cli.output import console

webhook_app = typer.Typer(help="The GitHub webhook receiver (deploy-on-merge).", no_args_is_help=True)


def serve(
    limit: int | None = typer.Option(None, "--limit", min=1, help="Most flow runs this process executes at once"),
    no_schedule: bool = typer.Option(False, "--no-schedule", help="Register sync-all without its cron schedule"),
) -> None:
    """Serve every AgentForge flow as a Prefect deployment (runs from the UI, schedules, webhooks)."""
    prepare_prefect(quiet=False)
    engine()  # migrate before the first run needs the schema
    from deployments.serve import serve_all

    serve_all(limit=limit, sync_schedule=not no_schedule,
              announce=lambda names: console.print(f"Serving {len(names)} deployments: " + ", ".join(names)))


def webhook_serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on"),
    port: int | None = typer.Option(None, "--port", min=1, max=65535, help="Port (default: settings.webhook_port)"),
) -> None:
    """Receive GitHub push / merged pull_request events at POST /webhooks/github."""
    prepare_prefect(quiet=False)
    engine()
    from agentforge.config import get_settings
    from agentforge.webhook import serve as serve_webhooks

    settings = get_settings()
    console.print(f"Listening on http://{host}:{port or settings.webhook_port}/webhooks/github")
    serve_webhooks(host, port, settings=settings)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    webhook_app.command("serve")(webhook_serve)
    app.add_typer(webhook_app, name="webhook")
