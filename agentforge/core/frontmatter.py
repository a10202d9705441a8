"""Markdown files with YAML frontmatter, read the way the tools that use them read them.

Real catalogs hold files that are not valid YAML (unquoted colons in descriptions, example
dialogue lines, ``applyTo: **/*.ts``), CRLF line endings, a UTF-8 BOM, no-break or
zero-width spaces in indentation, or no frontmatter at all. The tools accept them, so we do:
strict YAML first (through :func:`agentforge.core.yamlio.load_document`, with its limits),
then a line-based fallback that is flagged as a warning. Text fields keep their text even
when YAML would turn them into something else (``argument-hint: [x]`` is a list in YAML, the
string ``[x]`` for the tool), so ``show`` prints what the author wrote.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from agentforge.core.yamlio import load_document
from agentforge.errors import AgentForgeError

__all__ = ["TEXT_FIELDS", "Markdown", "parse_markdown"]

#: Fields the tools treat as plain text: YAML's typing (lists, numbers, dates) is undone for them.
TEXT_FIELDS = frozenset({"name", "description", "argument-hint", "version", "model", "license", "applyTo",
                         "when_to_use", "when-to-use", "title", "color"})
#: Words that start example dialogue lines inside a multi-line description (``user: "…"``);
#: in the lenient reader they continue the previous field instead of starting a new one.
_DIALOGUE_WORDS = frozenset({"user", "assistant", "human", "ai", "context", "commentary", "example", "examples",
                             "response", "output", "input", "note", "q", "a"})
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff"
_LEADING_ODD_SPACE = re.compile(r"^[\u00a0\u2007\u202f\u3000" + _INVISIBLE + r"]+")
_KEY_LINE = re.compile(r"^(?P<key>[A-Za-z_][A-Za-z0-9_.-]*)[ \t]*:(?:[ \t]+(?P<value>.*)|[ \t]*)$")
_FENCE = re.compile(r"^---[ \t]*$")
_END = re.compile(r"^(?:---|\.\.\.)[ \t]*$")


@dataclass
class Markdown:
    """One parsed markdown file: ``fields`` (the frontmatter), ``body`` (the text after it)."""

    fields: dict[str, Any]
    body: str
    has_frontmatter: bool
    lenient: bool = False
    warnings: list[str] = field(default_factory=list)
    field_lines: dict[str, int] = field(default_factory=dict)  # top-level key -> 1-based line in the file


def _clean_line(line: str) -> str:
    """No-break/zero-width characters used as indentation become spaces, so YAML sees the structure."""
    match = _LEADING_ODD_SPACE.match(line)
    if match is None:
        return line
    prefix = "".join(" " for ch in match.group(0) if ch not in _INVISIBLE)
    return prefix + line[match.end():]


def _unquote(text: str) -> str:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in ("'", '"'):
        inner = text[1:-1]
        return inner.replace("''", "'") if text[0] == "'" else inner.replace('\\"', '"')
    return text


def _split_flow_list(text: str) -> list[str]:
    inner = text.strip()[1:-1]
    return [_unquote(part) for part in inner.split(",") if part.strip()]


def _raw_values(lines: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """Top-level ``key: value`` texts (first line of each value) and their line numbers (0-based)."""
    values: dict[str, str] = {}
    where: dict[str, int] = {}
    for index, line in enumerate(lines):
        match = _KEY_LINE.match(line)
        if match and match.group("key") not in values:
            values[match.group("key")] = (match.group("value") or "").strip()
            where[match.group("key")] = index
    return values, where


def _lenient(lines: list[str]) -> dict[str, Any]:
    """Line-based frontmatter: ``key: value`` at column 0 starts a field, other lines continue it.

    A dialogue word (``user:``, ``assistant:``) or a key already seen continues the previous
    field, which is what example dialogue inside an unquoted description needs.
    """
    out: dict[str, Any] = {}
    current: str | None = None
    parts: dict[str, list[str]] = {}
    for line in lines:
        match = _KEY_LINE.match(line)
        key = match.group("key") if match else None
        if key is not None and key.lower() not in _DIALOGUE_WORDS and key not in parts:
            current = key
            parts[key] = [(match.group("value") or "") if match else ""]
            continue
        if current is not None:
            parts[current].append(line)
    for key, chunks in parts.items():
        first = chunks[0].strip()
        rest = [chunk.strip() for chunk in chunks[1:]]
        if first in ("|", ">", "|-", ">-", "|+", ">+"):
            first, rest = (rest[0] if rest else ""), rest[1:]
        if not rest and first.startswith("[") and first.endswith("]") and key not in TEXT_FIELDS:
            out[key] = _split_flow_list(first)
            continue
        if not first and rest and all(item.startswith("- ") or item == "-" for item in rest if item):
            out[key] = [_unquote(item[1:]) for item in rest if item]
            continue
        text = "\n".join([first, *rest]).strip()
        out[key] = _unquote(text) if "\n" not in text else text
    return out


def _as_text(value: Any, raw: str | None) -> Any:
    """The author's text for a text field YAML typed as something else."""
    if isinstance(value, str) or value is None:
        return value
    if raw is not None and raw not in ("", "|", ">", "|-", ">-"):
        return _unquote(raw)
    if isinstance(value, list) and all(isinstance(item, str | int | float) for item in value):
        return ", ".join(str(item) for item in value)
    return str(value)


