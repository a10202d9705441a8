"""The git adapter: remote listing, bare mirrors, fast object reads and exports.

Everything AgentForge knows about a component repository comes through this module. It
runs the ``git`` binary through GitPython and translates every ``GitCommandError`` into
:class:`~agentforge.errors.GitError` (permanent) or :class:`~agentforge.errors.GitUnreachable`
(network or lock contention, ``retryable=True``), with tokens redacted.

Security rules applied to every git process started here:

* ``GIT_TERMINAL_PROMPT=0`` (a missing credential fails instead of hanging a worker),
  ``GIT_ALLOW_PROTOCOL=file:https:ssh`` (plus ``http`` only when the caller allows it) and
  ``protocol.ext.allow=never``, so an ``ext::``/``fd::`` URL from a manifest can never run
  a command; URLs are also checked up front by :func:`check_remote_url`.
* Credentials never appear in a URL, on a command line or in any git config file. They
  reach git only through the environment of the one process that needs them: see
  :class:`GitCredentials`.
* ``--`` separates options from URLs wherever git accepts it.

Reading objects: a :class:`RepositoryMirror` keeps two persistent ``git cat-file
--batch``/``--batch-check`` processes (GitPython's persistent commands), so reading every
``component.yaml`` at every release tag costs no process per file. Tree objects are parsed
in Python and cached by id (trees are immutable, and most subtrees are shared between tags).
A mirror is not thread-safe: use one per thread (``ls_remote_many`` needs no mirror).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import os
import re
import secrets
import shutil
import stat
import subprocess
import tempfile
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import git
from git.exc import GitCommandError

from agentforge.core.hashing import unsupported_name
from agentforge.errors import GitError, GitUnreachable, redact

__all__ = [
    "FetchResult",
    "GitCredentials",
    "ListedObject",
    "PathResolution",
    "RefUpdate",
    "RemoteRefs",
    "RepositoryMirror",
    "TreeEntry",
    "branch_name_problem",
    "check_remote_url",
    "create_repository_from_snapshots",
    "ls_remote_many",
]

PIN_NAMESPACE = "refs/forge/pins/"
#: Where the remote's default branch is recorded (a symref to ``refs/heads/<branch>``).
REMOTE_HEAD_REF = "refs/remotes/origin/HEAD"
_FETCH_REFSPECS = ("+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*")
_LS_REMOTE_PATTERNS = ("HEAD", "refs/heads/*", "refs/tags/*")

MODE_TREE = "040000"
MODE_SYMLINK = "120000"
MODE_SUBMODULE = "160000"
MODE_FILE = "100644"
MODE_EXECUTABLE = "100755"

_HEX_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_TRANSPORT_PREFIX = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_SCP_LIKE = re.compile(r"^[A-Za-z0-9._~-]+@[A-Za-z0-9.-]+:(?!//)")
_MAX_SYMLINK_HOPS = 40

# stderr fragments, lower-cased. Checked in order: "not found"-like answers first, since a
# missing repository on GitHub also ends with "could not read from remote repository".
_PERMANENT_PATTERNS = (
    ("repository not found", "GIT_REPOSITORY_NOT_FOUND"),
    ("does not appear to be a git repository", "GIT_REPOSITORY_NOT_FOUND"),
    ("not a git repository", "GIT_REPOSITORY_NOT_FOUND"),
    ("returned error: 404", "GIT_REPOSITORY_NOT_FOUND"),
    ("transport '", "GIT_URL_REJECTED"),
    ("unsupported protocol", "GIT_URL_REJECTED"),
    ("authentication failed", "GIT_AUTH_FAILED"),
    ("returned error: 401", "GIT_AUTH_FAILED"),
    ("returned error: 403", "GIT_AUTH_FAILED"),
    ("terminal prompts disabled", "GIT_AUTH_FAILED"),
    ("could not read username", "GIT_AUTH_FAILED"),
    ("permission denied (publickey", "GIT_AUTH_FAILED"),
    ("host key verification failed", "GIT_AUTH_FAILED"),
    ("not our ref", "GIT_COMMIT_UNAVAILABLE"),
    ("unadvertised object", "GIT_COMMIT_UNAVAILABLE"),
    ("couldn't find remote ref", "GIT_REF_NOT_FOUND"),
    ("upload-pack: not our ref", "GIT_COMMIT_UNAVAILABLE"),
)
_RETRYABLE_PATTERNS = (
    "could not resolve host",
    "temporary failure in name resolution",
    "connection refused",
    "connection reset",
    "connection timed out",
    "operation timed out",
    "timed out",
    "timeout:",
    "failed to connect",
    "network is unreachable",
    "early eof",
    "the remote end hung up",
    "rpc failed",
    "unexpected disconnect",
    "returned error: 429",
    "returned error: 500",
    "returned error: 502",
    "returned error: 503",
    "returned error: 504",
    "gnutls",
    "ssl_",
    "tls connection",
    "index.lock",
    ".lock': file exists",
    "cannot lock ref",
    "unable to create '",
    "could not read from remote repository",
)


# --------------------------------------------------------------------------- credentials


_ASKPASS_SCRIPT = """#!/bin/sh
# AgentForge GIT_ASKPASS helper. It holds no secret: it answers git's prompt from the
# environment of the single git process that asked, which AgentForge sets per call.
case "$1" in
  [Uu]sername*) printf '%s\\n' "$AGENTFORGE_GIT_USERNAME" ;;
  *) printf '%s\\n' "$AGENTFORGE_GIT_PASSWORD" ;;
