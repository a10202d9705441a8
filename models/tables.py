"""The schema of ``shared/seed/database-schema.md`` as SQLAlchemy 2.x typed models.

Column names are the design's fields in snake_case. Deliberate differences from the design
(each documented in the README): ``repositories.url`` is UNIQUE (forks reference it); the URL
CHECK accepts the three normalised URL forms; every timestamp is ``timestamptz``;
``sync_operations`` gains ``repository_id`` and its ``component_id`` / ``source_commit`` are
nullable (a repository sync is one operation per repository, and a failed fetch has no
commit). Columns and tables marked "AgentForge addition" are ours, added by later migrations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from agentforge.core.urls import DB_URL_CHECK_REGEX
from models.enums import (
    ChangeType,
    ComponentSyncStatus,
    ComponentType,
    DependencyType,
    DeploymentStatus,
    InstanceStatus,
    RepoSyncStatus,
    RepoType,
    SyncDirection,
    SyncOperationStatus,
    SyncOperationType,
    TagState,
)

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(constraint_name)s",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING)
    type_annotation_map = {
        dict[str, Any]: pg.JSONB,
        list[str]: pg.ARRAY(sa.Text),
        datetime: sa.DateTime(timezone=True),
    }


def _enum(enum_cls: type, name: str) -> sa.Enum:
    return sa.Enum(enum_cls, name=name, values_callable=lambda e: [m.value for m in e], validate_strings=True)


def _uuid_pk() -> Mapped[uuid.UUID]:
    return mapped_column(pg.UUID(as_uuid=True), primary_key=True, default=uuid.uuid4,
                         server_default=sa.text("gen_random_uuid()"))


def _created() -> Mapped[datetime]:
    return mapped_column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now())


def _updated() -> Mapped[datetime]:
    return mapped_column(sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now(),
                         onupdate=sa.func.now())


REPO_TYPE = _enum(RepoType, "repo_type")
REPO_SYNC_STATUS = _enum(RepoSyncStatus, "repo_sync_status")
COMPONENT_TYPE = _enum(ComponentType, "component_type")
COMPONENT_SYNC_STATUS = _enum(ComponentSyncStatus, "component_sync_status")
DEPENDENCY_TYPE = _enum(DependencyType, "dependency_type")
CHANGE_TYPE = _enum(ChangeType, "change_type")
SYNC_OPERATION_TYPE = _enum(SyncOperationType, "sync_operation_type")
SYNC_OPERATION_STATUS = _enum(SyncOperationStatus, "sync_operation_status")
SYNC_DIRECTION = _enum(SyncDirection, "sync_direction")
INSTANCE_STATUS = _enum(InstanceStatus, "instance_status")
TAG_STATE = _enum(TagState, "tag_state")
DEPLOYMENT_STATUS = _enum(DeploymentStatus, "deployment_status")


class Repository(Base):
    __tablename__ = "repositories"
    __table_args__ = (
        sa.CheckConstraint(f"url ~ '{DB_URL_CHECK_REGEX}'", name="check_repo_url"),
        sa.Index("ix_repositories_type", "type"),
        sa.Index("ix_repositories_is_active", "is_active"),
        sa.Index("ix_repositories_last_sync", "last_sync"),
        sa.Index("idx_repositories_url", "url"),
        sa.Index("idx_repositories_type_active", "type", "is_active"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(255), unique=True, nullable=False)
    url: Mapped[str] = mapped_column(sa.String(500), unique=True, nullable=False)
    type: Mapped[RepoType] = mapped_column(REPO_TYPE, nullable=False)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True, server_default=sa.true())
    default_branch: Mapped[str] = mapped_column(sa.String(100), nullable=False, default="main",
                                                server_default="main")
    last_sync: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sync_status: Mapped[RepoSyncStatus] = mapped_column(
        REPO_SYNC_STATUS, nullable=False, default=RepoSyncStatus.NEVER_SYNCED,
        server_default=RepoSyncStatus.NEVER_SYNCED.value)
    manifest: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    manifest_hash: Mapped[str | None] = mapped_column(sa.String(64))
    has_write_access: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                                   server_default=sa.false())
    access_token: Mapped[str | None] = mapped_column(sa.Text)  # encrypted, never plaintext
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    # AgentForge additions: the sync checkpoint and failure back-off.
    synced_refs: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    failure_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    next_sync_after: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    source_format: Mapped[str | None] = mapped_column(sa.String(50))

    # The database cascades deletes (ON DELETE CASCADE): the ORM must not NULL the keys first.
    components: Mapped[list[Component]] = relationship(back_populates="repository", passive_deletes=True)
    forks: Mapped[list[Fork]] = relationship(back_populates="repository", passive_deletes=True)


class Fork(Base):
    __tablename__ = "forks"
    __table_args__ = (sa.UniqueConstraint("original_repo", "fork_repo"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    original_repo: Mapped[str] = mapped_column(
        sa.String(500), sa.ForeignKey("repositories.url", onupdate="CASCADE", ondelete="CASCADE"), nullable=False)
    fork_repo: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    created_at: Mapped[datetime] = _created()

    repository: Mapped[Repository] = relationship(back_populates="forks")


class Component(Base):
    __tablename__ = "components"
    __table_args__ = (
        sa.UniqueConstraint("repository_url", "path", "commit_hash"),
        # The design model's single-column indexes on type, is_installed, has_local_changes and
        # sync_status are not created (migration 0202: redundant with the indexes below).
        sa.CheckConstraint("commit_hash ~ '^[a-f0-9]{40}$'", name="check_commit_hash"),
        sa.CheckConstraint("version ~ '^[0-9]+\\.[0-9]+\\.[0-9]+'", name="check_version_format"),
        sa.Index("idx_components_repo_path", "repository_url", "path"),
        sa.Index("idx_components_name_type", "name", "type"),
        sa.Index("idx_components_sync_status", "sync_status"),
        sa.Index("idx_components_installed_type", "is_installed", "type",
                 postgresql_where=sa.text("is_installed = true")),
        sa.Index("idx_components_local_changes", "has_local_changes", "sync_status",
                 postgresql_where=sa.text("has_local_changes = true")),
        sa.Index("ix_components_repository_id_name", "repository_id", "name"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    type: Mapped[ComponentType] = mapped_column(COMPONENT_TYPE, nullable=False)
    version: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    repository_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False)
    repository_url: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    path: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    commit_hash: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    schema: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", pg.JSONB)
    is_installed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                               server_default=sa.false())
    installed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    install_path: Mapped[str | None] = mapped_column(sa.String(500))
    has_local_changes: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                                    server_default=sa.false())
    local_definition: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    original_definition: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    sync_status: Mapped[ComponentSyncStatus] = mapped_column(
        COMPONENT_SYNC_STATUS, nullable=False, default=ComponentSyncStatus.REMOTE_ONLY,
        server_default=ComponentSyncStatus.REMOTE_ONLY.value)
    last_sync_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_sync_commit: Mapped[str | None] = mapped_column(sa.String(40))
    upstream_commit: Mapped[str | None] = mapped_column(sa.String(40))
    fork_repo: Mapped[str | None] = mapped_column(sa.String(500))
    fork_branch: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    # AgentForge additions: release facts computed by sync.
    tree_hash: Mapped[str | None] = mapped_column(sa.String(40))
    release_tags: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text), nullable=False, default=list,
                                                    server_default="{}")
    is_release: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    is_reused_version: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                                    server_default=sa.false())

    repository: Mapped[Repository] = relationship(back_populates="components")


class ComponentDependency(Base):
    __tablename__ = "component_dependencies"
    __table_args__ = (
        sa.UniqueConstraint("component_id", "dependency_id"),
        sa.Index("ix_component_dependencies_dependency_type", "dependency_type"),
        sa.Index("idx_dependencies_component", "component_id"),
        sa.Index("idx_dependencies_type", "dependency_type"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    component_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("components.id", ondelete="CASCADE"), nullable=False)
    dependency_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("components.id", ondelete="CASCADE"), nullable=False)
    version_constraint: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    resolved_version: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    resolved_commit: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    dependency_type: Mapped[DependencyType] = mapped_column(DEPENDENCY_TYPE, nullable=False)
    is_optional: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    resolved_at: Mapped[datetime] = _created()
    resolution_path: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text), nullable=False)


class ComponentChange(Base):
    __tablename__ = "component_changes"
    __table_args__ = (
        sa.Index("ix_component_changes_component_id", "component_id"),
        sa.Index("ix_component_changes_change_type", "change_type"),
        sa.Index("ix_component_changes_timestamp", "timestamp"),
        sa.Index("idx_changes_component_time", "component_id", "timestamp"),
        sa.Index("idx_changes_type_time", "change_type", "timestamp"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    component_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("components.id", ondelete="CASCADE"), nullable=False)
    change_type: Mapped[ChangeType] = mapped_column(CHANGE_TYPE, nullable=False)
    field_path: Mapped[str] = mapped_column(sa.String(500), nullable=False)
    old_value: Mapped[Any | None] = mapped_column(pg.JSONB)
    new_value: Mapped[Any | None] = mapped_column(pg.JSONB)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    author: Mapped[str | None] = mapped_column(sa.String(255))
    timestamp: Mapped[datetime] = _created()
    commit_hash: Mapped[str | None] = mapped_column(sa.String(40))
    branch_name: Mapped[str | None] = mapped_column(sa.String(100))


class SyncOperation(Base):
    __tablename__ = "sync_operations"
    __table_args__ = (
        sa.Index("ix_sync_operations_component_id", "component_id"),
        sa.Index("ix_sync_operations_status", "status"),
        sa.Index("ix_sync_operations_operation", "operation"),
        sa.Index("idx_sync_ops_component_status", "component_id", "status"),
        sa.Index("idx_sync_ops_created", "created_at"),
        sa.Index("idx_sync_ops_pending", "status", "created_at",
                 postgresql_where=sa.text("status IN ('PENDING', 'IN_PROGRESS')")),
        sa.Index("ix_sync_operations_repository_id", "repository_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    component_id: Mapped[uuid.UUID | None] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("components.id", ondelete="CASCADE"))
    repository_id: Mapped[uuid.UUID | None] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("repositories.id", ondelete="CASCADE"))
    operation: Mapped[SyncOperationType] = mapped_column(SYNC_OPERATION_TYPE, nullable=False)
    status: Mapped[SyncOperationStatus] = mapped_column(SYNC_OPERATION_STATUS, nullable=False)
    direction: Mapped[SyncDirection] = mapped_column(SYNC_DIRECTION, nullable=False)
    source_commit: Mapped[str | None] = mapped_column(sa.String(40))
    target_commit: Mapped[str | None] = mapped_column(sa.String(40))
    branch_name: Mapped[str | None] = mapped_column(sa.String(100))
    pull_request_url: Mapped[str | None] = mapped_column(sa.String(500))
    pull_request_id: Mapped[str | None] = mapped_column(sa.String(50))
    message: Mapped[str | None] = mapped_column(sa.Text)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    conflict_files: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text), nullable=False, default=list,
                                                      server_default="{}")
    created_at: Mapped[datetime] = _created()
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    completed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Composition(Base):
    __tablename__ = "compositions"
    __table_args__ = (
        sa.Index("ix_compositions_is_active", "is_active"),
        sa.Index("ix_compositions_is_deployed", "is_deployed"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    name: Mapped[str] = mapped_column(sa.String(255), unique=True, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    version: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    definition: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    lock_file: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    is_active: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True, server_default=sa.true())
    is_deployed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False, server_default=sa.false())
    local_overrides: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    has_local_changes: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                                    server_default=sa.false())
    source_repo: Mapped[str | None] = mapped_column(sa.String(500))
    source_commit: Mapped[str | None] = mapped_column(sa.String(40))
    deployed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    environment: Mapped[str | None] = mapped_column(sa.String(100))
    created_at: Mapped[datetime] = _created()
    updated_at: Mapped[datetime] = _updated()

    instances: Mapped[list[CompositionInstance]] = relationship(back_populates="composition")


class CompositionInstance(Base):
    __tablename__ = "composition_instances"
    __table_args__ = (
        sa.UniqueConstraint("composition_id", "name"),
        sa.Index("ix_composition_instances_status", "status"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    composition_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("compositions.id", ondelete="CASCADE"), nullable=False)
    name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    config: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    overrides: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)
    status: Mapped[InstanceStatus] = mapped_column(INSTANCE_STATUS, nullable=False, default=InstanceStatus.STOPPED,
                                                   server_default=InstanceStatus.STOPPED.value)
    last_started: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    last_stopped: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    request_count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0, server_default="0")
    error_count: Mapped[int] = mapped_column(sa.BigInteger, nullable=False, default=0, server_default="0")
    avg_response_time: Mapped[float | None] = mapped_column(sa.Double)

    # AgentForge additions: where and what the instance runs.
    environment: Mapped[str | None] = mapped_column(sa.String(100))
    lock_hash: Mapped[str | None] = mapped_column(sa.String(80))
    bundle_path: Mapped[str | None] = mapped_column(sa.Text)
    pid: Mapped[int | None] = mapped_column(sa.Integer)
    port: Mapped[int | None] = mapped_column(sa.Integer)
    url: Mapped[str | None] = mapped_column(sa.String(200))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = _updated()

    composition: Mapped[Composition] = relationship(back_populates="instances")


class UserSettings(Base):
    __tablename__ = "user_settings"

    id: Mapped[uuid.UUID] = _uuid_pk()
    user_id: Mapped[str] = mapped_column(sa.String(255), unique=True, nullable=False)
    git_username: Mapped[str | None] = mapped_column(sa.String(255))
    git_email: Mapped[str | None] = mapped_column(sa.String(255))
    default_llm_provider: Mapped[str | None] = mapped_column(sa.String(100))
    default_llm_model: Mapped[str | None] = mapped_column(sa.String(100))
    output_format: Mapped[str] = mapped_column(sa.String(50), nullable=False, default="table",
                                               server_default="table")
    verbose_logging: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                                  server_default=sa.false())
    auto_sync: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True, server_default=sa.true())
    allow_unsigned_components: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False,
                                                            server_default=sa.false())
    trusted_repositories: Mapped[list[str]] = mapped_column(pg.ARRAY(sa.Text), nullable=False, default=list,
                                                            server_default="{}")
    custom_settings: Mapped[dict[str, Any] | None] = mapped_column(pg.JSONB)


class SystemConfig(Base):
    __tablename__ = "system_config"

    key: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    value: Mapped[Any] = mapped_column(pg.JSONB, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = _updated()


# --- AgentForge additions -------------------------------------------------------------------


class RepositoryTag(Base):
    """The tag ledger: every release tag's commit and component trees as first seen ."""

    __tablename__ = "repository_tags"
    __table_args__ = (
        sa.UniqueConstraint("repository_id", "tag"),
        sa.CheckConstraint("first_commit ~ '^[a-f0-9]{40}$'", name="check_tag_first_commit"),
        sa.Index("ix_repository_tags_state", "state", postgresql_where=sa.text("state <> 'OK'")),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    repository_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("repositories.id", ondelete="CASCADE"), nullable=False)
    tag: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    first_commit: Mapped[str] = mapped_column(sa.String(40), nullable=False)
    current_commit: Mapped[str | None] = mapped_column(sa.String(40))
    trees: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False, default=dict, server_default="{}")
    state: Mapped[TagState] = mapped_column(TAG_STATE, nullable=False, default=TagState.OK,
                                            server_default=TagState.OK.value)
    first_seen_at: Mapped[datetime] = _created()
    changed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    accepted_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Deployment(Base):
    """One deploy of one lock to one instance: the history rollback reads ."""

    __tablename__ = "deployments"
    __table_args__ = (sa.Index("ix_deployments_instance_created", "instance_id", "created_at"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    composition_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("compositions.id", ondelete="CASCADE"), nullable=False)
    instance_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("composition_instances.id", ondelete="CASCADE"), nullable=False)
    environment: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    lock_hash: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    lock_file: Mapped[dict[str, Any]] = mapped_column(pg.JSONB, nullable=False)
    bundle_path: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[DeploymentStatus] = mapped_column(DEPLOYMENT_STATUS, nullable=False)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()
    completed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class LockHold(Base):
    """A lock hash that schedules and deploy-on-merge must skip ."""

    __tablename__ = "lock_holds"
    __table_args__ = (sa.UniqueConstraint("composition_id", "environment", "lock_hash"),)

    id: Mapped[uuid.UUID] = _uuid_pk()
    composition_id: Mapped[uuid.UUID] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("compositions.id", ondelete="CASCADE"), nullable=False)
    environment: Mapped[str] = mapped_column(sa.String(100), nullable=False)
    lock_hash: Mapped[str] = mapped_column(sa.String(80), nullable=False)
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = _created()


