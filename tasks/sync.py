"""Tasks of the sync flow."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NONE

from agentforge.core.events import emit
from agentforge.core.results import RepoSyncResult, SyncPlan
from agentforge.services import sync as svc
from agentforge.services.sync import PlannedSync, plan_results
from tasks.retry import transient_only

__all__ = ["PlannedSync", "check_remote_refs", "plan_results", "record_plan_outcomes", "sync_repository"]


@task(name="check-remote-refs", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def check_remote_refs(names: list[str] | None) -> PlannedSync:
    """One batched, concurrent ls-remote over every repository; decides who needs work."""
    plan = svc.plan_sync(names)
    emit("sync.planned", total=len(plan.names), to_sync=len(plan.to_sync), unchanged=len(plan.unchanged),
         failed=len(plan.failed))
    return plan


@task(name="record-sync-outcomes", retries=3, retry_delay_seconds=[1, 4, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def record_plan_outcomes(plan: SyncPlan) -> None:
    """Set-based writes for the unchanged and unreachable repositories."""
    svc.record_plan_outcomes(plan)


@task(name="sync-repository", task_run_name="sync-{repository_name}", retries=3,
      retry_delay_seconds=[2, 8, 30], retry_jitter_factor=0.5, retry_condition_fn=transient_only, cache_policy=NONE)
def sync_repository(repository_id: str, repository_name: str,
                    remote: dict[str, Any] | None = None) -> RepoSyncResult:
    """Fetch one repository's mirror, read its new release points, write them.

    ``remote`` is the batched ref check's listing of this repository (``PlannedSync.remote``),
    so the fetch does not ask the remote a second time (it still fetches whatever the remote
    holds when the listing differs from the mirror).
    """
    emit("sync.repo.started", name=repository_name)
    result = svc.sync_repository(repository_id, remote=remote)
    emit("sync.repo.finished", name=repository_name, status=result.status)
    return result
