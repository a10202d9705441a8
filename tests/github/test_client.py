"""The GitHub adapter against the fake GitHub: every operation, idempotence, real git on forks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from agentforge.config import Settings
from agentforge.github import (
    GitHubClient,
    GitHubConflict,
    GitHubNotFound,
    GitHubTokenMissing,
    client_from_settings,
    parse_github_remote,
)
from tests.gitfactory import GitRepoFactory, RepoHandle
from tests.github.conftest import make_client
from tests.github_fake import GitHubFake


def _upstream(fake: GitHubFake, factory: GitRepoFactory, **perms: bool) -> RepoHandle:
    handle = factory.create("crm-tools", files={"tools/lookup/component.yaml": "version: 1.0.0\n"})
    fake.add_repo("acme", "crm-tools", handle.path, permissions=perms or None)
    return handle


def _push_branch(factory: GitRepoFactory, clone_url: str, workdir: Path, branch: str,
                 files: dict[str, str]) -> str:
    """Clone ``clone_url``, commit ``files`` on ``branch`` and push it back (real git over file://)."""
    factory.git("clone", "-q", clone_url, str(workdir), cwd=factory.root)
    factory.git("checkout", "-q", "-b", branch, cwd=workdir)
    for rel, text in files.items():
        (workdir / rel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / rel).write_text(text)
    factory.git("add", "-A", cwd=workdir)
    factory.git("commit", "-q", "-m", f"change on {branch}", cwd=workdir)
    factory.git("push", "-q", "origin", f"{branch}:{branch}", cwd=workdir)
    return factory.git("rev-parse", "HEAD", cwd=workdir)


def test_current_user(gh: GitHubClient, github_fake: GitHubFake) -> None:
    user = gh.current_user()
    assert user.login == github_fake.login and user.id > 0


def test_repository_read_only_and_push_permissions(gh: GitHubClient, github_fake: GitHubFake,
                                                   git_factory: GitRepoFactory) -> None:
    handle = _upstream(github_fake, git_factory)
    info = gh.repository("acme", "crm-tools")
    assert (info.full_name, info.default_branch, info.clone_url) == ("acme/crm-tools", "main", handle.url)
    assert info.permissions["pull"] and not info.can_push and not info.fork

    github_fake.add_repo("acme", "writable", permissions={"push": True})
    github_fake.add_repo("acme", "maintained", permissions={"maintain": True})
    assert gh.repository("acme", "writable").can_push
    assert gh.repository("acme", "maintained").can_push
    github_fake.add_repo(github_fake.login, "own")  # the user's own repository: full permissions
    assert gh.repository(github_fake.login, "own").can_push


def test_missing_and_hidden_repositories(gh: GitHubClient, github_fake: GitHubFake) -> None:
    github_fake.add_repo("acme", "secret", private=True, permissions={"pull": False})
    for name in ("nope", "secret"):
        with pytest.raises(GitHubNotFound) as info:
            gh.repository("acme", name)
        assert f"acme/{name}" in info.value.message and info.value.code == "GITHUB_NOT_FOUND"
        assert gh.find_repository("acme", name) is None


def test_fork_is_created_once_and_git_pushes_to_it(gh: GitHubClient, github_fake: GitHubFake,
                                                   git_factory: GitRepoFactory, tmp_path: Path) -> None:
    handle = _upstream(github_fake, git_factory)
    fork = gh.create_fork("acme", "crm-tools")
    assert fork.created and fork.owner == github_fake.login and fork.parent_full_name == "acme/crm-tools"
    assert fork.clone_url.startswith("file://") and fork.clone_url != handle.url

    again = gh.create_fork("acme", "crm-tools")
    assert not again.created and again.clone_url == fork.clone_url
    assert len(github_fake.forks_of("acme", "crm-tools")) == 1
    assert sum(r.method == "POST" for r in github_fake.requests) == 1

    # The fork is a real repository: it has the upstream's history and accepts pushes.
    sha = _push_branch(git_factory, fork.clone_url, tmp_path / "work", "forge/change", {"x.txt": "x\n"})
    out = subprocess.run(["git", "ls-remote", fork.clone_url, "refs/heads/*"], capture_output=True, text=True,
                         check=True).stdout
    assert f"{sha}\trefs/heads/forge/change" in out and "refs/heads/main" in out
    info = gh.repository(fork.owner, fork.name)
    assert info.fork and info.parent_full_name == "acme/crm-tools" and info.can_push


def test_fork_reused_when_renamed(gh: GitHubClient, github_fake: GitHubFake, git_factory: GitRepoFactory) -> None:
    _upstream(github_fake, git_factory)
    github_fake.add_repo(github_fake.login, "crm-tools")  # a non-fork of the user's takes the name
    fork = gh.create_fork("acme", "crm-tools")
    assert fork.created and fork.name == "crm-tools-1"
    again = gh.create_fork("acme", "crm-tools")
    assert not again.created and again.full_name == f"{github_fake.login}/crm-tools-1"


def test_pull_request_is_idempotent_and_tracks_state(gh: GitHubClient, github_fake: GitHubFake,
                                                     git_factory: GitRepoFactory, tmp_path: Path) -> None:
    handle = _upstream(github_fake, git_factory)
    fork = gh.create_fork("acme", "crm-tools")
    sha = _push_branch(git_factory, fork.clone_url, tmp_path / "work", "forge/lookup", {"y.txt": "y\n"})
    head = f"{fork.owner}:forge/lookup"

    pr = gh.find_or_create_pull("acme", "crm-tools", head=head, base="main", title="Update lookup",
                                body="- spec.timeout: 10 → 20", draft=True)
    assert pr.created and pr.number == 1 and pr.state == "open" and pr.draft
    assert (pr.head_label, pr.head_sha, pr.base_ref) == (head, sha, "main")
    assert pr.url.endswith("/acme/crm-tools/pull/1")

    again = gh.find_or_create_pull("acme", "crm-tools", head=head, base="main", title="Update lookup")
    assert not again.created and again.number == pr.number
    assert len(github_fake.pulls_of("acme", "crm-tools")) == 1
    assert [p.number for p in gh.list_pulls("acme", "crm-tools")] == [1]
    assert [p.number for p in gh.list_pulls("acme", "crm-tools", head=head)] == [1]
    assert gh.list_pulls("acme", "crm-tools", head=f"{fork.owner}:other") == []

    assert gh.pull_state("acme", "crm-tools", 1) == "open"
    merge_sha = github_fake.merge_pull("acme", "crm-tools", 1)
    assert gh.pull_state("acme", "crm-tools", 1) == "merged"
    assert handle.git("rev-parse", "refs/heads/main", bare=True) == merge_sha
    assert gh.list_pulls("acme", "crm-tools") == []
    assert [p.state for p in gh.list_pulls("acme", "crm-tools", state="all")] == ["merged"]
    assert [p.state for p in gh.list_pulls("acme", "crm-tools", state="closed")] == ["merged"]

    # After the merge a new pull request from the same branch is a new one.
    _push_branch(git_factory, fork.clone_url, tmp_path / "work2", "forge/lookup2", {"z.txt": "z\n"})
    second = gh.find_or_create_pull("acme", "crm-tools", head=f"{fork.owner}:forge/lookup2", base="main",
                                    title="More")
    assert second.created and second.number == 2
    github_fake.close_pull("acme", "crm-tools", 2)
    assert gh.pull_state("acme", "crm-tools", 2) == "closed"


def test_pull_request_created_by_a_concurrent_run_is_reused(gh: GitHubClient, github_fake: GitHubFake,
                                                            git_factory: GitRepoFactory, tmp_path: Path) -> None:
    _upstream(github_fake, git_factory)
    fork = gh.create_fork("acme", "crm-tools")
    _push_branch(git_factory, fork.clone_url, tmp_path / "work", "forge/race", {"r.txt": "r\n"})
    head = f"{fork.owner}:forge/race"
    first = gh.find_or_create_pull("acme", "crm-tools", head=head, base="main", title="Race")
    # Our look-up sees nothing (the other run's create was not visible yet); GitHub's 422
    # "already exists" on create makes us look again and reuse the other run's pull request.
    github_fake.fail_next("/repos/acme/crm-tools/pulls", 200, method="GET", body=[])
    again = gh.find_or_create_pull("acme", "crm-tools", head=head, base="main", title="Race")
    assert not again.created and again.number == first.number
    assert len(github_fake.pulls_of("acme", "crm-tools")) == 1


def test_pull_request_validation_errors_carry_githubs_message(gh: GitHubClient, github_fake: GitHubFake,
                                                              git_factory: GitRepoFactory) -> None:
    from agentforge.github import GitHubValidationFailed

    _upstream(github_fake, git_factory)
    fork = gh.create_fork("acme", "crm-tools")
    with pytest.raises(GitHubValidationFailed) as info:  # the branch was never pushed
        gh.find_or_create_pull("acme", "crm-tools", head=f"{fork.owner}:missing", base="main", title="t")
    assert "Validation Failed" in info.value.message and "head invalid" in info.value.message
    with pytest.raises(GitHubValidationFailed) as info:  # nothing to merge: the fork's main is the base
        gh.find_or_create_pull("acme", "crm-tools", head=f"{fork.owner}:main", base="main", title="t")
    assert "No commits between main and" in info.value.message
    assert not info.value.retryable and info.value.details["errors"]


def test_merge_upstream_fast_forward_merge_none_and_conflict(gh: GitHubClient, github_fake: GitHubFake,
                                                             git_factory: GitRepoFactory, tmp_path: Path) -> None:
    handle = _upstream(github_fake, git_factory)
    fork = gh.create_fork("acme", "crm-tools")
    assert gh.merge_upstream(fork.owner, fork.name, "main").merge_type == "none"

    upstream_sha = handle.commit(files={"a.txt": "upstream\n"})
    result = gh.merge_upstream(fork.owner, fork.name, "main")
    assert result.merge_type == "fast-forward" and result.base_branch == "acme:main"
    fork_main = subprocess.run(["git", "ls-remote", fork.clone_url, "refs/heads/main"], capture_output=True,
                               text=True, check=True).stdout.split()[0]
    assert fork_main == upstream_sha

    # Diverged without conflicts → a merge commit on the fork; with conflicts → GITHUB_CONFLICT.
    _push_branch(git_factory, fork.clone_url, tmp_path / "w1", "tmp", {"fork.txt": "fork\n"})
    git_factory.git("push", "-q", "origin", "tmp:main", cwd=tmp_path / "w1")
    handle.commit(files={"b.txt": "upstream b\n"})
    assert gh.merge_upstream(fork.owner, fork.name, "main").merge_type == "merge"

    handle.commit(files={"same.txt": "upstream version\n"})
    _push_branch(git_factory, fork.clone_url, tmp_path / "w2", "tmp2", {"same.txt": "fork version\n"})
    git_factory.git("push", "-q", "origin", "tmp2:main", cwd=tmp_path / "w2")
    with pytest.raises(GitHubConflict) as info:
        gh.merge_upstream(fork.owner, fork.name, "main")
    assert info.value.code == "GITHUB_CONFLICT" and f"{fork.owner}/{fork.name}@main" in info.value.message

    with pytest.raises(GitHubNotFound):
        gh.merge_upstream(fork.owner, "no-such-fork", "main")


def test_no_token_is_a_clear_error() -> None:
    for token in (None, "", "   "):
        with pytest.raises(GitHubTokenMissing) as info:
            GitHubClient("https://api.github.com", token)
        assert info.value.code == "GITHUB_TOKEN_MISSING" and not info.value.retryable
        assert info.value.hint is not None
        assert "export GITHUB_TOKEN=" in info.value.hint and "agentforge config set github.token" in info.value.hint


def test_client_from_settings_uses_api_url_and_options(github_fake: GitHubFake) -> None:
    settings = Settings(github_api_url=github_fake.base_url, github_timeout_seconds=5)
    client = client_from_settings(settings, github_fake.token, seconds_between_requests=None,
                                  seconds_between_writes=None)
    assert client.current_user().login == github_fake.login
    assert github_fake.token not in repr(client)


@pytest.mark.parametrize(("url", "api", "expected"), [
    ("https://github.com/acme/crm-tools.git", "https://api.github.com", ("acme", "crm-tools")),
    ("https://github.com/acme/crm-tools", "https://api.github.com", ("acme", "crm-tools")),
    ("git@github.com:acme/crm-tools.git", "https://api.github.com", ("acme", "crm-tools")),
    ("ssh://git@github.com/acme/crm.tools.git", "https://api.github.com", ("acme", "crm.tools")),
    ("https://ghe.corp.example/team/agents.git", "https://ghe.corp.example/api/v3", ("team", "agents")),
    ("https://gitlab.com/acme/crm-tools.git", "https://api.github.com", None),
    ("file:///srv/git/crm-tools.git", "https://api.github.com", None),
    ("https://github.com/acme", "https://api.github.com", None),
])
def test_parse_github_remote(url: str, api: str, expected: tuple[str, str] | None) -> None:
    assert parse_github_remote(url, api_url=api) == expected


def test_every_request_sends_the_token(github_fake: GitHubFake, git_factory: GitRepoFactory) -> None:
    _upstream(github_fake, git_factory)
    client = make_client(github_fake)
    client.repository("acme", "crm-tools")
    client.create_fork("acme", "crm-tools")
    assert github_fake.requests
    assert {r.authorization for r in github_fake.requests} == {f"token {github_fake.token}"}
