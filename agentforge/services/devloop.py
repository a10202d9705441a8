"""The local development loop as plain functions: edit, status, diff, history, revert, pull, resolve.

State on disk, next to install's record ``<root>/.forge/<folder>.json`` (what was installed,
file hashes of the *original*):

* ``<folder>.seen.json`` — file hashes as the loop last saw them, so a direct edit is folded
  into history once, not at every ``status``;
* ``<folder>.merge.json`` and ``<folder>.conflicts/{ours,theirs}/`` — a pull waiting for
  ``resolve`` (both sides of every conflicting field and file);
* ``<folder>.pull-journal.json`` — present only while a pull swaps files; if the process dies
  there, :func:`recover_interrupted` puts the previous files back unless the database says the
  pull committed;
* ``status.index`` (one per install root) — ``status``'s stat cache, git's index in miniature:
  which folders were unchanged when last seen, so an unchanged folder is neither folded nor
  hashed again (see :class:`_InstallRoot`; deleting it changes no answer).

Pull order (ARCHITECTURE: record intent, commit, do I/O, record outcome): ``plan_pull`` writes
an IN_PROGRESS sync_operations row and commits; ``prepare_pull`` reads git objects and builds
the merged folder in a staging directory (nothing installed changes); ``apply_pull`` swaps the
folder in by renames, then moves the installed row in one transaction, and restores the old
folder if anything before that commit fails. :data:`FAULT_HOOK` lets tests fail each step.
"""

from __future__ import annotations

import copy
import difflib
import functools
import getpass
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel
from sqlalchemy.orm import Session

from agentforge.config import Settings, get_settings
from agentforge.core.gcpause import collector_paused
from agentforge.core.merge import (
    MISSING,
    FieldChange,
    FieldConflict,
    diff_definitions,
    has_conflict_markers,
    render_path,
    three_way_merge,
)
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, ConfigError, Conflict, DocumentError, GitError, NotFound
from models import Component, ComponentSyncStatus, SyncOperationStatus, SyncOperationType
from models import changes as changes_q

# YAML (agentforge.core.yamlio, deepmerge, hashing) and git (services.sync, materialise) are
# imported by the functions that use them: `status` answers without either (issue 10).

DEFINITION_FILE = "component.yaml"
STATE_DIR = ".forge"
# ``status``'s stat cache, one per install root in STATE_DIR (see :class:`_InstallRoot`): not a
# name any component's ``<folder>.json``-style state file can take.
STATUS_INDEX = "status.index"
_JOURNAL = ".pull-journal.json"
PullMode = Literal["merge", "overwrite", "stash"]

# Tests set this to a callable that raises at a named step ("plan", "intent", "read", "merge",
# "stage", "swap", "records", "database", "commit") to prove a pull leaves nothing half done.
FAULT_HOOK: Callable[[str], None] | None = None


def _checkpoint(step: str) -> None:
    if FAULT_HOOK is not None:
        FAULT_HOOK(step)


# --- small file helpers -----------------------------------------------------------------------


def _atomic_write(path: Path, data: bytes, mode: int | None = None) -> None:
    """temp file in the same folder + rename: readers see the old or the new content, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        elif path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _write_json(path: Path, data: Any) -> None:
    _atomic_write(path, (json.dumps(data, indent=2, sort_keys=True, default=str) + "\n").encode())


def _read_json(path: Path | str) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            value = json.loads(handle.read())
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _walk(folder: str, dirs: dict[str, os.stat_result | None] | None = None
          ) -> list[tuple[str, os.DirEntry[str]]]:
    """``(relative path, entry)`` of the folder's regular files: the files ``rglob("*")`` finds
    minus symlinks (what install hashes). Symlinked directories are not followed and an
    unreadable directory is skipped, as ``rglob`` does.

    With ``dirs``, also the stat of every directory walked (``""``: the folder), each taken
    before the directory is listed (None when it could not be taken).
    """
    out: list[tuple[str, os.DirEntry[str]]] = []
    if dirs is not None:
        dirs[""] = _stat_or_none(folder)
    todo = [(folder, "")]
    while todo:
        directory, prefix = todo.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except (PermissionError, FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            try:
                if entry.is_file(follow_symlinks=False):
                    out.append((prefix + entry.name, entry))
                elif entry.is_dir(follow_symlinks=False):
                    if dirs is not None:
                        dirs[prefix + entry.name] = _stat_or_none(entry)
                    todo.append((entry.path, f"{prefix}{entry.name}/"))
            except OSError:
                continue
    return out


def _stat_or_none(where: str | os.DirEntry[str]) -> os.stat_result | None:
    """The stat of a path (followed) or of a directory entry (not followed), None on failure."""
    try:
        return os.stat(where) if isinstance(where, str) else where.stat(follow_symlinks=False)
    except OSError:
        return None


def _signature(st: os.stat_result) -> str:
    """``size:mtime_ns:inode:ctime_ns``, what a file's content is judged unchanged by (git's index
    keeps the same): an in-place edit moves size or mtime, and always ctime (which no tool can
    set back); a replacing rename changes the inode."""
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ino}:{st.st_ctime_ns}"


def _read_folder(folder: str, dirs: dict[str, os.stat_result | None] | None = None
                 ) -> tuple[dict[str, bytes], dict[str, str], int]:
    """The folder's regular files, their stat signatures and the newest of their mtimes and
    ctimes (``dirs`` as for :func:`_walk`). Each signature is taken (``fstat``) before the read:
    a write after it shows as a changed signature next time, never as a stale hash."""
    files: dict[str, bytes] = {}
    signatures: dict[str, str] = {}
    newest = 0
    for rel, entry in sorted(_walk(folder, dirs), key=lambda item: item[0]):
        with open(entry.path, "rb") as handle:
            st = os.fstat(handle.fileno())
            files[rel] = handle.read()
        signatures[rel] = _signature(st)
        newest = max(newest, st.st_mtime_ns, st.st_ctime_ns)
    return files, signatures, newest


def _disk_files(folder: Path) -> dict[str, bytes]:
    """The folder's regular files (what install hashes: symlinks excluded)."""
    return _read_folder(str(folder))[0]


def _hashes(files: Mapping[str, bytes]) -> dict[str, str]:
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}  # hashing.sha256_hex


class _Paths:
    """Where the loop's state files of one installed folder live."""

    def __init__(self, install_path: str) -> None:
        self.folder = Path(install_path)
        self.root = self.folder.parent
        state = self.root / STATE_DIR
        name = self.folder.name
        self.record = state / f"{name}.json"
        self.seen = state / f"{name}.seen.json"
        self.merge = state / f"{name}.merge.json"
        self.conflicts = state / f"{name}.conflicts"
        self.journal = state / f"{name}{_JOURNAL}"
        self.stash_root = state / "stash" / name

    def original_hashes(self) -> dict[str, str]:
        files = _read_json(self.record).get("files")
        return dict(files) if isinstance(files, dict) else {}

    def seen_hashes(self) -> dict[str, str]:
        files = _read_json(self.seen).get("files")
        return dict(files) if isinstance(files, dict) else self.original_hashes()


_Author = str | None | Callable[[], str | None]  # the author, or how to find it out when needed


def _author_of(author: _Author) -> str | None:
    return author() if callable(author) else author


def _author(session: Session) -> str | None:
    """user_settings for the current user first (the design's source), then `git config`."""
    user = os.environ.get("AGENTFORGE_USER") or getpass.getuser()
    identity = changes_q.user_identity(session=session, user_id=user)
    name, email = identity if identity else (None, None)
    if not (name or email):
        def git_config(key: str) -> str | None:
            try:
                out = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True, timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                return None
            return out.stdout.strip() or None

        name, email = git_config("user.name"), git_config("user.email")
    if name and email:
        return f"{name} <{email}>"
    return name or email or user


def _rows(changes: Iterable[FieldChange]) -> list[changes_q.FieldChangeRow]:
    return [changes_q.FieldChangeRow(c.field_path, c.change_type, c.old, c.new) for c in changes]


def _file_change_rows(before: Mapping[str, str], after: Mapping[str, str]) -> list[changes_q.FieldChangeRow]:
    """History rows for files (other than the definition) whose hash changed: ``file:<path>``."""
    out: list[changes_q.FieldChangeRow] = []
    for rel in sorted(set(before) | set(after)):
        if rel == DEFINITION_FILE or before.get(rel) == after.get(rel):
            continue
        kind = "CREATE" if rel not in before else "DELETE" if rel not in after else "UPDATE"
        out.append(changes_q.FieldChangeRow(f"file:{rel}", kind, before.get(rel), after.get(rel)))
    return out


