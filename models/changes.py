"""Queries and commands of the local development loop: installed rows, change history, pulls.

Every function takes a keyword-only ``session``, flushes and never commits (the caller's
``session_scope`` is the transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import semver
import sqlalchemy as sa
from sqlalchemy.orm import Session

from agentforge.errors import AgentForgeError, NotFound
from models.enums import ChangeType, SyncDirection, SyncOperationStatus, SyncOperationType
from models.tables import Component, ComponentChange, Repository, SyncOperation, SystemConfig, UserSettings

LOCAL_COMPONENTS_KEY = "local_components"


def _version_key(version: str) -> semver.Version:
    try:
        return semver.Version.parse(version)
    except ValueError:
        return semver.Version(0)


def find_installed(*, session: Session, name: str, for_update: bool = False) -> Component:
    """The installed row of ``name`` (``REPO/NAME`` when two repositories install that name)."""
    repo_name, _, comp = name.rpartition("/")
    stmt = (sa.select(Component).join(Repository, Repository.id == Component.repository_id)
            .where(Component.is_installed.is_(True), Component.name == comp))
    if repo_name:
        stmt = stmt.where(Repository.name == repo_name)
    if for_update:
        stmt = stmt.with_for_update(of=Component)
    rows = list(session.scalars(stmt))
    if not rows:
        raise NotFound(f"component {name!r} is not installed",
                       hint="`agentforge status` lists installed components; `agentforge install NAME` installs one.")
    if len(rows) > 1:
        repos = sorted(session.scalars(sa.select(Repository.name).where(
            Repository.id.in_([r.repository_id for r in rows]))))
        raise AgentForgeError(f"{name!r} is installed from several repositories: {', '.join(repos)}",
                              code="AMBIGUOUS_COMPONENT", hint=f"Write REPO/{comp}, for example {repos[0]}/{comp}.")
    return rows[0]


def installed_components(*, session: Session) -> list[tuple[Component, str]]:
    """Every installed row with its repository's name, sorted by component name."""
    stmt = (sa.select(Component, Repository.name).join(Repository, Repository.id == Component.repository_id)
            .where(Component.is_installed.is_(True)).order_by(Component.name, Repository.name))
    return [(c, r) for c, r in session.execute(stmt).all()]


@dataclass(frozen=True)
class ReleaseRow:
    id: uuid.UUID
    version: str
    commit: str
    definition: dict[str, Any]


def releases_of(*, session: Session, repository_id: uuid.UUID, name: str) -> list[ReleaseRow]:
    """Usable releases of a component (reused versions excluded), newest version first."""
    rows = session.execute(sa.select(Component.id, Component.version, Component.commit_hash, Component.definition)
                           .where(Component.repository_id == repository_id, Component.name == name,
                                  Component.is_release.is_(True), Component.is_reused_version.is_(False))).all()
    out = [ReleaseRow(i, v, c, d) for i, v, c, d in rows]
    return sorted(out, key=lambda r: _version_key(r.version), reverse=True)


def newest_releases(*, session: Session, keys: Sequence[tuple[uuid.UUID, str]]
                    ) -> dict[tuple[uuid.UUID, str], ReleaseRow]:
    """Newest release per (repository id, component name): one query for ``status``."""
    if not keys:
        return {}
    rows = session.execute(sa.select(Component.repository_id, Component.name, Component.id, Component.version,
                                     Component.commit_hash)
                           .where(sa.tuple_(Component.repository_id, Component.name).in_(list(keys)),
                                  Component.is_release.is_(True), Component.is_reused_version.is_(False))).all()
    best: dict[tuple[uuid.UUID, str], ReleaseRow] = {}
    for repo_id, name, row_id, version, commit in rows:
        current = best.get((repo_id, name))
        if current is None or _version_key(version) > _version_key(current.version):
            best[(repo_id, name)] = ReleaseRow(row_id, version, commit, {})
    return best


def row_at_commit(*, session: Session, repository_id: uuid.UUID, name: str, commit: str) -> Component | None:
    return session.scalar(sa.select(Component).where(Component.repository_id == repository_id,
                                                     Component.name == name, Component.commit_hash == commit))


# --- history ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldChangeRow:
    field_path: str
    change_type: str  # CREATE | UPDATE | DELETE
    old_value: Any
    new_value: Any


def record_changes(*, session: Session, component_id: uuid.UUID, changes: Sequence[FieldChangeRow],
                   reason: str | None, author: str | None, commit_hash: str | None) -> int:
    """One component_changes row per changed field path (set-based insert)."""
    if not changes:
        return 0
    now = datetime.now(UTC)
    session.execute(sa.insert(ComponentChange), [
        dict(id=uuid.uuid4(), component_id=component_id, change_type=ChangeType(c.change_type),
             field_path=c.field_path[:500], old_value=c.old_value, new_value=c.new_value, reason=reason,
             author=(author or None) and author[:255], commit_hash=commit_hash, timestamp=now)
        for c in changes])
    return len(changes)


