"""The git adapter against real repositories built by tests/gitfactory.py (file:// remotes)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentforge import gitops
from agentforge.errors import GitError, GitUnreachable
from agentforge.gitops import (
    REMOTE_HEAD_REF,
    GitCredentials,
    RemoteRefs,
    RepositoryMirror,
    _base_environment,
    _run,
    check_remote_url,
    create_repository_from_snapshots,
    ls_remote_many,
)
from tests.gitfactory import GitRepoFactory, RepoHandle, Symlink

COMPONENT = "apiVersion: forge.dev/v1\nkind: Tool\nmetadata: {{name: {name}, version: {version}}}\n"


@pytest.fixture
def factory(tmp_path: Path) -> GitRepoFactory:
    return GitRepoFactory(tmp_path / "git")


@pytest.fixture
def crm(factory: GitRepoFactory) -> RepoHandle:
    return factory.create(
        "crm-tools",
        files={
            "forge-manifest.yaml": "kind: ComponentRepository\n",
            "components/tools/lookup/component.yaml": COMPONENT.format(name="lookup", version="1.0.0"),
            "components/tools/lookup/run.sh": "#!/bin/sh\necho hi\n",
        },
        tag="v1.0.0",
    )


def mirror_of(tmp_path: Path, handle: RepoHandle, **kwargs: object) -> RepositoryMirror:
    mirror = RepositoryMirror(tmp_path / "mirrors" / handle.name, handle.url, **kwargs)  # type: ignore[arg-type]
    mirror.ensure()
    return mirror


def git_out(*args: str, cwd: Path) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout


# ---------------------------------------------------------------- ls-remote


def test_ls_remote_many_reports_each_remote_and_fails_only_the_missing_one(
    factory: GitRepoFactory, tmp_path: Path
) -> None:
    repos = [factory.create(f"r{i}", files={"a.txt": str(i)}, tag=f"v{i}.0.0") for i in range(3)]
    repos[1].tag("v9.0.0", annotated=True)
    missing = (tmp_path / "nope.git").as_uri()

    result = ls_remote_many([r.url for r in repos] + [missing], concurrency=4)

    for repo in repos:
        refs = result[repo.url]
        assert isinstance(refs, RemoteRefs)
        assert refs.head_symref == "refs/heads/main"
        assert refs.default_branch == "main"
        assert refs.refs["refs/heads/main"] == repo.commits[-1]
    ok = result[repos[1].url]
    assert isinstance(ok, RemoteRefs)
    # the annotated tag is peeled to its commit, and no "^{}" entries leak out
    assert ok.refs["refs/tags/v9.0.0"] == repos[1].commits[-1]
    assert not any(name.endswith("^{}") for name in ok.refs)
    error = result[missing]
    assert isinstance(error, GitError)
    assert error.code == "GIT_REPOSITORY_NOT_FOUND"
    assert error.retryable is False


def test_ls_remote_rejects_transport_helper_urls(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    url = f"ext::sh -c touch% {marker}"
    result = ls_remote_many([url, "git://example.invalid/x", "http://127.0.0.1:9/x"])
    assert all(isinstance(v, GitError) and v.code == "GIT_URL_REJECTED" for v in result.values())
    with pytest.raises(GitError) as info:
        RepositoryMirror(tmp_path / "m", url)
    assert info.value.code == "GIT_URL_REJECTED"
    assert not marker.exists()


def test_git_itself_refuses_ext_even_past_our_url_check(tmp_path: Path) -> None:
    """Defence in depth: GIT_ALLOW_PROTOCOL / protocol.ext.allow=never stop git itself."""
    marker = tmp_path / "pwned"
    env = _base_environment(allow_http=False, credentials=None)
    with pytest.raises(GitError) as info:
        _run(["ls-remote", "--", f"ext::sh -c touch% {marker}"], env=env, action="ls-remote", cwd=tmp_path)
    assert info.value.code == "GIT_URL_REJECTED"
    assert not marker.exists()


def test_check_remote_url() -> None:
    for good in ("https://github.com/o/r", "ssh://git@host/o/r.git", "git@github.com:o/r.git", "file:///srv/r.git"):
        assert check_remote_url(good) == good
    assert check_remote_url("http://127.0.0.1/r", allow_http=True)
    for bad in (
        "ext::sh -c id",
        "fd::17",
        "-uhttps://x",
        "http://h/r",
        "git://h/r",
        "https://ghp_abcdefghijklmnopqrstuvwxyz012345@github.com/o/r",
        "https://user:pw@host/r",
        "relative/path",
    ):
        with pytest.raises(GitError) as info:
            check_remote_url(bad)
        assert "ghp_abcdefghijklmnop" not in str(info.value)
        assert "pw@" not in str(info.value)


# ---------------------------------------------------------------- fetch


def test_fetch_reports_added_updated_deleted_and_forced(crm: RepoHandle, tmp_path: Path) -> None:
    mirror = mirror_of(tmp_path, crm)
    first = mirror.fetch()
    assert first.fetched
    assert set(first.added) == {"refs/heads/main", "refs/tags/v1.0.0"}
    assert first.default_branch == "main" and mirror.default_branch() == "main"
    assert mirror.local_refs() == {"refs/heads/main": crm.commits[0], "refs/tags/v1.0.0": crm.commits[0]}

    # Nothing moved: ls-remote says so and no fetch runs.
    again = mirror.fetch()
    assert not again.fetched and not again.changed

    c2 = crm.commit(files={"x.txt": "2"}, tags=["v1.1.0"])
    crm.create_branch("feature")
    crm.tag("v1.0.0", commit=c2, force=True)  # a moved release tag
    result = mirror.fetch()
    assert set(result.added) == {"refs/tags/v1.1.0", "refs/heads/feature"}
    assert result.updated["refs/heads/main"].forced is False  # fast-forward
    assert result.updated["refs/tags/v1.0.0"].forced is True
    assert result.forced == ["refs/tags/v1.0.0"]

    crm.force_push_branch(crm.commits[0])  # history rewrite
    crm.delete_tag("v1.1.0")
    crm.delete_branch("feature")
    result = mirror.fetch()
    assert result.updated["refs/heads/main"].forced is True
    assert result.updated["refs/heads/main"].new == crm.commits[0]
    assert set(result.deleted) == {"refs/tags/v1.1.0", "refs/heads/feature"}
    assert "refs/tags/v1.1.0" not in mirror.local_refs()
    mirror.close()


def test_default_branch_follows_remote_head(crm: RepoHandle, tmp_path: Path) -> None:
    crm.create_branch("develop")
    crm.set_default_branch("develop")
    mirror = mirror_of(tmp_path, crm)
    assert mirror.fetch().default_branch == "develop"
    assert mirror.default_branch() == "develop"


def test_pin_survives_tag_deletion_prune_and_remote_gc(crm: RepoHandle, tmp_path: Path) -> None:
    c2 = crm.commit(files={"x.txt": "2"}, tags=["v2.0.0"])
    mirror = mirror_of(tmp_path, crm)
    mirror.fetch()
    mirror.pin(c2)
    crm.delete_tag("v2.0.0")
    crm.force_push_branch(crm.commits[0])
    crm.gc_prune()  # the commit is gone from the remote altogether
    mirror.fetch()
    subprocess.run(["git", "gc", "-q", "--prune=now"], cwd=mirror.path, check=True)
    mirror.close()
    assert c2 not in mirror.local_refs().values()
    assert mirror.has_commit(c2)
    assert mirror.pins() == [c2]
    assert mirror.read_blob(c2, "x.txt") == b"2"


def test_fetch_commit_by_id_when_no_ref_reaches_it(crm: RepoHandle, tmp_path: Path) -> None:
    c2 = crm.commit(files={"x.txt": "2"}, tags=["v2.0.0"])
    crm.delete_tag("v2.0.0")
    crm.force_push_branch(crm.commits[0])  # c2 now unreachable on the remote, but still stored
    mirror = mirror_of(tmp_path, crm)
    mirror.fetch()
    assert not mirror.has_commit(c2)
    mirror.fetch_commit(c2)
    assert mirror.has_commit(c2) and c2 in mirror.pins()
    assert mirror.read_blob(c2, "x.txt") == b"2"

    gone = "0" * 40
    with pytest.raises(GitError) as info:
        mirror.fetch_commit(gone)
    assert not isinstance(info.value, GitUnreachable)
    with pytest.raises(GitError):
        mirror.fetch_commit("not-a-sha")


def test_unreachable_remote_is_retryable_and_token_is_redacted(tmp_path: Path) -> None:
    token = "ghp_" + "A" * 36
    mirror = RepositoryMirror(
        tmp_path / "m", "http://127.0.0.1:9/o/r.git", credentials=GitCredentials(token), allow_http=True, timeout=20
    )
    mirror.ensure()
    with pytest.raises(GitUnreachable) as info:
        mirror.fetch()
    assert info.value.retryable
    assert token not in str(info.value) and token not in repr(info.value.details)
    assert token not in repr(GitCredentials(token))


def test_a_remote_that_never_answers_times_out_once_not_retryable(tmp_path: Path) -> None:
    """A server that accepts the connection and says nothing: git is killed at the timeout, and
    the error is GIT_TIMEOUT, not retryable (the sync's retries made one such remote hold a sync
    for nine minutes: four attempts of git_timeout_seconds each)."""
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        port = listener.getsockname()[1]
        mirror = RepositoryMirror(tmp_path / "m", f"https://127.0.0.1:{port}/o/r.git", timeout=2)
        started = time.monotonic()
        with pytest.raises(GitError) as info:
            mirror.fetch()
        assert time.monotonic() - started < 60
        assert info.value.code == "GIT_TIMEOUT" and not info.value.retryable, info.value
        assert "git_timeout_seconds" in (info.value.hint or "")
    finally:
        listener.close()


def test_credentials_never_reach_the_mirror_config(crm: RepoHandle, tmp_path: Path) -> None:
    token = "ghp_" + "B" * 36
    mirror = mirror_of(tmp_path, crm, credentials=GitCredentials(token))
    mirror.fetch()
    config = git_out("config", "--list", "--local", cwd=mirror.path)
    assert token not in config
    assert f"remote.origin.url={crm.url}" in config
    for path in mirror.path.rglob("*"):
        if path.is_file() and path.stat().st_size < 1_000_000:
            assert token.encode() not in path.read_bytes(), path


def test_askpass_delivers_the_token_through_the_environment(tmp_path: Path) -> None:
    env = GitCredentials("s3cret", username="bot").environment()

    def run(prompt: str) -> str:
        return subprocess.run(
            [env["GIT_ASKPASS"], prompt], env={**os.environ, **env}, capture_output=True, text=True, check=True
        ).stdout

    assert run("Username for 'https://h': ") == "bot\n"
    assert run("Password for 'https://bot@h': ") == "s3cret\n"
    assert "s3cret" not in Path(env["GIT_ASKPASS"]).read_text()


# ---------------------------------------------------------------- reading


@pytest.fixture
def layout(factory: GitRepoFactory) -> RepoHandle:
    return factory.create(
        "layout",
        files={
            "a/component.yaml": "a",
            "a/b/component.yaml": "ab",
            "a/b/c/d/e/f/g/component.yaml": "deep",  # 7 folders deep
            "comp/component.yaml": "real",
            "comp/bin/run": "#!/bin/sh\n",
            "comp/docs/readme.md": "docs",
            "comp/link-in": Symlink("docs/readme.md"),
            "comp/dir-link": Symlink("docs"),
            "shared/common.yaml": "shared",
            "viasym": Symlink("comp"),
            "outside": Symlink("../../etc"),
            "abs": Symlink("/etc/passwd"),
        },
        tag="v1",
    )


@pytest.mark.parametrize("one_process", [True, False], ids=["batch-command", "batch-and-batch-check"])
def test_read_blobs_tree_id_and_listing(layout: RepoHandle, tmp_path: Path, one_process: bool,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Every read answers the same whether one `cat-file --batch-command` process serves them
    (git ≥ 2.36) or a `--batch` and a `--batch-check` one (older gits)."""
    from agentforge import gitops

    if one_process and gitops._git_version() < (2, 36):
        pytest.skip("git older than 2.36 has no cat-file --batch-command")
    monkeypatch.setattr(gitops, "_git_version", lambda: (2, 36) if one_process else (2, 35))
    mirror = mirror_of(tmp_path, layout)
    mirror.fetch()
    c = layout.commits[0]
    blobs = mirror.read_blobs([(c, "a/component.yaml"), (c, "a/b/component.yaml"), (c, "missing.yaml")])
    assert blobs == {(c, "a/component.yaml"): b"a", (c, "a/b/component.yaml"): b"ab", (c, "missing.yaml"): None}
    assert mirror.read_blob(c, "comp/link-in") == b"docs"  # followed inside the tree
    assert mirror.read_blob(c, "comp/link-in", follow_symlinks=False) == b"docs/readme.md"
    with pytest.raises(GitError) as info:
        mirror.read_blob(c, "comp/component.yaml", max_size=2)
    assert info.value.code == "GIT_FILE_TOO_LARGE"
    with pytest.raises(GitError):
        mirror.read_blob(c, "comp")  # a folder

    expected_tree = git_out("rev-parse", f"{c}:comp", cwd=layout.path).strip()
    assert mirror.tree_id(c, "comp") == expected_tree
    assert (
        mirror.tree_id(c, "")
        == mirror.tree_id(c, ".")
        == git_out("rev-parse", f"{c}^{{tree}}", cwd=layout.path).strip()
    )
    assert mirror.tree_id(c, "nope") is None
    assert mirror.tree_id(c, "a/component.yaml") is None

    entries = {e.path: e for e in mirror.list_files(c, "comp")}
    assert list(entries) == sorted(entries)
    assert entries["bin/run"].mode == "100644" and entries["component.yaml"].size == 4
    assert entries["link-in"].is_symlink and entries["dir-link"].is_symlink
    files = {p: (data, mode) for p, data, mode in mirror.iter_files(c, "comp")}
    assert files["docs/readme.md"] == (b"docs", "100644")
    assert files["link-in"] == (b"docs/readme.md", "120000")

    assert mirror.commit_time(c) == datetime.fromtimestamp(
        int(git_out("log", "-1", "--format=%ct", c, cwd=layout.path)), UTC
    )
    assert mirror._cat is not None
    assert sorted(mirror._cat._procs) == (["--batch-command"] if one_process else ["--batch", "--batch-check"])
    mirror.close()


