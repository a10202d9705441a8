"""Registering and removing repositories."""

from __future__ import annotations

import re

from pydantic import BaseModel

from agentforge.config import Settings, get_settings
from agentforge.core.urls import default_repository_name, normalise_repository_url
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, GitError
from agentforge.gitops import ls_remote_many
from agentforge.services.sync import credentials_for, mirror_path
from models import RepoType
from models import repositories as repos_q

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class RepoAdded(BaseModel):
    name: str
    url: str
    type: str
    created: bool


def add_repository(raw_url: str, *, name: str | None = None, type: str | None = None, branch: str | None = None,
                   allow_insecure: bool = False, check: bool = True,
                   settings: Settings | None = None) -> RepoAdded:
    settings = settings or get_settings()
    url = normalise_repository_url(raw_url, allow_insecure=allow_insecure)
    repo_name = name or default_repository_name(url)
    if not _NAME_RE.match(repo_name):
        raise AgentForgeError(f"repository name {repo_name!r} is not valid: use lower-case letters, digits, '.', "
                              "'_' and '-' (max 100)", code="NAME_INVALID", hint="Pass --name.")
    try:
        repo_type = RepoType((type or "mixed").upper())
    except ValueError:
        raise AgentForgeError(f"--type {type!r} is not one of tools, prompts, agents, compositions, mixed",
                              code="TYPE_INVALID") from None
    if check:
        outcome = ls_remote_many([url], credentials=credentials_for(url, settings),
                                 timeout=settings.git_timeout_seconds, allow_http=allow_insecure)[url]
        if isinstance(outcome, GitError):
            raise AgentForgeError(f"cannot reach {url}: {outcome.message}", code=outcome.code,
                                  hint=outcome.hint or "Check the URL and your access; --no-check skips this.",
                                  retryable=outcome.retryable)
        if branch and f"refs/heads/{branch}" not in outcome.refs:
            raise AgentForgeError(f"{url} has no branch {branch!r}", code="GIT_REF_NOT_FOUND",
                                  hint="Branches: " + ", ".join(sorted(r.removeprefix("refs/heads/")
                                                                      for r in outcome.refs
                                                                      if r.startswith("refs/heads/")))[:300])
        branch = branch or outcome.default_branch
    with session_scope(get_engine(settings)) as session:
        repo, created = repos_q.add_repository(session=session, name=repo_name, url=url, type=repo_type,
                                               default_branch=branch)
        return RepoAdded(name=repo.name, url=repo.url, type=repo.type.value, created=created)


def remove_repository(name: str, *, force: bool = False, settings: Settings | None = None) -> str:
    import shutil

    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        repo = repos_q.remove_repository(session=session, name=name, force=force)
        path = mirror_path(settings, repo.id)
    shutil.rmtree(path, ignore_errors=True)
    return name
