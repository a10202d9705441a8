"""Tasks of the deploy and rollback flows: thin wrappers over ``agentforge.services.deploy``.

Caching is off: each task does I/O whose result depends on the world (processes, ports,
the database), so two calls with equal inputs in one flow run must both run.
"""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NONE

from agentforge.core.lockfile import LockFile
from agentforge.services import deploy as deploy_svc
from tasks.retry import transient_only


@task(name="frozen-composition-lock", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def frozen_lock(name: str) -> LockFile | None:
    """The composition's stored lock, refused when stale; None when it was never locked."""
    return deploy_svc.frozen_lock(name)


@task(name="lock-composition", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def lock_composition(name: str) -> LockFile:
    return deploy_svc.lock_composition(name)


@task(name="check-lock-hold", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def check_not_held(name: str, environment: str, lock: LockFile, force: bool) -> str:
    return deploy_svc.check_not_held(name, environment, lock, force=force)


@task(name="build-bundle", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def build_bundle(name: str, environment: str, lock: LockFile) -> deploy_svc.BundleInfo:
    """Files at the locked commits, checksums verified, into an immutable bundle (reused when intact)."""
    return deploy_svc.build_bundle(name, environment, lock)


@task(name="instance-names", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def instance_names(name: str, environment: str, instance: str | None) -> list[str]:
    return deploy_svc.instance_names(name, environment, instance)


@task(name="prepare-deployment", task_run_name="prepare-{instance_name}", retries=2, retry_delay_seconds=[1, 5],
      retry_condition_fn=transient_only, cache_policy=NONE)
def prepare_deployment(name: str, environment: str, instance_name: str, lock: LockFile,
                       bundle: deploy_svc.BundleInfo, sets: list[str]) -> deploy_svc.DeployPlan:
    """Merge the configuration into resolved.json; record the instance and deployment rows."""
    return deploy_svc.prepare_deployment(name, environment, instance_name, lock, bundle, sets)


@task(name="start-instance", retries=0, cache_policy=NONE)
def start_candidate(plan: deploy_svc.DeployPlan) -> deploy_svc.StartOutcome:
    """A new process next to the serving one; never retried (a second process is not a retry)."""
    return deploy_svc.start_candidate(plan)


@task(name="switch-or-roll-back", retries=3, retry_delay_seconds=[1, 4, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def complete_deployment(plan: deploy_svc.DeployPlan, outcome: deploy_svc.StartOutcome) -> deploy_svc.InstanceResult:
    return deploy_svc.complete_deployment(plan, outcome)


@task(name="check-deploy-results", retries=0, cache_policy=NONE)
def raise_for_failures(results: list[deploy_svc.InstanceResult]) -> None:
    """Fail the flow run (ReadinessFailed, exit 1 in the CLI) when an instance did not become ready."""
    deploy_svc.raise_for_failures(results)


@task(name="plan-rollback", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def plan_rollback(name: str, environment: str) -> deploy_svc.RollbackPlan:
    """The last healthy lock; the current one is put on hold."""
    return deploy_svc.plan_rollback(name, environment)
