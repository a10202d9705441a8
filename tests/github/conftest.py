"""Fixtures for the GitHub adapter tests: the fake GitHub server and clients pointed at it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentforge.github import GitHubClient
from tests.gitfactory import GitRepoFactory
from tests.github_fake import GitHubFake, github_fake  # noqa: F401  (the fixture, re-exported)


def make_client(fake: GitHubFake, token: str | None = None, **options: object) -> GitHubClient:
    """A client for the fake without PyGithub's request spacing (it would only slow tests down)."""
    options.setdefault("seconds_between_requests", None)
    options.setdefault("seconds_between_writes", None)
    return GitHubClient(fake.base_url, token if token is not None else fake.token, **options)  # type: ignore[arg-type]


@pytest.fixture()
def gh(github_fake: GitHubFake) -> GitHubClient:  # noqa: F811  (the imported fixture)
    return make_client(github_fake)


@pytest.fixture()
def git_factory(tmp_path: Path) -> GitRepoFactory:
    return GitRepoFactory(tmp_path / "git")
