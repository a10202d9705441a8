"""Ctrl-C during `agentforge sync` with Prefect's in-process API (no PREFECT_API_URL).

A terminal's Ctrl-C sends SIGINT to the whole foreground process group: the command, git, the
parse worker and, as Prefect starts it, the in-process API server. The server used to die with
the keypress, and the interrupted flow then retried for over a minute to report its end to it
before failing with INTERNAL_ERROR (exit 1); the git clone killed by the same signal was counted
as the repository's failure and backed off. Now the server outlives the keypress (it starts with
SIGINT blocked), the command exits 130 soon after, leaves no process behind, and the next sync
syncs the repository at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.helpers import AGENTFORGE
from tests.crash.conftest import assert_nothing_stuck
from tests.lock.conftest import Library

_HOOK = """#!/bin/sh
# uploadpack.packObjectsHook: the clone of the first sync waits here until it is interrupted.
touch "{marker}"
sleep 120
exec "$@"
"""


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment mentions ``marker`` (this test's PREFECT_HOME)."""
    import psutil  # installed with pgserver

    found = []
    for proc in psutil.process_iter():
        try:
            if any(marker in value for value in proc.environ().values()):
                found.append(proc.pid)
        except (psutil.Error, OSError):
            continue
    return found


@pytest.mark.slow
def test_ctrl_c_twice_during_a_sync_exits_promptly_and_the_next_sync_completes(lib: Library, tmp_path: Path) -> None:
    lib.repo("tools", {"a": "1.0.0", "b": "1.0.0"}, tag="v1.0.0")
    marker = tmp_path / "clone-waiting"
    hook = tmp_path / "pack-objects-hook"
    hook.write_text(_HOOK.format(marker=marker))
    hook.chmod(0o755)
    config = tmp_path / "gitconfig"
    config.write_text(f"[uploadpack]\n\tpackObjectsHook = {hook}\n")
    prefect_home = str(tmp_path / "prefect-home")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(GIT_CONFIG_GLOBAL=str(config), PREFECT_HOME=prefect_home)
    # A session of its own, as a terminal's foreground job is a process group of its own.
    proc = subprocess.Popen([*AGENTFORGE, "sync"], env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 180  # the in-process API starts first (seconds; more on a busy machine)
        while not marker.exists():
            assert proc.poll() is None, f"sync ended before its clone started: {proc.communicate()}"
            assert time.monotonic() < deadline, "the sync's clone never started"
            time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        time.sleep(0.3)
        os.killpg(proc.pid, signal.SIGINT)  # an impatient second press is ignored while it winds down
        # Before: over a minute of retries against the dead server, then exit 1.
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "Interrupted." in err and "Traceback" not in err and "INTERNAL_ERROR" not in err, (out, err)
    # No in-process server, parse worker or git left running.
    deadline = time.monotonic() + 15
    while _processes_with(prefect_home) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _processes_with(prefect_home) == []

    # The interruption is not the repository's failure: no back-off, the next sync syncs it.
    [(status, failures, backoff)] = lib.q("SELECT sync_status::text, failure_count, next_sync_after "
                                          "FROM repositories")
    assert status == "NEVER_SYNCED" and failures == 0 and backoff is None, (status, failures)
    assert lib.q("SELECT status::text FROM sync_operations") in ([], [("CANCELLED",)])
    lib.sync()
    assert_nothing_stuck(lib.engine)
    assert lib.q("SELECT sync_status::text FROM repositories") == [("SYNCED",)]
    assert {(n, v) for n, v in lib.q("SELECT name, version FROM components")} == {("a", "1.0.0"), ("b", "1.0.0")}
