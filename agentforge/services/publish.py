"""Publishing local changes as plain functions (no Prefect): commit, push, fork, pull request.

Steps of one publication (``flows/publish.py`` runs each as a task):

1. :func:`prepare_publish` — reads the installed component, builds the commit from git
   objects in the repository's *mirror* (``hash-object -w`` of the installed folder's files,
   a temporary index seeded from the installed commit, ``write-tree``, ``commit-tree``; never
   the user's own clone), decides the route (write access → origin, else ``--fork``), and
   records the intent: the push step's ``sync_operations`` row (PENDING, with the branch and
   the commit) is committed before any push.
2. :func:`ensure_fork` — the user's fork, reused from the ``forks`` table / GitHub, else created.
3. :func:`push_branch` — ``git push <commit>:refs/heads/<branch>`` (token through the
   environment only, :class:`~agentforge.gitops.GitCredentials`).
4. :func:`open_pull_request` — an open PR for the branch, found again or created.
5. :func:`finish_publish` — the pushed ``component_changes`` rows get the commit and branch; the
   component becomes FORKED (``fork_repo``/``fork_branch``: where its change now lives).

Idempotence: every step finds its row again by (component, branch, operation)
(:func:`models.publish.begin_step`). A re-run without ``--branch`` reuses the branch of the
component's last unfinished publication (or of a finished one whose commit holds exactly the
current files), and the commit recorded for that branch when its tree is unchanged, so a
re-run after a failure pushes the same commit to the same branch and finds the same fork and
pull request. Nothing here touches the installed files: a failed step loses nothing.

Write access: the GitHub API's permissions for repositories on GitHub (a ``github.com`` URL
on the configured API, or a repository mapped to ``owner/name`` with :func:`link_github` —
how a ``file://`` test repository served by a fake GitHub is published through forks), the
file system for other ``file://`` remotes; any other host is assumed writable (its push answers).
The GitHub token is fetched here, by each step that needs it, never passed in.
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import subprocess
import tempfile
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import yaml
from pydantic import BaseModel

from agentforge.config import Settings, get_settings
from agentforge.core.merge import diff_definitions
from agentforge.db import get_engine, session_scope
from agentforge.errors import AgentForgeError, ConfigError, Conflict, GitError, NotFound, redact
from agentforge.github import (
    GitHubClient,
    GitHubNotFound,
    GitHubTokenMissing,
    client_from_settings,
    parse_github_remote,
    web_host,
)
from agentforge.gitops import GitCredentials, RepositoryMirror, _base_environment, _run
from agentforge.secrets import clear_github_token, get_github_token, store_github_token
from agentforge.services.sync import open_mirror
from models import ComponentSyncStatus, Repository, SyncDirection, SyncOperationStatus, SyncOperationType
from models import changes as changes_q
from models import publish as publish_q

log = logging.getLogger(__name__)

DEFINITION_FILE = "component.yaml"
PUBLISH_REF_PREFIX = "refs/forge/publish/"
_ZERO = "0" * 40
_TOKEN_HINT = "export GITHUB_TOKEN=… or run `agentforge config set github.token`."
#: Extra options for every GitHubClient built here (tests switch PyGithub's request spacing off).
CLIENT_OPTIONS: dict[str, Any] = {}
_REJECTED = ("[rejected]", "non-fast-forward", "fetch first", "updates were rejected", "[remote rejected]")

Route = Literal["origin", "fork"]


# --- values -----------------------------------------------------------------------------------


class PublishRequest(BaseModel):
    component: str
    message: str | None = None
    branch: str | None = None
    fork: bool = False
    pr: bool = False
    title: str | None = None
    body: str | None = None
    draft: bool = False


class PublishPlan(BaseModel):
    component: str
    component_id: str
    repository_id: str
    repository_name: str
    repository_url: str
    path: str
    installed_commit: str
    base_branch: str
    branch: str
    commit: str
    parent: str
    route: Route
    github: str | None  # upstream owner/name on the configured GitHub
    push_operation_id: str
    want_pr: bool
    title: str
    body: str
    draft: bool
    changed: list[str]
    resumed: bool


class ForkTarget(BaseModel):
    full_name: str
    owner: str
    clone_url: str
    html_url: str
    created: bool


class PushOutcome(BaseModel):
    operation: str
    remote: str
    branch: str
    commit: str
    skipped: bool = False


class PullRequestOutcome(BaseModel):
    number: int
    url: str
    state: str
    created: bool


class PublishOutcome(BaseModel):
    component: str
    branch: str
    commit: str
    route: Route
    pushed_to: str
    fork: str | None = None
    fork_created: bool = False
    pull_request_url: str | None = None
    pull_request_number: int | None = None
    pull_request_created: bool = False
    changes_stamped: int = 0
    changed: list[str] = []
    resumed: bool = False
    sync_status: str


# --- helpers ----------------------------------------------------------------------------------


def _client(settings: Settings, token: str | None = None) -> tuple[GitHubClient, str]:
    token = token or get_github_token(settings)
    if not token:
        raise GitHubTokenMissing(f"no GitHub token for {settings.github_api_url}", hint=_TOKEN_HINT)
    return client_from_settings(settings, token, **CLIENT_OPTIONS), token


def _split(full_name: str) -> tuple[str, str]:
    owner, _, name = full_name.partition("/")
    return owner, name


def github_full_name(url: str, mapping: str | None, settings: Settings) -> str | None:
    """``owner/name`` of a repository on the configured GitHub: its mapping, else its URL."""
    if mapping:
        return mapping
    parsed = parse_github_remote(url, api_url=settings.github_api_url)
    return f"{parsed[0]}/{parsed[1]}" if parsed else None


def _credentials(url: str, settings: Settings) -> GitCredentials | None:
    """The token for git only over HTTPS to the configured GitHub's host (never elsewhere)."""
    parts = urlsplit(url)
    if parts.scheme != "https" or (parts.hostname or "").lower() not in {web_host(settings.github_api_url),
                                                                          "github.com"}:
        return None
    token = get_github_token(settings)
    return GitCredentials(token=token) if token else None


