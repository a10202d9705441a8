"""The publish flow under a real Prefect API (retries, idempotent re-runs) and the CLI as a user runs it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.cli.helpers import cli
from tests.publish.conftest import Published


@pytest.fixture()
def prefect_env(prefect_api: None) -> Iterator[dict[str, str]]:
    from prefect.settings import PREFECT_API_URL

    yield {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


def test_flow_rerun_after_a_failed_pull_request_creates_nothing_twice(published: Published,
                                                                      prefect_api: None) -> None:
    from agentforge.services import devloop
    from flows.publish import publish_component

    devloop.edit_component("lookup", sets=["spec.config.timeout=60"])
    published.fake.fail_next("/repos/acme/tools/pulls", 422, method="POST", message="Validation Failed")
    with pytest.raises(Exception, match="Validation Failed"):
        publish_component(component="lookup", fork=True, pr=True)
    status = {o["operation"]: o["status"] for o in published.ops()}
    assert status == {"CREATE_FORK": "COMPLETED", "PUSH_TO_FORK": "COMPLETED", "CREATE_PR": "FAILED"}
    assert published.installed.row()["sync_status"] == "MODIFIED"  # not published yet

    out = publish_component(component="lookup", fork=True, pr=True)
    assert out["resumed"] and out["pull_request_created"] and not out["fork_created"]
    assert len(published.fake.forks_of("acme", "tools")) == 1 and len(published.fake.pulls_of("acme", "tools")) == 1
    ops = published.ops()
    assert len(ops) == 3 and all(o["status"] == "COMPLETED" and o["branch_name"] == out["branch"] for o in ops)
    assert published.installed.row()["sync_status"] == "FORKED"


def test_rate_limit_is_waited_out_by_a_prefect_retry(published: Published, prefect_api: None,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from agentforge.config import reset_settings_cache
    from agentforge.services import devloop
    from flows.publish import publish_component

    monkeypatch.setenv("AGENTFORGE_GITHUB_RATE_LIMIT_MAX_WAIT_SECONDS", "0")  # the client raises at once
    reset_settings_cache()
    devloop.edit_component("lookup", sets=["spec.config.timeout=61"])
    reset = int(time.time()) + 1
    published.fake.fail_next("/repos/acme/tools/pulls", 403, method="POST",
                             headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    out = publish_component(component="lookup", fork=True, pr=True)
    assert out["pull_request_number"] == 1
    posts = [r for r in published.fake.requests if r.method == "POST" and r.path.endswith("/pulls")]
    assert [r.status for r in posts] == [403, 201]
    assert time.time() >= reset  # the retry came after the reset


def test_cli_push_fork_pr_and_no_token_anywhere(published: Published, prefect_env: dict[str, str],
                                                monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    fake, inst = published.fake, published.installed
    token = str(fake.token)
    monkeypatch.delenv("GITHUB_TOKEN")  # the stored, encrypted token is the one used

    res = cli("config", "set", "github.token", "--stdin", input=token + "\n")
    assert res.code == 0, res.err
    res = cli("edit", "lookup", "--set", "spec.config.timeout=70")
    assert res.code == 0, res.err
    res = cli("--verbose", "push", "lookup", "--fork", "--pr", "--title", "Longer timeout", env=prefect_env)
    assert res.code == 0, res.out + res.err
    assert "pull request #1 opened" in res.out and "forge-user/tools" in res.out
    outputs = [res.out, res.err]
    res = cli("pr", "ls", "--json")
    assert res.code == 0, res.err
    assert [(x["component"], x["state"]) for x in res.json()] == [("lookup", "open")]
    outputs += [res.out, res.err]
    inst.repo.commit(files={"NEWS.md": "upstream moved\n"})
    res = cli("fork", "sync", "tools-repo")
    assert res.code == 0, res.err
    assert "fast-forward" in res.out
    outputs += [res.out, res.err]
    [fork] = fake.forks_of("acme", "tools")
    assert (fork.bare_path / "refs").exists()
    assert all(r.authorization == f"token {token}" for r in fake.requests)

    # The token appears in no output, no database row, no mirror file, no Prefect flow-run parameter.
    for text in outputs:
        assert token not in text
    with inst.engine.connect() as conn:
        tables = conn.execute(sa.text("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")).scalars()
        for table in list(tables):
            dump = conn.execute(sa.text(f'SELECT coalesce(string_agg(row_to_json(t)::text, \'\n\'), \'\') '
                                        f'FROM "{table}" t')).scalar_one()
            assert token not in dump, table
    for file in (home / "mirrors").rglob("*"):
        if file.is_file() and file.name in ("config", "packed-refs", "FETCH_HEAD", "HEAD"):
            assert token.encode() not in file.read_bytes(), file
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs()
    publish_runs = [r for r in runs if r.parameters.get("component") == "lookup"]
    assert publish_runs and all(token not in repr(r.parameters) for r in publish_runs)

    res = cli("config", "unset", "github.token")
    assert res.code == 0 and "removed" in res.out
    res = cli("config", "set", "github.other", "--stdin", input="x\n")
    assert res.code == 2 and "CONFIG_KEY_UNKNOWN" in res.err
    res = cli("pr", "ls")
    assert res.code == 0 and "GITHUB_TOKEN" in res.err  # shown as last seen, with the hint
    res = cli("fork", "sync", "tools-repo")
    assert res.code == 2 and "agentforge: GITHUB_TOKEN_MISSING" in res.err
    assert "Hint:" in res.err and "config set github.token" in res.err
    merges = [o["status"] for o in inst.q("SELECT status::text AS status FROM sync_operations "
                                          "WHERE operation = 'MERGE_UPSTREAM' ORDER BY created_at")]
    assert merges == ["COMPLETED", "FAILED"]
