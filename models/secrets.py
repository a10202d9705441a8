"""Encrypted values in ``system_config`` (``{"ciphertext": "fernet:v1:…"}``), e.g. ``github.token``.

These functions move ciphertexts only: encryption and decryption live in
:mod:`agentforge.secrets`. A value without the ciphertext prefix is refused on the way in,
so no code path can store a plaintext secret here. Keyword-only ``session``; flush, never commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from agentforge.errors import InternalError, NotFound
from agentforge.secrets import is_ciphertext
from models.tables import Repository, SystemConfig

__all__ = [
    "delete_encrypted_value",
    "get_encrypted_value",
    "get_repository_token_ciphertext",
    "set_encrypted_value",
    "set_repository_token_ciphertext",
]


def set_encrypted_value(key: str, ciphertext: str, *, session: Session, description: str | None = None) -> None:
    if not is_ciphertext(ciphertext):
        # A programming error, and the message must not echo the value (it may be a token).
        raise InternalError(f"system_config {key!r}: refusing to store a value that is not a ciphertext")
    stmt = insert(SystemConfig).values(key=key, value={"ciphertext": ciphertext}, description=description)
    session.execute(stmt.on_conflict_do_update(
        index_elements=[SystemConfig.key],
        set_={"value": stmt.excluded.value, "description": stmt.excluded.description, "updated_at": sa.func.now()},
    ))
    session.flush()


def get_encrypted_value(key: str, *, session: Session) -> str | None:
    value = session.scalar(sa.select(SystemConfig.value).where(SystemConfig.key == key))
    if isinstance(value, Mapping) and isinstance(value.get("ciphertext"), str):
        return str(value["ciphertext"])
    return None


def delete_encrypted_value(key: str, *, session: Session) -> bool:
    result = session.execute(sa.delete(SystemConfig).where(SystemConfig.key == key))
    session.flush()
    return bool(getattr(result, "rowcount", 0))


def set_repository_token_ciphertext(repository_id: uuid.UUID, ciphertext: str | None, *, session: Session) -> None:
    """Set (or with None clear) ``repositories.access_token``; only ciphertexts are accepted."""
    if ciphertext is not None and not is_ciphertext(ciphertext):
        raise InternalError(f"repository {repository_id}: refusing to store an access token that is not a ciphertext")
    result = session.execute(sa.update(Repository).where(Repository.id == repository_id)
                             .values(access_token=ciphertext))
    if not getattr(result, "rowcount", 0):
        raise NotFound(f"repository {repository_id} not found")
    session.flush()


def get_repository_token_ciphertext(repository_id: uuid.UUID, *, session: Session) -> str | None:
    return session.scalar(sa.select(Repository.access_token).where(Repository.id == repository_id))