@dataclass(frozen=True)
class HistoryEntry:
    timestamp: datetime
    change_type: str
    field_path: str
    old_value: Any
    new_value: Any
    author: str | None
    reason: str | None
    version: str
    commit: str


def history(*, session: Session, repository_id: uuid.UUID, name: str, limit: int = 200) -> list[HistoryEntry]:
    """Change rows of every row (commit) of the component, newest first."""
    cc, c = ComponentChange, Component
    stmt = (sa.select(cc.timestamp, cc.change_type, cc.field_path, cc.old_value, cc.new_value, cc.author, cc.reason,
                      c.version, c.commit_hash)
            .join(c, c.id == cc.component_id)
            .where(c.repository_id == repository_id, c.name == name)
            .order_by(cc.timestamp.desc(), cc.field_path).limit(limit))
    return [HistoryEntry(t, k.value, f, o, n, a, r, v, h) for t, k, f, o, n, a, r, v, h in session.execute(stmt)]


def user_identity(*, session: Session, user_id: str) -> tuple[str | None, str | None] | None:
    row = session.execute(sa.select(UserSettings.git_username, UserSettings.git_email)
                          .where(UserSettings.user_id == user_id)).first()
    return (row[0], row[1]) if row else None


# --- pull operations --------------------------------------------------------------------------


def begin_operation(*, session: Session, component_id: uuid.UUID, operation: SyncOperationType,
                    source_commit: str, target_commit: str | None, message: str | None = None) -> uuid.UUID:
    op_id = uuid.uuid4()
    session.add(SyncOperation(id=op_id, component_id=component_id, operation=operation,
                              status=SyncOperationStatus.IN_PROGRESS, direction=SyncDirection.UPSTREAM_TO_LOCAL,
                              source_commit=source_commit, target_commit=target_commit, message=message,
                              started_at=datetime.now(UTC), conflict_files=[]))
    session.flush()
    return op_id


def finish_operation(*, session: Session, operation_id: uuid.UUID, status: SyncOperationStatus,
                     component_id: uuid.UUID | None = None, conflict_files: Sequence[str] = (),
                     error: str | None = None, message: str | None = None) -> None:
    values: dict[str, Any] = dict(status=status, conflict_files=list(conflict_files))
    if status != SyncOperationStatus.IN_PROGRESS:
        values["completed_at"] = datetime.now(UTC)
    if component_id is not None:
        values["component_id"] = component_id
    if error is not None:
        values["error_message"] = error[:4000]
    if message is not None:
        values["message"] = message
    session.execute(sa.update(SyncOperation).where(SyncOperation.id == operation_id).values(**values))


def fail_in_progress(*, session: Session, component_id: uuid.UUID, operation: SyncOperationType,
                     error: str, keep: Sequence[uuid.UUID] = ()) -> list[uuid.UUID]:
    """Mark the component's IN_PROGRESS operations of one type FAILED (their process died); their ids."""
    query = sa.update(SyncOperation).where(
        SyncOperation.component_id == component_id, SyncOperation.operation == operation,
        SyncOperation.status == SyncOperationStatus.IN_PROGRESS, SyncOperation.id.not_in(list(keep)),
    ).values(status=SyncOperationStatus.FAILED, error_message=error, completed_at=datetime.now(UTC))
    return list(session.scalars(query.returning(SyncOperation.id)).all())


def operation_status(*, session: Session, operation_id: uuid.UUID) -> SyncOperationStatus | None:
    return session.scalar(sa.select(SyncOperation.status).where(SyncOperation.id == operation_id))


def open_conflict(*, session: Session, component_id: uuid.UUID) -> SyncOperation | None:
    """The pull waiting for manual resolution on this row, if any."""
    return session.scalar(sa.select(SyncOperation).where(
        SyncOperation.component_id == component_id,
        SyncOperation.status == SyncOperationStatus.REQUIRES_MANUAL_RESOLUTION,
    ).order_by(SyncOperation.created_at.desc()).limit(1))


# --- LOCAL_ONLY components (no repository yet, so no components row: see local_components) ------


def local_components(*, session: Session) -> dict[str, dict[str, Any]]:
    value = session.scalar(sa.select(SystemConfig.value).where(SystemConfig.key == LOCAL_COMPONENTS_KEY))
    return dict(value) if isinstance(value, Mapping) else {}


def register_local_component(*, session: Session, name: str, kind: str, path: str) -> None:
    """Remember a scaffolded component; system_config holds it because components rows need a
    repository and a commit, which a new, never-committed component does not have."""
    from sqlalchemy.dialects.postgresql import insert

    current = local_components(session=session)
    current[path] = {"name": name, "kind": kind, "path": path, "created_at": datetime.now(UTC).isoformat()}
    stmt = insert(SystemConfig).values(key=LOCAL_COMPONENTS_KEY, value=current,
                                       description="Components scaffolded by `agentforge component new`")
    session.execute(stmt.on_conflict_do_update(index_elements=[SystemConfig.key],
                                               set_={"value": stmt.excluded.value}))
