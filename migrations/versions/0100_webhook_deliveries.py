"""Webhook deliveries: the durable record of every accepted GitHub delivery (deploy-on-merge).

Revision ID: 0100
Revises: 0001
"""
from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0100'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('webhook_deliveries',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('github_delivery', sa.String(length=100), nullable=True),
    sa.Column('event', sa.String(length=50), nullable=False),
    sa.Column('repository_id', sa.UUID(), nullable=True),
    sa.Column('repository_name', sa.String(length=255), nullable=False),
    sa.Column('ref', sa.String(length=255), nullable=True),
    sa.Column('head_commit', sa.String(length=40), nullable=True),
    sa.Column('status', sa.String(length=20), server_default='RECEIVED', nullable=False),
    sa.Column('attempts', sa.Integer(), server_default='0', nullable=False),
    sa.Column('flow_run_id', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("status IN ('RECEIVED', 'DISPATCHING', 'STARTED', 'FAILED')",
                       name='check_webhook_delivery_status'),
    sa.CheckConstraint("body_sha256 ~ '^[a-f0-9]{64}$'", name='check_webhook_body_sha256'),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('webhook_deliveries_repository_id_fkey'),
                            ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('webhook_deliveries_pkey')),
    sa.UniqueConstraint('body_sha256', name=op.f('webhook_deliveries_body_sha256_key')),
    )
    op.create_index('ix_webhook_deliveries_pending', 'webhook_deliveries', ['next_attempt_at'], unique=False,
                    postgresql_where=sa.text("status IN ('RECEIVED', 'DISPATCHING')"))
    op.create_index('ix_webhook_deliveries_repository_id', 'webhook_deliveries', ['repository_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_webhook_deliveries_repository_id', table_name='webhook_deliveries')
    op.drop_index('ix_webhook_deliveries_pending', table_name='webhook_deliveries',
                  postgresql_where=sa.text("status IN ('RECEIVED', 'DISPATCHING')"))
    op.drop_table('webhook_deliveries')
