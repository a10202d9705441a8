"""Repository references: validation and normalisation before git ever sees them.

A repository reference reaches ``git`` as a command-line argument, so anything that git could
read as an option (``-u…``), a remote helper (``ext::sh -c …``, ``fd::``) or a URL with embedded
credentials is refused here with :class:`~agentforge.errors.UrlError` (code ``URL_INVALID``).
What passes comes out in exactly one of three normalised forms, which is also what the
database CHECK constraint (:data:`DB_URL_CHECK_REGEX`) accepts:

* ``https://<host>/<owner>/<repo>`` (GitLab-style deeper group paths allowed; no ``.git``,
  no trailing slash; ``http://`` only when the caller allows insecure transports),
* ``git@<host>:<owner>/<repo>.git``,
* ``file:///<absolute path>`` (normalised, no ``..``; characters outside a small safe set, a
  space or a non-ASCII letter say, percent-encoded as in any ``file:`` URL, which git decodes:
  ``/srv/my repos/tools`` → ``file:///srv/my%20repos/tools``).

Host names are lower-cased; path case is kept as written (only GitHub is known to be
case-insensitive, and guessing would merge distinct repositories elsewhere).
"""

from __future__ import annotations

import posixpath
import re
from urllib.parse import quote, unquote, urlsplit

from agentforge.errors import UrlError, redact

__all__ = [
    "DB_URL_CHECK_REGEX",
    "default_repository_name",
    "github_owner_repo",
    "normalise_repository_url",
    "repository_key",
]

_FORMS_HINT = (
    "Use owner/repo or github.com/owner/repo (GitHub), https://host/owner/repo, "
    "git@host:owner/repo.git, or file:///absolute/path."
)

# One label of a host name; a host never starts (or ends) with '-'.
_LABEL = r"[a-z0-9]([a-z0-9-]*[a-z0-9])?"
_HOST = rf"{_LABEL}([.]{_LABEL})*"
# A path segment of a hosted repository: no '.', no '..', no leading '-', no '%' or other
# characters that servers decode. '.github' style names are allowed.
_SEGMENT = r"([A-Za-z0-9_][A-Za-z0-9_.-]*|[.][A-Za-z0-9_-][A-Za-z0-9_.-]*)"
# Local directories may hold a few more characters; any other one (a space, a non-ASCII letter,
# a quote) is percent-encoded, upper-case hex, as ``urllib.parse.quote`` writes it.
_FILE_SAFE = "_,+=@~-"
_FILE_FIRST = r"([A-Za-z0-9_,+=@~-]|%[0-9A-F]{2})"
_FILE_NEXT = r"([A-Za-z0-9_.,+=@~-]|%[0-9A-F]{2})"
_FILE_SEGMENT = rf"({_FILE_FIRST}{_FILE_NEXT}*|[.]{_FILE_FIRST}{_FILE_NEXT}*)"

#: POSIX-style regular expression (also valid for Python's ``re`` and PostgreSQL's ``~``) that
#: accepts exactly the normalised forms produced by :func:`normalise_repository_url`.
#: ``http://`` is included because ``allow_insecure=True`` produces it.
DB_URL_CHECK_REGEX = (
    rf"^(https?://{_HOST}(:[0-9]{{1,5}})?(/{_SEGMENT}){{2,}}"
    rf"|git@{_HOST}:{_SEGMENT}(/{_SEGMENT})+"
    rf"|file:///({_FILE_SEGMENT}(/{_FILE_SEGMENT})*)?)$"
)

_HOST_RE = re.compile(_HOST)
_SEGMENT_RE = re.compile(_SEGMENT)
_FILE_SEGMENT_RE = re.compile(_FILE_SEGMENT)
_HELPER_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*::")
_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_SCP_RE = re.compile(r"^git@([^:/]+):(.+)$")
_GITHUB_OWNER_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9-]{0,38})")
_NAME_INVALID_RE = re.compile(r"[^a-z0-9._-]+")


def _fail(raw: str, why: str, hint: str | None = _FORMS_HINT) -> UrlError:
    # Redacted: a rejected URL may be exactly the one carrying a token.
    shown = redact(raw if len(raw) <= 200 else raw[:200] + "…")
    return UrlError(f"repository URL {shown!r}: {why}", hint=hint)


