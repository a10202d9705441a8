"""Resolution over the synced data in Postgres, and the lock file it produces.

``PostgresCandidateIndex`` is the resolver's one door to I/O (pip's "factory"): it loads a
repository's component rows once, turns them into :class:`Candidate` values with their
dependencies mapped to package keys, and explains keys it cannot serve (a repository that is
not registered, disabled, or a component that does not exist).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from agentforge.config import Settings, get_settings
from agentforge.core.constraints import sort_key
from agentforge.core.documents import (
    ComponentSpec,
    DependencySpec,
    format_validation_errors,
    parse_component,
    parse_composition,
)
from agentforge.core.hashing import sha256_hex
from agentforge.core.lockfile import (
    MAX_LOCK_BYTES,
    LockedPackage,
    LockFile,
    LockRoot,
    compute_content_hash,
    has_conflict_markers,
    load_lock_data,
    parse_lock_data,
    read_lock_with_conflicts,
    render_lock,
)
from agentforge.core.resolver import Candidate, Dependency, Resolution, resolve
from agentforge.core.urls import normalise_repository_url, repository_key
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, LockError, NotFound, ResolutionError, UrlError
from agentforge.services.materialise import locate_packages, package_checksum
from agentforge.services.sync import open_mirror
from models import (
    Component,
    ComponentDependency,
    Composition,
    DependencyType,
    Repository,
    RepositoryTag,
    TagState,
)
from models import repositories as repos_q
from models.keys import component_key_in

ROOT_LABEL = "<root>"
# pg_advisory_xact_lock key serialising writes of component_dependencies ("afdeps").
_PERSIST_LOCK_ID = 0x616664657073
_KIND_TITLE = {"TOOL": "Tool", "PROMPT": "Prompt", "AGENT": "Agent"}


# --- roots ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RootSpec:
    """What to lock: a component ``[repo/]name[@constraint]`` or a composition by name."""

    kind: Literal["component", "composition"]
    name: str
    constraint: str = "*"
    repository: str | None = None

    @property
    def label(self) -> str:
        text = f"{self.repository}/{self.name}" if self.repository else self.name
        return text if self.constraint in ("*", "") else f"{text}@{self.constraint}"


def parse_root(text: str, *, session: Session, force_kind: str | None = None) -> RootSpec:
    """``name``, ``name@^1.2``, ``repo/name@1.0.0``; a composition name wins unless a constraint is given."""
    raw = text.strip()
    if not raw:
        raise AgentForgeError("the root is empty", code="ROOT_INVALID", hint="Name a component or composition.")
    name, at, constraint = raw.partition("@")
    repository = None
    if "/" in name:
        repository, _, name = name.rpartition("/")
    if not name.strip():
        raise AgentForgeError(f"{raw!r}: no component or composition name", code="ROOT_INVALID",
                              hint="Write NAME, NAME@CONSTRAINT or REPO/NAME@CONSTRAINT, e.g. lookup@^1.")
    if repository is not None and not repository.strip():
        raise AgentForgeError(f"{raw!r}: no repository name before '/'", code="ROOT_INVALID",
                              hint=f"Write REPO/{name} (`agentforge repo ls` lists them), or just {name}.")
    if at and not constraint.strip():
        raise AgentForgeError(f"{raw!r}: no version or constraint after '@'", code="ROOT_INVALID",
                              hint=f"Write {name}@CONSTRAINT (e.g. {name}@^1), or just {name} for the newest release.")
    if force_kind == "composition" or (force_kind is None and not constraint and repository is None and
                                       session.scalar(sa.select(Composition.id).where(Composition.name == name))):
        return RootSpec(kind="composition", name=name)
    return RootSpec(kind="component", name=name, constraint=constraint or "*", repository=repository)


def ensure_root_known(root_text: str, *, settings: Settings | None = None) -> RootSpec:
    """Fail fast (before any flow starts) when ROOT names nothing that is synced."""
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        spec = parse_root(root_text, session=session)
        if spec.kind == "component":
            query = sa.select(Component.id).where(Component.name == spec.name).limit(1)
            if spec.repository:
                query = query.join(Repository, Repository.id == Component.repository_id).where(
                    sa.or_(Repository.name == spec.repository, Repository.url.like(f"%{spec.repository}")))
            if session.scalar(query) is None:
                because, hint = repos_q.why_missing(session=session, name=spec.name)
                raise NotFound(f"no component or composition named {spec.label!r} in the synced data{because}",
                               hint=hint or "`agentforge ls` lists components, `agentforge compose ls` "
                                            "compositions; `agentforge sync` fetches new releases.")
    return spec


# --- the candidate index ----------------------------------------------------------------------


@dataclass
class _Repo:
    id: uuid.UUID
    name: str
    url: str
    key: str
    active: bool
    tip: str | None
    branch: str


@dataclass
class _Row:
    id: uuid.UUID
    candidate: Candidate
    path: str
    tree: str | None
    repository_url: str


def _component_rows_query(repository_id: uuid.UUID) -> Any:
    """Every column the index reads for one repository's rows (bench/resolve.py times it alone)."""
    # The type as text: converting 40,000 values to the Python enum costs more than the query.
    # Only the dependency-bearing part of each definition, as text: decoding 40,000 whole JSONB
    # documents dominates the load, and most candidates are never asked for their dependencies.
    spec = Component.definition["spec"]
    deps_part = sa.func.jsonb_strip_nulls(sa.func.jsonb_build_object(
        "dependencies", spec["dependencies"], "tools", spec["tools"], "prompts", spec["prompts"],
        "agents", spec["agents"]))
    return (sa.select(Component.id, Component.name, sa.cast(Component.type, sa.Text).label("type"),
                      Component.version, Component.commit_hash,
                      Component.release_tags, Component.is_release, Component.is_reused_version,
                      sa.cast(deps_part, sa.Text).label("deps_part"), Component.path, Component.tree_hash)
            .where(Component.repository_id == repository_id))


