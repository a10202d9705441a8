"""Running a flow inside the calling process (what the CLI does), as opposed to a served deployment."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import prefect.context
from prefect.settings import PREFECT_API_URL, PREFECT_SERVER_EPHEMERAL_ENABLED

#: Setting either one means the user wants heartbeats; then the run is left as Prefect makes it.
HEARTBEAT_ENV = ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY")


@contextlib.contextmanager
def without_heartbeats() -> Iterator[None]:
    """Flow runs started inside this block send no flow-run heartbeats, unless the user set their frequency.

    Prefect (3.9) sends them from a thread that polls its stop flag once a second, and a finishing
    flow run joins it, so every in-process run waited up to a second at its end (about 0.5 s on
    average) for nothing. Heartbeats let a server mark the run of a vanished *worker* as crashed;
    an in-process run lives and ends with its command, which reports the outcome itself. Served
    deployments (`agentforge serve`) keep Prefect's heartbeats.

    What ``prefect.settings.temporary_settings`` does, minus its re-validation of every setting
    (~0.08 s a run): a copy of the current settings with the one field changed.
    """
    if any(os.environ.get(name) for name in HEARTBEAT_ENV):
        yield
        return
    current = prefect.context.get_settings_context()
    flows = current.settings.flows.model_copy(update={"heartbeat_frequency": None})
    settings = current.settings.model_copy(update={"flows": flows})
    with prefect.context.SettingsContext(profile=current.profile, settings=settings):
        yield


def start_in_process_api(server_env: Mapping[str, str] | None = None) -> None:
    """Without ``PREFECT_API_URL``, start Prefect's in-process API server now, its process spawned
    with SIGINT blocked, so that it inherits the block, and with ``server_env`` in its environment
    (server settings, ``deployments.prefect_server.RECOMMENDED_SERVER_ENV``; a variable the user
    set keeps the user's value).

    Ctrl-C in a terminal signals the whole foreground process group. Prefect starts its in-process
    server (a uvicorn subprocess) in ours, so the same Ctrl-C that interrupts the command killed the
    server too, and the interrupted flow then spent over a minute retrying to report its end to a
    server that was gone before failing with INTERNAL_ERROR. With SIGINT blocked in it, the server
    outlives the keypress, the flow's end is recorded, and Prefect stops the server at exit as
    always (SIGTERM). Prefect offers no option for this; ``SubprocessASGIServer`` is the singleton
    its client starts on first use (so the client finds it running); where it or its spawning
    method is missing (another Prefect version) the client starts its server as before."""
    if PREFECT_API_URL.value() or not PREFECT_SERVER_EPHEMERAL_ENABLED.value():
        return
    try:
        from prefect.server.api.server import SubprocessASGIServer
    except ImportError:  # pragma: no cover - another Prefect: its client starts the server
        return
    server = SubprocessASGIServer()
    launch = getattr(server, "_run_uvicorn_command", None)
    if server.running or launch is None:
        return

    def launch_blocked() -> Any:
        # Blocked only while the process is spawned, so a Ctrl-C during the seconds the server
        # takes to answer still interrupts the command at once (Prefect stops the server at exit).
        # Prefect's launcher passes os.environ on; these are put there only for the spawn.
        added = {name: value for name, value in (server_env or {}).items() if name not in os.environ}
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        os.environ.update(added)
        try:
            with _server_dies_with_us():
                return launch()
        finally:
            for name in added:
                os.environ.pop(name, None)
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)

    server._run_uvicorn_command = launch_blocked  # type: ignore[method-assign]
    server.start()


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class _PopenDyingWithParent:
    """``subprocess`` as Prefect's server module sees it while it spawns its server: the same,
    but ``Popen`` gives the child a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``)."""

    def __init__(self, prctl: Any) -> None:
        self._prctl = prctl
        self._parent = os.getpid()

    def __getattr__(self, name: str) -> Any:
        return getattr(subprocess, name)

    def _in_child(self) -> None:  # between fork and exec, in the child: C calls only
        self._prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != self._parent:  # the parent died before the line above took effect
            os._exit(1)

    def Popen(self, *args: Any, **kwargs: Any) -> subprocess.Popen[Any]:
        kwargs.setdefault("preexec_fn", self._in_child)
        return subprocess.Popen(*args, **kwargs)


@contextlib.contextmanager
def _server_dies_with_us() -> Iterator[None]:
    """While Prefect spawns its in-process API server, on Linux and from the main thread: the
    server gets SIGTERM when this process dies. Prefect stops it at a normal exit (atexit), but a
    command killed outright (SIGKILL, the OOM killer) left the uvicorn server running for good,
    an orphan holding ~150 MB and a port. The kernel sends the signal when the *thread* that
    spawned the child ends, hence the main thread only (it lasts as long as the process);
    elsewhere, or where Prefect's module no longer spawns through ``subprocess``, nothing changes."""
    module = sys.modules.get("prefect.server.api.server")
    if (not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread()
            or getattr(module, "subprocess", None) is not subprocess):
        yield
        return
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded here, not in the forked child
    except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
        yield
        return
    module.subprocess = _PopenDyingWithParent(prctl)  # type: ignore[union-attr]
    try:
        yield
    finally:
        module.subprocess = subprocess  # type: ignore[union-attr]
