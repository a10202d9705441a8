"""Every GitHub error status, for every operation, becomes a specific AgentForgeError; rate limits
are waited for (bounded) or raised as retryable; the token is never in a message or a log."""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from agentforge.errors import AgentForgeError, is_retryable
from agentforge.github import (
    GitHubAuthFailed,
    GitHubClient,
    GitHubConflict,
    GitHubForbidden,
    GitHubNotFound,
    GitHubRateLimited,
    GitHubUnreachable,
    GitHubValidationFailed,
)
from tests.gitfactory import GitRepoFactory
from tests.github.conftest import make_client
from tests.github_fake import GitHubFake


@dataclass
class Scenario:
    fake: GitHubFake
    client: GitHubClient
    fork_owner: str


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """One fake for the whole matrix: upstreams, a fork, a pushed branch and pull request #1."""
    root = tmp_path_factory.mktemp("github-errors")
    factory = GitRepoFactory(root / "git")
    with GitHubFake(root / "github") as fake:
        crm = factory.create("crm", files={"a.txt": "a\n"})
        fake.add_repo("acme", "crm", crm.path)
        fake.add_repo("acme", "other", factory.create("other").path)
        client = make_client(fake, max_rate_limit_wait=0)
        fork = client.create_fork("acme", "crm")
        work = root / "work"
        factory.git("clone", "-q", fork.clone_url, str(work), cwd=root)
        for branch in ("pr-one", "never-opened"):
            factory.git("checkout", "-q", "-B", branch, "origin/main", cwd=work)
            (work / f"{branch}.txt").write_text(branch)
            factory.git("add", "-A", cwd=work)
            factory.git("commit", "-q", "-m", branch, cwd=work)
            factory.git("push", "-q", "origin", branch, cwd=work)
        client.find_or_create_pull("acme", "crm", head=f"{fork.owner}:pr-one", base="main", title="one")
        yield Scenario(fake, client, fork.owner)


# (operation name, path that fails, method, the call)
OPERATIONS: list[tuple[str, str, str, Callable[[Scenario], Any]]] = [
    ("current_user", "/user", "GET", lambda s: s.client.current_user()),
    ("repository", "/repos/acme/crm", "GET", lambda s: s.client.repository("acme", "crm")),
    ("create_fork", "/repos/acme/other/forks", "POST", lambda s: s.client.create_fork("acme", "other")),
    ("find_or_create_pull", "/repos/acme/crm/pulls", "POST",
     lambda s: s.client.find_or_create_pull("acme", "crm", head=f"{s.fork_owner}:never-opened", base="main",
                                            title="t")),
    ("pull_state", "/repos/acme/crm/pulls/1", "GET", lambda s: s.client.pull_state("acme", "crm", 1)),
    ("list_pulls", "/repos/acme/crm/pulls", "GET", lambda s: s.client.list_pulls("acme", "crm", state="all")),
    ("merge_upstream", "/repos/forge-user/crm/merge-upstream", "POST",
     lambda s: s.client.merge_upstream(s.fork_owner, "crm", "main")),
]

STATUSES: list[tuple[int | str, type[AgentForgeError], str, bool]] = [
    (401, GitHubAuthFailed, "GITHUB_AUTH_FAILED", False),
    (403, GitHubForbidden, "GITHUB_FORBIDDEN", False),
    (404, GitHubNotFound, "GITHUB_NOT_FOUND", False),
    (409, GitHubConflict, "GITHUB_CONFLICT", False),
    (422, GitHubValidationFailed, "GITHUB_VALIDATION_FAILED", False),
    (502, GitHubUnreachable, "GITHUB_UNREACHABLE", True),
    ("disconnect", GitHubUnreachable, "GITHUB_UNREACHABLE", True),
    ("rate-limit", GitHubRateLimited, "GITHUB_RATE_LIMITED", True),
]


@pytest.mark.parametrize(("status", "error", "code", "retryable"), STATUSES, ids=[str(s[0]) for s in STATUSES])
@pytest.mark.parametrize(("op", "path", "method", "call"), OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_status_maps_to_error(scenario: Scenario, op: str, path: str, method: str, call: Callable[[Scenario], Any],
                              status: int | str, error: type[AgentForgeError], code: str, retryable: bool) -> None:
    fake = scenario.fake
    # A fresh client: one that saw "X-RateLimit-Remaining: 0" rightly refuses to call before the reset.
    scenario = Scenario(fake, make_client(fake, max_rate_limit_wait=0), scenario.fork_owner)
    if status == "rate-limit":
        reset = int(fake.clock()) + 3600
        fake.fail_next(path, 403, method=method,
                       headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset)})
    elif status == 422:
        fake.fail_next(path, 422, method=method, body={
            "message": "Validation Failed", "documentation_url": "https://docs.github.com/rest",
            "errors": [{"resource": "Thing", "code": "custom", "message": "something specific is wrong"}]})
    else:
        fake.fail_next(path, status, method=method)
    with pytest.raises(error) as info:
        call(scenario)
    exc = info.value
    assert exc.code == code and exc.retryable is retryable and is_retryable(exc) is retryable
    assert exc.message and exc.hint
    assert isinstance(exc.__cause__, Exception)  # raised from the PyGithub / requests error
    if status == 422:
        assert "Validation Failed" in exc.message and "something specific is wrong" in exc.message
    if status == "rate-limit":
        assert isinstance(exc, GitHubRateLimited)
        assert 3590 <= exc.wait_seconds <= 3602 and exc.details["reset_at"]
    if status == 401:
        assert "Bad credentials" in exc.message
    assert scenario.fake.token and scenario.fake.token not in str(exc.to_dict())


