"""The GitHub adapter: repositories and permissions, forks, pull requests, fork sync.

A thin layer over PyGithub pointed at ``settings.github_api_url`` (GitHub Enterprise
style ``https://host/api/v3`` works; tests point it at a fake server on 127.0.0.1). Every
call returns a small frozen pydantic value (never a PyGithub object, so nothing lazy
escapes and tasks can return the values), and every failure is an
:class:`~agentforge.errors.GitHubError` subclass with a specific code, raised ``from`` the
``GithubException`` / ``requests`` error, with the token redacted from the message:

==================  ===========================  =========
status              error                        retryable
==================  ===========================  =========
no token            ``GITHUB_TOKEN_MISSING``     no
401                 ``GITHUB_AUTH_FAILED``       no
403/429 rate limit  ``GITHUB_RATE_LIMITED``      yes (``wait_seconds``, ``details["reset_at"]``)
other 403           ``GITHUB_FORBIDDEN``         no
404                 ``GITHUB_NOT_FOUND``         no
409                 ``GITHUB_CONFLICT``          no
422                 ``GITHUB_VALIDATION_FAILED`` no (GitHub's message and ``errors`` kept)
5xx, network        ``GITHUB_UNREACHABLE``       yes
==================  ===========================  =========

Rate limits: PyGithub's own retry (which would sleep for up to an hour inside a worker)
is switched off. Instead, when a response says ``X-RateLimit-Remaining: 0`` the next call
waits until ``X-RateLimit-Reset`` — and a request refused for the rate limit (403/429 with
those headers or ``Retry-After``) is retried after the wait — but only when the wait is at
most ``max_rate_limit_wait`` seconds (``github_rate_limit_max_wait_seconds``); a longer
wait raises the retryable ``GITHUB_RATE_LIMITED`` at once, so the Prefect task retry (with
its own delay, ideally ``exc.wait_seconds``) takes over instead of a blocked worker.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

import github
import requests
from github.GithubException import GithubException
from pydantic import BaseModel, ConfigDict

from agentforge.config import Settings
from agentforge.errors import GitHubError, redact

__all__ = [
    "ForkInfo",
    "GitHubAuthFailed",
    "GitHubClient",
    "GitHubConflict",
    "GitHubForbidden",
    "GitHubNotFound",
    "GitHubRateLimited",
    "GitHubTokenMissing",
    "GitHubUnreachable",
    "GitHubValidationFailed",
    "MergeUpstreamResult",
    "PullRequestInfo",
    "PullState",
    "RepositoryInfo",
    "UserInfo",
    "client_from_settings",
    "parse_github_remote",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
PullState = Literal["open", "closed", "merged"]

_FORK_SCAN_LIMIT = 300
TOKEN_HINT = "export GITHUB_TOKEN=… or run `agentforge config set github.token`."


# --- errors ---------------------------------------------------------------------------------


class GitHubTokenMissing(GitHubError):
    code = "GITHUB_TOKEN_MISSING"


class GitHubAuthFailed(GitHubError):
    code = "GITHUB_AUTH_FAILED"


class GitHubForbidden(GitHubError):
    code = "GITHUB_FORBIDDEN"


class GitHubRateLimited(GitHubError):
    code = "GITHUB_RATE_LIMITED"
    retryable = True

    def __init__(self, message: str, *, wait_seconds: float, reset_at: datetime | None, **kwargs: Any) -> None:
        details = {"wait_seconds": wait_seconds, "reset_at": reset_at.isoformat() if reset_at else None}
        super().__init__(message, details=details, **kwargs)
        self.wait_seconds = wait_seconds
        self.reset_at = reset_at


class GitHubNotFound(GitHubError):
    code = "GITHUB_NOT_FOUND"


class GitHubConflict(GitHubError):
    code = "GITHUB_CONFLICT"


class GitHubValidationFailed(GitHubError):
    code = "GITHUB_VALIDATION_FAILED"


class GitHubUnreachable(GitHubError):
    code = "GITHUB_UNREACHABLE"
    retryable = True


# --- values ---------------------------------------------------------------------------------


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True)


class UserInfo(_Value):
    login: str
    id: int
    name: str | None = None
    email: str | None = None


class RepositoryInfo(_Value):
    owner: str
    name: str
    full_name: str
    default_branch: str
    clone_url: str
    html_url: str
    private: bool
    fork: bool
    parent_full_name: str | None = None
    #: The authenticated user's permissions (``admin``, ``maintain``, ``push``, ``triage``, ``pull``).
    permissions: dict[str, bool]

    @property
    def can_push(self) -> bool:
        return any(self.permissions.get(p, False) for p in ("push", "maintain", "admin"))


class ForkInfo(_Value):
    owner: str
    name: str
    full_name: str
    clone_url: str
    html_url: str
    default_branch: str
    parent_full_name: str
    #: False when an existing fork of the user's was reused.
    created: bool


class PullRequestInfo(_Value):
    number: int
    url: str  # the web page
    api_url: str
    state: PullState
    title: str
    draft: bool
    head_ref: str
    head_label: str  # ``owner:branch``
    head_sha: str
    base_ref: str
    #: False when an open pull request for the same head and base was reused.
    created: bool = False


class MergeUpstreamResult(_Value):
    branch: str
    merge_type: str  # "fast-forward" | "merge" | "none"
    base_branch: str | None
    message: str


# --- the client -----------------------------------------------------------------------------


class GitHubClient:
    """One authenticated connection to a GitHub (or GitHub Enterprise) REST API.

    ``sleep`` and ``clock`` are the rate-limit wait's time source (tests make it instant).
    ``seconds_between_requests``/``seconds_between_writes`` are PyGithub's throttles,
    kept at its defaults in production (GitHub asks for spaced writes) and switched off
    by tests.
    """

    def __init__(
        self,
        api_url: str,
        token: str | None,
        *,
        timeout: int = 30,
        max_rate_limit_wait: float = 60.0,
        max_rate_limit_retries: int = 2,
        seconds_between_requests: float | None = 0.25,
        seconds_between_writes: float | None = 1.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        token = (token or "").strip()
        if not token:
            raise GitHubTokenMissing(f"no GitHub token for {api_url}", hint=TOKEN_HINT)
        self.api_url = api_url.rstrip("/")
        self._token = token
        self._max_wait = max_rate_limit_wait
        self._max_retries = max_rate_limit_retries
        self._sleep = sleep
        self._clock = clock
        self._gh = github.Github(
            base_url=self.api_url,
            auth=github.Auth.Token(token),
            timeout=timeout,
            retry=None,  # our own rate-limit policy (module docstring); network retries are Prefect's
            seconds_between_requests=seconds_between_requests,
            seconds_between_writes=seconds_between_writes,
        )

    def __repr__(self) -> str:  # never the token
        return f"GitHubClient({self.api_url!r})"

    def close(self) -> None:
        self._gh.close()

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- operations --------------------------------------------------------------------------

    def current_user(self) -> UserInfo:
        def run() -> UserInfo:
            user = self._gh.get_user()
            return UserInfo(login=user.login, id=user.id, name=user.name, email=user.email)

        return self._call("read the authenticated user", run)

    def repository(self, owner: str, repo: str) -> RepositoryInfo:
        """The repository and the token's permissions on it; ``GITHUB_NOT_FOUND`` when absent/hidden."""
        return self._call(f"read repository {owner}/{repo}",
                          lambda: _repository_info(self._gh.get_repo(f"{owner}/{repo}")))

    def find_repository(self, owner: str, repo: str) -> RepositoryInfo | None:
        try:
            return self.repository(owner, repo)
        except GitHubNotFound:
            return None

    def create_fork(self, owner: str, repo: str) -> ForkInfo:
        """The user's fork of ``owner/repo``: an existing one is reused, else one is created.

        GitHub creates forks asynchronously: the answer (202) comes before the fork's git
        data is ready, so a push right after creation may need a (retried) second attempt.
        """
        upstream_full = f"{owner}/{repo}"

        def run() -> ForkInfo:
            login = self._gh.get_user().login
            upstream = self._gh.get_repo(upstream_full)
            existing = _existing_fork(self._gh, login, upstream)
            if existing is not None:
                return _fork_info(existing, upstream_full, created=False)
            fork = upstream.create_fork()
            # POST /forks answers with an existing fork too (GitHub's own idempotence).
            return _fork_info(fork, upstream_full, created=True)

        return self._call(f"fork {upstream_full}", run)

    def find_or_create_pull(
        self,
        owner: str,
        repo: str,
        *,
        head: str,
        base: str,
        title: str,
        body: str = "",
        draft: bool = False,
    ) -> PullRequestInfo:
        """An open pull request from ``head`` (``branch`` or ``fork-owner:branch``) into ``base``.

        Idempotent: an open pull request for the same head and base is returned
        (``created=False``) instead of a second one — also when another run created it
        between our look-up and our create (GitHub's 422 "already exists").
        """
        full = f"{owner}/{repo}"
        head_label = head if ":" in head else f"{owner}:{head}"

        def find() -> PullRequestInfo | None:
            pulls = self._gh.get_repo(full).get_pulls(state="open", head=head_label, base=base)
            for pull in pulls:
                return _pull_info(pull)
            return None

        found = self._call(f"list pull requests of {full}", find)
        if found is not None:
            return found

        def create() -> PullRequestInfo:
            pull = self._gh.get_repo(full).create_pull(base=base, head=head, title=title, body=body, draft=draft)
            return _pull_info(pull).model_copy(update={"created": True})

        try:
            return self._call(f"open a pull request on {full} from {head_label}", create)
        except GitHubValidationFailed as exc:
            if "already exists" not in exc.message.lower():
                raise
            again = self._call(f"list pull requests of {full}", find)
            if again is None:
                raise
            return again

    def pull_request(self, owner: str, repo: str, number: int) -> PullRequestInfo:
        return self._call(f"read pull request {owner}/{repo}#{number}",
                          lambda: _pull_info(self._gh.get_repo(f"{owner}/{repo}").get_pull(number)))

    def pull_state(self, owner: str, repo: str, number: int) -> PullState:
        return self.pull_request(owner, repo, number).state

    def list_pulls(
        self,
        owner: str,
        repo: str,
        *,
        state: Literal["open", "closed", "all"] = "open",
        head: str | None = None,
        base: str | None = None,
        limit: int = 100,
    ) -> list[PullRequestInfo]:
        full = f"{owner}/{repo}"

        def run() -> list[PullRequestInfo]:
            kwargs: dict[str, str] = {"state": state}
            if head is not None:
                kwargs["head"] = head if ":" in head else f"{owner}:{head}"
            if base is not None:
                kwargs["base"] = base
            out: list[PullRequestInfo] = []
            for pull in self._gh.get_repo(full).get_pulls(**kwargs):
                out.append(_pull_info(pull))
                if len(out) >= limit:
                    break
            return out

        return self._call(f"list pull requests of {full}", run)

    def merge_upstream(self, owner: str, repo: str, branch: str) -> MergeUpstreamResult:
        """Sync the fork ``owner/repo``'s ``branch`` with its upstream (``POST …/merge-upstream``).

        ``GITHUB_CONFLICT`` (409) when the branches cannot be merged without conflicts.
        """
        def run() -> MergeUpstreamResult:
            result = self._gh.get_repo(f"{owner}/{repo}").merge_upstream(branch)
            return MergeUpstreamResult(branch=branch, merge_type=result.merge_type, base_branch=result.base_branch,
                                       message=result.message)

        return self._call(f"merge upstream into {owner}/{repo}@{branch}", run)

    # --- the guarded call ----------------------------------------------------------------------

    def _call(self, action: str, run: Callable[[], T]) -> T:
        """Run one operation with the rate-limit policy, translating every failure."""
        retries = 0
        while True:
            self._wait_for_exhausted_quota(action)
            try:
                return run()
            except GithubException as exc:
                error = self._translate(exc, action)
                if (isinstance(error, GitHubRateLimited) and error.wait_seconds <= self._max_wait
                        and retries < self._max_retries):
                    retries += 1
                    log.warning("GitHub rate limit reached; waiting %.0f s to %s", error.wait_seconds, action)
                    self._sleep(error.wait_seconds)
                    continue
                raise error from exc
            except requests.exceptions.RequestException as exc:
                raise GitHubUnreachable(
                    self._redact(f"GitHub API at {self.api_url} unreachable while trying to {action}: {exc}"),
                    hint="Check the network and the `github.api_url` setting; the step is retried.",
                ) from exc

    def _wait_for_exhausted_quota(self, action: str) -> None:
        """Before a request: if the last response left no quota, wait for the reset or raise."""
        remaining, limit = self._gh.requester.rate_limiting
        if limit < 0 or remaining > 0:  # no rate-limit headers seen yet, or quota left
            return
        reset = self._gh.requester.rate_limiting_resettime
        wait = self._wait_until(reset)
        if wait <= 0:
            return
        if wait > self._max_wait:
            raise self._rate_limited(action, wait, reset)
        log.warning("GitHub rate limit exhausted; waiting %.0f s for the reset to %s", wait, action)
        self._sleep(wait)
        # The quota we knew of is spent; forget it so we do not wait twice for one reset.
        self._gh.requester.rate_limiting = (-1, -1)

    def _wait_until(self, reset_epoch: float) -> float:
        if reset_epoch <= 0:
            return 0.0
        # One second of margin: the reset is a whole second and clocks drift.
        return max(0.0, reset_epoch - self._clock() + 1.0)

    def _rate_limited(self, action: str, wait: float, reset_epoch: float | None) -> GitHubRateLimited:
        reset_at = datetime.fromtimestamp(reset_epoch, UTC) if reset_epoch else None
        when = f" (resets at {reset_at:%Y-%m-%d %H:%M:%S} UTC)" if reset_at else ""
        return GitHubRateLimited(
            f"GitHub API rate limit reached while trying to {action}; retry in {wait:.0f} s{when}",
            wait_seconds=wait, reset_at=reset_at,
            hint="The step is retried after the reset; a token with a higher limit avoids the wait.",
        )

    def _translate(self, exc: GithubException, action: str) -> GitHubError:
        status = exc.status
        data = exc.data if isinstance(exc.data, dict) else {}
        headers = {k.lower(): v for k, v in (exc.headers or {}).items()}
        gh_message = str(data.get("message") or exc.message or "").strip()
        said = f": {gh_message}" if gh_message else ""
        where = f"GitHub ({self.api_url}) refused to {action}"

        if status in (403, 429):
            wait = _rate_limit_wait(headers, self._clock)
            if wait is not None or isinstance(exc, github.RateLimitExceededException):
                reset = _float(headers.get("x-ratelimit-reset"))
                return self._rate_limited(action, wait if wait is not None else 60.0, reset)
        if status == 401:
            return GitHubAuthFailed(self._redact(f"{where}: the token was rejected (401){said}"),
                                    hint="The token is wrong, expired or revoked. " + TOKEN_HINT)
        if status == 403:
            return GitHubForbidden(
                self._redact(f"{where}: permission denied (403){said}"),
                hint="The token lacks the scope or access needed (classic tokens: `repo`; fine-grained: "
                     "contents and pull requests write).",
            )
        if status == 404:
            return GitHubNotFound(
                self._redact(f"{where}: not found (404){said}"),
                hint="Check the owner and repository name; private repositories look missing without access.",
            )
        if status == 409:
            return GitHubConflict(self._redact(f"{where}: conflict (409){said}"),
                                  hint="Merge the branches locally and push the result.")
        if status == 422:
            detail = _validation_details(data)
            return GitHubValidationFailed(self._redact(f"{where}: {gh_message or 'Validation Failed'}{detail}"),
                                          hint="GitHub rejected what was sent; the message says which field.",
                                          details={"errors": data.get("errors", [])})
        if status >= 500 or status < 0:
            return GitHubUnreachable(self._redact(f"{where}: server error ({status}){said}"),
                                     hint="GitHub is having trouble; the step is retried.")
        return GitHubError(self._redact(f"{where}: HTTP {status}{said}"),
                           hint="See the message; `--verbose` shows the full error.")

    def _redact(self, text: str) -> str:
        return redact(text, self._token)


