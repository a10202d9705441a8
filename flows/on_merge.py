"""The deploy-on-merge flow: sync the merged repository, re-lock the compositions that use it,
redeploy their instances whose environment has ``auto_deploy: true`` (a lock on hold is skipped)."""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.client.schemas.objects import State
from pydantic import BaseModel, Field

from agentforge.core.results import LockWritten, RepoSyncResult
from agentforge.errors import AgentForgeError
from flows.deploy import deploy_composition
from flows.lock import resolve_and_lock
from flows.sync import sync_repositories
from tasks.on_merge import auto_deploy_targets, plan_relocks


class MergeRequest(BaseModel):
    """What the webhook receiver (or a person in the Prefect UI) asks deploy-on-merge to do."""

    repository: str = Field(description="Name of the registered repository that changed (`agentforge repo ls`)")
    commit: str | None = Field(default=None, description="Commit the event announced; sync fetches the tip anyway")
    delivery: str | None = Field(default=None, description="SHA-256 of the webhook body that started this run")


class CompositionOutcome(BaseModel):
    composition: str
    lock: LockWritten | None = None
    error: str | None = None
    deployed: list[str] = []          # "environment/instance"
    skipped: dict[str, str] = {}      # "environment/instance" → why


class OnMergeReport(BaseModel):
    repository: str
    sync: RepoSyncResult | None
    compositions: list[CompositionOutcome] = []


def _error_of(state: State[Any]) -> str:
    try:
        state.result(raise_on_failure=True)
    except BaseException as exc:
        return str(exc) or type(exc).__name__
    return state.message or "failed"


@flow(name="deploy-on-merge", validate_parameters=True)
def deploy_on_merge(request: MergeRequest) -> OnMergeReport:
    """Sync REPOSITORY, re-lock what uses it (upgrading only its packages), redeploy auto-deploy instances."""
    synced = sync_repositories([request.repository])
    result = next((r for r in synced if r.name == request.repository), None)
    report = OnMergeReport(repository=request.repository, sync=result)
    if result is None or result.status == "failed":
        raise AgentForgeError(f"deploy-on-merge: sync of {request.repository!r} failed: "
                              f"{result.error if result else 'not registered'}", code="ON_MERGE_SYNC_FAILED",
                              hint="Fix the repository (see `agentforge repo status`), then run the deployment again.",
                              retryable=True)
    failures: list[str] = []
    for plan in plan_relocks(request.repository):
        outcome = CompositionOutcome(composition=plan.composition)
        report.compositions.append(outcome)
        state = resolve_and_lock(plan.composition, output=plan.lock_path, upgrade=plan.upgrade,
                                 force_kind="composition", return_state=True)
        if not state.is_completed():
            outcome.error = _error_of(state)
            failures.append(plan.composition)
            continue
        outcome.lock = state.result()
        for target in auto_deploy_targets(plan.composition):
            where = f"{target.environment}/{target.instance}"
            if target.skip is not None:
                outcome.skipped[where] = target.skip
                continue
            deployed = deploy_composition(target.composition, target.environment, instance=target.instance,
                                          return_state=True)
            if deployed.is_completed():
                outcome.deployed.append(where)
            else:
                outcome.error = f"{where}: {_error_of(deployed)}"
                failures.append(f"{plan.composition} {where}")
    if failures:
        raise AgentForgeError(f"deploy-on-merge of {request.repository!r}: {', '.join(failures)} failed "
                              f"({'; '.join(c.error or '' for c in report.compositions if c.error)})",
                              code="ON_MERGE_FAILED", hint="See the flow run's subflows in the Prefect UI.")
    return report
