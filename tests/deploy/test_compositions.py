"""Compositions from files and repositories; bad files and bad overrides fail clearly, deploying nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentforge.errors import AgentForgeError
from tests.deploy.conftest import Stack, component_files, composition, write_composition
from tests.deploy.helpers import deploy


def nothing_deployed(lib: Stack) -> None:
    assert lib.q("SELECT count(*) FROM composition_instances") == [(0,)]
    assert lib.q("SELECT count(*) FROM deployments") == [(0,)]
    assert lib.q("SELECT count(*) FROM compositions WHERE is_deployed") == [(0,)]


def test_import_is_validated_and_idempotent(lib: Stack, tmp_path: Path) -> None:
    from agentforge.services.compose import import_file

    bad = composition()
    bad["spec"]["overrides"] = {"widgets": {"x": {}}}
    path = write_composition(tmp_path, bad, "bad.yaml")
    with pytest.raises(AgentForgeError) as exc:
        import_file(path)
    assert str(path) in exc.value.message and "spec.overrides" in exc.value.message
    no_version = composition()
    del no_version["metadata"]["version"]
    with pytest.raises(AgentForgeError) as exc:
        import_file(write_composition(tmp_path, no_version, "nov.yaml"))
    assert "nov.yaml" in exc.value.message and "metadata.version" in exc.value.message
    assert lib.q("SELECT count(*) FROM compositions") == [(0,)]

    good = write_composition(tmp_path, composition())
    assert import_file(good).status == "created"
    assert import_file(good).status == "unchanged"
    write_composition(tmp_path, composition(metadata__version="1.1.0"))
    assert import_file(good).status == "updated"
    assert lib.q("SELECT version FROM compositions") == [("1.1.0",)]


def test_unknown_component_in_overrides_fails_and_deploys_nothing(stack: Stack, tmp_path: Path) -> None:
    from agentforge.services.compose import import_file, validate_composition

    doc = composition()
    doc["spec"]["overrides"]["tools"]["missing-tool"] = {"config": {"a": 1}}
    import_file(write_composition(tmp_path, doc))
    report = validate_composition("helpdesk", "development")
    assert not report.ok
    assert any("spec.overrides.tools.missing-tool" in p for p in report.problems)
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", "development")
    assert "missing-tool" in exc.value.message and exc.value.code == "OVERRIDE_INVALID"
    nothing_deployed(stack)
    from agentforge.services.deploy import lock_composition

    with pytest.raises(AgentForgeError) as exc:  # `compose lock` refuses it too, storing no lock
        lock_composition("helpdesk")
    assert "missing-tool" in exc.value.message and exc.value.code == "OVERRIDE_INVALID"
    assert stack.q("SELECT lock_file IS NULL FROM compositions WHERE name = 'helpdesk'") == [(True,)]


def test_bad_set_paths_fail_and_deploy_nothing(stack: Stack) -> None:
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", "development", sets=["components.nobody.x=1"])
    assert "nobody" in exc.value.message
    with pytest.raises(AgentForgeError) as exc:  # below a scalar: llm.model is a string
        deploy("helpdesk", "development", sets=["components.helper.llm.model.size=3"])
    assert "components.helper.llm.model.size" in exc.value.message
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", "development", sets=["llm..model=x"])
    assert "llm..model" in exc.value.message
    nothing_deployed(stack)


def test_missing_environment_fails_and_deploys_nothing(stack: Stack) -> None:
    from agentforge.services.compose import validate_composition

    report = validate_composition("helpdesk", "staging")
    assert not report.ok and "spec.environments.staging" in report.problems[0]
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", "staging")
    assert exc.value.code == "ENVIRONMENT_UNKNOWN"
    assert "staging" in exc.value.message and "development" in exc.value.message
    nothing_deployed(stack)


def test_unresolvable_composition_fails_and_deploys_nothing(stack: Stack, tmp_path: Path) -> None:
    from agentforge.services.compose import import_file, validate_composition

    doc = composition()
    doc["spec"]["dependencies"]["agents"] = [{"name": "ghost-agent", "version": "^1"}]
    import_file(write_composition(tmp_path, doc))
    report = validate_composition("helpdesk")
    assert not report.ok and "ghost-agent" in report.problems[0]
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", "development")
    assert "ghost-agent" in exc.value.message
    nothing_deployed(stack)


def test_local_overrides_survive_resync_and_apply_last(lib: Stack) -> None:
    from agentforge.services.compose import set_local_override, show_composition, validate_composition

    files = component_files()
    files["compositions/helpdesk.yaml"] = yaml.safe_dump(composition())
    manifest = yaml.safe_load(files["forge-manifest.yaml"])  # type: ignore[arg-type]
    manifest["compositions"] = [{"name": "helpdesk", "path": "compositions/helpdesk.yaml"}]
    files["forge-manifest.yaml"] = yaml.safe_dump(manifest)
    handle = lib.factory.create("stack", files=files, tag="v1.0.0")
    lib.handles["stack"] = handle
    lib.register(handle)
    lib.sync()
    assert validate_composition("helpdesk", "development").ok
    with pytest.raises(AgentForgeError) as exc:
        set_local_override("helpdesk", "nobody", ["x=1"])
    assert "nobody" in exc.value.message
    set_local_override("helpdesk", "lookup", ["config.timeout=99"])
    # The repository changes its composition; the user's override stays.
    files2 = {"compositions/helpdesk.yaml": yaml.safe_dump(composition(metadata__description="v2"))}
    handle.commit(files=files2)
    lib.sync()
    shown = show_composition("helpdesk")
    assert shown["description"] == "v2" and shown["has_local_changes"]
    assert shown["local_overrides"] == {"tools": {"lookup": {"config": {"timeout": 99}}}}
    [result] = deploy("helpdesk", "development")
    assert result.ok
    resolved = lib.q("SELECT overrides FROM composition_instances")[0][0]
    assert resolved["components"]["lookup"] == {"config": {"timeout": 99}}


@pytest.mark.parametrize("env", ["../../../../escaped", "../escaped", "bad env!", "Dev", "x\n\x1b[31mred", ""])
def test_bad_environment_names_never_reach_the_filesystem(stack: Stack, env: str, home: Path) -> None:
    """An environment name is part of the bundle's folder: `--env ../../x` wrote a bundle outside the home."""
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", env)
    assert exc.value.code == "ENVIRONMENT_NAME_INVALID" and exc.value.exit_code == 2
    assert "\x1b" not in exc.value.message
    nothing_deployed(stack)
    assert not any(p.name.endswith("escaped") for p in home.parent.rglob("*escaped*"))


def test_cli_refuses_a_bad_environment_before_prefect(stack: Stack) -> None:
    from tests.cli.helpers import cli

    res = cli("compose", "deploy", "helpdesk", "--env", "../../../x")
    assert res.code == 2 and "ENVIRONMENT_NAME_INVALID" in res.err and "Traceback" not in res.err, res.err
    nothing_deployed(stack)


@pytest.mark.parametrize("name", ["../../etc", "BAD NAME", "x\n\x1b[31mred", "a" * 5000, ""])
def test_bad_instance_names_are_refused_before_anything_starts(stack: Stack, name: str) -> None:
    with pytest.raises(AgentForgeError) as exc:
        deploy("helpdesk", "development", instance=name)
    assert exc.value.code == "INSTANCE_NAME_INVALID" and exc.value.exit_code == 2
    assert "\x1b" not in exc.value.message  # control characters are shown escaped, never sent to the terminal
    nothing_deployed(stack)