def test_path_resolutions_are_remembered_for_commit_ids_only(crm: RepoHandle, tmp_path: Path) -> None:
    mirror = mirror_of(tmp_path, crm)
    mirror.fetch()
    first = crm.commits[0]
    found = mirror.resolve_path(first, "components/tools/lookup")
    assert found.kind == "tree" and mirror.resolve_path(first, "components/tools/lookup") is found
    assert mirror.resolve_path(first, "x.txt").kind == "missing"
    assert mirror.resolve_path("refs/heads/main", "x.txt").kind == "missing"
    crm.commit(files={"x.txt": "now here"})
    mirror.fetch()
    # A branch name moves: asked again, it answers for the new tip; the old commit's answer stands.
    assert mirror.resolve_path("refs/heads/main", "x.txt").kind == "blob"
    assert mirror.resolve_path(first, "x.txt").kind == "missing"
    assert mirror.read_blob("refs/heads/main", "x.txt") == b"now here"
    mirror.close()


def test_find_files_depth(layout: RepoHandle, tmp_path: Path) -> None:
    mirror = mirror_of(tmp_path, layout)
    mirror.fetch()
    c = layout.commits[0]
    assert mirror.find_files(c, "component.yaml") == ["a/b/component.yaml", "a/component.yaml", "comp/component.yaml"]
    assert mirror.find_files(c, "component.yaml", max_depth=7)[-1] == "comp/component.yaml"
    assert "a/b/c/d/e/f/g/component.yaml" in mirror.find_files(c, "component.yaml", max_depth=7)
    assert mirror.find_files(c, "component.yaml", max_depth=0) == []