esac
"""
_askpass_lock = threading.Lock()
_askpass_path: Path | None = None


def _askpass_helper() -> Path:
    """Write the (secret-free) askpass script once per process, in a private folder."""
    global _askpass_path
    with _askpass_lock:
        if _askpass_path is None or not _askpass_path.exists():
            folder = Path(tempfile.mkdtemp(prefix="agentforge-askpass-"))
            script = folder / "askpass.sh"
            script.write_text(_ASKPASS_SCRIPT, encoding="utf-8")
            script.chmod(0o700)
            _askpass_path = script
        return _askpass_path


@dataclass(frozen=True)
class GitCredentials:
    """An HTTPS token for git, delivered through the environment only.

    git asks ``GIT_ASKPASS`` for a username and a password; the helper script answers from
    ``AGENTFORGE_GIT_USERNAME`` / ``AGENTFORGE_GIT_PASSWORD``, which are set in the
    environment of the one git process that talks to the remote. ``credential.helper`` is
    reset (through ``GIT_CONFIG_COUNT`` environment config) so no configured helper such as
    ``store`` ever writes the token to disk. Nothing lands in the mirror's config, the URL,
    the command line (visible in ``ps``) or an error message (tokens are redacted).
    For GitHub use ``username="x-access-token"`` and the token as ``token``.
    """

    token: str = field(repr=False)
    username: str = "x-access-token"

    def environment(self) -> dict[str, str]:
        """Environment variables that hand this credential to git."""
        return {
            "GIT_ASKPASS": str(_askpass_helper()),
            "AGENTFORGE_GIT_USERNAME": self.username,
            "AGENTFORGE_GIT_PASSWORD": self.token,
        }

    def __repr__(self) -> str:
        return f"GitCredentials(username={self.username!r}, token='***')"


def _base_environment(*, allow_http: bool, credentials: GitCredentials | None) -> dict[str, str]:
    """The environment every git process gets (see the module docstring for why)."""
    config: list[tuple[str, str]] = [("protocol.ext.allow", "never"), ("protocol.fd.allow", "never")]
    env = {
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ALLOW_PROTOCOL": "file:https:ssh" + (":http" if allow_http else ""),
        # BatchMode: ssh must fail rather than prompt for a passphrase or a host key.
        "GIT_SSH_COMMAND": os.environ.get("GIT_SSH_COMMAND", "ssh -o BatchMode=yes"),
    }
    if credentials is not None:
        config.append(("credential.helper", ""))
        env.update(credentials.environment())
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (key, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = key
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    return env


# --------------------------------------------------------------------------- errors


def _secrets(credentials: GitCredentials | None) -> tuple[str, ...]:
    return (credentials.token,) if credentials is not None else ()


#: Exit statuses of a git killed by SIGINT or SIGTERM, as ``subprocess`` reports them.
_INTERRUPTED_STATUSES = (-2, -15, "-2", "-15")


def _translate(
    exc: GitCommandError,
    *,
    action: str,
    url: str | None,
    credentials: GitCredentials | None = None,
) -> GitError:
    """Map a failed git command to the most specific AgentForge error."""
    secrets = _secrets(credentials)
    stderr = exc.stderr if isinstance(exc.stderr, str) else str(exc.stderr or "")
    stderr = stderr.replace("\n  stderr: ", "").strip().strip("'").strip()
    detail = redact(stderr, *secrets) or f"git exited with status {exc.status}"
    where = f" ({redact(url, *secrets)})" if url else ""
    lowered = stderr.lower()
    details = {"status": str(exc.status), "stderr": detail}
    if exc.status in _INTERRUPTED_STATUSES:
        # Killed by SIGINT/SIGTERM: Ctrl-C in the terminal reaches git too (it is in the command's
        # process group). Says nothing about the repository; the caller does not count it as its failure.
        return GitError(f"git {action} was interrupted{where}", code="INTERRUPTED", retryable=False,
                        hint="Run the command again.", details=details)
    if lowered.startswith("timeout:") and "did not complete in" in lowered:
        # Our own limit (git_timeout_seconds) killed git: the remote hangs, or the transfer needs
        # longer than the limit allows. Either way trying again at once only waits as long again
        # (a sync's retries made one hung remote hold the command for nine minutes); the next
        # sync tries again, after the failure back-off.
        return GitError(f"git {action} got no complete answer{where} in time: {detail}", code="GIT_TIMEOUT",
                        retryable=False, details=details,
                        hint="The remote did not answer within git_timeout_seconds; for a very large "
                             "repository raise it (AGENTFORGE_GIT_TIMEOUT_SECONDS=600).")
    for fragment, code in _PERMANENT_PATTERNS:
        if fragment in lowered:
            hint = {
                "GIT_REPOSITORY_NOT_FOUND": "Check the repository URL, and that your token can read it.",
                "GIT_AUTH_FAILED": "Check the credentials configured for this repository.",
                "GIT_URL_REJECTED": "Use an https://, ssh:// or file:// URL.",
                "GIT_COMMIT_UNAVAILABLE": "The commit is gone from the remote; pick another version.",
                "GIT_REF_NOT_FOUND": "The branch or tag does not exist on the remote.",
            }.get(code)
            return GitError(
                f"git {action} failed{where}: {detail}",
                code=code,
                hint=hint,
                retryable=False,
                details=details,
            )
    if any(fragment in lowered for fragment in _RETRYABLE_PATTERNS):
        return GitUnreachable(
            f"git {action} failed{where}: {detail}",
            hint="A network or lock problem; the operation can be retried.",
            details=details,
        )
    return GitError(f"git {action} failed{where}: {detail}", retryable=False, details=details)


def _run(
    args: Sequence[str],
    *,
    env: Mapping[str, str],
    action: str,
    cwd: Path | None = None,
    url: str | None = None,
    credentials: GitCredentials | None = None,
    timeout: float | None = None,
    istream: object | None = None,
) -> bytes:
    """Run one git command, return its stdout (bytes), translate failures."""
    runner = git.Git(str(cwd) if cwd is not None else None)
    try:
        out = runner.execute(
            [git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git", *args],
            env=dict(env),
            kill_after_timeout=timeout,
            stdout_as_string=False,
            strip_newline_in_stdout=False,
            istream=istream,  # type: ignore[arg-type]
        )
    except GitCommandError as exc:
        raise _translate(exc, action=action, url=url, credentials=credentials) from exc
    return out if isinstance(out, bytes) else str(out).encode()


# --------------------------------------------------------------------------- URLs


def check_remote_url(url: str, *, allow_http: bool = False) -> str:
    """Return ``url`` if git may be pointed at it, else raise ``GitError`` (GIT_URL_REJECTED).

    Accepted: ``https://``, ``ssh://``, ``file://``, scp-like ``git@host:o/r.git``, absolute
    local paths, and ``http://`` when ``allow_http``. Refused: transport helpers
    (``ext::``, ``fd::`` …), anything that git could read as an option, and any URL that
    carries user info over http(s) (tokens go in :class:`GitCredentials`, never in a URL).
    """

    def reject(reason: str) -> GitError:
        return GitError(
            f"Repository URL {redact(url)!r} is not allowed: {reason}",
            code="GIT_URL_REJECTED",
            hint="Use an https://, ssh:// or file:// URL without credentials in it.",
        )

    if not url or url != url.strip() or any(ch in url for ch in "\n\r\0"):
        raise reject("it is empty or holds whitespace/control characters")
    if url.startswith("-"):
        raise reject("it starts with '-'")
    if _TRANSPORT_PREFIX.match(url):
        raise reject("git transport helpers (such as ext::) are never allowed")
    match = _SCHEME.match(url)
    if match:
        scheme = match.group(1).lower()
        allowed = {"https", "ssh", "file"} | ({"http"} if allow_http else set())
        if scheme not in allowed:
            raise reject(f"the {scheme}:// protocol is not allowed")
        authority = url[match.end() :].split("/", 1)[0]
        if scheme in {"http", "https"} and "@" in authority:
            raise reject("credentials in the URL; configure a token instead")
        return url
    if _SCP_LIKE.match(url) or url.startswith("/"):
        return url
    raise reject("it is neither an absolute URL nor an absolute path")


# --------------------------------------------------------------------------- ls-remote


@dataclass(frozen=True)
class RemoteRefs:
    """What a remote advertises: ``refs`` maps ``refs/heads/*`` and ``refs/tags/*`` to the
    commit they reach (annotated tags peeled)."""

    head_symref: str | None
    refs: dict[str, str]
    #: The advertised object ids before peeling (annotated tags as tag objects), which is what
    #: a mirror's own refs hold; ``None`` when unknown. ``RepositoryMirror.fetch`` compares
    #: these with its refs, so a caller that already listed the remote spares a second ls-remote.
    raw: dict[str, str] | None = None

    @property
    def default_branch(self) -> str | None:
        if self.head_symref and self.head_symref.startswith("refs/heads/"):
            return self.head_symref.removeprefix("refs/heads/")
        return None


def readable_ref_name(name: str) -> bool:
    """Whether a ref name (decoded with ``surrogateescape``) is UTF-8. Git allows any bytes; a name
    that is not text cannot be stored (JSON columns) nor passed on (Prefect parameters), so such
    refs are left out wherever refs are read (and a sync reports them: ``unreadable_refs``)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


_BAD_BRANCH = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]|\.\.|//|@\{|^[-/.]|/\.|(?:\.lock|[./])$|\.lock/")


def branch_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a branch (git's ``check-ref-format --branch`` rules, checked here so
    no git process ever sees it: a name starting with ``-`` would read as an option), or None."""
    if not name or name == "@":
        return "it is empty" if not name else "'@' is not a branch name"
    if not readable_ref_name(name):
        return "it is not UTF-8 text"
    if name.startswith("-"):
        return "it starts with '-' (it would read as an option)"
    if _BAD_BRANCH.search(name):
        return ("git refuses it as a branch name (no spaces, control characters, '~ ^ : ? * [ \\', '..', "
                "'//', '@{', no part starting with '.', no '.lock' or '/' or '.' at the end)")
    return None


def _shown_ref(name: str) -> str:
    """A ref name that is not UTF-8, as text to report: its odd bytes as ``\\xff`` escapes."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _parse_ls_remote(output: str) -> tuple[str | None, dict[str, str], dict[str, str]]:
    """Return (HEAD symref target, raw ref → object id, ref → peeled commit id); refs whose names
    are not UTF-8 are left out (``readable_ref_name``)."""
    head: str | None = None
    raw: dict[str, str] = {}
    peeled: dict[str, str] = {}
    for line in output.splitlines():
        if not line.strip():
            continue
        left, _, name = line.partition("\t")
        if not readable_ref_name(name):
            continue
        if left.startswith("ref: "):
            if name == "HEAD":
                head = left.removeprefix("ref: ").strip()
                if not readable_ref_name(head):
                    head = None  # a default branch whose name is not text: as if HEAD were detached
            continue
        if name == "HEAD":
            continue
        if name.endswith("^{}"):
            peeled[name[:-3]] = left
        else:
            raw[name] = left
    resolved = {name: peeled.get(name, sha) for name, sha in raw.items()}
    return head, raw, resolved


def _ls_remote(
    url: str, *, credentials: GitCredentials | None, timeout: float | None, allow_http: bool, cwd: Path
) -> tuple[str | None, dict[str, str], dict[str, str]]:
    env = _base_environment(allow_http=allow_http, credentials=credentials)
    # ls-remote needs no repository; keep git from discovering one above the cwd.
    env["GIT_CEILING_DIRECTORIES"] = str(cwd.parent)
    out = _run(
        ["ls-remote", "--symref", "--", url, *_LS_REMOTE_PATTERNS],
        env=env,
        action="ls-remote",
        cwd=cwd,
        url=url,
        credentials=credentials,
        timeout=timeout,
    )
    return _parse_ls_remote(out.decode("utf-8", "surrogateescape"))


def ls_remote_many(
    urls: Sequence[str],
    *,
    concurrency: int = 8,
    credentials: GitCredentials | None = None,
    timeout: float = 60,
    allow_http: bool = False,
) -> dict[str, RemoteRefs | GitError]:
    """List heads, tags and HEAD of many remotes at once (threads, one ``ls-remote`` each).

    A failing remote yields its ``GitError`` in the result; the others are unaffected. Sync
    uses this to skip fetching the repositories whose refs did not move.
    """
    results: dict[str, RemoteRefs | GitError] = {}
    unique = list(dict.fromkeys(urls))
    with tempfile.TemporaryDirectory(prefix="agentforge-ls-remote-") as scratch:
        cwd = Path(scratch)

        def one(url: str) -> RemoteRefs | GitError:
            try:
                check_remote_url(url, allow_http=allow_http)
                head, raw, refs = _ls_remote(
                    url, credentials=credentials, timeout=timeout, allow_http=allow_http, cwd=cwd
                )
            except GitError as exc:
                return exc
            return RemoteRefs(head_symref=head, refs=refs, raw=raw)

        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="ls-remote") as pool:
            for url, outcome in zip(unique, pool.map(one, unique), strict=True):
                results[url] = outcome
    return results


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class RefUpdate:
    """A ref whose target moved during a fetch; ``forced`` = not a fast-forward (a moved tag
    is always forced: released versions are supposed to be immutable)."""

    old: str
    new: str
    forced: bool


@dataclass(frozen=True)
class FetchResult:
    """What a fetch changed; commit ids are peeled (tags resolved to their commit)."""

    added: dict[str, str] = field(default_factory=dict)
    updated: dict[str, RefUpdate] = field(default_factory=dict)
    deleted: dict[str, str] = field(default_factory=dict)
    default_branch: str | None = None
    fetched: bool = True  # False when ls-remote showed nothing new, so no fetch was run
    #: ``refs/heads/*`` and ``refs/tags/*`` → commit after the fetch (what ``local_refs()``
    #: would answer), and the pinned commits: read by the same ``for-each-ref``, so a caller
    #: needs no further process to learn them.
    refs: dict[str, str] = field(default_factory=dict)
    pins: tuple[str, ...] = ()

    @property
    def forced(self) -> list[str]:
        return sorted(name for name, update in self.updated.items() if update.forced)

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.deleted)


@dataclass(frozen=True, slots=True)
class ListedObject:
    """One entry of a whole-commit listing (as ``ls-tree -r -t -l``): ``path`` from the root;
    ``kind`` blob | tree | commit (a submodule); ``size`` for blobs only."""

    path: str
    mode: str
    kind: str
    sha: str
    size: int | None


@dataclass(frozen=True)
class TreeEntry:
    """A file below a folder: ``path`` relative to the folder, ``/``-separated."""

    path: str
    mode: str
    sha: str
    size: int | None

    @property
    def is_symlink(self) -> bool:
        return self.mode == MODE_SYMLINK

    @property
    def is_submodule(self) -> bool:
        return self.mode == MODE_SUBMODULE

    @property
    def is_executable(self) -> bool:
        return self.mode == MODE_EXECUTABLE


@dataclass
class SymlinksOut:
    """What ``RepositoryMirror.symlinks_out_of`` found, by component folder."""

    #: folder → symlinks (repository paths) leaving the repository, or looping.
    of_repository: dict[str, list[str]] = field(default_factory=dict)
    #: folder → (symlink, the repository path it leads to; "" when it points at nothing) for
    #: symlinks that stay inside the repository but leave their folder.
    of_folder: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    #: folder → (file or folder, why) for names a lock's checksum cannot carry (not UTF-8, a
    #: newline or a backslash: ``core.hashing.unsupported_name``), so `lock` and `install` refuse them.
    unsupported: dict[str, list[tuple[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class PathResolution:
    """Where a path leads inside a commit's tree, following symlinks the way a checkout would.

    ``symlinks`` lists every symlink passed through (tree paths); ``escapes`` is True when a
    symlink target leaves the tree (absolute, or ``..`` above the root), in which case
    ``kind`` is ``"escapes"``. Sync refuses manifest paths with ``escapes`` (and may refuse
    any with ``through_symlink``).
    """

    path: str
    kind: Literal["blob", "tree", "symlink", "submodule", "missing", "escapes"]
    resolved: str | None
    object_id: str | None
    mode: str | None
    symlinks: tuple[str, ...] = ()

    @property
    def escapes(self) -> bool:
        return self.kind == "escapes"

    @property
    def through_symlink(self) -> bool:
        return bool(self.symlinks)

    @property
    def exists(self) -> bool:
        return self.kind not in ("missing", "escapes")


def _normalize_relpath(path: str, *, what: str = "path") -> list[str]:
    """Split a repository-relative path; refuse absolute paths and ``..``."""
    if "\n" in path or "\0" in path:
        raise GitError(f"Invalid {what} {path!r}: control characters", code="GIT_PATH_INVALID")
    if path.startswith("/"):
        raise GitError(f"Invalid {what} {path!r}: must be relative", code="GIT_PATH_INVALID")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise GitError(f"Invalid {what} {path!r}: '..' is not allowed", code="GIT_PATH_INVALID")
    return parts


def _text(value: str | bytes) -> str:
    return value.decode("ascii") if isinstance(value, bytes) else value


def _check_commit_id(commit: str) -> str:
    if not _HEX_ID.match(commit):
        raise GitError(
            f"{commit!r} is not a full commit id", code="GIT_COMMIT_INVALID", hint="Pass a 40-hex commit id."
        )
    return commit


def _config_quote(value: str) -> str:
    """A git config value in double quotes (``\\`` and ``"`` escaped), as ``git config`` reads it."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_tree(data: bytes, id_len: int) -> dict[str, tuple[str, str]]:
    """Parse a raw tree object: name → (6-digit mode, object id)."""
    entries: dict[str, tuple[str, str]] = {}
    pos = 0
    while pos < len(data):
        space = data.index(b" ", pos)
        nul = data.index(b"\0", space)
        mode = data[pos:space].decode("ascii").rjust(6, "0")
        name = data[space + 1 : nul].decode("utf-8", "surrogateescape")
        entries[name] = (mode, data[nul + 1 : nul + 1 + id_len].hex())
        pos = nul + 1 + id_len
    return entries


@functools.cache
def _git_version() -> tuple[int, ...]:
    """The installed git's version (``git version``, asked once per process); () when unreadable."""
    exe = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
    try:
        out = subprocess.run([exe, "version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    match = re.search(r"(\d+)\.(\d+)(?:\.(\d+))?", out)
    return tuple(int(g) for g in match.groups() if g is not None) if match else ()


class _CatFile:
    """Persistent ``git cat-file`` processes with pipelined requests.

    With git 2.36 or newer, one ``--batch-command`` process answers both kinds of request
    (``info`` for a header, ``contents`` for the object); older gits get a ``--batch-check`` and
    a ``--batch`` process. One round trip reads many objects: the requests of a chunk are written
    at once (a chunk is kept far below a pipe's buffer, so the write never waits on git), then
    the answers are read in order. A request naming a missing or ambiguous object answers None.
    Any failure while an answer is half read kills the processes, so the next request never
    reads a stale answer.
    """

    _CHUNK = 400  # object names per write (≤ ~40 KB with full names; a pipe buffers 64 KB)
    #: mode → the request line's prefix on a ``--batch-command`` process.
    _COMMANDS = {"--batch-check": "info ", "--batch": "contents "}

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self._path = path
        self._env = {**os.environ, **env, "LC_ALL": "C"}
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._one_process = _git_version() >= (2, 36)

    def _proc(self, mode: str) -> subprocess.Popen[bytes]:
        if self._one_process:
            mode = "--batch-command"
        proc = self._procs.get(mode)
        if proc is None or proc.poll() is not None:
            exe = git.Git.GIT_PYTHON_GIT_EXECUTABLE or "git"
            # In a process group of its own: Ctrl-C in a terminal signals the command's group, and
            # a reader killed mid-answer made that repository's sync fail (and back off) though the
            # user only interrupted it. It ends when we close its stdin, or when we die.
            proc = subprocess.Popen([exe, "cat-file", mode], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, cwd=self._path, env=self._env, process_group=0)
            self._procs[mode] = proc
        return proc

    def _ask(self, mode: str, names: Sequence[str], *, with_data: bool,
             max_size: int | None = None) -> list[tuple[str, str, int, bytes | None] | None]:
        out: list[tuple[str, str, int, bytes | None] | None] = []
        for start in range(0, len(names), self._CHUNK):
            chunk = names[start:start + self._CHUNK]
            proc = self._proc(mode)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                prefix = self._COMMANDS[mode] if self._one_process else ""
                proc.stdin.write("".join(f"{prefix}{n}\n" for n in chunk).encode("utf-8", "surrogateescape"))
                proc.stdin.flush()
                for _name in chunk:
                    header = proc.stdout.readline()
                    if not header.endswith(b"\n"):
                        raise GitError(f"git cat-file stopped answering in {self._path}", code="GIT_CATFILE_FAILED")
                    parts = header.split()
                    if len(parts) != 3:  # "<name> missing" / "<name> ambiguous"
                        out.append(None)
                        continue
                    object_id, kind, size = parts[0].decode(), parts[1].decode(), int(parts[2])
                    data: bytes | None = None
                    if with_data:
                        data = proc.stdout.read(size + 1)[:-1]
                        if len(data) != size:
                            raise GitError(f"git cat-file cut an object short in {self._path}",
                                           code="GIT_CATFILE_FAILED")
                    out.append((object_id, kind, size, data))
            except BaseException:
                self.close()
                raise
        return out

    def headers(self, names: Sequence[str]) -> list[tuple[str, str, int] | None]:
        """(id, type, size) per object expression, None for a missing one."""
        answers = self._ask("--batch-check", names, with_data=False)
        return [(a[0], a[1], a[2]) if a is not None else None for a in answers]

    def contents(self, object_ids: Sequence[str]) -> list[bytes | None]:
        return [a[3] if a is not None else None for a in self._ask("--batch", object_ids, with_data=True)]

    def close(self) -> None:
        for proc in self._procs.values():
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
            except OSError:
                pass
            if proc.poll() is None:
                try:
                    proc.wait(timeout=2)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self._procs.clear()


# --------------------------------------------------------------------------- the mirror


_F = TypeVar("_F", bound=Callable[..., Any])
#: Path resolutions a mirror object remembers (then it starts over): a few MB at most.
_MAX_RESOLVED = 20_000

#: Files git leaves behind when it is killed while updating refs or config; each blocks the next
#: writer ("Unable to create '….lock': File exists") until someone removes it.
#: A new mirror is cloned into ``<mirror><_CLONE_SUFFIX><pid>-<random>`` and renamed into place.
_CLONE_SUFFIX = ".cloning-"
_GIT_LOCK_FILES = ("packed-refs.lock", "HEAD.lock", "config.lock", "shallow.lock", "FETCH_HEAD.lock")


def _writes_mirror(method: _F) -> _F:
    """Run a mirror-writing method under the mirror's write lock (see ``RepositoryMirror._write_lock``)."""

    @functools.wraps(method)
    def locked(self: RepositoryMirror, *args: Any, **kwargs: Any) -> Any:
        with self._write_lock():
            return method(self, *args, **kwargs)

    return locked  # type: ignore[return-value]


_MIRROR_MISSING_HINT = "Run `agentforge sync` for its repository: the sync creates the mirror again."


def _remove_interrupted_clones(path: Path) -> None:
    """The scratch folders of clones of the mirror at ``path`` that never finished."""
    for leftover in path.parent.glob(f"{glob.escape(path.name)}{_CLONE_SUFFIX}*"):
        shutil.rmtree(leftover, ignore_errors=True)


def remove_mirror(path: str | Path) -> None:
    """Delete a mirror with what lies beside it: interrupted clones and its write-lock file."""
    path = Path(path)
    shutil.rmtree(path, ignore_errors=True)
    _remove_interrupted_clones(path)
    path.with_name(f"{path.name}.forge-lock").unlink(missing_ok=True)


def is_mirror(path: str | Path) -> bool:
    """A git repository at ``path`` (what a mirror's folder holds once created). A folder without
    ``HEAD`` and ``objects`` (emptied, or left by a clone killed early) is none: fetch re-creates it."""
    return os.path.isfile(os.path.join(path, "HEAD")) and os.path.isdir(os.path.join(path, "objects"))


class RepositoryMirror:
    """A bare mirror of one remote: its branches and tags, plus commits we pinned.

    Layout: ``refs/heads/*`` and ``refs/tags/*`` mirror the remote (fetched with
    ``--prune --force``); ``refs/forge/pins/<sha>`` keep locked/installed commits alive
    (outside the fetch refspecs, so never pruned); ``refs/remotes/origin/HEAD`` is a symref to
    the remote's default branch. The remote URL is stored plain; credentials are passed per
    call (see :class:`GitCredentials`).
    """

    def __init__(
        self,
        path: Path,
        url: str,
        *,
        credentials: GitCredentials | None = None,
        allow_http: bool = False,
        timeout: float = 600,
    ) -> None:
        self.path = Path(path)
        self.url = check_remote_url(url, allow_http=allow_http)
        self._credentials = credentials
        self._allow_http = allow_http
        self._timeout = timeout
        self._cat: _CatFile | None = None
        self._trees: dict[str, dict[str, tuple[str, str]]] = {}
        # commit id → root tree id (commits are immutable; names such as branches are never cached)
        self._root_trees: dict[str, str] = {}
        # (commit, path, follow_final) → where it leads: a sync asks about each component's folder
        # and file more than once per commit (path checks, the read, the tree id); objects never change.
        self._resolved: dict[tuple[str, str, bool], PathResolution] = {}
        self._links_below: dict[str, tuple[str, ...]] = {}  # tree id -> symlinks below it (relative paths)
        self._odd_below: dict[str, tuple[tuple[str, str], ...]] = {}  # tree id -> (name, why) a checksum refuses
        self._found: dict[tuple[str, str, int], list[str]] = {}  # find_files by (commit id, name, depth)
        self._last_walk: tuple[str, list[tuple[str, str, str]]] | None = None  # (tree id, its whole walk)
        #: Heads and tags left out because their names are not UTF-8 (``readable_ref_name``), as
        #: ``repr``-style text; the sync reports them.
        self.unreadable_refs: set[str] = set()
        #: Heads and tags that point at no commit (a tag of a tree or a blob): left out of the refs
        #: as no release, kept here (name → the object id ``ls-remote`` shows for it) so a sync
        #: can report them and count them in its checkpoint (else every ref check saw them as new).
        self.non_commit_refs: dict[str, str] = {}
        self._lock_depth = 0  # nesting of _write_lock on this object (its methods call each other)
        self._lock_fd: int | None = None
        self._ensured = False  # ensure() ran on this object: the mirror exists with our URL
        self._head_target: str | None = None  # what the mirror's HEAD points at, when we know it
        self._cloned = False  # this object created the mirror (``_clone``)

    # ---- plumbing

    def __enter__(self) -> RepositoryMirror:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RepositoryMirror({str(self.path)!r}, {redact(self.url)!r})"

    def _env(self, *, network: bool = False) -> dict[str, str]:
        env = _base_environment(allow_http=self._allow_http, credentials=self._credentials if network else None)
        env["GIT_DIR"] = str(self.path)
        return env

    def _git(self, *args: str, action: str, network: bool = False) -> bytes:
        if not self.exists():
            raise GitError(f"Mirror {self.path} does not exist", code="GIT_MIRROR_MISSING", hint=_MIRROR_MISSING_HINT)
        return _run(
            args,
            env=self._env(network=network),
            action=action,
            cwd=self.path,
            url=self.url if network else None,
            credentials=self._credentials if network else None,
            timeout=self._timeout,
        )

    def _catfile(self) -> _CatFile:
        if self._cat is None:
            if not self.exists():
                raise GitError(f"Mirror {self.path} does not exist", code="GIT_MIRROR_MISSING",
                               hint=_MIRROR_MISSING_HINT)
            self._cat = _CatFile(self.path, self._env())
        return self._cat

    def _header(self, name: str) -> tuple[str, str, int] | None:
        """(id, type, size) of an object expression, or None when git says "missing"."""
        if "\n" in name:
            return None
        return self._catfile().headers([name])[0]

    def _headers(self, names: Sequence[str]) -> list[tuple[str, str, int] | None]:
        """``_header`` for many names in one round trip."""
        if any("\n" in n for n in names):
            return [self._header(n) for n in names]
        return self._catfile().headers(names)

    def _data(self, object_id: str) -> bytes:
        return self._data_many([object_id])[object_id]

    def _data_many(self, object_ids: Sequence[str]) -> dict[str, bytes]:
        """Contents of many objects (by id) in one round trip; a missing one is an error."""
        unique = list(dict.fromkeys(object_ids))
        if any("\n" in i for i in unique):
            raise GitError("an object id holds a newline", code="GIT_OBJECT_MISSING")
        out: dict[str, bytes] = {}
        for object_id, data in zip(unique, self._catfile().contents(unique), strict=True):
            if data is None:
                raise GitError(f"Object {object_id} is missing from {self.path}", code="GIT_OBJECT_MISSING")
            out[object_id] = data
        return out

    def _tree(self, tree_id: str) -> dict[str, tuple[str, str]]:
        cached = self._trees.get(tree_id)
        if cached is None:
            cached = _parse_tree(self._data(tree_id), len(tree_id) // 2)
            self._trees[tree_id] = cached
        return cached

    def _load_trees(self, tree_ids: Iterable[str]) -> None:
        """Read every tree not cached yet in one round trip (a walk reads a level at a time)."""
        missing = [t for t in dict.fromkeys(tree_ids) if t not in self._trees]
        if missing:
            for tree_id, data in self._data_many(missing).items():
                self._trees[tree_id] = _parse_tree(data, len(tree_id) // 2)

    def _root_tree(self, commit: str) -> str:
        cached = self._root_trees.get(commit)
        if cached is not None:
            return cached
        header = self._header(f"{commit}^{{tree}}")
        if header is None:
            raise GitError(
                f"Commit {commit} is not in the mirror of {redact(self.url)}",
                code="GIT_COMMIT_NOT_FOUND",
                hint="Fetch the repository (or fetch_commit) first.",
            )
        if _HEX_ID.match(commit):
            self._root_trees[commit] = header[0]
        return header[0]

    @contextlib.contextmanager
    def _write_lock(self) -> Iterator[None]:
        """Every git process that writes the mirror (init, fetch, ref updates) runs holding an
        exclusive ``flock`` on ``<mirror>.forge-lock`` beside it. The kernel drops the lock when
        its holder dies, even by SIGKILL, so whoever holds it knows that no writer of ours is
        running: a ``*.lock`` file git left inside the mirror (a process killed mid-fetch) is
        stale, and is removed before git is started again. Reentrant on one object."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / f"{self.path.name}.forge-lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_fd, self._lock_depth = fd, 1
            self._remove_stale_git_locks()
            yield
        finally:
            self._lock_depth, self._lock_fd = 0, None
            os.close(fd)  # releases the flock

    def _remove_stale_git_locks(self) -> list[str]:
        """Delete the ``*.lock`` files a killed git left in the mirror (caller holds the write lock)."""
        if not self.path.is_dir():
            return []
        stale = [self.path / name for name in _GIT_LOCK_FILES if (self.path / name).exists()]
        refs = self.path / "refs"
        for folder, _dirs, files in os.walk(refs):
            stale.extend(Path(folder) / f for f in files if f.endswith(".lock"))
        for path in stale:
            path.unlink(missing_ok=True)
        return [str(p.relative_to(self.path)) for p in stale]

    def close(self) -> None:
        """Stop the persistent cat-file processes (they restart on the next read)."""
        if self._cat is not None:
            self._cat.close()
            self._cat = None

    # ---- lifecycle

    def exists(self) -> bool:
        return is_mirror(self.path)

    @_writes_mirror
    def ensure(self) -> None:
        """Create the bare mirror if needed and (re)set its remote URL. Idempotent.

        A new, empty mirror costs one process: ``git init`` without templates, then our two
        settings are appended to the config file it just wrote, in git's own syntax (value quoted
        and escaped), instead of two ``git config`` processes. (A sync creates its mirrors with
        ``fetch``, which clones them.) An existing mirror's URL is checked once per object.
        """
        if self._ensured and self.exists():
            return
        if not self.exists():
            self.path.parent.mkdir(parents=True, exist_ok=True)
            env = _base_environment(allow_http=self._allow_http, credentials=None)
            _run(
                # --template= (none): a mirror needs no sample hooks or info/exclude, and
                # copying them is most of what git init costs.
                ["init", "--bare", "--quiet", "--template=", "--", str(self.path)],
                env=env,
                action="init",
                cwd=self.path.parent,
            )
            with open(self.path / "config", "a", encoding="utf-8") as config:
                config.write(
                    f"[core]\n\tlogAllRefUpdates = false\n"
                    f'[remote "origin"]\n\turl = {_config_quote(self.url)}\n'
                )
        else:
            current = self._config_get("remote.origin.url")
            if current != self.url:
                self._git("config", "remote.origin.url", self.url, action="config")
        self._ensured = True

    @_writes_mirror
    def _clone(self) -> str | None:
        """Create the mirror from its remote in one process; return the remote's HEAD (a
        ``refs/heads/…`` name) or None when it has none.

        ``git clone --bare`` lists the remote, fetches its heads and tags and points the mirror's
        HEAD at the remote's default branch: what ``ls-remote``, ``init`` and a first ``fetch``
        did in three processes (about a third less git CPU per new mirror). A bare clone writes
        no fetch refspec, so later fetches take only ours (``_FETCH_REFSPECS``). A folder left
        at the mirror's place that is not a mirror is removed first; we hold the mirror's write lock.

        The clone is made in a scratch folder beside the mirror and renamed into place once it is
        complete. A ``kill -9`` of the sync leaves its ``git clone`` running (a child outlives its
        parent), and that clone, writing straight into the mirror's folder, made a half-written
        mirror the next sync fetched into while the orphan still wrote to it (two full packs). Now
        an interrupted clone only leaves a scratch folder, which the next clone removes.
        """
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _remove_interrupted_clones(self.path)
        scratch = self.path.with_name(f"{self.path.name}{_CLONE_SUFFIX}{os.getpid()}-{secrets.token_hex(4)}")
        try:
            _run(
                # --template= (none): a mirror needs no sample hooks or info/exclude.
                ["clone", "--bare", "--quiet", "--template=", "--config", "core.logAllRefUpdates=false", "--",
                 self.url, str(scratch)],
                env=_base_environment(allow_http=self._allow_http, credentials=self._credentials),
                action="clone",
                cwd=self.path.parent,
                url=self.url,
                credentials=self._credentials,
                timeout=self._timeout,
            )
            os.rename(scratch, self.path)
        finally:
            if scratch.exists():
                shutil.rmtree(scratch, ignore_errors=True)
        self._ensured = True
        self._cloned = True
        try:
            head = (self.path / "HEAD").read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):  # a default branch whose name is not text: see readable_ref_name
            head = ""
        # "ref: refs/heads/<branch>" (a symref); a detached remote HEAD leaves a commit id here.
        self._head_target = head[5:].strip() if head.startswith("ref: ") else None
        return self._head_target

    def _config_get(self, key: str) -> str | None:
        try:
            return self._git("config", "--get", key, action="config").decode().strip() or None
        except GitError:
            return None

    # ---- refs

    def _for_each_ref(self, *patterns: str) -> dict[str, tuple[str, str]]:
        """ref → (raw object id, peeled commit id)."""
        out = self._git(
            "for-each-ref",
            "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname)",
            *patterns,
            action="for-each-ref",
        ).decode("utf-8", "surrogateescape")
        refs: dict[str, tuple[str, str]] = {}
        for line in out.splitlines():
            parts = line.split(" ", 4)
            if len(parts) != 5:
                continue
            raw, kind, peeled, peeled_kind, name = parts
            if not readable_ref_name(name):
                self.unreadable_refs.add(_shown_ref(name))
                continue
            if kind == "commit":
                refs[name] = (raw, raw)
            elif kind == "tag" and peeled_kind == "commit":
                refs[name] = (raw, peeled)
            elif kind == "tag":  # a tag of a tag: peel fully; tags of trees/blobs are not releases
                header = self._header(f"{raw}^{{commit}}")
                if header is not None:
                    refs[name] = (raw, header[0])
        return refs

    def _ref_state(self) -> tuple[dict[str, tuple[str, str]], list[str], str | None]:
        """One ``for-each-ref``: (heads and tags → (raw, peeled), pinned commits, the symref
        target of ``refs/remotes/origin/HEAD`` or None)."""
        out = self._git(
            "for-each-ref",
            "--format=%(objectname) %(objecttype) %(*objectname) %(*objecttype) %(refname) %(symref)",
            "refs/heads",
            "refs/tags",
            PIN_NAMESPACE,
            REMOTE_HEAD_REF,
            action="for-each-ref",
        ).decode("utf-8", "surrogateescape")
        refs: dict[str, tuple[str, str]] = {}
        pins: list[str] = []
        origin_head: str | None = None
        self.non_commit_refs = {}
        for line in out.splitlines():
            parts = line.split(" ")
            if len(parts) < 6:
                continue
            # Ref names cannot contain spaces, so the last two fields are name and symref.
            raw, kind, peeled, peeled_kind, name, symref = parts[0], parts[1], parts[2], parts[3], parts[-2], parts[-1]
            if name == REMOTE_HEAD_REF:
                origin_head = (symref or None) if readable_ref_name(symref) else None
                continue
            if not readable_ref_name(name):
                self.unreadable_refs.add(_shown_ref(name))
                continue
            commit: str | None = None
            if kind == "commit":
                commit = raw
            elif kind == "tag" and peeled_kind == "commit":
                commit = peeled
            elif kind == "tag":  # a tag of a tag: peel fully; tags of trees/blobs are not releases
                header = self._header(f"{raw}^{{commit}}")
                commit = header[0] if header is not None else None
            if commit is None:
                if not name.startswith(PIN_NAMESPACE):
                    self.non_commit_refs[name] = peeled if kind == "tag" and peeled else raw
                continue
            if name.startswith(PIN_NAMESPACE):
                pins.append(name.removeprefix(PIN_NAMESPACE))
            else:
                refs[name] = (raw, commit)
        return refs, sorted(pins), origin_head

    def _ref_state_of_clone(self) -> tuple[dict[str, tuple[str, str]], list[str], str | None]:
        """``_ref_state`` of a mirror ``_clone`` has just written, without a ``for-each-ref`` process.

        ``git clone`` writes every ref it fetched into ``packed-refs`` (with the ``fully-peeled``
        trait: each annotated tag is followed by a ``^<id>`` line naming the object it peels to)
        and none as a loose file, and a bare clone has no pins and no ``origin/HEAD``. Which of the
        ref targets are commits (lightweight tags of trees or blobs are not releases) is asked of
        the cat-file process the read starts anyway, in one round trip. Anything else — no
        ``packed-refs`` (an empty remote; a reftable repository), another trait, a loose ref, a
        line this does not know — falls back to ``_ref_state``.
        """
        entries = self._packed_refs_of_clone()
        if entries is None:
            return self._ref_state()
        targets = [peeled or raw for _name, raw, peeled in entries]
        headers = self._headers(list(dict.fromkeys(targets))) if targets else []
        kinds = {h[0]: h[1] for h in headers if h is not None}
        refs = {name: (raw, target) for (name, raw, _peeled), target in zip(entries, targets, strict=True)
                if kinds.get(target) == "commit"}
        self.non_commit_refs = {name: target for (name, _raw, _peeled), target in zip(entries, targets, strict=True)
                                if kinds.get(target) not in (None, "commit")}
        return refs, [], None

    def _packed_refs_of_clone(self) -> list[tuple[str, str, str | None]] | None:
        """(name, id, peeled id or None) of each head and tag in a fresh clone's ``packed-refs``;
        None when the mirror's refs are not exactly that (see ``_ref_state_of_clone``)."""
        try:
            lines = (self.path / "packed-refs").read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError):
            return None
        if not lines or not lines[0].startswith("# pack-refs with:") or "fully-peeled" not in lines[0].split():
            return None
        if any(files for _root, _dirs, files in os.walk(self.path / "refs")):
            return None  # a loose ref (or a reftable stub): not what a clone leaves
        entries: list[tuple[str, str, str | None]] = []
        for line in lines[1:]:
            if line.startswith("^"):
                peeled = line[1:]
                if not entries or entries[-1][2] is not None or not _HEX_ID.match(peeled):
                    return None
                name, raw, _none = entries[-1]
                entries[-1] = (name, raw, peeled)
                continue
            raw, _sep, name = line.partition(" ")
            if not _HEX_ID.match(raw) or not name.startswith(("refs/heads/", "refs/tags/")):
                return None
            entries.append((name, raw, None))
        return entries

    def _write_loose_ref(self, name: str, value: str) -> bool:
        """Write one ref the way git's files backend does: ``<ref>.lock`` created exclusively, the
        value written, then renamed over the ref (``value`` a commit id, or ``ref: <target>`` for a
        symbolic ref). Saves a git process where a sync writes refs of its own. False, writing
        nothing, when the mirror keeps refs otherwise (reftable) or the ref is locked or in the way:
        the caller then runs git, which reports that properly. Callers hold the write lock."""
        if (self.path / "reftable").exists() or not (self.path / "refs").is_dir():
            return False
        path = self.path / name
        lock = path.with_name(path.name + ".lock")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except OSError:
            return False
        try:
            # A symbolic ref's target may be any name git allows (``ref: refs/heads/ünï``): its bytes.
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as out:
                out.write(value + "\n")
            os.replace(lock, path)
        except (OSError, ValueError):
            with contextlib.suppress(OSError):
                lock.unlink()
            return False
        return True

    def local_refs(self) -> dict[str, str]:
        """``refs/heads/*`` and ``refs/tags/*`` → commit id (annotated tags peeled)."""
        refs = self._for_each_ref("refs/heads", "refs/tags")
        return {name: peeled for name, (_raw, peeled) in refs.items()}

    def pins(self) -> list[str]:
        return sorted(name.removeprefix(PIN_NAMESPACE) for name in self._for_each_ref(PIN_NAMESPACE))

    def default_branch(self) -> str | None:
        """The remote's default branch as of the last fetch (None if unknown or gone)."""
        try:
            target = self._git("symbolic-ref", "--quiet", REMOTE_HEAD_REF, action="symbolic-ref")
        except GitError:
            return None
        ref = target.decode("utf-8", "surrogateescape").strip()
        if not readable_ref_name(ref) or not ref.startswith("refs/heads/") or self._header(ref) is None:
            return None
        return ref.removeprefix("refs/heads/")

    def remote_refs(self) -> RemoteRefs:
        """``ls-remote`` of this mirror's remote (with its credentials)."""
        head, _raw, refs = self._ls_remote_raw()
        return RemoteRefs(head_symref=head, refs=refs)

    def _ls_remote_raw(self) -> tuple[str | None, dict[str, str], dict[str, str]]:
        out = self._git("ls-remote", "--symref", "origin", *_LS_REMOTE_PATTERNS, action="ls-remote", network=True)
        return _parse_ls_remote(out.decode("utf-8", "surrogateescape"))

    @_writes_mirror
    def _record_head(
        self, head: str | None, refs: Mapping[str, object], *, recorded: str | bool | None = False
    ) -> str | None:
        """Point ``refs/remotes/origin/HEAD`` (and the mirror's HEAD) at the remote's default branch.

        ``recorded`` is what ``origin/HEAD`` points at now (None: absent), when the caller
        already read it; ``False`` = unknown. The mirror's HEAD is written first and
        ``origin/HEAD`` last, so an ``origin/HEAD`` already right means both are, and nothing
        is written (no process) on a sync where the default branch did not change.
        """
        if head is not None and head.startswith("refs/heads/") and head in refs:
            if recorded is not False and recorded == head:
                return head.removeprefix("refs/heads/")
            # The mirror's own HEAD follows, so plain git commands in it behave as expected.
            if self._head_target != head:
                self._git("symbolic-ref", "HEAD", head, action="symbolic-ref")
                self._head_target = head
            # Written as a file when it cannot exist yet (a new clone has no origin/HEAD), else by git.
            if recorded is not None or not self._write_loose_ref(REMOTE_HEAD_REF, f"ref: {head}"):
                self._git("symbolic-ref", REMOTE_HEAD_REF, head, action="symbolic-ref")
            return head.removeprefix("refs/heads/")
        if recorded is None:
            return None
        try:
            self._git("symbolic-ref", "--delete", "--quiet", REMOTE_HEAD_REF, action="symbolic-ref")
        except GitError:
            pass
        return None

    @_writes_mirror
    def fetch(self, remote: RemoteRefs | None = None) -> FetchResult:
        """Bring heads and tags up to date (``--prune --force``) and report what moved.

        A mirror that does not exist yet is cloned (``_clone``: one process). For an existing
        one ``ls-remote`` runs first: when the remote's refs equal ours, no fetch is run at all
        (the common case of a periodic sync). A caller that has just listed the remote (the
        sync's batched ref check) passes that listing as ``remote`` and no second ls-remote
        runs; the fetch itself still takes whatever the remote holds by then. Pins under
        ``refs/forge/pins/`` are outside the refspecs, so neither pruning nor forced updates
        can drop pinned commits.
        """
        created = not self.exists()
        before: dict[str, tuple[str, str]] = {}
        if created:
            # A new mirror is cloned: the clone lists the remote itself (``remote`` is not needed).
            head = self._clone()
            fetched = True
        else:
            if remote is not None and remote.raw is not None:
                head, remote_raw = remote.head_symref, dict(remote.raw)
                self.ensure()
            else:
                self.ensure()
                head, remote_raw, _remote_peeled = self._ls_remote_raw()
            before, pins, origin_head = self._ref_state()
            fetched = {name: raw for name, (raw, _p) in before.items()} != remote_raw
        if fetched and not created:
            self._git(
                "fetch",
                "--prune",
                "--force",
                "--no-tags",
                "--no-write-fetch-head",
                "--quiet",
                "origin",
                *_FETCH_REFSPECS,
                action="fetch",
                network=True,
            )
            self.close()  # new packs: restart cat-file rather than trust its caches
        if created:
            after, pins, origin_head = self._ref_state_of_clone()
        elif fetched:
            after, pins, origin_head = self._ref_state()
        else:
            after = before
        # A fresh mirror has no origin/HEAD; an existing one that shows none may hold a broken
        # one (for-each-ref skips those), so it is deleted as before when the remote has no HEAD.
        default = self._record_head(head, after, recorded=None if created else (origin_head or False))

        added = {name: after[name][1] for name in after.keys() - before.keys()}
        deleted = {name: before[name][1] for name in before.keys() - after.keys()}
        updated: dict[str, RefUpdate] = {}
        for name in before.keys() & after.keys():
            (old_raw, old), (new_raw, new) = before[name], after[name]
            if old_raw == new_raw:
                continue
            if name.startswith("refs/tags/"):
                forced = old != new
            else:
                forced = not self.is_ancestor(old, new)
            updated[name] = RefUpdate(old=old, new=new, forced=forced)
        return FetchResult(
            added=dict(sorted(added.items())),
            updated=dict(sorted(updated.items())),
            deleted=dict(sorted(deleted.items())),
            default_branch=default,
            fetched=fetched,
            refs={name: peeled for name, (_raw, peeled) in sorted(after.items())},
            pins=tuple(pins),
        )

    def pin(self, commit: str) -> None:
        """Keep ``commit`` alive across prunes and forced updates (``refs/forge/pins/<sha>``)."""
        self.pin_many([commit])

    @_writes_mirror
    def pin_many(self, commits: Sequence[str]) -> None:
        """``pin`` for several commits in one ``git update-ref --stdin`` transaction (all or none;
        on a mirror this object has just cloned, written as ref files: see the comment below)."""
        unique = list(dict.fromkeys(commits))
        for commit in unique:
            _check_commit_id(commit)
        headers = self._headers([f"{commit}^{{commit}}" for commit in unique]) if unique else []
        for commit, header in zip(unique, headers, strict=True):
            if header is None or header[0] != commit:
                raise GitError(
                    f"Cannot pin {commit}: not in the mirror of {redact(self.url)}",
                    code="GIT_COMMIT_NOT_FOUND",
                    hint="Fetch it first (fetch_commit).",
                )
        if not unique:
            return
        # A mirror this object has just cloned holds no pins and no other writer (we hold its lock
        # and it is new): the pins are written as files, without a git process. Should any
        # not be writable so, update-ref below writes them all (the same values).
        if self._cloned and all(self._write_loose_ref(PIN_NAMESPACE + commit, commit) for commit in unique):
            return
        if len(unique) == 1:
            self._git("update-ref", PIN_NAMESPACE + unique[0], unique[0], action="update-ref")
            return
        commands = "".join(f"update {PIN_NAMESPACE}{commit} {commit}\n" for commit in unique).encode("ascii")
        # GitPython hands istream to Popen, which needs a real file descriptor.
        with tempfile.TemporaryFile() as stdin:
            stdin.write(commands)
            stdin.seek(0)
            if not self.exists():
                raise GitError(f"Mirror {self.path} does not exist", code="GIT_MIRROR_MISSING",
                               hint=_MIRROR_MISSING_HINT)
            _run(["update-ref", "--stdin"], env=self._env(), action="update-ref", cwd=self.path,
                 timeout=self._timeout, istream=stdin)

    @_writes_mirror
    def unpin(self, commit: str) -> None:
        _check_commit_id(commit)
        self._git("update-ref", "-d", PIN_NAMESPACE + commit, action="update-ref")

    def has_commit(self, commit: str) -> bool:
        header = self._header(f"{commit}^{{commit}}")
        return header is not None and (not _HEX_ID.match(commit) or header[0] == commit)

    @_writes_mirror
    def fetch_commit(self, commit: str) -> None:
        """Fetch one commit by id (and pin it), for commits no remote ref reaches any more.

        Works with protocol v2 servers (git's default, including ``file://``) and with
        servers that set ``uploadpack.allowReachableSHA1InWant``/``allowAnySHA1InWant``;
        otherwise a non-retryable ``GIT_COMMIT_UNAVAILABLE`` error is raised.
        """
        _check_commit_id(commit)
        self.ensure()
        if not self.has_commit(commit):
            self._git(
                "fetch",
                "--no-tags",
                "--no-write-fetch-head",
                "--quiet",
                "origin",
                f"+{commit}:{PIN_NAMESPACE}{commit}",
                action=f"fetch of commit {commit}",
                network=True,
            )
            self.close()
        self.pin(commit)

    # ---- reading

    def resolve_path(self, commit: str, path: str, *, follow_final: bool = True) -> PathResolution:
        """Follow ``path`` through the commit's tree (symlinks too); see :class:`PathResolution`."""
        key = (commit, path, follow_final)
        known = self._resolved.get(key)
        if known is not None:
            return known
        parts = _normalize_relpath(path)
        found = self._resolve(self._root_tree(commit), "/".join(parts), parts, follow_final=follow_final)
        if _HEX_ID.match(commit):  # a commit id; a branch name may move
            if len(self._resolved) >= _MAX_RESOLVED:
                self._resolved.clear()
            self._resolved[key] = found
        return found

    def path_is_safe(self, commit: str, path: str) -> bool:
        """True when ``path`` exists without passing through a symlink that leaves the tree."""
        resolution = self.resolve_path(commit, path)
        return resolution.exists

    def _resolve(self, root_tree: str, shown: str, parts: Sequence[str], *, follow_final: bool) -> PathResolution:
        stack: list[tuple[str, str]] = []  # (name, tree id) of the folders entered
        pending = deque(parts)
        symlinks: list[str] = []
        hops = 0

        def result(
            kind: Literal["blob", "tree", "symlink", "submodule", "missing", "escapes"],
            object_id: str | None = None,
            mode: str | None = None,
            resolved: str | None = None,
        ) -> PathResolution:
            return PathResolution(shown, kind, resolved, object_id, mode, tuple(symlinks))

        while pending:
            name = pending.popleft()
            if name in ("", "."):
                continue
            if name == "..":
                if not stack:
                    return result("escapes")
                stack.pop()
                continue
            entries = self._tree(stack[-1][1] if stack else root_tree)
            entry = entries.get(name)
            if entry is None:
                return result("missing")
            mode, object_id = entry
            here = "/".join([*(n for n, _ in stack), name])
            if mode == MODE_SYMLINK and (pending or follow_final):
                hops += 1
                if hops > _MAX_SYMLINK_HOPS:
                    raise GitError(f"Too many levels of symlinks in {shown!r}", code="GIT_SYMLINK_LOOP")
                symlinks.append(here)
                target = self._data(object_id).decode("utf-8", "surrogateescape")
                if target.startswith("/"):
                    return result("escapes")
                pending.extendleft(reversed(target.split("/")))
                continue
            if mode == MODE_TREE:
                stack.append((name, object_id))
                continue
            if any(rest not in ("", ".") for rest in pending):
                return result("missing")  # a file used as a folder
            kind: Literal["blob", "symlink", "submodule"] = (
                "symlink" if mode == MODE_SYMLINK else "submodule" if mode == MODE_SUBMODULE else "blob"
            )
            return result(kind, object_id, mode, here)
        if not stack:
            return result("tree", root_tree, MODE_TREE, "")
        return result("tree", stack[-1][1], MODE_TREE, "/".join(n for n, _ in stack))

    def _blob_of(self, commit: str, path: str, *, follow_symlinks: bool) -> str | None:
        resolution = self.resolve_path(commit, path, follow_final=follow_symlinks)
        if resolution.escapes:
            raise GitError(
                f"{path!r} at {commit[:12]} goes through a symlink that leaves the repository "
                f"({', '.join(resolution.symlinks)})",
                code="GIT_SYMLINK_ESCAPES",
                hint="Point the manifest at a real file inside the repository.",
            )
        if resolution.kind in ("missing", "submodule"):
            return None
        if resolution.kind == "tree":
            raise GitError(f"{path!r} at {commit[:12]} is a folder, not a file", code="GIT_NOT_A_FILE")
        return resolution.object_id

    def read_blob(
        self, commit: str, path: str, *, max_size: int | None = None, follow_symlinks: bool = True
    ) -> bytes | None:
        """Content of the file at ``path`` in ``commit``; None if absent.

        Symlinks inside the repository are followed (like a checkout); one leaving it raises
        ``GIT_SYMLINK_ESCAPES``. With ``max_size`` the size is checked before reading.
        """
        object_id = self._blob_of(commit, path, follow_symlinks=follow_symlinks)
        if object_id is None:
            return None
        if max_size is not None:
            header = self._header(object_id)
            if header is not None and header[2] > max_size:
                raise GitError(
                    f"{path!r} at {commit[:12]} is {header[2]} bytes, over the {max_size}-byte limit",
                    code="GIT_FILE_TOO_LARGE",
                )
        return self._data(object_id)

    def read_blobs(
        self, items: Sequence[tuple[str, str]], *, max_size: int | None = None
    ) -> dict[tuple[str, str], bytes | None]:
        """``read_blob`` for many (commit, path) pairs: the paths are resolved through the cached
        trees, then the sizes (with ``max_size``) and the contents are read in one round trip each."""
        unique = list(dict.fromkeys(items))
        ids = {item: self._blob_of(item[0], item[1], follow_symlinks=True) for item in unique}
        first: dict[str, tuple[str, str]] = {}
        for item, object_id in ids.items():
            if object_id is not None:
                first.setdefault(object_id, item)
        wanted = list(first)
        if max_size is not None and wanted:
            for (commit, path), header in zip(first.values(), self._headers(wanted), strict=True):
                if header is not None and header[2] > max_size:
                    raise GitError(
                        f"{path!r} at {commit[:12]} is {header[2]} bytes, over the {max_size}-byte limit",
                        code="GIT_FILE_TOO_LARGE",
                    )
        data = self._data_many(wanted) if wanted else {}
        return {item: (data[i] if i is not None else None) for item, i in ids.items()}

    def tree_id(self, commit: str, path: str) -> str | None:
        """Tree id of a folder at ``commit`` (``""``/``"."`` = the root); None if not a folder."""
        resolution = self.resolve_path(commit, path)
        if resolution.escapes:
            raise GitError(
                f"{path!r} at {commit[:12]} goes through a symlink that leaves the repository",
                code="GIT_SYMLINK_ESCAPES",
            )
        return resolution.object_id if resolution.kind == "tree" else None

    def _walk(self, tree_id: str, *, max_depth: int | None = None) -> list[tuple[str, str, str]]:
        """(relative path, mode, object id) of every entry below a tree (folders included),
        reading the trees a level at a time, each level in one round trip.

        The last whole walk is kept: a depth-limited walk that reached every folder is one, so
        format detection's ``find_files`` and the catalog listing after it walk a tree once."""
        if self._last_walk is not None and self._last_walk[0] == tree_id:
            full = self._last_walk[1]
            return list(full) if max_depth is None else [e for e in full if e[0].count("/") <= max_depth]
        out: list[tuple[str, str, str]] = []
        level: list[tuple[str, str]] = [("", tree_id)]
        depth = 0
        whole = True
        while level:
            self._load_trees(t for _p, t in level)
            below: list[tuple[str, str]] = []
            for prefix, tid in level:
                for name, (mode, object_id) in self._trees[tid].items():
                    out.append((prefix + name, mode, object_id))
                    if mode == MODE_TREE:
                        if max_depth is None or depth < max_depth:
                            below.append((f"{prefix}{name}/", object_id))
                        else:
                            whole = False
            level = below
            depth += 1
        if whole:
            self._last_walk = (tree_id, out)
            return list(out)
        return out

    def list_tree(self, commit: str) -> tuple[str, list[ListedObject]]:
        """(root tree id, every entry below it — folders included — sorted by path): what
        ``ls-tree -r -t -l`` prints, read through the persistent cat-file (trees a level per round
        trip, then every blob's size in one round trip) rather than one more process per commit."""
        root = self._root_tree(commit)
        walked = self._walk(root)
        blobs = [i for _p, m, i in walked if m not in (MODE_TREE, MODE_SUBMODULE)]
        sizes = {i: h[2] for i, h in zip(blobs, self._headers(blobs), strict=True) if h is not None} if blobs else {}
        entries = [
            ListedObject(path=p, mode=m, kind="tree" if m == MODE_TREE else "commit" if m == MODE_SUBMODULE else "blob",
                         sha=i, size=sizes.get(i) if m not in (MODE_TREE, MODE_SUBMODULE) else None)
            for p, m, i in walked
        ]
        entries.sort(key=lambda entry: entry.path)
        return root, entries

    def read_objects(self, object_ids: Iterable[str]) -> dict[str, bytes | None]:
        """Content of each object id (None when git reports it missing), pipelined over the
        persistent cat-file (a few round trips for thousands of objects)."""
        unique = list(dict.fromkeys(object_ids))
        for object_id in unique:
            if not object_id or any(ch in object_id for ch in " \n\t"):
                raise GitError(f"Invalid object id {object_id!r}", code="GIT_OBJECT_INVALID")
        return dict(zip(unique, self._catfile().contents(unique), strict=True)) if unique else {}

    def symlinks_out_of(self, commit: str, folders: Mapping[str, str]) -> SymlinksOut:
        """The symlinks below each folder (``{folder path: its tree id}`` at ``commit``) that
        leave the repository (or loop), and those that stay inside it but leave their folder
        (``export`` refuses both), and the names below it that a lock's checksum cannot carry;
        folders with none are left out, paths are repository paths.

        Every folder's tree is walked together, a level per round trip, and a tree's symlinks
        are listed once per tree id (trees are content-addressed): unchanged folders at later
        release points cost nothing. Only the symlinks found are resolved.
        """
        roots = [t for t in dict.fromkeys(folders.values()) if t not in self._links_below]
        found: dict[str, list[str]] = {root: [] for root in roots}
        odd: dict[str, list[tuple[str, str]]] = {root: [] for root in roots}
        level = [(root, "", root) for root in roots]
        while level:
            self._load_trees(tid for _r, _p, tid in level)
            below: list[tuple[str, str, str]] = []
            for root, prefix, tid in level:
                for name, (mode, object_id) in self._trees[tid].items():
                    why = unsupported_name(name)
                    if why:
                        odd[root].append((prefix + name, why))
                        continue  # what is below it is refused with it
                    if mode == MODE_SYMLINK:
                        found[root].append(prefix + name)
                    elif mode == MODE_TREE:
                        below.append((root, f"{prefix}{name}/", object_id))
            level = below
        for root, links in found.items():
            self._links_below[root] = tuple(sorted(links))
            self._odd_below[root] = tuple(sorted(odd[root]))
        out = SymlinksOut()
        for folder, tree in folders.items():
            base = "" if folder in ("", ".") else folder.rstrip("/") + "/"
            if self._odd_below[tree]:
                out.unsupported[folder] = [(base + name, why) for name, why in self._odd_below[tree]]
            for link in self._links_below[tree]:
                where = self._link_target(commit, base + link)
                if where is None:
                    out.of_repository.setdefault(folder, []).append(base + link)
                elif base and not (where + "/").startswith(base):
                    out.of_folder.setdefault(folder, []).append((base + link, where))
        return out

    def _link_target(self, commit: str, path: str) -> str | None:
        """Where the symlink at ``path`` leads (a repository path; "" when it points at nothing);
        None when it leaves the repository or cannot be followed (a loop)."""
        try:
            resolution = self.resolve_path(commit, path)
        except GitError:
            return None
        if resolution.escapes:
            return None
        return resolution.resolved if resolution.exists and resolution.resolved is not None else ""

    def list_files(self, commit: str, path: str) -> list[TreeEntry]:
        """Every file below the folder (recursive, sorted by relative path; as ``ls-tree -r -l``:
        symlinks and submodules included, a submodule without a size)."""
        tree = self.tree_id(commit, path)
        if tree is None:
            raise GitError(
                f"{path!r} is not a folder at {commit[:12]} in {redact(self.url)}", code="GIT_PATH_NOT_FOUND"
            )
        files = [(p, m, i) for p, m, i in self._walk(tree) if m != MODE_TREE]
        blobs = [i for _p, m, i in files if m != MODE_SUBMODULE]
        sizes = {i: h[2] for i, h in zip(blobs, self._headers(blobs), strict=True) if h is not None} if blobs else {}
        entries = [TreeEntry(path=p, mode=m, sha=i, size=None if m == MODE_SUBMODULE else sizes.get(i))
                   for p, m, i in files]
        entries.sort(key=lambda entry: entry.path)
        return entries

    def iter_files(self, commit: str, path: str) -> Iterator[tuple[str, bytes, str]]:
        """(relative path, content, mode) of every file below the folder; a symlink's content
        is its target; submodules are skipped (their content is not in this repository)."""
        entries = [e for e in self.list_files(commit, path) if not e.is_submodule]
        data = self._data_many([e.sha for e in entries]) if entries else {}
        for entry in entries:
            yield entry.path, data[entry.sha], entry.mode

    def find_files(self, commit: str, filename: str, *, max_depth: int = 6) -> list[str]:
        """Paths of regular files named ``filename`` at most ``max_depth`` folders deep
        (``component.yaml`` at the root has depth 0). Symlinks are not followed or returned.

        The walk reads trees through the persistent cat-file and its tree cache, a level per
        round trip, rather than one ``ls-tree -r`` process per commit: the reader resolves these
        same folders next, trees shared between commits are read once, and nothing below
        ``max_depth`` is read.
        """
        key = (commit, filename, max_depth)
        found = self._found.get(key)
        if found is None:  # format detection and the reader's scan ask the same question
            found = sorted(p for p, mode, _i in self._walk(self._root_tree(commit), max_depth=max_depth)
                           if mode in (MODE_FILE, MODE_EXECUTABLE) and p.rsplit("/", 1)[-1] == filename)
            if _HEX_ID.match(commit):  # a commit id names the same tree forever; a branch does not
                self._found[key] = found
        return list(found)

    def generations(self, commits: Sequence[str]) -> dict[str, int]:
        """Per commit, how many commits it reaches (itself included; ``git rev-list --count``): an
        ancestor always counts fewer than its descendants. What orders commits with equal commit
        times (scripted histories commit several times a second). One git process per commit."""
        out: dict[str, int] = {}
        for commit in commits:
            counted = self._git("rev-list", "--count", commit, "--", action="rev-list")
            out[commit] = int(counted.decode().strip() or 0)
        return out

    def commit_time(self, commit: str) -> datetime:
        """The committer date (UTC)."""
        header = self._header(f"{commit}^{{commit}}")
        if header is None:
            raise GitError(f"Commit {commit} is not in the mirror", code="GIT_COMMIT_NOT_FOUND")
        for line in self._data(header[0]).split(b"\n"):
            if not line:
                break
            if line.startswith(b"committer "):
                stamp, offset = line.rsplit(b" ", 2)[1:]
                sign = -1 if offset.startswith(b"-") else 1
                minutes = int(offset[1:3]) * 60 + int(offset[3:5])
                zone = timezone(sign * timedelta(minutes=minutes))
                return datetime.fromtimestamp(int(stamp), tz=zone).astimezone(UTC)
        raise GitError(f"Commit {commit} has no committer line", code="GIT_OBJECT_INVALID")

    def is_ancestor(self, older: str, newer: str) -> bool:
        """True when ``older`` is ``newer`` or one of its ancestors."""
        try:
            self._git("merge-base", "--is-ancestor", older, newer, action="merge-base")
        except GitError as exc:
            if exc.details.get("status") == "1":
                return False
            raise
        return True

    def export(self, commit: str, path: str, dest: Path) -> None:
        """Write the folder's files to ``dest`` (absent or empty) without a work tree.

        Modes are kept (executable or not); symlinks whose target stays inside the folder are
        recreated as symlinks; a symlink leaving the folder, or pointing at nothing, is a
        ``GitError`` raised before anything is written.
        """
        entries = self.list_files(commit, path)
        folder_tree = self.tree_id(commit, path)
        assert folder_tree is not None  # list_files checked it
        links: dict[str, str] = {}
        for entry in entries:
            parts = entry.path.split("/")
            if any(part in ("", ".", "..", ".git") for part in parts):
                raise GitError(f"Unsafe file name {entry.path!r} in {path!r}", code="GIT_PATH_INVALID")
            if entry.is_symlink:
                target = self._data(entry.sha).decode("utf-8", "surrogateescape")
                resolution = self._resolve(
                    folder_tree, entry.path, [*parts[:-1], *target.split("/")], follow_final=True
                )
                if not resolution.exists or target.startswith("/"):
                    reason = "leaves the folder" if resolution.escapes else "points at nothing"
                    raise GitError(
                        f"Symlink {entry.path!r} -> {target!r} in {path!r} at {commit[:12]} {reason}",
                        code="GIT_SYMLINK_ESCAPES" if resolution.escapes else "GIT_SYMLINK_DANGLING",
                        hint="Only symlinks to files inside the component's folder can be installed.",
                    )
                links[entry.path] = target
        dest = Path(dest)
        if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
            raise GitError(f"Export destination {dest} exists and is not empty", code="GIT_EXPORT_DEST")
        dest.mkdir(parents=True, exist_ok=True)
        for entry in entries:
            if entry.is_submodule:
                continue
            target_path = dest.joinpath(*entry.path.split("/"))
            target_path.parent.mkdir(parents=True, exist_ok=True)
            if entry.is_symlink:
                os.symlink(links[entry.path], target_path)
                continue
            with open(target_path, "xb") as handle:  # "x": never write through something existing
                handle.write(self._data(entry.sha))
            target_path.chmod(0o755 if entry.is_executable else 0o644)


# --------------------------------------------------------------------------- example repositories

_SNAPSHOT_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z; one day per snapshot


def _fast_import_stream(
    snapshots: Sequence[tuple[Path, Sequence[str]]], *, branch: str, author: tuple[str, str]
) -> bytes:
    name, email = author
    ident = f"{name} <{email}>".encode()
    out = bytearray(b"feature done\n")
    for index, (folder, tags) in enumerate(snapshots):
        folder = Path(folder)
        if not folder.is_dir():
            raise GitError(f"Snapshot folder {folder} does not exist", code="GIT_SNAPSHOT_INVALID")
        stamp = f" {_SNAPSHOT_EPOCH + index * 86_400} +0000\n".encode()
        message = f"Snapshot {index + 1}" + (f" ({', '.join(tags)})" if tags else "") + "\n"
        out += f"commit refs/heads/{branch}\nmark :{index + 1}\n".encode()
        out += b"author " + ident + stamp + b"committer " + ident + stamp
        out += f"data {len(message.encode())}\n{message}".encode()
        if index:
            out += f"from :{index}\n".encode()
        out += b"deleteall\n"
        for file_path in sorted(folder.rglob("*")):
            relative = file_path.relative_to(folder).as_posix()
            if ".git" in relative.split("/") or (file_path.is_dir() and not file_path.is_symlink()):
                continue
            if file_path.is_symlink():
                mode, content = MODE_SYMLINK, os.readlink(file_path).encode()
            else:
                executable = bool(file_path.stat().st_mode & stat.S_IXUSR)
                mode, content = (MODE_EXECUTABLE if executable else MODE_FILE), file_path.read_bytes()
            if "\n" in relative or relative.startswith('"'):
                raise GitError(f"Unsupported file name {relative!r} in {folder}", code="GIT_SNAPSHOT_INVALID")
            out += f"M {mode} inline {relative}\ndata {len(content)}\n".encode() + content + b"\n"
        for tag in tags:
            out += f"reset refs/tags/{tag}\nfrom :{index + 1}\n".encode()
    out += b"done\n"
    return bytes(out)


def _history(repo: Path, branch: str) -> tuple[list[str], dict[str, str]]:
    env = _base_environment(allow_http=False, credentials=None) | {"GIT_DIR": str(repo)}
    commits = (
        _run(["rev-list", "--reverse", f"refs/heads/{branch}"], env=env, action="rev-list", cwd=repo).decode().split()
    )
    refs_out = _run(
        ["for-each-ref", "--format=%(objectname) %(refname)"], env=env, action="for-each-ref", cwd=repo
    ).decode()
    refs: dict[str, str] = {}
    for line in refs_out.splitlines():
        object_id, _, name = line.partition(" ")
        if name:
            refs[name] = object_id
    return commits, refs


def create_repository_from_snapshots(
    dest_bare: Path,
    snapshots: Sequence[tuple[Path, Sequence[str]]],
    *,
    branch: str = "main",
    author: tuple[str, str] = ("AgentForge Examples", "examples@agentforge.invalid"),
) -> list[str]:
    """Build a bare repository with one commit per snapshot folder, tagged as given.

    Commits carry the full content of their folder (files, modes, symlinks) and fixed dates,
    so the same input always yields the same commit ids (``git fast-import``, one process).
    When ``dest_bare`` already holds exactly that history it is left untouched; a different
    bare repository there is replaced. Returns the commit ids, oldest first.
    """
    dest_bare = Path(dest_bare)
    stream = _fast_import_stream(snapshots, branch=branch, author=author)
    dest_bare.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{dest_bare.name}-", dir=dest_bare.parent))
    try:
        staging = scratch / "repo.git"
        env = _base_environment(allow_http=False, credentials=None)
        _run(["init", "--bare", "--quiet", "--", str(staging)], env=env, action="init", cwd=scratch)
        env_repo = env | {"GIT_DIR": str(staging)}
        stream_file = scratch / "stream"
        stream_file.write_bytes(stream)
        with open(stream_file, "rb") as handle:
            _run(["fast-import", "--quiet"], env=env_repo, action="fast-import", cwd=staging, istream=handle)
        _run(["symbolic-ref", "HEAD", f"refs/heads/{branch}"], env=env_repo, action="symbolic-ref", cwd=staging)
        commits, refs = _history(staging, branch)
        if (dest_bare / "HEAD").is_file() and (dest_bare / "objects").is_dir():
            try:
                if _history(dest_bare, branch) == (commits, refs):
                    return commits
            except GitError:
                pass
            shutil.rmtree(dest_bare)
        elif dest_bare.exists():
            raise GitError(
                f"{dest_bare} exists and is not a bare git repository",
                code="GIT_EXPORT_DEST",
                hint="Remove it or choose another destination.",
            )
        staging.rename(dest_bare)
        return commits
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