def _check_characters(raw: str) -> None:
    if not raw:
        raise _fail(raw, "is empty")
    if "\x00" in raw:
        raise _fail(raw, "contains a NUL byte")
    # A local path may hold plain spaces (they are percent-encoded); nothing else may.
    local = raw.startswith("/") or raw.lower().startswith("file://")
    for char in raw:
        if (char.isspace() and not (local and char == " ")) or ord(char) < 0x20 or 0x7F <= ord(char) < 0xA0:
            raise _fail(raw, "contains whitespace or control characters")
    if raw.startswith("-"):
        raise _fail(raw, "starts with '-', which git would read as an option")
    if "\\" in raw:
        raise _fail(raw, "contains a backslash")
    if ("?" in raw or "#" in raw) and not raw.startswith("/"):  # in a plain path they are file name characters
        raise _fail(raw, "must not carry a query string or fragment")


def _hosted_path(raw: str, path: str) -> list[str]:
    """Split and check ``owner/repo[/...]``, stripping one ``.git`` and a trailing slash."""
    if path.endswith("/"):
        path = path[:-1]
    if path.endswith(".git"):
        path = path[: -len(".git")]
    segments = path.split("/")
    if len(segments) < 2:
        raise _fail(raw, "needs an owner and a repository name (owner/repo)")
    for segment in segments:
        if not segment:
            raise _fail(raw, "has an empty path segment")
        if not _SEGMENT_RE.fullmatch(segment):
            raise _fail(raw, f"path segment {segment!r} is not allowed")
    if segments[-1].endswith(".git"):
        raise _fail(raw, f"repository name {segments[-1]!r} ends in .git twice")
    return segments


def _check_host(raw: str, host: str) -> str:
    host = host.lower()
    if host.startswith("-"):
        raise _fail(raw, "host name starts with '-'")
    if not _HOST_RE.fullmatch(host):
        raise _fail(raw, f"host name {host!r} is not valid")
    return host


def _file_url(raw: str, path: str, *, encoded: bool) -> str:
    """``file://`` + the absolute ``path``, each segment percent-encoded beyond the safe set.
    ``encoded``: the path came from a ``file:`` URL, so its ``%XX`` escapes are decoded first
    (``/a b`` and ``file:///a%20b`` are one repository)."""
    if not path.startswith("/"):
        raise _fail(raw, "a local repository needs an absolute path (file:///abs/path)")
    segments = []
    for segment in path.split("/"):
        if encoded:
            try:
                segment = unquote(segment, errors="strict")
            except UnicodeDecodeError:
                raise _fail(raw, f"path segment {segment!r} is not valid percent-encoded UTF-8") from None
            if "/" in segment or any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\\\x00" for c in segment):
                raise _fail(raw, f"path segment {segment!r} encodes a slash, a backslash or a control character")
        if segment in ("", "."):
            continue
        if segment == "..":
            raise _fail(raw, "must not contain '..'")
        segments.append(quote(segment, safe=_FILE_SAFE))
    for segment in segments:
        if not _FILE_SEGMENT_RE.fullmatch(segment):
            raise _fail(raw, f"path segment {unquote(segment)!r} contains characters that are not allowed")
    return "file://" + posixpath.normpath("/" + "/".join(segments))


#: Longest normalised URL accepted: the width of the ``repositories.url`` column (a longer one
#: would only fail later, as an internal database error).
MAX_URL_LENGTH = 500


def normalise_repository_url(raw: str, *, allow_insecure: bool = False) -> str:
    """Validate a repository reference and return its one normalised form (see module doc)."""
    url = _normalise(raw, allow_insecure=allow_insecure)
    if len(url) > MAX_URL_LENGTH:
        raise _fail(raw, f"is longer than {MAX_URL_LENGTH} characters once normalised")
    return url


