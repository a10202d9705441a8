"""The flows as the Prefect UI runs them: one entry flow per deployment, each taking one pydantic
request model, so the UI renders a form with a described field per parameter (and validates it).

Each entry flow only unpacks its request and calls the real flow from ``flows/`` (a subflow
run, so the UI shows both); the CLI keeps calling the real flows directly.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow
from pydantic import BaseModel, Field

from agentforge.core.results import LockWritten, RepoSyncResult
from flows.deploy import deploy_composition
from flows.lock import install, resolve_and_lock
from flows.on_merge import MergeRequest, OnMergeReport, deploy_on_merge
from flows.sync import sync_repositories

__all__ = ["DeployRequest", "InstallRequest", "LockRequest", "MergeRequest", "OnMergeReport", "SyncOneRequest",
           "deploy_entry", "deploy_on_merge", "install_entry", "lock_entry", "sync_all_entry", "sync_one_entry"]


class SyncOneRequest(BaseModel):
    """Sync one registered repository now."""

    repository: str = Field(description="Name of a registered repository (`agentforge repo ls`)")


class LockRequest(BaseModel):
    """Resolve a component or composition to exact commits and write its lock file."""

    root: str = Field(description="COMPONENT[@CONSTRAINT], REPO/COMPONENT[@CONSTRAINT] or a composition name")
    output: str = Field(default="forge-lock.yaml",
                        description="Lock file to write, on the machine running the flow")
    include_dev: bool = Field(default=False, description="Resolve the root's dev dependencies too")
    upgrade: list[str] | None = Field(
        default=None, description="Components allowed to move to newer versions; empty list = all; unset = none")
    force_kind: Literal["component", "composition"] | None = Field(
        default=None, description="Read ROOT as this kind when a component and a composition share its name")


class InstallRequest(BaseModel):
    """Install a root's locked components (locking first unless frozen)."""

    root: str = Field(description="COMPONENT[@CONSTRAINT] or a composition name")
    lock_path: str = Field(default="forge-lock.yaml", description="Lock file to read (and write)")
    frozen: bool = Field(default=False, description="Install exactly the lock; fail and change nothing "
                                                    "if it is missing, stale or mismatching")
    include_dev: bool = Field(default=False, description="Include the root's dev dependencies")
    target: str | None = Field(default=None, description="Install here instead of the install root")
    force_kind: Literal["component", "composition"] | None = Field(
        default=None, description="Read ROOT as this kind when a component and a composition share its name")


class DeployRequest(BaseModel):
    """Deploy a composition's lock to an instance in one environment."""

    composition: str = Field(description="Composition name (`agentforge compose ls`)")
    environment: str = Field(default="development", description="Environment whose settings are merged in")
    instance: str | None = Field(default=None, description="Instance name; unset = the composition's default")
    sets: list[str] = Field(default_factory=list, description="KEY=VALUE overrides for this instance "
                                                              "(as `--set`); never put secrets here")


@flow(name="sync-all", validate_parameters=True)
def sync_all_entry() -> list[RepoSyncResult]:
    """Sync every registered repository (the scheduled deployment)."""
    return sync_repositories(None)


@flow(name="sync-one", validate_parameters=True)
def sync_one_entry(request: SyncOneRequest) -> list[RepoSyncResult]:
    """Sync one repository."""
    return sync_repositories([request.repository])


@flow(name="lock-root", validate_parameters=True)
def lock_entry(request: LockRequest) -> LockWritten:
    """Resolve and lock a root."""
    return resolve_and_lock(request.root, request.output, request.include_dev, request.upgrade, request.force_kind)


@flow(name="install-root", validate_parameters=True)
def install_entry(request: InstallRequest) -> dict[str, object]:
    """Install a root from its lock."""
    return install(request.root, request.lock_path, request.frozen, request.include_dev, request.target,
                   request.force_kind)


@flow(name="deploy-instance", validate_parameters=True)
def deploy_entry(request: DeployRequest) -> Any:
    """Deploy a composition to an instance."""
    return deploy_composition(request.composition, request.environment, instance=request.instance,
                              sets=list(request.sets))


# publish: add `PublishRequest` and `publish_entry` (calling flows.publish) here, and one line in
# deployments.serve.build_deployments; tag its GitHub-calling tasks with tasks.on_merge.GITHUB_API_TAG.
