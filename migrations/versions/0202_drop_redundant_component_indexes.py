"""Drop four single-column indexes on components that the design's own indexes make redundant.

The design's Prisma model carries ``@@index`` on ``type``, ``isInstalled``, ``hasLocalChanges`` and
``syncStatus``; its SQL section adds ``idx_components_sync_status`` (the same index as the last
one) and partial indexes for the selective cases (``is_installed = true``,
``has_local_changes = true``). Every component row written paid for all twelve indexes; these
four answer no query the others do not (``type`` has three values, the booleans are only ever
looked up on their rare ``true`` side, which the partial indexes cover, and the sync status one
is a duplicate). Measured: a 2,000-row catalog insert spent about a sixth of its server time in
them. See docs/database-schema.md "Indexes we do not create".

Revision ID: 0202
Revises: 0201
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0202"
down_revision: str | None = "0201"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DROPPED = (
    ("ix_components_type", "type"),
    ("ix_components_is_installed", "is_installed"),
    ("ix_components_has_local_changes", "has_local_changes"),
    ("ix_components_sync_status", "sync_status"),
)


def upgrade() -> None:
    for name, _column in DROPPED:
        op.drop_index(name, table_name="components")


def downgrade() -> None:
    for name, column in DROPPED:
        op.create_index(name, "components", [column], unique=False)
