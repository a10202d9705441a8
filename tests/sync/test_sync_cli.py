"""The real flow and the real CLI: Prefect runs for real (one API server per test session)."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from tests.cli.helpers import AGENTFORGE, cli
from tests.sync.conftest import component_yaml, one, q, run_sync, tools_files


@pytest.fixture(scope="module")
def prefect_env(prefect_api: None) -> Iterator[dict[str, str]]:
    """Subprocesses use the session's running Prefect API instead of starting their own."""
    from prefect.settings import PREFECT_API_URL

    yield {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


def test_flow_noop_runs_no_repository_task(env, factory, register, prefect_api: None) -> None:
    from agentforge.core.events import subscribe
    from flows.sync import sync_repositories

    for i in range(3):
        register(factory.create(f"r{i}", files=tools_files([f"c{i}"])))
    events: list[tuple[str, dict[str, Any]]] = []
    unsubscribe = subscribe(lambda e, d: events.append((e, d)))
    try:
        cold = sync_repositories()
        assert [r.status for r in cold] == ["synced"] * 3
        assert sum(e == "sync.repo.started" for e, _ in events) == 3
        events.clear()
        noop = sync_repositories()
    finally:
        unsubscribe()
    assert [r.status for r in noop] == ["unchanged"] * 3
    assert [e for e, _ in events] == ["sync.planned"]  # the batched check only, no sync-repository task
    assert one(env, "SELECT count(*) FROM sync_operations WHERE message = 'up to date'")[0] == 3


def test_the_parse_worker_is_up_before_the_flow_starts_and_serves_it(env, factory, register, prefect_api: None,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """``agentforge sync`` starts the worker once the plan says enough repositories need work, so its
    start-up overlaps Prefect's; the flow's own offload block reuses that one worker."""
    from agentforge import parsepool
    from agentforge.cli import repo_cmds

    for i in range(parsepool.MIN_REPOSITORIES):
        register(factory.create(f"w{i}", files=tools_files([f"c{j}" for j in range(parsepool.MIN_BATCH)])))
    monkeypatch.delenv("AGENTFORGE_PARSE_IN_PROCESS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    seen: list[object] = []
    started: list[object] = []
    real_worker, real_run_flow = parsepool._Worker, repo_cmds.run_flow

    def worker(*args: Any, **kwargs: Any) -> object:
        started.append(real_worker(*args, **kwargs))
        return started[-1]

    def run_flow(fn: Any, /, **kwargs: Any) -> Any:
        seen.append(parsepool._worker)
        return real_run_flow(fn, **kwargs)

    monkeypatch.setattr(parsepool, "_Worker", worker)
    monkeypatch.setattr(repo_cmds, "run_flow", run_flow)
    results = repo_cmds.run_sync(None)
    assert [r.status for r in results] == ["synced"] * parsepool.MIN_REPOSITORIES
    assert len(started) == 1 and seen == started  # up before the flow; the only worker of the sync
    assert parsepool._worker is None and started[0].proc.poll() is not None  # and stopped after it


def test_cli_sync_summary_and_exit_code(env, factory, register, prefect_env) -> None:
    register(factory.create("good", files=tools_files(["a"]), tag="v1.0.0"))
    register(factory.create("bad", files={"forge-manifest.yaml": "kind: [\n"}))
    res = cli("sync", env=prefect_env)
    assert res.code == 1, res.out + res.err
    assert "Traceback" not in res.err + res.out
    lines = {line.split("│")[1].strip(): line for line in res.out.splitlines() if line.count("│") > 3}
    assert "synced" in lines["good"] and "failed" in lines["bad"] and "forge-manifest.yaml" in lines["bad"]
    listed = cli("--json", "ls", env=prefect_env)
    assert listed.code == 0 and [(c["name"], c["latest"]) for c in listed.json()] == [("a", "1.0.0")]
    shown = cli("show", "a@1.0.0", env=prefect_env)
    assert shown.code == 0 and "v1.0.0" in shown.out
    # An unknown repository or an empty version is an error, not an empty answer or the newest.
    nope = cli("--json", "ls", "--repo", "nope", env=prefect_env)
    assert nope.code == 2 and nope.json()["error"]["code"] == "NOT_FOUND" and "nope" in nope.json()["error"]["message"]
    empty = cli("show", "a@", env=prefect_env)
    assert empty.code == 2 and "VERSION_INVALID" in empty.err
    assert cli("--json", "ls", "--repo", "good", env=prefect_env).json()[0]["name"] == "a"


def test_accept_tag_cli(env, factory, register, prefect_env) -> None:
    repo = factory.create("demo", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    assert cli("sync", env=prefect_env).code == 0
    moved_to = repo.commit(files={"tools/a/component.yaml": component_yaml("a", "1.0.0") + "# v2\n"})
    repo.tag("v1.0.0", moved_to, force=True)
    res = cli("sync", env=prefect_env)
    assert res.code == 0 and "moved from" in res.out
    assert "MOVED" in cli("repo", "show", "demo").out
    accepted = cli("repo", "accept-tag", "demo", "v1.0.0")
    assert accepted.code == 0, accepted.err
    assert cli("repo", "accept-tag", "demo", "v1.0.0").code == 2  # nothing left to accept
    # Until the next sync: the rejected commit's row is no release, and show says what to run.
    pending = cli("--json", "show", "a@1.0.0").json()
    assert pending["commit"] == repo.commits[0] and pending["release"] is False
    assert moved_to[:12] in pending["pending_reason"] and "agentforge sync demo" in pending["pending_reason"]
    shown = cli("show", "a@1.0.0")
    assert shown.code == 0 and "is no release: tag v1.0.0 was accepted at" in shown.out
    assert cli("sync", env=prefect_env).code == 0
    assert one(env, "SELECT commit_hash FROM components WHERE 'v1.0.0' = ANY(release_tags)")[0] == moved_to
    after = cli("--json", "show", "a@1.0.0").json()
    assert after["commit"] == moved_to and after["release"] is True and after["pending_reason"] is None


def test_accept_tag_waits_for_a_running_sync_of_the_repository(env, factory, register, prefect_env) -> None:
    """accept-tag rewrites rows and the tag ledger that a running sync of the same repository read
    when it began: it takes the repository's sync lock, so it runs after that sync, not during it."""
    import time

    from agentforge.db import get_engine
    from models import repositories as repos_q

    repo = factory.create("busy", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    assert cli("sync", env=prefect_env).code == 0
    repo.tag("v1.0.0", repo.commit(files={"tools/a/component.yaml": component_yaml("a", "1.0.0") + "# v2\n"}),
             force=True)
    assert "moved from" in cli("sync", env=prefect_env).out
    [(repo_id,)] = q(env, "SELECT id FROM repositories WHERE name = 'busy'")
    with repos_q.repository_sync_lock(get_engine(), repo_id):  # as a sync of it holds it
        proc = subprocess.Popen([*AGENTFORGE, "repo", "accept-tag", "busy", "v1.0.0"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        time.sleep(3)
        assert proc.poll() is None, proc.communicate()
        assert one(env, "SELECT state FROM repository_tags WHERE tag = 'v1.0.0'")[0] == "MOVED"
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert one(env, "SELECT state FROM repository_tags WHERE tag = 'v1.0.0'")[0] == "OK"


def test_two_concurrent_sync_processes(env, factory, register, prefect_env) -> None:
    names = []
    for i in range(6):
        handle = factory.create(f"c{i}", files=tools_files([f"t{i}", f"u{i}"]), tag="v1.0.0")
        handle.commit(files=tools_files([f"t{i}", f"u{i}"], "1.1.0"), tags=["v1.1.0"])
        names.append(register(handle))
    import os

    full_env = {**os.environ, **prefect_env}
    procs = [subprocess.Popen([*AGENTFORGE, "sync", *args], env=full_env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
             for args in (names[:4], names[2:])]  # overlapping: c2, c3 in both
    outs = [p.communicate(timeout=240) for p in procs]
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, out + err
        assert "Traceback" not in out + err and "UniqueViolation" not in out + err and "deadlock" not in err
    assert one(env, "SELECT count(*) FROM components")[0] == 6 * 2 * 2
    assert q(env, "SELECT repository_url, path, commit_hash FROM components "
                  "GROUP BY 1, 2, 3 HAVING count(*) > 1") == []
    assert q(env, "SELECT repository_id, tag FROM repository_tags GROUP BY 1, 2 HAVING count(*) > 1") == []
    assert {r[0] for r in q(env, "SELECT sync_status FROM repositories")} == {"SYNCED"}
    assert one(env, "SELECT count(*) FROM sync_operations WHERE status <> 'COMPLETED'")[0] == 0


@pytest.mark.parametrize("url", ["-oProxyCommand=x", "ext::sh -c x", "http://example.com/o/r",
                                 "https://user:tok@example.com/o/r"])
def test_repo_add_rejects_dangerous_urls(env, url: str) -> None:
    for args in (("--no-check", url), ("--no-check", "--", url)):
        res = cli("repo", "add", *args)
        assert res.code == 2, (res.out, res.err)
        assert "agentforge: URL_INVALID" in res.err + res.out
        assert "Traceback" not in res.err + res.out and "Hint: " in res.err
    assert one(env, "SELECT count(*) FROM repositories")[0] == 0


def test_repo_add_bad_options_say_what_to_do(env, tmp_path) -> None:
    res = cli("repo", "add", "--no-check", str(tmp_path), "--name", "BAD NAME")
    assert res.code == 2 and "NAME_INVALID" in res.err and "--name bad-name" in res.err
    # The hint's name is itself valid, whatever was passed.
    for bad in ("../evil", "___", "a" * 101, "-x-"):
        res = cli("--json", "repo", "add", "--no-check", str(tmp_path), "--name", bad)
        assert res.code == 2 and res.json()["error"]["code"] == "NAME_INVALID", res.out
        hinted = res.json()["error"]["hint"].rsplit("--name ", 1)[1].split("`")[0]
        assert re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,99}", hinted), (bad, hinted)
    res = cli("--json", "repo", "add", "--no-check", str(tmp_path), "--format", "xml")
    assert res.code == 2 and res.json()["error"]["code"] == "FORMAT_UNKNOWN" and "mcp-server" in res.json()["error"]["hint"]
    res = cli("repo", "add", "--no-check", str(tmp_path), "--type", "bogus")
    assert res.code == 2 and "TYPE_INVALID" in res.err and "Hint: " in res.err
    assert one(env, "SELECT count(*) FROM repositories")[0] == 0


def test_repo_add_allows_http_only_when_asked(env) -> None:
    res = cli("repo", "add", "--no-check", "--allow-insecure", "http://example.com/o/r")
    assert res.code == 0, res.err
    assert one(env, "SELECT url FROM repositories")[0].startswith("http://example.com/o/r")


def test_ls_and_show_never_import_prefect(env) -> None:
    code = ("import sys; sys.argv = ['agentforge', '--json', 'ls'];\n"
            "try:\n    from agentforge.cli.main import run; run()  # run, not entry: entry ends the process\n"
            "except SystemExit: pass\n"
            "print('PREFECT' if any(m == 'prefect' or m.startswith('prefect.') for m in sys.modules) else 'CLEAN',"
            " file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "CLEAN", done.stderr
    code_show = code.replace("'--json', 'ls'", "'show', 'nothing'")
    done = subprocess.run([sys.executable, "-c", code_show], capture_output=True, text=True, timeout=120)
    assert done.stderr.strip().splitlines()[-1] == "CLEAN", done.stderr


def test_repo_rm_of_a_synced_repository(env, factory, register, prefect_env) -> None:
    """`repo rm` drops the repository with its component rows and mirror (the database cascades);
    installed components make it refuse (exit 2, nothing removed) unless --force."""
    from agentforge.config import get_settings

    register(factory.create("gone", files=tools_files(["a", "b"]), tag="v1.0.0"))
    register(factory.create("kept", files=tools_files(["c"]), tag="v1.0.0"))
    assert cli("sync", env=prefect_env).code == 0
    [(gone_id,)] = q(env, "SELECT id FROM repositories WHERE name = 'gone'")
    mirror = get_settings().mirrors_dir / f"{gone_id}.git"
    assert mirror.is_dir() and one(env, "SELECT count(*) FROM components")[0] == 3
    import sqlalchemy as sa

    with env.begin() as conn:
        conn.execute(sa.text("UPDATE components SET is_installed = true WHERE name = 'a'"))
    refused = cli("repo", "rm", "gone", env=prefect_env)
    assert refused.code == 2 and "installed components: a" in refused.err + refused.out
    assert "Traceback" not in refused.err + refused.out
    assert one(env, "SELECT count(*) FROM components")[0] == 3 and mirror.is_dir()
    removed = cli("repo", "rm", "gone", "--force", env=prefect_env)
    assert removed.code == 0, removed.out + removed.err
    assert q(env, "SELECT name FROM repositories") == [("kept",)]
    assert q(env, "SELECT name FROM components") == [("c",)]
    assert not mirror.exists() and not mirror.with_name(f"{mirror.name}.forge-lock").exists()
    again = cli("repo", "rm", "gone", env=prefect_env)
    assert again.code == 2 and "gone" in again.err + again.out


def test_ls_says_when_filters_match_nothing(env, factory, register) -> None:
    assert "No components yet" in cli("ls").out
    register(factory.create("only-tools", files=tools_files(["a"]), tag="v1.0.0"))
    from tests.sync.conftest import run_sync

    run_sync()
    res = cli("ls", "--type", "agent", "--repo", "only-tools")
    assert res.code == 0 and "No components match --type agent and --repo only-tools" in res.out, res.out
    assert "repo add" not in res.out


def test_show_takes_a_constraint_or_a_commit_prefix(env, factory, register) -> None:
    """`show NAME@^1` shows the newest release the constraint allows, as `lock` would pick among
    what is synced; `@commit:` takes a 7+ digit prefix; a branch is refused with a pointer to lock."""
    from tests.sync.conftest import run_sync

    handle = factory.create("vers", files=tools_files(["a"], "1.0.0"), tag="v1.0.0")
    first = handle.commits[-1]
    handle.commit(tools_files(["a"], "1.1.0"), tags=["v1.1.0"])
    handle.commit(tools_files(["a"], "2.0.0"), tags=["v2.0.0"])
    register(handle)
    run_sync()
    for ref, expected in (("a@^1", "1.1.0"), ("a@>=2", "2.0.0"), ("a@~1.0", "1.0.0"), ("a@latest", "2.0.0"),
                          ("a@tag:v1.1.0", "1.1.0"), (f"a@commit:{first[:8]}", "1.0.0"),
                          (f"a@commit:{first}", "1.0.0"), (f"a@{first}", "1.0.0"), ("a@1.1.0", "1.1.0")):
        res = cli("--json", "show", ref)
        assert res.code == 0 and res.json()["version"] == expected, (ref, res.out, res.err)
    res = cli("show", "a@^3")
    assert res.code == 2 and "has no version '^3'" in res.err and "2.0.0, 1.1.0, 1.0.0" in res.err
    res = cli("show", "a@branch:main")
    assert res.code == 2 and "VERSION_INVALID" in res.err and "agentforge lock" in res.err
    res = cli("show", f"a@commit:{first[:6]}")
    assert res.code == 2 and "VERSION_INVALID" in res.err and "at least 7 hex digits" in res.err, res.err


def test_a_local_path_with_a_space_is_registered_synced_locked_and_installed(env, factory, prefect_env,
                                                                            tmp_path) -> None:
    """`repo add /path with a space`: stored percent-encoded (as a file: URL; git decodes it), the
    same repository whichever spelling is used, and sync, lock and install work from it."""
    repo = factory.create("my tools", files=tools_files(["spaced"]), tag="v1.0.0")
    assert " " in str(repo.path)
    added = cli("--json", "repo", "add", str(repo.path))
    assert added.code == 0, added.out + added.err
    assert added.json()["name"] == "my-tools"
    encoded = "file://" + str(repo.path).replace(" ", "%20")
    assert q(env, "SELECT url FROM repositories") == [(encoded,)]
    again = cli("repo", "add", encoded.replace("%20", " "), "--name", "other")
    assert again.code == 2 and "ALREADY_EXISTS" in again.err, again.out + again.err  # one repository
    assert cli("sync", env=prefect_env).code == 0
    listed = cli("--json", "ls", env=prefect_env)
    assert [(c["name"], c["latest"]) for c in listed.json()] == [("spaced", "1.0.0")]
    work = tmp_path / "work dir"
    work.mkdir()
    locked = cli("lock", "spaced", cwd=work, env=prefect_env)
    assert locked.code == 0, locked.out + locked.err
    assert encoded in (work / "forge-lock.yaml").read_text()
    installed = cli("install", "spaced", "--frozen", "--target", str(work / "t"), cwd=work, env=prefect_env)
    assert installed.code == 0, installed.out + installed.err
    assert (work / "t" / "spaced" / "component.yaml").is_file()


@pytest.mark.parametrize(("args", "code"), [(("show", "@1.0.0"), "COMPONENT_INVALID"),
                                            (("show", "tools/"), "COMPONENT_INVALID"),
                                            (("lock", "@^1"), "ROOT_INVALID"),
                                            (("deps", "tree", "repo/@1"), "ROOT_INVALID")])
def test_a_reference_without_a_name_says_so(env, args: tuple[str, ...], code: str) -> None:
    res = cli("--json", *args)
    assert res.code == 2 and res.json()["error"]["code"] == code, res.out + res.err
    assert "no component" in res.json()["error"]["message"] and "Traceback" not in res.err


@pytest.mark.parametrize(("args", "code", "says"), [
    (("show", "/a"), "COMPONENT_INVALID", "no repository name before '/'"),
    (("lock", "/a"), "ROOT_INVALID", "no repository name before '/'"),
    (("lock", "a@"), "ROOT_INVALID", "no version or constraint after '@'"),
    (("deps", "tree", "a@"), "ROOT_INVALID", "no version or constraint after '@'"),
    (("show", "a@"), "VERSION_INVALID", "no version after '@'"),
])
def test_an_empty_repository_or_version_is_refused_alike_by_show_and_lock(env, factory, register, args, code,
                                                                          says) -> None:
    """`show /a` used to show a, and `lock a@` to lock the newest a, while `show repo/` and `show a@`
    were refused: the same reference is judged the same way by every command."""
    register(factory.create("one", files=tools_files(["a"]), tag="v1.0.0"))
    register(factory.create("two", files=tools_files(["a"]), tag="v1.0.0"))
    run_sync()
    res = cli("--json", *args)
    assert res.code == 2 and res.json()["error"]["code"] == code, res.out + res.err
    assert says in res.json()["error"]["message"] and "Traceback" not in res.err


def test_repo_show_keeps_the_problems_of_the_last_read_after_no_op_syncs(env, factory, register) -> None:
    """A no-op sync reads nothing, so it must not hide what the last real read found: `repo show`
    printed only the latest operation's problems, and after a no-op sync there were none."""
    files = {**tools_files(["a"]), "tools/b/component.yaml": component_yaml("b", "not-a-version")}
    register(factory.create("demo", files=files, tag="v1.0.0"))
    first = run_sync()
    assert first.results["demo"].status == "synced" and any("tools/b" in p for p in first.results["demo"].problems)
    for _ in range(2):
        again = run_sync()
        assert again.results == {} and len(again.plan.unchanged) == 1  # no-op: no repository work
    shown = cli("--json", "repo", "show", "demo")
    assert shown.code == 0, shown.err
    data = shown.json()
    assert data["operations"][0]["message"] == "up to date"
    assert any("tools/b/component.yaml" in p for p in data["problems"]), data["problems"]
    assert data["problems_from"]["target_commit"] == data["operations"][2]["target_commit"] is not None
    text = cli("repo", "show", "demo").out
    assert "Problems in the last sync that read it" in text and "found nothing new upstream" in text
    assert "tools/b/component.yaml" in text


def test_a_repository_added_with_allow_insecure_syncs_over_http(env, factory, register, tmp_path) -> None:
    """`repo add --allow-insecure http://…` registered the repository, then every sync refused its
    URL (GIT_URL_REJECTED: the sync's git processes never allowed http). Served here over git's
    dumb http protocol from 127.0.0.1: the first sync clones, the second takes the ref check."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    handle = factory.create("web", files=tools_files(["a"]), tag="v1.0.0")
    www = tmp_path / "www"
    served = www / "o" / "web"

    def publish() -> None:
        subprocess.run(["git", "clone", "-q", "--bare", "--mirror", str(handle.path), str(served)], check=True)
        subprocess.run(["git", "--git-dir", str(served), "update-server-info"], check=True)

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    publish()
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(www)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/o/web"
        register(url, name="web", allow_insecure=True)  # its check lists the remote over http
        run = run_sync(["web"])
        assert run.results["web"].status == "synced", run.results["web"]
        handle.commit(files=tools_files(["a"], "1.1.0"), tags=["v1.1.0"])
        subprocess.run(["rm", "-rf", str(served)], check=True)
        publish()
        run = run_sync(["web"])
        assert not run.plan.failed, run.plan.failed
        assert run.results["web"].status == "synced", run.results["web"]
        assert sorted(v for (v,) in q(env, "SELECT version FROM components")) == ["1.0.0", "1.1.0"]
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("branch", ["--upload-pack=/tmp/evil.sh", "-x", "a b", "a..b", "x.lock", ".x", "x/", "a@{b"])
def test_repo_add_refuses_a_branch_git_would_refuse_even_without_the_check(env, branch: str) -> None:
    """`repo add --no-check --branch=--upload-pack=…` stored and showed an option-shaped branch."""
    res = cli("--json", "repo", "add", "--no-check", "/nowhere/repo", f"--branch={branch}")
    assert res.code == 2 and res.json()["error"]["code"] == "BRANCH_INVALID", (res.out, res.err)
    assert "Traceback" not in res.err
    assert one(env, "SELECT count(*) FROM repositories")[0] == 0


def test_the_branch_rules_agree_with_git() -> None:
    from agentforge.gitops import branch_name_problem

    names = ["main", "feature/x", "v1.0", "a b", "a..b", "x.lock", "x.lock/y", "a/.b", ".x", "x/", "x.", "a@{b",
             "a//b", "ok@x", "fix_1", "日本", "a~1", "a^", "a:b", "a?", "a*", "a[b", "a\\b", "tab\there",
             "/x", "x/y.z", "release/1.2.3-rc.1"]
    for name in names:
        git_ok = subprocess.run(["git", "check-ref-format", "--branch", name], capture_output=True).returncode == 0
        assert (branch_name_problem(name) is None) == git_ok, name
