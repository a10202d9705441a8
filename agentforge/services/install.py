"""Installing a lock: stage every package, verify it, then swap it into place — all or nothing.

Layout under the install root: ``<root>/<component name>/`` (``<repo>--<name>`` when two
repositories offer the same name), plus ``<root>/.forge/<name>.json`` recording what was
installed (commit, checksum, per-file hashes) so later commands can see direct edits.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel

from agentforge.config import Settings, get_settings
from agentforge.core.faults import checkpoint
from agentforge.core.hashing import sha256_hex
from agentforge.core.lockfile import LockedPackage, LockFile
from agentforge.db import get_engine, session_scope
from agentforge.errors import Conflict
from agentforge.services.materialise import PackageSource, locate_packages, verify_and_export
from agentforge.services.trust import enforce_signatures
from models import Component, ComponentSyncStatus
from models import repositories as repos_q

STATE_DIR = ".forge"


class InstalledPackage(BaseModel):
    key: str
    component: str
    version: str
    commit: str
    path: str


class InstallOutcome(BaseModel):
    root: str
    target: str
    packages: list[InstalledPackage]
    unchanged: int = 0


def _folder_names(packages: Mapping[str, LockedPackage]) -> dict[str, str]:
    names: dict[str, list[str]] = {}
    for key, pkg in packages.items():
        names.setdefault(pkg.component, []).append(key)
    out: dict[str, str] = {}
    for name, keys in names.items():
        for key in keys:
            if len(keys) == 1:
                out[key] = name
            else:
                repo_part = key.rpartition("/")[0].replace("://", "_").strip("/").replace("/", "_")
                out[key] = f"{repo_part}--{name}"
    return out


def _file_hashes(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): sha256_hex(p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def install_lock(lock: LockFile, *, target: Path | None = None, settings: Settings | None = None,
                 force: bool = False) -> InstallOutcome:
    """Materialise ``lock`` into ``target`` (default: the install root). Leaves the old install on failure.

    Installs into one root take turns (an exclusive ``flock`` the kernel drops if the process
    dies), and each first repairs what a killed install left there (:func:`_recover_interrupted`).
    """
    settings = settings or get_settings()
    root_dir = (target or settings.effective_install_root).expanduser().absolute()
    (root_dir / STATE_DIR).mkdir(parents=True, exist_ok=True)
    with (root_dir / STATE_DIR / "install.lock").open("a") as guard:
        fcntl.flock(guard, fcntl.LOCK_EX)
        _recover_interrupted(root_dir)
        return _install_locked(lock, root_dir, settings, force=force)


def _recover_interrupted(root_dir: Path) -> None:
    """Undo the swap of an install killed before it finished (we hold the root's install lock).

    A component in a ``.backup-*`` folder is put back unless its ``.forge`` record already
    describes the files now in place (the new version was swapped in *and* recorded): the
    records and the database must never describe other files than the folder holds.
    """
    for backup in sorted(root_dir.glob(".backup-*")):
        for saved in sorted(backup.iterdir()):
            final = root_dir / saved.name
            try:
                recorded = json.loads((root_dir / STATE_DIR / f"{saved.name}.json").read_text()).get("files")
            except (OSError, ValueError):
                recorded = None
            if final.is_dir() and not final.is_symlink() and recorded == _file_hashes(final):
                continue
            if final.is_symlink() or final.is_file():
                final.unlink()
            elif final.exists():
                shutil.rmtree(final)
            saved.rename(final)
        shutil.rmtree(backup, ignore_errors=True)
    for staging in root_dir.glob(".staging-*"):
        shutil.rmtree(staging, ignore_errors=True)


def _install_locked(lock: LockFile, root_dir: Path, settings: Settings, *, force: bool = False) -> InstallOutcome:
    packages = lock.packages
    # Signed releases: checked again at install (keys may be removed, a repository untrusted, or
    # a tag re-signed since the lock was written); refused before anything is staged.
    enforce_signatures(packages, settings=settings)
    sources = locate_packages(packages, settings=settings)
    if not force:
        _refuse_local_changes(packages, sources, root_dir, settings)
    folders = _folder_names(packages)
    state_dir = root_dir / STATE_DIR
    state_dir.mkdir(exist_ok=True)

    # Which packages are already installed exactly as locked (same commit and checksum)?
    todo: dict[str, LockedPackage] = {}
    unchanged = 0
    for key, pkg in packages.items():
        record = state_dir / f"{folders[key]}.json"
        if record.exists() and (root_dir / folders[key]).is_dir():
            try:
                state = json.loads(record.read_text())
            except (OSError, ValueError):
                state = {}
            if state.get("commit") == pkg.commit and state.get("checksum") == pkg.checksum and \
                    _file_hashes(root_dir / folders[key]) == state.get("files"):
                unchanged += 1
                continue
        todo[key] = pkg
    if not force:
        _refuse_foreign_or_modified(todo, folders, root_dir)
        _refuse_second_folder(todo, sources, folders, root_dir, settings)

    run = uuid.uuid4().hex[:12]
    staging = root_dir / f".staging-{run}"
    backup = root_dir / f".backup-{run}"
    staging.mkdir()
    moved: list[tuple[Path, Path | None]] = []  # (installed path, backup path or None)
    try:
        for key in sorted(todo):
            verify_and_export(todo[key], sources[key], staging / folders[key], settings=settings)
        checkpoint("install.staged")
        backup.mkdir()
        for key in sorted(todo):
            final = root_dir / folders[key]
            saved: Path | None = None
            if final.exists() or final.is_symlink():
                saved = backup / folders[key]
                final.rename(saved)
            moved.append((final, saved))
            checkpoint("install.swap")
            (staging / folders[key]).rename(final)
    except BaseException:
        for final, saved in reversed(moved):
            shutil.rmtree(final, ignore_errors=True)
            if saved is not None:
                saved.rename(final)
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(backup, ignore_errors=True)
        raise
    # Files are in place: record them, then the database (one transaction).
    now = datetime.now(UTC)
    for key, pkg in todo.items():
        folder = root_dir / folders[key]
        (state_dir / f"{folders[key]}.json").write_text(json.dumps({
            "key": key, "component": pkg.component, "version": pkg.version, "commit": pkg.commit,
            "checksum": pkg.checksum, "installed_at": now.isoformat(), "files": _file_hashes(folder),
        }, indent=2, sort_keys=True) + "\n")
    checkpoint("install.recorded")
    _record_installed(packages, sources, root_dir, folders, settings)
    checkpoint("install.done")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.rmtree(backup, ignore_errors=True)
    return InstallOutcome(
        root=f"{lock.root.kind} {lock.root.name} {lock.root.version}", target=str(root_dir), unchanged=unchanged,
        packages=[InstalledPackage(key=k, component=p.component, version=p.version, commit=p.commit,
                                   path=str(root_dir / folders[k])) for k, p in sorted(packages.items())])


def _refuse_local_changes(packages: Mapping[str, LockedPackage], sources: Mapping[str, PackageSource],
                          root_dir: Path, settings: Settings) -> None:
    """Never overwrite local modifications: those go through `agentforge pull`."""
    with session_scope(get_engine(settings)) as session:
        rows = session.execute(sa.select(Component.name, Component.install_path).where(
            Component.has_local_changes.is_(True), Component.is_installed.is_(True),
            Component.repository_id.in_([s.repository_id for s in sources.values()]),
            Component.name.in_([p.component for p in packages.values()]))).all()
    changed = [name for name, path in rows if path and Path(path).parent == root_dir]
    if changed:
        raise Conflict(f"installed {', '.join(sorted(changed))} have local changes that this install would overwrite",
                       code="LOCAL_CHANGES", hint="`agentforge pull COMPONENT` merges upstream into local changes.")


def _refuse_foreign_or_modified(todo: Mapping[str, LockedPackage], folders: Mapping[str, str],
                                root_dir: Path) -> None:
    """Never replace a folder whose files are not what AgentForge installed there: one it did not
    install at all (no record in ``.forge/``), or one modified since (its files differ from the
    record: edits ``status`` has not folded yet, or a folder left behind by ``repo rm --force``)."""
    foreign: list[str] = []
    modified: list[str] = []
    taken: list[str] = []
    for key in sorted(todo):
        folder = root_dir / folders[key]
        if not (folder.exists() or folder.is_symlink()):
            continue
        try:
            record = json.loads((root_dir / STATE_DIR / f"{folders[key]}.json").read_text())
            recorded = record.get("files")
        except (OSError, ValueError, AttributeError):
            record, recorded = {}, None
        if not isinstance(recorded, dict) or folder.is_symlink() or not folder.is_dir():
            foreign.append(str(folder))
        elif record.get("key") not in (None, key):
            taken.append(f"{folder} (holds {record.get('key')})")
        elif _file_hashes(folder) != recorded:
            modified.append(str(folder))
    if taken:
        raise Conflict(f"{', '.join(taken)}: installed from another repository; this install would replace it",
                       code="TARGET_TAKEN",
                       hint="Install into another folder (--target DIR), or pass --force to replace it.")
    if foreign:
        raise Conflict(f"{', '.join(foreign)} already exist{'s' if len(foreign) == 1 else ''} and "
                       f"{'was' if len(foreign) == 1 else 'were'} not installed by AgentForge; "
                       "installing would replace the files there",
                       code="TARGET_NOT_MANAGED", hint="Move them away, pick another --target, or pass --force "
                                                      "to replace them.")
    if modified:
        raise Conflict(f"{', '.join(modified)} hold{'s' if len(modified) == 1 else ''} files changed since they "
                       "were installed; installing would overwrite them",
                       code="LOCAL_CHANGES", hint="`agentforge status` shows the changes; `agentforge pull "
                                                  "COMPONENT` merges upstream into them, `agentforge revert` drops "
                                                  "them, `--force` overwrites them.")


def _refuse_second_folder(todo: Mapping[str, LockedPackage], sources: Mapping[str, PackageSource],
                          folders: Mapping[str, str], root_dir: Path, settings: Settings) -> None:
    """One commit of a component is tracked in one folder (its components row holds one
    install_path): installing it into a second folder would silently stop tracking the first."""
    if not todo:
        return
    with session_scope(get_engine(settings)) as session:
        rows = session.execute(sa.select(Component.repository_id, Component.name, Component.commit_hash,
                                         Component.install_path).where(
            Component.is_installed.is_(True), Component.install_path.is_not(None),
            Component.repository_id.in_({sources[k].repository_id for k in todo}),
            Component.commit_hash.in_({p.commit for p in todo.values()}))).all()
    where = {(r, n, c): path for r, n, c, path in rows}
    elsewhere = []
    for key, pkg in sorted(todo.items()):
        path = where.get((sources[key].repository_id, pkg.component, pkg.commit))
        if path and path != str(root_dir / folders[key]) and Path(path).is_dir():
            elsewhere.append(f"{pkg.component} {pkg.version} (at {path})")
    if elsewhere:
        raise Conflict(f"already installed elsewhere: {', '.join(elsewhere)}; one commit is tracked in one folder",
                       code="ALREADY_INSTALLED",
                       hint="Use that folder, or pass --force to install here and track this folder instead.")


def _record_installed(packages: Mapping[str, LockedPackage], sources: Mapping[str, PackageSource],
                      root_dir: Path, folders: Mapping[str, str], settings: Settings) -> None:
    now = datetime.now(UTC)
    with session_scope(get_engine(settings)) as session:
        for key, pkg in packages.items():
            src = sources[key]
            path = str(root_dir / folders[key])
            # Another version of the same component installed at this path is no longer installed.
            session.execute(sa.update(Component).where(
                Component.repository_id == src.repository_id, Component.name == pkg.component,
                Component.install_path == path, Component.commit_hash != pkg.commit,
            ).values(is_installed=False, installed_at=None, install_path=None,
                     sync_status=ComponentSyncStatus.REMOTE_ONLY))
            session.execute(sa.update(Component).where(
                Component.repository_id == src.repository_id, Component.name == pkg.component,
                Component.commit_hash == pkg.commit,
            ).values(is_installed=True, installed_at=now, install_path=path,
                     original_definition=Component.definition, sync_status=ComponentSyncStatus.SYNCED,
                     last_sync_commit=pkg.commit, last_sync_at=now))
        for repo_id in {s.repository_id for s in sources.values()}:
            repos_q.mark_outdated_installed(session=session, repository_id=repo_id)
