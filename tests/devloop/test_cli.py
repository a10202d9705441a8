"""The commands as a user runs them (subprocesses), and the pull flow under a real Prefect API."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agentforge.errors import AgentForgeError
from tests.cli.helpers import AGENTFORGE, cli
from tests.devloop.conftest import README_V1, Installed, definition_yaml

PROBE = ("import atexit, sys\n"
         "atexit.register(lambda: sys.stderr.write('\\nPREFECT_LOADED\\n' if any(m == 'prefect' or "
         "m.startswith('prefect.') for m in sys.modules) else '\\nNO_PREFECT\\n'))\n"
         "from agentforge.cli.main import run\nsys.argv = ['agentforge'] + sys.argv[1:]\nrun()\n")


def probe(*args: str) -> tuple[int, str, str]:
    import subprocess

    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout, proc.stderr


def test_read_only_commands_answer_without_prefect(installed: Installed) -> None:
    from agentforge.services import devloop

    assert AGENTFORGE  # the same interpreter the helpers use
    devloop.edit_component("lookup", sets=["spec.config.timeout=45"], reason="slow")
    code, out, err = probe("status", "--json")
    assert code == 0, err
    assert err.strip().endswith("NO_PREFECT")
    [line] = json.loads(out)
    assert line["sync_status"] == "MODIFIED" and line["local_changes"] == 1 and line["installed_commit"]
    code, out, err = probe("diff", "lookup")
    assert code == 0 and err.strip().endswith("NO_PREFECT"), err
    assert "+    timeout: 45" in out
    code, out, err = probe("history", "lookup")
    assert code == 0 and err.strip().endswith("NO_PREFECT"), err
    assert "spec.config.timeout" in out and "slow" in out


def test_edit_errors_exit_2_naming_the_path(installed: Installed) -> None:
    result = cli("edit", "lookup", "--set", "spec.type=nonsense")
    assert result.code == 2 and "spec.type" in result.err and "agentforge:" in result.err
    assert not installed.row()["has_local_changes"]


def test_component_new_and_lint(clean_db: object, home: Path, tmp_path: Path) -> None:
    from agentforge.services import devloop

    result = cli("component", "new", "my-tool", "--type", "tool", "--dir", str(tmp_path / "ws"))
    assert result.code == 0, result.err
    for kind in ("prompt", "agent"):
        devloop.new_component(kind, f"my-{kind}", directory=tmp_path / "ws")
    result = cli("lint", str(tmp_path / "ws"))
    assert result.code == 0, result.out + result.err
    assert result.out.count("⚠") == 3  # descriptions still TODO: warnings, not errors
    assert {s.name: s.sync_status for s in devloop.status()} == {f"my-{k}": "LOCAL_ONLY" for k in ("tool", "prompt",
                                                                                               "agent")}
    (tmp_path / "ws" / "my-tool" / "component.yaml").write_text(
        "apiVersion: forge.dev/v1\nkind: Tool\nmetadata: {name: my-tool, version: one}\n")
    result = cli("lint", str(tmp_path / "ws"))
    assert result.code == 1 and "✗" in result.out and "metadata.version" in result.out
    with pytest.raises(AgentForgeError, match="not valid"):
        devloop.new_component("tool", "Bad Name", directory=tmp_path)


def test_pull_flow_and_resolve_cli(installed: Installed, prefect_api: None) -> None:
    from agentforge.services import devloop
    from flows.pull import pull

    installed.release("1.1.0", {"component.yaml": definition_yaml("1.1.0", type="webhook")})
    out = pull(name="lookup")
    assert out["result"] == "fast-forward" and out["sync_status"] == "SYNCED"
    assert installed.row()["version"] == "1.1.0"
    devloop.edit_component("lookup", sets=["spec.config.timeout=45"])
    (installed.folder / "README.md").write_text(README_V1.replace("line two", "mine"))
    installed.release("1.2.0", {"component.yaml": definition_yaml("1.2.0", type="webhook",
                                                                  config={"timeout": 50, "retries": 1,
                                                                          "region": "eu"}),
                                "README.md": README_V1.replace("line two", "theirs")})
    out = pull(name="lookup")
    assert out["result"] == "conflict"
    assert devloop.status()[0].sync_status == "CONFLICT"
    result = cli("resolve", "lookup", "--ours")
    assert result.code == 0, result.err
    assert installed.row()["sync_status"] == "MODIFIED"
    assert (installed.folder / "README.md").read_text() == README_V1.replace("line two", "mine")
