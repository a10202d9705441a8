"""Read what a repository offers at one commit, straight from git objects (no checkout).

``read_snapshot`` reads ``forge-manifest.yaml`` (or, without one, scans for
``**/component.yaml`` to depth 6), then every listed component and composition, and returns
plain records. A broken component is a problem for that component only; a broken manifest
is ``fatal`` for that commit.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ValidationError

from agentforge.core.documents import (
    ManifestEntry,
    format_validation_errors,
    parse_composition,
    parse_manifest,
    safe_relpath,
)
from agentforge.core.hashing import manifest_hash, shown_name, unsupported_name
from agentforge.core.yamlio import MAX_DOCUMENT_BYTES, load_document
from agentforge.errors import AgentForgeError, DocumentError
from agentforge.parsepool import parse_components

MANIFEST_FILE = "forge-manifest.yaml"
COMPONENT_FILE = "component.yaml"
_KIND_OF_GROUP = {"tools": "Tool", "prompts": "Prompt", "agents": "Agent"}


class MirrorReader(Protocol):
    """The part of ``agentforge.gitops.RepositoryMirror`` the reader uses."""

    def read_blobs(self, items: Any, *, max_size: int | None = None) -> dict[tuple[str, str], bytes | None]: ...
    def read_blob(self, commit: str, path: str, *, max_size: int | None = None,
                  follow_symlinks: bool = True) -> bytes | None: ...
    def tree_id(self, commit: str, path: str) -> str | None: ...
    def find_files(self, commit: str, filename: str, *, max_depth: int = 6) -> list[str]: ...
    def resolve_path(self, commit: str, path: str, *, follow_final: bool = True) -> Any: ...
    def symlinks_out_of(self, commit: str, folders: Mapping[str, str]) -> Any: ...


@dataclass(frozen=True)
class ComponentRecord:
    name: str
    kind: str  # Tool | Prompt | Agent
    version: str
    path: str
    definition: dict[str, Any]
    schema: dict[str, Any] | None
    metadata: dict[str, Any]
    tree_hash: str | None


@dataclass(frozen=True)
class CompositionRecord:
    name: str
    version: str
    path: str
    description: str | None
    definition: dict[str, Any]


@dataclass
class Snapshot:
    commit: str
    label: str
    manifest: dict[str, Any] | None = None
    manifest_hash: str | None = None
    repository_type: str | None = None
    components: list[ComponentRecord] = field(default_factory=list)
    compositions: list[CompositionRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fatal: str | None = None


def _safe_path(mirror: MirrorReader, commit: str, path: str, *, what: str) -> str | None:
    """None when the path leaves the tree (directly or through a symlink); else an error text."""
    try:
        resolution = mirror.resolve_path(commit, path)
    except AgentForgeError as exc:
        return f"{what}: {exc.message}"
    if resolution.escapes:
        return f"{what}: path {path!r} leaves the repository (through a symlink)"
    if not resolution.exists:
        return f"{what}: path {path!r} does not exist"
    return None


def _drop_bad_entries(document: Any, source: str, problems: list[str]) -> Any:
    """Remove manifest entries that would fail the whole manifest but concern one component only.

    A component entry that is not a valid entry on its own (an invalid name, a missing or
    malformed ``path``), whose ``path`` leaves the repository (``..``, absolute) or whose name
    repeats an earlier one of the same kind is reported as that component's problem, at its
    index as written, and dropped, so the other components of the repository are still read.
    Anything else wrong with the manifest stays fatal (``parse_manifest`` judges the cleaned
    document).
    """
    if not isinstance(document, dict):
        return document
    cleaned = dict(document)
    if isinstance(document.get("compositions"), list):
        cleaned["compositions"] = _kept_entries(document["compositions"], "compositions", source, problems)
    if not isinstance(document.get("components"), dict):
        return cleaned
    groups = dict(document["components"])
    for group, entries in groups.items():
        if isinstance(entries, list):
            groups[group] = _kept_entries(entries, f"components.{group}", source, problems)
    cleaned["components"] = groups
    return cleaned


def _kept_entries(entries: list[Any], field: str, source: str, problems: list[str]) -> list[Any]:
    """The entries of one manifest list that stand on their own; the others reported and dropped."""
    kept: list[Any] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(entries):
        where = f"{source}: {field}[{index}]"
        if not isinstance(entry, dict):
            problems.append(f"{where}: expected a mapping with name and path, got {type(entry).__name__} "
                            "(entry skipped)")
            continue
        name = entry.get("name")
        if "path" in entry:
            try:
                safe_relpath(entry["path"], field=f"{field}[{index}].path", source=source)
            except AgentForgeError as exc:
                problems.append(f"{exc.message} (component {name!r} skipped)")
                continue
        try:
            ManifestEntry.model_validate(entry)
        except ValidationError as exc:
            for path, message in format_validation_errors(exc):
                problems.append(f"{where}.{path}: {message} (entry skipped)" if path
                                else f"{where}: {message} (entry skipped)")
            continue
        if isinstance(name, str):
            if name in seen:
                problems.append(f"{where}: duplicate name {name!r} (also at {field}[{seen[name]}]); "
                                "the later entry is skipped")
                continue
            seen[name] = index
        kept.append(entry)
    return kept


def _component_record(kind: str, name: str, version: str, raw: dict[str, Any], path: str,
                      tree: str | None) -> ComponentRecord:
    spec_value = raw.get("spec")
    spec: dict[str, Any] = spec_value if isinstance(spec_value, dict) else {}
    schema_value = spec.get("schema")
    schema = schema_value if kind == "Tool" and isinstance(schema_value, dict) else None
    metadata_value = raw.get("metadata")
    metadata: dict[str, Any] = metadata_value if isinstance(metadata_value, dict) else {}
    return ComponentRecord(name=name, kind=kind, version=version, path=path, definition=raw,
                           schema=schema, metadata=metadata, tree_hash=tree)


def read_snapshot(mirror: MirrorReader, commit: str, *, label: str, read_components: bool = True) -> Snapshot:
    """Everything the repository offers at ``commit`` (``label`` names it in messages: a tag or branch).

    ``read_components=False`` reads only the manifest and the compositions: the sync uses it
    for a default-branch tip whose components are already stored, so a new tag elsewhere
    costs only the new commit's reads.
    """
    snap = Snapshot(commit=commit, label=label)
    at = f"@{label}"
    try:
        manifest_bytes = mirror.read_blob(commit, MANIFEST_FILE, max_size=MAX_DOCUMENT_BYTES)
    except AgentForgeError as exc:
        snap.fatal = f"{MANIFEST_FILE}{at}: {exc.message}"
        return snap

    entries: list[tuple[str | None, str | None, str]] = []  # (expected kind, expected name, folder)
    composition_entries: list[tuple[str, str]] = []
    if manifest_bytes is not None:
        source = f"{MANIFEST_FILE}{at}"
        try:
            document = load_document(manifest_bytes, source=source)
            manifest = parse_manifest(_drop_bad_entries(document, source, snap.problems), source=source)
        except AgentForgeError as exc:
            snap.fatal = exc.message
            return snap
        # The manifest as written (with any skipped entries) is what we cache and hash.
        raw = document if isinstance(document, dict) else manifest.raw
        snap.manifest = raw
        snap.manifest_hash = manifest_hash(raw)
        snap.repository_type = manifest.repository.type
        for group, entry in manifest.component_entries():
            entries.append((_KIND_OF_GROUP[group], entry.name, entry.path))
        composition_entries = [(c.name, c.path) for c in manifest.compositions]
        if not read_components:
            entries = []
    elif not read_components:
        return snap
    else:
        try:
            found = mirror.find_files(commit, COMPONENT_FILE, max_depth=6)
        except AgentForgeError as exc:
            snap.fatal = f"scanning for {COMPONENT_FILE}{at}: {exc.message}"
            return snap
        entries = [(None, None, posixpath.dirname(p) or ".") for p in sorted(found)]
        if not entries:  # an empty sync must say why (a catalog read with `--format forge`, say)
            snap.problems.append(f"warning: {at.lstrip('@')}: no {MANIFEST_FILE} and no {COMPONENT_FILE} within six "
                                 f"folders: nothing to read (a catalog layout is read with `repo add URL --format "
                                 f"auto`, see FORMATS §6)")

    # Validate paths first, then read every component.yaml in one batch.
    readable: list[tuple[str | None, str | None, str, str]] = []
    for kind, name, folder in entries:
        file_path = COMPONENT_FILE if folder in ("", ".") else f"{folder}/{COMPONENT_FILE}"
        what = f"{shown_name(file_path)}{at}" + (f" (component {name!r})" if name else "")
        odd = unsupported_name(folder)
        if odd:  # a folder name the database (and a lock's checksum) cannot carry: not UTF-8, say
            snap.problems.append(f"{what}: the folder cannot be locked or installed ({odd}); component skipped: "
                                 f"rename it upstream")
            continue
        problem = _safe_path(mirror, commit, folder, what=what) if folder not in ("", ".") else None
        if problem is None:
            problem = _safe_path(mirror, commit, file_path, what=what)
            if problem and "does not exist" in problem:
                problem = f"{what}: missing {COMPONENT_FILE} in {folder!r}"
        if problem:
            snap.problems.append(problem)
            continue
        readable.append((kind, name, folder, file_path))

    blobs: dict[tuple[str, str], bytes | None] = {}
    try:
        blobs = mirror.read_blobs([(commit, fp) for *_, fp in readable], max_size=MAX_DOCUMENT_BYTES)
    except AgentForgeError:
        # One oversized file fails the batch: read one by one to blame only that component.
        for *_, fp in readable:
            try:
                blobs[(commit, fp)] = mirror.read_blob(commit, fp, max_size=MAX_DOCUMENT_BYTES)
            except AgentForgeError as exc:
                snap.problems.append(f"{fp}{at}: {exc.message}")
                blobs[(commit, fp)] = None

    present: list[tuple[str | None, str | None, str, str]] = []
    for item in readable:
        if blobs.get((commit, item[3])) is None:
            file_path = item[3]
            if not any(p.startswith(f"{file_path}{at}") for p in snap.problems):
                snap.problems.append(f"{file_path}{at}: missing {COMPONENT_FILE}")
            continue
        present.append(item)
    # One batch: parsed in a worker process during a sync of many repositories (parsepool).
    parsed = parse_components([(blobs[(commit, fp)] or b"", f"{fp}{at}") for *_, fp in present])
    seen: dict[tuple[str, str], str] = {}
    for (kind, name, folder, file_path), outcome in zip(present, parsed, strict=True):
        if isinstance(outcome, str):
            snap.problems.append(outcome)
            continue
        doc_kind, doc_name, doc_version, raw = outcome
        if kind is not None and doc_kind != kind:
            snap.problems.append(f"{file_path}{at}: kind {doc_kind} but the manifest lists it under "
                                 f"{kind.lower()}s")
            continue
        if name is not None and doc_name != name:
            snap.problems.append(f"{file_path}{at}: metadata.name {doc_name!r} differs from the manifest's {name!r}")
            continue
        key = (doc_kind, doc_name)
        if key in seen:
            snap.problems.append(f"{file_path}{at}: duplicate {doc_kind} name {doc_name!r} (also at {seen[key]})")
            continue
        seen[key] = file_path
        tree = mirror.tree_id(commit, folder if folder not in ("", ".") else "")
        snap.components.append(_component_record(doc_kind, doc_name, doc_version, raw,
                                                 "." if folder in ("", ".") else folder, tree))

    kinds_of: dict[str, list[str]] = {}
    for doc_kind, doc_name in seen:
        kinds_of.setdefault(doc_name, []).append(doc_kind)
    for shared, kinds in sorted(kinds_of.items()):
        if len(kinds) > 1:  # allowed (FORMATS §1), but a lock keys packages by repository and name
            where = ", ".join(f"{k} at {seen[(k, shared)]}" for k in sorted(kinds))
            snap.problems.append(f"warning: name {shared!r}{at} is used by {len(kinds)} kinds ({where}): `lock` "
                                 f"cannot tell them apart (a lock keys packages by repository and name); "
                                 f"rename one to lock either")

    # A symlink inside a component's folder that leaves the repository would make an install
    # follow it outside the tree (install refuses it): that component is reported and skipped here.
    trees = {rec.path: rec.tree_hash for rec in snap.components if rec.tree_hash}
    out = mirror.symlinks_out_of(commit, trees) if trees else None
    escaping: dict[str, list[str]] = out.of_repository if out is not None else {}
    leaving: dict[str, list[tuple[str, str]]] = out.of_folder if out is not None else {}
    for folder, links in sorted(leaving.items()):
        if folder not in escaping:
            link, target = links[0]
            more = f" (and {len(links) - 1} more)" if len(links) > 1 else ""
            leads = f"leads to {target!r}, outside the component's folder" if target else "points at nothing"
            snap.problems.append(f"warning: {folder}{at}: symlink {link!r}{more} {leads}: `install` refuses it "
                                 f"(only symlinks to files inside the folder install)")
    # A file name a lock's checksum cannot carry (not UTF-8, a newline, a backslash) makes the
    # component impossible to lock or install: reported and skipped here, not first at `lock`.
    unsupported: dict[str, list[tuple[str, str]]] = out.unsupported if out is not None else {}
    if escaping or unsupported:
        kept: list[ComponentRecord] = []
        for rec in snap.components:
            out_links = escaping.get(rec.path)
            odd_names = unsupported.get(rec.path)
            if out_links:
                more = f" (and {len(out_links) - 1} more)" if len(out_links) > 1 else ""
                snap.problems.append(f"{rec.path}{at} (component {rec.name!r}): symlink {out_links[0]!r}{more} leaves "
                                     f"the repository (or loops); component skipped")
            elif odd_names:
                more = f" (and {len(odd_names) - 1} more)" if len(odd_names) > 1 else ""
                first, why = odd_names[0]
                snap.problems.append(f"{rec.path}{at} (component {rec.name!r}): file '{shown_name(first)}'{more} "
                                     f"cannot be locked or installed ({why}); component skipped: rename it upstream")
            else:
                kept.append(rec)
        snap.components = kept

    for name, path in composition_entries:
        what = f"{path}{at} (composition {name!r})"
        problem = _safe_path(mirror, commit, path, what=what)
        if problem:
            snap.problems.append(problem)
            continue
        try:
            data = mirror.read_blob(commit, path, max_size=MAX_DOCUMENT_BYTES)
            if data is None:
                snap.problems.append(f"{what}: file missing")
                continue
            comp = parse_composition(data, source=f"{path}{at}")
        except AgentForgeError as exc:
            snap.problems.append(exc.message)
            continue
        if comp.name != name:
            snap.problems.append(f"{what}: metadata.name {comp.name!r} differs from the manifest's {name!r}")
            continue
        snap.compositions.append(CompositionRecord(name=comp.name, version=comp.version, path=path,
                                                   description=comp.metadata.description, definition=comp.raw))
    return snap


__all__ = ["ComponentRecord", "CompositionRecord", "DocumentError", "Snapshot", "read_snapshot"]
