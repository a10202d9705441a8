"""Queries and commands over ``user_settings``, ``system_config`` and repository state flags.

Keyword-only ``session``; functions flush and never commit (the caller's ``session_scope`` does).

Trust: ``user_settings.trusted_repositories`` (normalised URLs) is the one store. A repository
registered with ``repo add`` counts as trusted, so migration 0200 adds triggers that append a
new repository's URL to every user's list and seed a new user's list with every registered
URL; :func:`trusted_urls` gives the same answer for a user who has no row yet.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from models.repositories import get_repository
from models.tables import Repository, SystemConfig, UserSettings


def get_user_settings(*, session: Session, user_id: str) -> UserSettings | None:
    return session.scalar(sa.select(UserSettings).where(UserSettings.user_id == user_id))


def ensure_user_settings(*, session: Session, user_id: str) -> UserSettings:
    """The user's row, created with the defaults when missing (idempotent under concurrency)."""
    session.execute(insert(UserSettings).values(user_id=user_id)
                    .on_conflict_do_nothing(index_elements=[UserSettings.user_id]))
    row = session.scalar(sa.select(UserSettings).where(UserSettings.user_id == user_id)
                         .execution_options(populate_existing=True))
    assert row is not None
    return row


def update_user_settings(*, session: Session, user_id: str, values: Mapping[str, Any]) -> None:
    """Set columns of the user's row (created first when missing)."""
    ensure_user_settings(session=session, user_id=user_id)
    session.execute(sa.update(UserSettings).where(UserSettings.user_id == user_id).values(**dict(values)))
    session.flush()


def trusted_urls(*, session: Session, user_id: str) -> set[str]:
    """The repository URLs the user trusts (every registered one when the user has no row yet)."""
    row = session.scalar(sa.select(UserSettings.trusted_repositories).where(UserSettings.user_id == user_id))
    if row is None:
        return set(session.scalars(sa.select(Repository.url)))
    return set(row)


def set_trusted(*, session: Session, user_id: str, url: str, trusted: bool) -> bool:
    """Add or remove ``url`` from the user's trusted list; True when that changed it."""
    ensure_user_settings(session=session, user_id=user_id)
    column = UserSettings.trusted_repositories
    if trusted:
        result = session.execute(sa.update(UserSettings).where(
            UserSettings.user_id == user_id, sa.not_(sa.literal(url) == sa.any_(column)))
            .values(trusted_repositories=sa.func.array_append(column, url)))
    else:
        result = session.execute(sa.update(UserSettings).where(
            UserSettings.user_id == user_id, sa.literal(url) == sa.any_(column))
            .values(trusted_repositories=sa.func.array_remove(column, url)))
    session.flush()
    return bool(getattr(result, "rowcount", 0))


def set_repository_active(*, session: Session, name: str, active: bool) -> tuple[Repository, bool]:
    """Enable or disable a repository by name; (row, whether it changed)."""
    repo = get_repository(session=session, name=name)
    changed = repo.is_active != active
    repo.is_active = active
    session.flush()
    return repo, changed


# --- system_config ------------------------------------------------------------------------------


def get_system_value(*, session: Session, key: str) -> tuple[bool, Any]:
    """(present, value) of a system_config key."""
    row = session.execute(sa.select(SystemConfig.value).where(SystemConfig.key == key)).first()
    return (True, row[0]) if row is not None else (False, None)


def set_system_value(*, session: Session, key: str, value: Any, description: str | None) -> None:
    stmt = insert(SystemConfig).values(key=key, value=value, description=description)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[SystemConfig.key],
        set_={"value": stmt.excluded.value, "description": stmt.excluded.description,
              "updated_at": sa.func.now()}))
    session.flush()


def delete_system_value(*, session: Session, key: str) -> bool:
    result = session.execute(sa.delete(SystemConfig).where(SystemConfig.key == key))
    session.flush()
    return bool(getattr(result, "rowcount", 0))


def system_values(*, session: Session, keys: list[str]) -> dict[str, Any]:
    return {k: v for k, v in session.execute(
        sa.select(SystemConfig.key, SystemConfig.value).where(SystemConfig.key.in_(keys)))}
