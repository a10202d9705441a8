"""Query and command functions over compositions, their instances, deployments and lock holds.

Every function takes a keyword-only ``session``, flushes and never commits. Deploys of one
composition are serialised with ``pg_advisory_xact_lock`` (two CLI runs, or a CLI run and a
deploy-on-merge flow, must not both decide they are the first instance).
"""

from __future__ import annotations

import re
import uuid
import zlib
from collections.abc import Collection, Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from agentforge.errors import NotFound
from models.enums import DeploymentStatus, InstanceStatus
from models.jsonrows import encode_rows
from models.tables import Composition, CompositionInstance, Deployment, LockHold, Repository

_DEPLOY_LOCK_NAMESPACE = 0xDE91


def now() -> datetime:
    return datetime.now(UTC)


def lock_composition(composition_id: uuid.UUID, *, session: Session) -> None:
    """Serialise deploy bookkeeping for one composition until the transaction ends."""
    key = zlib.crc32(composition_id.bytes) & 0x7FFFFFFF
    session.execute(sa.select(sa.func.pg_advisory_xact_lock(_DEPLOY_LOCK_NAMESPACE, key)))


# --- compositions -----------------------------------------------------------------------------


def get_composition(name: str, *, session: Session, for_update: bool = False) -> Composition:
    stmt = sa.select(Composition).where(Composition.name == name)
    if for_update:
        stmt = stmt.with_for_update()
    found = session.scalar(stmt)
    if found is None:
        raise NotFound(f"no composition named {name!r}",
                       hint="`agentforge compose ls` lists them; `agentforge compose import FILE` adds one.")
    return found


def list_compositions(*, session: Session) -> list[Composition]:
    return list(session.scalars(sa.select(Composition).order_by(Composition.name)))


def find_composition(name: str, *, session: Session) -> Composition | None:
    return session.scalar(sa.select(Composition).where(Composition.name == name))


def instances_by_composition(source_repo: str, *, session: Session, except_names: Collection[str] = (),
                             synced_only: bool = False) -> dict[str, list[str]]:
    """The compositions synced from ``source_repo`` (``compositions.source_repo``), each with its
    instances as ``composition/instance (STATUS)`` (an empty list: none). ``except_names`` are
    left out; ``synced_only`` leaves out a marketplace's linked external plugins (``metadata.external``)."""
    query = (sa.select(Composition.name, CompositionInstance.name, CompositionInstance.status)
             .outerjoin(CompositionInstance, CompositionInstance.composition_id == Composition.id)
             .where(Composition.source_repo == source_repo)
             .order_by(Composition.name, CompositionInstance.name))
    if except_names:
        query = query.where(Composition.name.notin_(list(except_names)))
    if synced_only:
        query = query.where(Composition.definition["metadata"]["external"].is_(None))
    rows = session.execute(query).all()
    out: dict[str, list[str]] = {}
    for composition, instance, status in rows:
        refs = out.setdefault(composition, [])
        if instance is not None:
            refs.append(f"{composition}/{instance} ({status.value})")
    return out


def delete_from_source(source_repo: str, *, session: Session, names: Sequence[str]) -> list[str]:
    """Delete the named compositions synced from ``source_repo``; the names deleted, sorted.

    Their instances, deployments and lock holds go with them (ON DELETE CASCADE): callers keep
    the compositions that have instances."""
    if not names:
        return []
    deleted = session.scalars(sa.delete(Composition).where(
        Composition.source_repo == source_repo, Composition.name.in_(list(names))).returning(Composition.name))
    return sorted(deleted)


def name_holders(*, session: Session, names: Sequence[str]) -> dict[str, tuple[str | None, str | None, str | None]]:
    """Who holds each of these composition names: name → (its ``source_repo``, that repository's
    registered name, the repository a marketplace's pinned external plugin came from); a name
    nobody holds is absent."""
    rows = session.execute(
        sa.select(Composition.name, Composition.source_repo, Repository.name,
                  Composition.definition["metadata"]["external"]["repository"].astext)
        .outerjoin(Repository, Repository.url == Composition.source_repo)
        .where(Composition.name.in_(list(names))))
    return {name: (source, repo_name, external) for name, source, repo_name, external in rows}


_UPSERT_SYNCED_SQL = sa.text(
    "INSERT INTO compositions (name, version, description, definition, source_repo, source_commit) "
    "SELECT r.name, r.version, r.description, r.definition, CAST(:source_repo AS varchar), "
    "CAST(:source_commit AS varchar) "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r(name text, version text, description text, definition jsonb) "
    "ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, description = EXCLUDED.description, "
    "definition = EXCLUDED.definition, source_commit = EXCLUDED.source_commit, updated_at = now() "
    "WHERE compositions.source_repo = EXCLUDED.source_repo "
    "RETURNING name"
)


