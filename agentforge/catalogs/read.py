"""Read catalogs laid out for other tools into the records the native reader produces.

Formats (``detect_format`` picks one; ``repo add --format`` may force one):

* ``forge`` — our own (``forge-manifest.yaml`` or ``component.yaml`` files): handed to
  :func:`agentforge.reader.read_snapshot` unchanged;
* ``claude-marketplace`` — ``.claude-plugin/marketplace.json`` listing plugins;
* ``claude-plugin`` — one plugin at the root (``.claude-plugin/plugin.json``, or the
  ``.codex-plugin``/``.cursor-plugin`` sibling that is present);
* ``mcp-server`` — an MCP registry ``server.json``;
* ``copilot`` — ``*.agent.md``, ``*.prompt.md``, ``*.instructions.md``, ``*.chatmode.md`` (and skills);
* ``agent-skills`` — ``skills/<name>/SKILL.md`` folders without a marketplace.

Mapping: agents → ``Agent``; commands, prompts, instructions, chat modes and skills →
``Prompt``; MCP servers → ``Tool`` (``spec.type: mcp-server``); a plugin → a ``Composition``
of its components. Every definition is a forge.dev/v1 document that ``parse_component`` /
``parse_composition`` accept (checked here), because the lock code re-parses definitions.

Everything is read from git objects: one recursive listing of the commit's tree (folders'
tree ids included), then one batched read by blob id for the manifests and one for the
markdown files (``RepositoryMirror.list_tree`` / ``read_objects``), not a path walk and a
round trip per file. Parsed files are kept by blob id for the life of the mirror object, so a
sync reading many release points parses each distinct file once. A problem with one file is a
problem for that component only.
"""

from __future__ import annotations

import bisect
import posixpath
import re
import weakref
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from agentforge.catalogs.names import namespaced, normalise_name
from agentforge.catalogs.versions import catalog_version_from_tag, coerce_version, pseudo_version
from agentforge.core.documents import API_VERSION, parse_component, parse_composition
from agentforge.core.frontmatter import Markdown
from agentforge.core.hashing import manifest_hash, shown_name, unsupported_name
from agentforge.core.yamlio import MAX_DOCUMENT_BYTES, load_document, load_json_document
from agentforge.errors import AgentForgeError
from agentforge.parsepool import parse_markdown_many
from agentforge.reader import (
    COMPONENT_FILE,
    MANIFEST_FILE,
    ComponentRecord,
    CompositionRecord,
    MirrorReader,
    Snapshot,
    read_snapshot,
)

__all__ = ["FORMATS", "CatalogMirror", "detect_format", "external_sources", "read_catalog_snapshot"]

FORMATS: tuple[str, ...] = ("forge", "claude-marketplace", "claude-plugin", "agent-skills", "copilot", "mcp-server")
#: Markdown files are bodies, not documents: skills of a few hundred KB are common.
MAX_MARKDOWN_BYTES = 4 * 1024 * 1024
PLUGIN_MANIFEST_DIRS = (".claude-plugin", ".codex-plugin", ".cursor-plugin")
_COPILOT_SUFFIXES = {".agent.md": ("Agent", "agent"), ".prompt.md": ("Prompt", "prompt"),
                     ".instructions.md": ("Prompt", "instructions"), ".chatmode.md": ("Prompt", "chatmode")}
#: ``spec.type`` of a Prompt must be system | template | task (PromptSpec); the catalog's own
#: word is kept in ``spec.catalog_type``.
_PROMPT_TYPE = {"command": "task", "prompt": "template", "instructions": "system", "chatmode": "system",
                "skill": "task"}
_GROUP = {"Agent": "agents", "Prompt": "prompts", "Tool": "tools"}
_SUBAGENT_IN_BODY = re.compile(r"subagent_type[\"'`]?\s*[:=]\s*[\"'`]?([A-Za-z0-9][A-Za-z0-9._:-]*)")
_COPILOT_BUILTIN_AGENTS = frozenset({"ask", "edit", "agent", "plan"})
_MODE_SYMLINK = "120000"
_MODE_SUBMODULE = "160000"
#: Files are parsed with this in place of their name, so one parse (kept by blob id) serves the
#: same blob at any path and release point; the name (``path@label``) is put back when it is used.
_SOURCE = "\x00catalog-file\x00"
#: Nested SKILL.md files warned of one by one per outer skill; more make one line with a count.
_SWALLOWED_LISTED = 5
#: Parsed files kept per mirror object at most (a sync holds its snapshots in memory anyway).
_PARSED_LIMIT = 50_000


@dataclass(frozen=True)
class _Failed:
    """A file that did not parse: the error, with :data:`_SOURCE` where its name goes."""

    message: str
    code: str
    hint: str | None


@dataclass(frozen=True)
class _ReadAsYaml:
    """A ``.json`` file that is not JSON but reads as YAML: its value, and the JSON error to warn of."""

    value: Any
    warning: str


def _load(data: bytes, *, json_file: bool) -> Any:
    """A document's value (parsed with :data:`_SOURCE` as its name), or what went wrong.

    A ``.json`` file is read as JSON, so a broken one is reported as invalid JSON; one that is not
    JSON but is YAML (a trailing comma, ``#`` comments, unquoted keys) is still read, as before,
    with the JSON error kept for a warning.
    """
    if not json_file:
        try:
            return load_document(data, source=_SOURCE)
        except AgentForgeError as exc:
            return _Failed(exc.message, exc.code, exc.hint)
    try:
        return load_json_document(data, source=_SOURCE)
    except AgentForgeError as exc:
        if "invalid JSON" not in exc.message:
            return _Failed(exc.message, exc.code, exc.hint)  # over a limit: YAML would say the same
        failed = _Failed(exc.message, exc.code, exc.hint)
    try:
        value = load_document(data, source=_SOURCE)
    except AgentForgeError:
        return failed
    return _ReadAsYaml(value, failed.message)


_ParsedFiles = dict[tuple[str, str], Any]  # ("md" | "doc", blob id) -> Markdown | value | _ReadAsYaml | _Failed
#: Per mirror object (weak: it goes with the mirror, which a sync opens and closes per repository).
_PARSED: weakref.WeakKeyDictionary[Any, _ParsedFiles] = weakref.WeakKeyDictionary()


def _parsed_files(mirror: object) -> _ParsedFiles:
    try:
        cache = _PARSED.get(mirror)
        if cache is None:
            cache = _PARSED[mirror] = {}
    except TypeError:  # not weak-referenceable: no reuse across calls
        return {}
    if len(cache) > _PARSED_LIMIT:
        cache.clear()
    return cache


def _relabel(text: str, source: str) -> str:
    return text.replace(_SOURCE, source)


class CatalogMirror(MirrorReader, Protocol):
    """The part of ``agentforge.gitops.RepositoryMirror`` the catalog reader uses: the native
    reader's part plus listing, commit times and the batched whole-commit reads."""

    def list_files(self, commit: str, path: str) -> list[Any]: ...
    def commit_time(self, commit: str) -> datetime: ...
    def list_tree(self, commit: str) -> tuple[str, list[Any]]: ...
    def read_objects(self, object_ids: Iterable[str]) -> dict[str, bytes | None]: ...


# --------------------------------------------------------------------------- listing and detection