class PostgresCandidateIndex:
    """Candidates from the ``components`` table, loaded per repository on first use."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.repos: dict[str, _Repo] = {}        # repository key → repo
        self.by_name: dict[str, _Repo] = {}
        self.by_url: dict[str, _Repo] = {}
        for r in session.execute(sa.select(Repository.id, Repository.name, Repository.url, Repository.is_active,
                                           Repository.synced_refs, Repository.default_branch)):
            refs = (r.synced_refs or {}).get("refs", {})
            repo = _Repo(id=r.id, name=r.name, url=r.url, key=repository_key(r.url), active=r.is_active,
                         tip=refs.get(f"refs/heads/{r.default_branch}"), branch=r.default_branch)
            self.repos[repo.key] = repo
            self.by_name[repo.name] = repo
            self.by_url[repo.url] = repo
        self._loaded: set[str] = set()
        self._candidates: dict[str, list[Candidate]] = {}
        self.rows: dict[tuple[str, str], _Row] = {}   # (key, commit) → row
        self._unknown_refs: dict[str, str] = {}       # key → the reference as written
        self._names: dict[str, list[str]] | None = None
        self._spec_cache: dict[str, list[DependencySpec]] = {}

    # Repository references → keys.
    def repo_for_reference(self, spec: DependencySpec, same: _Repo | None) -> tuple[str, _Repo | None]:
        """(repository key, repo or None when not registered) for a dependency's repository field."""
        if spec.namespace:
            repo = self.by_name.get(spec.namespace)
            if repo is None and "/" in spec.namespace:
                repo = self.by_url.get(f"https://github.com/{spec.namespace}")
            if repo is None:
                return f"unregistered:{spec.namespace}", None
            return repo.key, repo
        if spec.repository:
            if spec.repository in self.by_name:
                repo = self.by_name[spec.repository]
                return repo.key, repo
            try:
                url = normalise_repository_url(spec.repository)
            except UrlError:
                return f"unregistered:{spec.repository}", None
            key = repository_key(url)
            return key, self.repos.get(key)
        if same is not None:
            return same.key, same
        # No repository and no context (a composition from a file): find the name anywhere.
        holders = self._repos_with_component(spec.component)
        if len(holders) == 1:
            return holders[0].key, holders[0]
        if len(holders) > 1:
            raise ResolutionError(
                f"{spec.component!r} exists in several repositories ({', '.join(sorted(h.name for h in holders))})",
                code="AMBIGUOUS_COMPONENT", hint="Name its repository in the dependency (`repository:`).")
        return "unregistered:?", None

    def _repos_with_component(self, name: str) -> list[_Repo]:
        if self._names is None:
            names: dict[str, list[str]] = {}
            for comp, repo_id in self.session.execute(
                    sa.select(Component.name, Component.repository_id).distinct()):
                names.setdefault(comp, []).append(str(repo_id))
            self._names = names
        ids = set(self._names.get(name, []))
        return [r for r in self.repos.values() if str(r.id) in ids]

    def dependency(self, spec: DependencySpec, *, declared_by: str, same: _Repo | None) -> Dependency:
        repo_key, repo = self.repo_for_reference(spec, same)
        key = f"{repo_key}/{spec.component}"
        if repo is None:
            self._unknown_refs[key] = spec.namespace or spec.repository or "(no repository named)"
        return Dependency(key=key, constraint=spec.version or "*", kind=spec.kind, optional=spec.optional,
                          declared_by=declared_by)

    def _load_repo(self, repo: _Repo) -> None:
        if repo.key in self._loaded:
            return
        self._loaded.add(repo.key)
        moved = {t: (f, c) for t, f, c in self.session.execute(
            sa.select(RepositoryTag.tag, RepositoryTag.first_commit, RepositoryTag.current_commit)
            .where(RepositoryTag.repository_id == repo.id, RepositoryTag.state == TagState.MOVED))}
        rows = self.session.execute(_component_rows_query(repo.id)).all()
        for row in rows:
            key = f"{repo.key}/{row.name}"
            held = None
            tags = tuple(row.release_tags or ())
            # Held back only when every tag releasing this row has moved: a commit that an untouched
            # tag also releases (a tag force-moved onto another release's commit) stays usable.
            if tags and all(tag in moved for tag in tags):
                tag = tags[0]
                first, current = moved[tag]
                held = (f"tag {tag} moved from {first[:12]} to {(current or '?')[:12]}; "
                        f"`agentforge repo accept-tag {repo.name} {tag}` releases it again")
            is_tip = row.commit_hash == repo.tip
            candidate = Candidate(
                key=key, name=row.name, kind=_KIND_TITLE[row.type], version=row.version,
                commit=row.commit_hash, tags=frozenset(row.release_tags or ()),
                branches=frozenset({repo.branch}) if is_tip else frozenset(),
                is_release=bool(row.is_release) and not row.is_reused_version, held_back=held,
                dependency_loader=self._loader(repo, key, row.deps_part, f"{repo.name}:{row.path}/component.yaml"))
            self._candidates.setdefault(key, []).append(candidate)
            self.rows[(key, row.commit_hash)] = _Row(id=row.id, candidate=candidate, path=row.path,
                                                     tree=row.tree_hash, repository_url=repo.url)
        if moved:
            self._release_untouched_copies({f"{repo.key}/{row.name}" for row in rows}, moved)

    def _release_untouched_copies(self, keys: set[str], moved: Mapping[str, tuple[str, str | None]]) -> None:
        """A version whose release is held back (its tag moved) stays available when a later
        commit holds the very same files (same tree) under a tag that did not move: that commit's
        row was flagged a reused version of the held one, and now stands in for it."""
        for key in keys:
            cands = self._candidates.get(key, [])
            held = {(c.version, self.rows[(key, c.commit)].tree) for c in cands if c.held_back and c.is_release}
            if not held:
                continue
            for cand in cands:
                tree = self.rows[(key, cand.commit)].tree
                if not cand.is_release and not cand.held_back and (cand.version, tree) in held and \
                        cand.tags and not all(t in moved for t in cand.tags):
                    cand.is_release = True  # the index built it; nothing else holds it yet

    def definition_of(self, row: _Row) -> dict[str, Any]:
        """The whole definition of one row (the index itself keeps only the dependency part)."""
        found = self.session.scalar(sa.select(Component.definition).where(Component.id == row.id))
        return dict(found or {})

    def _loader(self, repo: _Repo, key: str, deps_part: str | None,
                source: str) -> Callable[[], tuple[Dependency, ...]]:
        """Dependencies read on demand: most candidates are never pinned, so never parsed.

        Only the dependency-bearing part of ``spec`` is validated (the whole document was validated
        at sync time), and equal parts are parsed once (consecutive releases mostly share them).
        """
        def load() -> tuple[Dependency, ...]:
            cache_key = deps_part or "{}"
            specs = self._spec_cache.get(cache_key)
            if specs is None:
                part = json.loads(cache_key)
                try:
                    specs = ComponentSpec.model_validate(part).dependency_specs()
                except ValidationError as exc:
                    sub, message = format_validation_errors(exc)[0]
                    raise ResolutionError(
                        f"{source}: spec.{sub}: {message} (the definition no longer parses)",
                        code="DOCUMENT_INVALID", hint=f"`agentforge sync {repo.name}` re-reads it; fix the file "
                        "upstream if it stays invalid.") from None
                self._spec_cache[cache_key] = specs
            return tuple(self.dependency(spec, declared_by=key, same=repo) for spec in specs)

        return load

    def candidates(self, key: str) -> Sequence[Candidate]:
        repo_key, _, _name = key.rpartition("/")
        repo = self.repos.get(repo_key)
        if repo is None or not repo.active:
            return []
        self._load_repo(repo)
        found = self._candidates.get(key, [])
        kinds = sorted({c.kind for c in found})
        if len(kinds) > 1:
            # FORMATS §1 lets a Tool and a Prompt share a name; §5 keys a lock's packages by
            # repository and name only, so such a pair cannot be told apart in a lock.
            raise ResolutionError(
                f"{_name!r} in repository {repo.name} names a {' and a '.join(kinds)}: a lock file keys its "
                f"packages by repository and name (FORMATS §5), so neither can be locked",
                code="AMBIGUOUS_COMPONENT", hint=f"Rename one of them upstream, then `agentforge sync {repo.name}`.")
        return found

    def pending(self, key: str) -> list[str]:
        """Releases of ``key`` that ``repo accept-tag`` accepted after its repository's last sync:
        no row releases them until the next sync reads the accepted commit (conflicts name them)."""
        repo_key, _, name = key.rpartition("/")
        repo = self.repos.get(repo_key)
        if repo is None:
            return []
        from models.catalog import accepted_since_last_sync

        accepted = accepted_since_last_sync(self.session, {repo.id}).get(repo.id, [])
        return [f"{tv.version}: tag {tag} was accepted at {commit[:12]} after the last sync; "
                f"`agentforge sync {repo.name}` reads it"
                for tag, tv, commit in accepted if tv.component in (None, name)]

    def describe_missing(self, key: str) -> tuple[str, str | None]:
        repo_key, _, name = key.rpartition("/")
        repo = self.repos.get(repo_key)
        if repo is None:
            ref = self._unknown_refs.get(key, repo_key.removeprefix("unregistered:"))
            if ref in ("?", "(no repository named)"):
                # No `repository:` given and no registered repository offers the name.
                return (f"no registered repository offers a component named {name!r}",
                        "Name its repository in the dependency (`repository:`), or `agentforge repo add URL` "
                        "the repository that has it and `agentforge sync`.")
            return (f"repository {ref} (needed for {name}) is not registered",
                    f"Register it: `agentforge repo add {ref}` then `agentforge sync`.")
        if not repo.active:
            return (f"repository {repo.name} (needed for {name}) is disabled",
                    f"`agentforge repo enable {repo.name}` to use it again.")
        return (f"repository {repo.name} has no component {name!r}",
                f"`agentforge ls --repo {repo.name}` lists what it offers; `agentforge sync {repo.name}` "
                "fetches new releases.")