def _local_path(url: str) -> Path | None:
    if url.startswith("file://"):
        return Path(unquote(urlsplit(url).path))
    if url.startswith("/"):
        return Path(url)
    return None


def filesystem_write_access(url: str) -> bool | None:
    """For a local bare repository: may this user write its objects and refs? None for remotes."""
    path = _local_path(url)
    if path is None:
        return None
    return all(os.access(p, os.W_OK | os.X_OK) for p in (path, path / "objects", path / "refs"))


def _git(mirror: RepositoryMirror, *args: str, action: str, env: Mapping[str, str] | None = None,
         stdin: bytes | None = None, credentials: GitCredentials | None = None, url: str | None = None) -> str:
    """One git process in the mirror (the adapter's environment rules: no prompts, no ext::)."""
    base = _base_environment(allow_http=False, credentials=credentials)
    base["GIT_DIR"] = str(mirror.path)
    base.update(env or {})
    if stdin is None:
        out = _run(list(args), env=base, action=action, cwd=mirror.path, url=url, credentials=credentials)
    else:
        with tempfile.TemporaryFile() as handle:
            handle.write(stdin)
            handle.seek(0)
            out = _run(list(args), env=base, action=action, cwd=mirror.path, url=url, credentials=credentials,
                       istream=handle)
    return out.decode("utf-8", "surrogateescape")


def _valid_branch(branch: str) -> str:
    ok = subprocess.run(["git", "check-ref-format", "--branch", branch], capture_output=True, text=True)
    if ok.returncode != 0 or branch.startswith("-") or len(branch) > 100:
        raise ConfigError(f"--branch {branch!r} is not a valid branch name",
                          hint="Use letters, digits, '/', '-', '_' and '.', at most 100 characters.")
    return branch


def _identity(session: Any) -> tuple[str, str]:
    """Author of the commit: user_settings (git_username/git_email), then git config, then a default."""
    user = os.environ.get("AGENTFORGE_USER") or getpass.getuser()
    stored = changes_q.user_identity(session=session, user_id=user)
    name, email = stored if stored else (None, None)

    def git_config(key: str) -> str | None:
        try:
            out = subprocess.run(["git", "config", "--get", key], capture_output=True, text=True, timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return out.stdout.strip() or None

    name = name or git_config("user.name") or user
    email = email or git_config("user.email") or f"{user}@localhost"
    return name, email


def _render(value: Any) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, width=10_000).strip() if value is not None else "∅"
    text = text.removesuffix("...").strip()
    return text if len(text) <= 80 else text[:77] + "..."


# --- building the commit ----------------------------------------------------------------------


class _Built(BaseModel):
    tree: str
    installed_tree: str
    changed_files: list[str]


