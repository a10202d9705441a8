"""The repository URL CHECK accepts exactly what `agentforge.core.urls` produces (http:// included,
for repositories added with --allow-insecure).

Revision ID: 0201
Revises: 0200
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0201"
down_revision: str | None = "0200"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = '^(https?://[a-z0-9]([a-z0-9-]*[a-z0-9])?([.][a-z0-9]([a-z0-9-]*[a-z0-9])?)*(:[0-9]{1,5})?(/([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)){2,}|git@[a-z0-9]([a-z0-9-]*[a-z0-9])?([.][a-z0-9]([a-z0-9-]*[a-z0-9])?)*:([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)(/([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*))+|file:///(([A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*|[.][A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*)(/([A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*|[.][A-Za-z0-9_,+=@~-][A-Za-z0-9_.,+=@~-]*))*)?)$'
OLD = (
    "^(https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+){2,}"
    "|git@[A-Za-z0-9.-]+:[A-Za-z0-9._~-]+/[A-Za-z0-9._~-]+"
    "|file://(/[^/[:cntrl:]]+)+)$"
)


def upgrade() -> None:
    op.drop_constraint("check_repo_url", "repositories", type_="check")
    op.create_check_constraint("check_repo_url", "repositories", f"url ~ '{NEW}'")


def downgrade() -> None:
    op.drop_constraint("check_repo_url", "repositories", type_="check")
    op.create_check_constraint("check_repo_url", "repositories", f"url ~ '{OLD}'")
