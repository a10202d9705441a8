"""A small GitHub-REST-compatible server for tests, on 127.0.0.1 (random free port).

    with GitHubFake(tmp_path / "github") as fake:       # or the ``github_fake`` fixture
        upstream = fake.add_repo("acme", "crm-tools", bare_path, permissions={"push": False})
        client = GitHubClient(fake.base_url, fake.token, seconds_between_requests=None, ...)
        fork = client.create_fork("acme", "crm-tools")   # a real bare clone: git push to fork.clone_url works
        fake.fail_next("/repos/acme/crm-tools/pulls", 422, method="POST")
        fake.rate_limit(remaining=0, reset=fake.clock() + 30)
        fake.merge_pull("acme", "crm-tools", 1)           # a real merge into the upstream bare repository
        fake.requests[-1].authorization                   # "token ghp_…"

Endpoints (the ones PyGithub calls for ``agentforge.github``): ``GET /user``,
``GET /rate_limit``, ``GET /repos/{o}/{r}`` (with the viewer's ``permissions``),
``GET|POST /repos/{o}/{r}/forks``, ``GET|POST /repos/{o}/{r}/pulls``,
``GET /repos/{o}/{r}/pulls/{n}``, ``POST /repos/{o}/{r}/merge-upstream``. Bodies follow
GitHub's documented shapes (the fields PyGithub reads, and list items without ``merged`` as
GitHub sends them); errors are ``{"message", "documentation_url", "status"}`` with
``errors`` on 422; every response carries ``X-RateLimit-*`` headers.

Git: repositories are bare repositories on disk, their ``clone_url`` a ``file://`` URL.
A fork is a ``git clone --bare`` of its upstream; pull requests check their head branch
really exists (and differs from the base), and merges/fork syncs are real git merges.

The server never prints requests (its log would otherwise hold Authorization headers);
``requests`` records each one, including its Authorization header, for assertions.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

DEFAULT_TOKEN = "ghp_" + "FakeToken0123456789abcdefghijklmnopqr"[:36]
DEFAULT_LOGIN = "forge-user"
DOCS = "https://docs.github.com/rest"
_DEFAULT_MESSAGES = {
    401: "Bad credentials",
    403: "Resource not accessible by personal access token",
    404: "Not Found",
    409: "Conflict",
    422: "Validation Failed",
    500: "Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
_READ_ONLY = {"admin": False, "maintain": False, "push": False, "triage": False, "pull": True}
_OWNER = {"admin": True, "maintain": True, "push": True, "triage": True, "pull": True}
_GIT_ENV = {
    "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0",
    "GIT_AUTHOR_NAME": "GitHub Fake", "GIT_AUTHOR_EMAIL": "noreply@github.test",
    "GIT_COMMITTER_NAME": "GitHub Fake", "GIT_COMMITTER_EMAIL": "noreply@github.test",
}


def _now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeRepo:
    id: int
    owner: str
    name: str
    bare_path: Path
    default_branch: str
    permissions: dict[str, bool]
    private: bool = False
    parent: FakeRepo | None = None
    created_at: str = field(default_factory=_now_iso)

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"

    @property
    def clone_url(self) -> str:
        return self.bare_path.as_uri()


@dataclass
class FakePull:
    id: int
    number: int
    repo: FakeRepo  # the base repository
    head_repo: FakeRepo
    head_ref: str
    head_sha: str
    base_ref: str
    title: str
    body: str | None
    draft: bool
    user: str
    state: str = "open"
    merged: bool = False
    merged_at: str | None = None
    closed_at: str | None = None
    merge_commit_sha: str | None = None
    created_at: str = field(default_factory=_now_iso)

    @property
    def head_label(self) -> str:
        return f"{self.head_repo.owner}:{self.head_ref}"


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str] = field(repr=False)  # repr=False: assertion output must not show the token
    body: Any
    authorization: str | None = field(repr=False)
    status: int = 0


@dataclass
class _Failure:
    path: str
    status: int | str
    method: str | None
    message: str | None
    headers: dict[str, str]
    body: Any
    times: int


class _Reply(Exception):
    """Raised inside a handler to answer with an error status."""

    def __init__(self, status: int, message: str | None = None, *, errors: list[Any] | None = None,
                 headers: dict[str, str] | None = None, body: Any = None) -> None:
        super().__init__(status)
        self.status = status
        self.body: Any = body if body is not None else {"message": message or _DEFAULT_MESSAGES.get(status, "Error"),
                             "documentation_url": DOCS, "status": str(status)}
        if errors is not None:
            self.body["errors"] = errors
        self.headers = headers or {}


class GitHubFake:
    def __init__(self, root: Path, *, token: str | None = DEFAULT_TOKEN, login: str = DEFAULT_LOGIN,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.token = token
        self.login = login
        #: The fake's notion of now (rate-limit resets); tests may share a virtual clock with the client.
        self.clock = clock
        self.requests: list[RecordedRequest] = []
        self.repos: dict[str, FakeRepo] = {}
        self.pulls: list[FakePull] = []
        self._failures: list[_Failure] = []
        self._ids = itertools.count(1000)
        self._lock = threading.RLock()
        self._limit = 5000
        self._remaining = 5000
        self._reset = int(self.clock()) + 3600
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> GitHubFake:
        fake = self

        class Handler(_Handler):
            github = fake

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="github-fake", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GitHubFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start() the fake first"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- configuration -----------------------------------------------------------------------

    def add_repo(self, owner: str, name: str, bare_path: Path | str | None = None, *,
                 permissions: dict[str, bool] | None = None, default_branch: str = "main",
                 private: bool = False) -> FakeRepo:
        """Serve ``owner/name`` backed by ``bare_path`` (a new empty bare repository when None).

        ``permissions`` are the viewer's (the token's user): read-only by default, full for
        the user's own repositories; given keys override the defaults.
        """
        if bare_path is None:
            bare_path = self.root / "repos" / owner / f"{name}.git"
            bare_path.parent.mkdir(parents=True, exist_ok=True)
            _git("init", "--bare", "--quiet", f"--initial-branch={default_branch}", str(bare_path))
        perms = dict(_OWNER if owner == self.login else _READ_ONLY)
        perms.update(permissions or {})
        with self._lock:
            repo = FakeRepo(id=next(self._ids), owner=owner, name=name, bare_path=Path(bare_path),
                            default_branch=default_branch, permissions=perms, private=private)
            self.repos[repo.full_name.lower()] = repo
            return repo

    def repo(self, owner: str, name: str) -> FakeRepo:
        return self.repos[f"{owner}/{name}".lower()]

    def forks_of(self, owner: str, name: str) -> list[FakeRepo]:
        upstream = self.repo(owner, name)
        return [r for r in self.repos.values() if r.parent is upstream]

    def pulls_of(self, owner: str, name: str) -> list[FakePull]:
        repo = self.repo(owner, name)
        return [p for p in self.pulls if p.repo is repo]

    def fail_next(self, path: str, status: int | str, *, method: str | None = None, message: str | None = None,
                  headers: dict[str, str] | None = None, body: Any = None, times: int = 1) -> None:
        """Answer the next ``times`` requests to ``path`` (no query; any method unless given) with ``status``.

        The body is GitHub's error shape with ``message`` (or its default for the status)
        unless ``body`` is given (any JSON, e.g. ``[]`` with 200 for an empty listing).
        ``status="disconnect"`` closes the connection without an answer (a network error).
        """
        with self._lock:
            self._failures.append(_Failure(path, status, method.upper() if method else None, message,
                                           dict(headers or {}), body, times))

    def rate_limit(self, *, remaining: int, reset: float | None = None, limit: int = 5000) -> None:
        """Set the quota: with ``remaining=0`` requests get GitHub's rate-limit 403 until ``reset``."""
        with self._lock:
            self._limit = limit
            self._remaining = remaining
            self._reset = int(reset if reset is not None else self.clock() + 3600)

    def merge_pull(self, owner: str, name: str, number: int) -> str:
        """Merge a pull request as GitHub's button would (real git); returns the merge commit."""
        with self._lock:
            pull = self._pull(self.repo(owner, name), number)
            if pull.state != "open":
                raise ValueError(f"pull request #{number} is {pull.state}")
            base = pull.repo.bare_path
            head_sha = _fetch(base, pull.head_repo.bare_path, f"refs/heads/{pull.head_ref}",
                              f"refs/pull/{number}/head")
            kind, sha = _merge_into(base, f"refs/heads/{pull.base_ref}", head_sha,
                                    f"Merge pull request #{number} from {pull.head_label}")
            if kind == "conflict":
                raise ValueError(f"pull request #{number} has conflicts")
            pull.state, pull.merged, pull.merge_commit_sha = "closed", True, sha
            pull.merged_at = pull.closed_at = _now_iso()
            return sha

    def close_pull(self, owner: str, name: str, number: int) -> None:
        with self._lock:
            pull = self._pull(self.repo(owner, name), number)
            pull.state, pull.closed_at = "closed", _now_iso()

    # --- request handling (called by the handler thread) --------------------------------------

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(raw_path)
        path = parts.path.rstrip("/") or "/"
        record = RecordedRequest(method, path, parse_qs(parts.query), headers, body, headers.get("authorization"))
        with self._lock:
            self.requests.append(record)
            try:
                self._inject_failure(method, path)
                self._authenticate(headers)
                self._spend_quota()
                status, payload = self._route(method, path, parse_qs(parts.query), body)
                extra: dict[str, str] = {}
            except _Reply as reply:
                status, payload, extra = reply.status, reply.body, reply.headers
            record.status = status
            return status, payload, {**self._rate_headers(), **extra}

    def _inject_failure(self, method: str, path: str) -> None:
        for failure in self._failures:
            if failure.path.rstrip("/") == path and failure.method in (None, method):
                failure.times -= 1
                if failure.times <= 0:
                    self._failures.remove(failure)
                if failure.status == "disconnect":
                    raise _Disconnect
                status = int(failure.status)
                headers = dict(failure.headers)
                if status == 403 and headers.get("X-RateLimit-Remaining") == "0" and failure.message is None:
                    raise _Reply(403, "API rate limit exceeded for user ID 1.", headers=headers)
                raise _Reply(status, failure.message, headers=headers, body=failure.body)

    def _authenticate(self, headers: dict[str, str]) -> None:
        if self.token is None:
            return
        if headers.get("authorization") not in (f"token {self.token}", f"Bearer {self.token}"):
            raise _Reply(401, "Bad credentials")

    def _spend_quota(self) -> None:
        if self.clock() >= self._reset:
            self._remaining, self._reset = self._limit, int(self.clock()) + 3600
        if self._remaining <= 0:
            raise _Reply(403, body={"message": "API rate limit exceeded for user ID 1.",
                               "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api",
                               "status": "403"})
        self._remaining -= 1

    def _rate_headers(self) -> dict[str, str]:
        return {"X-RateLimit-Limit": str(self._limit), "X-RateLimit-Remaining": str(max(0, self._remaining)),
                "X-RateLimit-Reset": str(self._reset), "X-RateLimit-Used": str(self._limit - max(0, self._remaining)),
                "X-RateLimit-Resource": "core"}

    _ROUTES: list[tuple[str, re.Pattern[str], str]] = [
        ("GET", re.compile(r"^/user$"), "_get_user"),
        ("GET", re.compile(r"^/rate_limit$"), "_get_rate_limit"),
        ("GET", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)$"), "_get_repo"),
        ("GET", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/forks$"), "_list_forks"),
        ("POST", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/forks$"), "_create_fork"),
        ("GET", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/pulls$"), "_list_pulls"),
        ("POST", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/pulls$"), "_create_pull"),
        ("GET", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/pulls/(?P<n>\d+)$"), "_get_pull"),
        ("POST", re.compile(r"^/repos/(?P<o>[^/]+)/(?P<r>[^/]+)/merge-upstream$"), "_merge_upstream"),
    ]

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        for verb, pattern, name in self._ROUTES:
            match = pattern.match(path)
            if match and verb == method:
                handler: Callable[..., tuple[int, Any]] = getattr(self, name)
                return handler(query=query, body=body if isinstance(body, dict) else {}, **match.groupdict())
        raise _Reply(404)

    # --- endpoints ---------------------------------------------------------------------------

    def _get_user(self, **_: Any) -> tuple[int, Any]:
        return 200, {**self._user_json(self.login), "name": "Forge User", "email": "forge-user@example.test"}

    def _get_rate_limit(self, **_: Any) -> tuple[int, Any]:
        core = {"limit": self._limit, "remaining": max(0, self._remaining), "reset": self._reset,
                "used": self._limit - max(0, self._remaining), "resource": "core"}
        return 200, {"resources": {"core": core}, "rate": core}

    def _get_repo(self, o: str, r: str, **_: Any) -> tuple[int, Any]:
        return 200, self._repo_json(self._visible(o, r))

    def _list_forks(self, o: str, r: str, **_: Any) -> tuple[int, Any]:
        upstream = self._visible(o, r)
        return 200, [self._repo_json(f) for f in self.repos.values() if f.parent is upstream]

    def _create_fork(self, o: str, r: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        upstream = self._visible(o, r)
        owner = str(body.get("organization") or self.login)
        for existing in self.repos.values():  # GitHub answers with the existing fork
            if existing.parent is upstream and existing.owner.lower() == owner.lower():
                return 202, self._repo_json(existing)
        if upstream.owner.lower() == owner.lower():
            raise _Reply(422, "Validation Failed", errors=[{"resource": "Repository", "code": "custom",
                                                            "message": "Cannot fork a repository to its owner."}])
        name = str(body.get("name") or upstream.name)
        candidate, n = name, 0
        while f"{owner}/{candidate}".lower() in self.repos:
            n += 1
            candidate = f"{name}-{n}"
        path = self.root / "forks" / owner / f"{candidate}.git"
        path.parent.mkdir(parents=True, exist_ok=True)
        _git("clone", "--bare", "--quiet", "--", str(upstream.bare_path), str(path))
        fork = FakeRepo(id=next(self._ids), owner=owner, name=candidate, bare_path=path,
                        default_branch=upstream.default_branch, permissions=dict(_OWNER),
                        private=upstream.private, parent=upstream)
        self.repos[fork.full_name.lower()] = fork
        return 202, self._repo_json(fork)

    def _list_pulls(self, o: str, r: str, query: dict[str, list[str]], **_: Any) -> tuple[int, Any]:
        repo = self._visible(o, r)
        state = (query.get("state") or ["open"])[0]
        head = query["head"][0] if query.get("head") else None
        base = query["base"][0] if query.get("base") else None
        found = []
        for pull in self.pulls:
            if pull.repo is not repo or (state != "all" and pull.state != state):
                continue
            if head is not None and pull.head_label.lower() != (head if ":" in head else f"{o}:{head}").lower():
                continue
            if base is not None and pull.base_ref != base:
                continue
            found.append(pull)
        found.sort(key=lambda p: p.number, reverse=True)  # GitHub's default: newest first
        return 200, [self._pull_json(p, listing=True) for p in found]

    def _create_pull(self, o: str, r: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        repo = self._visible(o, r)
        missing = [f for f in ("head", "base") if not body.get(f)]
        if missing or not (body.get("title") or body.get("issue")):
            fields = missing or ["title"]
            raise _Reply(422, errors=[{"resource": "PullRequest", "field": f, "code": "missing_field"}
                                      for f in fields])
        head_owner, _colon, head_ref = str(body["head"]).rpartition(":")
        base = str(body["base"])
        head_repo = self._head_repo(repo, head_owner or repo.owner)
        if head_repo is None:
            raise _Reply(422, errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        head_sha = _rev(head_repo.bare_path, f"refs/heads/{head_ref}")
        base_sha = _rev(repo.bare_path, f"refs/heads/{base}")
        if head_sha is None:
            raise _Reply(422, errors=[{"resource": "PullRequest", "field": "head", "code": "invalid"}])
        if base_sha is None:
            raise _Reply(422, errors=[{"resource": "PullRequest", "field": "base", "code": "invalid"}])
        label = f"{head_repo.owner}:{head_ref}"
        for pull in self.pulls:
            if pull.repo is repo and pull.state == "open" and pull.head_label == label and pull.base_ref == base:
                raise _Reply(422, errors=[{"resource": "PullRequest", "code": "custom",
                                           "message": f"A pull request already exists for {label}."}])
        number = 1 + max((p.number for p in self.pulls if p.repo is repo), default=0)
        _fetch(repo.bare_path, head_repo.bare_path, f"refs/heads/{head_ref}", f"refs/pull/{number}/head")
        if _is_ancestor(repo.bare_path, head_sha, base_sha):
            _git("update-ref", "-d", f"refs/pull/{number}/head", cwd=repo.bare_path)
            raise _Reply(422, errors=[{"resource": "PullRequest", "code": "custom",
                                       "message": f"No commits between {base} and {label}"}])
        pull = FakePull(id=next(self._ids), number=number, repo=repo, head_repo=head_repo, head_ref=head_ref,
                        head_sha=head_sha, base_ref=base, title=str(body.get("title") or ""),
                        body=body.get("body"), draft=bool(body.get("draft", False)), user=self.login)
        self.pulls.append(pull)
        return 201, self._pull_json(pull)

    def _get_pull(self, o: str, r: str, n: str, **_: Any) -> tuple[int, Any]:
        return 200, self._pull_json(self._pull(self._visible(o, r), int(n)))

    def _merge_upstream(self, o: str, r: str, body: dict[str, Any], **_: Any) -> tuple[int, Any]:
        fork = self._visible(o, r)
        branch = str(body.get("branch") or "")
        if not fork.permissions.get("push"):
            raise _Reply(403, "Resource not accessible by personal access token")
        if fork.parent is None:
            raise _Reply(422, "This repository is not a fork")
        upstream = fork.parent
        if not branch or _rev(upstream.bare_path, f"refs/heads/{branch}") is None:
            raise _Reply(422, f"Branch {branch!r} not found upstream")
        upstream_sha = _fetch(fork.bare_path, upstream.bare_path, f"refs/heads/{branch}",
                              f"refs/fake/upstream/{branch}")
        base_branch = f"{upstream.owner}:{branch}"
        kind, _sha = _merge_into(fork.bare_path, f"refs/heads/{branch}", upstream_sha,
                                 f"Merge branch '{branch}' of {upstream.full_name}")
        if kind == "conflict":
            raise _Reply(409, "There are merge conflicts")
        message = {
            "none": f"This branch is not behind the upstream {base_branch}.",
            "fast-forward": f"Successfully fetched and fast-forwarded from upstream {base_branch}.",
            "merge": f"Successfully fetched and merged from upstream {base_branch}.",
        }[kind]
        return 200, {"message": message, "merge_type": kind, "base_branch": base_branch}

    # --- helpers -----------------------------------------------------------------------------

    def _visible(self, owner: str, name: str) -> FakeRepo:
        repo = self.repos.get(f"{owner}/{name}".lower())
        if repo is None or (repo.private and not repo.permissions.get("pull")):
            raise _Reply(404, "Not Found")  # GitHub hides private repositories behind a 404
        return repo

    def _pull(self, repo: FakeRepo, number: int) -> FakePull:
        for pull in self.pulls:
            if pull.repo is repo and pull.number == number:
                return pull
        raise _Reply(404, "Not Found")

    def _head_repo(self, base: FakeRepo, owner: str) -> FakeRepo | None:
        if owner.lower() == base.owner.lower():
            return base
        network_root = base.parent or base
        for repo in self.repos.values():
            in_network = repo is network_root or repo.parent is network_root
            if in_network and repo.owner.lower() == owner.lower():
                return repo
        return None

    def _user_json(self, login: str) -> dict[str, Any]:
        return {"login": login, "id": zlib.crc32(login.encode()) % 10_000_000, "node_id": f"U_{login}",
                "avatar_url": f"{self.base_url}/avatars/{login}", "url": f"{self.base_url}/users/{login}",
                "html_url": f"{self.base_url}/{login}", "type": "User", "site_admin": False}

    def _repo_json(self, repo: FakeRepo, *, nested: bool = False) -> dict[str, Any]:
        api = f"{self.base_url}/repos/{repo.full_name}"
        out: dict[str, Any] = {
            "id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": repo.full_name,
            "owner": self._user_json(repo.owner), "private": repo.private,
            "visibility": "private" if repo.private else "public",
            "html_url": f"{self.base_url}/{repo.full_name}", "description": None, "fork": repo.parent is not None,
            "url": api, "forks_url": f"{api}/forks", "pulls_url": f"{api}/pulls{{/number}}",
            "clone_url": repo.clone_url, "git_url": repo.clone_url, "ssh_url": repo.clone_url,
            "default_branch": repo.default_branch, "created_at": repo.created_at, "updated_at": repo.created_at,
            "pushed_at": repo.created_at, "archived": False, "disabled": False,
            "permissions": dict(repo.permissions),
        }
        if repo.parent is not None and not nested:
            root = repo.parent
            while root.parent is not None:
                root = root.parent
            out["parent"] = self._repo_json(repo.parent, nested=True)
            out["source"] = self._repo_json(root, nested=True)
        return out

    def _pull_json(self, pull: FakePull, *, listing: bool = False) -> dict[str, Any]:
        api = f"{self.base_url}/repos/{pull.repo.full_name}/pulls/{pull.number}"
        base_sha = _rev(pull.repo.bare_path, f"refs/heads/{pull.base_ref}") or ""
        out: dict[str, Any] = {
            "url": api, "id": pull.id, "node_id": f"PR_{pull.id}",
            "html_url": f"{self.base_url}/{pull.repo.full_name}/pull/{pull.number}",
            "number": pull.number, "state": pull.state, "locked": False, "title": pull.title,
            "user": self._user_json(pull.user), "body": pull.body, "created_at": pull.created_at,
            "updated_at": pull.created_at, "closed_at": pull.closed_at, "merged_at": pull.merged_at,
            "merge_commit_sha": pull.merge_commit_sha, "draft": pull.draft,
            "head": {"label": pull.head_label, "ref": pull.head_ref, "sha": pull.head_sha,
                     "user": self._user_json(pull.head_repo.owner), "repo": self._repo_json(pull.head_repo)},
            "base": {"label": f"{pull.repo.owner}:{pull.base_ref}", "ref": pull.base_ref, "sha": base_sha,
                     "user": self._user_json(pull.repo.owner), "repo": self._repo_json(pull.repo)},
        }
        if not listing:  # the list endpoint's items carry no merge details, as on GitHub
            out.update({"merged": pull.merged, "mergeable": None if pull.merged else True,
                        "maintainer_can_modify": False, "commits": 1, "additions": 0, "deletions": 0,
                        "changed_files": 0})
        return out


class _Disconnect(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    github: GitHubFake
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # never print requests: the log would be a place a token could leak to

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        headers = {k.lower(): v for k, v in self.headers.items()}
        try:
            status, payload, extra = self.github.handle(self.command, self.path, headers, body)
        except _Disconnect:
            self.close_connection = True
            return
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve


# --- git -----------------------------------------------------------------------------------


def _git(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **_GIT_ENV}
    result = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result


def _rev(repo: Path, ref: str) -> str | None:
    result = _git("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", cwd=repo, check=False)
    return result.stdout.strip() or None if result.returncode == 0 else None


def _fetch(target: Path, source: Path, source_ref: str, target_ref: str) -> str:
    _git("fetch", "--quiet", "--no-tags", "--", str(source), f"+{source_ref}:{target_ref}", cwd=target)
    sha = _rev(target, target_ref)
    assert sha is not None
    return sha


def _is_ancestor(repo: Path, ancestor: str, descendant: str) -> bool:
    return _git("merge-base", "--is-ancestor", ancestor, descendant, cwd=repo, check=False).returncode == 0


def _merge_into(repo: Path, target_ref: str, source_sha: str, message: str) -> tuple[str, str]:
    """Merge ``source_sha`` into ``target_ref`` of a bare repository: (kind, resulting commit)."""
    target_sha = _rev(repo, target_ref)
    if target_sha is None or _is_ancestor(repo, target_sha, source_sha):
        if target_sha == source_sha:
            return "none", source_sha
        _git("update-ref", target_ref, source_sha, *([target_sha] if target_sha else []), cwd=repo)
        return "fast-forward", source_sha
    if _is_ancestor(repo, source_sha, target_sha):
        return "none", target_sha
    tree = _git("merge-tree", "--write-tree", target_sha, source_sha, cwd=repo, check=False)
    if tree.returncode != 0:
        return "conflict", target_sha
    commit = _git("commit-tree", tree.stdout.split()[0], "-p", target_sha, "-p", source_sha, "-m", message,
                  cwd=repo).stdout.strip()
    _git("update-ref", target_ref, commit, target_sha, cwd=repo)
    return "merge", commit


# --- fixture (import it into a conftest: ``from tests.github_fake import github_fake``) ------


@pytest.fixture()
def github_fake(tmp_path: Path) -> Iterator[GitHubFake]:
    """A started fake GitHub on 127.0.0.1, with repositories and forks under ``tmp_path/github``."""
    with GitHubFake(tmp_path / "github") as fake:
        yield fake