def _build_tree(mirror: RepositoryMirror, commit: str, component_path: str, folder: Path) -> _Built:
    """The installed commit's tree with the component's folder replaced by the installed folder.

    Submodules under the folder (never exported by install) are kept as they are.
    """
    prefix = "" if component_path in ("", ".") else component_path.strip("/") + "/"
    listing = _git(mirror, "ls-tree", "-r", "-z", "--full-tree", commit, *([prefix] if prefix else []),
                   action="ls-tree")
    original: dict[str, tuple[str, str]] = {}
    for entry in filter(None, listing.split("\0")):
        meta, _, rel = entry.partition("\t")
        mode, _kind, sha = meta.split()
        original[rel] = (mode, sha)
    disk: dict[str, tuple[str, Path | bytes]] = {}
    for file in sorted(folder.rglob("*")):
        rel = file.relative_to(folder).as_posix()
        if "\n" in rel or "\0" in rel:
            raise GitError(f"{file}: file names with line breaks cannot be published", code="GIT_PATH_INVALID")
        if file.is_symlink():
            disk[prefix + rel] = ("120000", os.readlink(file).encode("utf-8", "surrogateescape"))
        elif file.is_file():
            disk[prefix + rel] = ("100755" if os.access(file, os.X_OK) else "100644", file)
    with tempfile.TemporaryDirectory(prefix="agentforge-publish-") as scratch:
        links: list[Path] = []
        for index, (path, (mode, source)) in enumerate(disk.items()):
            if isinstance(source, bytes):
                link_file = Path(scratch) / f"link-{index}"
                link_file.write_bytes(source)
                links.append(link_file)
                disk[path] = (mode, link_file)
        paths = [str(src) for _, src in disk.values()]
        shas = _git(mirror, "hash-object", "-w", "--no-filters", "--stdin-paths", action="hash-object",
                    stdin=("\n".join(paths) + "\n").encode("utf-8", "surrogateescape")).split() if paths else []
        lines: list[str] = []
        changed: list[str] = []
        for (path, (mode, _src)), sha in zip(disk.items(), shas, strict=True):
            if original.get(path) != (mode, sha):
                lines.append(f"{mode} {sha}\t{path}")
                changed.append(path.removeprefix(prefix))
        for path, (mode, _sha) in original.items():
            if path not in disk and mode != "160000":
                lines.append(f"0 {_ZERO}\t{path}")
                changed.append(path.removeprefix(prefix))
        env = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
        _git(mirror, "read-tree", commit, action="read-tree", env=env)
        if lines:
            _git(mirror, "update-index", "-z", "--index-info", action="update-index", env=env,
                 stdin="".join(line + "\0" for line in lines).encode("utf-8", "surrogateescape"))
        tree = _git(mirror, "write-tree", action="write-tree", env=env).strip()
    installed_tree = _git(mirror, "rev-parse", f"{commit}^{{tree}}", action="rev-parse").strip()
    return _Built(tree=tree, installed_tree=installed_tree, changed_files=sorted(changed))


def _tree_of(mirror: RepositoryMirror, commit: str | None) -> str | None:
    if not commit or not mirror.has_commit(commit):
        return None
    return _git(mirror, "rev-parse", f"{commit}^{{tree}}", action="rev-parse").strip()


def _commit_tree(mirror: RepositoryMirror, tree: str, parent: str, message: str, author: tuple[str, str]) -> str:
    name, email = author
    env = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": email, "GIT_COMMITTER_NAME": name,
           "GIT_COMMITTER_EMAIL": email}
    return _git(mirror, "commit-tree", tree, "-p", parent, "-F", "-", action="commit-tree", env=env,
                stdin=(message.rstrip("\n") + "\n").encode("utf-8")).strip()


def _open_mirror_at(settings: Settings, repository_id: uuid.UUID, url: str, commit: str) -> RepositoryMirror:
    mirror = open_mirror(settings, repository_id, url)
    if not mirror.exists():
        mirror.ensure()
    if not mirror.has_commit(commit):
        mirror.fetch_commit(commit)
    return mirror


# --- 1. prepare -------------------------------------------------------------------------------


def _fold_direct_edits(settings: Settings) -> None:
    """Direct edits of installed files become history rows first (devloop's `status` folds them)."""
    from agentforge.services import devloop

    devloop.status(settings=settings)


def _pr_body(request: PublishRequest, message: str, fields: list[tuple[str, str, Any, Any]],
             files: list[str]) -> str:
    lines = [request.body.rstrip() if request.body else message.rstrip(), "", "### Changed fields", ""]
    lines += [f"- `{path}` ({kind.lower()}): {_render(old)} → {_render(new)}" for path, kind, old, new in fields]
    if not fields:
        lines.append("- (no field of component.yaml)")
    other = [f for f in files if f != DEFINITION_FILE]
    if other:
        lines += ["", "### Changed files", ""] + [f"- `{f}`" for f in other]
    lines += ["", "_Published with `agentforge push`._"]
    return "\n".join(lines) + "\n"


