"""Queries and commands of the local development loop: installed rows, change history, pulls.

Every function takes a keyword-only ``session``, flushes and never commits (the caller's
``session_scope`` is the transaction).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased

from agentforge.errors import AgentForgeError, NotFound
from models.enums import ChangeType, SyncDirection, SyncOperationStatus, SyncOperationType
from models.tables import Component, ComponentChange, Repository, SyncOperation, SystemConfig, UserSettings

if TYPE_CHECKING:
    import semver

LOCAL_COMPONENTS_KEY = "local_components"


@functools.lru_cache(maxsize=4096)
def _version_key(version: str) -> semver.Version:
    # Cached: ``status`` compares every installed row's version, and they repeat (semver.Version is
    # immutable). semver is imported here: a status with no newer release never parses a version.
    import semver

    try:
        return semver.Version.parse(version)
    except ValueError:
        return semver.Version(0)


def find_installed(*, session: Session, name: str, for_update: bool = False) -> Component:
    """The installed row of ``name``: ``NAME``, ``REPO/NAME`` when two repositories install that
    name, or the installed folder's path (``./x/NAME``, ``/abs/NAME``) when one component is
    installed in several places."""
    import os

    by_path = name.startswith(("/", "./", "../", "~"))
    if by_path:
        path = os.path.abspath(os.path.expanduser(name.rstrip("/")))
        stmt = sa.select(Component).where(Component.is_installed.is_(True), Component.install_path == path)
        comp = os.path.basename(path)
    else:
        repo_name, _, comp = name.rpartition("/")
        stmt = (sa.select(Component).join(Repository, Repository.id == Component.repository_id)
                .where(Component.is_installed.is_(True), Component.name == comp))
        if repo_name:
            stmt = stmt.where(Repository.name == repo_name)
    if for_update:
        stmt = stmt.with_for_update(of=Component)
    rows = list(session.scalars(stmt))
    if not rows:
        raise NotFound(f"component {name!r} is not installed" + (" at that path" if by_path else ""),
                       hint="`agentforge status` lists installed components; `agentforge install NAME` installs one.")
    if len(rows) > 1:
        repo_ids = {r.repository_id for r in rows}
        if len(repo_ids) == 1:  # one repository's component, installed in several folders
            paths = sorted(str(r.install_path) for r in rows)
            raise AgentForgeError(f"{name!r} is installed in several folders: {', '.join(paths)}",
                                  code="AMBIGUOUS_COMPONENT",
                                  hint=f"Name it by its folder, for example `{paths[0]}`.")
        repos = sorted(session.scalars(sa.select(Repository.name).where(Repository.id.in_(repo_ids))))
        raise AgentForgeError(f"{name!r} is installed from several repositories: {', '.join(repos)}",
                              code="AMBIGUOUS_COMPONENT", hint=f"Write REPO/{comp}, for example {repos[0]}/{comp}.")
    return rows[0]


class InstalledLine(NamedTuple):
    """The columns of one installed row that ``status`` prints (no definitions)."""

    id: uuid.UUID
    name: str
    repository: str
    type: str  # a ComponentType value
    version: str
    sync_status: str  # a ComponentSyncStatus value
    commit_hash: str
    upstream_commit: str | None
    last_sync_at: datetime | None
    install_path: str | None
    has_local_definition: bool


def installed_lines(*, session: Session) -> list[InstalledLine]:
    """Every installed row's status columns with its repository's name, sorted by component name.

    One Core query: no ORM objects and none of the (large) definition documents; the enums as
    their text (no per-row conversion).
    """
    c, r = Component, Repository
    stmt = (sa.select(c.id, c.name, r.name, sa.cast(c.type, sa.Text), c.version, sa.cast(c.sync_status, sa.Text),
                      c.commit_hash, c.upstream_commit, c.last_sync_at, c.install_path, _has_local_definition())
            .join(r, r.id == c.repository_id)
            .where(c.is_installed.is_(True)).order_by(c.name, r.name))
    return [InstalledLine._make(row) for row in session.execute(stmt)]


def _has_local_definition() -> sa.ColumnElement[bool]:
    # JSONB 'null' (what the ORM may write for None) counts as no local definition, as it reads back as None.
    return sa.and_(Component.local_definition.is_not(None),
                   sa.func.jsonb_typeof(Component.local_definition) != "null")


def local_definitions_of_installed(*, session: Session) -> dict[uuid.UUID, tuple[dict[str, Any], Any]]:
    """(original definition, local definition) of the installed rows that have a local definition.

    The original is ``original_definition``, or ``definition`` when that is not recorded.
    """
    c = Component
    rows = session.execute(sa.select(c.id, c.original_definition, c.definition, c.local_definition)
                           .where(c.is_installed.is_(True), _has_local_definition()))
    return {i: (o if o is not None else d, local) for i, o, d, local in rows}


def components_by_id(*, session: Session, ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Component]:
    """ORM rows (definitions included) of the given ids, in one query."""
    if not ids:
        return {}
    return {c.id: c for c in session.scalars(sa.select(Component).where(Component.id.in_(list(ids))))}


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


def newest_other_releases(*, session: Session) -> dict[uuid.UUID, ReleaseRow]:
    """Per installed row id, the newest usable release of its component other than that row itself.

    What ``status`` offers as the upstream version: the installed row, when it is a release, is
    never newer than itself, so leaving it out changes no answer, and a component whose only
    release is installed costs no row. One query (a join, not an ``IN`` of 10,000 ``(id, name)``
    tuples, which exceeds PostgreSQL's default ``max_stack_depth``); versions compared with
    semver in Python (pre-release ordering), each distinct version string parsed once.
    """
    installed, release = aliased(Component), Component
    rows = session.execute(
        sa.select(installed.id, release.id, release.version, release.commit_hash)
        .join(release, sa.and_(release.repository_id == installed.repository_id, release.name == installed.name,
                               release.id != installed.id))
        .where(installed.is_installed.is_(True), release.is_release.is_(True), release.is_reused_version.is_(False)))
    best: dict[uuid.UUID, ReleaseRow] = {}
    for installed_id, row_id, version, commit in rows:
        current = best.get(installed_id)
        if current is None or _version_key(version) > _version_key(current.version):
            best[installed_id] = ReleaseRow(row_id, version, commit, {})
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