def _normalise(raw: str, *, allow_insecure: bool) -> str:
    if not isinstance(raw, str):
        raise UrlError(f"repository URL must be a string, got {type(raw).__name__}", hint=_FORMS_HINT)
    _check_characters(raw)
    if _HELPER_RE.match(raw):
        raise _fail(raw, "git remote helpers ('xxx::') are not allowed")

    if raw.startswith("/"):
        return _file_url(raw, raw, encoded=False)

    lowered = raw.lower()
    if lowered.startswith("file://"):
        rest = raw[len("file://") :]
        if not rest.startswith("/"):
            raise _fail(raw, "file URLs must have an empty host: file:///absolute/path")
        return _file_url(raw, rest, encoded=True)

    if lowered.startswith(("https://", "http://")):
        if lowered.startswith("http://") and not allow_insecure:
            raise _fail(
                raw,
                "plain http:// is insecure and not allowed",
                hint="Use https://, or pass --allow-insecure to `agentforge repo add` if you trust the network.",
            )
        try:
            parts = urlsplit(raw)
            port = parts.port
        except ValueError as exc:
            raise _fail(raw, f"cannot be parsed ({exc})") from None
        if "@" in parts.netloc:
            raise _fail(
                raw,
                "must not contain credentials (user info)",
                hint="Remove the user name/token from the URL and set GITHUB_TOKEN (or the "
                "configured credential) instead.",
            )
        host = _check_host(raw, parts.hostname or "")
        if not parts.path.startswith("/"):
            raise _fail(raw, "needs an owner and a repository name (owner/repo)")
        segments = _hosted_path(raw, parts.path[1:])
        netloc = host if port is None else f"{host}:{port}"
        return f"{parts.scheme.lower()}://{netloc}/" + "/".join(segments)

    scp = _SCP_RE.match(raw)
    if scp:
        host = _check_host(raw, scp.group(1))
        path = scp.group(2)
        if path.startswith(("/", "-", "~")):
            raise _fail(raw, "the path after ':' must be owner/repo")
        segments = _hosted_path(raw, path)
        return f"git@{host}:" + "/".join(segments) + ".git"

    if lowered.startswith("file:"):
        raise _fail(raw, "a file URL is written file:///absolute/path (three slashes), or give the plain "
                         "absolute path")
    scheme = _SCHEME_RE.match(raw)
    if scheme:
        raise _fail(raw, f"scheme {scheme.group(1)!r} is not supported")

    if "@" in raw:
        raise _fail(raw, "user names are only accepted in the git@host:owner/repo.git form")

    if lowered.startswith("github.com/"):
        segments = _hosted_path(raw, raw[len("github.com/") :])
        if len(segments) != 2:
            raise _fail(raw, "a GitHub repository is exactly owner/repo")
        return "https://github.com/" + "/".join(segments)

    parts_raw = raw[:-1].split("/") if raw.endswith("/") else raw.split("/")
    if len(parts_raw) == 2 and _GITHUB_OWNER_RE.fullmatch(parts_raw[0]):
        segments = _hosted_path(raw, raw)
        return "https://github.com/" + "/".join(segments)

    raise _fail(raw, "is not a recognised repository reference")


def _ensure_normalised(url: str) -> str:
    return normalise_repository_url(url, allow_insecure=True)


def repository_key(url: str) -> str:
    """The lock-file key prefix of a repository: host and path, no scheme (file URLs kept whole).

    ``https://github.com/o/r`` → ``github.com/o/r``; ``git@h:o/r.git`` → ``h/o/r``;
    ``file:///a/b`` → ``file:///a/b``. The same repository reached over https and ssh gets the
    same key, so switching transports does not reshuffle a lock file.
    """
    normalised = _ensure_normalised(url)
    if normalised.startswith("file://"):
        return normalised
    if normalised.startswith("git@"):
        host, _, path = normalised[len("git@") :].partition(":")
        return f"{host}/{path[: -len('.git')]}"
    return normalised.split("://", 1)[1]


def default_repository_name(url: str) -> str:
    """A short name for a repository: its last path segment, fitted to the component-name rule."""
    normalised = _ensure_normalised(url)
    parts = normalised.rstrip("/").rsplit("/", 2)
    # The git folder of a work tree (`/srv/work/tools/.git`) is named after the work tree, not "git".
    last = parts[-2] if parts[-1] == ".git" and normalised.startswith("file://") and len(parts) == 3 and parts[-2] \
        else parts[-1]
    if normalised.startswith("file://"):
        last = unquote(last)  # `my tools.git` → my-tools, not my-20tools
    if normalised.startswith("git@"):
        last = last[: -len(".git")]
    elif normalised.startswith("file://") and last.endswith(".git") and len(last) > len(".git"):
        last = last[: -len(".git")]  # bare repositories on disk are usually called name.git
    name = _NAME_INVALID_RE.sub("-", last.lower())
    name = name.lstrip("._-")[:100].rstrip("._-") or "repository"
    return name


def github_owner_repo(url: str) -> tuple[str, str] | None:
    """``(owner, repo)`` when the URL points at a repository on github.com, else ``None``."""
    normalised = _ensure_normalised(url)
    if normalised.startswith(("https://github.com/", "http://github.com/")):
        path = normalised.split("github.com/", 1)[1]
    elif normalised.startswith("git@github.com:"):
        path = normalised[len("git@github.com:") : -len(".git")]
    else:
        return None
    segments = path.split("/")
    if len(segments) != 2:
        return None
    return segments[0], segments[1]