def prepare_publish(request: PublishRequest, *, settings: Settings | None = None) -> PublishPlan:
    """Build the commit, choose branch and route, record the push step's intent (committed)."""
    settings = settings or get_settings()
    engine = get_engine(settings)
    _fold_direct_edits(settings)
    with session_scope(engine) as session:
        row = changes_q.find_installed(session=session, name=request.component)
        repo = session.get(Repository, row.repository_id)
        assert repo is not None
        if row.sync_status == ComponentSyncStatus.CONFLICT:
            raise Conflict(f"{row.name} has an unresolved merge conflict; refusing to push it",
                           code="PUBLISH_CONFLICT",
                           hint=f"Finish the pull with `agentforge resolve {row.name} --ours|--theirs|--continue`.")
        if not row.install_path or not Path(row.install_path).is_dir():
            raise NotFound(f"{row.name}: the installed folder {row.install_path} is missing",
                           hint=f"Reinstall it with `agentforge install {row.name}`.")
        component_id, repo_id, url = row.id, repo.id, repo.url
        name, path, installed_commit, folder = row.name, row.path, row.commit_hash, Path(row.install_path)
        original = dict(row.original_definition or row.definition)
        base_branch = repo.default_branch
        mapping = publish_q.github_mapping(session=session, repository_id=repo.id)
        author = _identity(session)
        latest = publish_q.latest_publish_step(session=session, component_id=component_id)
        repository_name = repo.name
    github = github_full_name(url, mapping, settings)

    # --- git objects (no transaction open)
    mirror = _open_mirror_at(settings, repo_id, url, installed_commit)
    try:
        built = _build_tree(mirror, installed_commit, path, folder)
        branch, resumed, recorded = _choose_branch(request, name, latest, built.tree, mirror, component_id, engine)
        if built.tree == built.installed_tree and not resumed:
            raise AgentForgeError(f"{name} has no local changes to push (its files match {installed_commit[:12]})",
                                  code="NOTHING_TO_PUSH", hint="Change it first: `agentforge edit` or its files.")
        fields = _changed_fields(original, folder)
        message = request.message or _default_message(name, [f[0] for f in fields], built.changed_files)
        recorded_tree = _tree_of(mirror, recorded)
        if recorded and recorded_tree == built.tree:
            commit, parent = recorded, _git(mirror, "rev-parse", f"{recorded}^", action="rev-parse").strip()
        else:
            parent = recorded if recorded and recorded_tree is not None else installed_commit
            commit = _commit_tree(mirror, built.tree, parent, message, author)
        _git(mirror, "update-ref", PUBLISH_REF_PREFIX + branch, commit, action="update-ref")
    finally:
        mirror.close()

    # --- write access (may ask GitHub), then the intent
    access, base_from_api = _write_access(settings, url, github)
    route: Route = "origin" if access and not request.fork else "fork"
    if route == "fork" and not request.fork:
        raise AgentForgeError(
            f"no write access to {repository_name} ({redact(url)}); nothing was pushed",
            code="NO_WRITE_ACCESS",
            hint=f"Publish through a fork: `agentforge push {name} --fork --pr`." if github else
                 f"Map the repository to GitHub first (`agentforge fork link {repository_name} OWNER/NAME`), "
                 "or ask for write access.")
    if (route == "fork" or request.pr) and github is None:
        raise AgentForgeError(
            f"{repository_name} is not a GitHub repository; forks and pull requests need one",
            code="NOT_ON_GITHUB",
            hint=f"`agentforge fork link {repository_name} OWNER/NAME` maps it to a repository on "
                 f"{settings.github_api_url}.")
    title = request.title or message.splitlines()[0][:200]
    body = _pr_body(request, message, fields, built.changed_files)
    operation = SyncOperationType.PUSH_TO_ORIGIN if route == "origin" else SyncOperationType.PUSH_TO_FORK
    direction = SyncDirection.LOCAL_TO_UPSTREAM if route == "origin" else SyncDirection.LOCAL_TO_FORK
    with session_scope(engine) as session:
        if access is not None:
            publish_q.set_write_access(session=session, repository_id=repo_id, value=access)
        step = publish_q.begin_step(session=session, component_id=component_id, repository_id=repo_id,
                                    branch=branch, operation=operation, direction=direction,
                                    source_commit=parent, target_commit=commit, message=message,
                                    status=SyncOperationStatus.PENDING)
    return PublishPlan(
        component=name, component_id=str(component_id), repository_id=str(repo_id),
        repository_name=repository_name, repository_url=url, path=path, installed_commit=installed_commit,
        base_branch=base_from_api or base_branch, branch=branch, commit=commit, parent=parent, route=route,
        github=github, push_operation_id=str(step.id), want_pr=request.pr, title=title, body=body,
        draft=request.draft, changed=[f[0] for f in fields] + [f"file:{f}" for f in built.changed_files
                                                                 if f != DEFINITION_FILE],
        resumed=resumed)