def _effective_local(row: Component) -> dict[str, Any]:
    return copy.deepcopy(row.local_definition if row.local_definition is not None
                         else row.original_definition if row.original_definition is not None else row.definition)


def _original(row: Component) -> dict[str, Any]:
    return copy.deepcopy(row.original_definition if row.original_definition is not None else row.definition)


def _files_modified(paths: _Paths, current: Mapping[str, str] | None = None) -> list[str]:
    """Files other than the definition that differ from what was installed."""
    now = current if current is not None else _hashes(_disk_files(paths.folder))
    return _modified_against(paths.original_hashes(), now)


def _modified_against(original: Mapping[str, str], now: Mapping[str, str]) -> list[str]:
    return sorted(rel for rel in set(original) | set(now)
                  if rel != DEFINITION_FILE and original.get(rel) != now.get(rel))


def _status_after(row: Component, local: Mapping[str, Any] | None, files_modified: bool,
                  in_conflict: bool) -> tuple[bool, ComponentSyncStatus]:
    has_changes = (local is not None and diff_definitions(_original(row), local) != []) or files_modified
    if in_conflict:
        return has_changes, ComponentSyncStatus.CONFLICT
    if row.sync_status == ComponentSyncStatus.FORKED:
        return has_changes, ComponentSyncStatus.FORKED
    if has_changes:
        return True, ComponentSyncStatus.MODIFIED
    newer = row.upstream_commit and row.upstream_commit != row.commit_hash
    return False, ComponentSyncStatus.OUTDATED if newer else ComponentSyncStatus.SYNCED


def _validate(definition: Mapping[str, Any], row: Component, source: str) -> None:
    from agentforge.core.documents import parse_component  # pydantic models: imported when a fold validates

    doc = parse_component(definition, source=source)
    original = _original(row)
    if doc.kind != original.get("kind"):
        raise DocumentError(f"{source}: kind: cannot change {original.get('kind')!r} into {doc.kind!r}",
                            hint="Create a new component instead (`agentforge component new`).")
    if doc.name != row.name:
        raise DocumentError(f"{source}: metadata.name: cannot rename {row.name!r} to {doc.name!r} locally",
                            hint="Renaming is a change to push upstream, not a local edit.")


def _definition_bytes(definition: Mapping[str, Any], upstream: Mapping[str, Any] | None,
                      upstream_bytes: bytes | None) -> bytes:
    """The upstream file verbatim when the definition equals it (keeps comments and hashes)."""
    if upstream is not None and upstream_bytes is not None and not diff_definitions(upstream, definition):
        return upstream_bytes
    from agentforge.core.yamlio import dump_yaml

    return dump_yaml(dict(definition)).encode("utf-8")


# --- recovery ---------------------------------------------------------------------------------


def recover_interrupted(install_path: str, *, settings: Settings | None = None) -> bool:
    """Finish or undo a pull whose process died while swapping files; True when it acted."""
    paths = _Paths(install_path)
    journal = _read_json(paths.journal)
    if not journal:
        return False
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        status = changes_q.operation_status(session=session, operation_id=uuid.UUID(journal["operation_id"]))
    backup = Path(journal["backup"])
    committed = status in (SyncOperationStatus.COMPLETED, SyncOperationStatus.REQUIRES_MANUAL_RESOLUTION)
    if committed:
        shutil.rmtree(backup, ignore_errors=True)
    else:
        _restore(paths, journal)
        with session_scope(get_engine(settings)) as session:
            changes_q.finish_operation(session=session, operation_id=uuid.UUID(journal["operation_id"]),
                                       status=SyncOperationStatus.FAILED, error="interrupted; files restored")
    for extra in journal.get("cleanup", []):
        shutil.rmtree(extra, ignore_errors=True)
    paths.journal.unlink(missing_ok=True)
    return True


def _restore(paths: _Paths, journal: Mapping[str, Any]) -> None:
    """Put the pre-pull folder and state files back (idempotent: safe to run twice)."""
    backup = Path(journal["backup"])
    folder_backup = backup / "folder"
    if folder_backup.is_dir():
        if paths.folder.exists():
            shutil.rmtree(paths.folder)
        folder_backup.rename(paths.folder)
    for name, existed in journal.get("state_files", {}).items():
        target = paths.root / STATE_DIR / name
        saved = backup / "state" / name
        if existed and saved.exists():
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
            saved.rename(target)
        elif not existed:
            if target.is_dir():
                shutil.rmtree(target, ignore_errors=True)
            else:
                target.unlink(missing_ok=True)
    shutil.rmtree(backup, ignore_errors=True)


# --- folding direct edits ---------------------------------------------------------------------


class FoldOutcome(BaseModel):
    name: str
    changed_fields: list[str] = []
    changed_files: list[str] = []
    warning: str | None = None


def _fold(session: Session, row: Component, author: _Author,
          current: tuple[Mapping[str, bytes], Mapping[str, str]] | None = None) -> FoldOutcome:
    """Fold direct edits of the installed files into local_definition and history.

    ``author`` may be a callable, asked only when history is recorded (it can run ``git config``);
    ``current`` is the folder's files and their hashes when the caller has just read them.
    """
    assert row.install_path is not None
    paths = _Paths(row.install_path)
    out = FoldOutcome(name=row.name)
    if current is not None:
        files, now = current[0], dict(current[1])
    else:
        files = _disk_files(paths.folder)
        now = _hashes(files)
    seen = paths.seen_hashes()
    if now == seen:
        return out
    in_conflict = row.sync_status == ComponentSyncStatus.CONFLICT
    local = row.local_definition
    if now.get(DEFINITION_FILE) != seen.get(DEFINITION_FILE):
        source = str(paths.folder / DEFINITION_FILE)
        try:
            if DEFINITION_FILE not in files:
                raise DocumentError(f"{source}: the file was deleted", hint="`agentforge revert` restores it.")
            from agentforge.core.yamlio import load_document

            parsed = load_document(files[DEFINITION_FILE], source=source)
            if not isinstance(parsed, dict):
                raise DocumentError(f"{source}: expected a mapping at the top level")
            _validate(parsed, row, source)
        except DocumentError as exc:
            # Not folded (the previous local_definition stays); status shows why.
            out.warning = exc.message
            now[DEFINITION_FILE] = seen.get(DEFINITION_FILE, "")
        else:
            before = _effective_local(row)
            field_changes = diff_definitions(before, parsed)
            out.changed_fields = [c.field_path for c in field_changes]
            changes_q.record_changes(session=session, component_id=row.id, changes=_rows(field_changes),
                                     reason="direct edit of component.yaml",
                                     author=_author_of(author) if field_changes else None, commit_hash=None)
            local = parsed
    file_rows = _file_change_rows(seen, now)
    out.changed_files = [r.field_path.removeprefix("file:") for r in file_rows]
    changes_q.record_changes(session=session, component_id=row.id, changes=file_rows,
                             reason="direct edit of an installed file",
                             author=_author_of(author) if file_rows else None, commit_hash=None)
    has_changes, status = _status_after(row, local, bool(_files_modified(paths, now)), in_conflict)
    if local is not None and not diff_definitions(_original(row), local):
        local = None
    row.local_definition = local
    row.has_local_changes = has_changes
    row.sync_status = status
    session.flush()
    _write_json(paths.seen, {"files": now})
    return out


def _remember_seen(install_path: str) -> None:
    paths = _Paths(install_path)
    _write_json(paths.seen, {"files": _hashes(_disk_files(paths.folder))})


# --- status -----------------------------------------------------------------------------------


class StatusLine(BaseModel):
    name: str
    repository: str | None
    kind: str
    version: str | None
    sync_status: str
    installed_commit: str | None
    upstream_commit: str | None
    upstream_version: str | None
    last_sync: datetime | None
    local_changes: int
    install_path: str | None
    warning: str | None = None


# A file changed less than this before a status scan began may change again without its stat
# signature changing (coarse kernel timestamps, 2-second ones on FAT, a clock a little off): git's
# "racily clean" files. Their folder is not cached until it has been quiet that long.
_RACY_NS = 2_000_000_000
_INDEX_VERSION = 2
_clock = time.time_ns  # when a status scan begins (tests move it to make files racy or safely old)
_Current = tuple[dict[str, bytes], dict[str, str]]  # a folder's files and their hashes, as just read


