"""Queries and commands of publishing: push/fork/pull-request operations, forks, GitHub mappings.

A publication of a component is identified by its branch name: every ``sync_operations``
row it writes (CREATE_FORK, PUSH_TO_ORIGIN / PUSH_TO_FORK, CREATE_PR) carries the component
id and that branch, and :func:`begin_step` finds the row of a step again instead of adding a
second one, which is what makes a re-run after a failure idempotent.

Every function takes a keyword-only ``session``, flushes and never commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.enums import ComponentSyncStatus, SyncDirection, SyncOperationStatus, SyncOperationType
from models.tables import Component, ComponentChange, Fork, Repository, SyncOperation, SystemConfig

__all__ = [
    "GITHUB_MAPPING_PREFIX",
    "PUBLISH_OPERATIONS",
    "ForkedComponent",
    "PullRequestRow",
    "StepRow",
    "begin_repository_step",
    "begin_step",
    "finish_step",
    "fork_of",
    "forked_components",
    "github_mapping",
    "latest_publish_step",
    "mark_forked",
    "mark_synced",
    "pull_requests",
    "record_fork",
    "record_pull_state",
    "set_github_mapping",
    "set_write_access",
    "stamp_changes",
    "step_of",
]

#: ``system_config`` key prefix of a repository's ``owner/name`` on the configured GitHub.
GITHUB_MAPPING_PREFIX = "github.repository."
PUBLISH_OPERATIONS = (SyncOperationType.CREATE_FORK, SyncOperationType.PUSH_TO_ORIGIN,
                      SyncOperationType.PUSH_TO_FORK, SyncOperationType.CREATE_PR)
_PUSHES = (SyncOperationType.PUSH_TO_ORIGIN, SyncOperationType.PUSH_TO_FORK)


# --- GitHub mapping (a repository registered by a non-GitHub URL, e.g. file://, served by GitHub) --


def github_mapping(*, session: Session, repository_id: uuid.UUID) -> str | None:
    value = session.scalar(sa.select(SystemConfig.value).where(
        SystemConfig.key == f"{GITHUB_MAPPING_PREFIX}{repository_id}"))
    if isinstance(value, dict) and isinstance(value.get("full_name"), str):
        return str(value["full_name"])
    return None


def set_github_mapping(*, session: Session, repository_id: uuid.UUID, full_name: str | None) -> None:
    """Map (or with None unmap) a repository to ``owner/name`` on the configured GitHub API."""
    key = f"{GITHUB_MAPPING_PREFIX}{repository_id}"
    if full_name is None:
        session.execute(sa.delete(SystemConfig).where(SystemConfig.key == key))
    else:
        stmt = insert(SystemConfig).values(key=key, value={"full_name": full_name},
                                           description="GitHub repository of this registered repository")
        session.execute(stmt.on_conflict_do_update(index_elements=[SystemConfig.key],
                                                   set_={"value": stmt.excluded.value, "updated_at": sa.func.now()}))
    session.flush()


def set_write_access(*, session: Session, repository_id: uuid.UUID, value: bool) -> None:
    session.execute(sa.update(Repository).where(Repository.id == repository_id,
                                                Repository.has_write_access.is_distinct_from(value))
                    .values(has_write_access=value))
    session.flush()


# --- forks ----------------------------------------------------------------------------------------


def fork_of(*, session: Session, original_repo: str) -> str | None:
    """The recorded fork (its web URL) of a repository URL, the newest when several."""
    return session.scalar(sa.select(Fork.fork_repo).where(Fork.original_repo == original_repo)
                          .order_by(Fork.created_at.desc()).limit(1))


def record_fork(*, session: Session, original_repo: str, fork_repo: str) -> None:
    stmt = insert(Fork).values(id=uuid.uuid4(), original_repo=original_repo, fork_repo=fork_repo)
    session.execute(stmt.on_conflict_do_nothing(index_elements=[Fork.original_repo, Fork.fork_repo]))
    session.flush()


# --- steps of a publication -----------------------------------------------------------------------


@dataclass(frozen=True)
class StepRow:
    id: uuid.UUID
    operation: str
    status: str
    branch_name: str | None
    source_commit: str | None
    target_commit: str | None
    pull_request_url: str | None
    pull_request_id: str | None
    message: str | None
    created_at: datetime


def _step(row: SyncOperation) -> StepRow:
    return StepRow(row.id, row.operation.value, row.status.value, row.branch_name, row.source_commit,
                   row.target_commit, row.pull_request_url, row.pull_request_id, row.message, row.created_at)


def step_of(*, session: Session, component_id: uuid.UUID, branch: str,
            operation: SyncOperationType) -> StepRow | None:
    row = session.scalar(sa.select(SyncOperation).where(
        SyncOperation.component_id == component_id, SyncOperation.branch_name == branch,
        SyncOperation.operation == operation).order_by(SyncOperation.created_at.desc()).limit(1))
    return _step(row) if row is not None else None


def latest_publish_step(*, session: Session, component_id: uuid.UUID) -> StepRow | None:
    """The newest publish step of the component (any of :data:`PUBLISH_OPERATIONS`)."""
    row = session.scalar(sa.select(SyncOperation).where(
        SyncOperation.component_id == component_id, SyncOperation.operation.in_(PUBLISH_OPERATIONS),
        SyncOperation.branch_name.is_not(None)).order_by(SyncOperation.created_at.desc()).limit(1))
    return _step(row) if row is not None else None


def begin_step(*, session: Session, component_id: uuid.UUID, repository_id: uuid.UUID, branch: str,
               operation: SyncOperationType, direction: SyncDirection, source_commit: str | None = None,
               target_commit: str | None = None, message: str | None = None,
               status: SyncOperationStatus = SyncOperationStatus.IN_PROGRESS) -> StepRow:
    """The step's row, created or found again (locked); a COMPLETED row is returned unchanged.

    Not COMPLETED: it becomes ``status`` (IN_PROGRESS, or PENDING for intent recorded ahead)
    with the given commits and message (None keeps what is stored), and its error is cleared.
    """
    row = session.scalar(sa.select(SyncOperation).where(
        SyncOperation.component_id == component_id, SyncOperation.branch_name == branch,
        SyncOperation.operation == operation).order_by(SyncOperation.created_at.desc()).limit(1)
        .with_for_update())
    now = datetime.now(UTC)
    if row is None:
        row = SyncOperation(id=uuid.uuid4(), component_id=component_id, repository_id=repository_id,
                            operation=operation, status=status, direction=direction, branch_name=branch,
                            source_commit=source_commit, target_commit=target_commit, message=message,
                            started_at=now if status == SyncOperationStatus.IN_PROGRESS else None,
                            conflict_files=[])
        session.add(row)
    elif row.status != SyncOperationStatus.COMPLETED:
        row.status = status
        row.error_message = None
        row.completed_at = None
        row.direction = direction
        if status == SyncOperationStatus.IN_PROGRESS:
            row.started_at = now
        if source_commit is not None:
            row.source_commit = source_commit
        if target_commit is not None:
            row.target_commit = target_commit
        if message is not None:
            row.message = message
    session.flush()
    return _step(row)


def begin_repository_step(*, session: Session, repository_id: uuid.UUID, branch: str | None,
                          operation: SyncOperationType, direction: SyncDirection) -> uuid.UUID:
    """A new IN_PROGRESS step of a repository (no component), e.g. MERGE_UPSTREAM into the fork."""
    op_id = uuid.uuid4()
    session.add(SyncOperation(id=op_id, repository_id=repository_id, operation=operation,
                              status=SyncOperationStatus.IN_PROGRESS, direction=direction, branch_name=branch,
                              started_at=datetime.now(UTC), conflict_files=[]))
    session.flush()
    return op_id


def finish_step(*, session: Session, operation_id: uuid.UUID, status: SyncOperationStatus,
                error: str | None = None, target_commit: str | None = None, pull_request_url: str | None = None,
                pull_request_id: str | None = None, message: str | None = None) -> None:
    values: dict[str, Any] = {"status": status, "completed_at": datetime.now(UTC)}
    values["error_message"] = error[:4000] if error is not None else None
    for key, value in (("target_commit", target_commit), ("pull_request_url", pull_request_url),
                       ("pull_request_id", pull_request_id), ("message", message)):
        if value is not None:
            values[key] = value
    session.execute(sa.update(SyncOperation).where(SyncOperation.id == operation_id).values(**values))
    session.flush()


# --- the component after a push ------------------------------------------------------------------


def stamp_changes(*, session: Session, component_id: uuid.UUID, commit_hash: str, branch: str) -> int:
    """Give every not yet published change row of the component the commit and branch it went out in."""
    result = session.execute(sa.update(ComponentChange).where(
        ComponentChange.component_id == component_id, ComponentChange.commit_hash.is_(None))
        .values(commit_hash=commit_hash, branch_name=branch[:100]))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


def mark_forked(*, session: Session, component_id: uuid.UUID, fork_repo: str, fork_branch: str) -> None:
    session.execute(sa.update(Component).where(Component.id == component_id).values(
        sync_status=ComponentSyncStatus.FORKED, fork_repo=fork_repo[:500], fork_branch=fork_branch[:100]))
    session.flush()


@dataclass(frozen=True)
class ForkedComponent:
    id: uuid.UUID
    name: str
    path: str
    fork_branch: str
    pushed_commit: str | None


def forked_components(*, session: Session, repository_id: uuid.UUID) -> list[ForkedComponent]:
    """Installed FORKED components of a repository with the commit their branch last received."""
    rows = session.execute(sa.select(Component.id, Component.name, Component.path, Component.fork_branch).where(
        Component.repository_id == repository_id, Component.is_installed.is_(True),
        Component.sync_status == ComponentSyncStatus.FORKED, Component.fork_branch.is_not(None))).all()
    out: list[ForkedComponent] = []
    for comp_id, name, path, branch in rows:
        pushed = session.scalar(sa.select(SyncOperation.target_commit).where(
            SyncOperation.component_id == comp_id, SyncOperation.branch_name == branch,
            SyncOperation.operation.in_(_PUSHES), SyncOperation.status == SyncOperationStatus.COMPLETED)
            .order_by(SyncOperation.completed_at.desc()).limit(1))
        out.append(ForkedComponent(comp_id, name, path, str(branch), pushed))
    return out


def mark_synced(*, session: Session, component_ids: Sequence[uuid.UUID]) -> int:
    """FORKED components whose change was merged upstream: SYNCED again (the fork stays recorded)."""
    if not component_ids:
        return 0
    result = session.execute(sa.update(Component).where(
        Component.id.in_(list(component_ids)), Component.sync_status == ComponentSyncStatus.FORKED)
        .values(sync_status=ComponentSyncStatus.SYNCED, fork_branch=None))
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)


# --- pull requests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PullRequestRow:
    operation_id: uuid.UUID
    component_id: uuid.UUID | None
    component: str | None
    repository_id: uuid.UUID | None
    repository: str | None
    repository_url: str | None
    branch: str | None
    url: str
    number: str | None
    message: str | None
    created_at: datetime


def pull_requests(*, session: Session, repository: str | None = None) -> list[PullRequestRow]:
    """Every pull request recorded by a completed CREATE_PR step, newest first."""
    so = SyncOperation
    stmt = (sa.select(so.id, so.component_id, Component.name, so.repository_id, Repository.name, Repository.url,
                      so.branch_name, so.pull_request_url, so.pull_request_id, so.message, so.created_at)
            .outerjoin(Component, Component.id == so.component_id)
            .outerjoin(Repository, Repository.id == so.repository_id)
            .where(so.operation == SyncOperationType.CREATE_PR, so.status == SyncOperationStatus.COMPLETED,
                   so.pull_request_url.is_not(None))
            .order_by(so.created_at.desc()))
    if repository is not None:
        stmt = stmt.where(Repository.name == repository)
    return [PullRequestRow(operation_id=r[0], component_id=r[1], component=r[2], repository_id=r[3], repository=r[4],
                           repository_url=r[5], branch=r[6], url=str(r[7]), number=r[8], message=r[9],
                           created_at=r[10]) for r in session.execute(stmt).all()]


def record_pull_state(*, session: Session, operation_id: uuid.UUID, state: str) -> None:
    """Remember the pull request's last seen state in the step's message (``state: merged``)."""
    session.execute(sa.update(SyncOperation).where(SyncOperation.id == operation_id)
                    .values(message=f"state: {state}"))
    session.flush()
