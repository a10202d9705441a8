"""Query and command functions over repositories, their sync state and the tag ledger.

Every function takes a keyword-only ``session``, flushes and never commits.
"""

from __future__ import annotations

import contextlib
import uuid
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.dialects.postgresql import JSONB as pg_JSONB
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from agentforge.errors import AlreadyExists, Conflict, NotFound
from models import compositions as comp_q
from models.enums import (
    RepoSyncStatus,
    RepoType,
    SyncDirection,
    SyncOperationStatus,
    SyncOperationType,
    TagState,
)
from models.jsonrows import encode_json, encode_rows
from models.tables import Component, Repository, RepositoryTag, SyncOperation

_SYNC_LOCK_NAMESPACE = 0x5EED


def _lock_key(repository_id: uuid.UUID) -> int:
    # Two int4 keys: a namespace of ours and a stable hash of the repository id.
    return zlib.crc32(repository_id.bytes) & 0x7FFFFFFF


@contextlib.contextmanager
def repository_sync_lock(engine: Engine, repository_id: uuid.UUID) -> Iterator[None]:
    """Serialise syncs of one repository across processes (session-level advisory lock).

    The lock lives on its own autocommit connection, so no transaction is held open across
    the git I/O it guards; a crashed holder's lock is released by the server with its session.
    """
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("SELECT pg_advisory_lock(:ns, :k)"), {"ns": _SYNC_LOCK_NAMESPACE,
                                                                   "k": _lock_key(repository_id)})
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :k)"), {"ns": _SYNC_LOCK_NAMESPACE,
                                                                         "k": _lock_key(repository_id)})