class _InstallRoot:
    """One install root as ``status`` sees it: a single listing of its state folder (journals,
    state files' signatures) and its stat index, ``<root>/.forge/status.index``.

    The index is git's index for the same reason: per installed folder (by name) it keeps the
    stat signature (:func:`_signature`) of every file in the folder, of every directory in it
    (and the folder itself), and of the two state files the answer depends on (``<name>.json``,
    the installed hashes; ``<name>.seen.json``, the hashes last folded), the number of modified
    files, and when the scan that wrote it began (``at``). An entry is written only for a folder
    that needed no fold and whose every mtime and ctime is older than that scan by
    :data:`_RACY_NS` (git's "racily clean" rule), so any later change moves a ctime at least.

    It answers only when every signature still matches. Whether a file was added or removed is
    seen from the directories' signatures (POSIX moves a directory's mtime and ctime when an
    entry in it is created, removed or renamed) where the index recorded that this filesystem
    does so (:func:`_probe_directory_times`, git's ``--test-untracked-cache`` in one step), and
    from listing every directory elsewhere. Anything else (no entry, a mismatch, a corrupt or
    missing index) reads and hashes the folder as without it and folds what changed. It is only
    a cache: deleting it changes no result.
    """

    def __init__(self, root: str) -> None:
        self.state_dir = os.path.join(root, STATE_DIR)
        self.index_path = os.path.join(self.state_dir, STATUS_INDEX)
        state = _stat_or_none(self.state_dir)
        self.device = state.st_dev if state is not None else None
        try:
            with os.scandir(self.state_dir) as listing:
                self.state_files = {e.name: e for e in listing}
        except OSError:
            self.device, self.state_files = None, {}
        #: folders with a pull journal (a pull died swapping their files)
        self.journals = {n.removesuffix(_JOURNAL) for n in self.state_files if n.endswith(_JOURNAL)}
        index = _read_json(self.index_path) if STATUS_INDEX in self.state_files else {}
        if index.get("version") != _INDEX_VERSION:
            index = {}
        folders = index.get("folders")
        self.cached: dict[str, Any] = folders if isinstance(folders, dict) else {}
        #: directory signatures tell added and removed files here (else every directory is listed)
        self.trust_directories = self.device is not None and index.get("directory_times") == {
            "device": self.device, "updated": True}
        self.entries: dict[str, Any] = {}

    def scan(self, folder: str, name: str, scan_started: int) -> tuple[int, _Current | None]:
        """(files modified against the installed ones, the folder's files and hashes when a fold is needed)."""
        record, seen_file = self.state_files.get(f"{name}.json"), self.state_files.get(f"{name}.seen.json")
        state = [_entry_signature(record), _entry_signature(seen_file)]  # before they are read
        cached = self.cached.get(name)
        if type(cached) is dict and cached.get("state") == state and type(cached.get("modified")) is int:
            try:
                unchanged = self._unchanged(folder, cached)
            except (OSError, TypeError, AttributeError):
                unchanged = False
            if unchanged:
                self.entries[name] = cached
                return cached["modified"], None
        dirs: dict[str, os.stat_result | None] = {}
        files, signatures, newest = _read_folder(folder, dirs)
        now = _hashes(files)
        # A state file not listed reads as absent (no failing open per folder).
        recorded = _read_json(record.path).get("files") if record is not None else None
        original = dict(recorded) if isinstance(recorded, dict) else {}
        seen_files = _read_json(seen_file.path).get("files") if seen_file is not None else None
        seen = dict(seen_files) if isinstance(seen_files, dict) else original
        modified = len(_modified_against(original, now))
        if now != seen:
            return modified, (files, now)
        times = [t for entry in (record, seen_file) if entry is not None for t in _times(entry)]
        times += [t for st in dirs.values() if st is not None for t in (st.st_mtime_ns, st.st_ctime_ns)]
        if max([newest, *times]) < scan_started - _RACY_NS:
            entry: dict[str, Any] = {"at": scan_started, "modified": modified, "files": signatures, "state": state}
            if all(st is not None and st.st_dev == self.device for st in dirs.values()):
                entry["dirs"] = {rel: _directory_signature(st) for rel, st in dirs.items() if st is not None}
            self.entries[name] = entry
        return modified, None

    def _unchanged(self, folder: str, cached: dict[str, Any]) -> bool:
        """Whether the folder's files, and the set of them, are as ``cached`` recorded."""
        files, dirs = cached.get("files"), cached.get("dirs")
        if not (self.trust_directories and type(files) is dict and type(dirs) is dict and "" in dirs):
            return bool(files == {rel: _signature(entry.stat(follow_symlinks=False)) for rel, entry in _walk(folder)})
        # No directory changed, so no file was added or removed: one lstat per recorded file.
        # (Plain loops: generator set-up per folder was a tenth of a 10,000-folder status.)
        for rel, sig in dirs.items():
            if _directory_signature(os.stat(folder) if not rel else os.lstat(f"{folder}/{rel}")) != sig:
                return False
        for rel, sig in files.items():
            if rel.rpartition("/")[0] not in dirs or _signature(os.lstat(f"{folder}/{rel}")) != sig:
                return False  # (a file outside every recorded directory: an entry not to trust)
        return True

    def save(self) -> None:
        """Write the index (atomically) when an entry changed; a failure only costs the next run time."""
        if self.device is None or self.entries == self.cached:
            return
        try:
            probe = _probe_directory_times(self.state_dir)
            data = json.dumps({"version": _INDEX_VERSION, "directory_times": probe, "folders": self.entries},
                              separators=(",", ":"))
            _atomic_write(Path(self.index_path), data.encode())
        except OSError:
            pass


def _probe_directory_times(directory: str) -> dict[str, Any]:
    """Whether creating and removing a file moves ``directory``'s mtime or ctime on this
    filesystem (POSIX says it must; some network and FUSE filesystems do not): ``updated``,
    and the ``device`` it was found on. A coarse clock can make it answer no: then status lists."""
    before = os.stat(directory)
    fd, probe = tempfile.mkstemp(prefix=".status-probe.", dir=directory)
    os.close(fd)
    os.unlink(probe)
    after = os.stat(directory)
    moved = (after.st_mtime_ns, after.st_ctime_ns) != (before.st_mtime_ns, before.st_ctime_ns)
    return {"device": after.st_dev, "updated": moved and after.st_dev == before.st_dev}


def _directory_signature(st: os.stat_result) -> str:
    """A directory's :func:`_signature` with its device (one on another filesystem is not trusted)."""
    return f"{st.st_dev}:{_signature(st)}"


def _entry_signature(entry: os.DirEntry[str] | None) -> str | None:
    try:
        return _signature(entry.stat()) if entry is not None else None
    except OSError:
        return None


def _times(entry: os.DirEntry[str]) -> tuple[int, int]:
    try:
        st = entry.stat()  # cached by the entry: the stat the signature was made from
    except OSError:
        return 0, 0
    return st.st_mtime_ns, st.st_ctime_ns


def _locate(install_path: str) -> tuple[str, str, str]:
    """(folder, install root, folder name), as :class:`_Paths` derives them (``Path`` parsing is the
    slow part of a status over 10,000 rows, so a path already in normal form is split as a string)."""
    if install_path.startswith("/") and "//" not in install_path and "/./" not in install_path and \
            not install_path.endswith(("/", "/.")):
        root, _, name = install_path.rpartition("/")
        return install_path, root or "/", name
    folder = Path(install_path)
    return str(folder), str(folder.parent), folder.name


def _locate_all(lines: Sequence[changes_q.InstalledLine], roots: dict[str, _InstallRoot]
                ) -> list[tuple[_InstallRoot, str, str] | None]:
    """Per line, (its install root, folder, folder name), or None when it has no install path."""
    out: list[tuple[_InstallRoot, str, str] | None] = []
    for line in lines:
        if not line.install_path:
            out.append(None)
            continue
        folder, root, name = _locate(line.install_path)
        if root not in roots:
            roots[root] = _InstallRoot(root)
        out.append((roots[root], folder, name))
    return out


def status(*, settings: Settings | None = None) -> list[StatusLine]:
    """Installed components (direct edits folded first) and scaffolded LOCAL_ONLY ones.

    A folder unchanged since the last run is answered from the stat index (:class:`_InstallRoot`);
    the others are read and hashed, and folded when they differ from what was last seen. Rows are
    read with one Core query; ORM rows (and definitions) only for the folds and local definitions.
    """
    with collector_paused():
        return _status(settings or get_settings())


