"""Deploy, redeploy, failed readiness with rollback, stop/start, metrics — real processes and HTTP."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from agentforge.errors import AgentForgeError
from tests.deploy.conftest import Stack, component_files, stop_all_instances
from tests.deploy.helpers import deploy, get, post


def instance(ref: str = "helpdesk/development") -> dict:
    from agentforge.services.deploy import list_instances

    return next(i for i in list_instances() if i["ref"] == ref)


def test_deploy_serves_the_merged_composition(stack: Stack) -> None:
    from agentforge.services.compose import set_local_override

    set_local_override("helpdesk", "lookup", ["config.retries=5"])
    [result] = deploy("helpdesk", "development", sets=["runtime.timeout=90", "components.helper.llm.temperature=0.5"])
    assert result.ok and result.status == "RUNNING"
    assert result.url.startswith("http://127.0.0.1:")

    assert get(result.url, "/health/ready").status_code == 200
    served = get(result.url, "/v1/composition").json()
    text = json.dumps(served)
    assert "lookup" in text and "greet" in text and "helper" in text
    # The DB row: settings in FORMATS §4 order, ${ENV} kept unresolved.
    rows = stack.q("SELECT i.config, i.overrides, i.status, i.lock_hash, i.environment, c.is_deployed, "
                   "c.environment, c.deployed_at FROM composition_instances i JOIN compositions c "
                   "ON c.id = i.composition_id")
    [(config, overrides, status, lock_hash, env, is_deployed, comp_env, deployed_at)] = rows
    assert config["llm"] == {"provider": "echo", "model": "small-model", "api_key": "${HELPDESK_KEY:-none}"}
    assert config["runtime"] == {"timeout": 90}
    assert status == "RUNNING" and env == "development" and lock_hash == result.lock_hash
    assert is_deployed and comp_env == "development" and deployed_at is not None
    # Component specs: definition → composition override → local override → --set.
    bundle_resolved = next(Path(os.environ["AGENTFORGE_HOME"]).glob("instances/*/*/resolved.json"))
    components = json.loads(bundle_resolved.read_text())["components"]
    assert components["lookup"]["spec"]["config"] == {"timeout": 45, "retries": 5}
    assert components["helper"]["spec"]["llm"] == {"provider": "echo", "model": "base-model", "temperature": 0.5}
    assert components["greet"]["role"] == "system"
    assert overrides["components"]["lookup"] == {"config": {"timeout": 45, "retries": 5}}

    rendered = post(result.url, "/v1/prompts/greet/render", {"variables": {"name": "Ada"}})
    assert rendered.json() == {"text": "Hello, Ada!"}
    assert post(result.url, "/v1/prompts/greet/render", {"variables": {}}).status_code == 422
    invoked = post(result.url, "/v1/agents/helper/invoke", {"input": "hi", "variables": {"name": "Ada"}})
    assert invoked.status_code == 200 and invoked.json()["output"]

    # Bundles are immutable and reused: the same lock redeploys from the same folder.
    [again] = deploy("helpdesk", "development")
    assert again.ok and again.lock_hash == result.lock_hash and again.url != result.url
    assert get(again.url, "/health/ready").status_code == 200
    assert len(list((Path(os.environ["AGENTFORGE_HOME"]) / "bundles" / "helpdesk").iterdir())) == 1


def test_redeploy_new_version_switches_then_stops_the_old(stack: Stack) -> None:
    from agentforge.runtime.supervisor import is_alive
    from agentforge.services import deploy as svc

    [first] = deploy("helpdesk", "development")
    old_pid = instance()["pid"]
    stack.handles["stack"].commit(files=component_files("1.1.0", greeting="Welcome"), tags=["v1.1.0"])
    stack.sync()
    # The stored lock is frozen: deploying again without re-locking keeps 1.0.0.
    [same] = deploy("helpdesk", "development")
    assert same.lock_hash == first.lock_hash
    # Same lock, same configuration, healthy process: the redeploy is a no-op (same process, no new row).
    assert same.url == first.url and instance()["pid"] == old_pid
    # Re-lock, allowing the newer release (the resolver keeps pins unless told otherwise).
    svc.lock_composition("helpdesk", upgrade=True)
    [second] = deploy("helpdesk", "development")
    assert second.ok and second.lock_hash != first.lock_hash
    assert post(second.url, "/v1/prompts/greet/render", {"variables": {"name": "Ada"}}).json() == \
        {"text": "Welcome, Ada!"}
    assert not is_alive(old_pid)
    row = instance()
    assert row["status"] == "RUNNING" and row["lock_hash"] == second.lock_hash and row["url"] == second.url
    statuses = [s for (s,) in stack.q("SELECT status FROM deployments ORDER BY created_at")]
    assert statuses == ["SUPERSEDED", "HEALTHY"]


def test_failed_readiness_rolls_back_and_rollback_holds_the_bad_lock(stack: Stack, monkeypatch) -> None:
    from agentforge.services import deploy as svc

    [good] = deploy("helpdesk", "development")
    # 1.1.0's tool needs a variable nobody exported: the new process exits before it is ready.
    stack.handles["stack"].commit(files=component_files("1.1.0", tool_config={"token": "${HELPDESK_UNSET_TOKEN}"}),
                                  tags=["v1.1.0"])
    stack.sync()
    svc.lock_composition("helpdesk", upgrade=True)
    [bad] = deploy("helpdesk", "development")
    assert not bad.ok and bad.rolled_back
    assert "rolled back" in bad.message and good.url in bad.message
    # The previous bundle kept serving throughout, and still does.
    assert get(good.url, "/health/ready").status_code == 200
    row = instance()
    assert row["status"] == "RUNNING" and row["url"] == good.url and row["lock_hash"] == good.lock_hash
    failed = stack.q("SELECT status, error_message FROM deployments ORDER BY created_at")
    assert [s for s, _ in failed] == ["HEALTHY", "FAILED"]
    assert "HELPDESK_UNSET_TOKEN" in failed[1][1]

    # Now make the bad lock "succeed" (the variable exported), then roll back from it.
    monkeypatch.setenv("HELPDESK_UNSET_TOKEN", "x")
    [forced] = deploy("helpdesk", "development")
    assert forced.ok
    with pytest.raises(AgentForgeError) as unknown:
        svc.plan_rollback("helpdesk", "nope")
    assert unknown.value.code == "ENVIRONMENT_UNKNOWN" and "nope" in unknown.value.message
    plan = svc.plan_rollback("helpdesk", "development")
    assert plan.good_lock_hash == good.lock_hash and plan.bad_lock_hash == forced.lock_hash
    [back] = deploy("helpdesk", "development", lock=plan.lock)
    assert back.ok and back.lock_hash == good.lock_hash
    # The rolled-back lock is on hold: refused unless forced, deployable once released.
    with pytest.raises(AgentForgeError) as held:
        deploy("helpdesk", "development")
    assert held.value.code == "LOCK_HELD"
    assert svc.release_hold("helpdesk", "development", forced.lock_hash[7:19]) == [forced.lock_hash]
    [again] = deploy("helpdesk", "development")
    assert again.ok and again.lock_hash == forced.lock_hash


def test_first_deploy_failing_readiness_is_error_without_fallback(stack: Stack) -> None:
    [result] = deploy("helpdesk", "development", sets=["llm.api_key=${HELPDESK_NEVER_SET}"])
    assert not result.ok and not result.rolled_back and result.status == "ERROR"
    assert "no previous instance" in result.message
    row = instance()
    assert row["status"] == "ERROR" and row["pid"] is None
    assert stack.q("SELECT is_deployed FROM compositions") == [(False,)]


def test_stop_start_restart_and_reconcile(stack: Stack) -> None:
    from agentforge.services import deploy as svc

    [_result] = deploy("helpdesk", "development")
    stopped = svc.stop("helpdesk/development")
    assert stopped["status"] == "STOPPED" and stopped["last_stopped"] is not None and stopped["pid"] is None
    started = svc.start("helpdesk/development")
    assert started.ok and started.status == "RUNNING"
    assert get(started.url, "/health/ready").status_code == 200
    restarted = svc.restart(instance()["id"])
    assert restarted.ok
    # The short id `compose instances` shows names it too; a prefix of no instance is NOT_FOUND.
    short = str(instance()["id"])[:8]
    assert svc.instance_health(short)["pid"] == instance()["pid"]
    with pytest.raises(AgentForgeError) as missing:
        svc.instance_health("0" * 8 if short != "0" * 8 else "f" * 8)
    assert missing.value.code == "NOT_FOUND"
    health = svc.instance_health("helpdesk/development")
    assert health["healthy"] and health["probes"] == {"/health/live": 200, "/health/ready": 200}
    # A process that dies behind our back is reported as ERROR by the next look.
    os.kill(instance()["pid"], signal.SIGKILL)
    from agentforge.runtime.supervisor import _wait_gone

    _wait_gone(health["pid"], 10)
    assert instance()["status"] == "ERROR"
    assert not svc.instance_health("helpdesk/development")["healthy"]
    assert "Uvicorn running" in svc.instance_logs("helpdesk/development", 200) or svc.instance_logs(
        "helpdesk/development", 200)
    assert svc.start("helpdesk/development").ok


def test_metrics_after_n_requests(stack: Stack) -> None:
    from agentforge.services import deploy as svc

    [result] = deploy("helpdesk", "development")
    for i in range(7):
        assert post(result.url, "/v1/prompts/greet/render", {"variables": {"name": f"u{i}"}}).status_code == 200
    assert post(result.url, "/v1/prompts/nope/render", {"variables": {}}).status_code == 404
    assert post(result.url, "/v1/prompts/greet/render", {"variables": {}}).status_code == 422
    svc.stop("helpdesk/development")  # a graceful stop flushes the last batch
    row = instance()
    assert row["request_count"] == 9
    assert row["error_count"] == 0  # 4xx are the caller's mistakes, not errors of the instance
    assert row["avg_response_time"] is not None and row["avg_response_time"] > 0


def test_finalizer_helper_stops_everything(stack: Stack) -> None:
    from agentforge.runtime.supervisor import is_alive

    [result] = deploy("helpdesk", "development")
    pid = instance()["pid"]
    stop_all_instances(stack.engine)
    assert not is_alive(pid) and result.ok


def test_agent_without_llm_gets_the_users_default_provider_and_model(stack: Stack) -> None:
    import yaml

    from agentforge.db import session_scope
    from agentforge.services import deploy as svc
    from agentforge.services.settings import set_value

    agent = {"apiVersion": "forge.dev/v1", "kind": "Agent", "metadata": {"name": "helper", "version": "1.1.0"},
             "spec": {"llm": {"provider": "echo"},  # names no model
                      "dependencies": {"prompts": [{"component": "greet", "version": "^1.0.0"}],
                                       "tools": [{"component": "lookup", "version": "^1.0.0"}]}}}
    stack.handles["stack"].commit(files={"agents/helper/component.yaml": yaml.safe_dump(agent)}, tags=["v1.1.0"])
    stack.sync()
    with session_scope() as session:
        set_value("default_llm_model", "from-defaults", session=session)
    svc.lock_composition("helpdesk", upgrade=True)
    [result] = deploy("helpdesk", "development")
    served = get(result.url, "/v1/composition").json()
    helper = served["components"]["helper"]
    assert helper["version"] == "1.1.0"
    assert helper["spec"]["llm"]["model"] == "from-defaults"  # filled in
    assert helper["spec"]["llm"]["provider"] == "echo"  # the agent's own choice kept
