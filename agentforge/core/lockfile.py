"""The lock file ``forge-lock.yaml`` (FORMATS.md §5): models, writer, reader, content hash.

The writer is deterministic like Poetry's locker: sorted keys at every level (so packages are
sorted by key), LF line endings, a trailing newline, no timestamps — identical input gives
identical bytes, and an unchanged resolution never rewrites the file.

Package keys are ``<repository_key(repository)>/<component>`` (for example
``github.com/company/crm-tools/salesforce-lookup``); the reader checks every key against
its package so a hand-edited lock cannot pin one component under another's name.

A lock left with git conflict markers after a merge is not an error for ``lock``:
:func:`read_lock_with_conflicts` splits it into both sides, parses each as far as it can and
returns the pins (key → commit and version) that both sides agree on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

import semver
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from agentforge.core.documents import NAME_PATTERN, DependencySpec, format_validation_errors, is_valid_name
from agentforge.core.urls import normalise_repository_url, repository_key
from agentforge.core.yamlio import canonical_json, dump_yaml, load_document
from agentforge.errors import AgentForgeError, LockError, UrlError

__all__ = [
    "LOCKFILE_VERSION",
    "MAX_LOCK_BYTES",
    "LockFile",
    "LockPin",
    "LockReadResult",
    "LockRoot",
    "LockedPackage",
    "compute_content_hash",
    "has_conflict_markers",
    "load_lock_data",
    "package_key",
    "parse_lock",
    "parse_lock_data",
    "read_lock_with_conflicts",
    "render_lock",
    "split_conflict_sides",
]

LOCKFILE_VERSION: Literal[1] = 1
_OBJECT_ID_RE = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")
_CHECKSUM_RE = re.compile(r"sha256:[0-9a-f]{64}")
_MARKERS = ("<<<<<<<", "|||||||", "=======", ">>>>>>>")
_LOCK_HINT = ("The lock file is damaged: move it aside (e.g. `mv forge-lock.yaml forge-lock.yaml.bad`), then "
              "`agentforge lock ROOT` writes a fresh one.")


def _check_object_id(value: str) -> str:
    if not _OBJECT_ID_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not a full lower-case hex git object id (40 or 64 characters)")
    return value


def _check_checksum(value: str) -> str:
    if not _CHECKSUM_RE.fullmatch(value):
        raise ValueError(f"{value!r} is not 'sha256:' followed by 64 lower-case hex digits")
    return value


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise ValueError(f"{value!r} is not a valid component name")
    return value


def _check_version(value: Any) -> Any:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a valid semantic version (must be a string)")
    try:
        semver.Version.parse(value)
    except ValueError:
        raise ValueError(f"{value!r} is not a valid semantic version") from None
    return value


def _check_repository(value: str) -> str:
    try:
        normalised = normalise_repository_url(value, allow_insecure=True)
    except UrlError as exc:
        raise ValueError(exc.message) from None
    if normalised != value:
        raise ValueError(f"{value!r} is not in normalised form (expected {normalised!r})")
    return value


ObjectId = Annotated[
    str, AfterValidator(_check_object_id), Field(json_schema_extra={"pattern": "^[0-9a-f]{40}([0-9a-f]{24})?$"})
]
Checksum = Annotated[
    str, AfterValidator(_check_checksum), Field(json_schema_extra={"pattern": "^sha256:[0-9a-f]{64}$"})
]
ComponentName = Annotated[str, AfterValidator(_check_name), Field(json_schema_extra={"pattern": NAME_PATTERN})]
Version = Annotated[str, BeforeValidator(_check_version)]
RepositoryUrl = Annotated[str, AfterValidator(_check_repository)]


def package_key(repository: str, component: str) -> str:
    """The lock-file key of a component: ``<repository_key>/<component>``."""
    return f"{repository_key(repository)}/{component}"


class LockRoot(BaseModel):
    """What the lock was made for: a composition or a single component."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["Tool", "Prompt", "Agent", "Composition"]
    name: ComponentName
    version: Version


class LockedPackage(BaseModel):
    """One resolved component pinned to a commit."""

    model_config = ConfigDict(extra="forbid")

    repository: RepositoryUrl
    component: ComponentName
    kind: Literal["Tool", "Prompt", "Agent"]
    version: Version
    commit: ObjectId
    tree: ObjectId
    """Git tree id of the component's folder at ``commit``."""
    checksum: Checksum
    dependency_type: Literal["root", "direct", "transitive", "peer", "dev"]
    optional: bool = False
    constraints: dict[str, str] = Field(default_factory=dict)
    """Who asked for this package (``<root>`` or a package key) → the constraint text."""
    resolution_path: list[str] = Field(default_factory=list)
    verified: bool | None = None
    """Reserved: whether the commit's signature was verified (written only when set)."""
    signing_key: str | None = None
    """Reserved: the key that signed the commit (written only when set)."""

    @property
    def key(self) -> str:
        return package_key(self.repository, self.component)


