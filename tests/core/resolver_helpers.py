"""A tiny in-memory candidate index so a resolver scenario is a few lines (Poetry-style).

    index = MemoryIndex()
    index.add("a", "2.1.4", deps={"c": "~1.0"})
    index.add("c", "1.0.3")
    check_resolution(index, {"a": "^2.1"}, expect={"a": "2.1.4", "c": "1.0.3"})

Names are turned into keys under one default repository (``github.com/acme/tools/<name>``);
a name that already contains a ``/`` is taken as a full key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from agentforge.core.resolver import Candidate, Dependency, DependencyKind, Resolution, resolve

REPO = "github.com/acme/tools"


def key(name: str) -> str:
    return name if "/" in name else f"{REPO}/{name}"


def short(k: str) -> str:
    """The name for keys under the default repository, the full key otherwise."""
    return k.removeprefix(REPO + "/")


def sha(*parts: str) -> str:
    return hashlib.sha1("\0".join(parts).encode()).hexdigest()


def dependencies(
    parent: str,
    deps: Mapping[str, str] | None = None,
    *,
    peer: Mapping[str, str] | None = None,
    dev: Mapping[str, str] | None = None,
    optional: Mapping[str, str] | None = None,
) -> tuple[Dependency, ...]:
    out: list[Dependency] = []
    groups: list[tuple[Mapping[str, str] | None, DependencyKind, bool]] = [
        (deps, "normal", False),
        (optional, "normal", True),
        (peer, "peer", False),
        (dev, "dev", False),
    ]
    for group, kind, is_optional in groups:
        for name, text in (group or {}).items():
            out.append(Dependency(key(name), text, kind=kind, optional=is_optional, declared_by=parent))
    return tuple(out)


class MemoryIndex:
    def __init__(self) -> None:
        self._by_key: dict[str, list[Candidate]] = {}
        self.lookups: dict[str, int] = {}

    def add(
        self,
        name: str,
        version: str,
        deps: Mapping[str, str] | None = None,
        *,
        peer: Mapping[str, str] | None = None,
        dev: Mapping[str, str] | None = None,
        optional: Mapping[str, str] | None = None,
        commit: str | None = None,
        tags: Iterable[str] | None = None,
        branches: Iterable[str] = (),
        is_release: bool = True,
        held_back: str | None = None,
        kind: str = "Tool",
    ) -> Candidate:
        k = key(name)
        component = k.rsplit("/", 1)[-1]
        cand = Candidate(
            key=k,
            name=component,
            kind=kind,
            version=version,
            commit=commit or sha(k, version, str(is_release), ",".join(branches)),
            tags=frozenset(tags if tags is not None else ([f"v{version}"] if is_release else [])),
            branches=frozenset(branches),
            is_release=is_release,
            held_back=held_back,
            dependencies=dependencies(k, deps, peer=peer, dev=dev, optional=optional),
        )
        self._by_key.setdefault(k, []).append(cand)
        return cand

    def get(self, name: str, version: str) -> Candidate:
        return next(c for c in self._by_key[key(name)] if c.version == version)

    # CandidateIndex
    def candidates(self, key: str) -> Sequence[Candidate]:
        self.lookups[key] = self.lookups.get(key, 0) + 1
        return list(self._by_key.get(key, ()))

    def describe_missing(self, key: str) -> tuple[str, str | None]:
        repo = key.rsplit("/", 1)[0]
        return (f"no registered repository provides {key}", f"agentforge repo add https://{repo}")


def root_deps(
    deps: Mapping[str, str] | None = None,
    *,
    peer: Mapping[str, str] | None = None,
    dev: Mapping[str, str] | None = None,
    optional: Mapping[str, str] | None = None,
) -> tuple[Dependency, ...]:
    return dependencies("<root>", deps, peer=peer, dev=dev, optional=optional)


def check_resolution(
    index: MemoryIndex,
    deps: Mapping[str, str] | Sequence[Dependency],
    *,
    expect: Mapping[str, str],
    **kwargs: Any,
) -> Resolution:
    """Resolve and assert the chosen version of every package (by name), nothing more, nothing less."""
    root_dependencies = root_deps(deps) if isinstance(deps, Mapping) else tuple(deps)
    result = resolve(root_dependencies=root_dependencies, index=index, **kwargs)
    got = {short(k): p.candidate.version for k, p in result.packages.items()}
    wanted = {short(key(n)): v for n, v in expect.items()}
    assert got == wanted, f"resolved {got}, expected {wanted}"
    return result
