"""Read-only catalog queries behind `ls` and `show` (one query each, no Prefect)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from agentforge.errors import NotFound
from models.tables import Component, Repository


@dataclass(frozen=True)
class CatalogLine:
    name: str
    kind: str
    repository: str
    versions: list[str]          # released versions (unsorted; callers sort by semver)
    tip_version: str | None
    status: str
    installed_version: str | None


def catalog(*, session: Session, kind: str | None = None, repository: str | None = None) -> list[CatalogLine]:
    c, r = Component, Repository
    stmt = (
        sa.select(
            c.name, c.type, r.name,
            sa.func.array_agg(sa.distinct(c.version)).filter(c.is_release),
            sa.func.max(c.version).filter(c.commit_hash == r.synced_refs["refs"][
                sa.func.concat("refs/heads/", r.default_branch)].astext),
            sa.func.max(sa.cast(c.sync_status, sa.Text)).filter(c.is_installed),
            sa.func.max(c.version).filter(c.is_installed),
        )
        .join(r, r.id == c.repository_id)
        .group_by(c.name, c.type, r.name)
        .order_by(c.name, r.name)
    )
    if kind:
        stmt = stmt.where(c.type == kind.upper())
    if repository:
        stmt = stmt.where(r.name == repository)
    return [
        CatalogLine(name=row[0], kind=row[1].value.title(), repository=row[2], versions=list(row[3] or []),
                    tip_version=row[4], status=row[5] or "REMOTE_ONLY", installed_version=row[6])
        for row in session.execute(stmt)
    ]


@dataclass(frozen=True)
class ComponentVersion:
    id: Any
    name: str
    kind: str
    version: str
    repository: str
    repository_url: str
    path: str
    commit: str
    tree: str | None
    tags: list[str]
    is_release: bool
    is_reused: bool
    definition: dict[str, Any]
    is_installed: bool
    install_path: str | None
    sync_status: str
    has_local_changes: bool


def component_versions(*, session: Session, name: str, repository: str | None = None) -> list[ComponentVersion]:
    c, r = Component, Repository
    stmt = (sa.select(c, r.name).join(r, r.id == c.repository_id).where(c.name == name))
    if repository:
        stmt = stmt.where(r.name == repository)
    out = [
        ComponentVersion(id=row.id, name=row.name, kind=row.type.value.title(), version=row.version,
                         repository=repo_name, repository_url=row.repository_url, path=row.path,
                         commit=row.commit_hash, tree=row.tree_hash, tags=list(row.release_tags),
                         is_release=row.is_release, is_reused=row.is_reused_version, definition=row.definition,
                         is_installed=row.is_installed, install_path=row.install_path,
                         sync_status=row.sync_status.value, has_local_changes=row.has_local_changes)
        for row, repo_name in session.execute(stmt)
    ]
    if not out:
        similar = session.scalars(sa.select(c.name).distinct().where(c.name.ilike(f"%{name[:20]}%")).limit(5)).all()
        raise NotFound(f"no component named {name!r}" + (f" in repository {repository!r}" if repository else ""),
                       hint=("Did you mean: " + ", ".join(similar)) if similar else
                       "`agentforge ls` lists what is synced; `agentforge sync` fetches new releases.")
    return out
