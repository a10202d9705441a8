"""The real Prefect flow and the real CLI (one Prefect API per test session)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.helpers import cli
from tests.deploy.conftest import Stack, component_files, composition, write_composition
from tests.deploy.helpers import get


@pytest.fixture(scope="module")
def prefect_env(prefect_api: None) -> Iterator[dict[str, str]]:
    from prefect.settings import PREFECT_API_URL

    yield {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


def test_flow_deploys_and_fails_with_rollback(stack: Stack, prefect_api: None, monkeypatch) -> None:
    from agentforge.services.deploy import ReadinessFailed
    from flows.deploy import deploy_composition

    [result] = deploy_composition("helpdesk", "development", sets=["runtime.timeout=5"])
    assert result["ok"] and result["status"] == "RUNNING"
    assert get(result["url"], "/health/ready").status_code == 200
    stack.handles["stack"].commit(files=component_files("1.1.0", tool_config={"token": "${HELPDESK_UNSET_TOKEN}"}),
                                  tags=["v1.1.0"])
    stack.sync()
    from agentforge.services.deploy import lock_composition

    lock_composition("helpdesk", upgrade=True)
    with pytest.raises(ReadinessFailed) as exc:
        deploy_composition("helpdesk", "development")
    assert "rolled back" in exc.value.message and result["url"] in exc.value.message
    assert get(result["url"], "/health/ready").status_code == 200


def test_cli_import_lock_deploy_inspect_stop(lib: Stack, tmp_path: Path, prefect_env: dict[str, str]) -> None:
    lib.stack()
    lib.sync()
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: forge.dev/v1\nkind: Composition\nmetadata: {name: helpdesk}\n")
    out = cli("compose", "import", str(bad))
    assert out.code == 2 and str(bad) in out.err and "metadata.version" in out.err
    for text, needle in (("- a\n- b\n", "expected a mapping"), ("a: 1\na: 1\n", "duplicate key")):
        bad.write_text(text)
        out = cli("compose", "import", str(bad))
        assert out.code == 2 and needle in out.err and "Hint: " in out.err, out.err
    good = write_composition(tmp_path, composition())
    assert cli("compose", "import", str(good)).code == 0

    locked = cli("compose", "lock", "helpdesk", "-o", str(tmp_path / "forge-lock.yaml"), env=prefect_env)
    assert locked.code == 0, locked.err
    assert (tmp_path / "forge-lock.yaml").is_file()
    assert lib.q("SELECT lock_file IS NOT NULL FROM compositions") == [(True,)]

    deployed = cli("compose", "deploy", "helpdesk", "--env", "development", env=prefect_env)
    assert deployed.code == 0, deployed.err
    url = re.search(r"http://127\.0\.0\.1:\d+", deployed.out)
    assert url is not None
    assert get(url.group(0), "/health/ready").status_code == 200

    listed = cli("--json", "compose", "instances", "helpdesk")
    assert listed.code == 0 and listed.json()[0]["status"] == "RUNNING"
    repos = [name for (name,) in lib.q("SELECT name FROM repositories ORDER BY name")]
    refused = cli("repo", "rm", repos[0])  # its components serve the running instance
    assert refused.code == 2 and "helpdesk/development" in refused.err and "Traceback" not in refused.err
    assert [name for (name,) in lib.q("SELECT name FROM repositories ORDER BY name")] == repos
    assert "STOPPED" in cli("instance", "stop", "helpdesk/development").out
    from agentforge.services.deploy import lock_composition, start

    assert start("helpdesk/development").ok

    # A new lock that fails readiness: the CLI says so, exits 1, the old instance keeps serving.
    lib.handles["stack"].commit(files=component_files("1.1.0", tool_config={"token": "${HELPDESK_UNSET_TOKEN}"}),
                                tags=["v1.1.0"])
    lib.sync()
    lock_composition("helpdesk", upgrade=True)
    failed = cli("compose", "deploy", "helpdesk", "--env", "development", env=prefect_env)
    assert failed.code == 1 and "rolled back" in failed.err
    serving = cli("--json", "compose", "instances").json()[0]
    assert serving["status"] == "RUNNING" and get(serving["url"], "/health/ready").status_code == 200
