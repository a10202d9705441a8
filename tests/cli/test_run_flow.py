"""How the CLI runs a flow in its own process: flow-run heartbeats off unless the user set them."""

from __future__ import annotations

import os

import pytest


def _heartbeat_seen_by_a_flow() -> object:
    from prefect import flow
    from prefect.settings import get_current_settings

    @flow(name="test-heartbeat-setting")
    def probe() -> object:
        return get_current_settings().flows.heartbeat_frequency

    from agentforge.cli.common import run_flow

    return run_flow(probe)


def test_in_process_flows_run_without_heartbeats(clean_db, prefect_api: None, monkeypatch) -> None:
    for name in ("PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"):
        monkeypatch.delenv(name, raising=False)
    assert _heartbeat_seen_by_a_flow() is None
    from prefect.settings import get_current_settings

    assert get_current_settings().flows.heartbeat_frequency == 180  # only for the run, not after it


@pytest.mark.parametrize("variable", ["PREFECT_FLOWS_HEARTBEAT_FREQUENCY", "PREFECT_RUNNER_HEARTBEAT_FREQUENCY"])
def test_a_heartbeat_frequency_the_user_set_is_kept(clean_db, prefect_api: None, monkeypatch, variable) -> None:
    monkeypatch.setenv(variable, "45")
    from prefect.settings import temporary_settings

    # The variable is read when settings are built; build them anew as a new process would.
    with temporary_settings(updates={"flows.heartbeat_frequency": 45}):
        assert _heartbeat_seen_by_a_flow() == 45


def test_prefects_flush_progress_warnings_are_quiet_unless_verbose(monkeypatch, caplog) -> None:
    """"EventsWorker - Still processing items: 2 items remaining..." came out on stderr after every
    lock/install: its loggers are outside ``prefect.*``. Their errors still show."""
    import logging

    from agentforge.cli.common import prepare_prefect
    from agentforge.cli.output import STATE

    for name in ("EventsWorker", "APILogWorker"):
        monkeypatch.setattr(logging.getLogger(name), "level", logging.NOTSET)
    monkeypatch.setattr(STATE, "verbose", False)
    for name in ("PREFECT_LOGGING_LEVEL", "PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL"):
        monkeypatch.setenv(name, os.environ.get(name, "INFO"))
    prepare_prefect()
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("EventsWorker").warning("Still processing items: 2 items remaining...")
        logging.getLogger("EventsWorker").error("could not send events")
    texts = [r.getMessage() for r in caplog.records if r.name == "EventsWorker"]
    assert texts == ["could not send events"]


_SERVER_LOGGER_PROBE = """
import logging, sys
from agentforge.cli.output import STATE
STATE.verbose = sys.argv[1] == "verbose"
from agentforge.cli.common import prepare_prefect
prepare_prefect()
from prefect.logging.configuration import setup_logging
setup_logging()
print(logging.getLogger("prefect.server.services.task_run_recorder").isEnabledFor(logging.ERROR))
"""


@pytest.mark.parametrize(("mode", "shown"), [("quiet", "False"), ("verbose", "True")])
def test_the_in_process_apis_shutdown_errors_are_quiet_unless_verbose(mode: str, shown: str) -> None:
    """A fresh home's first sync printed the in-process API's "Error flushing 1 events" with four
    tracebacks (its task-run recorder cancelled as the command ended), exit 0 all the same. That
    server is a subprocess with this environment: its ``prefect.server`` loggers stay quiet."""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") or k == "PREFECT_HOME"}
    env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    out = subprocess.run([sys.executable, "-c", _SERVER_LOGGER_PROBE, mode], capture_output=True, text=True,
                         env=env, timeout=120, check=True).stdout.split()
    assert out[-1] == shown


_SERVER_ENV_PROBE = """
import json, os, sys
from prefect.server.api.server import SubprocessASGIServer
from flows.inprocess import start_in_process_api
start_in_process_api(json.loads(sys.argv[1]))
server = SubprocessASGIServer()
with open(f"/proc/{server.server_process.pid}/environ", "rb") as f:
    seen = dict(item.split("=", 1) for item in f.read().decode().split("\\0") if "=" in item)
print(json.dumps({"server": {k: v for k, v in seen.items() if k.startswith("PREFECT_SERVER_SERVICES_")},
                  "parent": {k: v for k, v in os.environ.items() if k.startswith("PREFECT_SERVER_SERVICES_")}}))
"""


@pytest.mark.slow
def test_the_in_process_api_server_starts_with_the_recommended_server_settings(tmp_path) -> None:
    """`agentforge sync` without PREFECT_API_URL reports to a server it starts itself: that server
    gets the batched recorders too (deployments.prefect_server), except where the user set a value;
    the command's own environment is left as it was."""
    import json
    import subprocess
    import sys

    from deployments.prefect_server import RECOMMENDED_SERVER_ENV

    user_set = "PREFECT_SERVER_SERVICES_EVENT_PERSISTER_FLUSH_INTERVAL"
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL" and not k.startswith("PREFECT_SERVER_SERVICES_")}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false", **{user_set: "3"})
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _SERVER_ENV_PROBE, json.dumps(RECOMMENDED_SERVER_ENV)], env=env,
                         cwd=root, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert float(seen["server"].pop(user_set)) == 3  # Prefect passes the user's setting on as "3.0"
    assert seen["server"] == {k: v for k, v in RECOMMENDED_SERVER_ENV.items() if k != user_set}
    assert seen["parent"] == {user_set: "3"}


_SERVER_PID_PROBE = """
import sys, time
from prefect.server.api.server import SubprocessASGIServer
from flows.inprocess import start_in_process_api
start_in_process_api({})
print(SubprocessASGIServer().server_process.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_the_in_process_api_server_goes_when_the_command_is_killed(tmp_path) -> None:
    """A command killed outright (SIGKILL: no atexit) used to leave its in-process API server
    (uvicorn) running for good; now the kernel sends that server SIGTERM when the command dies."""
    import signal
    import subprocess
    import sys
    import time

    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(tmp_path / "prefect-home"), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    command = subprocess.Popen([sys.executable, "-c", _SERVER_PID_PROBE], env=env, cwd=root, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    server_pid = 0
    try:
        assert command.stdout is not None
        server_pid = int(command.stdout.readline())
        os.kill(server_pid, 0)  # running
        command.kill()
        command.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _running(server_pid):
            time.sleep(0.1)
        assert not _running(server_pid), "the in-process API server outlived its killed command"
    finally:
        command.kill()
        if server_pid and _running(server_pid):
            os.kill(server_pid, signal.SIGKILL)


def _running(pid: int) -> bool:
    """The process exists and is not a zombie (an orphan's zombie is reaped by init, not by us)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