class LockFile(BaseModel):
    """The whole ``forge-lock.yaml``."""

    model_config = ConfigDict(extra="forbid")

    lockfile_version: Literal[1] = LOCKFILE_VERSION
    root: LockRoot
    content_hash: Checksum
    packages: dict[str, LockedPackage] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _keys_match_packages(self) -> Self:
        for key, package in self.packages.items():
            expected = package.key
            if key != expected:
                raise ValueError(f"@packages.{key}: key does not match its package (expected {expected!r})")
        return self

    def pins(self) -> dict[str, LockPin]:
        return {key: LockPin(package.commit, package.version) for key, package in self.packages.items()}


@dataclass(frozen=True)
class LockPin:
    """What a lock pins a package to."""

    commit: str
    version: str


@dataclass(frozen=True)
class LockReadResult:
    """Outcome of :func:`read_lock_with_conflicts`.

    ``lock`` is the parsed file when it held no conflict markers; ``pins`` are then all its
    pins, or for a conflicted file only those both sides agree on. ``problems`` says what
    could not be read on either side (informational; never raised).
    """

    conflicted: bool
    lock: LockFile | None
    pins: dict[str, LockPin]
    problems: tuple[str, ...] = field(default=())


def render_lock(lock: LockFile) -> str:
    """The lock file's text: byte-identical for identical input."""
    return dump_yaml(lock.model_dump(mode="json", exclude_none=True))


def _marker_line(line: str) -> str | None:
    for marker in _MARKERS:
        if line.startswith(marker) and (len(line) == len(marker) or line[len(marker)] in " \t"):
            return marker
    return None


def has_conflict_markers(text: str) -> bool:
    """True when any line is a git conflict marker (``<<<<<<<``, ``|||||||``, ``=======``, ``>>>>>>>``)."""
    return any(_marker_line(line.rstrip("\r")) for line in text.split("\n"))


def split_conflict_sides(text: str) -> tuple[str, str]:
    """(ours, theirs) of a text with git conflict markers; diff3 base sections are dropped.

    Lines outside conflicts go to both sides. Stray markers (a ``>>>>>>>`` without an opening
    one) are dropped rather than kept as content, so each side has a chance to parse.
    """
    ours: list[str] = []
    theirs: list[str] = []
    state = "both"
    for line in text.splitlines(keepends=True):
        marker = _marker_line(line.rstrip("\r\n"))
        if marker == "<<<<<<<":
            state = "ours"
            continue
        if marker == "|||||||":
            if state == "ours":
                state = "base"
            continue
        if marker == "=======":
            if state in ("ours", "base"):
                state = "theirs"
            continue
        if marker == ">>>>>>>":
            state = "both"
            continue
        if state in ("both", "ours"):
            ours.append(line)
        if state in ("both", "theirs"):
            theirs.append(line)
    return "".join(ours), "".join(theirs)


def _lock_error(problems: list[tuple[str, str]], source: str) -> LockError:
    lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems]
    return LockError(
        "\n".join(lines),
        hint=_LOCK_HINT,
        details={"source": source, "errors": [{"path": p, "message": m} for p, m in problems]},
    )


#: A lock file is generated and grows with the graph (~650 bytes a package), so it may exceed
#: the 1 MiB limit of documents people write; the other reader limits (nesting, aliases) stay.
MAX_LOCK_BYTES = 64 * 1024 * 1024


def _load_lock_data(text: str | bytes, source: str) -> dict[str, Any]:
    try:
        data = load_document(text, source=source, max_bytes=MAX_LOCK_BYTES)
    except AgentForgeError as exc:
        raise LockError(exc.message, hint=_LOCK_HINT) from None
    if not isinstance(data, dict):
        raise LockError(f"{source}: expected a mapping at the top level", hint=_LOCK_HINT)
    return data


def parse_lock(text: str | bytes, *, source: str) -> LockFile:
    """Read a lock file; any problem is a LockError naming ``source`` and the field."""
    probe = text if isinstance(text, str) else text.decode("utf-8", errors="replace")
    if has_conflict_markers(probe):
        raise LockError(
            f"{source}: contains git conflict markers",
            hint="Run `agentforge lock`: it re-resolves and keeps the pins both sides agree on.",
        )
    return parse_lock_data(load_lock_data(text, source), source=source)


def load_lock_data(text: str | bytes, source: str) -> dict[str, Any]:
    """The lock file's YAML as plain data (the safe loader, lock-size limit), not yet validated."""
    return _load_lock_data(text, source)