def _choose_branch(request: PublishRequest, name: str, latest: publish_q.StepRow | None, tree: str,
                   mirror: RepositoryMirror, component_id: uuid.UUID, engine: Any) -> tuple[str, bool, str | None]:
    """(branch, resumed, commit already recorded for it). See the module docstring."""
    def recorded_for(branch: str) -> str | None:
        with session_scope(engine) as session:
            for op in (SyncOperationType.PUSH_TO_FORK, SyncOperationType.PUSH_TO_ORIGIN):
                step = publish_q.step_of(session=session, component_id=component_id, branch=branch, operation=op)
                if step is not None and step.target_commit:
                    return step.target_commit
        return None

    if request.branch:
        branch = _valid_branch(request.branch)
        refs = mirror.local_refs()
        if branch.startswith("refs/") or branch == mirror.default_branch() or f"refs/tags/{branch}" in refs:
            raise ConfigError(f"--branch {branch!r}: a publish goes to a new branch of its own, not the default "
                              "branch, a tag's name or a full ref name", code="BRANCH_INVALID",
                              hint="Pick another name, e.g. --branch forge/my-change (or leave it out).")
        recorded = recorded_for(branch)
        return branch, recorded is not None, recorded
    if latest is not None and latest.branch_name:
        recorded = recorded_for(latest.branch_name)
        if latest.status != SyncOperationStatus.COMPLETED.value or _tree_of(mirror, recorded) == tree:
            return latest.branch_name, True, recorded
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    return f"forge/{name}-{stamp}", False, None


def _changed_fields(original: Mapping[str, Any], folder: Path) -> list[tuple[str, str, Any, Any]]:
    path = folder / DEFINITION_FILE
    try:
        current = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeError):
        return []
    if not isinstance(current, dict):
        return []
    return [(c.field_path, str(c.change_type), c.old, c.new) for c in diff_definitions(dict(original), current)]


def _default_message(name: str, fields: list[str], files: list[str]) -> str:
    what = fields + [f for f in files if f != DEFINITION_FILE]
    summary = ", ".join(what[:4]) + (f" and {len(what) - 4} more" if len(what) > 4 else "")
    return f"{name}: update {summary or 'files'}\n\nChanged with AgentForge (`agentforge push`)."


def _write_access(settings: Settings, url: str, github: str | None) -> tuple[bool | None, str | None]:
    """(may push, default branch per GitHub); None = unknown (a remote we cannot ask)."""
    if github is not None:
        client, _ = _client(settings)
        with client:
            info = client.repository(*_split(github))
        return info.can_push, info.default_branch
    local = filesystem_write_access(url)
    return (local if local is not None else None), None


# --- 2. fork ----------------------------------------------------------------------------------


def _owner_name_from_web(url: str) -> str | None:
    parts = [p for p in urlsplit(url).path.split("/") if p]
    return f"{parts[-2]}/{parts[-1].removesuffix('.git')}" if len(parts) >= 2 else None


def ensure_fork(plan: PublishPlan, *, settings: Settings | None = None) -> ForkTarget:
    """The user's fork of the upstream: the recorded one when it still exists, else GitHub's (created once)."""
    settings = settings or get_settings()
    engine = get_engine(settings)
    assert plan.github is not None
    component_id, repo_id = uuid.UUID(plan.component_id), uuid.UUID(plan.repository_id)
    with session_scope(engine) as session:
        step = publish_q.begin_step(session=session, component_id=component_id, repository_id=repo_id,
                                    branch=plan.branch, operation=SyncOperationType.CREATE_FORK,
                                    direction=SyncDirection.LOCAL_TO_FORK, source_commit=plan.installed_commit)
        recorded = publish_q.fork_of(session=session, original_repo=plan.repository_url)
    try:
        client, _ = _client(settings)
        with client:
            target: ForkTarget | None = None
            recorded_name = _owner_name_from_web(recorded) if recorded else None
            if recorded_name:
                try:
                    info = client.repository(*_split(recorded_name))
                    target = ForkTarget(full_name=info.full_name, owner=info.owner, clone_url=info.clone_url,
                                        html_url=info.html_url, created=False)
                except GitHubNotFound:
                    target = None  # deleted on GitHub: fork again
            if target is None:
                fork = client.create_fork(*_split(plan.github))
                target = ForkTarget(full_name=fork.full_name, owner=fork.owner, clone_url=fork.clone_url,
                                    html_url=fork.html_url, created=fork.created)
    except AgentForgeError as exc:
        _fail(engine, step.id, exc.message, settings)
        raise
    with session_scope(engine) as session:
        publish_q.record_fork(session=session, original_repo=plan.repository_url, fork_repo=target.html_url)
        publish_q.finish_step(session=session, operation_id=step.id, status=SyncOperationStatus.COMPLETED,
                              message=f"fork {target.full_name} {'created' if target.created else 'reused'}")
    return target


