"""Flows: resolve_and_lock, and install (locking first unless --frozen)."""

from __future__ import annotations

from prefect import flow

from agentforge.core.results import LockWritten
from agentforge.errors import LockError
from tasks.lock import check_lock, install_packages, read_lock, resolve_root, verify_frozen, write_lock


@flow(name="resolve-and-lock", validate_parameters=True)
def resolve_and_lock(root: str, output: str = "forge-lock.yaml", include_dev: bool = False,
                     upgrade: list[str] | None = None, force_kind: str | None = None) -> LockWritten:
    """Resolve ROOT over the synced data and write its lock file (minimal churn unless upgrading)."""
    outcome = resolve_root(root, output, include_dev, upgrade, force_kind)
    return write_lock(outcome, output)


@flow(name="install", validate_parameters=True)
def install(root: str, lock_path: str = "forge-lock.yaml", frozen: bool = False, include_dev: bool = False,
            target: str | None = None, force_kind: str | None = None, force: bool = False) -> dict[str, object]:
    """Install ROOT from its lock: --frozen refuses a missing/stale/mismatching lock and changes nothing."""
    written: LockWritten | None = None
    if frozen:
        lock = verify_frozen(root, lock_path, include_dev, force_kind)
    else:
        status = check_lock(root, lock_path, include_dev, force_kind)
        if status.wrong_root:
            raise LockError(f"{lock_path}: " + "; ".join(status.reasons), code="LOCK_WRONG_ROOT",
                            hint="Pass --lock FILE for this root's lock (install never overwrites another "
                                 "root's lock).")
        if not status.ok:
            written = resolve_and_lock_inline(root, lock_path, include_dev, force_kind,
                                              reuse_checksums=not status.mismatch)
        lock = read_lock(lock_path)
    outcome = install_packages(lock, target, force)
    return {"install": outcome.model_dump(), "lock": written.model_dump() if written else None}


def resolve_and_lock_inline(root: str, output: str, include_dev: bool, force_kind: str | None, *,
                            reuse_checksums: bool = True) -> LockWritten:
    outcome = resolve_root(root, output, include_dev, None, force_kind, reuse_checksums)
    return write_lock(outcome, output)
