"""Deployments register on a real Prefect API; a run created through the API (as the UI does)
is executed by a served `agentforge serve` process and writes Postgres; a signed webhook
leads to a sync and a re-lock of the composition that uses the repository."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.deployments.conftest import (
    Served,
    composition_yaml,
    push_payload,
    scalar,
    sign,
    tool_yaml,
    wait_final,
    wait_for,
)
from tests.gitfactory import GitRepoFactory


def test_every_flow_is_a_deployment_with_a_typed_form() -> None:
    from agentforge.config import Settings
    from deployments.serve import build_deployments

    deps = {d.name: d for d in build_deployments(Settings())}
    assert set(deps) == {"sync-all", "sync-one", "lock", "install", "deploy", "deploy-on-merge"}
    cron = deps["sync-all"].schedules[0].schedule
    assert getattr(cron, "cron", None) == "*/15 * * * *"
    assert all(d.entrypoint and ":" not in d.entrypoint for d in deps.values())  # module paths
    for name, model in [("sync-one", "SyncOneRequest"), ("lock", "LockRequest"), ("install", "InstallRequest"),
                        ("deploy", "DeployRequest"), ("deploy-on-merge", "MergeRequest")]:
        schema = deps[name]._parameter_openapi_schema.model_dump()
        fields = schema["definitions"][model]["properties"]
        assert fields and all(f.get("description") for f in fields.values()), (name, fields)
    custom = build_deployments(Settings(sync_all_cron="0 * * * *"))
    assert getattr(custom[0].schedules[0].schedule, "cron", None) == "0 * * * *"


def test_a_run_created_through_the_api_completes_and_writes_postgres(
        served: Served, clean_db: sa.Engine, factory: GitRepoFactory) -> None:
    from prefect.deployments import run_deployment

    from agentforge.services.repos import add_repository

    repo = factory.create("ui-tools", files={"tools/t1/component.yaml": tool_yaml("t1", "1.0.0")}, tag="v1.0.0")
    add_repository(repo.url, name="ui-tools")
    run = run_deployment("sync-one/sync-one", parameters={"request": {"repository": "ui-tools"}}, timeout=0)
    final = wait_final(run.id, [served])
    assert final.state.is_completed(), final.state
    assert scalar(clean_db, "SELECT sync_status::text FROM repositories WHERE name='ui-tools'") == "SYNCED"
    assert scalar(clean_db, "SELECT count(*) FROM components WHERE name='t1'") == 1


def test_a_signed_merge_webhook_syncs_and_relocks(
        served: Served, clean_db: sa.Engine, factory: GitRepoFactory, tmp_path: Path) -> None:
    from agentforge.config import Settings
    from agentforge.services.compose import import_file
    from agentforge.services.repos import add_repository
    from agentforge.webhook import create_app
    from flows.lock import resolve_and_lock

    repo = factory.create("merge-tools", files={"tools/t1/component.yaml": tool_yaml("t1", "1.0.0")},
                          tag="v1.0.0")
    add_repository(repo.url, name="merge-tools")
    from flows.sync import sync_repositories

    sync_repositories(["merge-tools"])
    comp_file = tmp_path / "stack.yaml"
    comp_file.write_text(composition_yaml("stack", "t1", repo.url))
    import_file(comp_file)
    resolve_and_lock("stack", output=str(tmp_path / "first.yaml"), force_kind="composition")
    first = scalar(clean_db, "SELECT lock_file::text FROM compositions WHERE name='stack'")
    assert repo.commits[0] in first

    new = repo.commit(files={"tools/t1/component.yaml": tool_yaml("t1", "1.1.0")}, tags=["v1.1.0"])
    body = push_payload(repo, new)
    settings = Settings(webhook_secret="s3cret")
    started: list[str] = []
    with TestClient(create_app(settings=settings, poll_seconds=0.5)) as client:
        headers = {"X-GitHub-Event": "push", "X-Hub-Signature-256": sign("s3cret", body),
                   "Content-Type": "application/json"}
        answer = client.post("/webhooks/github", content=body, headers=headers)
        assert answer.status_code == 202 and answer.json()["status"] == "accepted", answer.text
        run_id = wait_for(lambda: scalar(clean_db, "SELECT flow_run_id FROM webhook_deliveries "
                                                   "WHERE status='STARTED'"), "the delivery to start a run")
        started.append(run_id)
        replay = client.post("/webhooks/github", content=body, headers=headers)
        assert replay.status_code == 202 and replay.json()["status"] == "duplicate"
        bad = client.post("/webhooks/github", content=body,
                          headers={**headers, "X-Hub-Signature-256": sign("wrong", body)})
        assert bad.status_code == 401
    final = wait_final(run_id, [served])
    assert final.state.is_completed(), final.state
    assert scalar(clean_db, "SELECT count(*) FROM webhook_deliveries") == 1
    relocked = scalar(clean_db, "SELECT lock_file::text FROM compositions WHERE name='stack'")
    assert new in relocked and '"version": "1.1.0"' in relocked
    assert scalar(clean_db, "SELECT count(*) FROM components WHERE name='t1'") == 2
