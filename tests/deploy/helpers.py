"""The deploy flow's steps run as plain functions (no Prefect), as tests/sync does for sync."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx


def deploy(name: str, environment: str, *, instance: str | None = None, sets: Sequence[str] = (),
           force: bool = False, lock: Any = None) -> list[Any]:
    from agentforge.services import deploy as svc

    if lock is None:
        lock = svc.frozen_lock(name) or svc.lock_composition(name)
        svc.check_not_held(name, environment, lock, force=force)
    bundle = svc.build_bundle(name, environment, lock)
    results = []
    for instance_name in svc.instance_names(name, environment, instance):
        plan = svc.prepare_deployment(name, environment, instance_name, lock, bundle, list(sets))
        results.append(svc.complete_deployment(plan, svc.start_candidate(plan)))
    return results


def get(url: str, path: str) -> httpx.Response:
    return httpx.get(url + path, timeout=10)


def post(url: str, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(url + path, json=body, timeout=10)
