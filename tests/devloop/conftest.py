"""An installed component in a few lines: real git repository, real sync, lock and install."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from agentforge.core.yamlio import dump_yaml
from tests.gitfactory import GitRepoFactory, RepoHandle


def tool_definition(version: str, **spec: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"type": "function", "config": {"timeout": 30, "retries": 1, "region": "eu"},
                            "description": "looks things up"}
    base.update(spec)
    return {"apiVersion": "forge.dev/v1", "kind": "Tool",
            "metadata": {"name": "lookup", "version": version, "description": "Lookup tool"}, "spec": base}


README_V1 = "# lookup\n\nline one\nline two\nline three\nline four\nline five\n"


@dataclass
class Installed:
    repo: RepoHandle
    folder: Path
    engine: sa.Engine

    def release(self, version: str, files: dict[str, str | bytes | None]) -> str:
        """Commit and tag a new upstream release, then sync it."""
        from agentforge.services import sync as svc

        sha = self.repo.commit(files={f"tools/lookup/{k}": v for k, v in files.items()}, tags=[f"v{version}"])
        plan = svc.plan_sync(None)
        svc.record_plan_outcomes(plan)
        for repo_id in plan.to_sync:
            svc.sync_repository(repo_id)
        return sha

    def row(self) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(sa.text(
                "SELECT * FROM components WHERE name = 'lookup' AND is_installed")).mappings().one()

    def q(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).mappings().all())


def definition_yaml(version: str, **spec: Any) -> str:
    return dump_yaml(tool_definition(version, **spec))


@pytest.fixture()
def installed(clean_db: sa.Engine, home: Path, tmp_path: Path) -> Iterator[Installed]:
    from agentforge.core.lockfile import parse_lock
    from agentforge.services import sync as svc
    from agentforge.services.install import install_lock
    from agentforge.services.lock import resolve_root
    from agentforge.services.repos import add_repository

    factory = GitRepoFactory(tmp_path / "git")
    repo = factory.create("tools-repo", files={
        "tools/lookup/component.yaml": definition_yaml("1.0.0"),
        "tools/lookup/README.md": README_V1,
        "tools/lookup/icon.bin": b"\x00\x01binary",
    }, tag="v1.0.0")
    add_repository(repo.url, name="tools-repo", check=True)
    plan = svc.plan_sync(None)
    svc.record_plan_outcomes(plan)
    for repo_id in plan.to_sync:
        svc.sync_repository(repo_id)
    outcome = resolve_root("lookup@1.0.0")
    install_lock(parse_lock(outcome.text.encode(), source="lock"))
    folder = home / "installs" / "lookup"
    assert (folder / "component.yaml").is_file()
    yield Installed(repo=repo, folder=folder, engine=clean_db)
