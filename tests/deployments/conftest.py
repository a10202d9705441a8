"""Fixtures for deployment, webhook and scale-out tests: a real Prefect API (the session's
``prefect_test_harness``), real `agentforge serve` processes polling it, real git and Postgres."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.gitfactory import GitRepoFactory, RepoHandle

ROOT = Path(__file__).resolve().parents[2]
DEADLINE = 120.0  # generous: a failure waits this long, a pass never does


def tool_yaml(name: str, version: str) -> str:
    return (f"apiVersion: forge.dev/v1\nkind: Tool\nmetadata:\n  name: {name}\n  version: {version}\n"
            f"spec:\n  type: function\n  description: test tool\n")


def composition_yaml(name: str, tool: str, repo_url: str, *, auto_deploy: bool = True) -> str:
    return (f"apiVersion: forge.dev/v1\nkind: Composition\nmetadata: {{name: {name}, version: 1.0.0}}\n"
            f"spec:\n  dependencies:\n    tools:\n      - {{name: {tool}, repository: '{repo_url}', version: '^1.0.0'}}\n"
            f"  environments:\n    production: {{auto_deploy: {str(auto_deploy).lower()}}}\n")


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def push_payload(handle: RepoHandle, sha: str, *, branch: str = "main") -> bytes:
    return json.dumps({"ref": f"refs/heads/{branch}", "before": "0" * 40, "after": sha,
                       "repository": {"full_name": f"acme/{handle.name}", "clone_url": handle.url,
                                      "default_branch": "main"}}).encode()


def wait_for(check: Callable[[], Any], what: str, deadline: float = DEADLINE) -> Any:
    """Poll ``check`` until it returns something truthy; fail (after the deadline) naming ``what``."""
    end = time.monotonic() + deadline
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.3)


def scalar(engine: sa.Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.text(sql), params).scalar()


@pytest.fixture(scope="session")
def module_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One home folder shared by the served processes, which outlive single tests."""
    from agentforge.config import reset_settings_cache

    folder = tmp_path_factory.mktemp("home")
    old = os.environ.get("AGENTFORGE_HOME")
    os.environ["AGENTFORGE_HOME"] = str(folder)
    reset_settings_cache()
    yield folder
    if old is None:
        os.environ.pop("AGENTFORGE_HOME", None)
    else:
        os.environ["AGENTFORGE_HOME"] = old
    reset_settings_cache()


@pytest.fixture()
def factory(tmp_path: Path) -> GitRepoFactory:
    return GitRepoFactory(tmp_path / "git")


@pytest.fixture(scope="session")
def api_url(prefect_api: None) -> str:
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    assert url and url.startswith("http://127.0.0.1"), url
    return str(url)


@dataclass
class Served:
    """One `agentforge serve` process; its log tells which flow runs it submitted."""

    proc: subprocess.Popen[str]
    log_path: Path
    name: str
    extra: dict[str, str] = field(default_factory=dict)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)  # the runner shuts down and cancels its runs
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_served(api_url: str, log_dir: Path, name: str, *, limit: int | None = None) -> Served:
    env = dict(os.environ)
    env.update({
        "PREFECT_API_URL": api_url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_LOGGERS_PREFECT_LEVEL": "INFO", "PYTHONUNBUFFERED": "1",
    })
    log_path = log_dir / f"serve-{name}.log"
    args = [sys.executable, "-m", "agentforge.cli.main", "serve", "--no-schedule"]
    if limit is not None:
        args += ["--limit", str(limit)]
    handle = log_path.open("w")
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=handle, stderr=subprocess.STDOUT, text=True)
    handle.close()
    return Served(proc=proc, log_path=log_path, name=name)


def deployments_registered(names: list[str]) -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    async def check() -> bool:
        async with get_client() as client:
            for full in names:
                try:
                    await client.read_deployment_by_name(full)
                except ObjectNotFound:
                    return False
        return True

    return asyncio.run(check())


def flow_run(run_id: Any) -> Any:
    from prefect.client.orchestration import get_client

    async def read() -> Any:
        async with get_client() as client:
            return await client.read_flow_run(run_id)

    return asyncio.run(read())


def wait_final(run_id: Any, served: list[Served]) -> Any:
    def done() -> Any:
        for s in served:
            if s.proc.poll() is not None:
                pytest.fail(f"serve process {s.name} exited {s.proc.returncode}:\n{s.log()[-3000:]}")
        run = flow_run(run_id)
        return run if run.state is not None and run.state.is_final() else None

    return wait_for(done, f"flow run {run_id} to finish")


@pytest.fixture(scope="session")
def served(api_url: str, module_home: Path, engine: sa.Engine,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `agentforge serve` process for the session (stopped at the end)."""
    from deployments.serve import DEPLOY_ON_MERGE, INSTALL, LOCK, SYNC_ALL, SYNC_ONE

    proc = start_served(api_url, tmp_path_factory.mktemp("logs"), "main", limit=1)
    try:
        wait_for(lambda: proc.proc.poll() is not None or deployments_registered(
            [SYNC_ALL, SYNC_ONE, LOCK, INSTALL, DEPLOY_ON_MERGE]), "deployments to register")
        if proc.proc.poll() is not None:
            pytest.fail(f"agentforge serve exited:\n{proc.log()[-3000:]}")
        yield proc
    finally:
        proc.stop()
