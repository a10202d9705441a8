"""The webhook receiver in-process (Starlette's test client, real Postgres): signatures, size
limits, filtering, the durable record, replays, and recovery of recorded-but-not-started
deliveries. The trigger is a recorder here; test_deployments covers the real run_deployment."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from tests.deployments.conftest import push_payload, scalar, sign, wait_for
from tests.gitfactory import GitRepoFactory, RepoHandle

SECRET = "top-secret"


class Recorder:
    def __init__(self) -> None:
        self.calls: list[Any] = []

    def __call__(self, delivery: Any) -> str:
        self.calls.append(delivery)
        return f"run-{len(self.calls)}"


@pytest.fixture()
def repo(clean_db: sa.Engine, home: Any, factory: GitRepoFactory) -> RepoHandle:
    from agentforge.services.repos import add_repository

    handle = factory.create("hook-tools")
    add_repository(handle.url, name="hook-tools")
    return handle


@pytest.fixture()
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture()
def client(repo: RepoHandle, recorder: Recorder) -> Iterator[TestClient]:
    from agentforge.config import Settings
    from agentforge.webhook import create_app

    with TestClient(create_app(settings=Settings(webhook_secret=SECRET), trigger=recorder,
                               poll_seconds=0.2)) as test_client:
        yield test_client


def post(client: TestClient, body: bytes, event: str = "push", secret: str | None = SECRET,
         **headers: str) -> Any:
    sent = {"X-GitHub-Event": event, "Content-Type": "application/json", **headers}
    if secret is not None:
        sent["X-Hub-Signature-256"] = sign(secret, body)
    return client.post("/webhooks/github", content=body, headers=sent)


def test_ping_and_signatures(client: TestClient, repo: RepoHandle, clean_db: sa.Engine) -> None:
    ping = json.dumps({"zen": "hi", "repository": {"clone_url": repo.url}}).encode()
    assert post(client, ping, "ping").status_code == 200
    assert post(client, ping, "ping", secret=None).status_code == 401
    body = push_payload(repo, "a" * 40)
    assert post(client, body, secret="not-it").status_code == 401
    assert post(client, body, secret=None).status_code == 401
    assert post(client, body, secret=None, **{"X-Hub-Signature-256": "sha1=abc"}).status_code == 401
    assert scalar(clean_db, "SELECT count(*) FROM webhook_deliveries") == 0


def test_size_limits(client: TestClient, clean_db: sa.Engine) -> None:
    big = b"{" + b" " * (1024 * 1024) + b"}"
    assert post(client, big).status_code == 413
    # No Content-Length (chunked): the limit is enforced while reading.
    chunks = (b" " * 65536 for _ in range(20))
    answer = client.post("/webhooks/github", content=chunks,
                         headers={"X-GitHub-Event": "push", "X-Hub-Signature-256": "sha256=00"})
    assert answer.status_code == 413
    assert scalar(clean_db, "SELECT count(*) FROM webhook_deliveries") == 0


def test_unknown_repository_and_other_branches_are_ignored(client: TestClient, repo: RepoHandle,
                                                           recorder: Recorder, clean_db: sa.Engine) -> None:
    stranger = json.dumps({"ref": "refs/heads/main", "after": "b" * 40,
                           "repository": {"clone_url": "https://github.com/acme/unknown.git"}}).encode()
    answer = post(client, stranger)
    assert answer.status_code == 202 and answer.json()["status"] == "ignored"
    feature = post(client, push_payload(repo, "c" * 40, branch="feature"))
    assert feature.status_code == 202 and feature.json()["status"] == "ignored"
    open_pr = json.dumps({"action": "closed", "pull_request": {"merged": False, "base": {"ref": "main"}},
                          "repository": {"clone_url": repo.url}}).encode()
    assert post(client, open_pr, "pull_request").json()["status"] == "ignored"
    assert scalar(clean_db, "SELECT count(*) FROM webhook_deliveries") == 0
    assert recorder.calls == []


def test_a_merge_is_recorded_then_started_once_and_a_replay_starts_nothing(
        client: TestClient, repo: RepoHandle, recorder: Recorder, clean_db: sa.Engine) -> None:
    body = push_payload(repo, "d" * 40)
    first = post(client, body, **{"X-GitHub-Delivery": "one"})
    assert first.status_code == 202 and first.json()["status"] == "accepted"
    wait_for(lambda: recorder.calls, "the dispatcher to start the run")
    again = post(client, body, **{"X-GitHub-Delivery": "two"})  # a new delivery id does not make it new
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    merged = json.dumps({"action": "closed", "pull_request": {"merged": True, "base": {"ref": "main"},
                                                              "merge_commit_sha": "e" * 40},
                         "repository": {"clone_url": repo.url}}).encode()
    assert post(client, merged, "pull_request").json()["status"] == "accepted"
    wait_for(lambda: len(recorder.calls) == 2, "the second run")
    assert [(c.repository_name, c.head_commit) for c in recorder.calls] == [("hook-tools", "d" * 40),
                                                                             ("hook-tools", "e" * 40)]
    assert scalar(clean_db, "SELECT count(*) FROM webhook_deliveries WHERE status='STARTED'") == 2


def test_a_burst_is_answered_and_every_delivery_runs_once(client: TestClient, repo: RepoHandle,
                                                          recorder: Recorder, clean_db: sa.Engine) -> None:
    bodies = [push_payload(repo, f"{i:040x}") for i in range(1, 41)]
    answers = [post(client, b).status_code for b in bodies]
    assert answers == [202] * 40
    wait_for(lambda: len(recorder.calls) >= 40, "all 40 runs")
    assert sorted(c.head_commit for c in recorder.calls) == sorted(f"{i:040x}" for i in range(1, 41))


def test_a_recorded_but_unstarted_delivery_survives_a_crash(repo: RepoHandle, clean_db: sa.Engine) -> None:
    from agentforge.config import Settings
    from agentforge.webhook import create_app

    settings = Settings(webhook_secret=SECRET)
    body = push_payload(repo, "f" * 40)
    # A receiver that records but dies before starting anything (no dispatcher).
    with TestClient(create_app(settings=settings, dispatch=False)) as crashed:
        assert post(crashed, body).status_code == 202
    assert scalar(clean_db, "SELECT status FROM webhook_deliveries") == "RECEIVED"
    failing_then_ok = Recorder()
    attempts: list[int] = []

    def flaky(delivery: Any) -> str:
        attempts.append(delivery.attempts)
        if len(attempts) == 1:
            raise ConnectionError("Prefect API unreachable")
        return failing_then_ok(delivery)

    app = create_app(settings=settings, trigger=flaky, poll_seconds=0.2)
    with TestClient(app):
        # The failed start is retried after its back-off (2 s for the first attempt).
        wait_for(lambda: failing_then_ok.calls, "the restarted receiver to start the recorded delivery")
    assert attempts == [1, 2]
    assert scalar(clean_db, "SELECT status FROM webhook_deliveries") == "STARTED"


def test_a_per_repository_secret_is_referenced_not_stored(repo: RepoHandle, recorder: Recorder,
                                                          clean_db: sa.Engine,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from agentforge.config import Settings
    from agentforge.webhook import create_app

    monkeypatch.setenv("HOOK_TOOLS_SECRET", "repo-only")
    settings = Settings(webhook_secret=SECRET, webhook_secret_refs={"hook-tools": "env:HOOK_TOOLS_SECRET"})
    with TestClient(create_app(settings=settings, trigger=recorder, poll_seconds=0.2)) as client:
        body = push_payload(repo, "9" * 40)
        assert post(client, body, secret=SECRET).status_code == 401  # the global one no longer opens it
        assert post(client, body, secret="repo-only").status_code == 202
    assert "repo-only" not in repr(settings)
