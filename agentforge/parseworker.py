"""The parse worker of ``agentforge.parsepool``: ``python -m agentforge.parseworker``.

Reads batches of ``(data, source)`` from stdin and writes ``parse_components`` of each to stdout,
one length-prefixed pickle frame each way, until stdin closes. The frame helpers are shared
with the parent side.
"""

from __future__ import annotations

import pickle
import struct
import sys
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


def main() -> int:
    from agentforge.core.documents import parse_components

    out, inp = sys.stdout.buffer, sys.stdin.buffer
    write_frame(out, "ready")
    while True:
        try:
            items = read_frame(inp)
        except EOFError:
            return 0
        write_frame(out, parse_components(items))


if __name__ == "__main__":
    sys.exit(main())
