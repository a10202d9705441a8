"""Compositions: rows from files and from synced repositories."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from agentforge.reader import CompositionRecord
from models import Composition


def upsert_from_repository(*, session: Session, repository_url: str, commit: str,
                           compositions: Sequence[CompositionRecord]) -> int:
    """Compositions listed in a manifest at the tip: insert or refresh (local overrides kept).

    A composition of the same name imported from a file or another repository is left alone.
    """
    if not compositions:
        return 0
    rows: list[dict[str, Any]] = [
        dict(name=c.name, version=c.version, description=c.description, definition=c.definition,
             source_repo=repository_url, source_commit=commit)
        for c in compositions
    ]
    stmt = insert(Composition)
    stmt = stmt.on_conflict_do_update(
        index_elements=[Composition.name],
        set_={"version": stmt.excluded.version, "description": stmt.excluded.description,
              "definition": stmt.excluded.definition, "source_commit": stmt.excluded.source_commit,
              "updated_at": sa.func.now()},
        where=(Composition.source_repo == stmt.excluded.source_repo),
    )
    session.execute(stmt, rows)
    return len(rows)
