"""Safe reading and deterministic writing of YAML/JSON documents.

Every document AgentForge reads (manifests, components, compositions, lock files, ``--set``
values) comes through :func:`load_document`. It is the one place that enforces the limits of
FORMATS.md: a document over 1 MiB, non-UTF-8 bytes, NUL bytes, an alias bomb or absurd nesting
is refused with a :class:`~agentforge.errors.DocumentError` whose message starts with the
source path, before any large object is built.

The result is always plain JSON data (``dict`` with ``str`` keys, ``list``, ``str``, ``int``,
``float``, ``bool``, ``None``), so it can be hashed with :func:`canonical_json` and stored in a
JSON column as it is. YAML-only types are mapped or refused on the way in:

* timestamps (``2024-01-01``) stay the strings they were written as (they are not JSON);
* scalar mapping keys that are not strings (``200:``, ``true:``, ``null:``) become their JSON
  text (``"200"``, ``"true"``, ``"null"``), since JSON object keys are strings;
* ``!!binary``, ``!!set``, ``.nan``/``.inf`` and non-scalar keys are refused;
* duplicate keys in one mapping are refused (PyYAML would silently keep the last one);
* aliases are expanded into independent copies, so mutating one place never changes another.
"""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    CollectionEndEvent,
    DocumentStartEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceStartEvent,
)
from yaml.nodes import MappingNode, ScalarNode

from agentforge.errors import DocumentError

__all__ = [
    "MAX_ALIAS_EXPANSION",
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "canonical_json",
    "dump_yaml",
    "load_document",
    "load_json_document",
]

#: Largest document accepted, in encoded bytes (FORMATS.md: "a document over 1 MiB is rejected").
MAX_DOCUMENT_BYTES = 1024 * 1024
#: Deepest nesting of mappings/sequences accepted (the top-level mapping is depth 1).
MAX_DEPTH = 64
#: Most nodes that aliases may add by expansion. A billion-laughs document trips this after a
#: few levels, while the pre-scan has built nothing but a table of subtree sizes.
MAX_ALIAS_EXPANSION = 100_000