def test_symlink_safety_helpers(layout: RepoHandle, tmp_path: Path) -> None:
    mirror = mirror_of(tmp_path, layout)
    mirror.fetch()
    c = layout.commits[0]
    plain = mirror.resolve_path(c, "comp/component.yaml")
    assert plain.kind == "blob" and not plain.through_symlink
    via = mirror.resolve_path(c, "viasym/component.yaml")
    assert via.kind == "blob" and via.symlinks == ("viasym",) and via.resolved == "comp/component.yaml"
    assert mirror.read_blob(c, "viasym/component.yaml") == b"real"
    for escaping in ("outside", "outside/passwd", "abs"):
        res = mirror.resolve_path(c, escaping)
        assert res.escapes and not mirror.path_is_safe(c, escaping)
        with pytest.raises(GitError) as info:
            mirror.read_blob(c, escaping)
        assert info.value.code == "GIT_SYMLINK_ESCAPES"
    assert mirror.resolve_path(c, "missing/x").kind == "missing"
    with pytest.raises(GitError):
        mirror.resolve_path(c, "../x")


def test_is_ancestor(crm: RepoHandle, tmp_path: Path) -> None:
    c2 = crm.commit(files={"x": "1"})
    mirror = mirror_of(tmp_path, crm)
    mirror.fetch()
    assert mirror.is_ancestor(crm.commits[0], c2)
    assert mirror.is_ancestor(c2, c2)
    assert not mirror.is_ancestor(c2, crm.commits[0])