# --- resolving a root -------------------------------------------------------------------------


@dataclass
class RootContext:
    spec: RootSpec
    lock_root: LockRoot
    definition: dict[str, Any]
    dependencies: list[Dependency]
    root_candidate: Candidate | None
    hash_inputs: list[Any] = field(default_factory=list)
    composition_id: uuid.UUID | None = None


def _root_context(spec: RootSpec, index: PostgresCandidateIndex, *, include_dev: bool,
                  pins: Mapping[str, str] | None = None, upgrade: Sequence[str] | None = None) -> RootContext:
    session = index.session
    if spec.kind == "composition":
        comp = session.scalar(sa.select(Composition).where(Composition.name == spec.name))
        if comp is None:
            raise NotFound(f"no composition named {spec.name!r}",
                           hint="`agentforge compose ls` lists them; `agentforge compose import FILE` adds one.")
        doc = parse_composition(comp.definition, source=f"composition {spec.name}")
        same = index.by_url.get(comp.source_repo) if comp.source_repo else None
        specs = doc.dependencies()
        deps = [index.dependency(s, declared_by=ROOT_LABEL, same=same) for s in specs]
        return RootContext(spec=spec, lock_root=LockRoot(kind="Composition", name=doc.name, version=doc.version),
                           definition=comp.definition, dependencies=deps, root_candidate=None,
                           hash_inputs=[*specs, *(["--dev"] if include_dev else [])], composition_id=comp.id)
    # A component root: pick the best candidate for name@constraint, then lock its dependencies.
    if spec.repository:
        repo = index.by_name.get(spec.repository)
        if repo is None:
            try:
                repo = index.by_url.get(normalise_repository_url(spec.repository))
            except UrlError:
                repo = None
        if repo is None:
            raise NotFound(f"no repository named {spec.repository!r}", hint="`agentforge repo ls` lists them.")
        holders = [repo]
    else:
        holders = index._repos_with_component(spec.name)
        if not holders:
            because, hint = repos_q.why_missing(session=index.session, name=spec.name)
            raise NotFound(f"no component named {spec.name!r} in the synced repositories{because}",
                           hint=hint or "`agentforge ls` lists components; `agentforge sync` fetches new releases.")
        if len(holders) > 1:
            raise ResolutionError(
                f"{spec.name!r} exists in several repositories: {', '.join(sorted(h.name for h in holders))}",
                code="AMBIGUOUS_COMPONENT", hint=f"Name one: REPO/{spec.name}.")
    key = f"{holders[0].key}/{spec.name}"
    root_dep = Dependency(key=key, constraint=spec.constraint, declared_by="<command line>")
    # Resolve just the root's choice first (its own deps may constrain nothing about itself).
    # A root pinned to its locked commit (`lock --check`, --frozen) is that commit even when its
    # release tag has moved since: held-back only steers new choices.
    exact = spec.constraint.startswith("commit:")
    # A root pinned by the existing lock whose release tag has moved since stays at its pinned
    # commit (locks keep using pinned commits; held-back only steers new choices) while it still
    # satisfies, unless upgrading it: re-locking must not silently fall back to an older root.
    keep = None if upgrade is not None and (not upgrade or spec.name in upgrade) else (pins or {}).get(key)
    if keep and not any(c.commit == keep and c.held_back for c in index.candidates(key)):
        keep = None  # not held back: the root is chosen as before (the newest that satisfies)
    picked = None
    if keep and not exact:
        try:
            picked = resolve(root_dependencies=[root_dep], index=_OnlyKey(index, key, allow_held_commit=keep),
                             pins={key: keep})
        except AgentForgeError:
            picked = None
        if picked is not None and picked.packages[key].candidate.commit != keep:
            picked = None  # the pin no longer satisfies: choose afresh below
    if picked is None:
        picked = resolve(root_dependencies=[root_dep], index=_OnlyKey(index, key, allow_held=exact))
    row = index.rows[(key, picked.packages[key].candidate.commit)]
    root_candidate = row.candidate  # the full candidate, with its dependencies
    if keep and root_candidate.commit == keep and root_candidate.held_back:
        import dataclasses

        root_candidate = dataclasses.replace(root_candidate, held_back=None)  # the kept pin (see above)
    root_definition = index.definition_of(row)
    root_doc = parse_component(root_definition, source=f"{spec.name} {root_candidate.version}")
    specs = root_doc.dependencies()
    deps = [d for d in root_candidate.deps() if include_dev or d.kind != "dev"]
    return RootContext(spec=spec, lock_root=LockRoot(kind=root_candidate.kind, name=spec.name,  # type: ignore[arg-type]
                                                     version=root_candidate.version),
                       definition=root_definition, dependencies=list(deps), root_candidate=root_candidate,
                       hash_inputs=[*specs, f"root:{spec.label}", *(["--dev"] if include_dev else [])])