def _fail(engine: Any, operation_id: uuid.UUID, error: str, settings: Settings) -> None:
    token = None
    try:
        token = get_github_token(settings)
    except AgentForgeError:
        pass
    with session_scope(engine) as session:
        publish_q.finish_step(session=session, operation_id=operation_id, status=SyncOperationStatus.FAILED,
                              error=redact(error, token))


# --- 3. push ----------------------------------------------------------------------------------


def push_branch(plan: PublishPlan, fork: ForkTarget | None = None, *,
                settings: Settings | None = None) -> PushOutcome:
    """Push the plan's commit to the branch on origin or the fork; a rejection fails the step."""
    settings = settings or get_settings()
    engine = get_engine(settings)
    operation = SyncOperationType.PUSH_TO_ORIGIN if plan.route == "origin" else SyncOperationType.PUSH_TO_FORK
    direction = SyncDirection.LOCAL_TO_UPSTREAM if plan.route == "origin" else SyncDirection.LOCAL_TO_FORK
    url = plan.repository_url if fork is None else fork.clone_url
    with session_scope(engine) as session:
        before = publish_q.step_of(session=session, component_id=uuid.UUID(plan.component_id), branch=plan.branch,
                                   operation=operation)
        if before is not None and before.status == "COMPLETED" and before.target_commit == plan.commit:
            return PushOutcome(operation=operation.value, remote=redact(url), branch=plan.branch, commit=plan.commit,
                               skipped=True)
        step = publish_q.begin_step(session=session, component_id=uuid.UUID(plan.component_id),
                                    repository_id=uuid.UUID(plan.repository_id), branch=plan.branch,
                                    operation=operation, direction=direction, target_commit=plan.commit)
    credentials = _credentials(url, settings)
    mirror = open_mirror(settings, uuid.UUID(plan.repository_id), plan.repository_url)
    try:
        _git(mirror, "push", "--porcelain", "--no-verify", url, f"{plan.commit}:refs/heads/{plan.branch}",
             action="push", credentials=credentials, url=url)
    except GitError as exc:
        error = _push_error(exc, plan, url, fresh_fork=fork is not None and fork.created)
        _fail(engine, step.id, error.message, settings)
        raise error from exc
    finally:
        mirror.close()
    with session_scope(engine) as session:
        publish_q.finish_step(session=session, operation_id=step.id, status=SyncOperationStatus.COMPLETED,
                              target_commit=plan.commit)
    return PushOutcome(operation=operation.value, remote=redact(url), branch=plan.branch, commit=plan.commit)


def _push_error(exc: GitError, plan: PublishPlan, url: str, *, fresh_fork: bool) -> GitError:
    detail = str(exc.details.get("stderr") or exc.message)
    if any(marker in detail.lower() for marker in _REJECTED):
        return GitError(
            f"push of {plan.component} to branch {plan.branch} of {redact(url)} was rejected: the branch "
            f"already holds commits that {plan.commit[:12]} does not contain (non-fast-forward). "
            "Nothing was lost: the local changes and the installed files are as they were.",
            code="GIT_PUSH_REJECTED", retryable=False, details={"stderr": detail},
            hint=f"Push to a new branch: `agentforge push {plan.component} --branch NEW-NAME` (add --fork/--pr as "
                 "before), or integrate the remote branch first.")
    if fresh_fork and exc.code == "GIT_REPOSITORY_NOT_FOUND":
        # GitHub creates forks asynchronously: a just-created fork may not accept pushes yet.
        return GitError(exc.message, code="GIT_FORK_NOT_READY", retryable=True, hint="The push is retried.")
    return exc


# --- 4. pull request --------------------------------------------------------------------------


def open_pull_request(plan: PublishPlan, fork: ForkTarget | None = None, *,
                      settings: Settings | None = None) -> PullRequestOutcome:
    """An open pull request from the branch into the base branch: found again, or created."""
    settings = settings or get_settings()
    engine = get_engine(settings)
    assert plan.github is not None
    owner, name = _split(plan.github)
    head = f"{fork.owner}:{plan.branch}" if fork is not None else plan.branch
    with session_scope(engine) as session:
        step = publish_q.begin_step(session=session, component_id=uuid.UUID(plan.component_id),
                                    repository_id=uuid.UUID(plan.repository_id), branch=plan.branch,
                                    operation=SyncOperationType.CREATE_PR, direction=SyncDirection.FORK_TO_UPSTREAM
                                    if fork is not None else SyncDirection.LOCAL_TO_UPSTREAM,
                                    source_commit=plan.commit)
    try:
        client, _ = _client(settings)
        with client:
            pull = client.find_or_create_pull(owner, name, head=head, base=plan.base_branch, title=plan.title,
                                              body=plan.body, draft=plan.draft)
    except AgentForgeError as exc:
        _fail(engine, step.id, exc.message, settings)
        raise
    with session_scope(engine) as session:
        publish_q.finish_step(session=session, operation_id=step.id, status=SyncOperationStatus.COMPLETED,
                              pull_request_url=pull.url, pull_request_id=str(pull.number),
                              message=f"state: {pull.state}")
    return PullRequestOutcome(number=pull.number, url=pull.url, state=pull.state, created=pull.created)


