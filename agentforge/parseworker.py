"""The parse worker of ``agentforge.parsepool``: ``python -m agentforge.parseworker``.

Reads requests ``(operation, items)`` from stdin and writes the answer of each to stdout, one
length-prefixed pickle frame each way, until stdin closes:

- ``"components"``: ``(data, source)`` pairs → ``agentforge.core.documents.parse_components``;
- ``"frontmatter"``: ``(source, [(start, lines), …])``, the frontmatter blocks of markdown files
  the caller split (``agentforge.core.frontmatter.split_markdown``) →
  ``read_frontmatter`` of each, named ``source`` in warnings.

It says ``"ready"`` once the frontmatter parser is imported (about 0.05 s after it starts); the
component documents' parser (pydantic, about 0.15 s more) is imported by the first
``"components"`` request (``parsepool`` sends an empty one to warm it). The frame helpers are
shared with the parent side.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from collections.abc import Sequence
from typing import IO, Any

_HEADER = struct.Struct("!I")  # frame length


def write_frame(stream: IO[bytes], value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)))
    stream.write(data)
    stream.flush()


def read_frame(stream: IO[bytes]) -> Any:
    """The next frame's value; EOFError when the other side has gone."""
    header = stream.read(_HEADER.size)
    if len(header) != _HEADER.size:
        raise EOFError
    size = _HEADER.unpack(header)[0]
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return pickle.loads(data)  # noqa: S301 - between our own processes, over a pipe only they hold


def read_frontmatters(blocks: Sequence[tuple[int, list[str]]], source: str) -> list[Any]:
    """``read_frontmatter`` of each ``(start, block)`` of a split markdown file."""
    from agentforge.core.frontmatter import read_frontmatter

    return [read_frontmatter(start, block, source=source) for start, block in blocks]


def _answer(operation: str, items: Any) -> Any:
    if operation == "frontmatter":
        source, blocks = items
        return read_frontmatters(blocks, source)
    from agentforge.core.documents import parse_components

    return parse_components(items)


def main() -> int:
    import agentforge.core.frontmatter  # noqa: F401 - what "ready" promises

    out, inp = sys.stdout.buffer, sys.stdin.buffer
    write_frame(out, "ready")
    while True:
        try:
            operation, items = read_frame(inp)
        except EOFError:
            return 0
        write_frame(out, _answer(operation, items))


if __name__ == "__main__":
    code = main()
    # Every answer is flushed as it is written, and the worker holds nothing else: skip the
    # interpreter's tear-down (freeing every module, pydantic's included: about 30 ms that the
    # sync waited for when its offload block ended, on a catalog sync's critical path).
    os._exit(code)
