"""Reading files a user names, with bounds (never all of /dev/zero, never a FIFO that blocks)."""

from __future__ import annotations

from typing import Any

from agentforge.core.yamlio import MAX_DOCUMENT_BYTES
from agentforge.errors import DocumentError

__all__ = ["read_document_file"]


def read_document_file(path: Any, *, max_bytes: int = MAX_DOCUMENT_BYTES, what: str = "document") -> bytes:
    """The bytes of a file a user named, read with a bound: only a regular file (not a FIFO, a
    device such as /dev/zero, or a folder), at most ``max_bytes`` (checked by size first, and
    again while reading, so a file that grows or lies about its size cannot exhaust memory)."""
    import os
    import stat as stat_mod
    from pathlib import Path

    p = Path(path)
    try:
        info = p.stat()
    except FileNotFoundError:
        raise DocumentError(f"{p}: no such file", hint="Check the path.") from None
    except OSError as exc:
        raise DocumentError(f"{p}: cannot read: {exc.strerror}", hint="Check the path and its permissions.") from None
    if not stat_mod.S_ISREG(info.st_mode):
        kind = "a folder" if stat_mod.S_ISDIR(info.st_mode) else "not a regular file (a device, FIFO or socket?)"
        raise DocumentError(f"{p}: is {kind}", hint=f"Pass the path of a {what} file.")
    limit = f"{max_bytes // (1024 * 1024)} MiB"
    if info.st_size > max_bytes:
        raise DocumentError(f"{p}: the {what} is {info.st_size} bytes, larger than the {limit} limit",
                            hint="Split or trim the file.")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise DocumentError(f"{p}: cannot read: {exc.strerror}", hint="Check the path and its permissions.") from None
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise DocumentError(f"{p}: the {what} is larger than the {limit} limit", hint="Split or trim the file.")
    return data
