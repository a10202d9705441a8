"""Parsing documents in a worker process while a sync runs, on the machine's other core.

A sync runs its repositories in threads; their git and database waits overlap, but parsing
(YAML, then pydantic) holds the GIL, so on a cold sync of many repositories the threads queue
on it while the machine's second core sits idle (issue 3's benchmark: parsing was over a third
of the GIL time), and a large catalog's markdown files (issue 6's: 2,000 files, a third of its
cold sync) are parsed on one core. Inside :func:`offload`, work goes to one worker process
(``python -m agentforge.parseworker``; plain values back over a pipe):

- batches of component documents (``parse_components``), when the block syncs
  ``MIN_REPOSITORIES`` or more repositories: the whole batch, while the calling thread waits
  without holding the GIL;
- large batches of markdown files (``parse_markdown_many``), in any sync: the calling thread
  splits the files and the worker parses a share of their frontmatter while the calling thread
  parses the rest, so one repository's files use both cores.

Outside the block, for a small batch, while the worker is still starting (about 0.05 s for
markdown, 0.2 s for component documents) or busy with another thread's batch, work is done in
the calling thread, with the same results.

The worker is a plain subprocess, not ``multiprocessing``: a spawned ``multiprocessing`` child
re-runs the caller's main script, which a script without a ``__main__`` guard turns into a fork
bomb. It answers one request at a time and stops when the outermost ``offload`` block ends (or
when its parent dies: its stdin closes). If it dies early, work falls back to the calling
thread for the rest of the block.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

from agentforge.core.documents import ParsedComponent
from agentforge.core.documents import parse_components as _parse_here
from agentforge.core.frontmatter import Frontmatter, Markdown, Split, split_markdown, with_frontmatter
from agentforge.errors import AgentForgeError
from agentforge.parseworker import read_frame, read_frontmatters, write_frame

__all__ = ["MIN_BATCH", "MIN_MARKDOWN", "MIN_REPOSITORIES", "offload", "parse_components", "parse_markdown_many"]

#: Fewer repositories to sync than this: component documents are parsed in the calling threads
#: (the worker's pydantic start-up costs more than it saves).
MIN_REPOSITORIES = 4
#: Fewer documents in a batch than this are parsed in the calling thread.
MIN_BATCH = 8
#: Fewer markdown files than this are parsed in the calling thread...
MIN_MARKDOWN = 64
#: ...and of a larger batch the worker takes this share (it also pickles and unpickles them).
MARKDOWN_WORKER_SHARE = 0.5
#: How the worker is started (the same interpreter, so the same packages).
WORKER_COMMAND = (sys.executable, "-m", "agentforge.parseworker")

#: What parse_markdown_many gives for a file parse_markdown refuses: (message, code, hint).
Refused = tuple[str, str, "str | None"]


class _Worker:
    def __init__(self, *, components: bool) -> None:
        # Started from the folder that holds this very package, so `-m` finds the same code even
        # when it is not installed, and never an `agentforge` folder in the caller's directory.
        # Without pydantic plugins (observability hooks): scanning the installed packages for them
        # is a tenth of the worker's start-up, and it validates nothing a plugin should watch.
        # In a process group of its own: Ctrl-C in a terminal (SIGINT to the foreground group) is
        # the command's to handle; the worker ends when the command closes its stdin, or dies.
        self.proc = subprocess.Popen(list(WORKER_COMMAND), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=_PACKAGE_PARENT,
                                     env={**os.environ, "PYDANTIC_DISABLE_PLUGINS": "__all__"}, process_group=0)
        self.lock = threading.Lock()  # one request at a time
        self.ready = threading.Event()  # markdown can go
        self.components_ready = threading.Event()  # and component documents too
        self.broken = False
        threading.Thread(target=self._await_ready, args=(components,), name="agentforge-parse-worker",
                         daemon=True).start()

    def _await_ready(self, components: bool) -> None:
        try:
            assert self.proc.stdout is not None
            if read_frame(self.proc.stdout) == "ready":
                self.ready.set()
                if components and self.ask("components", [], count=0) == []:
                    self.components_ready.set()  # the empty batch imported pydantic's parser
                return
        except Exception:  # noqa: S110 - EOF, or not our worker talking (garbage that does not unpickle)
            pass
        self.broken = True

    def usable(self, operation: str = "markdown") -> bool:
        ready = self.components_ready if operation == "components" else self.ready
        return ready.is_set() and not self.broken

    def ask(self, operation: str, items: Any, *, count: int, wait: bool = True,
            meanwhile: Callable[[], Any] | None = None) -> list[Any] | None:
        """The worker's answer to one request, a list of ``count`` results (None, without waiting,
        when ``wait`` is false and another thread's request is in flight); ``meanwhile`` runs here
        while the worker works. EOFError when the worker is gone or answered anything else (then it
        is never asked again)."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        if not self.lock.acquire(blocking=wait):
            return None
        try:
            if self.broken:
                raise EOFError
            try:
                write_frame(self.proc.stdin, (operation, items))
            except Exception:
                self.broken = True
                raise EOFError from None
            error: BaseException | None = None
            if meanwhile is not None:
                try:
                    meanwhile()
                except BaseException as exc:  # its caller's, once the answer is off the pipe
                    error = exc
            try:
                answer = read_frame(self.proc.stdout)
            except Exception:
                self.broken = True  # a half-read answer must never be read as the next one
                raise EOFError from None
            if error is not None:
                raise error
            if not isinstance(answer, list) or len(answer) != count:
                self.broken = True
                raise EOFError
            return answer
        finally:
            self.lock.release()

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
    """Within this block, large parse batches go to a worker process when the machine has more
    than one CPU (``AGENTFORGE_PARSE_IN_PROCESS=1`` turns it off) and the block syncs a
    repository or more; component documents only when ``repositories`` is at least
    ``MIN_REPOSITORIES``. Nestable and thread-safe; the worker stops when the outermost block ends."""
    global _users, _worker
    wanted = repositories >= 1 and (os.cpu_count() or 1) > 1 and not os.environ.get("AGENTFORGE_PARSE_IN_PROCESS")
    if not wanted:
        yield
        return
    with _lock:
        _users += 1
        if _worker is None:
            try:
                _worker = _Worker(components=repositories >= MIN_REPOSITORIES)
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
    if worker is None or len(items) < MIN_BATCH or not worker.usable("components"):
        return _parse_here(items)
    try:
        return cast("list[ParsedComponent | str]", worker.ask("components", list(items), count=len(items)))
    except EOFError:
        return _parse_here(items)


