"""Parsing component documents in a worker process while a sync of many repositories runs.

A sync runs its repositories in threads; their git and database waits overlap, but parsing
(YAML, then pydantic) holds the GIL, so on a cold sync of many repositories the threads queue
on it while the machine's second core sits idle (issue 3's benchmark: parsing was over a third
of the GIL time). Inside :func:`offload`, batches of documents go to one worker process
(``python -m agentforge.parseworker``: ``parse_components`` there, plain values back over a
pipe); outside it, for a small batch, or while the worker is still starting, they are parsed in
the calling thread, with the same results.

The worker is a plain subprocess, not ``multiprocessing``: a spawned ``multiprocessing`` child
re-runs the caller's main script, which a script without a ``__main__`` guard turns into a fork
bomb. It imports only ``agentforge.core.documents`` (about 0.2 s), answers one batch at a time,
and stops when the outermost ``offload`` block ends (or when its parent dies: its stdin closes).
If it dies early, parsing falls back to the calling thread for the rest of the block.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path

from agentforge.core.documents import ParsedComponent
from agentforge.core.documents import parse_components as _parse_here
from agentforge.parseworker import read_frame, write_frame

__all__ = ["MIN_BATCH", "MIN_REPOSITORIES", "offload", "parse_components"]

#: Fewer repositories to sync than this: no worker (its start-up costs more than it saves).
MIN_REPOSITORIES = 4
#: Fewer documents in a batch than this are parsed in the calling thread.
MIN_BATCH = 8
#: How the worker is started (the same interpreter, so the same packages).
WORKER_COMMAND = (sys.executable, "-m", "agentforge.parseworker")

class _Worker:
    def __init__(self) -> None:
        # Started from the folder that holds this very package, so `-m` finds the same code even
        # when it is not installed, and never an `agentforge` folder in the caller's directory.
        self.proc = subprocess.Popen(list(WORKER_COMMAND), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=_PACKAGE_PARENT)
        self.lock = threading.Lock()  # one batch at a time
        self.ready = threading.Event()
        self.broken = False
        threading.Thread(target=self._await_ready, name="agentforge-parse-worker", daemon=True).start()

    def _await_ready(self) -> None:
        try:
            assert self.proc.stdout is not None
            if read_frame(self.proc.stdout) == "ready":
                self.ready.set()
                return
        except Exception:  # noqa: S110 - EOF, or not our worker talking (garbage that does not unpickle)
            pass
        self.broken = True

    def usable(self) -> bool:
        return self.ready.is_set() and not self.broken

    def parse(self, items: Sequence[tuple[bytes, str]]) -> list[ParsedComponent | str]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self.lock:
            if self.broken:
                raise EOFError
            try:
                write_frame(self.proc.stdin, list(items))
                answer = read_frame(self.proc.stdout)
            except Exception:
                self.broken = True  # a half-read answer must never be read as the next one
                raise EOFError from None
            if not isinstance(answer, list) or len(answer) != len(items):
                self.broken = True
                raise EOFError
            return answer

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()


_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
_lock = threading.Lock()
_users = 0
_worker: _Worker | None = None


@contextlib.contextmanager
def offload(repositories: int) -> Iterator[None]:
    """Within this block, large parse batches go to a worker process when ``repositories`` (to
    sync) is at least ``MIN_REPOSITORIES`` and the machine has more than one CPU
    (``AGENTFORGE_PARSE_IN_PROCESS=1`` turns it off). Nestable and thread-safe; the worker stops
    when the outermost block ends."""
    global _users, _worker
    wanted = repositories >= MIN_REPOSITORIES and (os.cpu_count() or 1) > 1 \
        and not os.environ.get("AGENTFORGE_PARSE_IN_PROCESS")
    if not wanted:
        yield
        return
    with _lock:
        _users += 1
        if _worker is None:
            try:
                _worker = _Worker()
            except OSError:
                _worker = None
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            worker = _worker if _users == 0 else None
            if worker is not None:
                _worker = None
        if worker is not None:
            worker.stop()


def parse_components(items: Sequence[tuple[bytes, str]]) -> list[ParsedComponent | str]:
    """``agentforge.core.documents.parse_components``, in the worker when one is up and ready."""
    worker = _worker
    if worker is None or len(items) < MIN_BATCH or not worker.usable():
        return _parse_here(items)
    try:
        return worker.parse(items)
    except EOFError:
        return _parse_here(items)
