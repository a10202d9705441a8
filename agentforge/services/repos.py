"""Registering and removing repositories."""

from __future__ import annotations

import os
import re

from pydantic import BaseModel

from agentforge.catalogs import FORMATS
from agentforge.config import Settings, get_settings
from agentforge.core.urls import default_repository_name, normalise_repository_url
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, GitError
from agentforge.gitops import ls_remote_many
from agentforge.services.settings import current_user_id
from agentforge.services.sync import FORCED_PREFIX, credentials_for, mirror_path
from models import RepoType
from models import repositories as repos_q
from models import settings as settings_q

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")


class RepoAdded(BaseModel):
    name: str
    url: str
    type: str
    created: bool
    format: str | None = None  # the forced catalog format, None: detected at each sync
    trusted: bool = True


def add_repository(raw_url: str, *, name: str | None = None, type: str | None = None, branch: str | None = None,
                   allow_insecure: bool = False, check: bool = True, format: str | None = None,
                   untrusted: bool = False, settings: Settings | None = None) -> RepoAdded:
    """Register a repository. ``format`` forces a catalog format (stored as ``forced:<format>``,
    see ``services.sync.forced_format``); ``untrusted`` takes its URL off the current user's
    trusted list (a registered repository is trusted by default), so locks need signed releases
    or ``allow_unsigned_components``."""
    settings = settings or get_settings()
    if format is not None and format not in FORMATS:
        raise AgentForgeError(f"--format {format!r} is not a known catalog format", code="FORMAT_UNKNOWN",
                              hint=f"Use one of: {', '.join(FORMATS)} (or leave it out to detect).")
    if not raw_url.startswith(("/", "file:", "http", "git@")) and os.path.isdir(raw_url):
        # `owner/repo` is GitHub shorthand; a relative folder of the same shape is almost surely meant.
        raise AgentForgeError(f"{raw_url!r} reads as the GitHub repository github.com/{raw_url}, but it is also a "
                              "folder here", code="URL_AMBIGUOUS",
                              hint=f"For the local folder use its absolute path: {os.path.abspath(raw_url)}")
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
                                               default_branch=branch,
                                               source_format=FORCED_PREFIX + format if format else None)
        if format and not created and repo.source_format != FORCED_PREFIX + format:
            repo.source_format = FORCED_PREFIX + format  # re-adding with --format changes the forced one
        if untrusted:
            settings_q.set_trusted(session=session, user_id=current_user_id(), url=repo.url, trusted=False)
        return RepoAdded(name=repo.name, url=repo.url, type=repo.type.value, created=created, format=format,
                         trusted=not untrusted)


def follow_external(name: str, *, settings: Settings | None = None) -> tuple[list[RepoAdded], list[str]]:
    """Register the external plugin sources of a synced marketplace (``--follow-external``).

    Reads ``catalog.external`` of the stored tip manifest; each source URL goes through the
    same URL validation as `repo add` (``file://`` included). Returns (registered or already
    known, problems for sources that could not be registered). The dependency entries stay as
    the reader wrote them: pinned to the source's ``sha`` (or ``ref``).
    """
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        repo = repos_q.get_repository(session=session, name=name)
        catalog = (repo.manifest or {}).get("catalog") or {}
        external = [e for e in (catalog.get("external") or []) if isinstance(e, dict)]
    added: list[RepoAdded] = []
    problems: list[str] = []
    for url in sorted({str(e["repository"]) for e in external if e.get("repository")}):
        try:
            added.append(add_repository(url, check=False, settings=settings))
        except AgentForgeError as exc:
            problems.append(f"external source {url}: {exc.message}")
    return added, problems


def remove_repository(name: str, *, force: bool = False, settings: Settings | None = None) -> str:
    import shutil

    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        repo = repos_q.remove_repository(session=session, name=name, force=force)
        path = mirror_path(settings, repo.id)
    shutil.rmtree(path, ignore_errors=True)
    return name
