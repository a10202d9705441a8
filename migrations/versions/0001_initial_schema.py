"""Initial schema: the whole design document plus AgentForge's additions (tag ledger, deployments, holds).

Triggers and their functions are created here as well; downgrade drops tables, enum types and functions.

Revision ID: 0001
Revises: 
"""
from collections.abc import Sequence

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('compositions',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('definition', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('lock_file', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('is_deployed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('local_overrides', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('has_local_changes', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('source_repo', sa.String(length=500), nullable=True),
    sa.Column('source_commit', sa.String(length=40), nullable=True),
    sa.Column('deployed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('environment', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('compositions_pkey')),
    sa.UniqueConstraint('name', name=op.f('compositions_name_key'))
    )
    op.create_index('ix_compositions_is_active', 'compositions', ['is_active'], unique=False)
    op.create_index('ix_compositions_is_deployed', 'compositions', ['is_deployed'], unique=False)
    op.create_table('repositories',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('type', sa.Enum('TOOLS', 'PROMPTS', 'AGENTS', 'COMPOSITIONS', 'MIXED', name='repo_type'), nullable=False),
    sa.Column('is_active', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('default_branch', sa.String(length=100), server_default='main', nullable=False),
    sa.Column('last_sync', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sync_status', sa.Enum('NEVER_SYNCED', 'SYNCED', 'SYNC_FAILED', 'SYNC_IN_PROGRESS', 'OUTDATED', name='repo_sync_status'), server_default='NEVER_SYNCED', nullable=False),
    sa.Column('manifest', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('manifest_hash', sa.String(length=64), nullable=True),
    sa.Column('has_write_access', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('access_token', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('synced_refs', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('failure_count', sa.Integer(), server_default='0', nullable=False),
    sa.Column('next_sync_after', sa.DateTime(timezone=True), nullable=True),
    sa.Column('source_format', sa.String(length=50), nullable=True),
    sa.CheckConstraint("url ~ '^(https://[A-Za-z0-9.-]+(:[0-9]+)?(/[A-Za-z0-9._~-]+){2,}|git@[A-Za-z0-9.-]+:[A-Za-z0-9._~-]+/[A-Za-z0-9._~-]+|file://(/[^/[:cntrl:]]+)+)$'", name=op.f('check_repo_url')),
    sa.PrimaryKeyConstraint('id', name=op.f('repositories_pkey')),
    sa.UniqueConstraint('name', name=op.f('repositories_name_key')),
    sa.UniqueConstraint('url', name=op.f('repositories_url_key'))
    )
    op.create_index('idx_repositories_type_active', 'repositories', ['type', 'is_active'], unique=False)
    op.create_index('idx_repositories_url', 'repositories', ['url'], unique=False)
    op.create_index('ix_repositories_is_active', 'repositories', ['is_active'], unique=False)
    op.create_index('ix_repositories_last_sync', 'repositories', ['last_sync'], unique=False)
    op.create_index('ix_repositories_type', 'repositories', ['type'], unique=False)
    op.create_table('system_config',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('system_config_pkey'))
    )
    op.create_table('user_settings',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('user_id', sa.String(length=255), nullable=False),
    sa.Column('git_username', sa.String(length=255), nullable=True),
    sa.Column('git_email', sa.String(length=255), nullable=True),
    sa.Column('default_llm_provider', sa.String(length=100), nullable=True),
    sa.Column('default_llm_model', sa.String(length=100), nullable=True),
    sa.Column('output_format', sa.String(length=50), server_default='table', nullable=False),
    sa.Column('verbose_logging', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('auto_sync', sa.Boolean(), server_default=sa.text('true'), nullable=False),
    sa.Column('allow_unsigned_components', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('trusted_repositories', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('custom_settings', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('user_settings_pkey')),
    sa.UniqueConstraint('user_id', name=op.f('user_settings_user_id_key'))
    )
    op.create_table('components',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('type', sa.Enum('TOOL', 'PROMPT', 'AGENT', name='component_type'), nullable=False),
    sa.Column('version', sa.String(length=50), nullable=False),
    sa.Column('repository_id', sa.UUID(), nullable=False),
    sa.Column('repository_url', sa.String(length=500), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('commit_hash', sa.String(length=40), nullable=False),
    sa.Column('definition', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('schema', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('metadata', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('is_installed', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('installed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('install_path', sa.String(length=500), nullable=True),
    sa.Column('has_local_changes', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('local_definition', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('original_definition', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('sync_status', sa.Enum('REMOTE_ONLY', 'LOCAL_ONLY', 'SYNCED', 'MODIFIED', 'FORKED', 'CONFLICT', 'OUTDATED', 'SYNC_FAILED', name='component_sync_status'), server_default='REMOTE_ONLY', nullable=False),
    sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_sync_commit', sa.String(length=40), nullable=True),
    sa.Column('upstream_commit', sa.String(length=40), nullable=True),
    sa.Column('fork_repo', sa.String(length=500), nullable=True),
    sa.Column('fork_branch', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('tree_hash', sa.String(length=40), nullable=True),
    sa.Column('release_tags', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('is_release', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('is_reused_version', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.CheckConstraint("commit_hash ~ '^[a-f0-9]{40}$'", name=op.f('check_commit_hash')),
    sa.CheckConstraint("version ~ '^[0-9]+\\.[0-9]+\\.[0-9]+'", name=op.f('check_version_format')),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('components_repository_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('components_pkey')),
    sa.UniqueConstraint('repository_url', 'path', 'commit_hash', name=op.f('components_repository_url_path_commit_hash_key'))
    )
    op.create_index('idx_components_installed_type', 'components', ['is_installed', 'type'], unique=False, postgresql_where=sa.text('is_installed = true'))
    op.create_index('idx_components_local_changes', 'components', ['has_local_changes', 'sync_status'], unique=False, postgresql_where=sa.text('has_local_changes = true'))
    op.create_index('idx_components_name_type', 'components', ['name', 'type'], unique=False)
    op.create_index('idx_components_repo_path', 'components', ['repository_url', 'path'], unique=False)
    op.create_index('idx_components_sync_status', 'components', ['sync_status'], unique=False)
    op.create_index('ix_components_has_local_changes', 'components', ['has_local_changes'], unique=False)
    op.create_index('ix_components_is_installed', 'components', ['is_installed'], unique=False)
    op.create_index('ix_components_repository_id_name', 'components', ['repository_id', 'name'], unique=False)
    op.create_index('ix_components_sync_status', 'components', ['sync_status'], unique=False)
    op.create_index('ix_components_type', 'components', ['type'], unique=False)
    op.create_table('composition_instances',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('composition_id', sa.UUID(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('config', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('overrides', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('status', sa.Enum('STOPPED', 'STARTING', 'RUNNING', 'STOPPING', 'ERROR', 'UPDATING', name='instance_status'), server_default='STOPPED', nullable=False),
    sa.Column('last_started', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_stopped', sa.DateTime(timezone=True), nullable=True),
    sa.Column('request_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('error_count', sa.BigInteger(), server_default='0', nullable=False),
    sa.Column('avg_response_time', sa.Double(), nullable=True),
    sa.Column('environment', sa.String(length=100), nullable=True),
    sa.Column('lock_hash', sa.String(length=80), nullable=True),
    sa.Column('bundle_path', sa.Text(), nullable=True),
    sa.Column('pid', sa.Integer(), nullable=True),
    sa.Column('port', sa.Integer(), nullable=True),
    sa.Column('url', sa.String(length=200), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['composition_id'], ['compositions.id'], name=op.f('composition_instances_composition_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('composition_instances_pkey')),
    sa.UniqueConstraint('composition_id', 'name', name=op.f('composition_instances_composition_id_name_key'))
    )
    op.create_index('ix_composition_instances_status', 'composition_instances', ['status'], unique=False)
    op.create_table('forks',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('original_repo', sa.String(length=500), nullable=False),
    sa.Column('fork_repo', sa.String(length=500), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['original_repo'], ['repositories.url'], name=op.f('forks_original_repo_fkey'), onupdate='CASCADE', ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('forks_pkey')),
    sa.UniqueConstraint('original_repo', 'fork_repo', name=op.f('forks_original_repo_fork_repo_key'))
    )
    op.create_table('lock_holds',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('composition_id', sa.UUID(), nullable=False),
    sa.Column('environment', sa.String(length=100), nullable=False),
    sa.Column('lock_hash', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['composition_id'], ['compositions.id'], name=op.f('lock_holds_composition_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('lock_holds_pkey')),
    sa.UniqueConstraint('composition_id', 'environment', 'lock_hash', name=op.f('lock_holds_composition_id_environment_lock_hash_key'))
    )
    op.create_table('repository_tags',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('repository_id', sa.UUID(), nullable=False),
    sa.Column('tag', sa.String(length=255), nullable=False),
    sa.Column('first_commit', sa.String(length=40), nullable=False),
    sa.Column('current_commit', sa.String(length=40), nullable=True),
    sa.Column('trees', postgresql.JSONB(astext_type=sa.Text()), server_default='{}', nullable=False),
    sa.Column('state', sa.Enum('OK', 'MOVED', 'DELETED', name='tag_state'), server_default='OK', nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('accepted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("first_commit ~ '^[a-f0-9]{40}$'", name=op.f('check_tag_first_commit')),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('repository_tags_repository_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('repository_tags_pkey')),
    sa.UniqueConstraint('repository_id', 'tag', name=op.f('repository_tags_repository_id_tag_key'))
    )
    op.create_index('ix_repository_tags_state', 'repository_tags', ['state'], unique=False, postgresql_where=sa.text("state <> 'OK'"))
    op.create_table('component_changes',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('component_id', sa.UUID(), nullable=False),
    sa.Column('change_type', sa.Enum('CREATE', 'UPDATE', 'DELETE', 'MOVE', 'RENAME', name='change_type'), nullable=False),
    sa.Column('field_path', sa.String(length=500), nullable=False),
    sa.Column('old_value', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('new_value', postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('author', sa.String(length=255), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('commit_hash', sa.String(length=40), nullable=True),
    sa.Column('branch_name', sa.String(length=100), nullable=True),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('component_changes_component_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('component_changes_pkey'))
    )
    op.create_index('idx_changes_component_time', 'component_changes', ['component_id', 'timestamp'], unique=False)
    op.create_index('idx_changes_type_time', 'component_changes', ['change_type', 'timestamp'], unique=False)
    op.create_index('ix_component_changes_change_type', 'component_changes', ['change_type'], unique=False)
    op.create_index('ix_component_changes_component_id', 'component_changes', ['component_id'], unique=False)
    op.create_index('ix_component_changes_timestamp', 'component_changes', ['timestamp'], unique=False)
    op.create_table('component_dependencies',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('component_id', sa.UUID(), nullable=False),
    sa.Column('dependency_id', sa.UUID(), nullable=False),
    sa.Column('version_constraint', sa.String(length=100), nullable=False),
    sa.Column('resolved_version', sa.String(length=50), nullable=False),
    sa.Column('resolved_commit', sa.String(length=40), nullable=False),
    sa.Column('dependency_type', sa.Enum('DIRECT', 'TRANSITIVE', 'PEER', 'DEV', name='dependency_type'), nullable=False),
    sa.Column('is_optional', sa.Boolean(), server_default=sa.text('false'), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('resolution_path', postgresql.ARRAY(sa.Text()), nullable=False),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('component_dependencies_component_id_fkey'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['dependency_id'], ['components.id'], name=op.f('component_dependencies_dependency_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('component_dependencies_pkey')),
    sa.UniqueConstraint('component_id', 'dependency_id', name=op.f('component_dependencies_component_id_dependency_id_key'))
    )
    op.create_index('idx_dependencies_component', 'component_dependencies', ['component_id'], unique=False)
    op.create_index('idx_dependencies_type', 'component_dependencies', ['dependency_type'], unique=False)
    op.create_index('ix_component_dependencies_dependency_type', 'component_dependencies', ['dependency_type'], unique=False)
    op.create_table('deployments',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('composition_id', sa.UUID(), nullable=False),
    sa.Column('instance_id', sa.UUID(), nullable=False),
    sa.Column('environment', sa.String(length=100), nullable=False),
    sa.Column('lock_hash', sa.String(length=80), nullable=False),
    sa.Column('lock_file', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('bundle_path', sa.Text(), nullable=False),
    sa.Column('status', sa.Enum('IN_PROGRESS', 'HEALTHY', 'FAILED', 'ROLLED_BACK', 'SUPERSEDED', name='deployment_status'), nullable=False),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['composition_id'], ['compositions.id'], name=op.f('deployments_composition_id_fkey'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['composition_instances.id'], name=op.f('deployments_instance_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('deployments_pkey'))
    )
    op.create_index('ix_deployments_instance_created', 'deployments', ['instance_id', 'created_at'], unique=False)
    op.create_table('sync_operations',
    sa.Column('id', sa.UUID(), server_default=sa.text('gen_random_uuid()'), nullable=False),
    sa.Column('component_id', sa.UUID(), nullable=True),
    sa.Column('repository_id', sa.UUID(), nullable=True),
    sa.Column('operation', sa.Enum('PULL_UPSTREAM', 'PUSH_TO_ORIGIN', 'PUSH_TO_FORK', 'CREATE_FORK', 'CREATE_PR', 'MERGE_UPSTREAM', 'RESOLVE_CONFLICT', name='sync_operation_type'), nullable=False),
    sa.Column('status', sa.Enum('PENDING', 'IN_PROGRESS', 'COMPLETED', 'FAILED', 'CANCELLED', 'REQUIRES_MANUAL_RESOLUTION', name='sync_operation_status'), nullable=False),
    sa.Column('direction', sa.Enum('UPSTREAM_TO_LOCAL', 'LOCAL_TO_UPSTREAM', 'LOCAL_TO_FORK', 'FORK_TO_UPSTREAM', name='sync_direction'), nullable=False),
    sa.Column('source_commit', sa.String(length=40), nullable=True),
    sa.Column('target_commit', sa.String(length=40), nullable=True),
    sa.Column('branch_name', sa.String(length=100), nullable=True),
    sa.Column('pull_request_url', sa.String(length=500), nullable=True),
    sa.Column('pull_request_id', sa.String(length=50), nullable=True),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('conflict_files', postgresql.ARRAY(sa.Text()), server_default='{}', nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['component_id'], ['components.id'], name=op.f('sync_operations_component_id_fkey'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['repository_id'], ['repositories.id'], name=op.f('sync_operations_repository_id_fkey'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('sync_operations_pkey'))
    )
    op.create_index('idx_sync_ops_component_status', 'sync_operations', ['component_id', 'status'], unique=False)
    op.create_index('idx_sync_ops_created', 'sync_operations', ['created_at'], unique=False)
    op.create_index('idx_sync_ops_pending', 'sync_operations', ['status', 'created_at'], unique=False, postgresql_where=sa.text("status IN ('PENDING', 'IN_PROGRESS')"))
    op.create_index('ix_sync_operations_component_id', 'sync_operations', ['component_id'], unique=False)
    op.create_index('ix_sync_operations_operation', 'sync_operations', ['operation'], unique=False)
    op.create_index('ix_sync_operations_repository_id', 'sync_operations', ['repository_id'], unique=False)
    op.create_index('ix_sync_operations_status', 'sync_operations', ['status'], unique=False)

    op.execute(
        """
        CREATE OR REPLACE FUNCTION update_component_timestamp()
        RETURNS TRIGGER AS $$
        BEGIN
          NEW.updated_at = NOW();
          RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        """
    )
    op.execute(
        """
        CREATE TRIGGER trigger_component_update
          BEFORE UPDATE ON components
          FOR EACH ROW
          EXECUTE FUNCTION update_component_timestamp();
        """
    )
    op.execute(
        """
        CREATE OR REPLACE FUNCTION log_component_change()
        RETURNS TRIGGER AS $$
        BEGIN
          IF TG_OP = 'UPDATE' AND OLD.local_definition IS DISTINCT FROM NEW.local_definition THEN
            INSERT INTO component_changes (component_id, change_type, field_path, old_value, new_value)
            VALUES (NEW.id, 'UPDATE', 'local_definition', OLD.local_definition, NEW.local_definition);
          END IF;
          RETURN NEW;
        END;
        $$ LANGUAGE plpgsql;
        """
    )
    op.execute(
        """
        CREATE TRIGGER trigger_log_component_change
          AFTER UPDATE ON components
          FOR EACH ROW
          EXECUTE FUNCTION log_component_change();
        """
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS trigger_log_component_change ON components")
    op.execute("DROP TRIGGER IF EXISTS trigger_component_update ON components")
    op.execute("DROP FUNCTION IF EXISTS log_component_change()")
    op.execute("DROP FUNCTION IF EXISTS update_component_timestamp()")
    op.drop_index('ix_sync_operations_status', table_name='sync_operations')
    op.drop_index('ix_sync_operations_repository_id', table_name='sync_operations')
    op.drop_index('ix_sync_operations_operation', table_name='sync_operations')
    op.drop_index('ix_sync_operations_component_id', table_name='sync_operations')
    op.drop_index('idx_sync_ops_pending', table_name='sync_operations', postgresql_where=sa.text("status IN ('PENDING', 'IN_PROGRESS')"))
    op.drop_index('idx_sync_ops_created', table_name='sync_operations')
    op.drop_index('idx_sync_ops_component_status', table_name='sync_operations')
    op.drop_table('sync_operations')
    op.drop_index('ix_deployments_instance_created', table_name='deployments')
    op.drop_table('deployments')
    op.drop_index('ix_component_dependencies_dependency_type', table_name='component_dependencies')
    op.drop_index('idx_dependencies_type', table_name='component_dependencies')
    op.drop_index('idx_dependencies_component', table_name='component_dependencies')
    op.drop_table('component_dependencies')
    op.drop_index('ix_component_changes_timestamp', table_name='component_changes')
    op.drop_index('ix_component_changes_component_id', table_name='component_changes')
    op.drop_index('ix_component_changes_change_type', table_name='component_changes')
    op.drop_index('idx_changes_type_time', table_name='component_changes')
    op.drop_index('idx_changes_component_time', table_name='component_changes')
    op.drop_table('component_changes')
    op.drop_index('ix_repository_tags_state', table_name='repository_tags', postgresql_where=sa.text("state <> 'OK'"))
    op.drop_table('repository_tags')
    op.drop_table('lock_holds')
    op.drop_table('forks')
    op.drop_index('ix_composition_instances_status', table_name='composition_instances')
    op.drop_table('composition_instances')
    op.drop_index('ix_components_type', table_name='components')
    op.drop_index('ix_components_sync_status', table_name='components')
    op.drop_index('ix_components_repository_id_name', table_name='components')
    op.drop_index('ix_components_is_installed', table_name='components')
    op.drop_index('ix_components_has_local_changes', table_name='components')
    op.drop_index('idx_components_sync_status', table_name='components')
    op.drop_index('idx_components_repo_path', table_name='components')
    op.drop_index('idx_components_name_type', table_name='components')
    op.drop_index('idx_components_local_changes', table_name='components', postgresql_where=sa.text('has_local_changes = true'))
    op.drop_index('idx_components_installed_type', table_name='components', postgresql_where=sa.text('is_installed = true'))
    op.drop_table('components')
    op.drop_table('user_settings')
    op.drop_table('system_config')
    op.drop_index('ix_repositories_type', table_name='repositories')
    op.drop_index('ix_repositories_last_sync', table_name='repositories')
    op.drop_index('ix_repositories_is_active', table_name='repositories')
    op.drop_index('idx_repositories_url', table_name='repositories')
    op.drop_index('idx_repositories_type_active', table_name='repositories')
    op.drop_table('repositories')
    op.drop_index('ix_compositions_is_deployed', table_name='compositions')
    op.drop_index('ix_compositions_is_active', table_name='compositions')
    op.drop_table('compositions')
    op.execute("DROP TYPE IF EXISTS repo_type")
    op.execute("DROP TYPE IF EXISTS repo_sync_status")
    op.execute("DROP TYPE IF EXISTS component_type")
    op.execute("DROP TYPE IF EXISTS component_sync_status")
    op.execute("DROP TYPE IF EXISTS dependency_type")
    op.execute("DROP TYPE IF EXISTS change_type")
    op.execute("DROP TYPE IF EXISTS sync_operation_type")
    op.execute("DROP TYPE IF EXISTS sync_operation_status")
    op.execute("DROP TYPE IF EXISTS sync_direction")
    op.execute("DROP TYPE IF EXISTS instance_status")
    op.execute("DROP TYPE IF EXISTS tag_state")
    op.execute("DROP TYPE IF EXISTS deployment_status")
