"""kill -9 a deploy at every step: the old instance keeps serving, a re-run converges.

An update deploy (a running instance, a new ``--set``) is killed at each step. Until the
switch is committed the previous process still answers ``/health/ready`` (a crashed deploy
is no outage). After a re-run of the same deploy: the instance is RUNNING on the recorded
pid, exactly one runtime process exists for it (no orphan candidate), no deployment or
instance status is left IN_PROGRESS / STARTING / UPDATING, and a bundle is complete or
absent (no staging folder survives a successful re-run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.crash.conftest import assert_nothing_stuck, killed, runtime_processes
from tests.crash.driver import DEPLOY_POINTS
from tests.deploy.conftest import Stack
from tests.deploy.helpers import deploy, get

SETS = ["runtime.timeout=61"]


def _converged(stack: Stack) -> None:
    [(instance_id, status, pid, url)] = stack.q("SELECT id::text, status::text, pid, url FROM composition_instances")
    assert status == "RUNNING"
    assert runtime_processes(instance_id) == [pid]
    assert get(url, "/health/ready").status_code == 200
    assert_nothing_stuck(stack.engine)
    bundles = Path(os.environ["AGENTFORGE_HOME"]) / "bundles" / "helpdesk"
    folders = list(bundles.iterdir())
    assert [p.name for p in folders if p.name.startswith(".")] == []  # no staging left
    assert folders and all((p / "bundle.json").is_file() for p in folders)


@pytest.mark.parametrize("point", [p for p in DEPLOY_POINTS if p != "deploy.bundle"])  # the bundle is reused
def test_update_deploy_killed(stack: Stack, no_orphans: None, point: str) -> None:
    [first] = deploy("helpdesk", "development")
    assert first.ok

    killed("deploy", "helpdesk", "development", *SETS, at=point)
    if point != "deploy.switched":
        assert get(first.url, "/health/ready").status_code == 200  # no outage

    [again] = deploy("helpdesk", "development", sets=SETS)
    assert again.ok, again.message
    _converged(stack)


@pytest.mark.parametrize("point", ["deploy.bundle", "deploy.spawned"])
def test_first_deploy_killed(stack: Stack, no_orphans: None, point: str) -> None:
    killed("deploy", "helpdesk", "development", at=point)
    [result] = deploy("helpdesk", "development")
    assert result.ok, result.message
    _converged(stack)
