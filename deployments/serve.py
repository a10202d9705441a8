"""Every flow as a Prefect deployment, served from this process against the configured API.

``build_deployments`` returns the ``RunnerDeployment`` objects (names below); ``serve_all``
registers them, sets the GitHub tag concurrency limit, and polls for their runs (scheduled,
started from the UI, or created by the webhook receiver with ``run_deployment``). Run several
``agentforge serve`` processes, on one machine or many, against one Prefect API and one
Postgres: each run goes to exactly one of them (see docs/scale-out.md).

Entrypoints are module paths (``deployments.entrypoints.sync_one_entry``), so a run executes
from the installed package whatever the serving process's working directory is.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from prefect.deployments.runner import RunnerDeployment
from prefect.flows import Flow
from prefect.types.entrypoint import EntrypointType

from agentforge.config import Settings, get_settings
from deployments import entrypoints as ep
from tasks.on_merge import GITHUB_API_TAG

SYNC_ALL = "sync-all/sync-all"
SYNC_ONE = "sync-one/sync-one"
LOCK = "lock-root/lock"
INSTALL = "install-root/install"
DEPLOY = "deploy-instance/deploy"
DEPLOY_ON_MERGE = "deploy-on-merge/deploy-on-merge"
TAGS = ["agentforge"]


def _deployment(flow: Flow[..., Any], name: str, **kwargs: Any) -> RunnerDeployment:
    """``flow.to_deployment`` called synchronously (its async variant is for async callers)."""
    return cast(RunnerDeployment, flow.to_deployment(name, entrypoint_type=EntrypointType.MODULE_PATH, tags=TAGS,
                                                     **kwargs))


def build_deployments(settings: Settings | None = None, *, sync_schedule: bool = True) -> list[RunnerDeployment]:
    """The deployments: sync-all on ``settings.sync_all_cron``; the others run on demand."""
    settings = settings or get_settings()
    out = [
        _deployment(ep.sync_all_entry, "sync-all", cron=settings.sync_all_cron if sync_schedule else None,
                    description="Sync every registered repository (scheduled; default every 15 minutes)."),
        _deployment(ep.sync_one_entry, "sync-one", description="Sync one repository now."),
        _deployment(ep.lock_entry, "lock", description="Resolve a component or composition and write its lock."),
        _deployment(ep.install_entry, "install", description="Install a root's locked components."),
        _deployment(ep.deploy_entry, "deploy", description="Deploy a composition to an instance."),
        _deployment(ep.deploy_on_merge, "deploy-on-merge",
                    description="Sync a merged repository, re-lock what uses it, redeploy auto-deploy instances."),
        # publish: add _deployment(ep.publish_entry, "publish", ...) when flows/publish.py exists.
    ]
    return out


async def ensure_github_concurrency_limit(limit: int) -> None:
    """The tag concurrency limit on GitHub-calling tasks (an upsert: serving twice is harmless)."""
    from prefect.client.orchestration import get_client

    async with get_client() as client:
        await client.create_concurrency_limit(tag=GITHUB_API_TAG, concurrency_limit=limit)


def serve_all(*, limit: int | None = None, settings: Settings | None = None, sync_schedule: bool = True,
              announce: Callable[[list[str]], None] | None = None, **runner_kwargs: Any) -> None:
    """Register every deployment and execute their runs until interrupted (blocks).

    ``announce`` receives the deployment names once they are built (the CLI prints them)."""
    from prefect import serve

    settings = settings or get_settings()
    asyncio.run(ensure_github_concurrency_limit(settings.github_api_concurrency))
    deployments = build_deployments(settings, sync_schedule=sync_schedule)
    if announce is not None:
        announce([d.name for d in deployments])
    serve(*deployments, limit=limit, print_starting_message=False, **runner_kwargs)
