"""Crash-test helpers: run a step in a subprocess killed at a checkpoint, then check the state.

    killed("install", str(lock_path), at="install.swap")   # asserts it really died there
    assert_nothing_stuck(engine)

The subprocess inherits this process's environment (test database, AGENTFORGE_HOME of the
``home`` fixture), so it works on the very state the test prepared.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.deploy.conftest import lib, stack  # noqa: F401  (fixtures reused by the crash cases)
from tests.devloop.conftest import installed  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]


def run_driver(*args: str, at: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("AGENTFORGE_CRASH_AT", None)
    if at is not None:
        env["AGENTFORGE_CRASH_AT"] = at
    return subprocess.run([sys.executable, "-m", "tests.crash.driver", *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=timeout)


def killed(*args: str, at: str) -> None:
    """Run the driver and insist it was SIGKILLed (at the checkpoint, not by an error first)."""
    proc = run_driver(*args, at=at)
    assert proc.returncode == -signal.SIGKILL, (
        f"expected death by SIGKILL at {at}, got exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}")


def completed(*args: str) -> str:
    proc = run_driver(*args)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def assert_nothing_stuck(engine: sa.Engine) -> None:
    """No state that only a live process may hold survives the restart and re-run."""
    with engine.connect() as conn:
        stuck = {
            "repositories": conn.execute(sa.text(
                "SELECT name FROM repositories WHERE sync_status = 'SYNC_IN_PROGRESS'")).scalars().all(),
            "sync_operations": conn.execute(sa.text(
                "SELECT operation::text || ' ' || coalesce(message, '') FROM sync_operations "
                "WHERE status IN ('IN_PROGRESS', 'PENDING')")).scalars().all(),
            "instances": conn.execute(sa.text(
                "SELECT name || ' ' || status::text FROM composition_instances "
                "WHERE status IN ('STARTING', 'UPDATING', 'STOPPING')")).scalars().all(),
            "deployments": conn.execute(sa.text(
                "SELECT id::text FROM deployments WHERE status = 'IN_PROGRESS'")).scalars().all(),
        }
    assert not any(stuck.values()), stuck


def runtime_processes(instance_id: str | None = None, *, home: str | None = None) -> list[int]:
    """Live (non-zombie) AgentForge runtime servers, optionally of one instance or of one home
    folder (their --bundle argument lies under it), found via /proc."""
    from agentforge.runtime.supervisor import SERVER_MODULE

    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            state = (entry / "stat").read_text().rsplit(")", 1)[-1].split()[0]
        except OSError:
            continue
        if SERVER_MODULE.encode() not in argv or state in ("Z", "X"):
            continue
        if instance_id is not None and instance_id.encode() not in argv:
            continue
        if home is not None and not any(arg.startswith(home.encode()) for arg in argv):
            continue
        pids.append(int(entry.name))
    return sorted(pids)


@pytest.fixture()
def no_orphans() -> object:
    """Runtime servers this test started are killed afterwards, whoever lost track of them.

    Only those under this test's home folder: other tests run in parallel (xdist) and their
    instances must not be touched."""
    home = os.environ.get("AGENTFORGE_HOME")
    before = set(runtime_processes(home=home))
    yield None
    for pid in set(runtime_processes(home=home)) - before:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
