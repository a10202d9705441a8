"""Small values that cross task and flow boundaries (pydantic, so Prefect can persist them)."""

from __future__ import annotations

from pydantic import BaseModel


class RepoSyncResult(BaseModel):
    """What one repository's sync did (a small value that crosses task boundaries)."""

    name: str
    status: str  # synced | unchanged | failed | skipped
    new_components: int = 0
    releases: int = 0
    commit: str | None = None
    message: str = ""
    problems: list[str] = []
    error: str | None = None
    error_code: str | None = None


class SyncPlan(BaseModel):
    """Which repositories need a full sync after the batched ref check."""

    to_sync: list[str] = []          # repository ids (str) whose refs moved, or never synced
    unchanged: list[str] = []
    failed: dict[str, str] = {}      # id → error from ls-remote
    failed_codes: dict[str, str] = {}
    skipped: dict[str, str] = {}     # id → reason (disabled)
    names: dict[str, str] = {}       # id → name


class LockWritten(BaseModel):
    """What `lock` wrote."""

    path: str
    changed: bool
    packages: int
    edges: int
    content_hash: str
    skipped: list[str] = []
    kept_pins: int = 0