class _OnlyKey:
    """An index view that offers one key's candidates with no dependencies (choosing the root)."""

    def __init__(self, index: PostgresCandidateIndex, key: str, *, allow_held: bool = False,
                 allow_held_commit: str | None = None) -> None:
        self.index, self.key, self.allow_held, self.allow_held_commit = index, key, allow_held, allow_held_commit

    def candidates(self, key: str) -> Sequence[Candidate]:
        if key != self.key:
            return []
        return [Candidate(key=c.key, name=c.name, kind=c.kind, version=c.version, commit=c.commit, tags=c.tags,
                          branches=c.branches, is_release=c.is_release,
                          held_back=None if self.allow_held or c.commit == self.allow_held_commit else c.held_back)
                for c in self.index.candidates(key)]

    def describe_missing(self, key: str) -> tuple[str, str | None]:
        return self.index.describe_missing(key)


class ResolveOutcome(BaseModel):
    """A resolution turned into a lock (and the facts `lock` reports)."""

    lock: LockFile
    text: str
    skipped: list[str] = []
    kept_pins: int = 0
    composition_id: str | None = None


def resolve_root(
    root_text: str, *, include_dev: bool = False, pins: Mapping[str, str] | None = None,
    upgrade: Sequence[str] | None = None, previous: LockFile | None = None, force_kind: str | None = None,
    compute_checksums: bool = True, settings: Settings | None = None, previous_text: str | None = None,
    render: bool = True, verify_signatures: bool | None = None,
) -> ResolveOutcome:
    """Resolve ``root_text`` over Postgres and build the lock file (checksums from the mirrors).

    ``previous_text`` (the file ``previous`` was read from): when the new lock equals ``previous``
    that text is reused instead of rendering again (Poetry's "unchanged lock" check; rendering a
    large lock with the pure-Python YAML emitter costs far more than resolving it).

    ``verify_signatures`` (default: when checksums are computed, i.e. for a real lock, not a
    display such as `deps tree`): apply the signed-release policy
    (:func:`agentforge.services.trust.enforce_signatures`) and record ``verified``/``signing_key``.
    """
    settings = settings or get_settings()
    if (previous is not None and previous_text is not None and upgrade is None and pins is not None
            and dict(pins) == {k: p.commit for k, p in previous.packages.items()}):
        unchanged = _unchanged_lock(root_text, previous, include_dev=include_dev, force_kind=force_kind,
                                    verify=compute_checksums if verify_signatures is None else verify_signatures,
                                    settings=settings)
        if unchanged is not None:
            return ResolveOutcome(lock=previous, text=previous_text, kept_pins=len(previous.packages),
                                  composition_id=unchanged or None)
    with session_scope(get_engine(settings)) as session:
        index = PostgresCandidateIndex(session)
        spec = parse_root(root_text, session=session, force_kind=force_kind)
        ctx = _root_context(spec, index, include_dev=include_dev, pins=pins, upgrade=upgrade)
        resolution = resolve(root_dependencies=ctx.dependencies, index=index, root=ctx.root_candidate,
                             include_dev=include_dev, pins=pins, upgrade=upgrade, root_label=ROOT_LABEL)
        packages = _lock_packages(resolution, index)
        content_hash = compute_content_hash(ctx.definition, ctx.hash_inputs)
    if compute_checksums if verify_signatures is None else verify_signatures:
        from agentforge.services.trust import enforce_signatures

        packages = enforce_signatures(packages, settings=settings)  # refuses before any fetch
    if compute_checksums:
        _fill_checksums(packages, previous, settings)
    lock = LockFile(root=ctx.lock_root, content_hash=content_hash, packages=packages)
    kept = sum(1 for k, p in packages.items() if pins and pins.get(k) == p.commit)
    skipped = [f"{s.dependency.key.rpartition('/')[2]} ({s.reason})" for s in resolution.skipped]
    if previous_text is not None and previous is not None and lock == previous:
        text = previous_text
    else:
        text = render_lock(lock) if render else ""  # render=False: the caller renders (bench, deps)
    return ResolveOutcome(lock=lock, text=text, skipped=skipped, kept_pins=kept,
                          composition_id=str(ctx.composition_id) if ctx.composition_id else None)


