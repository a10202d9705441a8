"""The repository URL CHECK accepts percent-escapes in local paths (`file:///srv/my%20repos/x`):
`agentforge.core.urls` now encodes a local path's other characters (a space, a non-ASCII letter)
instead of refusing the path.

Revision ID: 0203
Revises: 0202
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0203"
down_revision: str | None = "0202"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = '^(https?://[a-z0-9]([a-z0-9-]*[a-z0-9])?([.][a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?(/([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)){2,}|git@[a-z0-9]([a-z0-9-]*[a-z0-9])?([.][a-z0-9]([a-z0-9-]*[a-z0-9])?)*:([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)(/([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*))+|file:///((([A-Za-z0-9_,+=@~-]|%[0-9A-F]{2})([A-Za-z0-9_.,+=@~-]|%[0-9A-F]{2})*|[.]([A-Za-z0-9_,+=@~-]|%[0-9A-F]{2})([A-Za-z0-9_.,+=@~-]|%[0-9A-F]{2})*)(/(([A-Za-z0-9_,+=@~-]|%[0-9A-F]{2})([A-Za-z0-9_.,+=@~-]|%[0-9A-F]{2})*|[.]([A-Za-z0-9_,+=@~-]|%[0-9A-F]{2})([A-Za-z0-9_.,+=@~-]|%[0-9A-F]{2})*))*)?)$'
# 0201's, for downgrade (a repository registered with an escaped path blocks it: remove it first).
OLD = '^(https?://[a-z0-9]([a-z0-9-]*[a-z0-9])?([.][a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?(/([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)){2,}|git@[a-z0-9]([a-z0-9-]*[a-z0-9])?([.][a-z0-9]([a-z0-9-]*[a-z0-9])?)*:([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)(/([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*))+|file:///(([A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*|[.][A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*)(/([A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*|[.][A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*))*)?)$'


def upgrade() -> None:
    op.drop_constraint("check_repo_url", "repositories", type_="check")
    op.create_check_constraint("check_repo_url", "repositories", f"url ~ '{NEW}'")


def downgrade() -> None:
    op.drop_constraint("check_repo_url", "repositories", type_="check")
    op.create_check_constraint("check_repo_url", "repositories", f"url ~ '{OLD}'")
