"""Start, watch and stop instance processes (``python -m agentforge.runtime.server``).

An instance outlives the CLI or Prefect worker that started it, so it is a detached child
(its own session: a Ctrl-C in the starting terminal does not reach it) whose stdout and
stderr go to a log file. Only its pid survives in the database, and pids get reused: before
signalling or reporting a pid as alive we check ``/proc/<pid>/cmdline`` really is an
AgentForge runtime server (for that bundle, when known), and a zombie counts as gone.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

import agentforge

__all__ = [
    "SERVER_MODULE",
    "InstanceProcess",
    "find_free_port",
    "instance_pids",
    "is_alive",
    "start_instance",
    "stop_instance",
    "tail_log",
    "wait_ready",
]

SERVER_MODULE = "agentforge.runtime.server"
_POLL_SECONDS = 0.05

# Popen objects of the children this process started, so they can be reaped (no zombies,
# no "still running" ResourceWarning) while this process lives.
_children: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class InstanceProcess:
    """A started instance: the pid to record, and where it listens."""

    pid: int
    port: int
    url: str


def find_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the OS picks it; another process could still take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _package_root() -> str:
    # The child must import this very agentforge even when it is not installed in the venv.
    return str(Path(agentforge.__file__).resolve().parent.parent)


def start_instance(
    bundle_dir: Path,
    *,
    port: int | None,
    instance_id: str,
    log_path: Path,
    env: Mapping[str, str],
    host: str = "127.0.0.1",
    resolved_path: Path | None = None,
) -> InstanceProcess:
    """Spawn the server for ``bundle_dir`` detached, logging to ``log_path`` (appended).

    ``env`` is added to this process's environment (the composition's ``${ENV}`` references
    usually name variables the user exported, e.g. the LLM key); pass
    ``AGENTFORGE_DATABASE_URL`` there, never on the command line, where ``ps`` would show it.
    ``resolved_path``: the instance's ``resolved.json`` when it is not in the bundle (bundles
    are shared and immutable; each instance's merged configuration lives beside its log).
    Returns at once: use :func:`wait_ready` to know when it serves.
    """
    bundle = bundle_dir.resolve()
    chosen_port = port if port is not None else find_free_port()
    child_env = {**os.environ, **env}
    root = _package_root()
    child_env["PYTHONPATH"] = os.pathsep.join(p for p in (root, child_env.get("PYTHONPATH", "")) if p)
    child_env.setdefault("PYTHONUNBUFFERED", "1")
    command = [
        sys.executable,
        "-m",
        SERVER_MODULE,
        "--bundle",
        str(bundle),
        "--host",
        host,
        "--port",
        str(chosen_port),
        "--instance-id",
        instance_id,
    ]
    if resolved_path is not None:
        command += ["--resolved", str(resolved_path.resolve())]
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=child_env,
            cwd=str(bundle),
            start_new_session=True,
            close_fds=True,
        )
    _children[process.pid] = process
    return InstanceProcess(pid=process.pid, port=chosen_port, url=f"http://{host}:{chosen_port}")


def _reap(pid: int) -> None:
    """Collect the exit status of a child started here so it does not linger as a zombie.

    Only children in our registry: a bare ``waitpid`` would steal the exit status from
    whoever else in this process owns that child (its ``Popen`` would then report 0).
    A zombie we do not own is recognised through /proc instead.
    """
    process = _children.get(pid)
    if process is not None and process.poll() is not None:
        _children.pop(pid, None)


def _proc_state(pid: int) -> str | None:
    """The state letter from /proc/<pid>/stat (``Z`` = zombie), or None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name in parentheses may contain spaces: the state follows the last ')'.
    return stat.rsplit(")", 1)[-1].split()[0]