class WebhookDelivery(Base):
    """One accepted GitHub webhook delivery, keyed on the SHA-256 of its signed body .

    The row is the durable record written before any run starts: the receiver's dispatcher
    claims ``RECEIVED`` rows (and ``DISPATCHING`` ones whose lease ran out after a crash), so
    an accepted delivery is never lost and a replayed body (same hash) starts nothing new.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.CheckConstraint("status IN ('RECEIVED', 'DISPATCHING', 'STARTED', 'FAILED')",
                           name="check_webhook_delivery_status"),
        sa.CheckConstraint("body_sha256 ~ '^[a-f0-9]{64}$'", name="check_webhook_body_sha256"),
        sa.Index("ix_webhook_deliveries_pending", "next_attempt_at",
                 postgresql_where=sa.text("status IN ('RECEIVED', 'DISPATCHING')")),
        sa.Index("ix_webhook_deliveries_repository_id", "repository_id"),
    )

    id: Mapped[uuid.UUID] = _uuid_pk()
    body_sha256: Mapped[str] = mapped_column(sa.String(64), unique=True, nullable=False)
    github_delivery: Mapped[str | None] = mapped_column(sa.String(100))  # not signed: informational only
    event: Mapped[str] = mapped_column(sa.String(50), nullable=False)
    repository_id: Mapped[uuid.UUID | None] = mapped_column(
        pg.UUID(as_uuid=True), sa.ForeignKey("repositories.id", ondelete="SET NULL"))
    repository_name: Mapped[str] = mapped_column(sa.String(255), nullable=False)
    ref: Mapped[str | None] = mapped_column(sa.String(255))
    head_commit: Mapped[str | None] = mapped_column(sa.String(40))
    status: Mapped[str] = mapped_column(sa.String(20), nullable=False, default="RECEIVED",
                                        server_default="RECEIVED")
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0, server_default="0")
    flow_run_id: Mapped[str | None] = mapped_column(sa.String(64))
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = _created()
    next_attempt_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), nullable=False,
                                                      server_default=sa.func.now())
    dispatched_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