def _unchanged_lock(root_text: str, previous: LockFile, *, include_dev: bool, force_kind: str | None,
                    verify: bool, settings: Settings) -> str | None:
    """The re-lock fast path: None unless re-resolving would reproduce ``previous`` exactly.

    That holds when the inputs hash the same (root definition and constraints), every pinned
    commit is still a usable release (present, not a reused version, repository active, no moved
    tag: the resolver would keep each pin) and — for a component root — no newer release of the
    root exists. Pinned commits are immutable, so their dependencies are what the lock was built
    from. Returns the composition id ("" for a component root). A few queries instead of loading
    every candidate: a re-lock with nothing changed stays cheap on a large index.
    """
    with session_scope(get_engine(settings)) as session:
        spec = parse_root(root_text, session=session, force_kind=force_kind)
        if previous.root.name != spec.name:
            return None
        composition_id = ""
        if spec.kind == "composition":
            comp = session.scalar(sa.select(Composition).where(Composition.name == spec.name))
            if comp is None or previous.root.kind != "Composition":
                return None
            definition: dict[str, Any] = comp.definition
            specs = parse_composition(definition, source=f"composition {spec.name}").dependencies()
            hash_inputs: list[Any] = [*specs, *(["--dev"] if include_dev else [])]
            composition_id = str(comp.id)
        else:
            root_pkg = next((p for p in previous.packages.values() if p.dependency_type == "root"), None)
            if root_pkg is None:
                return None
            newest = session.execute(sa.select(Component.version).where(
                Component.repository_url == root_pkg.repository, Component.name == root_pkg.component,
                Component.is_release.is_(True), Component.is_reused_version.is_(False))).scalars().all()
            if not newest or max(newest, key=sort_key) != root_pkg.version:
                return None
            found = session.scalar(sa.select(Component.definition).where(
                Component.repository_url == root_pkg.repository, Component.name == root_pkg.component,
                Component.commit_hash == root_pkg.commit))
            if found is None:
                return None
            definition = found
            specs = parse_component(definition, source=f"{spec.name} {root_pkg.version}").dependencies()
            hash_inputs = [*specs, f"root:{spec.label}", *(["--dev"] if include_dev else [])]
        if compute_content_hash(definition, hash_inputs) != previous.content_hash:
            return None
        wanted = [(p.repository, p.component, p.commit) for p in previous.packages.values()]
        rows = session.execute(
            sa.select(Component.is_release, Component.is_reused_version, Repository.is_active, Component.commit_hash,
                      Component.repository_id)
            .join(Repository, Repository.id == Component.repository_id)
            .where(component_key_in(wanted))).all()
        if len(rows) != len(wanted) or not all(r[0] and not r[1] and r[2] for r in rows):
            return None
        moved = session.scalar(sa.select(sa.func.count()).select_from(RepositoryTag).where(
            RepositoryTag.state == TagState.MOVED,
            RepositoryTag.repository_id.in_({r[4] for r in rows}),
            RepositoryTag.first_commit.in_({r[3] for r in rows})))
        if moved:
            return None
    if verify:
        from agentforge.services.trust import enforce_signatures

        packages = {k: p.model_copy(update={"verified": None, "signing_key": None})
                    for k, p in previous.packages.items()}
        if enforce_signatures(packages, settings=settings) != previous.packages:  # refuses as a lock would
            return None
    return composition_id


