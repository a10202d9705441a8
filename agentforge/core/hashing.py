"""Content hashes used by lock files and the database (FORMATS.md §5)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

from agentforge.core.yamlio import canonical_json
from agentforge.errors import LockError

__all__ = ["component_checksum", "manifest_hash", "sha256_hex", "shown_name", "unsupported_name"]


def sha256_hex(data: bytes) -> str:
    """Lower-case hex SHA-256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def unsupported_name(name: str) -> str | None:
    """Why a file name (or a path) cannot be part of a checksum line; None when it can. A name
    that is not UTF-8 arrives from git decoded with ``surrogateescape``."""
    if name.isascii():
        if "\n" in name or "\r" in name or "\\" in name:
            return "its name holds a newline or backslash, which the checksum lines cannot carry"
        return None
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "its name is not UTF-8"
    return None


def shown_name(name: str) -> str:
    """A file name fit to print on one line: bytes that are not UTF-8 as ``\\xNN``, a newline as ``\\n``."""
    text = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text.replace("\n", "\\n").replace("\r", "\\r")


def component_checksum(files: Iterable[tuple[str, bytes]]) -> str:
    """``sha256:`` + hex SHA-256 of the lines ``<sha256 hex of content>  <relpath>\\n``.

    Lines are sorted by relative path (``/`` separators, plain code-point order, which is the
    byte order of the UTF-8 paths), exactly as FORMATS.md §5 defines it, so anyone can
    recompute the checksum with ``sha256sum`` over a checkout. Paths are taken as given: the
    caller passes them relative to the component folder. A path holding a newline or a
    backslash, or listed twice, would make the line format ambiguous and is refused.
    """
    entries: dict[str, bytes] = {}
    for relpath, content in files:
        why = "its name is empty" if not relpath else unsupported_name(relpath)
        if why:
            raise _unsupported(relpath, why)
        if relpath in entries:
            raise _unsupported(relpath, "it is listed twice")
        entries[relpath] = content
    digest = hashlib.sha256()
    for relpath in sorted(entries):
        digest.update(f"{sha256_hex(entries[relpath])}  {relpath}\n".encode())
    return "sha256:" + digest.hexdigest()


def _unsupported(relpath: str, why: str) -> LockError:
    shown = relpath.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")  # surrogates too
    return LockError(f"file {shown!r} cannot be part of a checksum ({why})", code="CHECKSUM_PATH_UNSUPPORTED",
                     hint="Rename the file in the repository.")


def manifest_hash(obj: Any) -> str:
    """Hex SHA-256 of the canonical JSON of ``obj`` (change detection for stored documents)."""
    return sha256_hex(canonical_json(obj).encode("utf-8"))