# --- 5. finish --------------------------------------------------------------------------------


def finish_publish(plan: PublishPlan, push: PushOutcome, fork: ForkTarget | None = None,
                   pull: PullRequestOutcome | None = None, *, settings: Settings | None = None) -> PublishOutcome:
    """Stamp the published change rows with the commit and branch; the component becomes FORKED."""
    settings = settings or get_settings()
    component_id = uuid.UUID(plan.component_id)
    where = fork.html_url if fork is not None else plan.repository_url
    with session_scope(get_engine(settings)) as session:
        stamped = publish_q.stamp_changes(session=session, component_id=component_id, commit_hash=plan.commit,
                                          branch=plan.branch)
        publish_q.mark_forked(session=session, component_id=component_id, fork_repo=where, fork_branch=plan.branch)
    return PublishOutcome(
        component=plan.component, branch=plan.branch, commit=plan.commit, route=plan.route, pushed_to=push.remote,
        fork=fork.full_name if fork else None, fork_created=bool(fork and fork.created),
        pull_request_url=pull.url if pull else None, pull_request_number=pull.number if pull else None,
        pull_request_created=bool(pull and pull.created), changes_stamped=stamped, changed=plan.changed,
        resumed=plan.resumed, sync_status=ComponentSyncStatus.FORKED.value)


def publish_component(request: PublishRequest, *, settings: Settings | None = None) -> PublishOutcome:
    """Every step in this process, without Prefect (the flow runs the same steps as tasks)."""
    plan = prepare_publish(request, settings=settings)
    fork = ensure_fork(plan, settings=settings) if plan.route == "fork" else None
    push = push_branch(plan, fork, settings=settings)
    pull = open_pull_request(plan, fork, settings=settings) if plan.want_pr else None
    return finish_publish(plan, push, fork, pull, settings=settings)


# --- back to SYNCED ---------------------------------------------------------------------------


def reconcile_published(repository_id: str | uuid.UUID, *, settings: Settings | None = None) -> list[str]:
    """After a sync: FORKED components whose pushed change is on the default branch become SYNCED.

    Merged means the pushed commit is an ancestor of the branch tip (merge or fast-forward),
    or the tip holds exactly the pushed folder (squash or rebase merges). Git only, no API:
    sync calls it with the freshly fetched mirror. Returns the names marked SYNCED.
    """
    settings = settings or get_settings()
    engine = get_engine(settings)
    repo_id = uuid.UUID(str(repository_id))
    with session_scope(engine) as session:
        repo = session.get(Repository, repo_id)
        if repo is None:
            return []
        url, branch = repo.url, repo.default_branch
        forked = publish_q.forked_components(session=session, repository_id=repo_id)
    if not forked:
        return []
    mirror = open_mirror(settings, repo_id, url)
    merged: list[publish_q.ForkedComponent] = []
    try:
        if not mirror.exists():
            return []
        tip = mirror.local_refs().get(f"refs/heads/{branch}")
        if tip is None:
            return []
        for item in forked:
            pushed = item.pushed_commit
            if not pushed or not mirror.has_commit(pushed):
                continue
            folder = "" if item.path in ("", ".") else item.path
            if mirror.is_ancestor(pushed, tip) or mirror.tree_id(tip, folder) == mirror.tree_id(pushed, folder):
                merged.append(item)
    finally:
        mirror.close()
    with session_scope(engine) as session:
        publish_q.mark_synced(session=session, component_ids=[m.id for m in merged])
    return sorted(m.name for m in merged)


# --- pull requests: listing -------------------------------------------------------------------


class PullRequestLine(BaseModel):
    component: str | None
    repository: str | None
    branch: str | None
    number: int | None
    url: str
    state: str
    refreshed: bool
    created_at: datetime