def _lock_packages(resolution: Resolution, index: PostgresCandidateIndex) -> dict[str, LockedPackage]:
    out: dict[str, LockedPackage] = {}
    for key, pkg in resolution.packages.items():
        cand = pkg.candidate
        row = index.rows[(key, cand.commit)]
        out[key] = LockedPackage(
            repository=row.repository_url, component=cand.name, kind=cand.kind,  # type: ignore[arg-type]
            version=cand.version, commit=cand.commit, tree=row.tree or "0" * 40,
            checksum="sha256:" + "0" * 64, dependency_type=pkg.dependency_type, optional=pkg.optional,
            constraints=dict(sorted(pkg.constraints.items())), resolution_path=list(pkg.resolution_path))
    return out


def _fill_checksums(packages: dict[str, LockedPackage], previous: LockFile | None, settings: Settings) -> None:
    """Checksums from the mirrors; an unchanged (commit, tree) reuses the previous lock's value."""
    sources = locate_packages(packages, settings=settings)
    for key, pkg in packages.items():
        old = previous.packages.get(key) if previous else None
        if old is not None and old.commit == pkg.commit and old.tree == pkg.tree:
            packages[key] = pkg.model_copy(update={"checksum": old.checksum})
            continue
        src = sources[key]
        mirror = open_mirror(settings, src.repository_id, src.repository_url)
        try:
            if not mirror.has_commit(pkg.commit):
                mirror.fetch_commit(pkg.commit)
            packages[key] = pkg.model_copy(update={"checksum": package_checksum(mirror, pkg.commit, src.path)})
            mirror.pin(pkg.commit)
        finally:
            mirror.close()


# --- reading and writing lock files -----------------------------------------------------------


@dataclass
class ExistingLock:
    lock: LockFile | None
    pins: dict[str, str]
    conflicted: bool
    text: str | None = None  # the file's text when it parsed cleanly (see resolve_root's previous_text)


def read_existing_lock(path: Path) -> ExistingLock:
    """The lock at ``path`` (missing → empty); a merge-conflicted file yields the agreed pins."""
    if not path.exists():
        return ExistingLock(None, {}, False)
    from agentforge.fileio import read_document_file

    try:  # a regular file, bounded: a huge file (or /dev/zero) is never loaded into memory
        data = read_document_file(path, max_bytes=MAX_LOCK_BYTES, what="lock file")
    except AgentForgeError as exc:
        raise LockError(exc.message, hint="Delete it and run `agentforge lock` again.") from None
    text = data.decode("utf-8", errors="replace")
    if has_conflict_markers(text):
        result = read_lock_with_conflicts(data, source=str(path))
        return ExistingLock(None, {k: p.commit for k, p in result.pins.items()}, True)
    lock = _parse_lock_cached(data, source=str(path))
    return ExistingLock(lock, {k: p.commit for k, p in lock.packages.items()}, False, text)


# --- parsed-lock cache ------------------------------------------------------------------------
# A large lock (2,000 packages ≈ 1.3 MiB) takes most of a second to read as YAML, which a re-lock
# with nothing changed would pay every time. The loaded data is kept as JSON under the home
# folder, keyed by the SHA-256 of the file's bytes (content-addressed: a changed file is a miss);
# a hit is still validated in full, only the YAML step is skipped. Losing the cache changes nothing.

_LOCK_CACHE_ENTRIES = 32


def _lock_cache_dir(settings: Settings) -> Path:
    return settings.home / "cache" / "locks"


def _parse_lock_cached(data: bytes, *, source: str, settings: Settings | None = None) -> LockFile:
    settings = settings or get_settings()
    entry = _lock_cache_dir(settings) / f"{sha256_hex(data)}.json"
    try:
        cached = json.loads(entry.read_bytes())
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, dict):
        try:
            return parse_lock_data(cached, source=source)
        except LockError:
            entry.unlink(missing_ok=True)  # not what a valid lock loads to: read the file itself
    loaded = load_lock_data(data, source)
    lock = parse_lock_data(loaded, source=source)
    remember_lock_data(data, loaded, settings=settings)
    return lock