def client_from_settings(settings: Settings, token: str | None, **overrides: Any) -> GitHubClient:
    """A client configured from the settings (API URL, timeout, rate-limit wait).

    The token is passed in (``agentforge.secrets.get_github_token(settings)``) so this
    adapter does not reach into the database.
    """
    options: dict[str, Any] = {
        "timeout": settings.github_timeout_seconds,
        "max_rate_limit_wait": settings.github_rate_limit_max_wait_seconds,
    }
    options.update(overrides)
    return GitHubClient(settings.github_api_url, token, **options)


_GITHUB_PATH = re.compile(r"^/?(?P<owner>[A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))/(?P<repo>[A-Za-z0-9._-]+?)(?:\.git)?/?$")
_SCP = re.compile(r"^(?:[A-Za-z0-9._-]+@)?(?P<host>[A-Za-z0-9.-]+):(?P<path>(?!//).+)$")


def web_host(api_url: str) -> str:
    """``api.github.com`` → ``github.com``; ``https://ghe.corp/api/v3`` → ``ghe.corp``."""
    host = (urlsplit(api_url).hostname or "").lower()
    return "github.com" if host == "api.github.com" else host


def parse_github_remote(url: str, *, api_url: str = "https://api.github.com") -> tuple[str, str] | None:
    """``(owner, repo)`` when ``url`` is a git remote on the GitHub served by ``api_url``, else None.

    Understands ``https://host/o/r(.git)``, ``ssh://git@host/o/r.git`` and ``git@host:o/r.git``;
    ``file://`` and other hosts give None (their write access comes from elsewhere).
    """
    host = web_host(api_url)
    parts = urlsplit(url)
    if parts.scheme in ("https", "http", "ssh", "git"):
        if (parts.hostname or "").lower() != host:
            return None
        path = parts.path
    else:
        scp = _SCP.match(url)
        if scp is None or scp.group("host").lower() != host:
            return None
        path = scp.group("path")
    match = _GITHUB_PATH.match(path)
    return (match.group("owner"), match.group("repo")) if match else None