@dataclass
class _Listing:
    sizes: dict[str, int | None]  # every regular file (and in-repo symlinked file), path -> size
    escaping: set[str]  # symlinks leaving the repository
    blob_ids: dict[str, str]  # path -> blob id (for single-file tree hashes)
    aliases: dict[str, str] = field(default_factory=dict)  # symlinked folder -> the folder it points at
    tree_ids: dict[str, str] = field(default_factory=dict)  # real folder ("" = the root) -> tree id
    #: path -> why, for names a lock's checksum (and the database) cannot carry: not UTF-8, a
    #: newline, a backslash (``core.hashing.unsupported_name``); left out of the lists above.
    unsupported: dict[str, str] = field(default_factory=dict)

    def real_path(self, path: str) -> str | None:
        """The non-symlink path of a file listed under a symlinked folder, if that path is listed too."""
        for alias, target in self.aliases.items():
            if path.startswith(alias + "/"):
                real = (target + "/" if target else "") + path[len(alias) + 1:]
                return real if real in self.sizes else None
        return None

    _sorted: list[str] = field(default_factory=list)

    def under(self, folder: str) -> list[str]:
        """Files below ``folder``, sorted (a bisect over the sorted listing: catalogs have thousands)."""
        if len(self._sorted) != len(self.sizes):
            self._sorted = sorted(self.sizes)
        if folder in ("", "."):
            return list(self._sorted)
        prefix = folder.rstrip("/") + "/"
        start = bisect.bisect_left(self._sorted, prefix)
        end = bisect.bisect_left(self._sorted, prefix[:-1] + "0")  # "0" is the character after "/"
        return self._sorted[start:end]

    def has_folder(self, folder: str) -> bool:
        return folder in ("", ".") or bool(self.under(folder))

    def unsupported_under(self, folder: str) -> list[str]:
        prefix = "" if folder in ("", ".") else folder.rstrip("/") + "/"
        return sorted(p for p in self.unsupported if p.startswith(prefix) or p == folder)

    def escapes_under(self, folder: str) -> list[str]:
        prefix = "" if folder in ("", ".") else folder.rstrip("/") + "/"
        return sorted(p for p in self.escaping if p.startswith(prefix) or p == folder)


def _list(mirror: CatalogMirror, commit: str) -> _Listing:
    """One recursive listing (folders too); symlinks resolved once (in-repo folders expanded one level)."""
    sizes: dict[str, int | None] = {}
    blob_ids: dict[str, str] = {}
    escaping: set[str] = set()
    aliases: dict[str, str] = {}
    unsupported: dict[str, str] = {}
    root, entries = mirror.list_tree(commit)
    tree_ids: dict[str, str] = {"": root}
    for entry in entries:
        why = unsupported_name(entry.path)
        if why:
            unsupported[entry.path] = why
            continue
        if entry.kind == "tree":
            tree_ids[entry.path] = entry.sha
            continue
        if entry.mode == _MODE_SUBMODULE:
            continue
        if entry.mode != _MODE_SYMLINK:
            sizes[entry.path] = entry.size
            blob_ids[entry.path] = entry.sha
            continue
        try:
            resolution = mirror.resolve_path(commit, entry.path)
        except AgentForgeError:  # a symlink loop: refused like one leaving the tree, for its component only
            escaping.add(entry.path)
            continue
        if resolution.escapes:
            escaping.add(entry.path)
        elif resolution.kind == "blob":
            sizes[entry.path] = None
            blob_ids[entry.path] = str(resolution.object_id)
        elif resolution.kind == "tree":
            aliases[entry.path] = str(resolution.resolved or "")
            for sub in mirror.list_files(commit, entry.path):
                why = unsupported_name(sub.path)
                if why:
                    unsupported[f"{entry.path}/{sub.path}"] = why
                elif sub.mode not in (_MODE_SYMLINK, _MODE_SUBMODULE):
                    sizes[f"{entry.path}/{sub.path}"] = sub.size
                    blob_ids[f"{entry.path}/{sub.path}"] = sub.sha
    return _Listing(sizes=sizes, escaping=escaping, blob_ids=blob_ids, aliases=aliases, tree_ids=tree_ids,
                    unsupported=unsupported)


def _detect(listing: _Listing) -> str | None:
    files = listing.sizes
    if "forge-manifest.yaml" in files or any(
            p.rsplit("/", 1)[-1] == "component.yaml" and p.count("/") <= 6 for p in files):
        return "forge"
    if any(f"{d}/marketplace.json" in files for d in PLUGIN_MANIFEST_DIRS):
        return "claude-marketplace"
    if any(f"{d}/plugin.json" in files for d in PLUGIN_MANIFEST_DIRS):
        return "claude-plugin"
    if "server.json" in files:
        return "mcp-server"
    if any(p.endswith(tuple(_COPILOT_SUFFIXES)) for p in files) or ".github/copilot-instructions.md" in files:
        return "copilot"
    if any(p.rsplit("/", 1)[-1] == "SKILL.md" for p in files):
        return "agent-skills"
    return None


def _has_root_manifest(mirror: CatalogMirror, commit: str) -> bool:
    """A regular file ``forge-manifest.yaml`` at the root (a symlink is left to the full listing)."""
    try:
        found = mirror.resolve_path(commit, MANIFEST_FILE, follow_final=False)
    except AgentForgeError:
        return False
    return bool(found.kind == "blob")


def _has_component_files(mirror: CatalogMirror, commit: str) -> bool:
    """A regular ``component.yaml`` at most six folders deep (what read_snapshot's scan reads
    next; the walk's trees are cached). One reached only through a symlink is left to _detect."""
    try:
        return bool(mirror.find_files(commit, COMPONENT_FILE, max_depth=6))
    except AgentForgeError:
        return False


def detect_format(mirror: CatalogMirror, commit: str) -> str | None:
    """The layout of the repository at ``commit``: one of :data:`FORMATS`, or None (nothing recognised)."""
    return _detect(_list(mirror, commit))


# --------------------------------------------------------------------------- intermediate records


@dataclass(eq=False)
class _Plugin:
    name: str
    original_name: str
    folder: str
    manifest_file: str | None
    version: str | None
    version_source: str | None
    description: str | None
    author: Any
    manifest: dict[str, Any]
    entry: dict[str, Any]
    previous_names: list[str] = field(default_factory=list)
    hooks: list[str] = field(default_factory=list)
    found: list[_Found] = field(default_factory=list)
    scanned: int = 0  # components found in its folder, before any was skipped


@dataclass(eq=False)
class _Found:
    kind: str
    catalog_type: str
    base_name: str
    original_name: str
    path: str  # the component: a folder (skill, MCP server repo) or a file
    source_file: str
    fields: dict[str, Any]
    body: str | None
    plugin: _Plugin | None
    extra_spec: dict[str, Any] = field(default_factory=dict)
    version: str | None = None
    version_source: str | None = None
    name: str = ""
    lenient: bool = False


def _str_or_none(value: Any) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _author_text(value: Any) -> str | None:
    if isinstance(value, dict):
        return _str_or_none(value.get("name") or value.get("email"))
    if isinstance(value, list):
        return ", ".join(filter(None, (_author_text(v) for v in value))) or None
    return _str_or_none(value)


def _relpath(base: str, path: str) -> str | None:
    """``path`` (relative to ``base``) as a normalised repository path; None if it leaves the repository."""
    if not isinstance(path, str) or path.startswith("/") or "\\" in path:
        return None
    joined = posixpath.normpath(posixpath.join(base or ".", path))
    if joined == "." or joined == "":
        return ""
    if joined.startswith("../") or joined == ".." or joined.startswith("/"):
        return None
    return joined


