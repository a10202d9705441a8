"""An installed component whose repository is served by the fake GitHub (read-only for the user)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.devloop.conftest import Installed, installed  # noqa: F401  (the fixture, re-exported)
from tests.github_fake import FakeRepo, GitHubFake, github_fake  # noqa: F401


@dataclass
class Published:
    installed: Installed
    fake: GitHubFake
    upstream: FakeRepo

    def ops(self) -> list[dict[str, object]]:
        return [dict(r) for r in self.installed.q(
            "SELECT operation::text AS operation, status::text AS status, branch_name, target_commit, "
            "pull_request_url, pull_request_id, error_message FROM sync_operations "
            "WHERE operation::text <> 'PULL_UPSTREAM' AND repository_id IS NOT NULL ORDER BY created_at")]


@pytest.fixture()
def published(installed: Installed, github_fake: GitHubFake,  # noqa: F811
              monkeypatch: pytest.MonkeyPatch) -> Iterator[Published]:
    """`lookup` installed from tools-repo, which is acme/tools on the fake (no push permission)."""
    from agentforge.config import reset_settings_cache
    from agentforge.services import publish

    monkeypatch.setenv("AGENTFORGE_GITHUB_API_URL", github_fake.base_url)
    monkeypatch.setenv("GITHUB_TOKEN", str(github_fake.token))
    monkeypatch.setitem(publish.CLIENT_OPTIONS, "seconds_between_requests", None)
    monkeypatch.setitem(publish.CLIENT_OPTIONS, "seconds_between_writes", None)
    reset_settings_cache()
    upstream = github_fake.add_repo("acme", "tools", installed.repo.path, permissions={"push": False})
    publish.link_github("tools-repo", "acme/tools")
    with installed.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO user_settings (id, user_id, git_username, git_email) VALUES "
                             "(gen_random_uuid(), :u, 'Pat Publisher', 'pat@example.test')"),
                     {"u": _user()})
    yield Published(installed=installed, fake=github_fake, upstream=upstream)
    reset_settings_cache()


def _user() -> str:
    import getpass
    import os

    return os.environ.get("AGENTFORGE_USER") or getpass.getuser()


def git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(["git", "--git-dir", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()
