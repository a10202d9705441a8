"""Helpers for sync tests: real git repositories, the real services, a real database.

``synced(...)`` runs the same steps the Prefect flow runs (plan → record outcomes → one
``sync_repository`` per changed repository), without Prefect, so most cases stay fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentforge.core.results import RepoSyncResult, SyncPlan
from tests.gitfactory import GitRepoFactory, RepoHandle


def component_yaml(name: str, version: str, kind: str = "Tool", **extra: str) -> str:
    lines = [f"apiVersion: {extra.pop('api', 'forge.dev/v1')}", f"kind: {kind}", "metadata:", f"  name: {name}",
             f"  version: {version}", "spec:", "  description: test component"]
    return "\n".join(lines) + "\n"


def manifest_yaml(tools: Sequence[tuple[str, str]], name: str = "demo") -> str:
    entries = "".join(f"    - {{name: {n}, path: {p}}}\n" for n, p in tools)
    return (f"apiVersion: forge.dev/v1\nkind: ComponentRepository\nmetadata: {{name: {name}}}\n"
            f"repository: {{type: tools}}\ncomponents:\n  tools:\n{entries}")


def tools_files(names: Sequence[str], version: str = "1.0.0") -> dict[str, str | bytes | None]:
    return {f"tools/{n}/component.yaml": component_yaml(n, version) for n in names}


@dataclass
class SyncRun:
    plan: SyncPlan
    results: dict[str, RepoSyncResult] = field(default_factory=dict)


def run_sync(names: Sequence[str] | None = None) -> SyncRun:
    from agentforge.services import sync as svc

    plan = svc.plan_sync(list(names) if names else None)
    svc.record_plan_outcomes(plan)
    run = SyncRun(plan=plan)
    for repo_id in plan.to_sync:
        result = svc.sync_repository(repo_id)
        run.results[result.name] = result
    return run


@pytest.fixture()
def factory(tmp_path: Path) -> GitRepoFactory:
    return GitRepoFactory(tmp_path / "git")


@pytest.fixture()
def env(clean_db: sa.Engine, home: Path) -> Iterator[sa.Engine]:
    """A clean database and home folder; yields the engine."""
    yield clean_db


@pytest.fixture()
def register() -> Callable[..., str]:
    from agentforge.services.repos import add_repository

    def add(handle: RepoHandle | str, name: str | None = None, **kw: Any) -> str:
        url = handle if isinstance(handle, str) else handle.url
        return add_repository(url, name=name or (None if isinstance(handle, str) else handle.name), **kw).name

    return add


def q(engine: sa.Engine, sql: str, **params: Any) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def one(engine: sa.Engine, sql: str, **params: Any) -> Any:
    rows = q(engine, sql, **params)
    assert len(rows) == 1, rows
    return rows[0]