def _status(settings: Settings) -> list[StatusLine]:
    engine = get_engine(settings)
    with session_scope(engine) as session:
        lines = changes_q.installed_lines(session=session)
    roots: dict[str, _InstallRoot] = {}
    located = _locate_all(lines, roots)
    # A pull killed while swapping files left its journal: finish or undo that first. One listing
    # of each state folder tells where (no lookup per row).
    recovered = False
    for where in located:
        if where is not None and where[2] in where[0].journals:
            recovered = recover_interrupted(where[1], settings=settings) or recovered
    out: list[StatusLine] = []
    with session_scope(engine) as session:
        if recovered:  # files, state files and rows may have been put back
            lines = changes_q.installed_lines(session=session)
            roots = {}
            located = _locate_all(lines, roots)
        scan_started = _clock()
        modified = [0] * len(lines)
        pending: dict[int, _Current] = {}  # by position in lines
        for i, where in enumerate(located):
            if where is not None:
                root, folder, name = where
                modified[i], current = root.scan(folder, name, scan_started)
                if current is not None:
                    pending[i] = current
        folded: dict[int, tuple[Component, FoldOutcome]] = {}
        if pending:
            author = functools.cache(functools.partial(_author, session))  # only asked when history is written
            rows = changes_q.components_by_id(session=session, ids=[lines[i].id for i in pending])
            for i in sorted(pending):
                row = rows.get(lines[i].id)
                if row is not None and row.install_path == lines[i].install_path:
                    folded[i] = row, _fold(session, row, author, pending[i])
        newest = changes_q.newest_other_releases(session=session)
        local_definitions = changes_q.local_definitions_of_installed(session=session) if any(
            line.has_local_definition and i not in folded for i, line in enumerate(lines)) else {}
        for i, line in enumerate(lines):
            warning = None
            sync_status = line.sync_status
            n_fields = 0
            if i in folded:
                row, fold = folded[i]
                warning, sync_status = fold.warning, row.sync_status.value
                if row.local_definition:
                    n_fields = len(diff_definitions(_original(row), row.local_definition))
            elif line.has_local_definition:
                original, local = local_definitions.get(line.id, (None, None))
                if local:
                    n_fields = len(diff_definitions(original, local))
            best = newest.get(line.id) if newest else None
            upstream = line.upstream_commit
            upstream_version = None
            if best is not None and best.commit != line.commit_hash and \
                    changes_q._version_key(best.version) > changes_q._version_key(line.version):
                upstream, upstream_version = best.commit, best.version
            out.append(StatusLine(
                name=line.name, repository=line.repository, kind=line.type.title(), version=line.version,
                sync_status=sync_status, installed_commit=line.commit_hash,
                upstream_commit=upstream, upstream_version=upstream_version,
                last_sync=line.last_sync_at, local_changes=n_fields + modified[i],
                install_path=line.install_path, warning=warning))
        for path, info in sorted(changes_q.local_components(session=session).items()):
            exists = (Path(path) / DEFINITION_FILE).is_file()
            out.append(StatusLine(
                name=str(info.get("name")), repository=None, kind=str(info.get("kind")), version=None,
                sync_status=ComponentSyncStatus.LOCAL_ONLY.value, installed_commit=None, upstream_commit=None,
                upstream_version=None, last_sync=None, local_changes=0, install_path=path,
                warning=None if exists else f"{path}/{DEFINITION_FILE} no longer exists"))
    for root in roots.values():
        root.save()
    return out


# --- edit / revert ----------------------------------------------------------------------------


class EditOutcome(BaseModel):
    name: str
    changes: list[dict[str, Any]]
    sync_status: str
    path: str


def _installed_row(session: Session, name: str, *, for_update: bool = True) -> Component:
    row = changes_q.find_installed(session=session, name=name, for_update=for_update)
    if not row.install_path or not Path(row.install_path).is_dir():
        raise NotFound(f"{name}: the installed folder {row.install_path} is missing",
                       hint=f"Reinstall it with `agentforge install {name}`.")
    return row


def edit_component(name: str, *, sets: Sequence[str] = (), unsets: Sequence[str] = (), reason: str | None = None,
                   settings: Settings | None = None) -> EditOutcome:
    """Apply ``--set PATH=VALUE`` / ``--unset PATH`` to the local definition and component.yaml.

    Everything is checked first (paths, values, the kind's schema); on any error nothing changes.
    """
    from agentforge.core.deepmerge import parse_set_arguments, set_path, unset_path

    settings = settings or get_settings()
    if not sets and not unsets:
        raise ConfigError("nothing to edit", hint="Pass --set PATH=VALUE or --unset PATH.")
    assignments = parse_set_arguments(sets)
    with session_scope(get_engine(settings)) as session:
        _, install_path = _source_of(session, name)
    recover_interrupted(install_path, settings=settings)
    with session_scope(get_engine(settings)) as session:
        row = _installed_row(session, name)
        assert row.install_path is not None
        author = _author(session)
        folded = _fold(session, row, author)
        if folded.warning:  # the file on disk does not parse: writing over it would lose the user's text
            raise DocumentError(folded.warning,
                                hint="Fix the file by hand (or `agentforge revert` it), then edit again.")
        before = _effective_local(row)
        edited = copy.deepcopy(before)
        for path, value in assignments:
            set_path(edited, path, value)
        for path in unsets:
            if not unset_path(edited, path):
                raise ConfigError(f"--unset {path}: {path} does not exist in {name}'s definition",
                                  hint="`agentforge diff` and `agentforge show` list the fields.")
        _validate(edited, row, f"{name} (after --set/--unset)")
        field_changes = diff_definitions(before, edited)
        paths = _Paths(row.install_path)
        target = paths.folder / DEFINITION_FILE
        previous = target.read_bytes() if target.exists() else None
        _atomic_write(target, _definition_bytes(edited, _original(row), None))
        try:
            changes_q.record_changes(session=session, component_id=row.id, changes=_rows(field_changes),
                                     reason=reason, author=author, commit_hash=None)
            has_changes, status = _status_after(row, edited, bool(_files_modified(paths)),
                                                row.sync_status == ComponentSyncStatus.CONFLICT)
            row.local_definition = edited
            row.has_local_changes = has_changes
            row.sync_status = status
            session.flush()
            _checkpoint("edit-commit")
        except BaseException:
            if previous is None:
                target.unlink(missing_ok=True)
            else:
                _atomic_write(target, previous)
            raise
        result = EditOutcome(name=row.name, sync_status=status.value, path=str(target),
                             changes=[{"field": c.field_path, "change": c.change_type, "old": c.old, "new": c.new}
                                      for c in field_changes])
    _remember_seen(row.install_path)
    return result


def _original_files(settings: Settings, source: tuple[uuid.UUID, str, str, str]) -> dict[str, tuple[bytes, str]]:
    """Files of the installed original: (repository id, url, component path, commit) from the mirror."""
    from agentforge.services.materialise import iter_component_files
    from agentforge.services.sync import open_mirror  # with git: imported only by the commands that read it

    repository_id, url, path, commit = source
    mirror = open_mirror(settings, repository_id, url)
    try:
        if not mirror.exists():
            mirror.ensure()
        if not mirror.has_commit(commit):
            mirror.fetch_commit(commit)
        folder = "" if path in ("", ".") else path
        return {rel: (data, mode) for rel, data, mode in iter_component_files(mirror, commit, folder)
                if mode != "120000"}
    finally:
        mirror.close()


def _source_of(session: Session, name: str) -> tuple[tuple[uuid.UUID, str, str, str], str]:
    """(mirror source, install path) of an installed component, read in a short transaction."""
    row = _installed_row(session, name, for_update=False)
    assert row.install_path is not None
    return (row.repository_id, row.repository_url, row.path, row.commit_hash), row.install_path


