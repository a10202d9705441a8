"""The error hierarchy every layer raises, drawn in one place (httpx style).

A user-caused error is an :class:`AgentForgeError` with a stable ``code`` (shown as
``agentforge: CODE``), a message naming the file, field or component at fault, an optional
``hint`` and a ``retryable`` flag that Prefect retry conditions read. The CLI maps
``exit_code`` 2 for user errors and 1 for internal ones.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"(gh[pousr]_[A-Za-z0-9]{16,})"), "***"),
    (re.compile(r"(github_pat_[A-Za-z0-9_]{20,})"), "***"),
    # user:password@ inside URLs (the user name alone is not secret, and hints show examples).
    (re.compile(r"(?<=://)([^/@\s:]+):([^/@\s]+)@"), r"\1:***@"),
    # A lone user info in an http(s) URL is how tokens are passed (https://TOKEN@host/…); an
    # ssh user name (ssh://git@host, git@host:o/r) is not a secret and stays.
    (re.compile(r"(?i)(?:(?<=https://)|(?<=http://))[^/@\s:*]+@"), "***@"),
    # Secrets in a query string (?token=…, &access_token=…, ?private_token=…, ?password=…).
    (re.compile(r"(?i)([?&](?:access_token|private_token|token|password|passwd|secret|key|sig))=[^&\s#'\"]+"),
     r"\1=***"),
]
# What every pattern above needs to match somewhere (one C-speed scan instead of five
# substitutions: a sync redacts every problem it records, thousands on a large catalog).
_MAY_HOLD_TOKEN = re.compile(r"gh[pousr]_|github_pat_|://|[?&]")


def redact(text: str, *secrets: str | None) -> str:
    """Remove tokens (explicit ones and anything shaped like a GitHub token or URL user info)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    if not _MAY_HOLD_TOKEN.search(text):
        return text
    for pattern, replacement in _TOKEN_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class AgentForgeError(Exception):
    """Base of every error a user can cause or act on."""

    code: str = "AGENTFORGE_ERROR"
    exit_code: int = 2
    retryable: bool = False

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        hint: str | None = None,
        retryable: bool | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.hint = hint
        if retryable is not None:
            self.retryable = retryable
        self.details = details or {}

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.hint:
            out["hint"] = self.hint
        if self.details:
            out["details"] = self.details
        return out


class ConfigError(AgentForgeError):
    code = "CONFIG_INVALID"


class DatabaseError(AgentForgeError):
    code = "DATABASE_ERROR"


class DatabaseUnreachable(DatabaseError):
    code = "DATABASE_UNREACHABLE"
    retryable = True


class SchemaMismatch(DatabaseError):
    code = "SCHEMA_MISMATCH"


class DocumentError(AgentForgeError):
    """A manifest, component, composition or lock file that cannot be read."""

    code = "DOCUMENT_INVALID"


class ConstraintError(AgentForgeError):
    code = "CONSTRAINT_INVALID"


class UrlError(AgentForgeError):
    code = "URL_INVALID"


class NotFound(AgentForgeError):
    code = "NOT_FOUND"


class AlreadyExists(AgentForgeError):
    code = "ALREADY_EXISTS"


class Conflict(AgentForgeError):
    code = "CONFLICT"


class ResolutionError(AgentForgeError):
    code = "RESOLUTION_FAILED"


class LockError(AgentForgeError):
    code = "LOCK_INVALID"


class GitError(AgentForgeError):
    code = "GIT_ERROR"


class GitUnreachable(GitError):
    code = "GIT_UNREACHABLE"
    retryable = True


class GitHubError(AgentForgeError):
    code = "GITHUB_ERROR"


class DeployError(AgentForgeError):
    code = "DEPLOY_FAILED"


class InternalError(AgentForgeError):
    code = "INTERNAL_ERROR"
    exit_code = 1


def is_retryable(exc: BaseException) -> bool:
    """Retry condition shared by tasks: only errors marked retryable, or unknown I/O errors."""
    if isinstance(exc, AgentForgeError):
        return exc.retryable
    return isinstance(exc, (OSError, TimeoutError, ConnectionError))
