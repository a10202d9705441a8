"""Enums of the schema, values exactly as the design document names them."""

from __future__ import annotations

import enum


class RepoType(enum.StrEnum):
    TOOLS = "TOOLS"
    PROMPTS = "PROMPTS"
    AGENTS = "AGENTS"
    COMPOSITIONS = "COMPOSITIONS"
    MIXED = "MIXED"


class RepoSyncStatus(enum.StrEnum):
    NEVER_SYNCED = "NEVER_SYNCED"
    SYNCED = "SYNCED"
    SYNC_FAILED = "SYNC_FAILED"
    SYNC_IN_PROGRESS = "SYNC_IN_PROGRESS"
    OUTDATED = "OUTDATED"


class ComponentType(enum.StrEnum):
    TOOL = "TOOL"
    PROMPT = "PROMPT"
    AGENT = "AGENT"


class ComponentSyncStatus(enum.StrEnum):
    REMOTE_ONLY = "REMOTE_ONLY"
    LOCAL_ONLY = "LOCAL_ONLY"
    SYNCED = "SYNCED"
    MODIFIED = "MODIFIED"
    FORKED = "FORKED"
    CONFLICT = "CONFLICT"
    OUTDATED = "OUTDATED"
    SYNC_FAILED = "SYNC_FAILED"


class DependencyType(enum.StrEnum):
    DIRECT = "DIRECT"
    TRANSITIVE = "TRANSITIVE"
    PEER = "PEER"
    DEV = "DEV"


class ChangeType(enum.StrEnum):
    CREATE = "CREATE"
    UPDATE = "UPDATE"
    DELETE = "DELETE"
    MOVE = "MOVE"
    RENAME = "RENAME"


class SyncOperationType(enum.StrEnum):
    PULL_UPSTREAM = "PULL_UPSTREAM"
    PUSH_TO_ORIGIN = "PUSH_TO_ORIGIN"
    PUSH_TO_FORK = "PUSH_TO_FORK"
    CREATE_FORK = "CREATE_FORK"
    CREATE_PR = "CREATE_PR"
    MERGE_UPSTREAM = "MERGE_UPSTREAM"
    RESOLVE_CONFLICT = "RESOLVE_CONFLICT"


class SyncOperationStatus(enum.StrEnum):
    PENDING = "PENDING"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REQUIRES_MANUAL_RESOLUTION = "REQUIRES_MANUAL_RESOLUTION"


class SyncDirection(enum.StrEnum):
    UPSTREAM_TO_LOCAL = "UPSTREAM_TO_LOCAL"
    LOCAL_TO_UPSTREAM = "LOCAL_TO_UPSTREAM"
    LOCAL_TO_FORK = "LOCAL_TO_FORK"
    FORK_TO_UPSTREAM = "FORK_TO_UPSTREAM"


class InstanceStatus(enum.StrEnum):
    STOPPED = "STOPPED"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    ERROR = "ERROR"
    UPDATING = "UPDATING"


class TagState(enum.StrEnum):
    """AgentForge addition: the tag ledger's view of a release tag."""

    OK = "OK"
    MOVED = "MOVED"          # points elsewhere than first seen: held back until accepted
    DELETED = "DELETED"      # gone upstream; its pinned commit is kept under refs/forge/pins


class DeploymentStatus(enum.StrEnum):
    """AgentForge addition: outcome of one deploy of a lock to an instance."""

    IN_PROGRESS = "IN_PROGRESS"
    HEALTHY = "HEALTHY"
    FAILED = "FAILED"
    ROLLED_BACK = "ROLLED_BACK"
    SUPERSEDED = "SUPERSEDED"
