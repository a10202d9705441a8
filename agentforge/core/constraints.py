"""Version constraints: the whole grammar of FORMATS §3, on top of ``semver`` 3.

A constraint is parsed once into a frozen :class:`Constraint` and then asked two questions:
``matches(candidate)`` (does this concrete commit/tag/branch/version satisfy it?) and
``allows_version(version)`` (pure version check, used by property tests and by callers that
only hold versions).

Range semantics follow npm's node-semver, because that is what people who write ``^1.2`` expect:

* a range is an OR (``||``) of AND-sets of primitive comparators (``>=``, ``>``, ``<=``, ``<``,
  ``=``, ``!=`` against a full version); ``^``, ``~``, partial versions and wildcards are
  desugared into those comparators at parse time, so matching is a handful of comparisons;
* a pre-release version satisfies an AND-set only when one of that set's comparators names a
  pre-release of the same ``X.Y.Z`` (so ``^2.1.0`` never drifts onto ``2.2.0-beta.1``);
* build metadata never takes part in ordering or matching (``semver.Version`` already ignores it
  in comparisons; :func:`sort_key` strips it so keys are equal too).

Range kinds (``range`` and ``latest``) only ever match candidates that are releases: a branch tip
is reachable through ``branch:``/``tag:``/``commit:`` constraints only.

Go's rule for ``latest``: a constraint that names no version (``*``, ``x``, ``latest``; a
dependency or root written without a version is ``*``, see :attr:`Constraint.names_no_version`)
picks among a component's releases that are not pre-releases, and — only when the component has
no such release — among its pre-releases (a catalog's pseudo-versions ``0.0.0-<time>-<hex>`` are
pre-releases). Whether a component has one is a fact about all its candidates, so
:meth:`Constraint.allows_version` takes it as ``only_prereleases``; the resolver supplies it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import semver

from agentforge.errors import ConstraintError

__all__ = [
    "CandidateLike",
    "Comparator",
    "Constraint",
    "ConstraintKind",
    "TagVersion",
    "is_stable_version",
    "latest_version",
    "parse_constraint",
    "parse_version",
    "sort_key",
    "version_from_tag",
]

ConstraintKind = Literal["range", "latest", "branch", "tag", "commit"]
Operator = Literal[">=", ">", "<=", "<", "=", "!="]


class CandidateLike(Protocol):
    """What a constraint needs to know about a concrete candidate (a commit of a component)."""

    @property
    def version(self) -> str: ...
    @property
    def commit(self) -> str: ...
    @property
    def tags(self) -> frozenset[str]: ...
    @property
    def branches(self) -> frozenset[str]: ...
    @property
    def is_release(self) -> bool: ...


# --------------------------------------------------------------------------------------------
# Versions


def parse_version(text: str, *, where: str | None = None) -> semver.Version:
    """Parse strict SemVer 2.0 (``1.2.3``, ``1.2.3-rc.1+build``); no ``v`` prefix, no partials.

    ``where`` names the file/field/component the text came from, for the error message.
    """
    if not isinstance(text, str):
        raise ConstraintError(f"version {text!r}{_where(where)} is not a string")
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError) as exc:
        hint = None
        if text[:1] in ("v", "V") and _is_semver(text[1:]):
            hint = f"write {text[1:]} (a leading 'v' belongs in tag names only)"
        raise ConstraintError(
            f"version {text!r}{_where(where)} is not a valid semantic version (MAJOR.MINOR.PATCH)",
            hint=hint or "use MAJOR.MINOR.PATCH, e.g. 2.1.0 or 2.1.0-beta.1",
        ) from exc


def _is_semver(text: str) -> bool:
    return semver.Version.is_valid(text)


def _where(where: str | None) -> str:
    return f" (in {where})" if where else ""


@functools.lru_cache(maxsize=65536)
def sort_key(version_text: str) -> tuple[int, tuple[Any, ...] | str]:
    """Total order over version strings: valid versions by SemVer precedence (build ignored),
    above every unparseable string (ordered by text) so sorting mixed data never raises.

    The key is a plain tuple (compared in C, not through ``semver.Version.__lt__``): numbers,
    then 1 for a release or 0 plus the pre-release identifiers (numeric ones below alphanumeric
    ones, shorter below longer: SemVer §11). Cached: an index repeats a few version strings
    across thousands of candidates."""
    try:
        v = semver.Version.parse(version_text)
    except (ValueError, TypeError):
        return (0, str(version_text))
    if v.prerelease is None:
        return (1, (v.major, v.minor, v.patch, 1))
    idents = tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in str(v.prerelease).split("."))
    return (1, (v.major, v.minor, v.patch, 0, idents))


def latest_version(versions: Iterable[str]) -> str | None:
    """What ``latest`` picks among released version strings (Go's rule, FORMATS §3): the highest
    that is not a pre-release, else the highest pre-release (e.g. a pseudo-version), else None.
    Strings that are not versions are never picked."""
    best: tuple[bool, tuple[int, tuple[Any, ...] | str]] | None = None
    found: str | None = None
    for text in versions:
        v = _parse_or_none(text)
        if v is None:
            continue
        rank = (v.prerelease is None, sort_key(text))
        if best is None or rank > best:
            best, found = rank, text
    return found


def is_stable_version(text: str) -> bool:
    """A version that is not a pre-release (text that is no version is not one either)."""
    v = _parse_or_none(text)
    return v is not None and v.prerelease is None


def _parse_or_none(text: str) -> semver.Version | None:
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


class TagVersion(NamedTuple):
    """What a Git tag says: ``component`` is None for a repository-wide release tag
    (``v2.1.0``/``2.1.0``) and the component's name for a component tag (``name@2.1.0``,
    ``name/v2.1.0``)."""

    component: str | None
    version: semver.Version

    @property
    def is_repository_wide(self) -> bool:
        return self.component is None


_COMPONENT_NAME = r"[a-z0-9][a-z0-9._-]{0,99}"
_COMPONENT_TAG = re.compile(rf"^(?P<name>{_COMPONENT_NAME})(?:@v?|/v?)(?P<version>[0-9].*)$")


def version_from_tag(tag: str, component: str | None = None) -> TagVersion | None:
    """Read a release out of a tag name, or None for tags that are not releases.

    Shapes: ``vX.Y.Z`` / ``X.Y.Z`` (repository-wide), ``<component>@X.Y.Z`` and
    ``<component>/vX.Y.Z`` (one component; ``@v`` and ``/`` without ``v`` are tolerated).
    A ``refs/tags/`` prefix is stripped. With ``component`` given, a component tag of another
    component yields None, so callers can ask "which tags release *this* component?" directly;
    repository-wide tags are returned either way (``component`` None in the result).
    """
    name = tag.removeprefix("refs/tags/")
    bare = name[1:] if name[:1] == "v" else name
    if _is_semver(bare):
        return TagVersion(None, semver.Version.parse(bare))
    m = _COMPONENT_TAG.match(name)
    if m is None or not _is_semver(m.group("version")):
        return None
    if component is not None and m.group("name") != component:
        return None
    return TagVersion(m.group("name"), semver.Version.parse(m.group("version")))


# --------------------------------------------------------------------------------------------
# Constraints


@dataclass(frozen=True, slots=True)
class Comparator:
    """One primitive comparison against a full version."""

    op: Operator
    version: semver.Version

    def allows(self, v: semver.Version) -> bool:
        c = v.compare(self.version)
        if self.op == ">=":
            return c >= 0
        if self.op == ">":
            return c > 0
        if self.op == "<=":
            return c <= 0
        if self.op == "<":
            return c < 0
        if self.op == "=":
            return c == 0
        return c != 0

    def __str__(self) -> str:
        return f"{self.op}{self.version}"


@dataclass(frozen=True)
class Constraint:
    """A parsed constraint. ``text`` is exactly what was written; ``kind`` says how it matches."""

    text: str
    kind: ConstraintKind
    # For range kinds: OR of AND-sets. An empty AND-set means "any release".
    alternatives: tuple[tuple[Comparator, ...], ...] = field(default=(), repr=False)
    # For branch/tag/commit kinds: the branch name, tag name or lower-case commit id.
    ref: str | None = None
    declared_by: str | None = field(default=None, compare=False)

    @property
    def is_range(self) -> bool:
        """True for kinds that select among released versions (``range`` and ``latest``)."""
        return self.kind in ("range", "latest")

    @property
    def names_no_version(self) -> bool:
        """True for ``latest`` and for ranges with an alternative of no comparator (``*``, ``x``,
        ``>=*``, ``* || ^2``): they allow any release, and so (Go's rule, FORMATS §3) the
        pre-releases of a component that has no other release. ``^0.0``, ``>=0.0.0`` name one."""
        return self.kind == "latest" or (self.kind == "range" and any(not alt for alt in self.alternatives))

    @property
    def names_prerelease(self) -> bool:
        """True when some comparator names a pre-release (so some pre-releases may match)."""
        return any(c.version.prerelease for alt in self.alternatives for c in alt)

    def allows_version(self, v: semver.Version, *, only_prereleases: bool = False) -> bool:
        """Pure version check. Ref kinds (branch/tag/commit) say nothing about versions: False.

        ``only_prereleases``: the component has no release that is not a pre-release; then a
        constraint that names no version (:attr:`names_no_version`) allows its pre-releases.
        ``latest`` is only "some release" here: the resolver reads it as the highest one.
        """
        if only_prereleases and self.names_no_version:
            return True
        if self.kind == "latest":
            return v.prerelease is None
        if self.kind != "range":
            return False
        return any(_set_allows(alt, v) for alt in self.alternatives)

    def matches(self, candidate: CandidateLike, *, only_prereleases: bool = False) -> bool:
        """Does this concrete candidate satisfy the constraint? (``only_prereleases``: see
        :meth:`allows_version`.)"""
        if self.kind == "branch":
            return self.ref in candidate.branches
        if self.kind == "tag":
            return self.ref in candidate.tags
        if self.kind == "commit":
            return candidate.commit.lower() == self.ref
        if not candidate.is_release:
            return False
        try:
            v = semver.Version.parse(candidate.version)
        except (ValueError, TypeError):
            return False
        return self.allows_version(v, only_prereleases=only_prereleases)

    def __str__(self) -> str:
        return self.text


def _set_allows(comparators: tuple[Comparator, ...], v: semver.Version) -> bool:
    if not all(c.allows(v) for c in comparators):
        return False
    if v.prerelease is None:
        return True
    # npm rule: a pre-release only satisfies a set that names a pre-release of the same X.Y.Z.
    return any(
        c.version.prerelease is not None
        and (c.version.major, c.version.minor, c.version.patch) == (v.major, v.minor, v.patch)
        for c in comparators
    )


_HEX40 = re.compile(r"^[0-9a-fA-F]{40}$")
# A bare branch name: starts with a letter or underscore (so it can never be read as a version).
_BARE_BRANCH = re.compile(r"^[A-Za-z_][A-Za-z0-9._/+-]*$")
_WILDCARD = frozenset({"*", "x", "X"})
_WILDCARD_START = re.compile(r"^[xX](?:\.|$)")  # "x", "x.x": wildcards, not branch names
_NUM = r"(?:0|[1-9]\d*)"
_PART = rf"(?:{_NUM}|[xX*])"
_PARTIAL = re.compile(
    rf"^(?P<major>{_PART})(?:\.(?P<minor>{_PART})(?:\.(?P<patch>{_PART})"
    r"(?P<rest>[-+][0-9A-Za-z.+-]*)?)?)?$"
)
_TOKEN = re.compile(r"(?P<op>>=|<=|!=|==|>|<|=|\^|~)?\s*(?P<ver>[^\s,<>=!^~|]*)")


def parse_constraint(text: str, *, declared_by: str | None = None) -> Constraint:
    """Parse constraint text; errors are :class:`ConstraintError` naming the text and who declared it."""
    if not isinstance(text, str):
        raise ConstraintError(
            f"constraint {text!r}{_declared(declared_by)} is not a string",
            hint='quote the version in YAML, e.g. version: "^2.1.0"',
            details={"constraint": repr(text), "declared_by": declared_by},
        )
    try:
        parsed = _parse_cached(text)
    except ValueError:  # e.g. a number longer than int() accepts
        raise ConstraintError(
            f"invalid version constraint {text!r}{_declared(declared_by)}: a number in it is out of range",
            details={"constraint": text, "declared_by": declared_by},
        ) from None
    except _Invalid as exc:
        raise ConstraintError(
            f"invalid version constraint {text!r}{_declared(declared_by)}: {exc.reason}",
            hint=exc.hint
            or "use a version (2.1.0), a range (^2.1, ~2.1.0, >=2 <3, 2.*), latest, "
            "branch:NAME, tag:NAME or commit:<40-hex>",
            details={"constraint": text, "declared_by": declared_by},
        ) from None
    if declared_by is None:
        return parsed
    return Constraint(parsed.text, parsed.kind, parsed.alternatives, parsed.ref, declared_by)


def _declared(declared_by: str | None) -> str:
    return f" declared by {declared_by}" if declared_by else ""


class _Invalid(Exception):
    def __init__(self, reason: str, hint: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


# Parsing is pure, and large graphs repeat the same few constraint texts thousands of times.
@functools.lru_cache(maxsize=4096)
def _parse_cached(text: str) -> Constraint:
    s = text.strip()
    if not s:
        raise _Invalid("it is empty", 'write "*" for any version or "latest" for the newest release')
    if s == "latest":
        return Constraint(text, "latest")
    for prefix, kind in (("branch:", "branch"), ("tag:", "tag")):
        if s.startswith(prefix):
            name = s[len(prefix) :].strip()
            _check_ref_name(name, kind)
            return Constraint(text, kind, ref=name)  # type: ignore[arg-type]
    if s.startswith(("commit:", "@")):
        sha = s.removeprefix("commit:").removeprefix("@").strip()
        if not _HEX40.match(sha):
            raise _Invalid("a commit must be a full 40-hex-digit id", "use commit:<40-hex> or @<40-hex>")
        return Constraint(text, "commit", ref=sha.lower())
    if s[:1] in ("v", "V") and _is_semver(s[1:]):
        raise _Invalid(
            "a leading 'v' is not part of a version",
            f"write {s[1:]} for that version, or tag:{s} for that exact tag",
        )
    if _BARE_BRANCH.match(s) and not _WILDCARD_START.match(s):
        _check_ref_name(s, "branch")
        return Constraint(text, "branch", ref=s)
    return Constraint(text, "range", alternatives=_parse_range(s))


def _check_ref_name(name: str, kind: str) -> None:
    """The parts of git-check-ref-format that matter for names people type."""
    bad = (
        not name
        or any(ch.isspace() or ch in "~^:?*[\\" or ord(ch) < 32 for ch in name)
        or ".." in name
        or "//" in name
        or "@{" in name
        or name.startswith(("/", ".", "-"))
        or name.endswith(("/", ".", ".lock"))
    )
    if bad:
        raise _Invalid(f"{name!r} is not a valid {kind} name")


def _parse_range(s: str) -> tuple[tuple[Comparator, ...], ...]:
    alternatives = []
    for alt in s.split("||"):
        alt = alt.strip()
        if not alt:
            raise _Invalid("an alternative around '||' is empty")
        alternatives.append(_parse_and_set(alt))
    return tuple(alternatives)


def _parse_and_set(alt: str) -> tuple[Comparator, ...]:
    comparators: list[Comparator] = []
    pos = 0
    n = len(alt)
    while pos < n:
        # Separators between comparators: whitespace and/or one comma.
        while pos < n and (alt[pos].isspace() or alt[pos] == ","):
            pos += 1
        if pos >= n:
            break
        m = _TOKEN.match(alt, pos)
        if m is None or m.end() == pos or not m.group("ver"):
            raise _Invalid(f"cannot read a version at {alt[pos:]!r}")
        op = m.group("op") or ""
        comparators.extend(_desugar("=" if op == "==" else op, m.group("ver")))
        pos = m.end()
        if pos < n and not (alt[pos].isspace() or alt[pos] == ","):
            raise _Invalid(f"unexpected {alt[pos:]!r}")
    if alt.rstrip().endswith(","):
        raise _Invalid("it ends with a comma")
    return tuple(comparators)


def _v(major: int, minor: int, patch: int) -> semver.Version:
    return semver.Version(major, minor, patch)


def _desugar(op: str, ver: str) -> list[Comparator]:
    """Turn one ``<op><partial version>`` into primitive comparators (npm semantics)."""
    m = _PARTIAL.match(ver)
    if m is None:
        raise _Invalid(f"{ver!r} is not a version, a partial version (2, 2.1) or a wildcard (2.*, 2.1.x, *)")
    raw = [m.group("major"), m.group("minor"), m.group("patch")]
    parts: list[int | None] = []
    seen_wild = False
    for p in raw:
        if p is None or p in _WILDCARD:
            seen_wild = True
            parts.append(None)
        elif seen_wild:
            raise _Invalid(f"{ver!r} has a number after a wildcard")
        else:
            parts.append(int(p))
    major, minor, patch = parts
    rest = m.group("rest")

    if patch is not None:  # a full version, maybe with pre-release/build
        assert major is not None and minor is not None
        full = f"{major}.{minor}.{patch}{rest or ''}"
        if not _is_semver(full):
            raise _Invalid(f"{ver!r} is not a valid semantic version")
        v = semver.Version.parse(full).replace(build=None)
        if op in ("", "="):
            return [Comparator("=", v)]
        if op in (">=", ">", "<=", "<", "!="):
            return [Comparator(op, v)]  # type: ignore[arg-type]
        if op == "^":
            if major > 0:
                upper = _v(major + 1, 0, 0)
            elif minor > 0:
                upper = _v(0, minor + 1, 0)
            else:
                upper = _v(0, 0, patch + 1)
            return [Comparator(">=", v), Comparator("<", upper)]
        # "~"
        return [Comparator(">=", v), Comparator("<", _v(major, minor + 1, 0))]

    if rest:
        raise _Invalid(f"{ver!r}: a pre-release or build needs a full MAJOR.MINOR.PATCH version")
    if op == "!=":
        raise _Invalid(f"'!=' needs a full version, not {ver!r}")
    if major is None:  # "*", "x", ">=*" …: any release
        if op in (">", "<"):
            raise _Invalid(f"{op}{ver} can never match")
        return []
    if minor is None:  # "2", "2.*", "^2", ">2" …
        lower, upper = _v(major, 0, 0), _v(major + 1, 0, 0)
    else:  # "2.1", "2.1.x", "~2.1" …
        lower, upper = _v(major, minor, 0), _v(major, minor + 1, 0)
        if op == "^" and major > 0:
            upper = _v(major + 1, 0, 0)
    if op in ("", "=", "^", "~"):
        return [Comparator(">=", lower), Comparator("<", upper)]
    if op == ">=":
        return [Comparator(">=", lower)]
    if op == ">":
        return [Comparator(">=", upper)]
    if op == "<":
        return [Comparator("<", lower)]
    # "<="
    return [Comparator("<", upper)]