def upsert_synced(*, session: Session, source_repo: str, source_commit: str,
                  rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert or refresh compositions synced from ``source_repo`` (rows of ``name``, ``version``,
    ``description``, ``definition``) in one statement; a name held by another source (a file,
    another repository) is left alone. The names written (inserted or refreshed).

    The rows travel as one JSON parameter (``jsonrows.encode_rows``): a marketplace's 300
    plugins took 60 ms through the ORM's bulk insert with RETURNING, a few ms so.
    """
    if not rows:
        return set()
    names = session.execute(_UPSERT_SYNCED_SQL, {"rows": encode_rows(rows), "source_repo": source_repo,
                                                 "source_commit": source_commit}).scalars()
    return set(names)


def insert_composition(*, session: Session, name: str, version: str, description: str | None,
                       definition: dict[str, Any]) -> Composition:
    row = Composition(name=name, version=version, description=description, definition=definition)
    session.add(row)
    session.flush()
    return row


def mark_deployed(composition_id: uuid.UUID, environment: str, *, session: Session) -> None:
    session.execute(sa.update(Composition).where(Composition.id == composition_id)
                    .values(is_deployed=True, deployed_at=now(), environment=environment))


def refresh_deployed_flag(composition_id: uuid.UUID, *, session: Session) -> None:
    """``is_deployed`` stays true while any instance of the composition runs."""
    running = session.scalar(sa.select(sa.func.count()).select_from(CompositionInstance).where(
        CompositionInstance.composition_id == composition_id,
        CompositionInstance.status.in_([InstanceStatus.RUNNING, InstanceStatus.UPDATING, InstanceStatus.STARTING])))
    session.execute(sa.update(Composition).where(Composition.id == composition_id)
                    .values(is_deployed=bool(running)))


# --- instances --------------------------------------------------------------------------------


def ensure_instance(*, session: Session, composition_id: uuid.UUID, name: str, environment: str
                    ) -> CompositionInstance:
    """The instance row (created STOPPED with an empty config when new), locked for update."""
    session.execute(insert(CompositionInstance).values(
        composition_id=composition_id, name=name, config={}, environment=environment,
        status=InstanceStatus.STOPPED).on_conflict_do_nothing(index_elements=["composition_id", "name"]))
    row = session.scalar(sa.select(CompositionInstance).where(
        CompositionInstance.composition_id == composition_id, CompositionInstance.name == name)
        .with_for_update().execution_options(populate_existing=True))
    assert row is not None
    return row


_ID_PREFIX = re.compile(r"[0-9a-fA-F][0-9a-fA-F-]{7,35}")


def get_instance(ref: str, *, session: Session, for_update: bool = False) -> CompositionInstance:
    """An instance by id, by the start of its id as `compose instances` shows it (8 or more hex
    digits, when only one instance's id starts so), or by ``composition/name``."""
    stmt = sa.select(CompositionInstance)
    try:
        stmt = stmt.where(CompositionInstance.id == uuid.UUID(ref))
    except ValueError:
        comp, sep, name = ref.partition("/")
        if _ID_PREFIX.fullmatch(ref):
            matches = list(session.scalars(sa.select(CompositionInstance.id).where(
                sa.cast(CompositionInstance.id, sa.String).like(ref.lower() + "%")).limit(2)))
            if len(matches) > 1:
                raise NotFound(f"instance id {ref!r} is ambiguous", code="AMBIGUOUS_INSTANCE",
                               hint="Give more of the id, or COMPOSITION/INSTANCE.") from None
            if not matches:
                raise NotFound(f"no instance {ref!r}", hint="`agentforge compose instances` lists them.") from None
            stmt = stmt.where(CompositionInstance.id == matches[0])
        elif not sep or not comp or not name:
            raise NotFound(f"no instance {ref!r}", hint="Name it by id or as COMPOSITION/INSTANCE "
                                                        "(`agentforge compose instances` lists them).") from None
        else:
            stmt = stmt.join(Composition).where(Composition.name == comp, CompositionInstance.name == name)
    if for_update:
        stmt = stmt.with_for_update(of=CompositionInstance).execution_options(populate_existing=True)
    row = session.scalar(stmt)
    if row is None:
        raise NotFound(f"no instance {ref!r}", hint="`agentforge compose instances` lists them.")
    return row


def list_instances(*, session: Session, composition: str | None = None, environment: str | None = None
                   ) -> list[tuple[CompositionInstance, str]]:
    """(instance, composition name) pairs, by composition then instance name."""
    stmt = (sa.select(CompositionInstance, Composition.name).join(Composition)
            .order_by(Composition.name, CompositionInstance.name))
    if composition is not None:
        stmt = stmt.where(Composition.name == composition)
    if environment is not None:
        stmt = stmt.where(CompositionInstance.environment == environment)
    return [(i, n) for i, n in session.execute(stmt)]


def update_instance(instance_id: uuid.UUID, *, session: Session, **values: Any) -> None:
    session.execute(sa.update(CompositionInstance).where(CompositionInstance.id == instance_id).values(**values))


# --- deployments ------------------------------------------------------------------------------


def add_deployment(*, session: Session, composition_id: uuid.UUID, instance_id: uuid.UUID, environment: str,
                   lock_hash: str, lock_file: dict[str, Any], bundle_path: str) -> uuid.UUID:
    row = Deployment(composition_id=composition_id, instance_id=instance_id, environment=environment,
                     lock_hash=lock_hash, lock_file=lock_file, bundle_path=bundle_path,
                     status=DeploymentStatus.IN_PROGRESS)
    session.add(row)
    session.flush()
    return row.id


def fail_unfinished_deployments(instance_id: uuid.UUID, *, session: Session, keep: uuid.UUID, error: str) -> int:
    """Deploys of the instance still IN_PROGRESS besides ``keep``: their process died; FAILED now."""
    result = session.execute(sa.update(Deployment).where(
        Deployment.instance_id == instance_id, Deployment.id != keep,
        Deployment.status == DeploymentStatus.IN_PROGRESS,
    ).values(status=DeploymentStatus.FAILED, error_message=error, completed_at=now()))
    return int(getattr(result, "rowcount", 0) or 0)


def finish_deployment(deployment_id: uuid.UUID, status: DeploymentStatus, *, session: Session,
                      error_message: str | None = None) -> None:
    row = session.get(Deployment, deployment_id)
    assert row is not None
    row.status = status
    row.error_message = error_message
    row.completed_at = now()
    if status is DeploymentStatus.HEALTHY:
        # The instance's older healthy deploys stay in history as candidates for rollback.
        session.execute(sa.update(Deployment).where(
            Deployment.instance_id == row.instance_id, Deployment.id != row.id,
            Deployment.status == DeploymentStatus.HEALTHY).values(status=DeploymentStatus.SUPERSEDED))
    session.flush()


def last_good_deployment(composition_id: uuid.UUID, environment: str, *, session: Session,
                         excluding: Sequence[str]) -> Deployment | None:
    """The newest deploy that became healthy, of a lock other than ``excluding`` (and not held)."""
    held = sa.select(LockHold.lock_hash).where(LockHold.composition_id == composition_id,
                                               LockHold.environment == environment)
    return session.scalar(
        sa.select(Deployment).where(
            Deployment.composition_id == composition_id, Deployment.environment == environment,
            Deployment.status.in_([DeploymentStatus.HEALTHY, DeploymentStatus.SUPERSEDED]),
            Deployment.lock_hash.not_in(list(excluding)), Deployment.lock_hash.not_in(held))
        .order_by(Deployment.created_at.desc(), Deployment.completed_at.desc().nulls_last()).limit(1))


def deployments_of(composition_id: uuid.UUID, *, session: Session) -> list[Deployment]:
    return list(session.scalars(sa.select(Deployment).where(Deployment.composition_id == composition_id)
                                .order_by(Deployment.created_at)))


def mark_rolled_back(composition_id: uuid.UUID, environment: str, lock_hashes: Sequence[str], *,
                     session: Session) -> None:
    session.execute(sa.update(Deployment).where(
        Deployment.composition_id == composition_id, Deployment.environment == environment,
        Deployment.lock_hash.in_(list(lock_hashes)),
        Deployment.status.in_([DeploymentStatus.HEALTHY, DeploymentStatus.SUPERSEDED]))
        .values(status=DeploymentStatus.ROLLED_BACK))


# --- lock holds -------------------------------------------------------------------------------


def hold_lock(*, session: Session, composition_id: uuid.UUID, environment: str, lock_hash: str,
              reason: str | None) -> None:
    session.execute(insert(LockHold).values(composition_id=composition_id, environment=environment,
                                            lock_hash=lock_hash, reason=reason)
                    .on_conflict_do_nothing(index_elements=["composition_id", "environment", "lock_hash"]))


def release_holds(*, session: Session, composition_id: uuid.UUID, environment: str,
                  lock_hash: str | None = None) -> list[str]:
    """Lift one hold (a hash or a unique prefix of one) or all of the environment's; returns those lifted."""
    stmt = sa.delete(LockHold).where(LockHold.composition_id == composition_id, LockHold.environment == environment)
    if lock_hash:
        stmt = stmt.where(LockHold.lock_hash.startswith(lock_hash, autoescape=True))
    return list(session.scalars(stmt.returning(LockHold.lock_hash)))


def held_hashes(composition_id: uuid.UUID, environment: str, *, session: Session) -> set[str]:
    return set(session.scalars(sa.select(LockHold.lock_hash).where(
        LockHold.composition_id == composition_id, LockHold.environment == environment)))
