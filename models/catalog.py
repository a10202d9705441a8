"""Read-only catalog queries behind `ls` and `show` (one query each, no Prefect).

Both apply the resolver's reading of releases (agentforge/services/lock.py, ``_load_repo``): a
row whose release tags have all moved (tag ledger state MOVED) is *held back* — never offered
as a release until `agentforge repo accept-tag` — and a reused version is no release; a later
row holding the very same files of a held-back version under a tag that did not move stands in
for it (``_release_untouched_copies``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import Session, aliased

from agentforge.core.constraints import version_from_tag
from agentforge.errors import NotFound
from models.enums import TagState
from models.tables import Component, Repository, RepositoryTag


def _moved_tags() -> Any:
    """Per repository, its moved (not accepted) release tags, as ``text[]``."""
    return (sa.select(RepositoryTag.repository_id.label("repository_id"),
                      sa.func.array_agg(sa.cast(RepositoryTag.tag, sa.Text), type_=pg.ARRAY(sa.Text)).label("tags"))
            .where(RepositoryTag.state == TagState.MOVED)
            .group_by(RepositoryTag.repository_id)
            .cte("moved"))


def _held_back(c: Any, moved: Any) -> Any:
    """The rows of ``c`` (outer-joined to ``moved``) whose release tags have all moved."""
    return sa.and_(moved.c.tags.is_not(None), sa.func.cardinality(c.release_tags) > 0,
                   c.release_tags.contained_by(moved.c.tags))


def _release_columns(c: Any) -> tuple[Callable[[Any], Any], Any, Any]:
    """(a function that outer-joins a select from ``c`` to what the flags need, held back, a
    release as ``lock`` reads it). Joins, not a correlated subquery: one of those makes the
    planner's estimate for 10,000 components cross PostgreSQL's JIT threshold, and compiling the
    query then costs ten times running it."""
    moved = _moved_tags()
    h = aliased(Component)
    # The (version, files) of held-back releases: empty unless a repository has a moved tag.
    twins = (sa.select(h.repository_id, h.name, h.version, sa.func.coalesce(h.tree_hash, "").label("tree"))
             .join(moved, moved.c.repository_id == h.repository_id)
             .where(h.is_release, sa.not_(h.is_reused_version), _held_back(h, moved))
             .distinct().subquery("held_twins"))

    def join(stmt: Any) -> Any:
        return (stmt.outerjoin(moved, moved.c.repository_id == c.repository_id)
                .outerjoin(twins, sa.and_(twins.c.repository_id == c.repository_id, twins.c.name == c.name,
                                          twins.c.version == c.version,
                                          twins.c.tree == sa.func.coalesce(c.tree_hash, ""))))

    held = _held_back(c, moved)
    base = sa.and_(c.is_release, sa.not_(c.is_reused_version))
    # A later row with the very files of a held-back version, under a tag that did not move.
    promoted = sa.and_(twins.c.repository_id.is_not(None), sa.not_(base),
                       sa.func.cardinality(c.release_tags) > 0, sa.not_(held))
    return join, sa.and_(held, base), sa.or_(sa.and_(base, sa.not_(held)), promoted)


@dataclass(frozen=True)
class CatalogLine:
    name: str
    kind: str
    repository: str
    versions: list[str]          # released versions, as `lock` reads them (unsorted; callers sort by semver)
    tip_version: str | None
    status: str
    installed_version: str | None
    held_back: list[str]         # versions whose only release is held back (a moved tag); not in versions


def catalog(*, session: Session, kind: str | None = None, repository: str | None = None) -> list[CatalogLine]:
    c, r = Component, Repository
    base, held, released = _release_columns(c)
    stmt = (
        sa.select(
            c.name, c.type, r.name,
            sa.func.array_agg(sa.distinct(c.version)).filter(released),
            sa.func.max(c.version).filter(c.commit_hash == r.synced_refs["refs"][
                sa.func.concat("refs/heads/", r.default_branch)].astext),
            sa.func.max(sa.cast(c.sync_status, sa.Text)).filter(c.is_installed),
            sa.func.max(c.version).filter(c.is_installed),
            # psycopg gives the list as it is (a NULL for nearly every line): no SQLAlchemy processing.
            sa.func.array_agg(sa.distinct(c.version), type_=sa.types.NullType()).filter(held),
        )
        .join(r, r.id == c.repository_id)
    )
    stmt = base(stmt).group_by(c.name, c.type, r.name).order_by(c.name, r.name)
    if kind:
        stmt = stmt.where(c.type == kind.upper())
    if repository:
        stmt = stmt.where(r.name == repository)
    return [
        CatalogLine(name=row[0], kind=row[1].value.title(), repository=row[2], versions=list(row[3] or []),
                    tip_version=row[4], status=row[5] or "REMOTE_ONLY", installed_version=row[6],
                    held_back=[v for v in row[7] if v not in (row[3] or ())] if row[7] else [])
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
    is_release: bool             # a release as `lock` reads it (not held back, not a reused version)
    is_reused: bool
    definition: dict[str, Any]
    is_installed: bool
    install_path: str | None
    sync_status: str
    has_local_changes: bool
    held_back: bool = False      # a release whose tags all moved: not offered until `repo accept-tag`
    held_back_reason: str | None = None  # which tag moved where, and the command that releases it
    #: This version's tag was accepted at another commit after the last sync (`repo accept-tag`):
    #: which commit, and the command that reads it. The row itself releases nothing meanwhile.
    pending_reason: str | None = None


def component_versions(*, session: Session, name: str, repository: str | None = None) -> list[ComponentVersion]:
    c, r = Component, Repository
    base, held, released = _release_columns(c)
    stmt = base(sa.select(c, r.name, held, released).join(r, r.id == c.repository_id)).where(c.name == name)
    if repository:
        stmt = stmt.where(r.name == repository)
    found = session.execute(stmt).all()
    if not found:
        from models.repositories import why_missing

        similar = session.scalars(sa.select(c.name).distinct().where(c.name.ilike(f"%{name[:20]}%")).limit(5)).all()
        because, skipped_hint = why_missing(session=session, name=name)
        raise NotFound(f"no component named {name!r}" + (f" in repository {repository!r}" if repository else "")
                       + because,
                       hint=skipped_hint or (("Did you mean: " + ", ".join(similar)) if similar else
                                             "`agentforge ls` lists what is synced; `agentforge sync` fetches new "
                                             "releases."))
    ledger: dict[tuple[Any, str], tuple[str, str | None]] = {}
    held_rows = [row for row, _repo, is_held, _rel in found if is_held]
    if held_rows:  # which commit each moved tag points at now (one query, only when something is held)
        for repo_id, tag, first, current in session.execute(
                sa.select(RepositoryTag.repository_id, RepositoryTag.tag, RepositoryTag.first_commit,
                          RepositoryTag.current_commit)
                .where(RepositoryTag.repository_id.in_({row.repository_id for row in held_rows}),
                       RepositoryTag.state == TagState.MOVED)):
            ledger[(repo_id, tag)] = (first, current)
    # Only a row that is no release can be a version whose tag was accepted elsewhere.
    unreleased = {row.repository_id for row, _repo, _held, is_released in found if not is_released}
    pending = accepted_since_last_sync(session, unreleased) if unreleased else {}
    out = []
    for row, repo_name, is_held, is_released in found:
        reason = None
        if is_held:
            tag = row.release_tags[0]
            first, current = ledger.get((row.repository_id, tag), (row.commit_hash, None))
            reason = (f"tag {tag} moved from {first[:12]} to {(current or '?')[:12]}; held back until "
                      f"`agentforge repo accept-tag {repo_name} {tag}`")
        out.append(ComponentVersion(
            id=row.id, name=row.name, kind=row.type.value.title(), version=row.version,
            repository=repo_name, repository_url=row.repository_url, path=row.path,
            commit=row.commit_hash, tree=row.tree_hash, tags=list(row.release_tags),
            is_release=bool(is_released), is_reused=row.is_reused_version, definition=row.definition,
            is_installed=row.is_installed, install_path=row.install_path,
            sync_status=row.sync_status.value, has_local_changes=row.has_local_changes,
            held_back=bool(is_held), held_back_reason=reason,
            pending_reason=next((f"tag {tag} was accepted at {commit[:12]} after the last sync; "
                                 f"`agentforge sync {repo_name}` reads it"
                                 for tag, tv, commit in pending.get(row.repository_id, ())
                                 if str(tv.version) == row.version and tv.component in (None, row.name)
                                 and commit != row.commit_hash and not is_released), None)))
    return out


def accepted_since_last_sync(session: Session, repository_ids: set[Any]) -> dict[Any, list[tuple[str, Any, str]]]:
    """Per repository: (tag, its version, accepted commit) of the tags `repo accept-tag` accepted
    after the repository's last sync, which the next sync reads (one small query)."""
    out: dict[Any, list[tuple[str, Any, str]]] = {}
    for repo_id, tag, commit in session.execute(
            sa.select(RepositoryTag.repository_id, RepositoryTag.tag, RepositoryTag.first_commit)
            .join(Repository, Repository.id == RepositoryTag.repository_id)
            .where(RepositoryTag.repository_id.in_(repository_ids), RepositoryTag.state == TagState.OK,
                   RepositoryTag.accepted_at.is_not(None),
                   sa.or_(Repository.last_sync.is_(None), RepositoryTag.accepted_at > Repository.last_sync))):
        tv = version_from_tag(tag)
        if tv is not None and commit:
            out.setdefault(repo_id, []).append((tag, tv, commit))
    return out
