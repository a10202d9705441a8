"""Query and command functions over ``webhook_deliveries`` (keyword-only ``session``, flush, never commit).

The dispatcher's claim is a lease: ``claim_pending`` moves rows to ``DISPATCHING`` with
``FOR UPDATE SKIP LOCKED`` (two receivers never claim the same row) and sets
``next_attempt_at`` to the lease's end. A receiver that crashes after claiming leaves the row
``DISPATCHING`` with an expired lease, so the next claim takes it again; the Prefect run is
created with the body hash as its idempotency key, so a second dispatch finds the first run
instead of starting another.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.tables import Repository, WebhookDelivery

RECEIVED = "RECEIVED"
DISPATCHING = "DISPATCHING"
STARTED = "STARTED"
FAILED = "FAILED"


@dataclass(frozen=True)
class RepositoryRef:
    """What the receiver needs to know about a registered repository."""

    id: uuid.UUID
    name: str
    url: str
    default_branch: str
    is_active: bool


@dataclass(frozen=True)
class PendingDelivery:
    id: uuid.UUID
    body_sha256: str
    event: str
    repository_name: str
    ref: str | None
    head_commit: str | None
    attempts: int


def find_repository(*, session: Session, urls: list[str]) -> RepositoryRef | None:
    """The registered repository whose (normalised) URL is one of ``urls``."""
    if not urls:
        return None
    row = session.scalar(sa.select(Repository).where(Repository.url.in_(urls)).order_by(Repository.name).limit(1))
    if row is None:
        return None
    return RepositoryRef(id=row.id, name=row.name, url=row.url, default_branch=row.default_branch,
                         is_active=row.is_active)


def record_delivery(*, session: Session, body_sha256: str, github_delivery: str | None, event: str,
                    repository: RepositoryRef, ref: str | None, head_commit: str | None) -> bool:
    """Insert the delivery; False when a delivery with the same body hash exists (a replay)."""
    stmt = insert(WebhookDelivery).values(
        body_sha256=body_sha256, github_delivery=github_delivery, event=event, repository_id=repository.id,
        repository_name=repository.name, ref=ref, head_commit=head_commit, status=RECEIVED,
    ).on_conflict_do_nothing(index_elements=["body_sha256"]).returning(WebhookDelivery.id)
    return session.scalar(stmt) is not None


def claim_pending(*, session: Session, limit: int, lease_seconds: float) -> list[PendingDelivery]:
    """Claim up to ``limit`` due deliveries (new ones, and leases that ran out), oldest first."""
    now = datetime.now(UTC)
    due = (sa.select(WebhookDelivery.id)
           .where(WebhookDelivery.status.in_([RECEIVED, DISPATCHING]), WebhookDelivery.next_attempt_at <= now)
           .order_by(WebhookDelivery.received_at).limit(limit)
           .with_for_update(skip_locked=True).scalar_subquery())
    rows = session.execute(
        sa.update(WebhookDelivery).where(WebhookDelivery.id.in_(due))
        .values(status=DISPATCHING, attempts=WebhookDelivery.attempts + 1,
                next_attempt_at=now + timedelta(seconds=lease_seconds))
        .returning(WebhookDelivery.id, WebhookDelivery.body_sha256, WebhookDelivery.event,
                   WebhookDelivery.repository_name, WebhookDelivery.ref, WebhookDelivery.head_commit,
                   WebhookDelivery.attempts, WebhookDelivery.received_at)).all()
    rows = sorted(rows, key=lambda r: r.received_at)
    return [PendingDelivery(id=r.id, body_sha256=r.body_sha256, event=r.event, repository_name=r.repository_name,
                            ref=r.ref, head_commit=r.head_commit, attempts=r.attempts) for r in rows]


def mark_started(delivery_id: uuid.UUID, flow_run_id: str, *, session: Session) -> None:
    session.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
        status=STARTED, flow_run_id=flow_run_id, dispatched_at=sa.func.now(), error_message=None))


def mark_retry(delivery_id: uuid.UUID, error: str, *, session: Session, retry_in_seconds: float,
               give_up: bool) -> None:
    """A failed dispatch: try again later (back to RECEIVED), or FAILED after too many attempts."""
    session.execute(sa.update(WebhookDelivery).where(WebhookDelivery.id == delivery_id).values(
        status=FAILED if give_up else RECEIVED, error_message=error[:2000],
        next_attempt_at=datetime.now(UTC) + timedelta(seconds=retry_in_seconds)))


def delivery_counts(*, session: Session) -> dict[str, int]:
    """Deliveries by status (for `doctor`-style reports and tests)."""
    rows = session.execute(sa.select(WebhookDelivery.status, sa.func.count()).group_by(WebhookDelivery.status))
    return {status: int(n) for status, n in rows.tuples()}
