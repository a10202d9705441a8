"""Deploy-on-merge end to end: a signed GitHub ``push`` to the default branch, received by the
webhook app (in process, real ``run_deployment`` trigger), is run by the served `agentforge serve`
process, which syncs the repository, re-locks the composition and redeploys its auto-deploy
instance: the instance then serves the new commit, its old process is gone. Once that lock is on
hold (rolled back), a later merge re-locks to it again and redeploys nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.deploy.conftest import component_files, composition, write_composition
from tests.deploy.helpers import deploy
from tests.deployments.conftest import Served, push_payload, scalar, sign, wait_final, wait_for
from tests.gitfactory import GitRepoFactory, RepoHandle

SECRET = "merge-secret"
REF = "helpdesk/development"


def stop_every_instance(engine: sa.Engine) -> None:
    """Every runtime server of this test, whichever process started it (this one or the served
    flow run): the pids the database records plus any process carrying an instance id."""
    from agentforge.runtime import supervisor

    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT id::text, pid FROM composition_instances")).all()
    pids = {pid for _, pid in rows if pid is not None} | set(supervisor._children)
    for instance_id, _ in rows:
        pids.update(supervisor.instance_pids(instance_id))
    for pid in pids:
        supervisor.stop_instance(pid, timeout=5)


@pytest.fixture()
def deployed(served: Served, clean_db: sa.Engine, factory: GitRepoFactory,
             tmp_path: Path) -> Iterator[RepoHandle]:
    """Repository "stack" at v1.0.0, synced; composition helpdesk (auto-deploy in development)
    locked and deployed there. The home is the served process's (``module_home``), so both
    processes see the same bundles and lock files."""
    from agentforge.services import deploy as deploy_svc
    from agentforge.services import sync as sync_svc
    from agentforge.services.compose import import_file
    from agentforge.services.repos import add_repository

    handle = factory.create("stack", files=component_files("1.0.0"), tag="v1.0.0")
    add_repository(handle.url, name="stack")
    plan = sync_svc.plan_sync(None)
    sync_svc.record_plan_outcomes(plan)
    for repo_id in plan.to_sync:
        sync_svc.sync_repository(repo_id)
    doc = composition(spec__environments={"development": {"auto_deploy": True, "llm": {"model": "small-model"}},
                                          "production": {"runtime": {"timeout": 300}}})
    import_file(write_composition(tmp_path, doc))
    deploy_svc.lock_composition("helpdesk")
    try:
        [first] = deploy("helpdesk", "development")
        assert first.ok, first.message
        yield handle
    finally:
        stop_every_instance(clean_db)


def instance() -> dict[str, Any]:
    from agentforge.services.deploy import list_instances

    return next(i for i in list_instances("helpdesk") if i["ref"] == REF)


def served_components(url: str) -> dict[str, Any]:
    answer = httpx.get(url + "/v1/composition", timeout=10)
    assert answer.status_code == 200, answer.text
    components: dict[str, Any] = answer.json()["components"]
    return components


def merge(client: TestClient, handle: RepoHandle, sha: str, engine: sa.Engine, served: Served) -> Any:
    """POST a signed push of ``sha`` to main; wait for the deploy-on-merge run it starts to finish."""
    body = push_payload(handle, sha)
    answer = client.post("/webhooks/github", content=body, headers={
        "X-GitHub-Event": "push", "X-Hub-Signature-256": sign(SECRET, body), "Content-Type": "application/json"})
    assert answer.status_code == 202 and answer.json()["status"] == "accepted", answer.text
    run_id = wait_for(lambda: scalar(engine, "SELECT flow_run_id FROM webhook_deliveries WHERE head_commit = :sha "
                                             "AND status = 'STARTED'", sha=sha), f"the delivery of {sha[:8]} to start")
    final = wait_final(run_id, [served])
    assert final.state.is_completed(), (final.state, served.log()[-3000:])
    assert final.deployment_id is not None  # a run of the served deployment, not the in-process fallback
    return final


def test_a_signed_merge_redeploys_the_new_commit_and_a_held_lock_is_left_alone(
        served: Served, deployed: RepoHandle, clean_db: sa.Engine) -> None:
    from agentforge.config import Settings
    from agentforge.runtime.supervisor import is_alive
    from agentforge.services import deploy as deploy_svc
    from agentforge.services.webhooks import auto_deploy_targets
    from agentforge.webhook import create_app

    before = instance()
    assert before["status"] == "RUNNING" and before["pid"]
    old_commit = deployed.commits[0]
    assert {c["version"] for c in served_components(before["url"]).values()} == {"1.0.0"}
    assert {c["commit"] for c in served_components(before["url"]).values()} == {old_commit}

    new_commit = deployed.commit(files=component_files("1.1.0", greeting="Welcome"), tags=["v1.1.0"])
    with TestClient(create_app(settings=Settings(webhook_secret=SECRET), poll_seconds=0.3)) as client:
        merge(client, deployed, new_commit, clean_db, served)

        after = instance()
        assert after["status"] == "RUNNING", after
        assert after["lock_hash"] != before["lock_hash"] and after["pid"] != before["pid"]
        assert not is_alive(before["pid"])  # the old process was stopped after the switch
        components = served_components(after["url"])
        assert {c["version"] for c in components.values()} == {"1.1.0"}
        assert {c["commit"] for c in components.values()} == {new_commit}
        rendered = httpx.post(after["url"] + "/v1/prompts/greet/render", json={"variables": {"name": "Ada"}},
                              timeout=10)
        assert rendered.json() == {"text": "Welcome, Ada!"}
        assert scalar(clean_db, "SELECT lock_hash FROM composition_instances") == after["lock_hash"]
        assert new_commit in scalar(clean_db, "SELECT lock_file::text FROM compositions WHERE name='helpdesk'")
        assert [s for (s,) in _rows(clean_db, "SELECT status::text FROM deployments ORDER BY created_at")] == \
            ["SUPERSEDED", "HEALTHY"]

        # Roll back: 1.1.0's lock goes on hold in development and 1.0.0's serves again.
        rollback = deploy_svc.plan_rollback("helpdesk", "development")
        assert rollback.bad_lock_hash == after["lock_hash"] and rollback.good_lock_hash == before["lock_hash"]
        [back] = deploy("helpdesk", "development", lock=rollback.lock)
        assert back.ok and back.lock_hash == before["lock_hash"]
        rolled = instance()
        deployments_before = scalar(clean_db, "SELECT count(*) FROM deployments")

        # A later merge (no new release) re-locks to the held 1.1.0 lock: nothing is redeployed.
        untagged = deployed.commit(files={"README.md": "docs only\n"})
        merge(client, deployed, untagged, clean_db, served)

    still = instance()
    assert still["status"] == "RUNNING" and still["pid"] == rolled["pid"] and still["url"] == rolled["url"]
    assert still["lock_hash"] == before["lock_hash"]
    assert {c["version"] for c in served_components(still["url"]).values()} == {"1.0.0"}
    assert scalar(clean_db, "SELECT count(*) FROM deployments") == deployments_before
    assert scalar(clean_db, "SELECT count(*) FROM lock_holds WHERE lock_hash = :h",
                  h=after["lock_hash"]) == 1
    [target] = auto_deploy_targets("helpdesk")
    assert (target.environment, target.instance, target.skip) == ("development", "development", "the new lock is on hold")
    # The stored lock is the held one again (the re-lock ran; the hold alone kept it off the instance).
    assert new_commit in scalar(clean_db, "SELECT lock_file::text FROM compositions WHERE name='helpdesk'")
    assert scalar(clean_db, "SELECT count(*) FROM webhook_deliveries WHERE status = 'STARTED'") == 2


def _rows(engine: sa.Engine, sql: str) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(sa.text(sql)).all())