def parse_markdown_many(items: Sequence[bytes], *, source: str) -> list[Markdown | Refused]:
    """``parse_markdown`` of each file (``source`` names it in messages): its ``Markdown``, or
    ``(message, code, hint)`` when it refuses the file (bytes that are not UTF-8).

    The files are split here (``split_markdown``: decoding, fences; cheap); with a worker ready
    and idle, it parses a share of the frontmatter blocks (the YAML, most of the cost, and only
    the blocks travel) while this thread parses the rest."""
    out: list[Markdown | Refused | None] = [None] * len(items)
    pending: list[tuple[int, Split]] = []
    for index, data in enumerate(items):
        try:
            split = split_markdown(data, source=source)
        except AgentForgeError as exc:
            out[index] = (exc.message, exc.code, exc.hint)
            continue
        if isinstance(split, Markdown):
            out[index] = split
        else:
            pending.append((index, split))
    blocks = [(split.start, split.block) for _i, split in pending]
    for (index, split), frontmatter in zip(pending, _frontmatters(blocks, source), strict=True):
        out[index] = with_frontmatter(split, frontmatter)
    return cast("list[Markdown | Refused]", out)


def _frontmatters(blocks: list[tuple[int, list[str]]], source: str) -> list[Frontmatter]:
    worker = _worker
    if worker is None or len(blocks) < MIN_MARKDOWN or not worker.usable("markdown"):
        return read_frontmatters(blocks, source)
    split = int(len(blocks) * MARKDOWN_WORKER_SHARE)
    mine: list[Frontmatter] = []
    try:
        theirs = worker.ask("frontmatter", (source, blocks[:split]), count=split, wait=False,
                            meanwhile=lambda: mine.extend(read_frontmatters(blocks[split:], source)))
    except EOFError:
        theirs = None
    if theirs is None:
        # Busy with another thread's request, or gone: the rest of the batch is parsed here.
        return [*read_frontmatters(blocks[:split], source), *(mine or read_frontmatters(blocks[split:], source))]
    return [*theirs, *mine]