def revert_component(name: str, *, field: str | None = None, reason: str | None = None,
                     settings: Settings | None = None) -> EditOutcome:
    """Undo local changes: one field (``--field``), or everything (definition and files)."""
    from agentforge.core.deepmerge import get_path, set_path, unset_path
    from agentforge.core.hashing import sha256_hex

    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        source, install_path = _source_of(session, name)
    recover_interrupted(install_path, settings=settings)
    originals = _original_files(settings, source)  # git I/O with no transaction open
    with session_scope(get_engine(settings)) as session:
        row = _installed_row(session, name)
        assert row.install_path is not None
        if (row.repository_id, row.repository_url, row.path, row.commit_hash) != source:
            raise Conflict(f"{name} changed while reverting", code="REVERT_RACE", hint="Run it again.")
        if row.sync_status == ComponentSyncStatus.CONFLICT:
            raise Conflict(f"{name} has an unresolved pull", code="PULL_CONFLICT",
                           hint=f"`agentforge resolve {name} --ours|--theirs|--continue` first.")
        author = _author(session)
        _fold(session, row, author)
        paths = _Paths(row.install_path)
        before = _effective_local(row)
        original = _original(row)
        if field is not None:
            reverted = copy.deepcopy(before)
            value = get_path(original, field, MISSING)
            if value is MISSING:
                if not unset_path(reverted, field):
                    raise ConfigError(f"--field {field}: {field} is neither in the local nor the original definition",
                                      hint="`agentforge diff` lists the changed fields.")
            else:
                set_path(reverted, field, copy.deepcopy(value))
            _validate(reverted, row, f"{name} (after revert of {field})")
            field_changes = diff_definitions(before, reverted)
            file_rows: list[changes_q.FieldChangeRow] = []
            writes: dict[str, tuple[bytes, int | None]] = {DEFINITION_FILE: (_definition_bytes(reverted, original,
                                                          originals.get(DEFINITION_FILE, (None, ""))[0]), None)}
            deletes: list[str] = []
        else:
            reverted = original
            field_changes = diff_definitions(before, original)
            now = _hashes(_disk_files(paths.folder))
            writes = {rel: (data, 0o755 if mode == "100755" else 0o644) for rel, (data, mode) in originals.items()
                      if now.get(rel) != sha256_hex(data)}
            deletes = [rel for rel in now if rel not in originals]
            file_rows = _file_change_rows(now, {rel: sha256_hex(d) for rel, (d, _) in originals.items()})
        for rel, (data, mode) in writes.items():
            _atomic_write(paths.folder / rel, data, mode)
        for rel in deletes:
            (paths.folder / rel).unlink(missing_ok=True)
        changes_q.record_changes(session=session, component_id=row.id, changes=_rows(field_changes) + file_rows,
                                 reason=reason or ("revert " + (field or "all local changes")), author=author,
                                 commit_hash=None)
        has_changes, status = _status_after(row, reverted, bool(_files_modified(paths)), False)
        row.local_definition = reverted if has_changes and diff_definitions(original, reverted) else None
        row.has_local_changes = has_changes
        row.sync_status = status
        session.flush()
        result = EditOutcome(name=row.name, sync_status=status.value, path=str(paths.folder),
                             changes=[{"field": c.field_path, "change": c.change_type, "old": c.old, "new": c.new}
                                      for c in field_changes] +
                                     [{"field": r.field_path, "change": r.change_type} for r in file_rows])
        install_path = row.install_path
    _remember_seen(install_path)
    return result


# --- diff / history ---------------------------------------------------------------------------


class DiffOutcome(BaseModel):
    name: str
    commit: str
    fields: list[dict[str, Any]]
    files: dict[str, str]  # relative path → unified diff (or a note for binary files)


def diff_component(name: str, *, settings: Settings | None = None) -> DiffOutcome:
    """Field-level changes of the local definition and a unified diff of every changed file
    against the installed original (read from the mirror at the installed commit)."""
    from agentforge.core.yamlio import load_document

    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        source, install_path = _source_of(session, name)
        row = _installed_row(session, name, for_update=False)
        folder = Path(install_path)
        local = copy.deepcopy(row.local_definition)
        original = _original(row)
        commit = row.commit_hash
    originals = _original_files(settings, source)
    current = _disk_files(folder)
    parsed_local: Any = local
    if DEFINITION_FILE in current:  # show unfolded direct edits too (diff does not write)
        try:
            parsed_local = load_document(current[DEFINITION_FILE], source=str(folder / DEFINITION_FILE))
        except DocumentError:
            parsed_local = local
    fields = [{"field": c.field_path, "change": c.change_type, "old": c.old, "new": c.new}
              for c in diff_definitions(original, parsed_local if isinstance(parsed_local, dict) else original)]
    files: dict[str, str] = {}
    for rel in sorted(set(originals) | set(current)):
        old = originals[rel][0] if rel in originals else b""
        new = current.get(rel, b"")
        if old == new:
            continue
        try:
            old_text, new_text = old.decode("utf-8"), new.decode("utf-8")
        except UnicodeDecodeError:
            files[rel] = f"Binary file {rel} differs\n"
            continue
        files[rel] = "".join(difflib.unified_diff(
            old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
            fromfile=f"a/{rel}" if rel in originals else "/dev/null",
            tofile=f"b/{rel}" if rel in current else "/dev/null"))
    return DiffOutcome(name=name, commit=commit, fields=fields, files=files)


class HistoryLine(BaseModel):
    timestamp: datetime
    change_type: str
    field_path: str
    old_value: Any
    new_value: Any
    author: str | None
    reason: str | None
    version: str
    commit: str


def component_history(name: str, *, include_snapshots: bool = False, limit: int = 200,
                      settings: Settings | None = None) -> list[HistoryLine]:
    """Per-field history across every commit the component was installed at, newest first.

    The design's trigger also writes one ``local_definition`` row (whole documents) per change;
    those are left out unless ``include_snapshots``.
    """
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        row = changes_q.find_installed(session=session, name=name)
        entries = changes_q.history(session=session, repository_id=row.repository_id, name=row.name, limit=limit)
    return [HistoryLine(**e.__dict__) for e in entries
            if include_snapshots or e.field_path != "local_definition"]


# --- pull -------------------------------------------------------------------------------------


class PullPlan(BaseModel):
    operation_id: str | None
    name: str
    mode: PullMode
    install_path: str
    repository_id: str
    repository_url: str
    path: str
    component_id: str
    target_id: str
    from_commit: str
    from_version: str
    to_commit: str
    to_version: str
    base_definition: dict[str, Any]
    local_definition: dict[str, Any] | None
    target_definition: dict[str, Any]
    up_to_date: bool = False


class PullPrepared(BaseModel):
    staging: str
    conflicts_staging: str
    merged_definition: dict[str, Any]
    field_conflicts: list[dict[str, Any]]
    file_conflicts: list[str]
    upstream_files: dict[str, str]  # relative path → sha256 of the new original
    checksum: str
    has_local_changes: bool
    stash: str | None = None


class PullOutcome(BaseModel):
    name: str
    mode: PullMode
    from_version: str
    to_version: str
    to_commit: str
    result: Literal["up-to-date", "fast-forward", "merged", "conflict", "overwritten", "stashed"]
    sync_status: str
    conflicts: list[str] = []
    stash: str | None = None


def plan_pull(name: str, *, to_version: str | None = None, mode: PullMode = "merge",
              settings: Settings | None = None) -> PullPlan:
    """Choose the target release and record the intent (an IN_PROGRESS PULL_UPSTREAM row), committed."""
    settings = settings or get_settings()
    engine = get_engine(settings)
    with session_scope(engine) as session:
        install_path = _installed_row(session, name, for_update=False).install_path
    assert install_path is not None
    recover_interrupted(install_path, settings=settings)
    with session_scope(engine) as session:
        row = _installed_row(session, name)
        _fail_interrupted_pulls(session, row, install_path)
        _checkpoint("plan")
        if row.sync_status == ComponentSyncStatus.CONFLICT:
            raise Conflict(f"{name} has an unresolved pull", code="PULL_CONFLICT",
                           hint=f"`agentforge resolve {name} --ours|--theirs|--continue` first.")
        _fold(session, row, _author(session))
        releases = changes_q.releases_of(session=session, repository_id=row.repository_id, name=row.name)
        if to_version is not None:
            chosen = next((r for r in releases if r.version == to_version.removeprefix("v")), None)
            if chosen is None:
                raise NotFound(f"{name} has no release {to_version}",
                               hint="Releases: " + (", ".join(r.version for r in releases) or "none (run sync)"))
        else:
            if not releases:
                raise NotFound(f"{name}: no releases are synced", hint="Run `agentforge sync` first.")
            chosen = releases[0]
        target = changes_q.row_at_commit(session=session, repository_id=row.repository_id, name=row.name,
                                         commit=chosen.commit)
        assert target is not None
        plan = PullPlan(
            operation_id=None, name=row.name, mode=mode, install_path=install_path,
            repository_id=str(row.repository_id), repository_url=row.repository_url, path=row.path,
            component_id=str(row.id), target_id=str(target.id), from_commit=row.commit_hash,
            from_version=row.version, to_commit=target.commit_hash, to_version=target.version,
            base_definition=_original(row), local_definition=row.local_definition if row.has_local_changes else None,
            target_definition=copy.deepcopy(target.definition),
            up_to_date=target.commit_hash == row.commit_hash and mode != "overwrite")
        if plan.up_to_date:
            return plan
        op = changes_q.begin_operation(
            session=session, component_id=row.id, operation=SyncOperationType.PULL_UPSTREAM,
            source_commit=row.commit_hash, target_commit=target.commit_hash,
            message=f"pull {row.name} {row.version} → {target.version} ({mode})")
        _checkpoint("intent")
        plan.operation_id = str(op)
    _remember_seen(install_path)
    return plan