def _stem(path: str) -> str:
    base = posixpath.basename(path)
    for suffix in (*_COPILOT_SUFFIXES, ".md"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


# --------------------------------------------------------------------------- the reader


class _CatalogReader:
    def __init__(self, mirror: CatalogMirror, commit: str, label: str, listing: _Listing, fmt: str, *,
                 validate: bool) -> None:
        self.mirror = mirror
        self.commit = commit
        self.at = f"@{label}"
        self.listing = listing
        self.format = fmt
        self.problems: list[str] = []
        self.found: list[_Found] = []
        self.plugins: list[_Plugin] = []
        self.external: list[dict[str, Any]] = []
        self.renames: dict[str, str] = {}
        self.manifest_meta: dict[str, Any] = {}
        self.source_file: str | None = None
        self._pseudo: str | None = None
        self._markdown: dict[str, Markdown | None] = {}
        self._prefetched: dict[str, bytes] = {}  # path -> content read ahead in one batch (read_json)
        self._parsed = _parsed_files(mirror)
        self._agents: dict[str, list[_Found]] | None = None  # name and base name -> agents (records)
        self.validate = validate

    # ---- helpers

    def problem(self, text: str) -> None:
        self.problems.append(text)

    def pseudo(self) -> str:
        if self._pseudo is None:
            self._pseudo = pseudo_version(self.commit, self.mirror.commit_time(self.commit))
        return self._pseudo

    def read_json(self, path: str) -> Any:
        """A JSON/YAML document; raises AgentForgeError with the path in the message."""
        blob = self.listing.blob_ids.get(path)
        key = ("doc", blob) if blob is not None else None
        value = self._parsed.get(key) if key is not None else None
        if value is None:
            data = self._prefetched.pop(path, None)
            if data is None:
                data = self.mirror.read_blob(self.commit, path, max_size=MAX_DOCUMENT_BYTES)
            if data is None:
                raise AgentForgeError(f"{path}{self.at}: file missing", code="CATALOG_FILE_MISSING")
            value = _load(data, json_file=path.endswith(".json"))
            if key is not None and value is not None:
                self._parsed[key] = value
        if isinstance(value, _Failed):
            raise AgentForgeError(_relabel(value.message, f"{path}{self.at}"), code=value.code, hint=value.hint)
        if isinstance(value, _ReadAsYaml):
            self.problem(f"warning: {_relabel(value.warning, f'{path}{self.at}')}; read as YAML instead "
                         "(the tools that use this file may refuse it)")
            return value.value
        return value

    def prefetch(self, paths: list[str]) -> None:
        """Read the listed documents among ``paths`` (not parsed yet, within the size limit) in one batch."""
        wanted = {}
        for path in paths:
            blob, size = self.listing.blob_ids.get(path), self.listing.sizes.get(path)
            if (blob is not None and size is not None and size <= MAX_DOCUMENT_BYTES
                    and ("doc", blob) not in self._parsed and path not in self._prefetched):
                wanted[path] = blob
        if not wanted:
            return
        try:
            contents = self.mirror.read_objects(wanted.values())
        except AgentForgeError:
            return  # read_json reads them one by one, and blames the one that fails
        for path, blob in wanted.items():
            data = contents.get(blob)
            if data is not None:
                self._prefetched[path] = data

    def load_markdown(self, paths: list[str]) -> None:
        """Read and parse every markdown file in one batch; failures become problems."""
        wanted: list[str] = []
        for path in dict.fromkeys(paths):
            if path in self._markdown:
                continue
            size = self.listing.sizes.get(path)
            if size is not None and size > MAX_MARKDOWN_BYTES:
                self.problem(f"{path}{self.at}: {size} bytes, over the {MAX_MARKDOWN_BYTES}-byte limit; skipped")
                self._markdown[path] = None
                continue
            wanted.append(path)
        blob_ids = self.listing.blob_ids
        # Files parsed before (at another path or release point) are not read again.
        unread = [p for p in wanted if p not in blob_ids or ("md", blob_ids[p]) not in self._parsed]
        # Sizes of regular files are known from the listing (checked above), so they are read by
        # blob id in one cat-file batch; files reached through a symlink have no listed size and
        # are read through the mirror with the limit.
        sized = [p for p in unread if self.listing.sizes.get(p) is not None and p in blob_ids]
        unsized = [p for p in unread if self.listing.sizes.get(p) is None or p not in blob_ids]
        blobs: dict[str, bytes | None] = {}
        try:
            contents = self.mirror.read_objects([blob_ids[p] for p in sized])
            blobs = {p: contents.get(blob_ids[p]) for p in sized}
            missing = [p for p in sized if blobs[p] is None]  # listed but not readable: a damaged mirror
            through = self.mirror.read_blobs([(self.commit, p) for p in [*unsized, *missing]],
                                             max_size=MAX_MARKDOWN_BYTES)
            blobs.update({p: data for (_, p), data in through.items()})
        except AgentForgeError:
            for path in unread:  # one bad file fails the batch: read one by one to blame only it
                try:
                    blobs[path] = self.mirror.read_blob(self.commit, path, max_size=MAX_MARKDOWN_BYTES)
                except AgentForgeError as exc:
                    self.problem(f"{path}{self.at}: {exc.message}; skipped")
                    blobs[path] = None
        # Parsed in one batch (a large one partly in the sync's worker process, on another core:
        # agentforge.parsepool), each blob once; a file without a listed blob (reached through a
        # symlink) is kept by its path for this commit only.
        batch: dict[tuple[str, str], str] = {}  # ("md", blob id) or ("path", path) → a path to parse
        for path in wanted:
            slot = ("md", blob_ids[path]) if path in blob_ids else ("path", path)
            if blobs.get(path) is not None and slot not in self._parsed:
                batch.setdefault(slot, path)
        fresh: dict[str, Markdown | _Failed] = {}
        results = parse_markdown_many([blobs[p] or b"" for p in batch.values()], source=_SOURCE)
        for (kind, name), result in zip(batch, results, strict=True):
            parsed_now = result if isinstance(result, Markdown) else _Failed(*result)
            if kind == "md":
                self._parsed[(kind, name)] = parsed_now
            else:
                fresh[name] = parsed_now
        for path in wanted:
            source = f"{path}{self.at}"
            key = ("md", blob_ids[path]) if path in blob_ids else None
            parsed: Markdown | _Failed | None = self._parsed.get(key) if key is not None else fresh.get(path)
            if parsed is None:
                self._markdown[path] = None  # not readable (reported above) or nothing read
                continue
            if isinstance(parsed, _Failed):
                self.problem(f"{_relabel(parsed.message, source)}; skipped")
                self._markdown[path] = None
                continue
            for warning in parsed.warnings:
                self.problem(f"warning: {_relabel(warning, source)}")
            self._markdown[path] = parsed

    def add_markdown(self, path: str, kind: str, catalog_type: str, plugin: _Plugin | None,
                     component_path: str | None = None, file_name: str | None = None) -> None:
        """Queue a markdown component (parsed later in one batch by ``finish_markdown``)."""
        self.found.append(_Found(kind=kind, catalog_type=catalog_type, base_name="", original_name=file_name or "",
                                 path=component_path or path, source_file=path, fields={}, body=None,
                                 plugin=plugin))
        if plugin is not None:
            plugin.found.append(self.found[-1])

    def finish_markdown(self) -> None:
        self.load_markdown([f.source_file for f in self.found if f.source_file.endswith(".md")])
        kept: list[_Found] = []
        for item in self.found:
            if not item.source_file.endswith(".md"):
                kept.append(item)
                continue
            parsed = self._markdown.get(item.source_file)
            if parsed is None:
                continue
            escapes = self.listing.escapes_under(item.path) if item.path != item.source_file else []
            if escapes:
                self.problem(f"{item.path}{self.at}: symlink {escapes[0]!r} leaves the repository (or loops); "
                             f"{item.catalog_type} skipped")
                continue
            fallback = item.original_name or _stem(item.source_file)
            raw_name = parsed.fields.get("name")
            candidates = [raw_name] if isinstance(raw_name, str) and raw_name.strip() else []
            candidates.append(fallback)
            name = None
            original = fallback
            for candidate in candidates:
                name = normalise_name(candidate)
                if name:
                    original = candidate
                    break
            if not name:
                line = parsed.field_lines.get("name", 1)
                self.problem(f"{item.source_file}{self.at}:{line}: no usable name (name {raw_name!r}, file name "
                             f"{fallback!r}); {item.catalog_type} skipped")
                continue
            item.base_name, item.original_name = name, original
            # A copy: the parse is shared by every path and release point holding this blob.
            item.fields, item.body, item.lenient = dict(parsed.fields), parsed.body, parsed.lenient
            self.component_version(item)
            kept.append(item)
        self._keep(kept)

    def _keep(self, kept: list[_Found]) -> None:
        """``kept`` is what stays found; plugins lose the rest (by identity: a set, not a list scan)."""
        self.found = kept
        ids = {id(f) for f in kept}
        for plugin in self.plugins:
            plugin.found = [f for f in plugin.found if id(f) in ids]

    def component_version(self, item: _Found) -> None:
        fields = item.fields
        meta = fields.get("metadata")
        for value, source in ((fields.get("version"), "frontmatter"),
                              (meta.get("version") if isinstance(meta, dict) else None, "frontmatter metadata")):
            if value is None:
                continue
            version = coerce_version(value)
            if version:
                item.version, item.version_source = version, source
                return
            self.problem(f"{item.source_file}{self.at}: version {value!r} is not a version; ignored")
        if item.plugin is not None and item.plugin.version:
            item.version, item.version_source = item.plugin.version, item.plugin.version_source
            return
        item.version, item.version_source = self.pseudo(), "pseudo"

    # ---- formats

    def read_marketplace(self) -> None:
        path = next(f"{d}/marketplace.json" for d in PLUGIN_MANIFEST_DIRS
                    if f"{d}/marketplace.json" in self.listing.sizes)
        self.source_file = path
        document = self.read_json(path)
        if not isinstance(document, dict) or not isinstance(document.get("plugins", []), list):
            raise AgentForgeError(f"{path}{self.at}: expected an object with a 'plugins' list",
                                  code="CATALOG_INVALID")
        self.manifest_meta = {k: document[k] for k in ("name", "owner", "metadata", "description") if k in document}
        # Every plugin manifest and .mcp.json in one batch, before the plugins are read one by one.
        self.prefetch([p for p in self.listing.sizes
                       if (p.endswith("/plugin.json") and posixpath.basename(posixpath.dirname(p)) in
                           PLUGIN_MANIFEST_DIRS) or posixpath.basename(p) == ".mcp.json"])
        renames = document.get("renames") or {}
        if isinstance(renames, dict):
            self.renames = {str(k): str(v) for k, v in renames.items() if isinstance(v, str)}
        else:
            self.problem(f"{path}{self.at}: renames is not a mapping of old to new names; ignored")
        meta_value = document.get("metadata")
        meta: dict[str, Any] = meta_value if isinstance(meta_value, dict) else {}
        root = meta.get("pluginRoot") if isinstance(meta.get("pluginRoot"), str) else ""
        listed: dict[str, tuple[int, str]] = {}  # plugin name (renamed, normalised) -> first entry's index, name
        for index, entry in enumerate(document.get("plugins") or []):
            where = f"{path}{self.at}: plugins[{index}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                self.problem(f"{where}: not an object with a 'name'; skipped")
                continue
            if "source" not in entry:
                # The marketplace schema requires it; reading the repository root in its place
                # made an empty plugin that looked fine.
                self.problem(f"{where}: plugin {entry['name']!r} has no 'source'; skipped")
                continue
            new_name = self.renamed_to(entry["name"])
            key = normalise_name(new_name)
            if not key:
                # Read on, an empty name fell back to the plugin.json's, which a second entry could
                # share: two compositions of one name failed the repository's whole sync.
                self.problem(f"{where}: plugin name {entry['name']!r} is not usable (it needs a letter or digit); "
                             "skipped")
                continue
            if key in listed:
                first, first_name = listed[key]
                as_written = "" if first_name == entry["name"] else f" (as {first_name!r} and {entry['name']!r})"
                self.problem(f"{path}{self.at}: plugin {key!r} listed twice in {posixpath.basename(path)}"
                             f"{as_written} (entries plugins[{first}] and plugins[{index}]); the later one is skipped")
                continue
            listed[key] = (index, entry["name"])
            source = entry["source"]
            if isinstance(source, dict):
                self.add_external(entry, source, where)
                continue
            if not isinstance(source, str):
                self.problem(f"{where}: source {source!r} is neither a path nor an object; skipped")
                continue
            base = root if root and not source.startswith("./") and not source.startswith("../") else ""
            folder = _relpath(base, source)
            if folder is None:
                self.problem(f"{where}: source {source!r} leaves the repository; plugin {entry['name']!r} skipped")
                continue
            if folder and not self.listing.has_folder(folder):
                if folder in self.listing.escaping or any(folder.startswith(e + "/") for e in self.listing.escaping):
                    self.problem(f"{where}: source {source!r} goes through a symlink that leaves the repository; "
                                 f"plugin {entry['name']!r} skipped")
                else:
                    self.problem(f"{where}: source folder {folder!r} does not exist; plugin {entry['name']!r} skipped")
                continue
            self.read_plugin(folder, entry)

    def renamed(self, name: str) -> tuple[str, list[str]]:
        """The name ``renames`` gives ``name`` (followed through chains), and its previous names."""
        previous: list[str] = []
        seen = {name}
        while name in self.renames and self.renames[name] not in seen:
            previous.append(name)
            name = self.renames[name]
            seen.add(name)
        previous.extend(old for old, new in self.renames.items() if new == name and old not in previous)
        return name, previous

    def renamed_to(self, name: str) -> str:
        """:meth:`renamed`'s name alone (no scan of the whole map for previous names)."""
        seen = {name}
        while name in self.renames and self.renames[name] not in seen:
            name = self.renames[name]
            seen.add(name)
        return name

    def add_external(self, entry: dict[str, Any], source: dict[str, Any], where: str) -> None:
        kind = source.get("source")
        if kind == "github" and isinstance(source.get("repo"), str):
            repository = f"https://github.com/{source['repo'].strip('/')}"
        elif kind in ("url", "git", "git-subdir") and isinstance(source.get("url"), str):
            repository = source["url"]
        else:
            self.problem(f"{where}: source type {kind!r} is not supported; plugin {entry['name']!r} skipped")
            return
        name, previous = self.renamed(entry["name"])
        component = normalise_name(name) or name
        sha, ref = source.get("sha"), source.get("ref")
        if isinstance(sha, str) and re.fullmatch(r"[0-9a-f]{40}", sha):
            version = f"commit:{sha}"
        elif isinstance(ref, str) and ref:
            version = f"tag:{ref}" if catalog_version_from_tag(ref) is not None else f"branch:{ref}"
        else:
            version = "latest"
        dependency: dict[str, Any] = {"component": component, "repository": repository, "version": version,
                                      "source": dict(source)}
        if kind == "git-subdir" and isinstance(source.get("path"), str):
            dependency["path"] = source["path"]
        if previous:
            dependency["previous_names"] = previous
        extra = {k: entry[k] for k in ("version", "description", "category") if entry.get(k) is not None}
        if extra:  # what the marketplace says of the plugin (`--follow-external` versions its composition by it)
            dependency["marketplace_entry"] = extra
        self.external.append(dependency)
        self.problem(f"{where}: plugin {name!r} lives in {repository} ({version}); unresolved — "
                     "register that repository (or sync with --follow-external) to use it")

    def read_plugin(self, folder: str, entry: dict[str, Any]) -> None:
        manifest_file: str | None = None
        manifest: dict[str, Any] = {}
        for d in PLUGIN_MANIFEST_DIRS:
            candidate = posixpath.join(folder, d, "plugin.json") if folder else f"{d}/plugin.json"
            if candidate in self.listing.sizes:
                try:
                    document = self.read_json(candidate)
                except AgentForgeError as exc:
                    self.problem(f"{exc.message}; the plugin is read without it")
                    break
                if isinstance(document, dict):
                    manifest_file, manifest = candidate, document
                else:
                    self.problem(f"{candidate}{self.at}: not a JSON object; the plugin is read without it")
                break
        raw_name = entry.get("name") or manifest.get("name") or posixpath.basename(folder) or "plugin"
        if entry.get("name") and manifest.get("name") and entry["name"] != manifest["name"]:
            self.problem(f"{manifest_file}{self.at}: plugin name {manifest['name']!r} differs from the marketplace's "
                         f"{entry['name']!r}; the marketplace's is used")
        new_name, previous = self.renamed(str(raw_name))
        if previous:
            self.problem(f"plugin {new_name!r} was renamed from {', '.join(repr(p) for p in previous)}; "
                         f"the new name is used")
        name = normalise_name(new_name)
        if name is None:
            self.problem(f"{manifest_file or folder}{self.at}: plugin name {new_name!r} is not usable; skipped")
            return
        version: str | None = None
        version_source: str | None = None
        for value, source in ((manifest.get("version"), "plugin.json"), (entry.get("version"), "marketplace")):
            if value is None:
                continue
            version = coerce_version(value)
            if version:
                version_source = source
                break
            self.problem(f"{manifest_file if source == 'plugin.json' else self.source_file}{self.at}: plugin "
                         f"{new_name!r} version {value!r} is not a version; ignored")
        plugin = _Plugin(name=name, original_name=new_name, folder=folder, manifest_file=manifest_file,
                         version=version, version_source=version_source,
                         description=_str_or_none(manifest.get("description") or entry.get("description")),
                         author=manifest.get("author") or entry.get("author"), manifest=manifest, entry=entry,
                         previous_names=previous)
        self.plugins.append(plugin)
        self.scan_plugin(plugin)
        plugin.scanned = len(plugin.found)

    def _named_paths(self, plugin: _Plugin, key: str) -> list[str]:
        """Extra paths a manifest (or a non-strict marketplace entry) names for ``key``; missing ones reported."""
        out: list[str] = []
        for origin, document in ((plugin.manifest_file, plugin.manifest), (self.source_file, plugin.entry)):
            value = document.get(key)
            values = [value] if isinstance(value, str) else value if isinstance(value, list) else []
            for item in values:
                if not isinstance(item, str):
                    continue
                path = _relpath(plugin.folder, item)
                if path is None:
                    self.problem(f"{origin}{self.at}: {key} path {item!r} leaves the plugin's repository; ignored")
                elif path not in self.listing.sizes and not self.listing.has_folder(path):
                    self.problem(f"{origin}{self.at}: {key} path {item!r} does not exist; ignored")
                else:
                    out.append(path)
        return out

    def scan_plugin(self, plugin: _Plugin) -> None:
        def at(sub: str) -> str:
            return posixpath.join(plugin.folder, sub) if plugin.folder else sub

        seen: set[str] = set()
        for key, kind, catalog_type in (("agents", "Agent", "agent"), ("commands", "Prompt", "command")):
            for root in [at(key), *self._named_paths(plugin, key)]:
                files = [root] if root in self.listing.sizes else self.listing.under(root)
                for path in files:
                    if path.endswith(".md") and path not in seen and posixpath.basename(path) != "README.md":
                        seen.add(path)
                        self.add_markdown(path, kind, catalog_type, plugin)
        skill_files: list[str] = []
        for root in [at("skills"), *self._named_paths(plugin, "skills")]:
            for path in self.listing.under(root) + ([root] if root in self.listing.sizes else []):
                if posixpath.basename(path) == "SKILL.md" and path not in seen:
                    seen.add(path)
                    skill_files.append(path)
        nested = self.nested_skills(skill_files)  # files of the skill holding them, as in read_loose
        for path in skill_files:
            if path not in nested:
                folder = posixpath.dirname(path)
                self.add_markdown(path, "Prompt", "skill", plugin, component_path=folder,
                                  file_name=posixpath.basename(folder))
        plugin.hooks = [p for p in [at("hooks/hooks.json"), *self._named_paths(plugin, "hooks")]
                        if p in self.listing.sizes]
        if isinstance(plugin.manifest.get("hooks"), dict):
            plugin.hooks.append(f"{plugin.manifest_file}#hooks")
        servers = plugin.manifest.get("mcpServers")
        if isinstance(servers, dict):
            self.add_mcp_servers(servers, str(plugin.manifest_file), plugin)
        mcp_files = [at(".mcp.json")] if at(".mcp.json") in self.listing.sizes else []
        if isinstance(servers, str | list):
            mcp_files += self._named_paths(plugin, "mcpServers")
        for path in dict.fromkeys(mcp_files):
            try:
                document = self.read_json(path)
            except AgentForgeError as exc:
                self.problem(f"{exc.message}; its MCP servers are skipped")
                continue
            table = document.get("mcpServers", document) if isinstance(document, dict) else None
            if isinstance(table, dict):
                self.add_mcp_servers(table, path, plugin)
            else:
                self.problem(f"{path}{self.at}: expected an object of MCP servers; skipped")

    def add_mcp_servers(self, servers: dict[str, Any], path: str, plugin: _Plugin | None) -> None:
        for key, server in sorted(servers.items()):
            name = normalise_name(key)
            if name is None or not isinstance(server, dict):
                self.problem(f"{path}{self.at}: MCP server {key!r} has no usable name or is not an object; skipped")
                continue
            item = _Found(kind="Tool", catalog_type="mcp-server", base_name=name, original_name=key,
                          path=path.split("#")[0], source_file=path.split("#")[0], fields={}, body=None,
                          plugin=plugin, extra_spec={"server": server,
                                                     "runtime": _str_or_none(server.get("command") or
                                                                             server.get("type"))})
            if plugin is not None and plugin.version:
                item.version, item.version_source = plugin.version, plugin.version_source
            else:
                item.version, item.version_source = self.pseudo(), "pseudo"
            self.found.append(item)
            if plugin is not None:
                plugin.found.append(item)

    def read_root_plugin(self) -> None:
        self.source_file = next(f"{d}/plugin.json" for d in PLUGIN_MANIFEST_DIRS
                                if f"{d}/plugin.json" in self.listing.sizes)
        self.read_plugin("", {})

    def read_folder_plugin(self, folder: str) -> None:
        """The plugin in ``folder`` (a marketplace's ``git-subdir`` source), whatever the root holds."""
        prefix = f"{folder}/" if folder else ""
        self.source_file = next((f"{prefix}{d}/plugin.json" for d in PLUGIN_MANIFEST_DIRS
                                 if f"{prefix}{d}/plugin.json" in self.listing.sizes), None)
        self.read_plugin(folder, {})

    def read_loose(self) -> None:
        """Copilot files, Claude project files and skills anywhere in the tree."""
        skill_files: list[str] = []
        for path in self.listing.under(""):
            base = posixpath.basename(path)
            if self.listing.real_path(path) is not None:
                continue  # the same file through a symlinked folder: read once, at its real path
            suffix = next((s for s in _COPILOT_SUFFIXES if base.endswith(s)), None)
            if suffix is not None:
                kind, catalog_type = _COPILOT_SUFFIXES[suffix]
                self.add_markdown(path, kind, catalog_type, None)
            elif path == ".github/copilot-instructions.md":
                self.add_markdown(path, "Prompt", "instructions", None, file_name="copilot-instructions")
            elif base == "SKILL.md":
                skill_files.append(path)
                folder = posixpath.dirname(path)
                self.add_markdown(path, "Prompt", "skill", None, component_path=folder or ".",
                                  file_name=posixpath.basename(folder) or "skill")
            elif base.endswith(".md") and base != "README.md":
                parent = posixpath.dirname(path)
                if parent in (".claude/agents", ".github/agents"):
                    self.add_markdown(path, "Agent", "agent", None)
                elif parent == ".claude/commands":
                    self.add_markdown(path, "Prompt", "command", None)
        nested = self.nested_skills(skill_files)
        if nested:
            self.found = [item for item in self.found if item.source_file not in nested]

    def nested_skills(self, skill_files: list[str]) -> set[str]:
        """The SKILL.md files among ``skill_files`` that are inside another one's folder (FORMATS §6
        "Skills inside skills"), each warned of: a file of the outermost skill holding it, not a
        skill of its own. ``skill_files`` are the candidates of one scope (the loose tree, or one
        plugin's skill folders); the caller drops what is returned.

        Ancestors are looked up in a set (a scan of every skill per skill was quadratic); a skill
        at the root (its folder "") holds every other skill, and is not inside itself.
        """
        folders = {posixpath.dirname(path) for path in skill_files}
        swallowed: dict[str, list[str]] = defaultdict(list)  # outer skill folder -> nested SKILL.md files
        for path in skill_files:
            folder, holder = posixpath.dirname(path), None
            while folder:
                folder = posixpath.dirname(folder)
                if folder in folders:
                    holder = folder  # the outermost one wins: it is the skill kept
            if holder is not None:
                swallowed[holder].append(path)
        for holder, files in sorted(swallowed.items()):
            self.report_swallowed(holder, files)
        return {path for files in swallowed.values() for path in files}

    def report_swallowed(self, holder: str, files: list[str]) -> None:
        """Warn of the SKILL.md files inside the skill folder ``holder``: a line each, or one line
        with a count and a few examples when there are more than :data:`_SWALLOWED_LISTED`."""
        skill_file = posixpath.join(holder, "SKILL.md") if holder else "SKILL.md"
        where = f"the skill {holder!r}" if holder else "the skill at the repository root"
        consequence = "; it is a file of that skill, not a skill of its own"
        if len(files) <= _SWALLOWED_LISTED:
            for path in files:
                self.problem(f"warning: {path}{self.at}: inside the folder of {where} ({skill_file})"
                             f"{consequence}")
            return
        examples = ", ".join(files[:3])
        self.problem(f"warning: {len(files)} SKILL.md files are inside the folder of {where} ({skill_file}){self.at}, "
                     f"so they are files of that skill, not skills of their own: {examples}, "
                     f"and {len(files) - 3} more")

    def read_mcp_servers(self) -> None:
        candidates = [p for p in self.listing.under("") if posixpath.basename(p) == "server.json" and p.count("/") <= 3]
        self.source_file = "server.json" if "server.json" in self.listing.sizes else None
        self.prefetch(candidates)
        for path in candidates:
            try:
                document = self.read_json(path)
            except AgentForgeError as exc:
                self.problem(f"{exc.message}; skipped")
                continue
            if not isinstance(document, dict) or not isinstance(document.get("name"), str):
                if path == "server.json":
                    self.problem(f"{path}{self.at}: not an MCP server.json (no 'name'); skipped")
                continue
            if path != "server.json" and "modelcontextprotocol" not in str(document.get("$schema", "")) and not (
                    "packages" in document or "remotes" in document):
                continue
            raw_name = document["name"]
            name = normalise_name(raw_name)
            if name is None:
                self.problem(f"{path}{self.at}: server name {raw_name!r} is not usable; skipped")
                continue
            folder = posixpath.dirname(path) or "."
            spec_extra = {k: document[k] for k in ("packages", "remotes", "repository", "websiteUrl", "$schema")
                          if k in document}
            packages = document.get("packages")
            runtime = None
            if isinstance(packages, list) and packages and isinstance(packages[0], dict):
                runtime = _str_or_none(packages[0].get("runtimeHint") or packages[0].get("registryType")
                                       or packages[0].get("registry_type"))
            spec_extra["runtime"] = runtime
            spec_extra["server"] = document
            item = _Found(kind="Tool", catalog_type="mcp-server", base_name=name, original_name=raw_name,
                          path=folder, source_file=path, fields={}, body=None, plugin=None, extra_spec=spec_extra)
            item.fields = {"description": document.get("description"), "title": document.get("title")}
            version = coerce_version(document.get("version")) if document.get("version") is not None else None
            if document.get("version") is not None and version is None:
                self.problem(f"{path}{self.at}: version {document.get('version')!r} is not a version; ignored")
            item.version, item.version_source = (version, "server.json") if version else (self.pseudo(), "pseudo")
            self.found.append(item)

    # ---- naming, references, records

    def assign_names(self) -> None:
        """Final names, unique in the repository, whatever the kind (FORMATS §6 "Names": a lock
        and every lookup name a component by repository and name, so an Agent and a Prompt
        called the same could not both be locked).

        A component whose own name (frontmatter ``name`` or file name, normalised) no other
        component has keeps it. Components sharing one are namespaced by their plugin
        (``plugin--name``; outside a plugin by their parent folder). A namespaced name is made up,
        so it never takes a name from a component that has it as its own: when it would (or when
        two namespaced names meet), ``-2``, ``-3``… is added to the made-up one, and a problem
        says so.
        """
        by_key: dict[str, list[_Found]] = defaultdict(list)
        for item in self.found:
            by_key[item.base_name].append(item)
        own: dict[str, _Found] = {}  # names components have as their own, kept as they are
        shared: list[tuple[str, str, list[_Found]]] = []
        for base, group in sorted(by_key.items()):
            if len(group) == 1:
                group[0].name = base
                own[base] = group[0]
            else:
                kinds = sorted({i.kind for i in group})
                shared.append(("/".join(kinds), base, sorted(group, key=lambda i: (i.source_file, i.original_name))))
        taken: dict[str, _Found] = dict(own)
        for kind, base, group in shared:
            for item in group:
                if item.plugin is not None:
                    wanted = namespaced(item.plugin.name, base)
                else:
                    parent = posixpath.basename(posixpath.dirname(item.path.rstrip("/"))) or "root"
                    wanted = namespaced(normalise_name(parent) or "root", base)
                item.name = wanted
                number = 1
                while item.name in taken:
                    number += 1
                    suffix = f"-{number}"
                    item.name = wanted[: 100 - len(suffix)].rstrip("._-") + suffix
                if item.name != wanted:
                    holder = taken[wanted]
                    whose = ("its own name" if own.get(wanted) is holder
                             else "namespaced the same way")
                    self.problem(f"warning: {item.source_file}{self.at}: {kind} name {wanted!r} (namespaced) is "
                                 f"already the name of {holder.source_file} ({whose}); this one is named "
                                 f"{item.name!r} instead")
                taken[item.name] = item
            self.problem(f"{kind} name {base!r} is used by {len(group)} components; namespaced as "
                         + ", ".join(f"{i.name} ({i.source_file})" for i in group))
        final: dict[str, _Found] = {}
        kept: list[_Found] = []
        for item in sorted(self.found, key=lambda i: (i.source_file, i.original_name)):
            key = item.name
            if key in final:  # not reached by the rules above; kept as a guard for the database's uniqueness
                self.problem(f"{item.source_file}{self.at}: {item.kind} name {item.name!r} is also used by "
                             f"{final[key].source_file}; this one is skipped")
                continue
            final[key] = item
            kept.append(item)
        self._keep(kept)

    def references(self, item: _Found) -> list[str]:
        fields = item.fields
        refs: list[str] = []
        agents = fields.get("agents")
        if isinstance(agents, str):
            refs.extend(part.strip() for part in agents.split(",") if part.strip())
        elif isinstance(agents, list):
            refs.extend(a for a in agents if isinstance(a, str))
        for key in ("subagent_type", "subagent-type"):
            if isinstance(fields.get(key), str):
                refs.append(fields[key])
        if item.catalog_type != "agent" and isinstance(fields.get("agent"), str) and (
                fields["agent"] not in _COPILOT_BUILTIN_AGENTS):
            refs.append(fields["agent"])
        handoffs = fields.get("handoffs")
        if isinstance(handoffs, list):
            refs.extend(h["agent"] for h in handoffs if isinstance(h, dict) and isinstance(h.get("agent"), str))
        if item.body and item.catalog_type in ("command", "agent", "skill", "prompt"):
            refs.extend(_SUBAGENT_IN_BODY.findall(item.body))
        return list(dict.fromkeys(r.strip() for r in refs if r.strip()))

    def resolve_agent(self, ref: str, item: _Found) -> _Found | None:
        if self._agents is None:  # built once, after the names are final (a scan per reference was quadratic)
            self._agents = defaultdict(list)
            for found in self.found:
                if found.kind == "Agent":
                    for key in dict.fromkeys((found.base_name, found.name)):
                        self._agents[key].append(found)
        plugin_part, _, local = ref.rpartition(":")
        wanted = normalise_name(local) or local
        agents = self._agents.get(wanted, [])  # those with `wanted` as their name or base name
        if plugin_part:
            plugin_name = normalise_name(plugin_part) or plugin_part
            matches = [a for a in agents if a.plugin is not None
                       and plugin_name in (a.plugin.name, a.plugin.original_name)]
            return matches[0] if len(matches) == 1 else None
        if item.plugin is not None:
            same = [a for a in agents if a.plugin is item.plugin]
            if len(same) == 1:
                return same[0]
        exact = [a for a in agents if a.name == wanted]
        if len(exact) == 1:
            return exact[0]
        matches = [a for a in agents if a.base_name == wanted]
        return matches[0] if len(matches) == 1 else None

    def definition(self, item: _Found) -> dict[str, Any]:
        fields = item.fields
        metadata: dict[str, Any] = {"name": item.name, "version": item.version}
        description = fields.get("description")
        if description is None and item.plugin is not None and item.catalog_type == "mcp-server":
            description = item.plugin.description
        if description is not None:
            metadata["description"] = _str_or_none(description)
        author = _author_text(fields.get("author") or (item.plugin.author if item.plugin else None))
        if author:
            metadata["author"] = author
        if isinstance(fields.get("license"), str):
            metadata["license"] = fields["license"]
        metadata.update(catalog_format=self.format, catalog_type=item.catalog_type,
                        version_source=item.version_source, source_file=item.source_file)
        if item.original_name != item.name:
            metadata["original_name"] = item.original_name
        if item.plugin is not None:
            metadata["plugin"] = item.plugin.name
            if item.plugin.original_name != item.plugin.name:
                metadata["plugin_original_name"] = item.plugin.original_name
        if item.lenient:
            metadata["frontmatter_lenient"] = True
        spec: dict[str, Any] = {"catalog_type": item.catalog_type, "source_file": item.source_file}
        if item.kind == "Prompt":
            spec["type"] = _PROMPT_TYPE[item.catalog_type]
        elif item.kind == "Tool":
            spec["type"] = "mcp-server"
        if item.source_file.endswith(".md"):
            spec["frontmatter"] = fields
            if item.kind == "Prompt":
                spec["template"] = item.body or ""
            else:
                spec["body"] = item.body or ""
        if item.kind == "Agent" and isinstance(fields.get("model"), str):
            spec["llm"] = {"model": fields["model"]}
        spec.update({k: v for k, v in item.extra_spec.items() if v is not None})
        dependencies: dict[str, list[dict[str, Any]]] = {}
        for ref in self.references(item):
            target = self.resolve_agent(ref, item)
            if target is None:
                self.problem(f"warning: {item.source_file}{self.at}: {item.catalog_type} {item.name!r} refers to "
                             f"agent {ref!r}, which is not in the repository; no dependency recorded")
                continue
            if target is item:
                continue
            entry = {"component": target.name, "version": f"commit:{self.commit}"}
            if entry not in dependencies.setdefault("agents", []):
                dependencies["agents"].append(entry)
        if dependencies:
            spec["dependencies"] = dependencies
        return {"apiVersion": API_VERSION, "kind": item.kind, "metadata": metadata, "spec": spec}

    def tree_of(self, item: _Found) -> str | None:
        if item.path == item.source_file and item.path in self.listing.blob_ids:
            return self.listing.blob_ids[item.path]  # a single-file component: its blob id
        listed = self.listing.tree_ids.get("" if item.path in ("", ".") else item.path)
        if listed is not None:
            return listed  # a real folder (not reached through a symlink): its id from the listing
        try:
            tree = self.mirror.tree_id(self.commit, "" if item.path in ("", ".") else item.path)
        except AgentForgeError:
            return None
        return tree

    def records(self) -> tuple[list[ComponentRecord], list[CompositionRecord]]:
        components: list[ComponentRecord] = []
        valid: set[int] = set()
        claimed: set[str] = set()
        for item in sorted(self.found, key=lambda i: (i.kind, i.name)):
            odd = self.listing.unsupported_under(item.path) if item.path != item.source_file else []
            if odd:  # a lock's checksum could not carry the name: refused now, not at `lock`
                claimed.update(odd)
                more = f" (and {len(odd) - 1} more)" if len(odd) > 1 else ""
                self.problem(f"{item.path}{self.at} ({item.catalog_type} {item.name!r}): file "
                             f"'{shown_name(odd[0])}'{more} cannot be locked or installed "
                             f"({self.listing.unsupported[odd[0]]}); {item.catalog_type} skipped: rename it upstream")
                continue
            definition = self.definition(item)
            if self.validate:
                try:
                    parse_component(_validation_view(definition), source=f"{item.source_file}{self.at}")
                except AgentForgeError as exc:
                    self.problem(f"{exc.message} (adapted from {item.source_file}); skipped")
                    continue
            valid.add(id(item))
            tool_schema = definition["spec"].get("schema") if item.kind == "Tool" else None
            components.append(ComponentRecord(
                name=item.name, kind=item.kind, version=str(item.version), path=item.path, definition=definition,
                schema=tool_schema if isinstance(tool_schema, dict) else None, metadata=definition["metadata"],
                tree_hash=self.tree_of(item)))
        left = [p for p in sorted(self.listing.unsupported) if p not in claimed]
        for path in left:
            if not any(path.startswith(other + "/") for other in left):  # a folder's files go with it
                self.problem(f"warning: '{shown_name(path)}'{self.at}: not read "
                             f"({self.listing.unsupported[path]}): rename it upstream")
        compositions: list[CompositionRecord] = []
        names: dict[str, _Plugin] = {}
        for plugin in self.plugins:
            other = names.setdefault(plugin.name, plugin)
            if other is not plugin:  # one composition per name (the database holds one): the first one
                self.problem(f"{plugin.manifest_file or plugin.folder or '.'}{self.at}: plugin {plugin.name!r} is "
                             f"already read from {other.manifest_file or other.folder or '.'}; skipped")
                continue
            deps: dict[str, list[dict[str, Any]]] = {}
            for item in sorted(plugin.found, key=lambda i: (i.kind, i.name)):
                if id(item) in valid:
                    deps.setdefault(_GROUP[item.kind], []).append(
                        {"name": item.name, "version": f"commit:{self.commit}"})
            if not deps and plugin.scanned:
                self.problem(f"warning: {plugin.manifest_file or plugin.folder or '.'}{self.at}: plugin "
                             f"{plugin.name!r} has none of its {plugin.scanned} component(s) left (each one's "
                             "problem is above); its composition is empty")
            version = plugin.version or self.pseudo()
            metadata: dict[str, Any] = {"name": plugin.name, "version": version,
                                        "catalog_format": self.format, "catalog_type": "plugin",
                                        "version_source": plugin.version_source or "pseudo"}
            if plugin.description:
                metadata["description"] = plugin.description
            if _author_text(plugin.author):
                metadata["author"] = _author_text(plugin.author)
            if plugin.original_name != plugin.name:
                metadata["original_name"] = plugin.original_name
            if plugin.previous_names:
                metadata["previous_names"] = plugin.previous_names
            spec: dict[str, Any] = {"source_file": plugin.manifest_file or self.source_file,
                                    "plugin": plugin.manifest, "dependencies": deps}
            if plugin.entry:
                spec["marketplace_entry"] = plugin.entry
            if plugin.hooks:
                spec["hooks"] = plugin.hooks
            definition = {"apiVersion": API_VERSION, "kind": "Composition", "metadata": metadata, "spec": spec}
            if self.validate:
                try:
                    parse_composition({**definition, "spec": {"dependencies": deps}},
                                      source=f"{plugin.manifest_file or plugin.folder}{self.at}")
                except AgentForgeError as exc:
                    self.problem(f"{exc.message} (adapted plugin {plugin.name!r}); skipped")
                    continue
            compositions.append(CompositionRecord(name=plugin.name, version=version, path=plugin.folder or ".",
                                                  description=plugin.description, definition=definition))
        return components, compositions

    def manifest(self, components: list[ComponentRecord], compositions: list[CompositionRecord]) -> dict[str, Any]:
        """A synthetic ComponentRepository manifest: what was found, per-format counts, renames, externals."""
        groups: dict[str, list[dict[str, str]]] = {"tools": [], "prompts": [], "agents": []}
        counts: dict[str, int] = defaultdict(int)
        for record in components:
            groups[_GROUP[record.kind]].append({"name": record.name, "path": record.path})
            counts[str(record.metadata.get("catalog_type"))] += 1
        counts["plugin"] = len(compositions)
        name = self.manifest_meta.get("name")
        catalog: dict[str, Any] = {"format": self.format, "source_file": self.source_file,
                                   "counts": dict(sorted(counts.items()))}
        if self.renames:
            catalog["renames"] = dict(sorted(self.renames.items()))
        if self.external:
            catalog["external"] = self.external
        if self.manifest_meta:
            catalog["marketplace"] = self.manifest_meta
        return {"apiVersion": API_VERSION, "kind": "ComponentRepository",
                "metadata": {"name": normalise_name(name) if isinstance(name, str) and normalise_name(name) else None},
                "repository": {"type": "mixed"}, "components": groups,
                "compositions": [{"name": c.name, "path": c.path} for c in compositions], "catalog": catalog}


#: The spec fields PromptSpec/ToolSpec/AgentSpec check; the rest (frontmatter, bodies) is free-form.
_CHECKED_SPEC_FIELDS = ("type", "llm", "behavior", "dependencies", "schema", "config", "template", "template_file",
                        "variables", "tools", "prompts", "agents")


def _validation_view(definition: dict[str, Any]) -> dict[str, Any]:
    """The parts of a definition ``parse_component`` judges, without the free-form bulk (bodies,
    frontmatter), which it would deep-copy for nothing: validating 2,000 skills stays cheap."""
    spec = definition.get("spec") or {}
    return {**definition, "spec": {k: spec[k] for k in _CHECKED_SPEC_FIELDS if k in spec and k != "template"}}


def read_catalog_snapshot(mirror: CatalogMirror, commit: str, *, label: str, format: str | None = None,
                          read_components: bool = True, validate: bool = False,
                          plugin_folder: str | None = None) -> Snapshot:
    """What the repository offers at ``commit``, in whatever layout it has (``format`` forces one).

    Same contract as :func:`agentforge.reader.read_snapshot`: problems per component in
    ``problems`` (warnings start with ``warning:``), a broken catalog manifest (marketplace.json)
    in ``fatal``. ``manifest`` is a synthetic ComponentRepository document whose ``catalog``
    key holds the format, per-type counts, renames and unresolved external plugins.
    A ``forge`` repository (or one with nothing recognised) is read by ``read_snapshot`` itself.

    Definitions are valid forge.dev/v1 documents by construction (names normalised, versions
    coerced or pseudo, text fields as strings); ``validate=True`` also runs them through
    ``parse_component``/``parse_composition`` (a record that fails becomes a problem) — the
    tests do, the sync need not pay ~0.2 ms a record for it.

    ``plugin_folder``: read only the Claude plugin in that folder (``format`` is then
    ``claude-plugin``), as a marketplace's ``git-subdir`` source names it; a folder that does not
    exist (or leaves the repository) is ``fatal``.
    """
    if plugin_folder is not None:
        format = "claude-plugin"
    if format is not None and format not in FORMATS:
        raise AgentForgeError(f"unknown repository format {format!r}", code="FORMAT_UNKNOWN",
                              hint=f"Use one of: {', '.join(FORMATS)}.")
    at = f"@{label}"
    if format == "forge" or (format is None and (_has_root_manifest(mirror, commit)
                                                 or _has_component_files(mirror, commit))):
        # A forge-manifest.yaml at the root, or a component.yaml within six folders, decides the
        # format (as _detect would, forge coming first): no listing of the whole tree, with every
        # file's size, at every tag of a native repository.
        return read_snapshot(mirror, commit, label=label, read_components=read_components)
    try:
        listing = _list(mirror, commit)
    except AgentForgeError as exc:
        return Snapshot(commit=commit, label=label, fatal=f"listing the files{at}: {exc.message}")
    detected = _detect(listing)
    fmt = format or detected
    if fmt is None or fmt == "forge":
        return read_snapshot(mirror, commit, label=label, read_components=read_components)
    reader = _CatalogReader(mirror, commit, label, listing, fmt, validate=validate)
    snap = Snapshot(commit=commit, label=label)
    try:
        if fmt == "claude-marketplace":
            if not any(f"{d}/marketplace.json" in listing.sizes for d in PLUGIN_MANIFEST_DIRS):
                raise AgentForgeError(f".claude-plugin/marketplace.json{at}: missing (format {fmt} was asked for)")
            reader.read_marketplace()
        elif plugin_folder is not None:
            folder = _relpath("", plugin_folder)
            if folder is None or not listing.has_folder(folder):
                raise AgentForgeError(f"{plugin_folder}{at}: no such folder in the repository",
                                      code="CATALOG_FILE_MISSING")
            reader.read_folder_plugin(folder)
        elif fmt == "claude-plugin":
            if not any(f"{d}/plugin.json" in listing.sizes for d in PLUGIN_MANIFEST_DIRS):
                raise AgentForgeError(f".claude-plugin/plugin.json{at}: missing (format {fmt} was asked for)")
            reader.read_root_plugin()
        elif fmt == "mcp-server":
            reader.read_mcp_servers()
        else:  # copilot, agent-skills
            reader.read_loose()
        for link in (listing.escapes_under(plugin_folder) if plugin_folder else sorted(listing.escaping)):
            reader.problem(f"{link}{at}: symlink leaves the repository; not read")
        reader.finish_markdown()
        reader.assign_names()
        components, compositions = reader.records()
    except AgentForgeError as exc:
        snap.fatal = exc.message
        snap.problems = reader.problems
        return snap
    snap.manifest = reader.manifest(components, compositions)
    snap.manifest_hash = manifest_hash(snap.manifest)
    snap.repository_type = "mixed"
    snap.components = components if read_components else []
    snap.compositions = compositions
    snap.problems = reader.problems
    return snap


def external_sources(snapshot: Snapshot) -> list[dict[str, Any]]:
    """Unresolved external plugins of a marketplace snapshot, each a dependency entry
    (``component``, ``repository``, ``version`` = ``commit:<sha>`` | ``tag:<ref>`` | ``branch:<ref>``
    | ``latest``, optional ``path`` for git-subdir sources, and the raw ``source``)."""
    catalog = (snapshot.manifest or {}).get("catalog") or {}
    external = catalog.get("external") or []
    return [dict(entry) for entry in external if isinstance(entry, dict)]
