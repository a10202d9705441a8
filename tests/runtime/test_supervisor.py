"""The supervisor against real processes: start a server on a bundle, use it, stop it.

The instance flushes its metrics into a composition_instances table (same columns as the
real one) in a throwaway database, reached through AGENTFORGE_DATABASE_URL.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentforge.runtime.supervisor import (
    find_free_port,
    is_alive,
    start_instance,
    stop_instance,
    tail_log,
    wait_ready,
)

N = 7


def test_instance_lifecycle_counts_requests(tmp_path: Path, make_bundle: Any, metrics_db: Any) -> None:
    instance_id = str(uuid.uuid4())
    metrics_db.add_instance(instance_id)
    bundle = make_bundle(tmp_path / "bundle", instance_id=instance_id)
    log_path = tmp_path / "logs" / "instance.log"
    instance = start_instance(
        bundle,
        port=None,
        instance_id=instance_id,
        log_path=log_path,
        env={"AGENTFORGE_DATABASE_URL": metrics_db.url, "SALES_API_KEY": "secret-from-env"},
    )
    try:
        assert wait_ready(instance.url, timeout=30, pid=instance.pid), tail_log(log_path)
        assert wait_ready(instance.url, path="/ready", timeout=5)
        assert is_alive(instance.pid)
        assert is_alive(instance.pid, bundle_dir=bundle)
        assert not is_alive(instance.pid, bundle_dir=tmp_path / "elsewhere")
        # The database URL travels in the environment, never on the command line.
        cmdline = Path(f"/proc/{instance.pid}/cmdline").read_bytes().decode()
        assert metrics_db.url not in cmdline

        with httpx.Client(base_url=instance.url, timeout=10) as client:
            rendered = client.post("/v1/prompts/greeting/render", json={"variables": {"name": "Ann"}})
            assert rendered.json() == {"text": "Hello Ann, tone=formal, limit=3"}
            invoked = client.post("/v1/agents/sales-agent/invoke", json={"input": "hi", "variables": {"name": "B"}})
            assert invoked.json()["output"] == "echo(small-model): hi"
            for _ in range(N):
                composition = client.get("/v1/composition")
                assert composition.status_code == 200
                assert "secret-from-env" not in composition.text
            assert client.post("/v1/prompts/ghost/render", json={}).status_code == 404
    finally:
        stop_instance(instance.pid, timeout=10)

    assert not is_alive(instance.pid)
    row = metrics_db.row(instance_id)
    assert row["request_count"] == N + 3  # health probes are not counted
    assert row["error_count"] == 0  # the 404 is a client error
    assert row["avg_response_time"] > 0
    log = tail_log(log_path, lines=200)
    assert "POST /v1/prompts/greeting/render 200" in log
    assert "secret-from-env" not in log and metrics_db.url not in log


def test_missing_env_var_exits_before_ready(tmp_path: Path, make_bundle: Any, samples: Any) -> None:
    settings = samples.settings()
    settings["llm"]["base_url"] = "${AGENTFORGE_TEST_UNSET_URL}"
    bundle = make_bundle(tmp_path / "bundle", settings=settings)
    log_path = tmp_path / "instance.log"
    env_without = {key: value for key, value in os.environ.items() if key != "AGENTFORGE_TEST_UNSET_URL"}
    assert "AGENTFORGE_TEST_UNSET_URL" not in env_without
    instance = start_instance(bundle, port=None, instance_id=str(uuid.uuid4()), log_path=log_path, env={})
    assert not wait_ready(instance.url, timeout=30, pid=instance.pid)
    assert not is_alive(instance.pid)
    assert "AGENTFORGE_TEST_UNSET_URL" in tail_log(log_path)
    stop_instance(instance.pid)  # already gone: no error


def test_stop_leaves_foreign_processes_alone() -> None:
    # A pid that is not an AgentForge runtime server (e.g. after pid reuse) is never signalled.
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not is_alive(sleeper.pid)
        stop_instance(sleeper.pid, timeout=1)
        assert sleeper.poll() is None
    finally:
        sleeper.kill()
        sleeper.wait()
    stop_instance(sleeper.pid)  # gone: no error
    assert not is_alive(os.getpid())  # pytest is not a runtime server


def test_sigkill_after_timeout(tmp_path: Path) -> None:
    # A process that ignores SIGTERM but looks like a server is killed after the timeout.
    script = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script, "-m", "agentforge.runtime.server"],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"up\n"
        assert is_alive(process.pid)
        stop_instance(process.pid, timeout=0.3)
        assert process.wait(timeout=10) == -9
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_find_free_port_is_bindable() -> None:
    import socket

    port = find_free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_tail_log(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert tail_log(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(5000)))
    assert tail_log(log, lines=3) == "line 4997\nline 4998\nline 4999"
    assert tail_log(log, lines=0) == ""
    assert tail_log(log, lines=10_000).count("\n") == 4999


@pytest.mark.parametrize("pid", [0, -1, 2**22 + 12345])
def test_is_alive_on_impossible_pids(pid: int) -> None:
    assert not is_alive(pid)


def test_runtime_imports_stay_lean() -> None:
    code = (
        "import sys, agentforge.runtime.server, agentforge.runtime.supervisor;"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'prefect', 'sqlalchemy', 'git', 'github', 'typer'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    assert out.stdout.strip() == "[]"