def _fail_interrupted_pulls(session: Session, row: Component, install_path: str) -> None:
    """A pull killed before its swap (no journal) left an IN_PROGRESS row and a staging folder.

    Nothing installed changed then, so the row becomes FAILED and the staging goes. Runs under
    the installed row's lock, after :func:`recover_interrupted`; a pull whose journal is on
    disk (it is swapping right now) is left alone.
    """
    journal = _read_json(_Paths(install_path).journal).get("operation_id")
    stale = changes_q.fail_in_progress(session=session, component_id=row.id,
                                       operation=SyncOperationType.PULL_UPSTREAM,
                                       error="interrupted before its files were swapped; nothing changed",
                                       keep=[uuid.UUID(journal)] if journal else [])
    for op in stale:
        for leftover in (f".pull-{op}", f".pull-{op}-conflicts"):
            shutil.rmtree(Path(install_path).parent / leftover, ignore_errors=True)


def _merge_text(ours: bytes, base: bytes, theirs: bytes, rel: str, *, favour_ours: bool) -> tuple[bytes, bool]:
    """``git merge-file`` on three temp files; (result, conflicted)."""
    with tempfile.TemporaryDirectory(prefix="forge-merge-") as tmp:
        names = []
        for label, data in (("ours", ours), ("base", base), ("theirs", theirs)):
            p = Path(tmp) / label
            p.write_bytes(data)
            names.append(str(p))
        args = ["git", "merge-file", "-p", "-L", f"local/{rel}", "-L", f"base/{rel}", "-L", f"upstream/{rel}"]
        if favour_ours:
            args.append("--ours")
        proc = subprocess.run([*args, *names], capture_output=True, timeout=60)
    if proc.returncode < 0 or proc.returncode > 127:
        raise GitError(f"git merge-file failed on {rel}: {proc.stderr.decode(errors='replace').strip()}",
                       code="GIT_MERGE_FAILED")
    return proc.stdout, proc.returncode > 0


def _is_text(*blobs: bytes | None) -> bool:
    for blob in blobs:
        if blob is None:
            continue
        if b"\0" in blob:
            return False
        try:
            blob.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def prepare_pull(plan: PullPlan, *, settings: Settings | None = None) -> PullPrepared:
    """Read base and upstream files from the mirror, merge with the local files into a staging
    folder next to the installed one. Nothing installed changes here."""
    from agentforge.core.hashing import component_checksum, sha256_hex
    from agentforge.services.materialise import iter_component_files
    from agentforge.services.sync import open_mirror

    settings = settings or get_settings()
    paths = _Paths(plan.install_path)
    op = plan.operation_id or uuid.uuid4().hex
    staging = paths.root / f".pull-{op}"
    conflicts_dir = paths.root / f".pull-{op}-conflicts"
    try:
        _checkpoint("read")
        mirror = open_mirror(settings, uuid.UUID(plan.repository_id), plan.repository_url)
        try:
            if not mirror.exists():
                mirror.ensure()
            for commit in (plan.from_commit, plan.to_commit):
                if not mirror.has_commit(commit):
                    mirror.fetch_commit(commit)
            folder = "" if plan.path in ("", ".") else plan.path
            base = {rel: (data, mode) for rel, data, mode in iter_component_files(mirror, plan.from_commit, folder)
                    if mode != "120000"}
            theirs = {rel: (data, mode) for rel, data, mode in iter_component_files(mirror, plan.to_commit, folder)
                      if mode != "120000"}
            mirror.pin(plan.to_commit)
        finally:
            mirror.close()
        ours = _disk_files(paths.folder)
        _checkpoint("merge")
        has_local = plan.local_definition is not None or bool(_files_modified(paths, _hashes(ours)))
        overwrite = plan.mode == "overwrite" or not has_local
        # The definition, field by field.
        ours_def = plan.local_definition if plan.local_definition is not None else plan.base_definition
        if overwrite:
            merged_def, field_conflicts = copy.deepcopy(plan.target_definition), []
        else:
            merge = three_way_merge(plan.base_definition, ours_def, plan.target_definition)
            merged_def = merge.merged
            # --stash reapplies the local value over upstream: no conflict left, nothing lost
            # (the stash folder keeps the complete local state).
            field_conflicts = [] if plan.mode == "stash" else merge.conflicts
        out_files: dict[str, tuple[bytes, int]] = {}
        file_conflicts: list[str] = []
        saved_ours: dict[str, bytes] = {}
        saved_theirs: dict[str, bytes] = {}
        for rel in sorted(set(base) | set(theirs) | set(ours)):
            if rel == DEFINITION_FILE:
                continue
            b = base[rel][0] if rel in base else None
            t = theirs[rel][0] if rel in theirs else None
            o = ours.get(rel)
            mode = 0o755 if (rel in theirs and theirs[rel][1] == "100755") or \
                (rel not in theirs and (paths.folder / rel).exists() and os.access(paths.folder / rel, os.X_OK)) \
                else 0o644
            if overwrite or o == t or o == b:
                result = t
            elif t == b:
                result = o
            elif o is not None and t is not None and _is_text(o, b, t):
                result, conflicted = _merge_text(o, b or b"", t, rel, favour_ours=plan.mode == "stash")
                if conflicted:
                    file_conflicts.append(rel)
                    saved_ours[rel], saved_theirs[rel] = o, t
            elif plan.mode == "stash":
                result = o
            else:
                # Binary, or deleted on one side and changed on the other: keep the side that
                # still has content in place, the other one under .conflicts/.
                result = o if o is not None else t
                file_conflicts.append(rel)
                if o is not None:
                    saved_ours[rel] = o
                if t is not None:
                    saved_theirs[rel] = t
            if result is not None:
                out_files[rel] = (result, mode)
        upstream_def_bytes = theirs[DEFINITION_FILE][0] if DEFINITION_FILE in theirs else None
        out_files[DEFINITION_FILE] = (_definition_bytes(merged_def, plan.target_definition, upstream_def_bytes),
                                      0o644)
        try:
            from agentforge.core.documents import parse_component

            parse_component(merged_def, source=f"{plan.name} (merged definition)")
        except DocumentError as exc:
            if not field_conflicts:
                field_conflicts = [FieldConflict(("<document>",), None, exc.message, None)]
        _checkpoint("stage")
        staging.mkdir()
        for rel, (data, mode) in out_files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            target.chmod(mode)
        for side, files in (("ours", saved_ours), ("theirs", saved_theirs)):
            for rel, data in files.items():
                target = conflicts_dir / side / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        stash: str | None = None
        if plan.mode == "stash" and has_local:
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
            stash_dir = paths.stash_root / f"{stamp}-{op[:8]}"
            shutil.copytree(paths.folder, stash_dir / "files", symlinks=True)
            _write_json(stash_dir / "stash.json", {"name": plan.name, "base_commit": plan.from_commit,
                                                   "local_definition": ours_def})
            stash = str(stash_dir)
        merged_is_upstream = not diff_definitions(plan.target_definition, merged_def)
        upstream_hashes = {rel: sha256_hex(d) for rel, (d, _) in theirs.items()}
        staged_hashes = _hashes(_disk_files(staging))
        files_differ = any(staged_hashes.get(r) != upstream_hashes.get(r)
                           for r in set(staged_hashes) | set(upstream_hashes) if r != DEFINITION_FILE)
        return PullPrepared(
            staging=str(staging), conflicts_staging=str(conflicts_dir), merged_definition=merged_def,
            field_conflicts=[c.to_json() for c in field_conflicts], file_conflicts=file_conflicts,
            upstream_files=upstream_hashes,
            checksum=component_checksum((rel, d) for rel, (d, _) in theirs.items()),
            has_local_changes=(not merged_is_upstream) or files_differ, stash=stash)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(conflicts_dir, ignore_errors=True)
        raise