def parse_markdown(data: bytes | str, *, source: str) -> Markdown:
    """Split and parse a markdown file; never raises for content problems except undecodable bytes.

    ``source`` names the file in warnings. Raises ``DocumentError`` (from ``load_document``'s
    decoding) only for bytes that are not UTF-8; callers report it and skip the file.
    """
    split = split_markdown(data, source=source)
    if isinstance(split, Markdown):
        return split
    return with_frontmatter(split, read_frontmatter(split.start, split.block, source=source))


@dataclass
class Split:
    """A markdown file cut at its frontmatter fences: what ``read_frontmatter`` parses (``block``,
    its lines, the first of them at 0-based line ``start + 1`` of the file) and the ``body``."""

    start: int
    block: list[str]
    body: str


#: ``read_frontmatter``'s answer: (fields, read line by line?, warnings, top-level key → line).
Frontmatter = tuple[dict[str, Any], bool, list[str], dict[str, int]]


def split_markdown(data: bytes | str, *, source: str) -> Markdown | Split:
    """The cheap half of ``parse_markdown`` (decoding, line endings, the fences): the whole
    ``Markdown`` of a file without frontmatter, else the ``Split`` to finish with
    ``with_frontmatter(split, read_frontmatter(...))``, which may run in another process."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AgentForgeError(f"{source}: not valid UTF-8 (byte offset {exc.start})", code="DOCUMENT_INVALID",
                                  hint="Save the file as UTF-8 text.") from None
    else:
        text = data
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    start = 0
    while start < len(lines) and not lines[start].strip(" \t" + _INVISIBLE):
        start += 1  # blank lines before the fence are tolerated (some editors add them)
    if start >= len(lines) or not _FENCE.match(lines[start].strip(_INVISIBLE)):
        return Markdown(fields={}, body=text, has_frontmatter=False)
    end = next((i for i in range(start + 1, len(lines)) if _END.match(lines[i].strip(_INVISIBLE))), None)
    if end is None:
        return Markdown(fields={}, body=text, has_frontmatter=False,
                        warnings=[f"{source}:{start + 1}: frontmatter fence '---' is never closed; "
                                  "read as a file without frontmatter"])
    return Split(start=start, block=lines[start + 1:end], body="\n".join(lines[end + 1:]))


def read_frontmatter(start: int, block: list[str], *, source: str) -> Frontmatter:
    """The frontmatter lines of a ``Split``, parsed: strict YAML, else line by line (with a
    warning). Never raises."""
    block = [_clean_line(line) for line in block]
    raw, where = _raw_values(block)
    field_lines = {key: start + 2 + index for key, index in where.items()}
    warnings: list[str] = []
    lenient = False
    parsed: Any
    try:
        parsed = load_document("\n".join(block), source=source) if any(s.strip() for s in block) else {}
    except AgentForgeError as exc:
        parsed = None
        lenient = True
        # Line numbers of load_document count from the frontmatter; shift them to the file's.
        message = re.sub(r"^(.*?):(\d+):(\d+):", lambda m: f"{m.group(1)}:{int(m.group(2)) + start + 1}:",
                         exc.message)
        warnings.append(f"{message} — frontmatter read line by line instead")
    if not lenient and not isinstance(parsed, dict):
        lenient = True
        warnings.append(f"{source}:{start + 2}: frontmatter is not a mapping — read line by line instead")
    fields: dict[str, Any] = _lenient(block) if lenient else dict(parsed)
    for key in TEXT_FIELDS & fields.keys():
        fields[key] = _as_text(fields[key], raw.get(key))
    for key, value in list(fields.items()):
        if isinstance(value, str) and key in TEXT_FIELDS:
            fields[key] = value.strip(" \t" + _INVISIBLE) if key == "name" else value
    return fields, lenient, warnings, field_lines


def with_frontmatter(split: Split, frontmatter: Frontmatter) -> Markdown:
    fields, lenient, warnings, field_lines = frontmatter
    return Markdown(fields=fields, body=split.body, has_frontmatter=True, lenient=lenient, warnings=warnings,
                    field_lines=field_lines)