# ---------------------------------------------------------------- export


def test_export_keeps_modes_and_inside_symlinks(factory: GitRepoFactory, tmp_path: Path) -> None:
    repo = factory.create(
        "exp",
        files={
            "comp/docs/readme.md": "docs",
            "comp/link": Symlink("docs/readme.md"),
            "comp/dl": Symlink("docs"),
            "other.txt": "o",
        },
    )
    repo.commit(files={"comp/bin/run": "#!/bin/sh\n"}, executable=["comp/bin/run"])
    mirror = mirror_of(tmp_path, repo)
    mirror.fetch()
    dest = tmp_path / "out"
    mirror.export(repo.commits[-1], "comp", dest)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "bin",
        "bin/run",
        "dl",
        "docs",
        "docs/readme.md",
        "link",
    ]
    assert os.access(dest / "bin/run", os.X_OK)
    assert not os.access(dest / "docs/readme.md", os.X_OK)
    assert os.readlink(dest / "link") == "docs/readme.md" and (dest / "link").read_text() == "docs"
    assert (dest / "dl").is_symlink()
    with pytest.raises(GitError):
        mirror.export(repo.commits[-1], "comp", dest)  # not empty any more


@pytest.mark.parametrize(
    "target", ["../other.txt", "/etc/passwd", "sub/../../other.txt", "loop/../../other.txt", "nothing-here"]
)
def test_export_refuses_symlinks_leaving_the_folder(factory: GitRepoFactory, tmp_path: Path, target: str) -> None:
    repo = factory.create(
        "bad",
        files={
            "other.txt": "o",
            "comp/a.txt": "a",
            "comp/sub/x": "x",
            "comp/loop": Symlink("."),
            "comp/evil": Symlink(target),
        },
    )
    mirror = mirror_of(tmp_path, repo)
    mirror.fetch()
    dest = tmp_path / "out"
    with pytest.raises(GitError) as info:
        mirror.export(repo.commits[0], "comp", dest)
    assert info.value.code in {"GIT_SYMLINK_ESCAPES", "GIT_SYMLINK_DANGLING"}
    assert not dest.exists()  # nothing written