def is_alive(pid: int, *, bundle_dir: Path | None = None) -> bool:
    """Whether ``pid`` is a running (not zombie) AgentForge runtime server (serving ``bundle_dir``)."""
    if pid <= 0:
        return False
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # someone else's process: a reused pid, not our instance
    cmdline_path = Path(f"/proc/{pid}/cmdline")
    if not cmdline_path.parent.exists():
        return True  # no procfs (macOS): signal 0 is the best we can do
    if _proc_state(pid) in ("Z", "X"):
        return False
    try:
        argv = cmdline_path.read_bytes().split(b"\0")
    except OSError:
        return False
    if SERVER_MODULE.encode() not in argv:
        return False
    if bundle_dir is not None:
        return str(bundle_dir.resolve()).encode() in argv
    return True


def instance_pids(instance_id: str) -> list[int]:
    """Live runtime servers started for ``instance_id`` (``--instance-id`` in /proc/<pid>/cmdline).

    Finds processes nothing records any more — a candidate whose deploy was killed before the
    switch, or an old process whose stop never ran — so a later deploy can stop them. Empty
    without procfs.
    """
    pids: list[int] = []
    proc = Path("/proc")
    if not proc.is_dir():
        return pids
    wanted = [b"--instance-id", instance_id.encode()]
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if SERVER_MODULE.encode() in argv and any(argv[i:i + 2] == wanted for i in range(len(argv) - 1)) \
                and _proc_state(int(entry.name)) not in ("Z", "X", None):
            pids.append(int(entry.name))
    return sorted(pids)


def wait_ready(
    url: str,
    *,
    path: str = "/health/ready",
    timeout: float,
    pid: int | None = None,
    instance_id: str | None = None,
) -> bool:
    """Poll ``url + path`` until it answers 200 (True) or ``timeout`` seconds pass (False).

    With ``pid``, give up as soon as that process has exited (a bad bundle fails fast). With
    ``instance_id``, only an answer from that instance counts: a free port picked for a child can
    be taken by another process before the child binds it, and that process must not pass for it.
    """
    deadline = time.monotonic() + timeout
    target = url.rstrip("/") + path
    with httpx.Client(timeout=2.0) as client:
        while True:
            with contextlib.suppress(httpx.HTTPError, ValueError):
                answer = client.get(target)
                if answer.status_code == 200 and (
                        instance_id is None or not _is_json_object(answer)
                        or answer.json().get("instance") in (None, instance_id)):
                    if pid is None or is_alive(pid):
                        return True
            if pid is not None and not is_alive(pid):
                return False
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def _is_json_object(answer: httpx.Response) -> bool:
    return answer.headers.get("content-type", "").startswith("application/json") and \
        isinstance(answer.json(), dict)


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        process = _children.get(pid)
        if process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=_POLL_SECONDS)
        if not is_alive(pid):
            return True
        if time.monotonic() >= deadline:
            return False
        if process is None:
            time.sleep(_POLL_SECONDS)


def _signal(pid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # The server leads its own session/group (start_new_session), so signal the group:
        # anything it spawned goes too. Fall back to the pid when it is not a group leader.
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)


def stop_instance(pid: int, *, timeout: float = 10) -> None:
    """SIGTERM (graceful: the server flushes its metrics), then SIGKILL after ``timeout`` s.

    No error when the process is already gone, or when the pid now belongs to a process
    that is not an AgentForge runtime server (it is then left alone).
    """
    if not is_alive(pid):
        _children.pop(pid, None)
        return
    _signal(pid, signal.SIGTERM)
    if _wait_gone(pid, timeout):
        _children.pop(pid, None)
        return
    _signal(pid, signal.SIGKILL)
    _wait_gone(pid, 5.0)
    _children.pop(pid, None)


def tail_log(log_path: Path, lines: int = 50) -> str:
    """The last ``lines`` lines of an instance log ("" when there is none yet)."""
    if lines <= 0:
        return ""
    try:
        with log_path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            block = 8192
            data = b""
            # Read backwards only as far as needed: logs of long-running instances get big.
            while size > 0 and data.count(b"\n") <= lines:
                step = min(block, size)
                size -= step
                handle.seek(size)
                data = handle.read(step) + data
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    return "\n".join(text.splitlines()[-lines:])