def list_pull_requests(*, repository: str | None = None, refresh: bool = True,
                       settings: Settings | None = None) -> tuple[list[PullRequestLine], str | None]:
    """Recorded pull requests, their state refreshed from the API; (lines, warning).

    A PR seen merged puts its component back to SYNCED (its change is upstream now).
    """
    settings = settings or get_settings()
    engine = get_engine(settings)
    with session_scope(engine) as session:
        rows = publish_q.pull_requests(session=session, repository=repository)
        mappings = {r.repository_id: publish_q.github_mapping(session=session, repository_id=r.repository_id)
                    for r in rows if r.repository_id is not None}
    warning: str | None = None
    states: dict[uuid.UUID, str] = {}
    if refresh and rows:
        try:
            client, _ = _client(settings)
        except GitHubTokenMissing as exc:
            client, warning = None, f"{exc.message}: states shown as last seen ({exc.hint})"
        if client is not None:
            with client:
                for row in rows:
                    mapping = mappings.get(row.repository_id) if row.repository_id is not None else None
                    full = github_full_name(row.repository_url or "", mapping, settings)
                    if full is None or not row.number:
                        continue
                    try:
                        states[row.operation_id] = client.pull_state(*_split(full), int(row.number))
                    except AgentForgeError as exc:
                        warning = exc.message
    merged_components: list[uuid.UUID] = []
    lines: list[PullRequestLine] = []
    with session_scope(engine) as session:
        for row in rows:
            seen = (row.message or "").removeprefix("state: ") or "open"
            state = states.get(row.operation_id, seen)
            if row.operation_id in states and state != seen:
                publish_q.record_pull_state(session=session, operation_id=row.operation_id, state=state)
            if state == "merged" and row.component_id is not None:
                merged_components.append(row.component_id)
            lines.append(PullRequestLine(component=row.component, repository=row.repository, branch=row.branch,
                                         number=int(row.number) if row.number else None, url=row.url, state=state,
                                         refreshed=row.operation_id in states, created_at=row.created_at))
        publish_q.mark_synced(session=session, component_ids=merged_components)
    return lines, warning


# --- fork sync --------------------------------------------------------------------------------


class ForkSyncOutcome(BaseModel):
    repository: str
    fork: str
    branch: str
    merge_type: str
    message: str


def sync_fork(repository: str, *, branch: str | None = None, settings: Settings | None = None) -> ForkSyncOutcome:
    """Merge the upstream's branch into the user's fork of REPOSITORY (GitHub's merge-upstream)."""
    settings = settings or get_settings()
    engine = get_engine(settings)
    with session_scope(engine) as session:
        repo = _repository(session, repository)
        fork_url = publish_q.fork_of(session=session, original_repo=repo.url)
        repo_id, base = repo.id, branch or repo.default_branch
    fork_name = _owner_name_from_web(fork_url) if fork_url else None
    if fork_name is None:
        raise NotFound(f"no fork of {repository} is recorded",
                       hint=f"`agentforge push COMPONENT --fork` creates one for a component of {repository}.")
    with session_scope(engine) as session:
        op_id = publish_q.begin_repository_step(session=session, repository_id=repo_id, branch=base,
                                                operation=SyncOperationType.MERGE_UPSTREAM,
                                                direction=SyncDirection.UPSTREAM_TO_LOCAL)
    try:
        client, _ = _client(settings)
        with client:
            result = client.merge_upstream(*_split(fork_name), base)
    except AgentForgeError as exc:
        _fail(engine, op_id, exc.message, settings)
        raise
    with session_scope(engine) as session:
        publish_q.finish_step(session=session, operation_id=op_id, status=SyncOperationStatus.COMPLETED,
                              message=f"{result.merge_type}: {result.message}")
    return ForkSyncOutcome(repository=repository, fork=fork_name, branch=base, merge_type=result.merge_type,
                           message=result.message)


def _repository(session: Any, name: str) -> Repository:
    import sqlalchemy as sa

    repo = session.scalar(sa.select(Repository).where(Repository.name == name))
    if repo is None:
        raise NotFound(f"repository {name!r} is not registered", hint="`agentforge repo ls` lists them.")
    return repo  # type: ignore[no-any-return]


# --- settings: token and GitHub mapping -------------------------------------------------------

_FULL_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$")


def link_github(repository: str, full_name: str | None, *, settings: Settings | None = None) -> str | None:
    """Map a registered repository to ``owner/name`` on the configured GitHub (None removes it)."""
    settings = settings or get_settings()
    if full_name is not None and not _FULL_NAME.match(full_name):
        raise ConfigError(f"{full_name!r} is not OWNER/NAME", hint="For example: acme/crm-tools.")
    with session_scope(get_engine(settings)) as session:
        repo = _repository(session, repository)
        publish_q.set_github_mapping(session=session, repository_id=repo.id, full_name=full_name)
    return full_name


def set_github_token(token: str, *, settings: Settings | None = None) -> None:
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        store_github_token(token, session=session, settings=settings)


def unset_github_token(*, settings: Settings | None = None) -> bool:
    settings = settings or get_settings()
    with session_scope(get_engine(settings)) as session:
        return clear_github_token(session=session)