# ---------------------------------------------------------------- example repositories


def test_create_repository_from_snapshots_is_deterministic_and_idempotent(tmp_path: Path) -> None:
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    (s1 / "tools/t").mkdir(parents=True)
    (s1 / "tools/t/component.yaml").write_text(COMPONENT.format(name="t", version="1.0.0"))
    (s2 / "tools/t").mkdir(parents=True)
    (s2 / "tools/t/component.yaml").write_text(COMPONENT.format(name="t", version="1.1.0"))
    (s2 / "tools/t/run.sh").write_text("#!/bin/sh\n")
    (s2 / "tools/t/run.sh").chmod(0o755)
    (s2 / "tools/t/alias.sh").symlink_to("run.sh")
    snapshots = [(s1, ["v1.0.0"]), (s2, ["v1.1.0", "t@1.1.0"])]

    first = create_repository_from_snapshots(tmp_path / "a.git", snapshots)
    second = create_repository_from_snapshots(tmp_path / "b.git", snapshots)
    assert first == second and len(first) == 2
    head_before = (
        (tmp_path / "a.git/packed-refs").stat().st_mtime_ns if (tmp_path / "a.git/packed-refs").exists() else None
    )
    objects_before = sorted(p.name for p in (tmp_path / "a.git/objects").rglob("*"))
    assert create_repository_from_snapshots(tmp_path / "a.git", snapshots) == first
    assert sorted(p.name for p in (tmp_path / "a.git/objects").rglob("*")) == objects_before
    if head_before is not None:
        assert (tmp_path / "a.git/packed-refs").stat().st_mtime_ns == head_before

    mirror = RepositoryMirror(tmp_path / "m", (tmp_path / "a.git").as_uri())
    mirror.fetch()
    assert mirror.local_refs() == {
        "refs/heads/main": first[1],
        "refs/tags/v1.0.0": first[0],
        "refs/tags/v1.1.0": first[1],
        "refs/tags/t@1.1.0": first[1],
    }
    assert mirror.default_branch() == "main"
    modes = {e.path: e.mode for e in mirror.list_files(first[1], "tools/t")}
    assert modes == {"alias.sh": "120000", "component.yaml": "100644", "run.sh": "100755"}
    assert mirror.read_blob(first[0], "tools/t/run.sh") is None

    # different input replaces the repository
    changed = create_repository_from_snapshots(tmp_path / "a.git", snapshots[:1])
    assert changed == first[:1]
    mirror.close()