def apply_pull(plan: PullPlan, prepared: PullPrepared, *, settings: Settings | None = None) -> PullOutcome:
    """Swap the staged folder in, then move the installed row — or put everything back."""
    settings = settings or get_settings()
    assert plan.operation_id is not None
    paths = _Paths(plan.install_path)
    op = plan.operation_id
    backup = paths.root / f".pull-{op}-backup"
    state_names = {p.name: p.exists() for p in (paths.record, paths.seen, paths.merge, paths.conflicts)}
    journal = {"operation_id": op, "backup": str(backup), "state_files": state_names,
               "cleanup": [prepared.staging, prepared.conflicts_staging]}
    conflicted = bool(prepared.field_conflicts or prepared.file_conflicts)
    conflict_list = [f"{DEFINITION_FILE}:{render_path(tuple(c['path']))}" for c in prepared.field_conflicts] + \
        prepared.file_conflicts
    _write_json(paths.journal, journal)
    try:
        _checkpoint("swap")
        (backup / "state").mkdir(parents=True)
        for name, existed in state_names.items():
            if existed:
                src = paths.root / STATE_DIR / name
                if src.is_dir():
                    shutil.copytree(src, backup / "state" / name, symlinks=True)
                else:
                    shutil.copy2(src, backup / "state" / name)
        paths.folder.rename(backup / "folder")
        Path(prepared.staging).rename(paths.folder)
        _checkpoint("records")
        old_record = _read_json(backup / "state" / paths.record.name) if state_names[paths.record.name] else {}
        now = datetime.now(UTC)
        _write_json(paths.record, {
            "key": old_record.get("key", f"{plan.repository_url}/{plan.name}"), "component": plan.name,
            "version": plan.to_version, "commit": plan.to_commit, "checksum": prepared.checksum,
            "installed_at": now.isoformat(), "files": prepared.upstream_files})
        _write_json(paths.seen, {"files": _hashes(_disk_files(paths.folder))})
        if paths.conflicts.exists():
            shutil.rmtree(paths.conflicts)
        if conflicted:
            if Path(prepared.conflicts_staging).exists():
                Path(prepared.conflicts_staging).rename(paths.conflicts)
            _write_json(paths.merge, {"operation_id": op, "name": plan.name, "from_commit": plan.from_commit,
                                      "to_commit": plan.to_commit, "field_conflicts": prepared.field_conflicts,
                                      "file_conflicts": prepared.file_conflicts})
        else:
            paths.merge.unlink(missing_ok=True)
        with session_scope(get_engine(settings)) as session:
            _checkpoint("database")
            status = _record_pull(session, plan, prepared, conflicted, conflict_list, now)
            _checkpoint("commit")
    except BaseException as exc:
        _restore(paths, journal)
        for extra in journal["cleanup"]:
            shutil.rmtree(extra, ignore_errors=True)
        paths.journal.unlink(missing_ok=True)
        abort_pull(plan, f"{type(exc).__name__}: {exc}", settings=settings)
        raise
    shutil.rmtree(backup, ignore_errors=True)
    shutil.rmtree(prepared.conflicts_staging, ignore_errors=True)
    paths.journal.unlink(missing_ok=True)
    result: Literal["fast-forward", "merged", "conflict", "overwritten", "stashed"]
    if plan.mode == "overwrite":
        result = "overwritten"
    elif conflicted:
        result = "conflict"
    elif plan.mode == "stash" and prepared.stash:
        result = "stashed"
    elif plan.local_definition is not None or prepared.has_local_changes:
        result = "merged"
    else:
        result = "fast-forward"
    return PullOutcome(name=plan.name, mode=plan.mode, from_version=plan.from_version, to_version=plan.to_version,
                       to_commit=plan.to_commit, result=result, sync_status=status.value, conflicts=conflict_list,
                       stash=prepared.stash)


def _record_pull(session: Session, plan: PullPlan, prepared: PullPrepared, conflicted: bool,
                 conflict_list: list[str], now: datetime) -> ComponentSyncStatus:
    old = session.get(Component, uuid.UUID(plan.component_id), with_for_update=True)
    if old is None or not old.is_installed or old.commit_hash != plan.from_commit:
        raise Conflict(f"{plan.name} changed while pulling (another install or pull ran)", code="PULL_RACE",
                       hint="Run the pull again.")
    local = prepared.merged_definition if diff_definitions(plan.target_definition,
                                                           prepared.merged_definition) else None
    author = _author(session)
    target = old
    if plan.target_id != plan.component_id:
        target_row = session.get(Component, uuid.UUID(plan.target_id), with_for_update=True)
        assert target_row is not None
        target = target_row
        old.is_installed = False
        old.installed_at = None
        old.install_path = None
        old.has_local_changes = False
        old.sync_status = ComponentSyncStatus.REMOTE_ONLY
        session.flush()
        target.is_installed = True
        target.installed_at = now
        target.install_path = plan.install_path
        target.original_definition = copy.deepcopy(target.definition)
    carried = diff_definitions(target.definition, local) if local is not None else []
    target.local_definition = local
    target.has_local_changes = prepared.has_local_changes
    target.last_sync_commit = plan.to_commit
    target.last_sync_at = now
    newest = changes_q.releases_of(session=session, repository_id=target.repository_id, name=target.name)
    target.upstream_commit = newest[0].commit if newest else plan.to_commit
    if conflicted:
        status = ComponentSyncStatus.CONFLICT
    elif prepared.has_local_changes:
        status = ComponentSyncStatus.MODIFIED
    elif target.upstream_commit != target.commit_hash:
        status = ComponentSyncStatus.OUTDATED
    else:
        status = ComponentSyncStatus.SYNCED
    target.sync_status = status
    session.flush()
    if target.id != old.id:
        changes_q.record_changes(session=session, component_id=target.id, changes=_rows(carried),
                                 reason=f"carried over by pull from {plan.from_version}", author=author,
                                 commit_hash=plan.to_commit)
    changes_q.finish_operation(
        session=session, operation_id=uuid.UUID(str(plan.operation_id)), component_id=target.id,
        status=SyncOperationStatus.REQUIRES_MANUAL_RESOLUTION if conflicted else SyncOperationStatus.COMPLETED,
        conflict_files=conflict_list)
    from models import repositories as repos_q  # only a pull needs it (status imports this module)

    repos_q.mark_outdated_installed(session=session, repository_id=target.repository_id)
    return status


def abort_pull(plan: PullPlan, error: str, *, settings: Settings | None = None) -> None:
    """Record a failed pull (best effort: the pull's own error is what the user needs to see)."""
    if plan.operation_id is None:
        return
    settings = settings or get_settings()
    try:
        with session_scope(get_engine(settings)) as session:
            if changes_q.operation_status(session=session, operation_id=uuid.UUID(plan.operation_id)) == \
                    SyncOperationStatus.IN_PROGRESS:
                changes_q.finish_operation(session=session, operation_id=uuid.UUID(plan.operation_id),
                                           status=SyncOperationStatus.FAILED, error=error)
    except Exception as exc:  # never mask the original failure with a bookkeeping one
        import logging

        logging.getLogger(__name__).warning("could not record the failed pull of %s: %s", plan.name, exc)


def pull_component(name: str, *, to_version: str | None = None, mode: PullMode = "merge",
                   settings: Settings | None = None) -> PullOutcome:
    """The whole pull without Prefect (the flow runs the same three steps as tasks)."""
    plan = plan_pull(name, to_version=to_version, mode=mode, settings=settings)
    if plan.up_to_date:
        return up_to_date_outcome(plan)
    try:
        prepared = prepare_pull(plan, settings=settings)
    except BaseException as exc:
        abort_pull(plan, f"{type(exc).__name__}: {exc}", settings=settings)
        raise
    return apply_pull(plan, prepared, settings=settings)


def up_to_date_outcome(plan: PullPlan) -> PullOutcome:
    return PullOutcome(name=plan.name, mode=plan.mode, from_version=plan.from_version, to_version=plan.to_version,
                       to_commit=plan.to_commit, result="up-to-date",
                       sync_status="MODIFIED" if plan.local_definition is not None else "SYNCED")


# --- resolve ----------------------------------------------------------------------------------


class ResolveOutcome(BaseModel):
    name: str
    choice: str
    sync_status: str
    fields: list[str]
    files: list[str]