_BaseLoader: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ForgeLoader(_BaseLoader):  # type: ignore[misc]
    """Safe loader that refuses duplicate keys and keeps timestamps as strings."""

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    first = seen.get(key)
                except TypeError:
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found duplicate key {key!r} (first defined on line {first.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)

    def construct_yaml_timestamp_as_text(self, node: Any) -> Any:
        return self.construct_scalar(node)


_ForgeLoader.add_constructor("tag:yaml.org,2002:timestamp", _ForgeLoader.construct_yaml_timestamp_as_text)


class _DocumentLimitError(Exception):
    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _where(source: str, mark: Any) -> str:
    if mark is None:
        return source
    return f"{source}:{mark.line + 1}:{mark.column + 1}"


def _decode(data: bytes | str, source: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> str:
    if isinstance(data, str):
        raw = data.encode("utf-8", errors="surrogatepass")
        text = data
    elif isinstance(data, bytes | bytearray | memoryview):
        raw = bytes(data)
        text = ""
    else:
        raise DocumentError(f"{source}: expected text or bytes, got {type(data).__name__}")
    if len(raw) > max_bytes:
        raise DocumentError(
            f"{source}: document is {len(raw)} bytes, larger than the {max_bytes // (1024 * 1024)} MiB limit",
            hint="Split the document or move large content (templates, data) into separate files.",
        )
    if b"\x00" in raw:
        raise DocumentError(
            f"{source}: document contains a NUL byte (binary or UTF-16 file?)", hint="Save the file as UTF-8 text."
        )
    if not text:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise DocumentError(
                f"{source}: document is not valid UTF-8 (byte offset {exc.start})",
                hint="Save the file as UTF-8 text.",
            ) from None
    else:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise DocumentError(f"{source}: document is not valid UTF-8 (lone surrogate)") from None
    if text.startswith("\ufeff"):
        text = text[1:]
    return text


def _prescan(text: str) -> None:
    """Walk the event stream (no objects built) and refuse bombs, deep nesting, many documents.

    For each anchor the size and height of its subtree is recorded when it closes, so an alias
    costs O(1) to account for. An alias to an anchor that is still open (a recursive structure)
    is not in the table and is refused: it could never be JSON.
    """
    loader = _ForgeLoader(text)
    try:
        # Per open collection: [expanded size, height of tallest child, anchor]
        stack: list[list[Any]] = []
        anchors: dict[str, tuple[int, int]] = {}
        expanded = 0
        documents = 0

        def close(size: int, height: int, anchor: str | None) -> None:
            if anchor is not None:
                anchors[anchor] = (size, height)
            if stack:
                stack[-1][0] += size
                stack[-1][1] = max(stack[-1][1], height)

        while loader.check_event():
            event = loader.get_event()
            if isinstance(event, DocumentStartEvent):
                documents += 1
                if documents > 1:
                    raise _DocumentLimitError("expected a single document, found several", event.start_mark)
            elif isinstance(event, SequenceStartEvent | MappingStartEvent):
                stack.append([1, 0, event.anchor])
                if len(stack) > MAX_DEPTH:
                    raise _DocumentLimitError(f"nesting deeper than {MAX_DEPTH} levels", event.start_mark)
            elif isinstance(event, CollectionEndEvent):
                size, child_height, anchor = stack.pop()
                close(size, child_height + 1, anchor)
            elif isinstance(event, ScalarEvent):
                close(1, 0, event.anchor)
            elif isinstance(event, AliasEvent):
                if event.anchor not in anchors:
                    raise _DocumentLimitError(
                        f"alias *{event.anchor} refers to an undefined or enclosing (recursive) anchor",
                        event.start_mark,
                    )
                size, height = anchors[event.anchor]
                expanded += size
                if expanded > MAX_ALIAS_EXPANSION:
                    raise _DocumentLimitError(
                        f"aliases expand to more than {MAX_ALIAS_EXPANSION} nodes (alias bomb?)",
                        event.start_mark,
                    )
                if len(stack) + height > MAX_DEPTH:
                    raise _DocumentLimitError(
                        f"nesting deeper than {MAX_DEPTH} levels once aliases are expanded", event.start_mark
                    )
                close(size, height, None)
    finally:
        loader.dispose()


def _to_json_key(key: Any, path: str) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, bool | int) or (isinstance(key, float) and math.isfinite(key)):
        return json.dumps(key)
    raise _DocumentLimitError(f"{path or '<root>'}: mapping key {key!r} is not a string or simple scalar")


def _normalise(value: Any, path: str, depth: int) -> Any:
    """Copy ``value`` into plain JSON data, refusing what JSON cannot hold."""
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _DocumentLimitError(f"nesting deeper than {MAX_DEPTH} levels")
        out: dict[str, Any] = {}
        for key, item in value.items():
            text_key = _to_json_key(key, path)
            if text_key in out:
                raise _DocumentLimitError(f"{path or '<root>'}: duplicate key {text_key!r}")
            out[text_key] = _normalise(item, f"{path}.{text_key}" if path else text_key, depth + 1)
        return out
    if isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            raise _DocumentLimitError(f"nesting deeper than {MAX_DEPTH} levels")
        return [_normalise(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(value)]
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _DocumentLimitError(f"{path or '<root>'}: {value!r} is not representable in JSON")
        return value
    raise _DocumentLimitError(f"{path or '<root>'}: values of type {type(value).__name__} are not allowed")


def _reject_json_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _json_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def load_document(data: bytes | str, *, source: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse one YAML (or JSON) document safely into plain JSON data.

    ``source`` is the path (or other label) shown at the start of every error message.
    An empty document loads as ``None``. ``max_bytes``: the size limit (1 MiB for what people
    write; the lock file, which we generate and which grows with the graph, allows more).
    """
    text = _decode(data, source, max_bytes)
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        # JSON first: pretty-printed JSON may indent with tabs, which YAML refuses.
        try:
            parsed = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_reject_json_constant)
        except (ValueError, RecursionError):
            pass  # not JSON after all (or a bad one): YAML gives the better message below
        else:
            try:
                return _normalise(parsed, "", 0)
            except _DocumentLimitError as exc:
                raise DocumentError(f"{source}: {exc.message}") from None
    try:
        _prescan(text)
        loader = _ForgeLoader(text)
        try:
            value = loader.get_single_data()
        finally:
            loader.dispose()
        return _normalise(value, "", 0)
    except _DocumentLimitError as exc:
        raise DocumentError(
            f"{_where(source, exc.mark)}: {exc.message}",
            hint="Documents are limited to 1 MiB, 64 levels of nesting and a modest amount of alias expansion.",
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        raise DocumentError(f"{_where(source, mark)}: invalid YAML: {problem}",
                            hint="Fix the YAML at that line (indentation, quoting, brackets, a key given "
                                 "twice); `agentforge lint PATH` checks a component before it is pushed.") from None
    except yaml.YAMLError as exc:
        raise DocumentError(f"{source}: invalid YAML: {exc}") from None
    except RecursionError:  # pragma: no cover - the pre-scan bounds depth; kept as a last guard
        raise DocumentError(f"{source}: nesting too deep") from None


def load_json_document(data: bytes | str, *, source: str, max_bytes: int = MAX_DOCUMENT_BYTES) -> Any:
    """Parse one document that must be JSON (``plugin.json``, ``server.json``), with the limits of
    :func:`load_document` but no YAML fallback, so a broken file is reported as invalid JSON
    (``source:line:column: invalid JSON: …``), not with the YAML parser's words."""
    text = _decode(data, source, max_bytes)
    try:
        parsed = json.loads(text, object_pairs_hook=_json_pairs, parse_constant=_reject_json_constant)
    except json.JSONDecodeError as exc:
        raise DocumentError(f"{source}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}",
                            hint="Fix the JSON at that line (a missing or extra comma, quote or bracket; "
                                 "JSON has no comments).") from None
    except ValueError as exc:  # a duplicate key or NaN/Infinity (the hooks above)
        raise DocumentError(f"{source}: invalid JSON: {exc}") from None
    except RecursionError:
        raise DocumentError(f"{source}: nesting deeper than {MAX_DEPTH} levels") from None
    try:
        return _normalise(parsed, "", 0)
    except _DocumentLimitError as exc:
        raise DocumentError(f"{source}: {exc.message}") from None


def canonical_json(obj: Any) -> str:
    """The one JSON text used for hashing: sorted keys, no whitespace, UTF-8 kept, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class _ForgeDumper(yaml.SafeDumper):
    """Deterministic dumper: never emits anchors, writes multi-line strings as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


# Characters a YAML reader treats as line breaks or a byte-order mark: written unescaped
# (as allow_unicode would) they do not read back as the same string.
_ESCAPE_ALWAYS = frozenset("\r\x85\u2028\u2029\ufeff")


def _represent_str(dumper: yaml.SafeDumper, data: str) -> yaml.ScalarNode:
    if _ESCAPE_ALWAYS.intersection(data):
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style='"')
    if "\n" in data:
        # PyYAML falls back to a quoted style by itself when a literal block cannot hold it.
        return dumper.represent_scalar("tag:yaml.org,2002:str", data, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", data)


_ForgeDumper.add_representer(str, _represent_str)


def dump_yaml(obj: Any) -> str:
    """Render plain data as YAML, byte-identical for equal input.

    Sorted keys, block style, LF line endings, a trailing newline, unicode kept as is.
    The pure-Python dumper is used on purpose: libyaml may or may not be installed, and the
    two emitters do not promise identical output.
    """
    text = yaml.dump(
        obj,
        Dumper=_ForgeDumper,
        sort_keys=True,
        default_flow_style=False,
        allow_unicode=True,
        width=4096,
        line_break="\n",
        indent=2,
    )
    if not text.endswith("\n"):
        text += "\n"
    return text

