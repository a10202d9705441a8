"""Files, tree ids and checksums of catalog components, folders and single files alike.

Native components are folders; catalog components are often one file (``agents/x.md``,
``commands/y.md``, a plugin's ``.mcp.json``). For those the record's ``path`` is the file's
path and these helpers give the lock and materialise code what it needs:

* ``component_tree`` — the folder's tree id, or the file's **blob id** (what a folder's
  ``tree`` is for change detection: equal ids mean equal content);
* ``component_files`` — ``[(relative path, bytes)]``: a folder's files relative to it, or
  ``[(basename, bytes)]`` for a file, so the FORMATS §5 checksum of a single-file component
  is the checksum of a folder holding just that file (``sha256sum`` over an install of it);
* ``component_checksum_at`` and ``export_component`` on top of them.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any, Protocol

from agentforge.core.hashing import component_checksum
from agentforge.errors import AgentForgeError

__all__ = ["FilesMirror", "component_checksum_at", "component_files", "component_tree", "export_component",
           "is_file_component"]

_MODE_SUBMODULE = "160000"
_MODE_EXECUTABLE = "100755"


class FilesMirror(Protocol):
    """The part of ``agentforge.gitops.RepositoryMirror`` these helpers use."""

    def read_blob(self, commit: str, path: str, *, max_size: int | None = None,
                  follow_symlinks: bool = True) -> bytes | None: ...
    def tree_id(self, commit: str, path: str) -> str | None: ...
    def list_files(self, commit: str, path: str) -> list[Any]: ...
    def resolve_path(self, commit: str, path: str, *, follow_final: bool = True) -> Any: ...
    def export(self, commit: str, path: str, dest: Path) -> None: ...


def _folder(path: str) -> str:
    return "" if path in ("", ".") else path


def is_file_component(mirror: FilesMirror, commit: str, path: str) -> bool:
    """True when ``path`` is a file (after following in-repository symlinks), not a folder."""
    resolution = mirror.resolve_path(commit, _folder(path))
    return bool(resolution.exists and resolution.kind == "blob")


def component_tree(mirror: FilesMirror, commit: str, path: str) -> str | None:
    """The folder's tree id, or the file's blob id; None when the path is missing or leaves the repository."""
    resolution = mirror.resolve_path(commit, _folder(path))
    if not resolution.exists:
        return None
    return str(resolution.object_id) if resolution.kind in ("tree", "blob") else None


def component_files(mirror: FilesMirror, commit: str, path: str) -> list[tuple[str, bytes]]:
    """What the checksum covers: every file below a folder (relative paths), or the one file (its basename)."""
    if is_file_component(mirror, commit, path):
        data = mirror.read_blob(commit, path)
        assert data is not None  # resolve_path said it is a blob
        return [(posixpath.basename(path), data)]
    out: list[tuple[str, bytes]] = []
    for entry in mirror.list_files(commit, _folder(path)):
        if entry.mode == _MODE_SUBMODULE:
            continue
        data = mirror.read_blob(commit, posixpath.join(_folder(path), entry.path), follow_symlinks=False)
        out.append((entry.path, data or b""))
    return out


def component_checksum_at(mirror: FilesMirror, commit: str, path: str) -> str:
    """FORMATS §5 checksum of a component's files (a single file counts as a folder holding it)."""
    return component_checksum(component_files(mirror, commit, path))


def export_component(mirror: FilesMirror, commit: str, path: str, dest: Path) -> None:
    """Write the component to ``dest``: a folder as ``mirror.export`` does, a file as ``dest/<basename>``."""
    if not is_file_component(mirror, commit, path):
        mirror.export(commit, _folder(path), dest)
        return
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise AgentForgeError(f"Export destination {dest} exists and is not empty", code="GIT_EXPORT_DEST")
    resolution = mirror.resolve_path(commit, path)
    data = mirror.read_blob(commit, path)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / posixpath.basename(path)
    with open(target, "xb") as handle:
        handle.write(data or b"")
    target.chmod(0o755 if resolution.mode == _MODE_EXECUTABLE else 0o644)
