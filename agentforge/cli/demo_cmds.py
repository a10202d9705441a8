"""`agentforge demo`: the main job on the bundled examples — sync → lock → deploy → talk to it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from agentforge.cli.common import engine, prepare_prefect, run_flow
from agentforge.cli.output import STATE, console, emit, table
from agentforge.config import get_settings
from agentforge.errors import AgentForgeError

COMPOSITION = "sales-stack"


def demo(
    examples: Path | None = typer.Option(None, "--examples", help="Example repositories (default: ./examples)"),
    env: str = typer.Option("development", "--env", help="Environment to deploy to"),
) -> None:
    """Build the example repositories, register and sync them, lock and deploy the example
    composition, then render a prompt and invoke an agent on the running instance."""
    import httpx

    from agentforge.services.examples import build_example_repositories, default_examples_dir
    from agentforge.services.repos import add_repository

    prepare_prefect()
    engine()
    settings = get_settings()
    def say(*objects: Any) -> None:
        if not STATE.json:
            console.print(*objects)
    built = build_example_repositories(examples or default_examples_dir(), settings.home / "examples")
    say(f"[bold]1/5[/] built {len(built)} example repositories under {settings.home / 'examples'}")
    for name, path in built.items():
        add_repository(str(path), name=name)
    say(f"[bold]2/5[/] registered: {', '.join(built)}")

    from flows.sync import sync_repositories

    results = run_flow(sync_repositories, names=list(built))
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise AgentForgeError("sync failed for " + ", ".join(f"{r.name}: {r.error}" for r in failed),
                              code="DEMO_SYNC_FAILED")
    say("[bold]3/5[/] synced: " + ", ".join(f"{r.name} ({r.status})" for r in results))

    from flows.lock import resolve_and_lock

    lock_path = settings.home / "demo" / "forge-lock.yaml"
    written = run_flow(resolve_and_lock, root=COMPOSITION, output=str(lock_path), force_kind="composition")
    say(f"[bold]4/5[/] locked {COMPOSITION}: {written.packages} packages → {lock_path}"
        + ("" if written.changed else " (unchanged)"))

    from flows.deploy import deploy_composition

    deployed = run_flow(deploy_composition, name=COMPOSITION, environment=env)
    instances = _instances_of(deployed)
    if not instances:
        raise AgentForgeError(f"deploy of {COMPOSITION} reported no running instance", code="DEMO_DEPLOY_FAILED")
    url = instances[0]["url"]
    say(f"[bold]5/5[/] deployed {COMPOSITION} to {env}: {url}")

    with httpx.Client(base_url=url, timeout=30) as client:
        rendered = client.post("/v1/prompts/lead-summary/render",
                               json={"variables": {"lead_name": "Ada Lovelace", "score": 92}})
        rendered.raise_for_status()
        invoked = client.post("/v1/agents/sales-specialist/invoke",
                              json={"input": "Which accounts did Ada's company buy from us?"})
        invoked.raise_for_status()
        composition = client.get("/v1/composition").json()
    data: dict[str, Any] = {
        "url": url, "environment": env, "lock": str(lock_path), "lock_hash": written.content_hash,
        "repositories": {n: str(p) for n, p in built.items()}, "sync": [r.model_dump() for r in results],
        "render": rendered.json(), "invoke": invoked.json(),
        "components": sorted(composition.get("components", {})),
    }
    if STATE.json:
        emit(data)
        return
    console.print(table(["call", "result"], [
        ("POST /v1/prompts/lead-summary/render", rendered.json().get("text")),
        ("POST /v1/agents/sales-specialist/invoke", invoked.json().get("output")),
        ("components", ", ".join(data["components"])),
    ]))
    console.print(f"\nThe instance keeps running at [bold]{url}[/]. Try:\n"
                  f"  curl -s {url}/v1/composition\n"
                  f"  curl -s -XPOST {url}/v1/prompts/lead-summary/render -H 'content-type: application/json' "
                  "-d '{\"variables\": {\"lead_name\": \"Grace\", \"score\": 7}}'\n"
                  f"  agentforge compose instances {COMPOSITION}\n"
                  f"  agentforge instance stop {COMPOSITION}/{env}")


def _instances_of(result: Any) -> list[dict[str, Any]]:
    if hasattr(result, "model_dump"):
        result = result.model_dump()
    if isinstance(result, str):
        result = json.loads(result)
    if isinstance(result, dict):
        result = result.get("instances") or ([result] if "url" in result else [])
    if isinstance(result, list):
        items = [i.model_dump() if hasattr(i, "model_dump") else i for i in result]
        return [i for i in items if isinstance(i, dict) and i.get("url")]
    return []


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