# --- conversions (inside the guarded call, so lazy completion is covered too) --------------------


def _repository_info(repo: Any) -> RepositoryInfo:
    perms = repo.permissions
    permissions = {
        name: bool(getattr(perms, name, False) or False) for name in ("admin", "maintain", "push", "triage", "pull")
    } if perms is not None else {}
    parent = repo.parent if repo.fork else None
    return RepositoryInfo(
        owner=repo.owner.login, name=repo.name, full_name=repo.full_name, default_branch=repo.default_branch,
        clone_url=repo.clone_url, html_url=repo.html_url, private=bool(repo.private), fork=bool(repo.fork),
        parent_full_name=parent.full_name if parent is not None else None, permissions=permissions,
    )


def _existing_fork(gh: github.Github, login: str, upstream: Any) -> Any | None:
    """The user's repository that is a fork of ``upstream``: first by name, then among its forks."""
    try:
        candidate = gh.get_repo(f"{login}/{upstream.name}")
        if candidate.fork and candidate.parent is not None and candidate.parent.full_name == upstream.full_name:
            return candidate
    except GithubException as exc:
        if exc.status != 404:
            raise
    # Renamed forks (or name clashes, where GitHub called it ``name-1``): ask the upstream,
    # newest first and bounded — a popular upstream has more forks than are worth paging
    # through, and POST /forks returns an existing fork anyway (then reported as created).
    for seen, fork in enumerate(upstream.get_forks()):
        if fork.owner.login.lower() == login.lower():
            return fork
        if seen >= _FORK_SCAN_LIMIT:
            break
    return None


