"""Deep merge and dotted-path access, the two operations behind settings and overrides.

FORMATS.md §4: maps merge deeply; lists and scalars replace. ``--set KEY=VALUE`` addresses
a value by path, with list indexes written ``a.b[2].c`` or ``a.b.2.c``. Keys that contain dots
(component names may) are written quoted or in brackets: ``components."crm.lookup".timeout``
or ``components[crm.lookup].timeout``.

Path segments, precisely:

* ``name`` — a mapping key (any characters but ``.``, ``[``, ``]``, quotes);
* ``"any.text"`` / ``'any.text'`` — a mapping key, verbatim;
* ``[3]`` — a list index (an error on a mapping); ``[key]``, ``["key"]`` — a mapping key;
* ``3`` after a dot — a list index when the container is a list, else the key ``"3"``.

``set_path`` creates missing intermediate containers: a list when the next segment is a
bracketed index, a mapping otherwise. An index may equal the list's length (append); one
past that is an error, so a typo cannot create a sparse list.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from agentforge.core.yamlio import load_document
from agentforge.errors import ConfigError, DocumentError

__all__ = ["deep_merge", "get_path", "parse_path", "parse_set_arguments", "set_path", "unset_path"]

SegmentKind = Literal["key", "index", "auto"]
Segment = tuple[SegmentKind, str | int]

_MISSING: Any = object()
_BARE_FORBIDDEN = set(".[]\"'")


def _path_error(path: str, message: str) -> ConfigError:
    return ConfigError(f"path {path!r}: {message}", hint='Write paths like a.b[2].c, a.b.2.c or a."dotted.key".c')


def parse_path(path: str) -> list[Segment]:
    """Split a path into segments (see module doc); ConfigError naming the path when malformed."""
    if not isinstance(path, str) or not path:
        raise _path_error(str(path), "is empty")
    segments: list[Segment] = []
    i = 0
    n = len(path)
    expect_segment = True  # at the start or right after a '.'
    while i < n:
        char = path[i]
        if char == "[":
            end = path.find("]", i + 1)
            if end == -1:
                raise _path_error(path, f"unclosed '[' at position {i}")
            inner = path[i + 1 : end]
            if inner.isdigit() and inner.isascii():
                segments.append(("index", int(inner)))
            elif len(inner) >= 2 and inner[0] == inner[-1] and inner[0] in "\"'":
                segments.append(("key", inner[1:-1]))
            elif inner and not (set(inner) & set("[]\"'")):
                if inner.startswith("-") and inner[1:].isdigit():
                    raise _path_error(path, "negative list indexes are not supported")
                segments.append(("key", inner))
            else:
                raise _path_error(path, f"bad segment [{inner}]")
            i = end + 1
            expect_segment = False
            continue
        if char == ".":
            if expect_segment:
                raise _path_error(path, f"empty segment at position {i}")
            expect_segment = True
            i += 1
            continue
        if not expect_segment:
            raise _path_error(path, f"expected '.' or '[' at position {i}")
        if char in "\"'":
            end = path.find(char, i + 1)
            if end == -1:
                raise _path_error(path, f"unclosed quote at position {i}")
            segments.append(("key", path[i + 1 : end]))
            i = end + 1
        else:
            start = i
            while i < n and path[i] not in _BARE_FORBIDDEN:
                i += 1
            word = path[start:i]
            if not word:
                raise _path_error(path, f"unexpected {path[i]!r} at position {i}")
            segments.append(("auto", word) if word.isdigit() and word.isascii() else ("key", word))
        expect_segment = False
    if expect_segment:
        raise _path_error(path, "ends with '.'")
    return segments


def _describe(segments: list[Segment], upto: int) -> str:
    out = ""
    for kind, value in segments[:upto]:
        if kind == "index":
            out += f"[{value}]"
        else:
            text = str(value)
            if _BARE_FORBIDDEN & set(text):
                text = f'"{text}"'
            out += f".{text}" if out else text
    return out or "<root>"


def _list_index(path: str, segments: list[Segment], at: int, container: list[Any]) -> int:
    kind, value = segments[at]
    if kind == "key":
        raise _path_error(path, f"{_describe(segments, at)} is a list; {value!r} is not an index")
    return int(value)


def _step(container: Any, path: str, segments: list[Segment], at: int) -> tuple[Any, bool]:
    """(child, found) of ``container`` for segment ``at``; type mismatches raise."""
    kind, value = segments[at]
    if isinstance(container, dict):
        if kind == "index":
            raise _path_error(path, f"{_describe(segments, at)} is a mapping, not a list")
        key = str(value)
        return (container[key], True) if key in container else (None, False)
    if isinstance(container, list):
        index = _list_index(path, segments, at, container)
        return (container[index], True) if index < len(container) else (None, False)
    raise _path_error(path, f"{_describe(segments, at)} is a {type(container).__name__}, not a mapping or list")


def get_path(obj: Any, path: str, default: Any = _MISSING) -> Any:
    """The value at ``path``; ``default`` when absent (ConfigError naming the path without one)."""
    segments = parse_path(path)
    current = obj
    for at in range(len(segments)):
        current, found = _step(current, path, segments, at)
        if not found:
            if default is not _MISSING:
                return default
            raise _path_error(path, f"{_describe(segments, at + 1)} does not exist")
    return current


def set_path(obj: Any, path: str, value: Any) -> Any:
    """Set ``path`` to ``value`` in place (creating missing containers) and return ``obj``."""
    segments = parse_path(path)
    current = obj
    for at in range(len(segments)):
        key = segments[at][1]
        last = at == len(segments) - 1
        child, found = _step(current, path, segments, at)  # validates the container type
        if last:
            new_value = value
        elif found and isinstance(child, dict | list):
            current = child
            continue
        elif found and child is not None:
            raise _path_error(path, f"{_describe(segments, at + 1)} is a {type(child).__name__}; cannot go below it")
        else:
            new_value = [] if segments[at + 1][0] == "index" else {}
        if isinstance(current, dict):
            current[str(key)] = new_value
        else:
            index = _list_index(path, segments, at, current)
            if index < len(current):
                current[index] = new_value
            elif index == len(current):
                current.append(new_value)
            else:
                raise _path_error(
                    path, f"index {index} is past the end of {_describe(segments, at)} (length {len(current)})"
                )
        current = new_value
    return obj


def unset_path(obj: Any, path: str) -> bool:
    """Remove the value at ``path``; True when something was removed, False when it was absent."""
    segments = parse_path(path)
    current = obj
    for at in range(len(segments) - 1):
        current, found = _step(current, path, segments, at)
        if not found:
            return False
    _, found = _step(current, path, segments, len(segments) - 1)
    if not found:
        return False
    key = segments[-1][1]
    if isinstance(current, dict):
        del current[str(key)]
    else:
        del current[int(key)]
    return True


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any] | None) -> dict[str, Any]:
    """A new mapping: ``override`` deep-merged over ``base``; neither input is mutated.

    Mappings merge key by key; lists, scalars and ``None`` in ``override`` replace what
    ``base`` had (an explicit ``null`` is a value, not "no override"). The result shares no
    mutable object with the inputs.
    """
    result: dict[str, Any] = {key: copy.deepcopy(value) for key, value in base.items()}
    if override is None:
        return result
    for key, value in override.items():
        existing = result.get(key)
        if isinstance(existing, Mapping) and isinstance(value, Mapping):
            result[key] = deep_merge(existing, value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def parse_set_arguments(arguments: Iterable[str]) -> list[tuple[str, Any]]:
    """``["KEY=VALUE", ...]`` → ``[(KEY, value), ...]``, the value read as (safe) YAML.

    ``a.b=3`` gives ``3``, ``a=[1,2]`` a list, ``a='3'`` the string ``"3"``; ``a=`` the empty
    string. Errors name the argument's key, never its value (it may be a secret).
    """
    parsed: list[tuple[str, Any]] = []
    for argument in arguments:
        key, sep, text = argument.partition("=")
        if not sep or not key:
            shown = key if sep else "<no '='>"
            raise ConfigError(f"--set {shown}: expected KEY=VALUE", hint="For example --set llm.model=small-model")
        parse_path(key)
        if text == "":
            value: Any = ""
        else:
            try:
                value = load_document(text, source=f"--set {key}")
            except DocumentError as exc:
                raise ConfigError(
                    exc.message, hint="Quote the value if it is meant as a plain string: --set key='text: here'"
                ) from None
        parsed.append((key, value))
    return parsed
