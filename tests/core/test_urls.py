"""Repository reference normalisation: every accepted form, every refusal, and the DB regex."""

from __future__ import annotations

import re

import pytest

from agentforge.core.urls import (
    DB_URL_CHECK_REGEX,
    default_repository_name,
    github_owner_repo,
    normalise_repository_url,
    repository_key,
)
from agentforge.errors import UrlError

ACCEPTED = [
    ("o/r", "https://github.com/o/r"),
    ("octo-org/my.repo", "https://github.com/octo-org/my.repo"),
    ("github.com/o/r", "https://github.com/o/r"),
    ("github.com/o/r.git", "https://github.com/o/r"),
    ("https://github.com/o/r", "https://github.com/o/r"),
    ("https://GitHub.com/o/r.git/", "https://github.com/o/r"),
    ("https://gitlab.example.com/group/sub/r.git", "https://gitlab.example.com/group/sub/r"),
    ("https://h.example:8443/o/.github", "https://h.example:8443/o/.github"),
    ("git@github.com:o/r", "git@github.com:o/r.git"),
    ("git@git.example.com:group/sub/r.git", "git@git.example.com:group/sub/r.git"),
    ("file:///srv/git/repo.git", "file:///srv/git/repo.git"),
    ("file:///srv//git/./repo/", "file:///srv/git/repo"),
    ("/srv/git/repo", "file:///srv/git/repo"),
    ("/tmp/pytest-of-root/pytest-0/test_x0/remote.git", "file:///tmp/pytest-of-root/pytest-0/test_x0/remote.git"),
    # Local paths with other characters are percent-encoded (git decodes file: URLs); a file: URL's
    # own escapes are decoded first, so both spellings are one repository.
    ("/srv/my repos/tools", "file:///srv/my%20repos/tools"),
    ("file:///srv/my repos/tools", "file:///srv/my%20repos/tools"),
    ("file:///srv/my%20repos/tools", "file:///srv/my%20repos/tools"),
    ("file:///srv/my%2drepos", "file:///srv/my-repos"),
    ("/srv/été/it's (1)", "file:///srv/%C3%A9t%C3%A9/it%27s%20%281%29"),
    ("/srv/100%/x", "file:///srv/100%25/x"),
    ("/srv/issue#3?/x", "file:///srv/issue%233%3F/x"),
    ("file:///srv/issue%233%3F/x", "file:///srv/issue%233%3F/x"),
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_accepted_forms(raw: str, expected: str) -> None:
    normalised = normalise_repository_url(raw)
    assert normalised == expected
    assert normalise_repository_url(normalised) == normalised  # idempotent
    assert re.fullmatch(DB_URL_CHECK_REGEX, normalised)


REJECTED = [
    ("-uhttps://x/o/r", "starts with '-'"),
    ("--upload-pack=touch /tmp/x", "whitespace"),
    ("--upload-pack=evil", "starts with '-'"),
    ("ext::sh", "remote helpers"),
    ("fd::17", "remote helpers"),
    ("transport+x::whatever", "remote helpers"),
    ("ssh://git@h/o/r.git", "scheme 'ssh'"),
    ("ftp://h/o/r", "scheme 'ftp'"),
    ("http://h/o/r", "insecure"),
    ("https://user:secret@github.com/o/r", "credentials"),
    ("https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/o/r", "credentials"),
    ("https://h/o/r?ref=x", "query"),
    ("https://h/o/r#frag", "fragment"),
    ("https://-evil.com/o/r", "starts with '-'"),
    ("git@-oProxyCommand=x:o/r", "starts with '-'"),
    ("https://h/o", "owner and a repository"),
    ("https://h/o/../r", "'..'"),
    ("https://h/o/r%2F..", "not allowed"),
    ("https://h/o//r", "empty path segment"),
    ("file:///a/../etc", "'..'"),
    ("file:///a/%2e%2e/etc", "'..'"),
    ("file:///a/b%2Fc", "encodes a slash"),
    ("file:///a/b%5Cc", "encodes a slash, a backslash"),
    ("file:///a/b%0Ac", "control character"),
    ("file:///a/%ff", "not valid percent-encoded UTF-8"),
    ("file:///a/b#c", "fragment"),
    ("/srv/a\tb", "whitespace"),
    ("file://host/a/b", "empty host"),
    ("file:relative/x", "file:///absolute/path (three slashes)"),
    ("file:/srv/git/repo", "file:///absolute/path (three slashes)"),
    ("FILE:/srv/git/repo", "three slashes"),
    ("relative/dir/x", "not a recognised"),
    ("o/r\x00", "NUL"),
    ("o/ r", "whitespace"),
    ("o/r\n", "whitespace"),
    ("o/r\x1b", "control"),
    ("C:\\repos\\x", "backslash"),
    ("", "empty"),
    ("just-a-name", "not a recognised"),
    ("a/b/c", "not a recognised"),
    ("user@h:o/r", "user names"),
    ("github.com/o/r/extra", "exactly owner/repo"),
    ("https://h/o/r.git.git", ".git twice"),
]


@pytest.mark.parametrize(("raw", "needle"), REJECTED)
def test_rejected_before_git_sees_them(raw: str, needle: str) -> None:
    with pytest.raises(UrlError) as info:
        normalise_repository_url(raw)
    assert info.value.code == "URL_INVALID"
    assert needle in info.value.message
    assert info.value.message.startswith("repository URL")


def test_credentials_are_redacted_and_hint_names_the_token_variable() -> None:
    with pytest.raises(UrlError) as info:
        normalise_repository_url("https://ghp_abcdefghijklmnopqrstuvwxyz@github.com/o/r")
    assert "ghp_" not in info.value.message
    assert info.value.hint and "GITHUB_TOKEN" in info.value.hint


@pytest.mark.parametrize("url", ["https://s3cr3tTok3n@127.0.0.1/o/r", "HTTP://s3cr3tTok3n@h/o/r",
                                 "https://me:s3cr3tTok3n@h/o/r"])
def test_a_token_as_url_user_info_is_never_echoed(url: str) -> None:
    """`https://TOKEN@host/…` is how tokens ride in URLs: refused, and the message masks it."""
    from agentforge.errors import redact

    with pytest.raises(UrlError) as info:
        normalise_repository_url(url)
    assert "s3cr3tTok3n" not in info.value.message + (info.value.hint or "")
    assert "s3cr3tTok3n" not in redact(f"git fetch failed ({url})")
    assert redact("ssh://git@h/o/r and git@h:o/r") == "ssh://git@h/o/r and git@h:o/r"  # ssh user names stay


@pytest.mark.parametrize("url", ["https://127.0.0.1/o/r?token=s3cr3tTok3n", "https://h/o/r?a=1&access_token=s3cr3tTok3n",
                                 "https://h/o/r?private_token=s3cr3tTok3n#x"])
def test_a_token_in_a_query_string_is_never_echoed(url: str) -> None:
    from agentforge.errors import redact

    with pytest.raises(UrlError) as info:
        normalise_repository_url(url)
    assert "s3cr3tTok3n" not in info.value.message and "s3cr3tTok3n" not in redact(url)


def test_http_only_when_insecure_is_allowed() -> None:
    assert normalise_repository_url("http://LOCALHOST:8080/o/r.git", allow_insecure=True) == "http://localhost:8080/o/r"
    with pytest.raises(UrlError):
        normalise_repository_url("http://localhost:8080/o/r")


@pytest.mark.parametrize(
    ("url", "key", "name", "owner_repo"),
    [
        ("https://github.com/o/Repo", "github.com/o/Repo", "repo", ("o", "Repo")),
        ("git@github.com:o/r.git", "github.com/o/r", "r", ("o", "r")),
        ("git@h.example:o/r.git", "h.example/o/r", "r", None),
        ("https://gitlab.com/g/sub/My_Repo", "gitlab.com/g/sub/My_Repo", "my_repo", None),
        ("file:///a/b", "file:///a/b", "b", None),
        ("file:///srv/crm-tools.git", "file:///srv/crm-tools.git", "crm-tools", None),
        ("/srv/My Tools.git", "file:///srv/My%20Tools.git", "my-tools", None),
        ("/srv/work/crm-tools/.git", "file:///srv/work/crm-tools/.git", "crm-tools", None),
        ("/.git", "file:///.git", "git", None),
        ("o/r", "github.com/o/r", "r", ("o", "r")),
    ],
)
def test_key_name_and_github(url: str, key: str, name: str, owner_repo: tuple[str, str] | None) -> None:
    assert repository_key(url) == key
    assert default_repository_name(url) == name
    assert github_owner_repo(url) == owner_repo


def test_same_repository_over_https_and_ssh_has_one_key() -> None:
    assert repository_key("https://github.com/o/r") == repository_key("git@github.com:o/r.git")


@pytest.mark.parametrize(
    "text",
    [
        "https://github.com/o/r.git/extra?x",
        "ssh://git@h/o/r",
        "git@h:o/r.git extra",
        "file:///a/../b",
        "file:///a b",
        "file:///a/%2",
        "file:///a/%2f",
        "https://h/o",
        "ext::sh -c id",
        "-u",
        "git@h:/abs",
        "http://h/o/r/",
    ],
)
def test_db_regex_refuses_non_normalised_forms(text: str) -> None:
    assert not re.fullmatch(DB_URL_CHECK_REGEX, text)


def test_db_regex_uses_only_portable_syntax() -> None:
    # PostgreSQL's ~ and Python's re must read it the same: no \d, \w, lookarounds or lazies.
    for construct in ("\\d", "\\w", "\\s", "(?", "*?", "+?"):
        assert construct not in DB_URL_CHECK_REGEX


@pytest.mark.parametrize("text", [
    "push refused for ghp_abcdefghijklmnopqrstuvwxyz0123",
    "token gho_ABCDEFGHIJKLMNOPQRSTUVWX in a message",
    "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz in a message",
    "fetch https://s3cr3tTok3n@h/o/r failed",
    "fetch https://me:s3cr3tTok3n@h/o/r failed",
    "fetch https://h/o/r?token=s3cr3tTok3n failed",
    "fetch https://h/o/r?x=1&password=s3cr3tTok3n failed",
])
def test_redact_masks_every_token_shape_inside_longer_text(text: str) -> None:
    """redact's quick pre-check (a text that cannot hold a token is returned as it is) must let
    every shape the patterns mask through to them."""
    from agentforge.errors import redact

    out = redact(text)
    assert out != text and "***" in out
    for secret in ("s3cr3tTok3n", "ghp_abc", "gho_ABC", "github_pat_11"):
        assert secret not in out
    plain = "plugins/plugin-000/agents/a.md@v1.0.0: warning: frontmatter is not valid YAML: read line by line"
    assert redact(plain) is plain