def parse_lock_data(data: dict[str, Any], *, source: str) -> LockFile:
    """Validate loaded lock data (``load_lock_data``'s result, or a cached copy of it)."""
    if "lockfile_version" not in data:
        raise LockError(f"{source}: lockfile_version: is required", hint=_LOCK_HINT)
    if data["lockfile_version"] != LOCKFILE_VERSION or isinstance(data["lockfile_version"], bool):
        raise LockError(
            f"{source}: lockfile_version: unsupported lock file version {data['lockfile_version']!r} "
            f"(this AgentForge reads {LOCKFILE_VERSION})",
            hint="Upgrade AgentForge, or re-run `agentforge lock` to rewrite the lock file.",
        )
    try:
        return LockFile.model_validate(data)
    except ValidationError as exc:
        raise _lock_error(format_validation_errors(exc), source) from None


def _side_pins(text: str, source: str, problems: list[str]) -> dict[str, LockPin]:
    """Pins of one side of a conflict, package by package, as far as that side can be read."""
    try:
        data = _load_lock_data(text, source)
    except LockError as exc:
        problems.append(exc.message)
        return {}
    packages = data.get("packages")
    if not isinstance(packages, dict):
        problems.append(f"{source}: packages: missing or not a mapping")
        return {}
    pins: dict[str, LockPin] = {}
    for key, raw in packages.items():
        try:
            package = LockedPackage.model_validate(raw)
        except ValidationError as exc:
            path, message = format_validation_errors(exc)[0]
            problems.append(f"{source}: packages.{key}.{path}: {message}" if path else f"{source}: {message}")
            continue
        try:
            expected = package.key
        except UrlError as exc:  # pragma: no cover - the model already validated the URL
            problems.append(f"{source}: packages.{key}: {exc.message}")
            continue
        if key != expected:
            problems.append(f"{source}: packages.{key}: key does not match its package")
            continue
        pins[key] = LockPin(package.commit, package.version)
    return pins


def read_lock_with_conflicts(text: str | bytes, *, source: str) -> LockReadResult:
    """Read a lock that may hold git conflict markers.

    Without markers this is :func:`parse_lock` (and raises like it). With markers it never
    raises: it returns ``conflicted=True`` and the pins both sides agree on (same key, same
    commit and version); whatever could not be read is listed in ``problems``.
    """
    if isinstance(text, bytes):
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError:
            decoded = None
        if decoded is None or not has_conflict_markers(decoded):
            lock = parse_lock(text, source=source)
            return LockReadResult(conflicted=False, lock=lock, pins=lock.pins())
        text = decoded
    if not has_conflict_markers(text):
        lock = parse_lock(text, source=source)
        return LockReadResult(conflicted=False, lock=lock, pins=lock.pins())
    ours_text, theirs_text = split_conflict_sides(text)
    problems: list[str] = []
    ours = _side_pins(ours_text, f"{source} (ours)", problems)
    theirs = _side_pins(theirs_text, f"{source} (theirs)", problems)
    agreed = {key: pin for key, pin in ours.items() if theirs.get(key) == pin}
    return LockReadResult(conflicted=True, lock=None, pins=dict(sorted(agreed.items())), problems=tuple(problems))


def _constraint_json(constraint: DependencySpec | Mapping[str, Any] | str) -> Any:
    if isinstance(constraint, DependencySpec):
        return constraint.model_dump(mode="json")
    if isinstance(constraint, Mapping):
        return dict(constraint)
    if isinstance(constraint, str):
        return constraint
    raise TypeError(f"cannot hash constraint of type {type(constraint).__name__}")


def compute_content_hash(
    root_definition: Mapping[str, Any],
    constraints: Iterable[DependencySpec | Mapping[str, Any] | str],
) -> str:
    """``sha256:`` + hex SHA-256 of the canonical JSON of the resolution's inputs.

    The hashed value is exactly::

        {"constraints": [<c>, ...], "lockfile_version": 1, "root": <root_definition>}

    where ``root_definition`` is the root document's raw mapping (``document.raw``, so YAML
    formatting and comments do not matter but every field does) and each ``<c>`` is a
    :class:`DependencySpec` dumped to JSON (all its fields), a mapping as given, or a string
    as given (for example ``"--dev"`` or a CLI ``--constraint`` text). The list is sorted by
    each element's canonical JSON, because the order constraints arrive in does not change
    the resolution; duplicates are kept. ``canonical_json`` sorts keys and writes no spaces.
    """
    items = [_constraint_json(constraint) for constraint in constraints]
    items.sort(key=canonical_json)
    payload = {"constraints": items, "lockfile_version": LOCKFILE_VERSION, "root": dict(root_definition)}
    return "sha256:" + hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