def test_unreachable_server() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = GitHubClient(f"http://127.0.0.1:{port}", "ghp_" + "x" * 36, seconds_between_requests=None)
    with pytest.raises(GitHubUnreachable) as info:
        client.current_user()
    assert info.value.retryable and f"127.0.0.1:{port}" in info.value.message


def test_wrong_token_is_auth_failed(github_fake: GitHubFake) -> None:
    client = make_client(github_fake, token="ghp_" + "W" * 36)
    with pytest.raises(GitHubAuthFailed) as info:
        client.current_user()
    assert "GITHUB_TOKEN" in (info.value.hint or "") and "W" * 36 not in info.value.message


# --- rate limits, on a virtual clock shared by the fake and the client -----------------------


class VirtualClock:
    def __init__(self) -> None:
        self.now_value = 1_800_000_000.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.now_value

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now_value += seconds


@pytest.fixture()
def clock(github_fake: GitHubFake) -> VirtualClock:
    clock = VirtualClock()
    github_fake.clock = clock.now
    return clock


def test_exhausted_quota_is_waited_for_before_the_next_call(github_fake: GitHubFake, clock: VirtualClock) -> None:
    client = make_client(github_fake, max_rate_limit_wait=120, sleep=clock.sleep, clock=clock.now)
    github_fake.rate_limit(remaining=1, reset=clock.now() + 30)
    client.current_user()  # spends the last request: the answer says Remaining: 0
    client.current_user()  # waits for the reset first instead of being refused
    assert clock.sleeps == [31.0]
    assert [r.status for r in github_fake.requests] == [200, 200]


def test_refused_request_is_retried_after_the_reset(github_fake: GitHubFake, clock: VirtualClock) -> None:
    client = make_client(github_fake, max_rate_limit_wait=120, sleep=clock.sleep, clock=clock.now)
    github_fake.rate_limit(remaining=0, reset=clock.now() + 10)
    assert client.current_user().login == github_fake.login
    assert clock.sleeps == [11.0]
    assert [r.status for r in github_fake.requests] == [403, 200]


def test_secondary_rate_limit_honours_retry_after(github_fake: GitHubFake, clock: VirtualClock) -> None:
    client = make_client(github_fake, max_rate_limit_wait=120, sleep=clock.sleep, clock=clock.now)
    github_fake.fail_next("/user", 403, headers={"Retry-After": "7"},
                          message="You have exceeded a secondary rate limit. Please wait a few minutes before you "
                                  "try again.")
    client.current_user()
    assert clock.sleeps == [7.0]


def test_long_wait_raises_retryable_error_without_sleeping(github_fake: GitHubFake, clock: VirtualClock) -> None:
    client = make_client(github_fake, max_rate_limit_wait=60, sleep=clock.sleep, clock=clock.now)
    github_fake.rate_limit(remaining=0, reset=clock.now() + 1800)
    with pytest.raises(GitHubRateLimited) as info:
        client.current_user()
    assert clock.sleeps == [] and info.value.retryable and info.value.wait_seconds == 1801.0
    assert info.value.details["reset_at"].startswith("2027-") and "retry in 1801 s" in info.value.message

    # And before a call, when the last answer said the quota is spent and the reset is far away.
    client = make_client(github_fake, max_rate_limit_wait=60, sleep=clock.sleep, clock=clock.now)
    github_fake.rate_limit(remaining=1, reset=clock.now() + 1800)
    github_fake.requests.clear()
    client.current_user()
    with pytest.raises(GitHubRateLimited):
        client.current_user()
    assert clock.sleeps == [] and len(github_fake.requests) == 1  # the second call never left


def test_rate_limit_retries_are_bounded(github_fake: GitHubFake, clock: VirtualClock) -> None:
    # The reset keeps moving (another client spends the quota): give up after max retries.
    client = make_client(github_fake, max_rate_limit_wait=120, max_rate_limit_retries=2, sleep=clock.sleep,
                         clock=clock.now)
    headers = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(clock.now()) + 5)}
    github_fake.fail_next("/user", 403, headers=headers, times=5)
    with pytest.raises(GitHubRateLimited):
        client.current_user()
    assert len(clock.sleeps) == 2


# --- the token never leaks ---------------------------------------------------------------------


def test_token_is_redacted_from_messages_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    token = "plain-looking-secret-value-42"  # not GitHub-shaped: only explicit redaction catches it
    caplog.set_level(logging.DEBUG)
    with GitHubFake(tmp_path / "gh", token=token) as fake:
        fake.add_repo("acme", "crm")
        client = make_client(fake)
        client.repository("acme", "crm")
        fake.fail_next("/repos/acme/crm", 401, message=f"Bad credentials: {token} was revoked")
        with pytest.raises(GitHubAuthFailed) as auth:
            client.repository("acme", "crm")
        fake.fail_next("/repos/acme/crm", 422, message=f"token {token} invalid")
        with pytest.raises(GitHubValidationFailed) as invalid:
            client.repository("acme", "crm")
        fake.fail_next("/user", "disconnect")
        with pytest.raises(GitHubUnreachable) as unreachable:
            client.current_user()
        for exc in (auth.value, invalid.value, unreachable.value):
            text = f"{exc} {exc!r} {exc.to_dict()} {exc.hint}"
            assert token not in text
        assert "***" in auth.value.message
        assert token not in repr(client)
        assert all(r.authorization == f"token {token}" for r in fake.requests)
    assert caplog.records, "PyGithub/urllib3 debug logging was captured"
    assert token not in caplog.text
