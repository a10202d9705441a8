"""Turn locked packages into files: from the mirrors, at exact commits, checksums verified.

Used by ``install`` (into the install root) and by ``deploy`` (into immutable bundles).
Nothing here checks out a work tree: files come from git objects (``RepositoryMirror.export``).
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from agentforge.catalogs import component_checksum_at, component_tree, export_component
from agentforge.catalogs.files import is_file_component
from agentforge.config import Settings, get_settings
from agentforge.core.hashing import component_checksum
from agentforge.core.lockfile import LockedPackage
from agentforge.db import get_engine, session_scope
from agentforge.errors import LockError, NotFound
from agentforge.gitops import RepositoryMirror
from agentforge.services.sync import open_mirror
from models import Component, Repository
from models.keys import component_key_in


@dataclass(frozen=True)
class PackageSource:
    """Where a locked package's files live: its repository's mirror and the component folder."""

    key: str
    repository_id: uuid.UUID
    repository_url: str
    path: str
    definition: dict[str, object]


def locate_packages(packages: Mapping[str, LockedPackage], *, settings: Settings | None = None
                    ) -> dict[str, PackageSource]:
    """One query for all packages: (repository URL, component, commit) → folder and definition."""
    settings = settings or get_settings()
    if not packages:
        return {}
    wanted = {(p.repository, p.component, p.commit): key for key, p in packages.items()}
    with session_scope(get_engine(settings)) as session:
        rows = session.execute(
            sa.select(Component.repository_url, Component.name, Component.commit_hash, Component.path,
                      Component.definition, Repository.id, Component.version, Component.type)
            .join(Repository, Repository.id == Component.repository_id)
            .where(component_key_in(wanted))
        ).all()
    found: dict[str, PackageSource] = {}
    for url, name, commit, path, definition, repo_id, version, kind in rows:
        key = wanted[(url, name, commit)]
        pkg = packages[key]
        # The lock's version and kind are facts of the pinned commit too: an edited one is refused.
        for field, locked, actual in (("version", pkg.version, version), ("kind", pkg.kind, kind.value.title())):
            if str(locked) != str(actual):
                raise LockError(f"{key}: {field} {locked} in the lock, but {pkg.component} at {commit[:12]} is "
                                f"{field} {actual}", code="LOCK_MISMATCH",
                                hint="Someone edited the lock; re-lock (without --frozen).")
        found[key] = PackageSource(key=key, repository_id=repo_id, repository_url=url, path=path,
                                   definition=definition)
    missing = sorted(set(packages) - set(found))
    if missing:
        first = packages[missing[0]]
        raise NotFound(
            f"the lock pins {missing[0]} at {first.commit[:12]}, which is not in the synced data",
            code="LOCKED_COMMIT_UNKNOWN",
            hint="Run `agentforge sync` for its repository, or re-lock without --frozen.",
        )
    return found


def package_checksum(mirror: RepositoryMirror, commit: str, path: str) -> str:
    """FORMATS §5 checksum of a component folder, or of a single-file catalog component
    (``agents/x.md``: the checksum of a folder holding just that file)."""
    folder = "" if path in ("", ".") else path
    try:
        if folder and is_file_component(mirror, commit, folder):
            return component_checksum_at(mirror, commit, folder)
        return component_checksum((rel, data) for rel, data, _mode in mirror.iter_files(commit, folder))
    except LockError as exc:
        if exc.code != "CHECKSUM_PATH_UNSUPPORTED":
            raise
        raise LockError(f"component at {path or '.'} ({commit[:12]}): {exc.message}", code=exc.code,
                        hint=exc.hint) from None


def iter_component_files(mirror: RepositoryMirror, commit: str, path: str) -> list[tuple[str, bytes, str]]:
    """``(relative path, bytes, mode)`` of a component as installed: a folder's files, or for a
    single-file catalog component the one file under its basename (``export_component`` writes it so)."""
    folder = "" if path in ("", ".") else path
    if folder and is_file_component(mirror, commit, folder):
        resolution = mirror.resolve_path(commit, folder)
        return [(posixpath.basename(folder), mirror.read_blob(commit, folder) or b"", str(resolution.mode))]
    return list(mirror.iter_files(commit, folder))


def verify_and_export(pkg: LockedPackage, source: PackageSource, dest: Path | None, *,
                      settings: Settings | None = None) -> None:
    """Check commit, tree and checksum against the lock; export the files when ``dest`` is given.

    A commit no ref reaches any more (a moved or deleted tag) is fetched by its id.
    """
    settings = settings or get_settings()
    mirror = open_mirror(settings, source.repository_id, source.repository_url)
    try:
        if not mirror.exists():
            mirror.ensure()
        if not mirror.has_commit(pkg.commit):
            mirror.fetch_commit(pkg.commit)
        folder = "" if source.path in ("", ".") else source.path
        # A folder's tree id, or a single-file component's blob id (what the lock records).
        tree = component_tree(mirror, pkg.commit, folder)
        if tree != pkg.tree:
            raise LockError(f"{pkg.component} {pkg.version}: the path {source.path!r} at {pkg.commit[:12]} has "
                            f"tree {tree}, the lock says {pkg.tree}", code="TREE_MISMATCH",
                            hint="The lock does not match the repository; re-lock (without --frozen).")
        checksum = package_checksum(mirror, pkg.commit, source.path)
        if checksum != pkg.checksum:
            raise LockError(f"{pkg.component} {pkg.version}: checksum {checksum} differs from the lock's "
                            f"{pkg.checksum}", code="CHECKSUM_MISMATCH",
                            hint="Someone edited the lock or the history; re-lock (without --frozen).")
        mirror.pin(pkg.commit)
        if dest is not None:
            export_component(mirror, pkg.commit, folder, dest)
    finally:
        mirror.close()


def materialise(packages: Mapping[str, LockedPackage], dest_of: Mapping[str, Path], *,
                settings: Settings | None = None) -> dict[str, PackageSource]:
    """Verify every package and export it to ``dest_of[key]`` (keys missing there: verify only)."""
    settings = settings or get_settings()
    sources = locate_packages(packages, settings=settings)
    for key in sorted(packages):
        verify_and_export(packages[key], sources[key], dest_of.get(key), settings=settings)
    return sources
