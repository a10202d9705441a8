"""Flows: deploy a composition to an environment, and roll it back to its last healthy lock."""

from __future__ import annotations

from typing import Any

from prefect import flow

from agentforge.core.lockfile import LockFile
from tasks.deploy import (
    build_bundle,
    check_not_held,
    complete_deployment,
    frozen_lock,
    instance_names,
    lock_composition,
    plan_rollback,
    prepare_deployment,
    raise_for_failures,
    start_candidate,
)


@flow(name="deploy-composition", validate_parameters=True)
def deploy_composition(name: str, environment: str, instance: str | None = None, sets: list[str] | None = None,
                       force: bool = False) -> list[dict[str, Any]]:
    """Deploy NAME's frozen lock (locking first when it has none) to ENVIRONMENT.

    ``sets``: ``KEY=VALUE`` (settings) and ``components.<name>.<path>=VALUE`` (a component's spec)
    for this deploy's instances. ``force`` deploys a lock a rollback put on hold. Returns one
    result per instance (``url`` where it serves); fails with READINESS_FAILED, after rolling
    back, when an instance did not become ready.
    """
    lock = frozen_lock(name)
    if lock is None:
        lock = lock_composition(name)
    check_not_held(name, environment, lock, force)
    return _deploy_lock(name, environment, lock, instance, list(sets or []))


@flow(name="rollback-composition", validate_parameters=True)
def rollback_composition(name: str, environment: str, instance: str | None = None) -> list[dict[str, Any]]:
    """Return NAME in ENVIRONMENT to its last healthy lock and put the current lock on hold."""
    plan = plan_rollback(name, environment)
    return _deploy_lock(name, environment, plan.lock, instance, [])


def _deploy_lock(name: str, environment: str, lock: LockFile, instance: str | None,
                 sets: list[str]) -> list[dict[str, Any]]:
    bundle = build_bundle(name, environment, lock)
    results = []
    for instance_name in instance_names(name, environment, instance):
        plan = prepare_deployment(name, environment, instance_name, lock, bundle, sets)
        results.append(complete_deployment(plan, start_candidate(plan)))
    raise_for_failures(results)
    return [r.model_dump(mode="json") for r in results]
