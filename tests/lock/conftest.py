"""Helpers for lock/install tests: real bare git repositories, the real sync, a real database.

    repo = lib.repo("tools", {"a": ("1.0.0", {"b": "^1"}), "b": ("1.2.0", {})}, tag="v1.0.0")
    lib.sync()
    outcome = lock_svc.resolve_root("a")

``component(...)`` writes a ``component.yaml`` with dependencies in the FORMATS §2 shape.
Sync runs through the plain service functions (no Prefect), like tests/sync does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.gitfactory import GitRepoFactory, RepoHandle

Deps = Mapping[str, Any]  # name → constraint, or name → {version, repository, optional, ...}


def component(name: str, version: str, deps: Deps | None = None, *, kind: str = "Tool",
              peer: Deps | None = None, dev: Deps | None = None, optional: Deps | None = None,
              extra: Mapping[str, Any] | None = None) -> str:
    def entries(group: Deps | None, **flags: Any) -> list[dict[str, Any]]:
        out = []
        for dep, spec in (group or {}).items():
            entry = {"component": dep, **flags}
            entry.update(spec if isinstance(spec, Mapping) else {"version": spec})
            out.append(entry)
        return out

    dependencies: dict[str, Any] = {}
    tools = entries(deps) + entries(optional, optional=True)
    if tools:
        dependencies["tools"] = tools
    if peer:
        dependencies["peer"] = entries(peer)
    if dev:
        dependencies["dev"] = entries(dev)
    spec: dict[str, Any] = {"description": f"{name} for tests", **(extra or {})}
    if dependencies:
        spec["dependencies"] = dependencies
    doc = {"apiVersion": "forge.dev/v1", "kind": kind, "metadata": {"name": name, "version": version},
           "spec": spec}
    return yaml.safe_dump(doc, sort_keys=False)


def files_for(components: Mapping[str, tuple[str, Deps] | str], **kw: Any) -> dict[str, str | bytes | None]:
    """``{"a": ("1.0.0", {"b": "^1"})}`` → component.yaml (+ a payload file) per component."""
    out: dict[str, str | bytes | None] = {}
    for name, value in components.items():
        version, deps = (value, {}) if isinstance(value, str) else value
        out[f"tools/{name}/component.yaml"] = component(name, version, deps, **kw)
        out[f"tools/{name}/main.py"] = f"print({name!r}, {version!r})\n"
    return out


@dataclass
class Library:
    """A few repositories registered and synced into the test database."""

    factory: GitRepoFactory
    engine: sa.Engine
    handles: dict[str, RepoHandle] = field(default_factory=dict)

    def repo(self, name: str, components: Mapping[str, tuple[str, Deps] | str] | None = None, *,
             tag: str | Sequence[str] | None = "v1.0.0", register: bool = True,
             files: Mapping[str, str | bytes | None] | None = None) -> RepoHandle:
        handle = self.factory.create(name, files={**files_for(components or {}), **(files or {})}, tag=tag)
        self.handles[name] = handle
        if register:
            self.register(handle)
        return handle

    def register(self, handle: RepoHandle) -> str:
        from agentforge.services.repos import add_repository

        return add_repository(handle.url, name=handle.name).name

    def release(self, name: str, components: Mapping[str, tuple[str, Deps] | str], tag: str | None,
                **kw: Any) -> str:
        return self.handles[name].commit(files=files_for(components, **kw), tags=[tag] if tag else [])

    def sync(self) -> None:
        from agentforge.services import sync as svc

        plan = svc.plan_sync(None)
        svc.record_plan_outcomes(plan)
        for repo_id in plan.to_sync:
            svc.sync_repository(repo_id)

    def q(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())


@pytest.fixture()
def lib(clean_db: sa.Engine, home: Path, tmp_path: Path) -> Iterator[Library]:
    yield Library(GitRepoFactory(tmp_path / "git"), clean_db)
