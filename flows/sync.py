"""The sync flow: one batched ref check, then work only for the repositories that moved."""

from __future__ import annotations

from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from agentforge.config import get_settings
from agentforge.core.results import RepoSyncResult
from tasks.sync import check_remote_refs, record_plan_outcomes, sync_repository


def _concurrency() -> int:
    try:
        return get_settings().sync_concurrency
    except Exception:
        return 4


@flow(name="sync-repositories",
      task_runner=ThreadPoolTaskRunner(max_workers=_concurrency()),  # type: ignore[arg-type]
      log_prints=False, validate_parameters=True)
def sync_repositories(names: list[str] | None = None) -> list[RepoSyncResult]:
    """Sync the named repositories (all registered ones when ``names`` is empty)."""
    plan = check_remote_refs(names or None)
    record_plan_outcomes(plan)
    results: list[RepoSyncResult] = []
    results += [RepoSyncResult(name=plan.names[i], status="unchanged", message="up to date") for i in plan.unchanged]
    results += [RepoSyncResult(name=plan.names[i], status="failed", error=e, error_code=plan.failed_codes.get(i))
                for i, e in plan.failed.items()]
    results += [RepoSyncResult(name=plan.names[i], status="skipped", message=why) for i, why in plan.skipped.items()]
    futures = {i: sync_repository.submit(i, plan.names[i]) for i in plan.to_sync}
    for repo_id, future in futures.items():
        outcome = future.result(raise_on_failure=False)
        if isinstance(outcome, RepoSyncResult):
            results.append(outcome)
        else:
            results.append(RepoSyncResult(name=plan.names[repo_id], status="failed", error=str(outcome),
                                          error_code=getattr(outcome, "code", None)))
    return sorted(results, key=lambda r: r.name)
