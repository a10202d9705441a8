"""Pausing Python's cyclic garbage collector around bulk work (Mercurial's ``nogc``).

Reading a repository builds tens of thousands of small, acyclic objects (parsed documents,
records, rows) that stay alive until the rows are written. The collector's passes over them —
and over every object the imported libraries hold — free nothing, and measured ~40 % of a
2,000-file catalog read (``bench/catalog.py``). Reference counting still frees everything that
forms no cycle while the collector is paused.

Thread-safe and nestable: the sync runs several repositories at once in one process, so the
collector is paused by the first section to enter and resumed by the last one to leave (never
by a section that found it already disabled by someone else).
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

__all__ = ["collector_paused"]

_lock = threading.Lock()
_depth = 0
_owned = False  # whether we disabled it (and so must enable it again)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    global _depth, _owned
    with _lock:
        if _depth == 0:
            _owned = gc.isenabled()
            if _owned:
                gc.disable()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _owned:
                _owned = False
                gc.enable()