def resolve_component(name: str, choice: Literal["ours", "theirs", "continue"], *,
                      settings: Settings | None = None) -> ResolveOutcome:
    """Finish a conflicted pull: keep local values, take upstream's, or accept hand edits."""
    from agentforge.core.deepmerge import set_path, unset_path
    from agentforge.core.yamlio import load_document

    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        row = _installed_row(session, name)
        assert row.install_path is not None
        paths = _Paths(row.install_path)
        state = _read_json(paths.merge)
        if row.sync_status != ComponentSyncStatus.CONFLICT or not state:
            raise Conflict(f"{name} has no pull waiting for resolution", code="NO_CONFLICT",
                           hint="`agentforge status` shows each component's state.")
        author = _author(session)
        conflicts = [FieldConflict.from_json(c) for c in state.get("field_conflicts", [])]
        conflicts = [c for c in conflicts if c.path != ("<document>",)]
        file_conflicts: list[str] = list(state.get("file_conflicts", []))
        before = _effective_local(row)
        target = paths.folder / DEFINITION_FILE
        if choice == "continue":
            left = [rel for rel in file_conflicts if (paths.folder / rel).is_file()
                    and has_conflict_markers((paths.folder / rel).read_bytes().decode("utf-8", "replace"))]
            if left:
                raise Conflict(f"{name}: conflict markers remain in {', '.join(left)}", code="CONFLICT_MARKERS",
                               hint="Edit the files, then run `agentforge resolve --continue` again.")
            parsed = load_document(target.read_bytes(), source=str(target))
            if not isinstance(parsed, dict):
                raise DocumentError(f"{target}: expected a mapping at the top level")
            resolved = parsed
        else:
            resolved = copy.deepcopy(before)
            side = "ours" if choice == "ours" else "theirs"
            for c in conflicts:
                value = c.ours if choice == "ours" else c.theirs
                path = render_path(c.path)
                if value is MISSING:
                    unset_path(resolved, path)
                else:
                    set_path(resolved, path, copy.deepcopy(value))
            for rel in file_conflicts:
                saved = paths.conflicts / side / rel
                if saved.is_file():
                    _atomic_write(paths.folder / rel, saved.read_bytes())
                else:
                    (paths.folder / rel).unlink(missing_ok=True)
        _validate(resolved, row, f"{name} (resolved)")
        _atomic_write(target, _definition_bytes(resolved, _original(row), None))
        field_changes = diff_definitions(before, resolved)
        changes_q.record_changes(session=session, component_id=row.id, changes=_rows(field_changes),
                                 reason=f"resolve --{choice}", author=author, commit_hash=row.commit_hash)
        has_changes, status = _status_after(row, resolved, bool(_files_modified(paths)), False)
        row.local_definition = resolved if diff_definitions(_original(row), resolved) else None
        row.has_local_changes = has_changes
        row.sync_status = status
        pending = changes_q.open_conflict(session=session, component_id=row.id)
        if pending is not None:
            changes_q.finish_operation(session=session, operation_id=pending.id,
                                       status=SyncOperationStatus.COMPLETED,
                                       conflict_files=pending.conflict_files, message=f"resolved with --{choice}")
        op = changes_q.begin_operation(session=session, component_id=row.id,
                                       operation=SyncOperationType.RESOLVE_CONFLICT, source_commit=row.commit_hash,
                                       target_commit=row.commit_hash, message=f"resolve --{choice}")
        changes_q.finish_operation(session=session, operation_id=op, status=SyncOperationStatus.COMPLETED,
                                   conflict_files=[render_path(c.path) for c in conflicts] + file_conflicts)
        session.flush()
        install_path = row.install_path
    paths.merge.unlink(missing_ok=True)
    shutil.rmtree(paths.conflicts, ignore_errors=True)
    _remember_seen(install_path)
    return ResolveOutcome(name=name, choice=choice, sync_status=status.value,
                          fields=[render_path(c.path) for c in conflicts], files=file_conflicts)


# --- scaffolding and lint ---------------------------------------------------------------------

_SCAFFOLD: dict[str, dict[str, Any]] = {
    "tool": {"kind": "Tool", "spec": {"type": "function", "runtime": "python",
                                      "schema": {"input": {"type": "object", "properties": {}},
                                                 "output": {"type": "object"}},
                                      "config": {"timeout": 30}}},
    "prompt": {"kind": "Prompt", "spec": {"type": "system", "template": "You are {{ role }}.\n",
                                          "variables": [{"name": "role", "type": "string", "required": True,
                                                         "description": "Who the assistant is"}]}},
    "agent": {"kind": "Agent", "spec": {"llm": {"provider": "openai", "model": "gpt-4o-mini", "temperature": 0.2,
                                                "max_tokens": 1024},
                                        "behavior": {"max_iterations": 5}}},
}


class Scaffolded(BaseModel):
    name: str
    kind: str
    path: str
    files: list[str]


def new_component(kind: str, name: str, *, directory: Path | None = None,
                  settings: Settings | None = None) -> Scaffolded:
    """Write a valid component skeleton (LOCAL_ONLY) and remember it for ``status``."""
    from agentforge.core.documents import is_valid_name, parse_component
    from agentforge.core.yamlio import dump_yaml

    settings = settings or get_settings()
    key = kind.lower()
    if key not in _SCAFFOLD:
        raise ConfigError(f"--type {kind!r} is not one of tool, prompt, agent", code="TYPE_INVALID",
                          hint="For example `agentforge component new --type tool my-tool`.")
    if not is_valid_name(name):
        raise ConfigError(f"component name {name!r} is not valid: lower-case letters, digits, '.', '_', '-'",
                          code="NAME_INVALID", hint="For example `agentforge component new --type tool my-tool`.")
    folder = (directory or Path.cwd()).expanduser().absolute() / name
    if folder.exists() and any(folder.iterdir()):
        raise AgentForgeError(f"{folder} already exists and is not empty", code="ALREADY_EXISTS",
                              hint="Pick another name or --dir.")
    template = _SCAFFOLD[key]
    document = {"apiVersion": "forge.dev/v1", "kind": template["kind"],
                "metadata": {"name": name, "version": "0.1.0", "description": f"TODO: describe {name}",
                             "license": "MIT", "tags": []},
                "spec": copy.deepcopy(template["spec"])}
    parse_component(document, source=f"{name} (scaffold)")
    folder.mkdir(parents=True, exist_ok=True)
    files = {DEFINITION_FILE: dump_yaml(document),
             "README.md": f"# {name}\n\nA {template['kind']} component. Edit `component.yaml`, then "
                          "`agentforge lint` it.\n"}
    for rel, text in files.items():
        _atomic_write(folder / rel, text.encode("utf-8"))
    with session_scope(get_engine(settings)) as session:
        changes_q.register_local_component(session=session, name=name, kind=template["kind"], path=str(folder))
    return Scaffolded(name=name, kind=template["kind"], path=str(folder), files=sorted(files))


class LintResult(BaseModel):
    path: str
    level: Literal["ok", "warning", "error"]
    kind: str | None = None
    messages: list[str] = []


_LINT_SKIP = {".git", ".forge", ".venv", "node_modules", "__pycache__"}


def _lint_candidates(root: Path) -> list[Path]:
    if root.is_file():
        return [root]
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        depth = len(Path(dirpath).relative_to(root).parts)
        dirnames[:] = sorted(d for d in dirnames if d not in _LINT_SKIP and not d.startswith(".pull-")
                             and depth < 6)
        for fn in sorted(filenames):
            if fn.endswith((".yaml", ".yml")) and fn != "forge-lock.yaml":
                out.append(Path(dirpath) / fn)
    return out


def lint(path: Path) -> list[LintResult]:
    """Validate every component, manifest and composition under ``path`` (one result per file).

    YAML files under a folder that are not forge documents (no ``apiVersion: forge.dev/v1``)
    are skipped, unless ``path`` names the file itself.
    """
    from agentforge.core.documents import COMPONENT_KINDS, parse_any
    from agentforge.core.yamlio import load_document
    from agentforge.fileio import read_document_file

    path = path.expanduser()
    if not path.exists():
        raise NotFound(f"{path} does not exist", hint="Pass a component folder or file (default: the current folder).")
    results: list[LintResult] = []
    for file in _lint_candidates(path):
        explicit = file == path
        source = str(file)
        try:
            raw = read_document_file(file)
            data = load_document(raw, source=source)
        except DocumentError as exc:
            if explicit or file.name == DEFINITION_FILE:
                results.append(LintResult(path=source, level="error", messages=[exc.message]))
            continue
        if not explicit and file.name != DEFINITION_FILE and not (
                isinstance(data, dict) and data.get("apiVersion") == "forge.dev/v1"):
            continue
        try:
            doc = parse_any(data if isinstance(data, dict) else raw, source=source)
        except DocumentError as exc:
            results.append(LintResult(path=source, level="error", messages=exc.message.splitlines()))
            continue
        kind = str(getattr(doc, "kind", "") or "")
        warnings: list[str] = []
        if kind in COMPONENT_KINDS:
            meta = data.get("metadata", {}) if isinstance(data, dict) else {}
            if not meta.get("description") or str(meta.get("description", "")).startswith("TODO"):
                warnings.append(f"{source}: metadata.description: missing or still TODO")
            template_file = (data.get("spec") or {}).get("template_file") if isinstance(data, dict) else None
            if template_file and not (file.parent / str(template_file)).is_file():
                warnings.append(f"{source}: spec.template_file: {template_file} does not exist")
        elif kind == "ComponentRepository" and isinstance(data, dict):
            for group, entries in (data.get("components") or {}).items():
                for index, entry in enumerate(entries or []):
                    rel = entry.get("path") if isinstance(entry, dict) else None
                    if rel and not (file.parent / rel / DEFINITION_FILE).is_file():
                        warnings.append(f"{source}: components.{group}[{index}].path: no {DEFINITION_FILE} in {rel}")
        results.append(LintResult(path=source, level="warning" if warnings else "ok", kind=kind,
                                  messages=warnings))
    return results