def sync_lock_is_free(engine: Engine, repository_id: uuid.UUID) -> bool:
    """True when no process holds the repository's sync lock (used to recover stale states)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        got = conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :k)"),
                           {"ns": _SYNC_LOCK_NAMESPACE, "k": _lock_key(repository_id)}).scalar()
        if got:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :k)"),
                         {"ns": _SYNC_LOCK_NAMESPACE, "k": _lock_key(repository_id)})
        return bool(got)


def recover_if_stale(engine: Engine, repository_id: uuid.UUID) -> bool:
    """Mark a SYNC_IN_PROGRESS left by a killed run as failed, atomically with respect to syncs.

    The check (nobody holds the repository's sync lock) and the repair run while *we* hold
    that lock, so a sync that starts in between cannot have its live state overwritten
    (syncs record SYNC_IN_PROGRESS only under the lock). Returns True when a state was repaired.
    """
    params = {"ns": _SYNC_LOCK_NAMESPACE, "k": _lock_key(repository_id)}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if not conn.execute(sa.text("SELECT pg_try_advisory_lock(:ns, :k)"), params).scalar():
            return False
        try:
            with Session(bind=conn) as session:
                repaired = recover_stale_in_progress(session=session, repository_ids=[repository_id])
                session.commit()
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:ns, :k)"), params)
    return repaired > 0


# --- registration -----------------------------------------------------------------------------


def add_repository(
    *, session: Session, name: str, url: str, type: RepoType = RepoType.MIXED, default_branch: str | None = None,
    source_format: str | None = None,
) -> tuple[Repository, bool]:
    """Register a repository; idempotent for the same name and URL. Returns (row, created).

    ``source_format``: ``forced:<format>`` when `repo add --format` forces a catalog format
    (the sync keeps the prefix); None lets every sync detect it.
    """
    by_name = session.scalar(sa.select(Repository).where(Repository.name == name))
    by_url = session.scalar(sa.select(Repository).where(Repository.url == url))
    if by_name is not None and by_name.url == url:
        return by_name, False
    if by_name is not None:
        raise AlreadyExists(f"a repository named {name!r} is already registered for {by_name.url}",
                            hint="Choose another name with --name, or `agentforge repo rm` the old one.")
    if by_url is not None:
        raise AlreadyExists(f"{url} is already registered as {by_url.name!r}",
                            hint=f"Use the name {by_url.name!r}, or `agentforge repo rm {by_url.name}` first.")
    repo = Repository(name=name, url=url, type=type, default_branch=default_branch or "main",
                      source_format=source_format)
    session.add(repo)
    session.flush()
    return repo, True


@dataclass(frozen=True)
class Retarget:
    """What ``retarget_repository`` changed: (old, new) pairs, None when unchanged."""

    branch: tuple[str, str] | None = None
    source_format: tuple[str | None, str | None] | None = None  # new None: detect again
    deleted_rows: int = 0

    @property
    def changed(self) -> bool:
        return self.branch is not None or self.source_format is not None


def retarget_repository(*, session: Session, repository_id: uuid.UUID, default_branch: str | None,
                        source_format: str | None) -> Retarget:
    """`repo add` again with another ``--branch`` or ``--format``: record it, and reset the sync
    checkpoint (``synced_refs``) so that the next sync reads the repository again even when no
    ref moved (``plan_sync`` calls a repository unchanged when its refs equal the checkpoint).

    ``default_branch``: the branch asked for (None: keep). ``source_format``: the forced format
    as stored (``forced:<format>``; None: keep; "": no forced format any more, detect).
    Component rows read with another format than the new one are stale: every row of the
    repository is then deleted (the next sync reads each commit again, with the new format),
    which is refused (Conflict) while components of it are installed. Rows all read with the new
    format already (it was the detected one) are kept. Callers hold the repository's sync lock,
    so no sync writes rows of the old format meanwhile.
    """
    repo = session.scalar(sa.select(Repository).where(Repository.id == repository_id).with_for_update())
    if repo is None:
        raise NotFound("the repository was removed meanwhile", hint="`agentforge repo add URL` it again.")
    branch = None
    if default_branch and default_branch != repo.default_branch:
        branch = (repo.default_branch, default_branch)
        repo.default_branch = default_branch
    new_format = None
    deleted = 0
    if source_format == "" and not (repo.source_format or "").startswith("forced:"):
        source_format = None  # nothing forced: detection is already the rule
    if source_format is not None and source_format != repo.source_format:
        new_format = (repo.source_format, source_format or None)
        # A row's reader: its catalog adapter's format, or the native one (forge, also when scanned).
        reader = sa.func.coalesce(Component.metadata_["catalog_format"].astext, "forge")
        # Back to detection: which format the next sync detects is not known yet, so every row is stale.
        stale = session.scalar(sa.select(sa.exists().where(
            Component.repository_id == repository_id,
            reader != source_format.removeprefix("forced:") if source_format else sa.true())))
        if stale:
            installed = sorted(set(session.scalars(sa.select(Component.name).where(
                Component.repository_id == repository_id, Component.is_installed.is_(True)))))
            if installed:
                raise Conflict(
                    f"repository {repo.name!r} has installed components, read with another format than "
                    f"{source_format.removeprefix('forced:') or 'the one the next sync detects'}: "
                    f"{', '.join(installed)}",
                    code="REPOSITORY_IN_USE",
                    hint=f"A new --format makes their rows stale, so it is refused while they are installed: "
                         f"`agentforge repo rm --force {repo.name}` (the installed folders stay on disk), then "
                         f"add it again with the new --format.")
            result = session.execute(sa.delete(Component).where(Component.repository_id == repository_id))
            deleted = int(getattr(result, "rowcount", 0) or 0)
        repo.source_format = source_format or None
    if branch is not None or new_format is not None:
        repo.synced_refs = None
    session.flush()
    return Retarget(branch=branch, source_format=new_format, deleted_rows=deleted)


def get_repository(*, session: Session, name: str) -> Repository:
    repo = session.scalar(sa.select(Repository).where(Repository.name == name))
    if repo is None:
        known = session.scalars(sa.select(Repository.name).order_by(Repository.name).limit(20)).all()
        raise NotFound(f"no repository named {name!r}",
                       hint=("Registered: " + ", ".join(known)) if known
                       else "Register one with `agentforge repo add URL`.")
    return repo


def list_repositories(*, session: Session) -> list[Repository]:
    return list(session.scalars(sa.select(Repository).order_by(Repository.name)))


def component_counts(*, session: Session) -> dict[uuid.UUID, tuple[int, int]]:
    """repository id → (distinct component names, component rows)."""
    rows = session.execute(sa.select(Component.repository_id, sa.func.count(sa.distinct(Component.name)),
                                     sa.func.count()).group_by(Component.repository_id)).all()
    return {r[0]: (int(r[1]), int(r[2])) for r in rows}


@dataclass(frozen=True)
class RemovedRepository:
    """What ``remove_repository`` removed (and, under ``force``, kept)."""

    id: uuid.UUID
    name: str
    url: str
    #: Compositions synced from the repository (``compositions.source_repo``) that were deleted.
    compositions_removed: list[str] = field(default_factory=list)
    #: Compositions synced from it that have instances, kept under ``force``: the instances (and
    #: their deployments, the rollback history) reference them, and a deleted composition would
    #: take those rows with it (ON DELETE CASCADE) and leave running processes unmanaged.
    compositions_kept: list[str] = field(default_factory=list)
    #: Removed composition name → other repositories whose tip lists a composition of that name
    #: (it was left out while the name was taken); their checkpoint is reset, so the next sync stores it.
    offered_elsewhere: dict[str, list[str]] = field(default_factory=dict)


def remove_repository(*, session: Session, name: str, force: bool = False) -> RemovedRepository:
    """Unregister a repository: its component rows, tags and sync history go with it (the database
    cascades), and so do the compositions synced from it (``compositions.source_repo`` is its URL,
    no foreign key). Refused (Conflict) without ``force`` while instances run its components,
    components of it are installed, or compositions from it have instances; under ``force`` the
    compositions with instances are kept (see ``RemovedRepository.compositions_kept``)."""
    repo = get_repository(session=session, name=name)
    installed = session.scalars(sa.select(Component.name).where(Component.repository_id == repo.id,
                                                                Component.is_installed.is_(True))).all()
    compositions = comp_q.instances_by_composition(repo.url, session=session)
    with_instances = {c: refs for c, refs in compositions.items() if refs}
    if not force:
        # Instances running a deployment whose lock takes components from this repository.
        running = session.scalars(sa.text(
            "SELECT DISTINCT c.name || '/' || ci.name FROM composition_instances ci "
            "JOIN compositions c ON c.id = ci.composition_id "
            "JOIN deployments d ON d.instance_id = ci.id AND d.lock_hash = ci.lock_hash "
            "WHERE ci.status IN ('RUNNING', 'STARTING', 'UPDATING') AND EXISTS ("
            "  SELECT 1 FROM jsonb_each(d.lock_file -> 'packages') p WHERE p.value ->> 'repository' = :url)"),
            {"url": repo.url}).all()
        if running:
            raise Conflict(f"repository {name!r} provides components to running instances: "
                           f"{', '.join(sorted(running))}",
                           hint="Stop them first (`agentforge instance stop NAME/ENV`), or pass --force.")
    if installed and not force:
        raise Conflict(f"repository {name!r} has installed components: {', '.join(sorted(set(installed)))}",
                       hint="Pass --force to remove the repository and its rows anyway; the installed folders "
                            "stay on disk (a later install refuses to overwrite changes in them).")
    if with_instances and not force:
        listed = "; ".join(f"{c}: {', '.join(refs)}" for c, refs in sorted(with_instances.items()))
        raise Conflict(f"repository {name!r} is the source of compositions that have instances: {listed}",
                       hint="Pass --force to remove the repository anyway: those compositions are kept (their "
                            "instances and deployment history need them), its other compositions are removed.")
    removed = comp_q.delete_from_source(repo.url, session=session,
                                        names=[c for c in compositions if c not in with_instances])
    offered = _reset_checkpoints_offering(session=session, composition_names=removed, exclude=repo.id)
    out = RemovedRepository(id=repo.id, name=repo.name, url=repo.url, compositions_removed=removed,
                            compositions_kept=sorted(with_instances), offered_elsewhere=offered)
    session.delete(repo)
    session.flush()
    return out


def _reset_checkpoints_offering(*, session: Session, composition_names: Sequence[str],
                                exclude: uuid.UUID) -> dict[str, list[str]]:
    """Repositories (but ``exclude``) whose stored tip manifest lists a composition of one of these
    names get their checkpoint (``synced_refs``) reset: while the name was taken their sync left
    that composition out, and an unchanged remote would otherwise never be read again.
    Returns composition name → those repositories' names."""
    if not composition_names:
        return {}
    rows = session.execute(sa.text(
        "SELECT r.id, r.name, e.value ->> 'name' FROM repositories r "
        "CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(r.manifest -> 'compositions') = 'array' "
        "  THEN r.manifest -> 'compositions' ELSE '[]'::jsonb END) AS e "
        "WHERE r.id <> :exclude AND e.value ->> 'name' = ANY(:names) ORDER BY r.name"),
        {"exclude": exclude, "names": list(composition_names)}).all()
    if rows:
        session.execute(sa.update(Repository).where(Repository.id.in_({r[0] for r in rows}))
                        .values(synced_refs=None))
    out: dict[str, list[str]] = {}
    for _, repo_name, composition in rows:
        out.setdefault(composition, []).append(repo_name)
    return out


# --- sync planning and state ------------------------------------------------------------------


@dataclass(frozen=True)
class RepoSyncTarget:
    id: uuid.UUID
    name: str
    url: str
    synced_refs: dict[str, str] = field(default_factory=dict)
    status: str = RepoSyncStatus.NEVER_SYNCED.value
    is_active: bool = True
    next_sync_after: datetime | None = None
    default_branch: str = "main"
    #: ``repositories.source_format``: ``forced:<format>`` when `repo add --format` forced one,
    #: else the format the last sync detected (or None before the first sync).
    source_format: str | None = None


def sync_targets(*, session: Session, names: Sequence[str] | None,
                 ids: Sequence[uuid.UUID] | None = None) -> list[RepoSyncTarget]:
    """Repositories to sync: the named ones (NotFound for an unknown name), or all of them.

    ``ids`` narrows the query to those repositories (a per-repository task loads its own row,
    not the whole table); unknown ids are simply absent from the result.
    """
    # Columns, not ORM entities: no identity map, no manifest loaded (a catalog's can be large).
    t = Repository.__table__.c
    query = sa.select(t.id, t.name, t.url, t.synced_refs, t.sync_status, t.is_active, t.next_sync_after,
                      t.default_branch, t.source_format).order_by(t.name)
    if names:
        query = query.where(t.name.in_(list(names)))
    if ids is not None:
        query = query.where(t.id.in_(list(ids)))
    repos = list(session.execute(query))
    if names:
        missing = sorted(set(names) - {r.name for r in repos})
        if missing:
            raise NotFound(f"no repository named {', '.join(repr(m) for m in missing)}",
                           hint="`agentforge repo ls` lists the registered ones.")
    return [
        RepoSyncTarget(id=r.id, name=r.name, url=r.url, synced_refs=dict((r.synced_refs or {}).get("refs", {})),
                       status=r.sync_status.value, is_active=r.is_active, next_sync_after=r.next_sync_after,
                       default_branch=r.default_branch, source_format=r.source_format)
        for r in repos
    ]


def recover_stale_in_progress(*, session: Session, repository_ids: Sequence[uuid.UUID]) -> int:
    """A SYNC_IN_PROGRESS whose lock nobody holds was left by a killed run: mark it failed."""
    if not repository_ids:
        return 0
    now = datetime.now(UTC)
    res = session.execute(
        sa.update(Repository)
        .where(Repository.id.in_(list(repository_ids)), Repository.sync_status == RepoSyncStatus.SYNC_IN_PROGRESS)
        .values(sync_status=RepoSyncStatus.SYNC_FAILED, last_error="interrupted: the previous sync did not finish")
    )
    session.execute(
        sa.update(SyncOperation)
        .where(SyncOperation.repository_id.in_(list(repository_ids)),
               SyncOperation.status == SyncOperationStatus.IN_PROGRESS)
        .values(status=SyncOperationStatus.FAILED, completed_at=now,
                error_message="interrupted: the process running this sync stopped")
    )
    return int(getattr(res, "rowcount", 0) or 0)


_BEGIN_SYNC = sa.text(
    "WITH repo AS (UPDATE repositories SET sync_status = 'SYNC_IN_PROGRESS', updated_at = now() WHERE id = :rid), "
    "stale AS (UPDATE sync_operations SET status = 'FAILED', completed_at = :started, "
    "error_message = 'interrupted: the process running this sync stopped' "
    "WHERE repository_id = :rid AND status = 'IN_PROGRESS') "
    "INSERT INTO sync_operations (id, repository_id, operation, status, direction, source_commit, started_at) "
    "VALUES (:op, :rid, 'PULL_UPSTREAM', 'IN_PROGRESS', 'UPSTREAM_TO_LOCAL', :source, :started)"
)


def begin_sync(*, session: Session, repository_id: uuid.UUID, source_commit: str | None) -> uuid.UUID:
    """Mark SYNC_IN_PROGRESS and open this run's sync_operations row (one statement); the row id.

    Callers hold the repository's sync lock, so an operation of it still IN_PROGRESS belongs to a
    run that died: it is closed as failed in the same statement. (The stale-state repair before a
    sync cannot always do it: a killed run's server session may still hold the lock for a moment,
    and the repair skips a repository whose lock is held; the crash tests saw that race.)"""
    op_id = uuid.uuid4()
    session.execute(_BEGIN_SYNC, {"op": op_id, "rid": repository_id, "source": source_commit,
                                  "started": datetime.now(UTC)})
    return op_id


_FINISH_SYNC = sa.text(
    "WITH repo AS (UPDATE repositories SET sync_status = 'SYNCED', last_sync = :now, last_error = NULL, "
    "failure_count = 0, next_sync_after = NULL, synced_refs = CAST(:refs AS jsonb), source_format = :format, "
    "default_branch = COALESCE(:branch, default_branch), "
    "manifest = CASE WHEN :has_manifest THEN CAST(:manifest AS jsonb) ELSE manifest END, "
    "manifest_hash = CASE WHEN :has_manifest THEN :manifest_hash ELSE manifest_hash END, "
    "updated_at = now() WHERE id = :rid) "
    "UPDATE sync_operations SET status = 'COMPLETED', completed_at = :now, target_commit = :target, "
    "message = :message, error_message = :errors, branch_name = :branch WHERE id = :op"
)


def finish_sync_success(
    *, session: Session, repository_id: uuid.UUID, operation_id: uuid.UUID, refs: Mapping[str, str],
    head: str | None, default_branch: str | None, manifest: dict[str, Any] | None, manifest_hash: str | None,
    target_commit: str | None, message: str, problems: Sequence[str], source_format: str | None,
) -> None:
    """The checkpoint advances (status, refs, manifest) and the run's operation completes: one statement."""
    session.execute(_FINISH_SYNC, {
        "rid": repository_id, "op": operation_id, "now": datetime.now(UTC),
        "refs": encode_json({"head": head, "refs": dict(sorted(refs.items()))}), "format": source_format,
        "branch": default_branch or None, "has_manifest": manifest is not None,
        "manifest": encode_json(manifest) if manifest is not None else None, "manifest_hash": manifest_hash,
        "target": target_commit, "message": message, "errors": "\n".join(problems) if problems else None,
    })


def last_reading_operation(*, session: Session, repository_id: uuid.UUID) -> SyncOperation | None:
    """The repository's latest finished sync operation that did more than find nothing new (a no-op
    sync reads nothing, so the problems the last real read found are still the repository's)."""
    return session.scalars(sa.select(SyncOperation).where(
        SyncOperation.repository_id == repository_id, SyncOperation.operation == SyncOperationType.PULL_UPSTREAM,
        SyncOperation.status != SyncOperationStatus.IN_PROGRESS,
        SyncOperation.message.is_distinct_from(NO_OP_MESSAGE)).order_by(SyncOperation.created_at.desc()).limit(1)).first()


def why_missing(*, session: Session, name: str) -> tuple[str, str | None]:
    """For a "no component named NAME" error: (a suffix for its message, its hint), saying that the
    last sync skipped NAME and why; ("", None) when no sync did (the caller keeps its own hint)."""
    skipped = skipped_by_last_sync(session=session, name=name)
    if not skipped:
        return "", None
    return f"; the last sync skipped it: {skipped[0]}", "Fix it upstream, then `agentforge sync`."


def skipped_by_last_sync(*, session: Session, name: str, limit: int = 3) -> list[str]:
    """What the last reading sync of each repository said when it skipped a component named
    ``name`` (its problems name it ``(component 'x')``, ``(skill 'x')``, …): why a name that
    `lock` or `show` cannot find is missing. One query; at most ``limit`` lines."""
    o = SyncOperation
    rank = sa.func.row_number().over(partition_by=o.repository_id, order_by=o.created_at.desc())
    latest = (sa.select(o.error_message, rank.label("rank"))
              .where(o.operation == SyncOperationType.PULL_UPSTREAM, o.status != SyncOperationStatus.IN_PROGRESS,
                     o.message.is_distinct_from(NO_OP_MESSAGE), o.repository_id.is_not(None))
              .subquery())
    wanted = f" {name!r})"
    found: list[str] = []
    for text in session.scalars(sa.select(latest.c.error_message).where(
            latest.c.rank == 1, latest.c.error_message.contains(wanted), latest.c.error_message.contains("skipped"))):
        found += [line for line in (text or "").splitlines() if wanted in line and "skipped" in line]
    return found[:limit]


def finish_sync_failure(*, session: Session, repository_id: uuid.UUID, operation_id: uuid.UUID | None,
                        error: str, backoff_seconds: int, interrupted: bool = False) -> None:
    """Record a failure; the checkpoint (synced_refs, last_sync) does not advance.

    ``interrupted`` (the user stopped the sync, Ctrl-C): nothing is said about the repository. Its
    operation is CANCELLED, no failure is counted and no back-off set, and the repository keeps the
    state it had before this run (SYNCED, NEVER_SYNCED, or SYNC_FAILED from an earlier failure);
    the next sync reads what this one did not."""
    now = datetime.now(UTC)
    repo = session.get(Repository, repository_id)
    if repo is None:
        return
    if interrupted:
        repo.sync_status = (RepoSyncStatus.SYNC_FAILED if repo.failure_count else
                            RepoSyncStatus.SYNCED if repo.last_sync is not None else RepoSyncStatus.NEVER_SYNCED)
        repo.next_sync_after = None
    else:
        failures = repo.failure_count + 1
        delay = min(backoff_seconds * (2 ** (failures - 1)), 6 * 3600) if backoff_seconds else 0
        repo.sync_status = RepoSyncStatus.SYNC_FAILED
        repo.last_error = error
        repo.failure_count = failures
        repo.next_sync_after = now + timedelta(seconds=delay) if delay else None
    status = SyncOperationStatus.CANCELLED if interrupted else SyncOperationStatus.FAILED
    if operation_id is None:
        session.add(SyncOperation(repository_id=repository_id, operation=SyncOperationType.PULL_UPSTREAM,
                                  status=status, direction=SyncDirection.UPSTREAM_TO_LOCAL,
                                  started_at=now, completed_at=now, error_message=error))
    else:
        session.execute(sa.update(SyncOperation).where(SyncOperation.id == operation_id).values(
            status=status, completed_at=now, error_message=error))
    session.flush()


def _lock_rows_in_order(session: Session, ids: Sequence[uuid.UUID]) -> None:
    """Row-lock repositories in id order first, so concurrent multi-row writers cannot deadlock."""
    session.execute(sa.select(Repository.id).where(Repository.id.in_(list(ids)))
                    .order_by(Repository.id).with_for_update())


#: The message of a no-op sync's operation (nothing moved upstream, nothing read).
NO_OP_MESSAGE = "up to date"


def record_unchanged(*, session: Session, repository_ids: Sequence[uuid.UUID]) -> None:
    """No-op syncs: three set-based statements for all of them, no component rows touched.

    A repository that another run has meanwhile put in SYNC_IN_PROGRESS keeps that state
    (that run records its own outcome); this run still logs its "up to date" operation.
    """
    if not repository_ids:
        return
    now = datetime.now(UTC)
    ids = sorted(repository_ids)
    _lock_rows_in_order(session, ids)
    session.execute(sa.update(Repository).where(
        Repository.id.in_(ids), Repository.sync_status != RepoSyncStatus.SYNC_IN_PROGRESS).values(
        last_sync=now, sync_status=RepoSyncStatus.SYNCED, last_error=None, failure_count=0, next_sync_after=None))
    session.execute(sa.insert(SyncOperation), [
        dict(repository_id=i, operation=SyncOperationType.PULL_UPSTREAM, status=SyncOperationStatus.COMPLETED,
             direction=SyncDirection.UPSTREAM_TO_LOCAL, started_at=now, completed_at=now, message=NO_OP_MESSAGE)
        for i in ids
    ])


def record_failures(*, session: Session, failures: Mapping[uuid.UUID, str], backoff_seconds: int) -> None:
    if not failures:
        return
    _lock_rows_in_order(session, list(failures))
    for repo_id, error in sorted(failures.items()):
        finish_sync_failure(session=session, repository_id=repo_id, operation_id=None, error=error,
                            backoff_seconds=backoff_seconds)


# --- components written by sync ---------------------------------------------------------------


_INSERT_COLUMNS = (
    ("id", "uuid"), ("name", "text"), ("type", "text"), ("version", "text"), ("repository_id", "uuid"),
    ("repository_url", "text"), ("path", "text"), ("commit_hash", "text"), ("definition", "jsonb"),
    ("schema", "jsonb"), ("metadata", "jsonb"), ("tree_hash", "text"), ("release_tags", "jsonb"),
    ("is_release", "boolean"), ("is_reused_version", "boolean"),
)
_INSERT_SQL = (
    "INSERT INTO components (" + ", ".join(c for c, _ in _INSERT_COLUMNS) + ") "
    "SELECT r.id, r.name, CAST(r.type AS component_type), r.version, r.repository_id, r.repository_url, r.path, "
    "r.commit_hash, r.definition, r.schema, r.metadata, r.tree_hash, "
    "ARRAY(SELECT jsonb_array_elements_text(COALESCE(r.release_tags, '[]'::jsonb))), "
    "COALESCE(r.is_release, false), COALESCE(r.is_reused_version, false) "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(" + ", ".join(f"{c} {t}" for c, t in _INSERT_COLUMNS) + ") "
    "ON CONFLICT (repository_url, path, commit_hash) DO NOTHING"
)
_INSERT_COMPONENTS = sa.text(_INSERT_SQL)
#: More rows than this are streamed with COPY (see ``insert_components``).
INSERT_CHUNK_ROWS = 200


def _encode_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as one JSON array in ``_INSERT_COLUMNS`` order (``jsonrows.encode_rows``)."""
    return encode_rows([
        {column: row.get("metadata_" if column == "metadata" else column) for column, _ in _INSERT_COLUMNS}
        for row in rows
    ])


_COPY_COMPONENTS = (
    "COPY components (" + ", ".join(c for c, _ in _INSERT_COLUMNS) + ") FROM STDIN"
)


def _copy_values(row: Mapping[str, Any]) -> tuple[Any, ...]:
    """One row for COPY, in ``_INSERT_COLUMNS`` order; JSON columns as JSON text."""
    kind = row["type"]
    schema, metadata = row.get("schema"), row.get("metadata_")
    return (row["id"], row["name"], getattr(kind, "value", kind), row["version"], row["repository_id"],
            row["repository_url"], row["path"], row["commit_hash"], encode_json(row["definition"]),
            None if schema is None else encode_json(schema), None if metadata is None else encode_json(metadata),
            row.get("tree_hash"), list(row.get("release_tags") or ()), bool(row.get("is_release")),
            bool(row.get("is_reused_version")))


def insert_components(*, session: Session, rows: Sequence[Mapping[str, Any]]) -> int:
    """Set-based INSERT … ON CONFLICT DO NOTHING on (repository_url, path, commit_hash); the
    number of rows inserted.

    Up to ``INSERT_CHUNK_ROWS`` rows travel as one JSON parameter unpacked by
    ``jsonb_to_recordset``: one short statement that psycopg parses once, instead of a
    multi-row VALUES list with sixteen placeholders per row (whose client-side parsing cost
    more than the server's insert).

    More rows are streamed with ``COPY`` inside a savepoint: the server inserts rows as they
    arrive, and each definition's JSON is parsed once (``jsonb_to_recordset`` parses the whole
    array, then builds each column's value again): a 2,000-row catalog insert took about 15%
    less time than JSON statements of 200 rows pipelined. COPY knows no ON
    CONFLICT, so rows already stored (the sync writes only commits it has not read, under the
    repository's lock, so this means a race it did not expect) roll the savepoint back and the
    rows go through the JSON statement, which skips them. Any other error is raised: all of it
    is the session's transaction, so nothing of a failed insert remains.
    Row keys are the ORM attribute names (``metadata_`` for the ``metadata`` column).
    """
    if not rows:
        return 0
    driver = session.connection().connection.driver_connection
    if len(rows) > INSERT_CHUNK_ROWS and isinstance(driver, psycopg.Connection):
        try:
            with driver.transaction(), driver.cursor() as cursor, cursor.copy(_COPY_COMPONENTS) as copy:
                for row in rows:
                    copy.write_row(_copy_values(row))
            return len(rows)
        except psycopg.errors.UniqueViolation:
            pass  # rolled back to the savepoint: the statement below skips what is stored
        except psycopg.Error as exc:
            # As SQLAlchemy would have raised it (IntegrityError, OperationalError, …): callers and
            # retry conditions see one kind of database error whichever path ran.
            raise sa.exc.DBAPIError.instance(_COPY_COMPONENTS, None, exc, psycopg.Error) from exc
    result = session.execute(_INSERT_COMPONENTS, {"rows": _encode_rows(rows)})
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class ComponentRowFacts:
    id: uuid.UUID
    name: str
    version: str
    commit_hash: str
    tree_hash: str | None
    release_tags: tuple[str, ...]
    is_release: bool
    is_reused_version: bool
    # For path- and plugin-scoped catalog tags (``plugins/x/1.2.0``, ``plugin--v1.2.0``).
    path: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)
    # Names are unique per kind (FORMATS §1): a Tool and a Prompt may share one.
    type: str = ""


def component_facts(*, session: Session, repository_id: uuid.UUID) -> list[ComponentRowFacts]:
    c = Component.__table__.c
    rows = session.execute(sa.select(c.id, c.name, c.version, c.commit_hash, c.tree_hash, c.release_tags,
                                     c.is_release, c.is_reused_version, c.path, c.metadata, c.type)
                           .where(c.repository_id == repository_id)).all()
    return [ComponentRowFacts(r[0], r[1], r[2], r[3], r[4], tuple(r[5] or ()), r[6], r[7], r[8], dict(r[9] or {}),
                              r[10].value) for r in rows]


def rows_at_commits(*, session: Session, repository_id: uuid.UUID, commits: Sequence[str]) -> list[Component]:
    """The repository's component rows at these commits (whole rows: definitions included)."""
    if not commits:
        return []
    return list(session.scalars(sa.select(Component).where(Component.repository_id == repository_id,
                                                            Component.commit_hash.in_(list(commits)))))


def update_versions(*, session: Session, changes: Sequence[tuple[uuid.UUID, str, dict[str, Any], dict[str, Any]]]
                    ) -> None:
    """One executemany UPDATE of (row id, version, definition, metadata) for re-versioned rows."""
    if not changes:
        return
    table = sa.table("components", sa.column("id"), sa.column("version"), sa.column("definition", pg_JSONB),
                     sa.column("metadata", pg_JSONB))
    stmt = (sa.update(table).where(table.c.id == sa.bindparam("row_id"))
            .values(version=sa.bindparam("v"), definition=sa.bindparam("d"), metadata=sa.bindparam("m")))
    session.connection().execute(stmt, [dict(row_id=i, v=v, d=d, m=m) for i, v, d, m in changes])


def update_release_flags(*, session: Session, changes: Sequence[tuple[uuid.UUID, list[str], bool, bool]]) -> None:
    """One executemany UPDATE for the rows whose release facts changed."""
    if not changes:
        return
    table = sa.table("components", sa.column("id"), sa.column("release_tags", ARRAY(sa.Text)),
                     sa.column("is_release"), sa.column("is_reused_version"))
    stmt = (sa.update(table).where(table.c.id == sa.bindparam("row_id"))
            .values(release_tags=sa.bindparam("tags"), is_release=sa.bindparam("rel"),
                    is_reused_version=sa.bindparam("reused")))
    session.connection().execute(stmt, [dict(row_id=i, tags=t, rel=r, reused=u) for i, t, r, u in changes])


_MARK_OUTDATED_SQL = """
        UPDATE components AS c SET sync_status = 'OUTDATED', upstream_commit = newer.commit_hash
        FROM (
            SELECT DISTINCT ON (i.id) i.id AS installed_id, r.commit_hash
            FROM components i
            JOIN components r ON r.repository_id = i.repository_id AND r.name = i.name AND r.is_release
            WHERE i.repository_id = :rid AND i.is_installed AND i.sync_status = 'SYNCED'
              AND string_to_array(split_part(split_part(r.version, '-', 1), '+', 1), '.')::int[]
                > string_to_array(split_part(split_part(i.version, '-', 1), '+', 1), '.')::int[]
            ORDER BY i.id, string_to_array(split_part(split_part(r.version, '-', 1), '+', 1), '.')::int[] DESC
        ) AS newer
        WHERE c.id = newer.installed_id
        """
_MARK_OUTDATED = sa.text(_MARK_OUTDATED_SQL)
_AFTER_SYNC_INSTALLED = sa.text(
    "WITH outdated AS (" + _MARK_OUTDATED_SQL + ") "
    "SELECT EXISTS (SELECT 1 FROM components WHERE repository_id = :rid AND is_installed "
    "AND sync_status = 'FORKED')"
)


def mark_outdated_installed(*, session: Session, repository_id: uuid.UUID) -> int:
    """Installed components whose repository now has a newer release of them become OUTDATED."""
    res = session.execute(_MARK_OUTDATED, {"rid": repository_id})
    return int(getattr(res, "rowcount", 0) or 0)


def after_sync_installed(*, session: Session, repository_id: uuid.UUID) -> bool:
    """``mark_outdated_installed`` and ``has_forked_installed`` in one statement (what a sync does
    after writing its rows): installed SYNCED components with a newer release become OUTDATED;
    whether any installed component is FORKED (that update never touches FORKED rows, so reading
    the statement's snapshot gives the same answer as reading after it)."""
    return bool(session.execute(_AFTER_SYNC_INSTALLED, {"rid": repository_id}).scalar())


# --- tag ledger -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerEntry:
    tag: str
    first_commit: str
    current_commit: str | None
    state: TagState


def tag_ledger(*, session: Session, repository_id: uuid.UUID) -> dict[str, LedgerEntry]:
    t = RepositoryTag.__table__.c
    rows = session.execute(sa.select(t.tag, t.first_commit, t.current_commit, t.state)
                           .where(t.repository_id == repository_id))
    return {r.tag: LedgerEntry(r.tag, r.first_commit, r.current_commit, TagState(r.state)) for r in rows}


_TAGS_TABLE = cast("sa.Table", RepositoryTag.__table__)
_INSERT_TAGS = insert(_TAGS_TABLE).on_conflict_do_nothing(
    index_elements=[_TAGS_TABLE.c.repository_id, _TAGS_TABLE.c.tag])


def write_tag_ledger(
    *, session: Session, repository_id: uuid.UUID, new: Mapping[str, tuple[str, dict[str, str]]],
    moved: Mapping[str, str], deleted: Sequence[str], reappeared: Sequence[str],
) -> None:
    """new: tag → (commit, {component path: tree id}); moved: tag → new commit."""
    now = datetime.now(UTC)
    if new:
        # A Core insert of the table (its cached statement), not the ORM's bulk path: the same
        # rows and defaults, with a third of the Python work per sync.
        session.execute(_INSERT_TAGS, [
            dict(repository_id=repository_id, tag=t, first_commit=c, current_commit=c, trees=trees)
            for t, (c, trees) in sorted(new.items())
        ])
    for tag, commit in moved.items():
        session.execute(sa.update(RepositoryTag).where(RepositoryTag.repository_id == repository_id,
                                                       RepositoryTag.tag == tag)
                        .values(current_commit=commit, state=TagState.MOVED, changed_at=now))
    if deleted:
        session.execute(sa.update(RepositoryTag).where(RepositoryTag.repository_id == repository_id,
                                                       RepositoryTag.tag.in_(list(deleted)))
                        .values(state=TagState.DELETED, current_commit=None, changed_at=now))
    if reappeared:
        session.execute(sa.update(RepositoryTag).where(RepositoryTag.repository_id == repository_id,
                                                       RepositoryTag.tag.in_(list(reappeared)))
                        .values(state=TagState.OK, current_commit=RepositoryTag.first_commit, changed_at=now))


def accept_tag(*, session: Session, repository_id: uuid.UUID, tag: str) -> LedgerEntry:
    """Accept a moved tag's new commit as the release; the next sync reads it."""
    row = session.scalar(sa.select(RepositoryTag).where(RepositoryTag.repository_id == repository_id,
                                                        RepositoryTag.tag == tag))
    if row is None:
        raise NotFound(f"no tag {tag!r} in the ledger of this repository",
                       hint="`agentforge repo show NAME` lists tags.")
    if row.state != TagState.MOVED or not row.current_commit:
        raise Conflict(f"tag {tag!r} has not moved (state {row.state.value}); nothing to accept")
    old = row.first_commit
    # The old commit's rows lose the tag, and with it their release when it was their only tag:
    # until the next sync reads the accepted commit, no commit releases that version (resolving it
    # must not fall back to the commit the person just rejected).
    remaining = sa.func.array_remove(Component.release_tags, tag)
    session.execute(sa.update(Component).where(Component.repository_id == repository_id,
                                               Component.commit_hash == old)
                    .values(release_tags=remaining,
                            is_release=sa.case((sa.func.cardinality(remaining) > 0, Component.is_release),
                                               else_=sa.false())))
    row.first_commit = row.current_commit
    row.state = TagState.OK
    row.accepted_at = datetime.now(UTC)
    row.trees = {}
    # Force the next sync to process this repository in full.
    session.execute(sa.update(Repository).where(Repository.id == repository_id).values(synced_refs=None))
    session.flush()
    return LedgerEntry(row.tag, row.first_commit, row.current_commit, row.state)


def pinned_commits(*, session: Session, repository_id: uuid.UUID) -> set[str]:
    """Commits that locks or installs rely on: installed rows and locked rows of compositions."""
    installed = set(session.scalars(sa.select(Component.commit_hash).where(
        Component.repository_id == repository_id, Component.is_installed.is_(True))))
    return installed