def test_token_reaches_an_http_remote_only_as_basic_auth(tmp_path: Path) -> None:
    """A 127.0.0.1 server that demands auth: git must answer through GIT_ASKPASS."""
    import base64
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            auth = self.headers.get("Authorization")
            seen.append(f"{self.path} {auth}")
            self.send_response(401 if auth is None else 404)
            if auth is None:
                self.send_header("WWW-Authenticate", 'Basic realm="forge"')
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        token = "ghp_" + "D" * 36
        url = f"http://127.0.0.1:{server.server_address[1]}/o/r.git"
        mirror = RepositoryMirror(tmp_path / "m", url, credentials=GitCredentials(token), allow_http=True)
        mirror.ensure()
        with pytest.raises(GitError) as info:
            mirror.fetch()
        assert not info.value.retryable  # a 404 after auth: the repository is not there
        assert token not in str(info.value)
    finally:
        server.shutdown()
        server.server_close()
    expected = "Basic " + base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert any(line.endswith(expected) for line in seen), seen
    assert all(token not in line.split(" ")[0] for line in seen)  # never in the request path
    assert token not in git_out("config", "--list", "--local", cwd=mirror.path)


# ---------------------------------------------------------------- fast paths used by sync


def test_a_new_mirror_is_cloned_with_every_tag_and_the_remote_head(crm: RepoHandle, tmp_path: Path) -> None:
    """fetch() on a missing mirror runs one ``git clone --bare``: heads, every tag (annotated, and
    one on a commit no branch reaches), the remote's HEAD, no fetch refspec of git's own (so a
    later ``--prune`` fetch keeps our pins), and a leftover non-mirror folder is replaced."""
    crm.create_branch("develop")
    crm.set_default_branch("develop")
    c2 = crm.commit(files={"x.txt": "2"}, tags=["v1.1.0"], annotated=True)
    crm.git("checkout", "-q", "--detach")
    loose = crm.commit(files={"x.txt": "off-branch"}, push=False)
    crm.tag("v9.0.0-rc.1", loose)
    crm.git("checkout", "-q", crm.branch)
    path = tmp_path / "m.git"
    (path / "junk").mkdir(parents=True)  # a clone killed before it wrote HEAD leaves such a folder
    mirror = RepositoryMirror(path, crm.url)
    got = mirror.fetch()
    assert got.fetched and got.default_branch == "develop" and mirror.default_branch() == "develop"
    assert got.refs["refs/tags/v1.1.0"] == c2 and got.refs["refs/tags/v9.0.0-rc.1"] == loose
    assert set(got.refs) == {"refs/heads/main", "refs/heads/develop", "refs/tags/v1.0.0", "refs/tags/v1.1.0",
                             "refs/tags/v9.0.0-rc.1"}
    assert set(got.added) == set(got.refs) and not (path / "junk").exists()
    assert git_out("symbolic-ref", "HEAD", cwd=path).strip() == "refs/heads/develop"
    config = git_out("config", "--list", "--local", cwd=path)
    assert f"remote.origin.url={crm.url}" in config and "core.logallrefupdates=false" in config
    assert "remote.origin.fetch" not in config and not (path / "hooks").exists()
    mirror.pin(c2)
    crm.delete_tag("v1.1.0")
    crm.set_default_branch("main")
    crm.delete_branch("develop")
    again = mirror.fetch()
    assert "refs/tags/v1.1.0" in again.deleted and "refs/heads/develop" in again.deleted
    assert again.default_branch == "main" and mirror.pins() == [c2] and mirror.has_commit(c2)
    mirror.close()