def remember_lock_data(data: bytes, loaded: Mapping[str, Any], *, settings: Settings | None = None) -> None:
    """Cache ``loaded`` (what ``load_lock_data`` gives for ``data``); best effort, never fails."""
    settings = settings or get_settings()
    folder = _lock_cache_dir(settings)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".lock-cache.", dir=str(folder))
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(loaded, handle, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        try:
            os.replace(tmp, folder / f"{sha256_hex(data)}.json")
        finally:
            Path(tmp).unlink(missing_ok=True)
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[_LOCK_CACHE_ENTRIES:]:
            old.unlink(missing_ok=True)
    except OSError:
        pass


def write_lock_file(path: Path, text: str, *, lock: LockFile | None = None) -> bool:
    """Atomic write; returns False (no rewrite) when the file already holds exactly ``text``.

    ``lock``: the LockFile ``text`` was rendered from (``render_lock``); its data is remembered in
    the parsed-lock cache, so the next read of the file skips the YAML step.
    """
    if path.exists() and path.read_bytes() == text.encode("utf-8"):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".forge-lock.", dir=str(path.parent))
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(text.encode("utf-8"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if lock is not None:
        # render_lock dumps exactly this data, and the safe loader reads it back unchanged.
        remember_lock_data(text.encode("utf-8"), lock.model_dump(mode="json", exclude_none=True))
    return True


def persist_resolution(lock: LockFile, *, composition_id: str | None, previous: LockFile | None = None,
                       settings: Settings | None = None) -> int:
    """component_dependencies rows for every edge between resolved components, replaced atomically;
    the composition's ``lock_file`` when the root is a composition. Returns the edge count.

    The rows of every component in this lock, in ``previous`` (the lock being replaced) and, for a
    composition, in its stored lock are deleted and the new edges inserted in one transaction, so
    a re-resolve that dropped or moved a package leaves no stale row. A component root's own
    edges (``<root>`` in the lock's constraints) are stored as edges of the root component.
    """
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        # Two resolutions persisting at once would race on the (component, dependency) unique key.
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(_PERSIST_LOCK_ID)))
        replaced: list[LockFile] = [lock, *([previous] if previous is not None else [])]
        if composition_id:
            stored = session.scalar(sa.select(Composition.lock_file).where(
                Composition.id == uuid.UUID(composition_id)))
            if stored:
                try:
                    replaced.append(LockFile.model_validate(stored))
                except ValueError:
                    pass  # an unreadable stored lock has nothing we could clean up by key
        wanted = {(p.repository, p.component, p.commit) for lf in replaced for p in lf.packages.values()}
        ids = {
            (url, name, commit): cid for cid, url, name, commit in session.execute(
                sa.select(Component.id, Component.repository_url, Component.name, Component.commit_hash).where(
                    component_key_in(wanted)))
        } if wanted else {}
        by_key = {k: ids.get((p.repository, p.component, p.commit)) for k, p in lock.packages.items()}
        root_key = next((k for k, p in lock.packages.items() if p.dependency_type == "root"), None)
        edges: list[dict[str, Any]] = []
        for key, pkg in sorted(lock.packages.items()):
            for declarer, constraint in sorted(pkg.constraints.items()):
                source = root_key if declarer == ROOT_LABEL else declarer
                if source is None or source == key or by_key.get(source) is None or by_key[key] is None:
                    continue
                declaring = lock.packages[source]
                dtype = {"peer": DependencyType.PEER, "dev": DependencyType.DEV}.get(
                    pkg.dependency_type,
                    DependencyType.DIRECT if declaring.dependency_type == "root" else DependencyType.TRANSITIVE)
                edges.append(dict(component_id=by_key[source], dependency_id=by_key[key],
                                  version_constraint=constraint[:100], resolved_version=pkg.version,
                                  resolved_commit=pkg.commit, dependency_type=dtype, is_optional=pkg.optional,
                                  resolution_path=pkg.resolution_path))
        declarers = sorted(set(ids.values()))
        if declarers:
            session.execute(sa.delete(ComponentDependency).where(ComponentDependency.component_id.in_(declarers)))
        if edges:
            session.execute(sa.insert(ComponentDependency), edges)
        if composition_id:
            session.execute(sa.update(Composition).where(Composition.id == uuid.UUID(composition_id))
                            .values(lock_file=lock.model_dump(mode="json", exclude_none=True)))
        return len(edges)


class LockCheck(BaseModel):
    """``ok`` or the reasons a lock cannot be used as it is.

    ``wrong_root``: the file locks another root (install refuses it rather than overwrite it);
    ``mismatch``: a commit, tree or checksum differs from the mirrors (a re-lock must then
    recompute every checksum instead of reusing the file's).
    """

    ok: bool
    reasons: list[str] = []
    wrong_root: bool = False
    mismatch: bool = False


