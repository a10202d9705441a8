"""Dependency resolution: constraints on components → one exact candidate (commit) per package key.

The backtracking itself is ``resolvelib``'s (the library pip uses); this module only implements
its provider API, like pip's resolver layer:

* :class:`_Catalog` is the one door to the caller's :class:`CandidateIndex`. It fetches a key's
  candidates once, drops held-back ones, sorts the rest best-first and caches parsed versions, so
  every provider call is linear in one key's candidates (a 2,000 × 20 chain stays fast).
* :class:`_Provider` maps requirements ↔ candidates. Peer dependencies of non-root packages are
  not requirements (they are never pulled in) but checked after resolution; the root's own peers
  are resolved, because the root *is* the consumer that must provide them.
* :func:`resolve` drives a few passes: a pass that fails only because of an optional dependency
  drops that edge (reported in ``Resolution.skipped``) and retries; a pass whose result breaks a
  peer constraint retries with that peer edge turned into a real constraint (so backtracking can
  choose a compatible version of a package that is already in the graph).

Conflicts become a :class:`~agentforge.errors.ResolutionError` that reads like pip's: the chains
of requirements that collide, the versions that exist (and the held-back ones, with the reason),
the pins kept from the lock, and a hint saying what to try.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import semver
from resolvelib import AbstractProvider, BaseReporter
from resolvelib.resolvers import Resolution as _ResolvelibResolution
from resolvelib.resolvers import ResolutionImpossible, ResolutionTooDeep
from resolvelib.structs import RequirementInformation, State

from agentforge.core.constraints import Constraint, parse_constraint, sort_key
from agentforge.errors import ResolutionError

__all__ = [
    "Candidate",
    "CandidateIndex",
    "Dependency",
    "DependencyKind",
    "DependencyType",
    "Resolution",
    "ResolvedPackage",
    "SkippedDependency",
    "resolve",
]

DependencyKind = Literal["normal", "peer", "dev"]
DependencyType = Literal["root", "direct", "transitive", "peer", "dev"]

# resolvelib counts one round per pin or backjump; pip uses the same ceiling.
_MAX_ROUNDS = 200_000
_REF_KINDS = frozenset({"branch", "tag", "commit"})
_MAX_LISTED_VERSIONS = 12


@dataclass(frozen=True)
class Dependency:
    """One declared edge: ``declared_by`` wants ``key`` at ``constraint``."""

    key: str  # "<repository key>/<component>", e.g. "github.com/acme/crm/salesforce-lookup"
    constraint: str  # constraint text as written
    kind: DependencyKind = "normal"
    optional: bool = False
    declared_by: str = "<root>"  # key of the declaring package, or "<root>"


@dataclass(eq=False)
class Candidate:
    """One concrete commit of a component that could be chosen for its key.

    Compared and hashed by identity (the resolver's caches key on it), and not frozen: an index
    builds tens of thousands of these per resolution, and a frozen dataclass's ``__init__``
    costs several times more. Treat instances as read-only.
    """

    key: str
    name: str
    kind: str  # Tool | Prompt | Agent
    version: str
    commit: str
    tags: frozenset[str] = frozenset()
    branches: frozenset[str] = frozenset()
    is_release: bool = True
    held_back: str | None = None  # e.g. "tag v1.2.0 moved from abc… to def…": never chosen, named in errors
    dependencies: tuple[Dependency, ...] = ()
    # An index with thousands of candidates per resolution reads a candidate's dependencies only
    # when the resolver asks for them (most candidates are never pinned): see :meth:`deps`.
    dependency_loader: Callable[[], tuple[Dependency, ...]] | None = field(
        default=None, compare=False, repr=False, hash=False
    )

    def deps(self) -> tuple[Dependency, ...]:
        """The dependencies, loaded once on first use when the index gave a loader."""
        loader = self.dependency_loader
        if loader is not None:
            self.dependencies = tuple(loader())
            self.dependency_loader = None
        return self.dependencies


class CandidateIndex(Protocol):
    def candidates(self, key: str) -> Sequence[Candidate]:
        """Every known candidate for key, in any order."""
        ...

    def describe_missing(self, key: str) -> tuple[str, str | None]:
        """(message, hint) for a key without candidates, e.g. its repository is not registered."""
        ...


@dataclass(frozen=True)
class SkippedDependency:
    """An optional dependency that was left out, and why."""

    dependency: Dependency
    declared_by: str  # label of the package that declared it (root_label for the root)
    reason: str


@dataclass(frozen=True)
class ResolvedPackage:
    candidate: Candidate
    dependency_type: DependencyType
    optional: bool  # every path from the root to it goes through an optional edge
    constraints: dict[str, str]  # declared_by label → constraint text
    resolution_path: list[str]  # shortest, from root_label to this key


@dataclass
class Resolution:
    packages: dict[str, ResolvedPackage] = field(default_factory=dict)  # sorted by key
    skipped: list[SkippedDependency] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# Internals


class _Requirement:
    """A requirement as resolvelib sees it: one edge, with its parsed constraint."""

    __slots__ = ("constraint", "dependency", "is_root", "key", "last_ok", "optional", "parent", "via")

    def __init__(
        self,
        key: str,
        constraint: Constraint | None,
        parent: Candidate | None,
        dependency: Dependency | None,
        via: DependencyKind = "normal",
        is_root: bool = False,
    ) -> None:
        self.key = key
        self.constraint = constraint  # None only for the requirement that pins the root itself
        self.parent = parent
        self.dependency = dependency
        self.via = via
        self.optional = bool(dependency and dependency.optional)
        self.is_root = is_root
        # resolvelib re-checks every pinned criterion each round: remember the last candidate that
        # satisfied this requirement so that the common re-check is one identity comparison.
        self.last_ok: Candidate | None = None

    @property
    def text(self) -> str:
        return self.constraint.text if self.constraint is not None else "(root)"

    def __repr__(self) -> str:
        return f"<{self.key} {self.text}>"


class _Catalog:
    """Caches over the index, shared by every pass of one :func:`resolve` call."""

    def __init__(self, index: CandidateIndex, root: Candidate | None) -> None:
        self.index = index
        self.root = root
        self._usable: dict[str, list[Candidate]] = {}
        self._held: dict[str, list[Candidate]] = {}
        self._latest: dict[str, Candidate | None] = {}
        self._only_prereleases: dict[str, bool] = {}
        self._versions: dict[int, semver.Version | None] = {}
        self._constraints: dict[tuple[str, str], Constraint] = {}
        self.keys_by_name: dict[str, set[str]] = {}
        self.names: dict[str, str] = {}

    def _load(self, key: str) -> None:
        if self.root is not None and key == self.root.key:
            found: list[Candidate] = [self.root]
        else:
            found = list(self.index.candidates(key))
        usable = [c for c in found if c.held_back is None]
        usable.sort(key=self._order_key, reverse=True)
        held = sorted((c for c in found if c.held_back is not None), key=self._order_key)
        self._usable[key] = usable
        self._held[key] = held
        for c in found:
            self.keys_by_name.setdefault(c.name, set()).add(key)
            self.names.setdefault(key, c.name)
        # Go's rule for constraints that name no version (`*`, `latest`, a bare name): the releases
        # that are not pre-releases, else — when the component has none, not even a held-back one
        # (a moved tag must not silently hand over to a pre-release) — its pre-releases, e.g. a
        # catalog's pseudo-versions. `latest` is the first of those (usable is sorted best-first).
        releases = [c for c in usable if c.is_release and self.version(c) is not None]
        stable = [c for c in releases if self._is_stable(c)]
        only_pre = not stable and not any(c.is_release and self._is_stable(c) for c in held)
        self._only_prereleases[key] = only_pre
        self._latest[key] = stable[0] if stable else (releases[0] if releases and only_pre else None)

    def _is_stable(self, c: Candidate) -> bool:
        v = self.version(c)
        return v is not None and v.prerelease is None

    def _order_key(self, c: Candidate) -> tuple[bool, tuple[int, Any], str]:
        # Highest version first; a release beats a branch tip of the same version; commit breaks ties.
        return (c.is_release, sort_key(c.version), c.commit)

    def usable(self, key: str) -> list[Candidate]:
        if key not in self._usable:
            self._load(key)
        return self._usable[key]

    def held_back(self, key: str) -> list[Candidate]:
        self.usable(key)
        return self._held[key]

    def latest(self, key: str) -> Candidate | None:
        self.usable(key)
        return self._latest[key]

    def only_prereleases(self, key: str) -> bool:
        """The key has no release that is not a pre-release (held-back ones count as releases)."""
        self.usable(key)
        return self._only_prereleases[key]

    def version(self, c: Candidate) -> semver.Version | None:
        return _parse_version_cached(c.version)

    def constraint(self, text: str, declared_by: str) -> Constraint:
        cache_key = (text, declared_by)
        found = self._constraints.get(cache_key)
        if found is None:
            found = parse_constraint(text, declared_by=declared_by)
            self._constraints[cache_key] = found
        return found

    def matches(self, constraint: Constraint, c: Candidate) -> bool:
        """Constraint.matches with cached versions, plus the resolver's reading of ``latest``:
        exactly the highest release of that key (not a pre-release, unless the key has only
        pre-releases: Go's rule), not merely "some release"."""
        if constraint.kind == "latest":
            return self.latest(c.key) is c
        if constraint.kind in _REF_KINDS:
            return constraint.matches(c)
        if not c.is_release:
            return False
        v = self.version(c)
        if v is None:
            return False
        return constraint.allows_version(v, only_prereleases=v.prerelease is not None and self.only_prereleases(c.key))

    def name(self, key: str) -> str:
        if key not in self.names:
            self.usable(key)
        return self.names.get(key) or key.rstrip("/").rsplit("/", 1)[-1]

    def display_name(self, key: str) -> str:
        """The component's name, or its key when two keys share that name."""
        name = self.name(key)
        return key if len(self.keys_by_name.get(name, {key})) > 1 else name


@dataclass
class _PeerProblem:
    needer: Candidate
    dependency: Dependency
    constraint: Constraint
    provided: Candidate | None


class _Provider(AbstractProvider[_Requirement, Candidate, str]):
    def __init__(
        self,
        *,
        catalog: _Catalog,
        root_dependencies: Sequence[Dependency],
        include_dev: bool,
        pins: Mapping[str, str],
        upgrade: Collection[str] | None,
        dropped: Mapping[tuple[str | None, str], str],
        promoted: Collection[tuple[str, str, str]],
        root_label: str,
    ) -> None:
        self.catalog = catalog
        self.root = catalog.root
        self.root_dependencies = tuple(root_dependencies)
        self.include_dev = include_dev
        self.pins = {k: v.lower() for k, v in pins.items()}
        self.upgrade = upgrade
        self.dropped = dropped
        self.promoted = promoted
        self.root_label = root_label
        self._deps: dict[int, list[_Requirement]] = {}
        self._sat: dict[tuple[int, int], bool] = {}
        # Every requirement built so far, by the key it asks for: used to explain conflicts.
        self.edges_by_key: dict[str, list[_Requirement]] = {}
        # Optional edges left out because nothing can provide their key, by (parent id, key).
        self.unavailable: dict[tuple[int, str], SkippedDependency] = {}
        if self.root is not None:
            self.root_requirements = [_Requirement(self.root.key, None, None, None, is_root=True)]
        else:
            self.root_requirements = self._build(None, self.root_dependencies)

    # -- helpers ------------------------------------------------------------------------------

    def label(self, parent: Candidate | None) -> str:
        return self.root_label if parent is None or parent is self.root else parent.key

    def show(self, parent: Candidate | None) -> str:
        if parent is None or parent is self.root:
            return self.root_label
        text = f"{self.catalog.display_name(parent.key)} {parent.version}"
        return text if parent.is_release else f"{text} (commit {parent.commit[:12]})"

    def pin_for(self, key: str) -> str | None:
        pin = self.pins.get(key)
        if pin is None or self.upgrade is None:
            return pin
        if not self.upgrade:  # an empty collection means "upgrade everything"
            return None
        if key in self.upgrade or self.catalog.name(key) in self.upgrade:
            return None
        return pin

    def _build(self, parent: Candidate | None, deps: Iterable[Dependency]) -> list[_Requirement]:
        is_root = parent is None or parent is self.root
        parent_key = None if parent is None else parent.key
        out: list[_Requirement] = []
        for dep in deps:
            if dep.kind == "dev" and not (is_root and self.include_dev):
                continue
            if dep.kind == "peer" and not is_root:
                assert parent is not None
                if (parent.key, parent.commit, dep.key) not in self.promoted:
                    continue  # checked against the result, never pulled in
            if dep.optional and (parent_key, dep.key) in self.dropped:
                continue
            if dep.optional and not self.catalog.usable(dep.key):
                message, _hint = self.catalog.index.describe_missing(dep.key)
                self.unavailable[(id(parent), dep.key)] = SkippedDependency(dep, self.label(parent), message)
                continue
            declared_by = dep.declared_by if dep.declared_by != "<root>" else self.label(parent)
            if parent is not None:
                # Name the declaring component as a person finds it: name, version, repository.
                declared_by = f"{parent.name} {parent.version} ({parent.key})"
            constraint = self.catalog.constraint(dep.constraint, declared_by)
            req = _Requirement(dep.key, constraint, parent, dep, via=dep.kind)
            self.edges_by_key.setdefault(dep.key, []).append(req)
            out.append(req)
        return out

    def satisfies(self, req: _Requirement, c: Candidate) -> bool:
        memo = (id(req), id(c))
        found = self._sat.get(memo)
        if found is None:
            if req.constraint is None:
                found = c is self.root
            else:
                found = c.key == req.key and self.catalog.matches(req.constraint, c)
            self._sat[memo] = found
        return found

    # -- resolvelib API -----------------------------------------------------------------------

    def identify(self, requirement_or_candidate: _Requirement | Candidate) -> str:
        return requirement_or_candidate.key

    def get_preference(
        self,
        identifier: str,
        resolutions: Mapping[str, Candidate],
        candidates: Mapping[str, Iterator[Candidate]],
        information: Mapping[str, Iterator[RequirementInformation[_Requirement, Candidate]]],
        backtrack_causes: Sequence[RequirementInformation[_Requirement, Candidate]],
    ) -> tuple[bool, bool, str]:
        # Exact references (root, commit/tag/branch) leave one choice: settle them first. Then the
        # keys that just caused a backjump (pip's heuristic: it finds conflicts sooner).
        exact = False
        for info in information[identifier]:
            req = info.requirement
            if req.constraint is None or req.constraint.kind in _REF_KINDS:
                exact = True
                break
        cause = any(
            bc.requirement.key == identifier or (bc.parent is not None and bc.parent.key == identifier)
            for bc in backtrack_causes
        )
        return (not exact, not cause, identifier)

    def find_matches(
        self,
        identifier: str,
        requirements: Mapping[str, Iterator[_Requirement]],
        incompatibilities: Mapping[str, Iterator[Candidate]],
    ) -> list[Candidate]:
        reqs = list(requirements[identifier])
        bad = {id(c) for c in incompatibilities[identifier]}
        out = [
            c for c in self.catalog.usable(identifier) if id(c) not in bad and all(self.satisfies(r, c) for r in reqs)
        ]
        pin = self.pin_for(identifier)
        if pin is not None:
            for i, c in enumerate(out):
                if c.commit.lower() == pin:
                    if i:  # minimal churn: the locked commit first while it still satisfies
                        out.insert(0, out.pop(i))
                    break
        return out

    def first_match(self, identifier: str, reqs: Sequence[_Requirement]) -> Candidate | None:
        """What ``find_matches`` would put first, without testing every other candidate."""
        usable = self.catalog.usable(identifier)
        pin = self.pin_for(identifier)
        if pin is not None:
            for c in usable:
                if c.commit.lower() == pin and all(self.satisfies(r, c) for r in reqs):
                    return c
        for c in usable:
            if all(self.satisfies(r, c) for r in reqs):
                return c
        return None

    def is_satisfied_by(self, requirement: _Requirement, candidate: Candidate) -> bool:
        if requirement.last_ok is candidate:
            return True
        ok = self.satisfies(requirement, candidate)
        if ok:
            requirement.last_ok = candidate
        return ok

    def get_dependencies(self, candidate: Candidate) -> list[_Requirement]:
        ident = id(candidate)
        found = self._deps.get(ident)
        if found is None:
            if candidate is self.root:
                found = self._build(candidate, self.root_dependencies)
            else:
                found = self._build(candidate, candidate.deps())
            self._deps[ident] = found
        return found

    # -- explaining ---------------------------------------------------------------------------

    def path_to(self, target: Candidate | None) -> list[_Requirement] | None:
        """Shortest chain of recorded requirements from the root to ``target`` (None if unknown).

        A backward breadth-first search over the edges seen so far: from ``target`` to whoever
        asked for its key with a constraint it satisfies, and so on up to the root.
        """
        if target is None or target is self.root:
            return []
        # parent candidate id → (the requirement it declared, the candidate that requirement led to)
        came_by: dict[int, tuple[_Requirement, Candidate]] = {}
        seen = {id(target)}
        queue: deque[Candidate] = deque([target])
        while queue:
            node = queue.popleft()
            for req in self.edges_by_key.get(node.key, ()):
                if not self.satisfies(req, node):
                    continue
                parent = req.parent
                if parent is None or parent is self.root:
                    chain = [req]
                    cur = node
                    while cur is not target:
                        step, cur = came_by[id(cur)]
                        chain.append(step)
                    return chain
                if id(parent) not in seen:
                    seen.add(id(parent))
                    came_by[id(parent)] = (req, node)
                    queue.append(parent)
        return None

    def chain_text(self, req: _Requirement) -> tuple[str, list[str]]:
        path = self.path_to(req.parent)
        steps = ([] if path is None else path) + [req]
        segments = [f"{self.show(r.parent)} needs {self._req_show(r)}" for r in steps]
        text = " → ".join(segments)
        if path is None:
            text = "… → " + text
        return text, [self.label(r.parent) for r in steps] + [req.key]

    def _req_show(self, r: _Requirement) -> str:
        peer = "peer " if r.via == "peer" else ""
        return f"{peer}{self.catalog.display_name(r.key)} {r.text}"

    def candidate_chain_text(self, c: Candidate) -> str:
        path = self.path_to(c)
        if not path:
            return self.root_label
        return " → ".join(f"{self.show(r.parent)} needs {self._req_show(r)}" for r in path)

    def optional_edge_in(
        self, causes: Sequence[RequirementInformation[_Requirement, Candidate]]
    ) -> tuple[str | None, str] | None:
        """The optional edge (parent key, key) a conflict runs through, closest to the conflict."""
        for info in reversed(list(causes)):
            path = self.path_to(info.requirement.parent) or []
            for req in reversed([*path, info.requirement]):
                if req.optional and req.dependency is not None:
                    return (None if req.parent is None else req.parent.key, req.key)
        return None

    def conflict(self, causes: Sequence[RequirementInformation[_Requirement, Candidate]]) -> ResolutionError:
        """A person-readable conflict: chains, what exists, held-back versions, pins, and a hint."""
        by_key: dict[str, list[_Requirement]] = {}
        seen: set[int] = set()
        for info in causes:
            req = info.requirement
            if id(req) not in seen:
                seen.add(id(req))
                by_key.setdefault(req.key, []).append(req)

        clauses: list[str] = []
        hints: list[str] = []
        details: list[dict[str, Any]] = []
        for key, reqs in by_key.items():
            name = self.catalog.display_name(key)
            chains = [self.chain_text(r) for r in reqs]
            texts = list(dict.fromkeys(r.text for r in reqs))
            usable = self.catalog.usable(key)
            held = self.catalog.held_back(key)
            parts = [c[0] for c in chains]
            detail: dict[str, Any] = {
                "key": key,
                "name": self.catalog.name(key),
                "requirements": [
                    {"constraint": r.text, "declared_by": self.label(r.parent), "chain": chain[1]}
                    for r, chain in zip(reqs, chains, strict=True)
                ],
                "available": [c.version for c in _by_version(usable)],
                "held_back": [{"version": c.version, "commit": c.commit, "reason": c.held_back} for c in held],
            }
            if not usable and not held:
                message, hint = self.catalog.index.describe_missing(key)
                parts.append(f"{name}: {message}")
                hints.append(hint or f"register the repository that provides {name} (agentforge repo add …)")
                detail["missing"] = message
            else:
                available = self._versions_text(usable, reqs)
                parts.append(f"{name} has {available}: nothing matches {' and '.join(texts)}")
                for c in held:
                    parts.append(f"{c.version} held back: {c.held_back}")
                if held:
                    hints.append(f"fix or re-tag the held-back release(s) of {name}")
                # Releases a sync has yet to read (an index may know of none: the method is optional).
                pending = getattr(self.catalog.index, "pending", None)
                waiting = pending(key) if callable(pending) else []
                parts.extend(waiting)
                if waiting:
                    hints.append(f"sync the repository of {name} first (`agentforge sync`)")
                    detail["pending"] = waiting
                if all(r.constraint is not None and r.constraint.names_no_version for r in reqs) and not any(
                    all(self.satisfies(r, c) for r in reqs) for c in usable
                ):
                    # `*` / `latest` / no version is already the loosest: say what would work instead.
                    found = self._no_release_hint(name, usable)
                    if found:
                        hints.append(found)
                else:
                    hints.append(f"relax one of the constraints on {name} ({', '.join(texts)})")
            pin = self.pin_for(key)
            if pin is not None:
                # Pins only order the search (every candidate is still tried), so they never cause a
                # conflict; they are listed because a person reading the error will ask about them.
                at = next((c for c in usable if c.commit.lower() == pin), None)
                where = f"{at.version} ({pin[:12]})" if at else pin[:12]
                parts.append(f"pin kept from the lock: {name} {where}")
                detail["pinned"] = pin
            clauses.append("; ".join(parts))
            details.append(detail)
        return ResolutionError(
            "cannot resolve dependencies: " + " | ".join(clauses),
            hint="; or ".join(dict.fromkeys(hints)) or None,
            details={"conflicts": details},
        )

    def _no_release_hint(self, name: str, usable: Sequence[Candidate]) -> str | None:
        """For a key that nothing naming no version can match: a reference that works."""
        pre = [c for c in usable if c.is_release and self.catalog.version(c) is not None]
        if pre:  # pre-releases, not picked because a release that is not one is held back
            return (f"lock one of its pre-releases by version: {name}@{pre[0].version} "
                    f'(version: "{pre[0].version}" in a dependency)')
        if not usable:
            return None
        tip = next((c for c in usable if c.branches), None)
        ref = f"branch:{min(tip.branches)}" if tip is not None else f"commit:{usable[0].commit}"
        return (f"{name} has no release, only commits (no release tag covers it): lock it by reference, "
                f'e.g. {name}@{ref} (version: "{ref}" in a dependency), or tag a release of it')

    def _versions_text(self, usable: Sequence[Candidate], reqs: Sequence[_Requirement] = ()) -> str:
        """What exists for a key, as far as ``reqs`` could choose it: version ranges choose only
        releases, so commits that no release tag covers are then counted, not listed by version
        (a "1.0.0 (commit …)" beside "nothing matches 1.0.0" reads like a contradiction)."""
        if not usable:
            return "no usable version"
        listed = usable
        unreleased = 0
        if reqs and all(r.constraint is not None and r.constraint.kind not in _REF_KINDS for r in reqs):
            listed = [c for c in usable if c.is_release]
            unreleased = len(usable) - len(listed)
        shown = list(
            dict.fromkeys(
                c.version if c.is_release else f"{c.version} (commit {c.commit[:12]})" for c in _by_version(listed)
            )
        )
        if len(shown) > _MAX_LISTED_VERSIONS:
            shown = ["…", *shown[-_MAX_LISTED_VERSIONS:]]
        commits = f"{unreleased} commit{'s' if unreleased != 1 else ''} no release tag covers"
        if not shown:
            return f"no release (only {commits})"
        return ", ".join(shown) + (f" and {commits}" if unreleased else "")

    # -- after a successful pass --------------------------------------------------------------

    def edges(self, mapping: Mapping[str, Candidate]) -> dict[str | None, list[_Requirement]]:
        """Effective edges among the chosen candidates: node key (None = virtual root) → requirements."""
        out: dict[str | None, list[_Requirement]] = {}
        if self.root is None:
            out[None] = [r for r in self.root_requirements if r.key in mapping]
        else:
            out[None] = [r for r in self.root_requirements]
        for key, cand in mapping.items():
            out[key] = [r for r in self.get_dependencies(cand) if r.key in mapping]
        return out

    def peer_problems(self, mapping: Mapping[str, Candidate], connected: Collection[str]) -> list[_PeerProblem]:
        problems: list[_PeerProblem] = []
        for key in connected:
            cand = mapping[key]
            if cand is self.root:
                continue
            for dep in cand.deps():
                if dep.kind != "peer":
                    continue
                constraint = self.catalog.constraint(dep.constraint, f"{cand.key} {cand.version}")
                provided = mapping.get(dep.key) if dep.key in connected else None
                if provided is None:
                    if dep.optional:
                        continue
                    problems.append(_PeerProblem(cand, dep, constraint, None))
                elif not self.catalog.matches(constraint, provided):
                    problems.append(_PeerProblem(cand, dep, constraint, provided))
        return problems

    def peer_error(self, problem: _PeerProblem) -> ResolutionError:
        needer = self.show(problem.needer)
        name = self.catalog.display_name(problem.dependency.key)
        chain = self.candidate_chain_text(problem.needer)
        wants = f"{needer} needs peer {name} {problem.constraint.text}"
        details = {
            "peer": problem.dependency.key,
            "needed_by": problem.needer.key,
            "constraint": problem.constraint.text,
            "chain": chain,
        }
        if problem.provided is None:
            return ResolutionError(
                f"cannot resolve dependencies: {chain} → {wants}, but nothing in the resolution provides "
                f"{name} (peer dependencies are never installed implicitly)",
                hint=f"add {name} {problem.constraint.text} to the root's dependencies",
                details=details,
            )
        path = self.candidate_chain_text(problem.provided)
        return ResolutionError(
            f"cannot resolve dependencies: {chain} → {wants}, but {self.show(problem.provided)} was resolved ({path})",
            hint=f"relax the constraints on {name} so that one version satisfies "
            f"{problem.constraint.text} as well, or upgrade {self.catalog.display_name(problem.needer.key)}",
            details={**details, "provided": problem.provided.version},
        )


@functools.lru_cache(maxsize=65536)
def _parse_version_cached(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


def _by_version(candidates: Iterable[Candidate]) -> list[Candidate]:
    """Lowest version first, for people reading a list of what exists."""
    return sorted(candidates, key=lambda c: (sort_key(c.version), c.is_release, c.commit))


def _bfs(
    edges: Mapping[str | None, Sequence[_Requirement]], *, skip: Any = None
) -> dict[str, tuple[str | None, _Requirement]]:
    """Breadth-first from the virtual root: key → (parent node, edge). ``skip`` filters edges."""
    reached: dict[str, tuple[str | None, _Requirement]] = {}
    queue: deque[str | None] = deque([None])
    while queue:
        node = queue.popleft()
        for req in edges.get(node, ()):
            if skip is not None and skip(req):
                continue
            if req.key not in reached:
                reached[req.key] = (node, req)
                queue.append(req.key)
    return reached


def _find_cycle(
    edges: Mapping[str | None, Sequence[_Requirement]], nodes: Collection[str], first: str | None = None
) -> list[str] | None:
    """A dependency cycle among ``nodes`` as a key path that ends where it starts, or None."""
    color: dict[str, int] = {}  # 1 on the stack, 2 done
    for start in sorted(nodes, key=lambda k: (k != first, k)):  # deterministic, the root first
        if start in color:
            continue
        stack: list[tuple[str, Iterator[_Requirement]]] = [(start, iter(edges.get(start, ())))]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            advanced = False
            for req in it:
                child = req.key
                if child not in nodes:
                    continue
                if color.get(child) == 1:
                    path = [n for n, _ in stack]
                    return [*path[path.index(child) :], child]
                if child not in color:
                    color[child] = 1
                    stack.append((child, iter(edges.get(child, ()))))
                    advanced = True
                    break
            if not advanced:
                color[node] = 2
                stack.pop()
    return None


def resolve(
    *,
    root_dependencies: Sequence[Dependency],
    index: CandidateIndex,
    root: Candidate | None = None,
    include_dev: bool = False,
    pins: Mapping[str, str] | None = None,
    upgrade: Collection[str] | None = None,
    root_label: str = "<root>",
) -> Resolution:
    """Choose one candidate per key so that every constraint on it holds, highest versions first.

    ``root`` (a component being locked) is itself a package (``dependency_type`` "root") whose
    dependencies are ``root_dependencies``. ``pins`` (key → commit, from an existing lock) are
    tried first while they still satisfy, except for keys in ``upgrade`` (an empty collection
    upgrades everything; keys or component names are accepted). Raises ``ResolutionError`` (with
    chains, hint and ``details``) or ``ConstraintError`` naming the component with a bad constraint.
    """
    catalog = _Catalog(index, root)
    dropped: dict[tuple[str | None, str], str] = {}
    promoted: set[tuple[str, str, str]] = set()
    while True:
        provider = _Provider(
            catalog=catalog,
            root_dependencies=root_dependencies,
            include_dev=include_dev,
            pins=pins or {},
            upgrade=upgrade,
            dropped=dropped,
            promoted=promoted,
            root_label=root_label,
        )
        try:
            greedy = _greedy(provider)
            if greedy is not None:
                mapping = greedy
            else:
                state: State[_Requirement, Candidate, str] = _ResolvelibResolution(
                    provider, BaseReporter[_Requirement, Candidate, str]()
                ).resolve(provider.root_requirements, max_rounds=_MAX_ROUNDS)
                mapping = dict(state.mapping)
        except ResolutionImpossible as exc:
            causes: Sequence[RequirementInformation[_Requirement, Candidate]] = list(exc.causes)
            edge = provider.optional_edge_in(causes)
            if edge is None or edge in dropped:
                raise provider.conflict(causes) from None
            dropped[edge] = provider.conflict(causes).message.removeprefix("cannot resolve dependencies: ")
            continue
        except ResolutionTooDeep as exc:
            raise ResolutionError(
                f"cannot resolve dependencies: gave up after {exc.round_count} rounds of backtracking",
                hint="pin some dependencies to exact versions to narrow the search",
                details={"rounds": exc.round_count},
            ) from None

        edges = provider.edges(mapping)
        reached = _bfs(edges)
        connected = set(reached)
        if root is not None:
            connected.add(root.key)
        problems = provider.peer_problems(mapping, connected)
        fixable = {
            (p.needer.key, p.needer.commit, p.dependency.key) for p in problems if p.provided is not None
        } - promoted
        if fixable:
            # Let the resolver see the peer constraint so it can pick a compatible version.
            promoted |= fixable
            continue
        if problems:
            raise provider.peer_error(problems[0])
        break

    # The root candidate's own edges hang off its key, so a dependency back on it is a cycle too.
    cycle = _find_cycle(edges, connected, first=root.key if root is not None else None)
    if cycle is not None:
        shown = [provider.show(mapping[k]) if mapping[k] is not root else root_label for k in cycle]
        raise ResolutionError(
            "dependency cycle: " + " → ".join(shown),
            hint="remove one of the dependencies in the cycle (or make it a peer dependency)",
            details={"cycle": cycle},
        )

    return _assemble(provider, mapping, edges, reached, connected, root, root_label)


def _greedy(provider: _Provider) -> dict[str, Candidate] | None:
    """One breadth-first pass without backtracking: each key gets its best match (the pinned commit
    or the highest version) for the requirements known when it is reached.

    Most graphs resolve this way in linear time. The moment a later requirement rejects an
    earlier choice, or a key has no match, it gives up (None) and resolvelib — the backtracking
    solver — resolves the graph from scratch, so the answer is always one resolvelib accepts:
    every requirement of every chosen candidate holds. resolvelib's own loop re-checks every
    pinned key each round, which is quadratic on thousands of packages.
    """
    requirements: dict[str, list[_Requirement]] = {}
    mapping: dict[str, Candidate] = {}
    queue: deque[str] = deque()
    for req in provider.root_requirements:
        requirements.setdefault(req.key, []).append(req)
        queue.append(req.key)
    while queue:
        key = queue.popleft()
        chosen = mapping.get(key)
        reqs = requirements[key]
        if chosen is not None:
            if all(provider.is_satisfied_by(r, chosen) for r in reqs):
                continue
            return None
        chosen = provider.first_match(key, reqs)
        if chosen is None:
            return None
        mapping[key] = chosen
        for dep in provider.get_dependencies(chosen):
            requirements.setdefault(dep.key, []).append(dep)
            queue.append(dep.key)
    return mapping


def _assemble(
    provider: _Provider,
    mapping: Mapping[str, Candidate],
    edges: Mapping[str | None, Sequence[_Requirement]],
    reached: Mapping[str, tuple[str | None, _Requirement]],
    connected: Collection[str],
    root: Candidate | None,
    root_label: str,
) -> Resolution:
    root_edges = [r for r in edges[None] if not r.is_root]
    if root is not None:
        root_edges = list(edges.get(root.key, ()))
        # The root's own edges hang off its key; re-hang them off the virtual root for the walks.
        edges = {**edges, None: root_edges}
        reached = _bfs(edges)
    direct = {r.key for r in root_edges if r.via == "normal"}
    peers = {r.key for r in root_edges if r.via == "peer"}
    non_dev = _bfs(edges, skip=lambda r: r.via == "dev")
    required = _bfs(edges, skip=lambda r: r.optional)

    constraints: dict[str, dict[str, str]] = {}
    for node, reqs in edges.items():
        if node is not None and node not in connected:
            continue
        for req in reqs:
            if req.is_root:
                continue
            label = root_label if node is None or (root is not None and node == root.key) else node
            per = constraints.setdefault(req.key, {})
            if label in per and per[label] != req.text:
                per[label] = f"{per[label]}, {req.text}"  # two edges from one package: both hold
            else:
                per[label] = req.text
    for key in connected:  # peers of non-root packages were checked, record who asked
        cand = mapping[key]
        if cand is root:
            continue
        for dep in cand.deps():
            if dep.kind == "peer" and dep.key in connected:
                constraints.setdefault(dep.key, {}).setdefault(key, dep.constraint)

    packages: dict[str, ResolvedPackage] = {}
    for key in sorted(connected):
        cand = mapping[key]
        dtype: DependencyType
        if root is not None and key == root.key:
            dtype = "root"
        elif key in direct:
            dtype = "direct"
        elif key in peers:
            dtype = "peer"
        elif key in non_dev:
            dtype = "transitive"
        else:
            dtype = "dev"
        path: list[str] = [key] if dtype != "root" else []
        step: str | None = key
        while step is not None and step in reached and dtype != "root":
            step = reached[step][0]
            if step is not None:
                path.append(step)
        path.append(root_label)
        path.reverse()
        packages[key] = ResolvedPackage(
            candidate=cand,
            dependency_type=dtype,
            optional=dtype != "root" and key not in required,
            constraints=dict(sorted(constraints.get(key, {}).items())),
            resolution_path=path,
        )

    skipped: list[SkippedDependency] = []
    chosen = {id(c) for c in mapping.values()} | {id(None)}
    for (parent_id, _key), item in provider.unavailable.items():
        if parent_id in chosen:
            skipped.append(item)
    for (parent_key, key), reason in provider.dropped.items():
        if parent_key is None or parent_key in connected:
            parent = None if parent_key is None else mapping[parent_key]
            deps = provider.root_dependencies if parent is None or parent is root else parent.deps()
            for dep in deps:
                if dep.key == key and dep.optional:
                    skipped.append(SkippedDependency(dep, provider.label(parent), reason))
                    break
    skipped.sort(key=lambda s: (s.declared_by, s.dependency.key))
    return Resolution(packages=packages, skipped=skipped)
