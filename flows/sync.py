"""The sync flow: one batched ref check, then work only for the repositories that moved."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from agentforge.config import get_settings
from agentforge.core.results import RepoSyncResult, SyncPlan
from agentforge.parsepool import offload
from tasks.sync import check_remote_refs, plan_results, record_plan_outcomes, sync_repository


def _concurrency() -> int:
    try:
        return get_settings().sync_concurrency
    except Exception:
        return 4


@flow(name="sync-repositories",
      task_runner=ThreadPoolTaskRunner(max_workers=_concurrency()),  # type: ignore[arg-type]
      log_prints=False, validate_parameters=True)
def sync_repositories(names: list[str] | None = None, plan: SyncPlan | None = None,
                      remote_refs: dict[str, dict[str, Any]] | None = None) -> list[RepoSyncResult]:
    """Sync the named repositories (all registered ones when ``names`` is empty).

    Standalone (a schedule passes only ``names``) the flow runs the batched ref check and
    records the unchanged and unreachable repositories itself. A caller that already did both
    (``agentforge sync``, through ``check_and_record``) passes its ``plan`` and the listings of
    the repositories to sync (``remote_refs``: ``PlannedSync.remote``), so no remote is asked twice.
    """
    if plan is None:
        checked = check_remote_refs(names or None)
        record_plan_outcomes(checked)
        plan, remote_refs = checked, checked.remote
    listings = remote_refs or {}
    results = plan_results(plan)
    # Parsing uses the second core meanwhile (agentforge.parsepool): component documents of many
    # repositories, a share of a large catalog's markdown files.
    with offload(len(plan.to_sync)):
        futures = {i: sync_repository.submit(i, plan.names[i], listings.get(i)) for i in plan.to_sync}
        for repo_id, future in futures.items():
            outcome = future.result(raise_on_failure=False)
            if isinstance(outcome, RepoSyncResult):
                results.append(outcome)
            else:
                results.append(RepoSyncResult(name=plan.names[repo_id], status="failed", error=str(outcome),
                                              error_code=getattr(outcome, "code", None)))
    return sorted(results, key=lambda r: r.name)
