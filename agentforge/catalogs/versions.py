"""Versions of catalog components: tag shapes, manifest fields, pseudo-versions.

Catalog repositories tag in more shapes than FORMATS §3 (``name--v1.2.0`` from some
marketplaces, ``plugins/foo/1.2.0`` from path-scoped release tooling), and often carry no
version at all. A component with no version anywhere gets a Go-style pseudo-version
``0.0.0-<UTC commit time yyyymmddhhmmss>-<12 hex of the commit>``: a valid SemVer
pre-release that sorts by commit time and never satisfies a range that names a version: it is
reached by a constraint that names none (a bare name, ``*``, ``latest``) while the component
has no other release (Go's rule, FORMATS §3), or by a branch or a commit constraint.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import semver

from agentforge.reader import ComponentRecord, CompositionRecord, Snapshot

__all__ = [
    "PSEUDO_PREFIX",
    "apply_release_tags",
    "catalog_version_from_tag",
    "coerce_version",
    "pseudo_version",
    "release_version_for",
    "tag_applies_to",
]

PSEUDO_PREFIX = "0.0.0-"
_SEMVER_CORE = r"[0-9]+\.[0-9]+\.[0-9]+(?:-[0-9A-Za-z.-]+)?(?:\+[0-9A-Za-z.-]+)?"
_SCOPED = [
    re.compile(rf"^(?P<scope>[^@\s]+)@v?(?P<version>{_SEMVER_CORE})$"),  # name@1.2.0, name@v1.2.0
    re.compile(rf"^(?P<scope>.+?)--v?(?P<version>{_SEMVER_CORE})$"),  # name--v1.2.0
    re.compile(rf"^(?P<scope>.+)/v?(?P<version>{_SEMVER_CORE})$"),  # name/v1.2.0, path/to/x/1.2.0
    re.compile(rf"^(?P<scope>.+?)-v(?P<version>{_SEMVER_CORE})$"),  # name-v1.2.0 (release-please)
]


def catalog_version_from_tag(tag: str) -> tuple[str | None, str] | None:
    """``(scope, version)`` of a release tag, or None for tags of any other shape.

    ``vX.Y.Z``/``X.Y.Z`` → ``(None, "X.Y.Z")`` (the whole repository); ``name@X.Y.Z``,
    ``name/vX.Y.Z``, ``name--vX.Y.Z``, ``name-vX.Y.Z`` and ``path/to/dir/X.Y.Z`` →
    ``(scope, "X.Y.Z")`` where scope is a component/plugin name or a folder. Never raises.
    """
    if not isinstance(tag, str):
        return None
    name = tag.removeprefix("refs/tags/").strip()
    bare = name[1:] if name[:1] in ("v", "V") else name
    if semver.Version.is_valid(bare):
        return None, str(semver.Version.parse(bare))
    for pattern in _SCOPED:
        match = pattern.match(name)
        if match and semver.Version.is_valid(match.group("version")):
            scope = match.group("scope").strip("/")
            if scope and ".." not in scope.split("/"):
                return scope, str(semver.Version.parse(match.group("version")))
    return None


def coerce_version(value: Any) -> str | None:
    """A SemVer string for what authors write (``1.2.3``, ``v1.2``, ``1``, YAML's ``1.0`` float); None if not."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    if text[:1] in ("v", "V"):
        text = text[1:]
    if semver.Version.is_valid(text):
        return str(semver.Version.parse(text))
    match = re.fullmatch(r"([0-9]+)(?:\.([0-9]+))?(?:\.([0-9]+))?", text)
    if match is None:
        return None
    major, minor, patch = (int(part) if part else 0 for part in match.groups())
    return f"{major}.{minor}.{patch}"


def pseudo_version(commit: str, commit_time: datetime) -> str:
    """``0.0.0-<yyyymmddhhmmss UTC>-<12 hex>``; a leading ``g`` only when the hex is all digits
    starting with 0 (SemVer forbids leading zeros in numeric identifiers)."""
    stamp = commit_time.astimezone(UTC).strftime("%Y%m%d%H%M%S")
    short = commit[:12].lower()
    if short.isdigit() and short.startswith("0"):
        short = "g" + short
    return f"{PSEUDO_PREFIX}{stamp}-{short}"


def _is_pseudo(record: ComponentRecord | Mapping[str, Any]) -> bool:
    metadata = record.metadata if isinstance(record, ComponentRecord) else record
    return metadata.get("version_source") == "pseudo"


def tag_applies_to(scope: str | None, *, name: str, path: str, metadata: Mapping[str, Any]) -> bool:
    """Does a tag of ``scope`` release this component? None (repository-wide) releases everything;
    otherwise the scope names the component (its name or original name), its plugin, or a folder
    that holds it."""
    if scope is None:
        return True
    names = {name, metadata.get("original_name"), metadata.get("plugin"), metadata.get("plugin_original_name")}
    if scope in names:
        return True
    folder = path.rstrip("/")
    return folder == scope or folder.startswith(scope.rstrip("/") + "/")


def release_version_for(record: ComponentRecord, tag_version: str) -> tuple[str, str | None]:
    """The version a tag releases this component as, and the mismatch to report (or None).

    The tag names the release. A component whose manifest version differs is still released
    at the tag's version, and the disagreement is reported; a pseudo-versioned component (no
    version written anywhere) takes the tag's version silently.
    """
    if record.version == tag_version or _is_pseudo(record):
        return tag_version, None
    source = record.metadata.get("version_source", "manifest")
    where = record.metadata.get("source_file", record.path)
    return tag_version, (f"{where}: {record.kind} {record.name} has version {record.version} (from {source}) "
                         f"but the tag releases {tag_version}; the tag's version is used")


def apply_release_tags(snapshot: Snapshot, tags: Iterable[str]) -> Snapshot:
    """The snapshot with each component's version set by the release tags at its commit.

    A component tag (scoped) wins over a repository-wide one; two tags giving one component
    different versions keep the highest and report the others. Tags of unknown shapes are ignored.
    """
    parsed = [(tag, found) for tag in sorted(tags) if (found := catalog_version_from_tag(tag)) is not None]
    if not parsed:
        return snapshot
    # Highest version first, ties in tag order (a stable sort): parsed once per tag, not per component.
    order = {tag: rank for rank, (tag, _) in enumerate(
        sorted(parsed, key=lambda item: semver.Version.parse(item[1][1]), reverse=True))}
    components: list[ComponentRecord] = []
    problems = list(snapshot.problems)
    for record in snapshot.components:
        scoped = [(t, v) for t, (s, v) in parsed
                  if s is not None and tag_applies_to(s, name=record.name, path=record.path, metadata=record.metadata)]
        chosen = scoped or [(t, v) for t, (s, v) in parsed if s is None]
        if not chosen:
            components.append(record)
            continue
        chosen.sort(key=lambda item: order[item[0]])
        tag, version = chosen[0]
        for other, other_version in chosen[1:]:
            if other_version != version:
                problems.append(f"tags {tag} and {other} both release {record.name} at {snapshot.commit[:12]}; "
                                f"{version} is used")
        new_version, problem = release_version_for(record, version)
        if problem:
            problems.append(f"tag {tag}: {problem}")
        if new_version != record.version:
            definition = dict(record.definition)
            meta = dict(definition.get("metadata") or {})
            meta.update(version=new_version, manifest_version=record.version, release_tag=tag)
            definition["metadata"] = meta
            record = replace(record, version=new_version, definition=definition, metadata=meta)
        components.append(record)
    compositions: list[CompositionRecord] = []
    for comp in snapshot.compositions:
        meta = comp.definition.get("metadata") or {}
        scoped = [(t, v) for t, (s, v) in parsed
                  if s is not None and tag_applies_to(s, name=comp.name, path=comp.path, metadata=meta)]
        chosen = sorted(scoped or [(t, v) for t, (s, v) in parsed if s is None], key=lambda item: order[item[0]])
        if chosen and chosen[0][1] != comp.version:
            tag, version = chosen[0]
            if meta.get("version_source") != "pseudo":
                problems.append(f"tag {tag}: plugin {comp.name} has version {comp.version} but the tag releases "
                                f"{version}; the tag's version is used")
            definition = dict(comp.definition)
            definition["metadata"] = {**meta, "version": version, "manifest_version": comp.version, "release_tag": tag}
            comp = replace(comp, version=version, definition=definition)
        compositions.append(comp)
    return replace(snapshot, components=components, compositions=compositions, problems=problems)
