"""Field-level diff and three-way merge of component definitions (pure: no I/O).

A definition is plain JSON-like data. Both operations walk mappings key by key; anything
else (scalars, ``null`` and lists) is a leaf compared as a whole. Lists are leaves on
purpose: FORMATS.md §4 says lists replace rather than merge, and merging list items by index
would silently mis-pair items after an insertion upstream.

Paths are tuples of keys internally (so keys containing dots need no escaping) and are
rendered for people and history rows in the ``deepmerge`` path syntax (``a."dotted.key".b``).

Three-way merge, per node: equal sides → that value; one side unchanged from the base →
the other side; both mappings → recurse per key; otherwise a :class:`FieldConflict` that
keeps *both* values, with the local ("ours") value left in the merged result, so nothing a
user changed is ever dropped silently.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "MISSING",
    "FieldChange",
    "FieldConflict",
    "MergeResult",
    "diff_definitions",
    "has_conflict_markers",
    "parse_rendered_path",
    "render_path",
    "three_way_merge",
]

Path = tuple[str, ...]


class _Missing:
    """The absence of a key (distinct from an explicit ``null``)."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Missing:
        return self


MISSING: Any = _Missing()

ChangeKind = Literal["CREATE", "UPDATE", "DELETE"]

_BARE_FORBIDDEN = set(".[]\"' ")


def render_path(path: Path) -> str:
    """``("spec", "crm.lookup", "x")`` → ``spec."crm.lookup".x`` (readable by ``deepmerge.parse_path``)."""
    parts: list[str] = []
    for key in path:
        if not key or _BARE_FORBIDDEN & set(key):
            quote = "'" if '"' in key else '"'
            parts.append(f"{quote}{key}{quote}")
        else:
            parts.append(key)
    return ".".join(parts) if parts else "<root>"


def parse_rendered_path(text: str) -> Path:
    """The inverse of :func:`render_path` for mapping-only paths (what this module produces)."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] in "\"'":
            end = text.index(text[i], i + 1)
            out.append(text[i + 1 : end])
            i = end + 1
        else:
            end = text.find(".", i)
            end = len(text) if end == -1 else end
            out.append(text[i:end])
            i = end
        if i < len(text) and text[i] == ".":
            i += 1
    return tuple(out)


@dataclass(frozen=True)
class FieldChange:
    """One changed leaf (or subtree that appeared/disappeared) between two definitions."""

    path: Path
    change_type: ChangeKind
    old: Any
    new: Any

    @property
    def field_path(self) -> str:
        return render_path(self.path)


@dataclass(frozen=True)
class FieldConflict:
    """Both sides changed ``path`` differently from the base; every value is kept."""

    path: Path
    base: Any
    ours: Any
    theirs: Any

    @property
    def field_path(self) -> str:
        return render_path(self.path)

    def to_json(self) -> dict[str, Any]:
        def side(value: Any) -> dict[str, Any]:
            return {"present": False} if value is MISSING else {"present": True, "value": value}

        return {"path": list(self.path), "base": side(self.base), "ours": side(self.ours),
                "theirs": side(self.theirs)}

    @staticmethod
    def from_json(data: Mapping[str, Any]) -> FieldConflict:
        def side(value: Mapping[str, Any]) -> Any:
            return value.get("value") if value.get("present") else MISSING

        return FieldConflict(tuple(data["path"]), side(data["base"]), side(data["ours"]), side(data["theirs"]))


@dataclass
class MergeResult:
    merged: dict[str, Any]
    conflicts: list[FieldConflict] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.conflicts


def diff_definitions(old: Mapping[str, Any] | None, new: Mapping[str, Any] | None) -> list[FieldChange]:
    """Field-level changes from ``old`` to ``new``, sorted by path.

    A key present on one side only is one CREATE/DELETE of its whole value (not one row per
    leaf below it): that is what the user did, and what reverting must undo.
    """
    changes: list[FieldChange] = []
    _diff(dict(old or {}), dict(new or {}), (), changes)
    return sorted(changes, key=lambda c: c.path)


def _diff(old: Any, new: Any, path: Path, out: list[FieldChange]) -> None:
    if old is MISSING and new is MISSING:
        return
    if old is MISSING:
        out.append(FieldChange(path, "CREATE", None, copy.deepcopy(new)))
    elif new is MISSING:
        out.append(FieldChange(path, "DELETE", copy.deepcopy(old), None))
    elif isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _diff(old.get(key, MISSING), new.get(key, MISSING), (*path, key), out)
    elif not _same_deep(old, new):
        out.append(FieldChange(path, "UPDATE", copy.deepcopy(old), copy.deepcopy(new)))


def _same(a: Any, b: Any) -> bool:
    # JSON semantics: 1 and 1.0 are equal numbers but True is not 1.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else bool(a == b)


def three_way_merge(base: Mapping[str, Any] | None, ours: Mapping[str, Any] | None,
                    theirs: Mapping[str, Any] | None) -> MergeResult:
    """Merge local (``ours``) and upstream (``theirs``) changes made since ``base``.

    The inputs are not mutated. On a conflict the merged document holds the local value and
    the conflict lists base, local and upstream values.
    """
    conflicts: list[FieldConflict] = []
    merged = _merge(dict(base or {}), dict(ours or {}), dict(theirs or {}), (), conflicts)
    assert isinstance(merged, dict)
    return MergeResult(merged=merged, conflicts=sorted(conflicts, key=lambda c: c.path))


def _merge(base: Any, ours: Any, theirs: Any, path: Path, conflicts: list[FieldConflict]) -> Any:
    if _same_or_missing(ours, theirs):
        return copy.deepcopy(ours)
    if _same_or_missing(ours, base):
        return copy.deepcopy(theirs)
    if _same_or_missing(theirs, base):
        return copy.deepcopy(ours)
    if isinstance(ours, dict) and isinstance(theirs, dict):
        # Both sides hold a mapping here: merge key by key (a base that was no mapping, or
        # absent, counts as empty, so keys both sides added differently conflict one by one).
        below = base if isinstance(base, dict) else {}
        out: dict[str, Any] = {}
        for key in sorted(set(below) | set(ours) | set(theirs)):
            value = _merge(below.get(key, MISSING), ours.get(key, MISSING), theirs.get(key, MISSING),
                           (*path, key), conflicts)
            if value is not MISSING:
                out[key] = value
        return out
    conflicts.append(FieldConflict(path, copy.deepcopy(base), copy.deepcopy(ours), copy.deepcopy(theirs)))
    return copy.deepcopy(ours)


def _same_or_missing(a: Any, b: Any) -> bool:
    if a is MISSING or b is MISSING:
        return a is b
    return _same_deep(a, b)


def _same_deep(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_deep(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same_deep(x, y) for x, y in zip(a, b, strict=True))
    return _same(a, b)


_MARKERS = ("<<<<<<< ", "=======", ">>>>>>> ")


def has_conflict_markers(text: str) -> bool:
    """True when ``text`` holds a git conflict block (start, separator and end lines)."""
    lines = text.splitlines()
    return all(any(line.startswith(marker) or line == marker.strip() for line in lines) for marker in _MARKERS)