def check_lock(root_text: str, path: Path, *, include_dev: bool = False, verify_files: bool = True,
               force_kind: str | None = None, settings: Settings | None = None) -> LockCheck:
    """Is the lock at ``path`` current (content hash) and true to the mirrors (commits, trees, checksums)?"""
    from agentforge.services.materialise import materialise

    settings = settings or get_settings()
    if not path.exists():
        return LockCheck(ok=False, reasons=[f"{path} does not exist"])
    existing = read_existing_lock(path)
    if existing.conflicted or existing.lock is None:
        return LockCheck(ok=False, reasons=[f"{path} has git conflict markers; run `agentforge lock` to re-resolve"])
    lock = existing.lock
    reasons: list[str] = []
    with session_scope(get_engine(settings)) as session:
        index = PostgresCandidateIndex(session)
        spec = parse_root(root_text, session=session, force_kind=force_kind)
        if (spec.kind == "component" and (spec.constraint in ("*", "")) and lock.root.kind != "Composition"
                and lock.root.name == spec.name):  # another root's commit would only confuse the message
            # Check against the locked root commit, not whatever is newest now.
            root_pkg = next((p for p in lock.packages.values() if p.dependency_type == "root"), None)
            if root_pkg is not None:
                spec = RootSpec(kind="component", name=spec.name, constraint=f"commit:{root_pkg.commit}",
                                repository=spec.repository)
        try:
            ctx = _root_context(spec, index, include_dev=include_dev)
        except AgentForgeError as exc:
            return LockCheck(ok=False, reasons=[exc.message])
        if (lock.root.kind, lock.root.name) != (ctx.lock_root.kind, ctx.lock_root.name):
            return LockCheck(ok=False, wrong_root=True,
                             reasons=[f"{path} locks {lock.root.kind} {lock.root.name}, "
                                      f"not {ctx.lock_root.kind} {ctx.lock_root.name}"])
        expected = compute_content_hash(ctx.definition, _hash_inputs_for_check(ctx, root_text, spec))
        if expected != lock.content_hash:
            reasons.append(f"stale: the inputs changed (content_hash {lock.content_hash[:19]}… ≠ {expected[:19]}…)")
        differences: list[str] = []
        if not reasons:
            # The resolution facts as `agentforge lock` writes them, with the file's pins: an edited
            # dependency_type, optional flag, constraint or resolution path (the content hash covers
            # only the inputs), or a package added or dropped by hand. Reported after the files.
            try:
                again = resolve(root_dependencies=ctx.dependencies, index=index, root=ctx.root_candidate,
                                include_dev=include_dev, pins={k: p.commit for k, p in lock.packages.items()},
                                root_label=ROOT_LABEL)
            except AgentForgeError as exc:
                return LockCheck(ok=False, reasons=[exc.message])
            differences = _package_differences(path, lock.packages, _lock_packages(again, index))
    if verify_files and not reasons:
        try:
            materialise(lock.packages, {}, settings=settings)
        except AgentForgeError as exc:
            return LockCheck(ok=False, reasons=[exc.message], mismatch=True)
    reasons.extend(differences)
    return LockCheck(ok=not reasons, reasons=reasons)


#: What the resolution decides beyond the pins (commits, trees, checksums, versions and kinds are
#: checked against the mirrors by materialise).
_RESOLVED_FIELDS = ("repository", "component", "dependency_type", "optional", "constraints", "resolution_path")


def _package_differences(path: Path, locked: Mapping[str, LockedPackage], fresh: Mapping[str, LockedPackage], *,
                         limit: int = 5) -> list[str]:
    """How the file's packages differ from a resolution with the file's pins (checksums and
    signature fields aside: materialise and the trust policy check those)."""
    if any(key in fresh and fresh[key].commit != pkg.commit for key, pkg in locked.items()):
        # A pin the resolver cannot keep (its release tag deleted or moved since; locks keep using
        # pinned commits): what the other packages would be then says nothing about this file.
        return []
    out: list[str] = []
    for key in sorted(locked.keys() - fresh.keys()):
        out.append(f"{path}: package {key} is not part of the resolution")
    for key in sorted(fresh.keys() - locked.keys()):
        out.append(f"{path}: package {key} is missing")
    for key in sorted(locked.keys() & fresh.keys()):
        mine, theirs = locked[key], fresh[key]
        for name in _RESOLVED_FIELDS:
            if getattr(mine, name) != getattr(theirs, name):
                out.append(f"{path}: package {key}: {name} is {getattr(mine, name)!r}, "
                           f"the resolution gives {getattr(theirs, name)!r}")
    if len(out) > limit:
        out = [*out[:limit], f"… and {len(out) - limit} more differences"]
    return out


def _hash_inputs_for_check(ctx: RootContext, root_text: str, spec: RootSpec) -> list[Any]:
    if spec.kind == "composition":
        return ctx.hash_inputs
    # The root label in the hash is what the user asked for (not the commit: pin we check against).
    original = root_text.strip()
    return [x if not (isinstance(x, str) and x.startswith("root:")) else f"root:{_label_of(original)}"
            for x in ctx.hash_inputs]


def _label_of(text: str) -> str:
    name, _, constraint = text.partition("@")
    return name if not constraint or constraint == "*" else f"{name}@{constraint}"


def verify_lock_for_install(root_text: str, path: Path, *, include_dev: bool, force_kind: str | None = None,
                            settings: Settings | None = None) -> LockFile:
    """--frozen: the lock must exist, be for this root, be current, and match the mirrors."""
    if not path.exists():
        raise LockError(f"{path} does not exist; --frozen installs only what a lock says",
                        code="LOCK_MISSING", hint=f"Run `agentforge lock {root_text}` first, or drop --frozen.")
    result = check_lock(root_text, path, include_dev=include_dev, force_kind=force_kind, settings=settings)
    if not result.ok:
        reasons = [r if r.startswith(str(path)) else f"{path}: {r}" for r in result.reasons]
        raise LockError("; ".join(reasons), code="LOCK_STALE",
                        hint=f"Run `agentforge lock {root_text}` (or install without --frozen).")
    lock = read_existing_lock(path).lock
    assert lock is not None
    return lock


def versions_text(versions: Sequence[str]) -> str:
    return ", ".join(sorted(versions, key=sort_key))
