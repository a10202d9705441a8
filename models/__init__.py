"""The schema (SQLAlchemy 2.x ORM tables and enums) and the query/command functions over it.

Functions in this package take a keyword-only ``session``, add/flush and never commit.
"""

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
from models.tables import (
    Base,
    Component,
    ComponentChange,
    ComponentDependency,
    Composition,
    CompositionInstance,
    Deployment,
    Fork,
    LockHold,
    Repository,
    RepositoryTag,
    SyncOperation,
    SystemConfig,
    UserSettings,
)

# The newest migration this code knows; a test keeps it equal to Alembic's head so that the
# CLI can check the database's revision without loading the migration scripts.
SCHEMA_HEAD = "0203"

__all__ = [
    "SCHEMA_HEAD",
    "Base",
    "ChangeType",
    "Component",
    "ComponentChange",
    "ComponentDependency",
    "ComponentSyncStatus",
    "ComponentType",
    "Composition",
    "CompositionInstance",
    "DependencyType",
    "Deployment",
    "DeploymentStatus",
    "Fork",
    "InstanceStatus",
    "LockHold",
    "RepoSyncStatus",
    "RepoType",
    "Repository",
    "RepositoryTag",
    "SyncDirection",
    "SyncOperation",
    "SyncOperationStatus",
    "SyncOperationType",
    "SystemConfig",
    "TagState",
    "UserSettings",
]