def test_a_new_clone_reads_its_refs_and_writes_its_own_without_git_processes_yet_as_git_would(
        crm: RepoHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After ``_clone`` the refs come from ``packed-refs`` (no ``for-each-ref``), and origin/HEAD and
    the pins are written as ref files (no ``symbolic-ref``, no ``update-ref``); git reads back the
    same refs as from a mirror where git did all three. Tags of a tag, of a tree and of a blob are
    the cases where packed-refs alone would mislead."""
    c2 = crm.commit(files={"x.txt": "2"}, tags=["v1.1.0"], annotated=True)
    crm.git("tag", "-a", "-m", "tag of a tag", "v1.1.1", "v1.1.0")
    crm.git("tag", "tree-tag", "HEAD^{tree}")
    blob = crm.git("rev-parse", "HEAD:x.txt")
    crm.git("tag", "blob-tag", blob)
    crm.git("tag", "-a", "-m", "annotated tree", "tree-annotated", "HEAD^{tree}")
    crm.create_branch("develop", crm.commits[0])
    crm.push()
    spawned: list[str] = []
    real_run = gitops._run

    def counting_run(args: Sequence[str], **kwargs: Any) -> bytes:
        spawned.append(args[0])
        return real_run(args, **kwargs)

    monkeypatch.setattr(gitops, "_run", counting_run)
    fast = RepositoryMirror(tmp_path / "fast.git", crm.url)
    got = fast.fetch()
    fast.pin_many([c2, crm.commits[0]])
    assert spawned == ["clone"]  # cat-file, which the read needs anyway, answers the rest
    monkeypatch.setattr(gitops, "_run", real_run)
    assert got.refs == {"refs/heads/main": c2, "refs/heads/develop": crm.commits[0], "refs/tags/v1.0.0":
                        crm.commits[0], "refs/tags/v1.1.0": c2, "refs/tags/v1.1.1": c2}
    # A mirror where git itself listed and wrote the refs: the same answers.
    slow = mirror_of(tmp_path, crm)
    expected = slow.fetch()
    slow.pin_many([c2, crm.commits[0]])
    assert fast._ref_state() == slow._ref_state()
    assert got.refs == expected.refs and got.default_branch == expected.default_branch == "main"
    assert fast.default_branch() == "main" and fast.pins() == slow.pins() == sorted([c2, crm.commits[0]])
    assert git_out("symbolic-ref", REMOTE_HEAD_REF, cwd=fast.path).strip() == "refs/heads/main"
    assert git_out("for-each-ref", cwd=fast.path) == git_out("for-each-ref", cwd=slow.path)
    assert not list(fast.path.rglob("*.lock"))
    # Later syncs go through git as before: the written refs are ordinary refs to it.
    crm.delete_tag("v1.1.0")
    again = fast.fetch()
    assert "refs/tags/v1.1.0" in again.deleted and again.pins == tuple(sorted([c2, crm.commits[0]]))
    fast.close()
    slow.close()


def test_refs_of_a_clone_fall_back_to_git_when_the_mirror_is_not_what_a_clone_leaves(
        crm: RepoHandle, tmp_path: Path) -> None:
    mirror = RepositoryMirror(tmp_path / "m.git", crm.url)
    mirror.fetch()
    # origin/HEAD is now a loose ref: packed-refs alone no longer tells every ref.
    assert mirror._packed_refs_of_clone() is None
    assert mirror._ref_state_of_clone() == mirror._ref_state()
    (mirror.path / REMOTE_HEAD_REF).unlink()
    assert mirror._packed_refs_of_clone() == [("refs/heads/main", crm.commits[0], None),
                                              ("refs/tags/v1.0.0", crm.commits[0], None)]
    packed = mirror.path / "packed-refs"
    packed.write_text(packed.read_text().replace("fully-peeled ", ""))  # not known to list every peel
    assert mirror._packed_refs_of_clone() is None
    packed.unlink()
    assert mirror._packed_refs_of_clone() is None and mirror._ref_state_of_clone() == ({}, [], None)
    # A held lock: the file write declines (and git, run instead, reports the lock).
    (mirror.path / "refs" / "forge").mkdir(exist_ok=True)
    (mirror.path / "refs" / "forge" / "x.lock").write_text("")
    assert not mirror._write_loose_ref("refs/forge/x", crm.commits[0])
    assert mirror._write_loose_ref("refs/forge/y", crm.commits[0])
    assert (mirror.path / "refs" / "forge" / "y").read_text() == crm.commits[0] + "\n"
    mirror.close()


def test_cloning_an_empty_remote_gives_an_empty_mirror(factory: GitRepoFactory, tmp_path: Path) -> None:
    empty = factory.create("nothing", empty=True)
    mirror = RepositoryMirror(tmp_path / "e.git", empty.url)
    got = mirror.fetch()
    assert got.refs == {} and got.default_branch is None and mirror.default_branch() is None
    first = empty.commit(files={"a.txt": "1"}, tags=["v0.1.0"])
    later = mirror.fetch()
    assert later.fetched and later.refs == {"refs/heads/main": first, "refs/tags/v0.1.0": first}
    assert later.default_branch == "main"
    mirror.close()


def test_fetch_with_a_listing_creates_the_mirror_like_a_plain_fetch(crm: RepoHandle, tmp_path: Path) -> None:
    """A new mirror is cloned (the listing is not needed); an ensured, empty one is fetched into:
    the same refs, HEAD and config either way, and later fetches with a listing work as before."""
    crm.create_branch("develop")
    crm.set_default_branch("develop")
    c2 = crm.commit(files={"x.txt": "2"}, tags=["v1.1.0"])
    listing = ls_remote_many([crm.url])[crm.url]
    assert isinstance(listing, RemoteRefs) and listing.raw is not None
    with_listing = RepositoryMirror(tmp_path / "a.git", crm.url)  # no ensure(): fetch creates it
    plain = mirror_of(tmp_path, crm)
    got, expected = with_listing.fetch(listing), plain.fetch()
    assert got.fetched and got.added == expected.added and got.default_branch == expected.default_branch == "develop"
    assert got.refs == plain.local_refs() == with_listing.local_refs()
    assert with_listing.default_branch() == "develop"
    assert git_out("symbolic-ref", "HEAD", cwd=with_listing.path).strip() == "refs/heads/develop"
    config = git_out("config", "--list", "--local", cwd=with_listing.path)
    assert f"remote.origin.url={crm.url}" in config and "core.logallrefupdates=false" in config
    # A second fetch with the same (now current) listing runs no git fetch and writes nothing.
    again = with_listing.fetch(listing)
    assert not again.fetched and not again.changed and again.refs == got.refs
    # A stale listing that differs from the mirror still fetches what the remote holds now.
    c3 = crm.commit(files={"x.txt": "3"}, tags=["v1.2.0"])
    stale = RemoteRefs(head_symref=listing.head_symref, refs={}, raw={})
    moved = with_listing.fetch(stale)
    assert moved.fetched and moved.refs["refs/tags/v1.2.0"] == c3 and c2 in moved.refs.values()
    with_listing.close()
    plain.close()


def test_fetch_reports_pins_and_pin_many_is_one_transaction(crm: RepoHandle, tmp_path: Path) -> None:
    c2 = crm.commit(files={"x.txt": "2"}, tags=["v2.0.0"])
    mirror = mirror_of(tmp_path, crm)
    assert mirror.fetch().pins == ()
    mirror.pin_many([c2, crm.commits[0], c2])
    assert mirror.pins() == sorted([c2, crm.commits[0]])
    with pytest.raises(GitError) as info:
        mirror.pin_many(["f" * 40, c2])
    assert info.value.code == "GIT_COMMIT_NOT_FOUND"
    assert mirror.pins() == sorted([c2, crm.commits[0]])  # nothing half-written
    crm.commit(files={"x.txt": "3"})
    assert mirror.fetch().pins == tuple(sorted([c2, crm.commits[0]]))
    mirror.pin_many([])
    mirror.close()


def test_ensure_quotes_the_url_in_the_config_file(factory: GitRepoFactory, tmp_path: Path) -> None:
    odd = factory.create('we"ird;#name', files={"a.txt": "1"})
    mirror = RepositoryMirror(tmp_path / "m.git", odd.url)
    mirror.ensure()
    got = git_out("config", "--get", "remote.origin.url", cwd=mirror.path).strip()
    assert got == odd.url
    mirror.fetch()
    assert mirror.local_refs()["refs/heads/main"] == odd.commits[0]


def test_a_depth_limited_walk_that_reached_everything_serves_the_listing_and_one_that_did_not_does_not(
        factory: GitRepoFactory, tmp_path: Path) -> None:
    """find_files (depth 6) then list_tree on the same commit walk its tree once when no folder
    is deeper; a deeper folder makes list_tree walk again, and it lists the deep files."""
    deep = "a/b/c/d/e/f/g/h/deep.txt"
    shallow = factory.create("shallow", files={"x/component.yaml": "kind: Tool\n", "y/z.md": "# z\n"})
    tall = factory.create("tall", files={"x/component.yaml": "kind: Tool\n", deep: "deep\n"})
    for handle, expect_deep in ((shallow, False), (tall, True)):
        mirror = RepositoryMirror(tmp_path / f"{handle.name}.git", handle.url)
        mirror.fetch()
        commit = handle.commits[-1]
        fresh = RepositoryMirror(mirror.path, handle.url)
        expected = fresh.list_tree(commit)
        assert mirror.find_files(commit, "component.yaml") == ["x/component.yaml"]
        loads: list[int] = []

        def counted(ids: object, real: object = mirror._load_trees, loads: list[int] = loads) -> None:
            loads.append(1)
            real(ids)  # type: ignore[operator]

        mirror._load_trees = counted  # type: ignore[method-assign]
        assert mirror.list_tree(commit) == expected
        assert (deep in {e.path for e in expected[1]}) is expect_deep
        assert bool(loads) is expect_deep  # walked again only when the limited walk stopped short
        mirror.close()
        fresh.close()


def test_the_object_reader_is_out_of_the_terminals_reach(tmp_path: Path) -> None:
    """The persistent cat-file process runs in a process group of its own: a terminal's Ctrl-C
    (SIGINT to the command's group) used to kill it mid-answer and fail that repository's sync."""
    subprocess.run(["git", "init", "-q", "--bare", str(tmp_path / "r.git")], check=True)
    reader = gitops._CatFile(tmp_path / "r.git", {})
    proc = reader._proc("--batch")
    try:
        assert os.getpgid(proc.pid) == proc.pid != os.getpgid(0)
    finally:
        reader.close()