def _fork_info(fork: Any, upstream_full: str, *, created: bool) -> ForkInfo:
    return ForkInfo(owner=fork.owner.login, name=fork.name, full_name=fork.full_name, clone_url=fork.clone_url,
                    html_url=fork.html_url, default_branch=fork.default_branch, parent_full_name=upstream_full,
                    created=created)


def _pull_info(pull: Any) -> PullRequestInfo:
    state: PullState = "merged" if pull.merged else ("open" if pull.state == "open" else "closed")
    return PullRequestInfo(
        number=pull.number, url=pull.html_url, api_url=pull.url, state=state, title=pull.title,
        draft=bool(pull.draft), head_ref=pull.head.ref, head_label=pull.head.label, head_sha=pull.head.sha,
        base_ref=pull.base.ref,
    )


def _float(value: Any) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _rate_limit_wait(headers: dict[str, Any], clock: Callable[[], float]) -> float | None:
    """Seconds to wait when the headers say the request was refused for a rate limit, else None."""
    retry_after = _float(headers.get("retry-after"))
    if retry_after is not None:  # secondary rate limits
        return max(0.0, retry_after)
    if headers.get("x-ratelimit-remaining") == "0":
        reset = _float(headers.get("x-ratelimit-reset"))
        return 60.0 if reset is None else max(0.0, reset - clock() + 1.0)
    return None


def _validation_details(data: dict[str, Any]) -> str:
    parts: list[str] = []
    for err in data.get("errors") or []:
        if isinstance(err, dict):
            text = err.get("message") or " ".join(
                str(err[k]) for k in ("resource", "field", "code") if err.get(k)
            )
            if text:
                parts.append(str(text))
        elif isinstance(err, str):
            parts.append(err)
    return f" ({'; '.join(parts)})" if parts else ""
