"""Publishing for real: git objects in the mirror, pushes to bare repositories, the fake GitHub's API."""

from __future__ import annotations

import pytest
import yaml

from agentforge.errors import AgentForgeError
from tests.publish.conftest import Published, git


def _request(**kwargs: object) -> object:
    from agentforge.services.publish import PublishRequest

    return PublishRequest(component="lookup", **kwargs)  # type: ignore[arg-type]


def _sync() -> None:
    from agentforge.services import sync as svc

    plan = svc.plan_sync(None)
    svc.record_plan_outcomes(plan)
    for repo_id in plan.to_sync:
        svc.sync_repository(repo_id)


def test_fork_push_and_pull_request_end_to_end(published: Published) -> None:
    from agentforge.services import devloop, publish

    inst, fake = published.installed, published.fake
    installed_commit = inst.row()["commit_hash"]
    devloop.edit_component("lookup", sets=["spec.config.timeout=45"], reason="slow API")
    (inst.folder / "README.md").write_text("# lookup\n\nbetter docs\n")  # a direct edit, folded in by push

    out = publish.publish_component(_request(fork=True, pr=True, message="lookup: longer timeout"))  # type: ignore[arg-type]
    assert out.route == "fork" and out.fork == "forge-user/tools" and out.fork_created
    assert out.branch.startswith("forge/lookup-") and out.pull_request_created and out.sync_status == "FORKED"
    [fork] = fake.forks_of("acme", "tools")
    # The branch on the fork is one commit on top of the installed commit, authored from user_settings.
    assert git(fork.bare_path, "rev-parse", f"refs/heads/{out.branch}") == out.commit
    assert git(fork.bare_path, "rev-parse", f"{out.commit}^") == installed_commit
    assert git(fork.bare_path, "log", "-1", "--format=%an <%ae>|%s", out.commit) == \
        "Pat Publisher <pat@example.test>|lookup: longer timeout"
    pushed = yaml.safe_load(git(fork.bare_path, "show", f"{out.commit}:tools/lookup/component.yaml"))
    assert pushed["spec"]["config"]["timeout"] == 45
    assert git(fork.bare_path, "show", f"{out.commit}:tools/lookup/README.md") == "# lookup\n\nbetter docs"
    changed = git(fork.bare_path, "diff", "--name-only", installed_commit, out.commit).split()
    assert sorted(changed) == ["tools/lookup/README.md", "tools/lookup/component.yaml"]
    # The pull request lists the changed fields; its URL and number are stored.
    [pull] = fake.pulls_of("acme", "tools")
    assert pull.head_label == f"forge-user:{out.branch}" and pull.base_ref == "main"
    assert "`spec.config.timeout`" in (pull.body or "") and "README.md" in (pull.body or "")
    ops = {o["operation"]: o for o in published.ops()}
    assert set(ops) == {"CREATE_FORK", "PUSH_TO_FORK", "CREATE_PR"}
    assert all(o["status"] == "COMPLETED" and o["branch_name"] == out.branch for o in ops.values())
    assert ops["CREATE_PR"]["pull_request_url"] == out.pull_request_url and ops["CREATE_PR"]["pull_request_id"] == "1"
    assert ops["PUSH_TO_FORK"]["target_commit"] == out.commit
    [fork_row] = inst.q("SELECT original_repo, fork_repo FROM forks")
    assert fork_row["original_repo"] == inst.repo.url and fork_row["fork_repo"].endswith("/forge-user/tools")
    row = inst.row()
    assert row["sync_status"] == "FORKED" and row["fork_branch"] == out.branch
    changes = inst.q("SELECT field_path, commit_hash, branch_name FROM component_changes")
    assert {c["field_path"] for c in changes} >= {"spec.config.timeout", "file:README.md"}
    assert all(c["commit_hash"] == out.commit and c["branch_name"] == out.branch for c in changes)
    assert not inst.q("SELECT 1 FROM repositories WHERE has_write_access")

    # A second run finds everything again: no second fork, branch, commit or pull request.
    again = publish.publish_component(_request(fork=True, pr=True))  # type: ignore[arg-type]
    assert (again.branch, again.commit, again.resumed) == (out.branch, out.commit, True)
    assert not again.fork_created and not again.pull_request_created
    assert len(fake.forks_of("acme", "tools")) == 1 and len(fake.pulls_of("acme", "tools")) == 1
    assert len(published.ops()) == 3

    # `pr ls` refreshes the state; once merged and synced, the component is SYNCED again.
    lines, warning = publish.list_pull_requests()
    assert warning is None and [(x.component, x.state, x.number) for x in lines] == [("lookup", "open", 1)]
    fake.merge_pull("acme", "tools", 1)
    _sync()
    [repo_id] = [r["id"] for r in inst.q("SELECT id FROM repositories")]
    # The sync itself reconciled it (sync calls reconcile_published); a second call finds nothing.
    assert inst.row()["sync_status"] == "SYNCED"
    assert publish.reconcile_published(repo_id) == []
    lines, _ = publish.list_pull_requests()
    assert lines[0].state == "merged" and lines[0].refreshed


