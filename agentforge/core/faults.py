"""Crash points for tests: ``checkpoint(name)`` SIGKILLs the process when asked to.

Crash-safety tests run a real step (sync, install, pull, deploy) in a subprocess with
``AGENTFORGE_CRASH_AT=<name>`` and expect it to die exactly there — no ``finally``, no
``atexit``, no rollback handler runs, just as when the machine loses power or the OOM
killer strikes — then check that a restart and a re-run leave the database and the files
consistent. ``name:N`` dies at the N-th time the checkpoint is reached (1-based), so a point
inside a loop (one package of several) can be targeted.

Unset (every real run), a checkpoint costs one environment lookup.
"""

from __future__ import annotations

import os
import signal

__all__ = ["ENV_VAR", "checkpoint"]

ENV_VAR = "AGENTFORGE_CRASH_AT"

_hits: dict[str, int] = {}


def checkpoint(name: str) -> None:
    """Die by SIGKILL here when ``AGENTFORGE_CRASH_AT`` names this point (``name`` or ``name:N``)."""
    wanted = os.environ.get(ENV_VAR)
    if not wanted:
        return
    target, _, count = wanted.partition(":")
    if target != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] >= (int(count) if count.isdigit() else 1):
        os.kill(os.getpid(), signal.SIGKILL)
