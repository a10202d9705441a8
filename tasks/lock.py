"""Tasks of the lock and install flows."""

from __future__ import annotations

from pathlib import Path

from prefect import task
from prefect.cache_policies import NONE

from agentforge.core.lockfile import LockFile
from agentforge.core.results import LockWritten
from agentforge.errors import AgentForgeError
from agentforge.services import install as install_svc
from agentforge.services import lock as lock_svc
from tasks.retry import transient_only


@task(name="resolve-root", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def resolve_root(root: str, output: str, include_dev: bool, upgrade: list[str] | None,
                 force_kind: str | None, reuse_checksums: bool = True) -> lock_svc.ResolveOutcome:
    """Resolve over Postgres (no network); keep the existing lock's pins unless upgrading.

    ``reuse_checksums=False`` recomputes every checksum from the mirrors (after a mismatch: the
    existing file's checksums cannot be trusted).
    """
    existing = lock_svc.read_existing_lock(Path(output))
    return lock_svc.resolve_root(root, include_dev=include_dev, pins=existing.pins, upgrade=upgrade,
                                 previous=existing.lock if reuse_checksums else None, force_kind=force_kind,
                                 previous_text=existing.text if reuse_checksums else None)


@task(name="write-lock", retries=3, retry_delay_seconds=[1, 4, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def write_lock(outcome: lock_svc.ResolveOutcome, output: str) -> LockWritten:
    """The lock file (atomic, untouched when identical) and the resolution rows in Postgres."""
    # The lock being replaced (if readable): its packages' dependency rows are replaced too.
    try:
        previous = lock_svc.read_existing_lock(Path(output)).lock
    except AgentForgeError:
        previous = None
    changed = lock_svc.write_lock_file(Path(output), outcome.text, lock=outcome.lock)
    edges = lock_svc.persist_resolution(outcome.lock, composition_id=outcome.composition_id, previous=previous)
    return LockWritten(path=output, changed=changed, packages=len(outcome.lock.packages), edges=edges,
                       content_hash=outcome.lock.content_hash, skipped=outcome.skipped, kept_pins=outcome.kept_pins)


@task(name="verify-frozen-lock", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only,
      cache_policy=NONE)
def verify_frozen(root: str, lock_path: str, include_dev: bool, force_kind: str | None) -> LockFile:
    return lock_svc.verify_lock_for_install(root, Path(lock_path), include_dev=include_dev, force_kind=force_kind)


@task(name="check-lock", retries=2, retry_delay_seconds=[1, 5], retry_condition_fn=transient_only, cache_policy=NONE)
def check_lock(root: str, lock_path: str, include_dev: bool, force_kind: str | None) -> lock_svc.LockCheck:
    return lock_svc.check_lock(root, Path(lock_path), include_dev=include_dev, force_kind=force_kind)


@task(name="read-lock", retries=0, cache_policy=NONE)
def read_lock(lock_path: str) -> LockFile:
    existing = lock_svc.read_existing_lock(Path(lock_path))
    assert existing.lock is not None
    return existing.lock


@task(name="install-packages", retries=2, retry_delay_seconds=[2, 10], retry_condition_fn=transient_only,
      cache_policy=NONE)
def install_packages(lock: LockFile, target: str | None, force: bool = False) -> install_svc.InstallOutcome:
    """Stage, verify, swap into place; the previous install stays if anything fails."""
    return install_svc.install_lock(lock, target=Path(target) if target else None, force=force)