def test_direct_push_with_write_access_on_a_file_remote(published: Published) -> None:
    from agentforge.services import devloop, publish

    inst = published.installed
    publish.link_github("tools-repo", None)  # unmapped: write access comes from the file system
    devloop.edit_component("lookup", sets=["spec.config.region=us"])
    out = publish.publish_component(_request(branch="feature/region", message="region us"))  # type: ignore[arg-type]
    assert out.route == "origin" and out.branch == "feature/region" and out.pull_request_url is None
    assert git(inst.repo.path, "rev-parse", "refs/heads/feature/region") == out.commit
    assert git(inst.repo.path, "rev-parse", "refs/heads/main") == inst.row()["commit_hash"]  # main untouched
    [op] = published.ops()
    assert (op["operation"], op["status"]) == ("PUSH_TO_ORIGIN", "COMPLETED")
    assert inst.q("SELECT has_write_access FROM repositories")[0]["has_write_access"]
    assert published.fake.requests == []  # no API call for a file:// remote
    with pytest.raises(AgentForgeError) as nothing:
        devloop.revert_component("lookup")
        publish.publish_component(_request(branch="feature/other"))  # type: ignore[arg-type]
    assert nothing.value.code == "NOTHING_TO_PUSH"


@pytest.mark.parametrize("branch", ["main", "v1.0.0", "refs/tags/v9"])
def test_a_publish_never_targets_the_default_branch_or_a_tag_name(published: Published, branch: str) -> None:
    from agentforge.services import devloop, publish

    inst = published.installed
    publish.link_github("tools-repo", None)
    devloop.edit_component("lookup", sets=["spec.config.region=us"])
    main_before = git(inst.repo.path, "rev-parse", "refs/heads/main")
    with pytest.raises(AgentForgeError) as refused:
        publish.publish_component(_request(branch=branch))  # type: ignore[arg-type]
    assert refused.value.code in ("BRANCH_INVALID", "CONFIG_ERROR") and branch in refused.value.message
    assert git(inst.repo.path, "rev-parse", "refs/heads/main") == main_before
    assert inst.row()["sync_status"] == "MODIFIED"


def test_rejected_push_fails_the_step_and_loses_nothing(published: Published) -> None:
    from agentforge.services import devloop, publish

    inst = published.installed
    publish.link_github("tools-repo", None)
    other = inst.repo.commit(files={"elsewhere.txt": "someone else\n"}, push=False)
    inst.repo.create_branch("taken", other)
    devloop.edit_component("lookup", sets=["spec.config.retries=5"])
    before = (inst.folder / "component.yaml").read_bytes()
    with pytest.raises(AgentForgeError) as caught:
        publish.publish_component(_request(branch="taken"))  # type: ignore[arg-type]
    assert caught.value.code == "GIT_PUSH_REJECTED" and "non-fast-forward" in caught.value.message
    assert caught.value.hint and "--branch" in caught.value.hint
    [op] = published.ops()
    assert op["status"] == "FAILED" and "rejected" in str(op["error_message"])
    assert (inst.folder / "component.yaml").read_bytes() == before
    row = inst.row()
    assert row["local_definition"]["spec"]["config"]["retries"] == 5 and row["sync_status"] == "MODIFIED"
    assert all(c["commit_hash"] is None for c in inst.q("SELECT commit_hash FROM component_changes"))
    assert git(inst.repo.path, "rev-parse", "refs/heads/taken") == other
    # A new branch works, and the failed row stays as the record of the rejection.
    out = publish.publish_component(_request(branch="fresh"))  # type: ignore[arg-type]
    assert out.branch == "fresh"


def test_errors_are_clear(published: Published, monkeypatch: pytest.MonkeyPatch) -> None:
    from agentforge.config import reset_settings_cache
    from agentforge.services import devloop, publish

    devloop.edit_component("lookup", sets=["spec.config.timeout=50"])
    with pytest.raises(AgentForgeError) as no_access:
        publish.publish_component(_request())  # type: ignore[arg-type]
    assert no_access.value.code == "NO_WRITE_ACCESS" and "--fork" in str(no_access.value.hint)

    monkeypatch.delenv("GITHUB_TOKEN")
    reset_settings_cache()
    with pytest.raises(AgentForgeError) as missing:
        publish.publish_component(_request(fork=True))  # type: ignore[arg-type]
    assert missing.value.code == "GITHUB_TOKEN_MISSING" and "config set github.token" in str(missing.value.hint)

    monkeypatch.setenv("GITHUB_TOKEN", "ghp_" + "x" * 36)
    reset_settings_cache()
    with pytest.raises(AgentForgeError) as bad:
        publish.publish_component(_request(fork=True))  # type: ignore[arg-type]
    assert bad.value.code == "GITHUB_AUTH_FAILED" and "x" * 36 not in bad.value.message

    monkeypatch.setenv("GITHUB_TOKEN", str(published.fake.token))
    reset_settings_cache()
    published.fake.fail_next("/repos/acme/tools/forks", 403, method="POST")
    with pytest.raises(AgentForgeError) as forbidden:
        publish.publish_component(_request(fork=True))  # type: ignore[arg-type]
    assert forbidden.value.code == "GITHUB_FORBIDDEN"
    failed = [o for o in published.ops() if o["operation"] == "CREATE_FORK"]
    assert failed and failed[-1]["status"] == "FAILED" and "403" in str(failed[-1]["error_message"])

    publish.link_github("tools-repo", "acme/missing")
    with pytest.raises(AgentForgeError) as not_found:
        publish.publish_component(_request(fork=True))  # type: ignore[arg-type]
    assert not_found.value.code == "GITHUB_NOT_FOUND" and "acme/missing" in not_found.value.message
