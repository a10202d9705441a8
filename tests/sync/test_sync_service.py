"""Sync through the plain service functions (no Prefect): incremental work, tags, state, failures."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from tests.cli.helpers import cli
from tests.sync.conftest import component_yaml, manifest_yaml, one, q, run_sync, tools_files


def _component_rows(engine: sa.Engine) -> list[tuple[str, str, str]]:
    return [tuple(r) for r in q(engine, "SELECT name, commit_hash, xmin::text FROM components ORDER BY 1, 2")]


def test_cold_then_noop_then_new_tag_reads_only_the_new_commit(env, factory, register) -> None:
    repo = factory.create("demo", files=tools_files(["a", "b"]), tag="v1.0.0")
    register(repo)
    first = run_sync()
    assert first.results["demo"].status == "synced" and first.results["demo"].new_components == 2
    before = _component_rows(env)
    assert len(before) == 2

    # Nothing new upstream: the plan says unchanged, no per-repository sync, no component write.
    second = run_sync()
    assert second.plan.unchanged and not second.plan.to_sync and not second.results
    assert _component_rows(env) == before  # same rows, same xmin: not even rewritten
    ops = q(env, "SELECT status, message FROM sync_operations ORDER BY started_at")
    assert [(o[0], o[1]) for o in ops][-1] == ("COMPLETED", "up to date")

    # A new tag on a new commit: exactly that commit is read, old rows untouched.
    new = repo.commit(files={"tools/a/component.yaml": component_yaml("a", "1.1.0")}, tags=["v1.1.0"])
    third = run_sync()
    assert third.results["demo"].new_components == 2
    assert "from 1 new commits read" in third.results["demo"].message
    after = _component_rows(env)
    assert [r for r in after if r[1] != new] == before
    assert {r[0] for r in after if r[1] == new} == {"a", "b"}
    # a 1.1.0 is a release; b 1.0.0 at the new commit is the same files → not a second release.
    rel = q(env, "SELECT name, version, commit_hash = :c, release_tags FROM components WHERE is_release "
                 "ORDER BY 1, 2", c=new)
    assert [(r[0], r[1], r[2]) for r in rel] == [("a", "1.0.0", False), ("a", "1.1.0", True), ("b", "1.0.0", False)]
    repo_row = one(env, "SELECT sync_status, last_sync IS NOT NULL, default_branch, source_format FROM repositories")
    assert tuple(repo_row) == ("SYNCED", True, "main", "scan")



def test_installed_components_with_a_newer_release_become_outdated(env, factory, register) -> None:
    """Issue 3 §6: after a sync, an installed SYNCED component whose repository now releases a newer
    version is OUTDATED (upstream_commit names the release); a FORKED one keeps its state, and the
    sync sees it (its published changes get reconciled); the up-to-date one stays SYNCED."""
    from agentforge.db import get_engine, session_scope
    from models import repositories as repos_q

    repo = factory.create("up", files=tools_files(["a", "b", "c"], "1.0.0"), tag="v1.0.0")
    register(repo)
    run_sync()
    with env.begin() as conn:
        conn.execute(sa.text("UPDATE components SET is_installed = true, sync_status = CAST(CASE name "
                             "WHEN 'b' THEN 'FORKED' ELSE 'SYNCED' END AS component_sync_status)"))
    newer = repo.commit(files={f"tools/{n}/component.yaml": component_yaml(n, "1.1.0") for n in ("a", "b")},
                        tags=["v1.1.0"])
    assert run_sync().results["up"].status == "synced"
    rows = q(env, "SELECT name, sync_status, upstream_commit FROM components WHERE is_installed ORDER BY name")
    assert [tuple(r) for r in rows] == [("a", "OUTDATED", newer), ("b", "FORKED", None), ("c", "SYNCED", None)]
    [(repo_id,)] = q(env, "SELECT id FROM repositories")
    with session_scope(get_engine()) as session:
        assert repos_q.after_sync_installed(session=session, repository_id=repo_id) is True
    with env.begin() as conn:
        conn.execute(sa.text("UPDATE components SET sync_status = 'SYNCED' WHERE name = 'b'"))
    with session_scope(get_engine()) as session:
        assert repos_q.after_sync_installed(session=session, repository_id=repo_id) is False
    # b 1.0.0 was SYNCED when this ran, and 1.1.0 is newer: the same statement marked it.
    assert one(env, "SELECT sync_status FROM components WHERE name = 'b' AND is_installed")[0] == "OUTDATED"

def test_new_tag_on_a_known_commit_reads_no_commit(env, factory, register) -> None:
    repo = factory.create("demo", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    run_sync()
    repo.tag("v1.0.1-rc.1")  # not a different commit: nothing to read
    result = run_sync().results["demo"]
    assert result.new_components == 0 and "from 0 new commits read" in result.message
    assert one(env, "SELECT count(*) FROM components")[0] == 1


def test_manifest_cached_and_hashed(env, factory, register) -> None:
    files = tools_files(["a"]) | {"forge-manifest.yaml": manifest_yaml([("a", "tools/a")])}
    register(factory.create("demo", files=files))
    run_sync()
    manifest, digest, fmt = one(env, "SELECT manifest, manifest_hash, source_format FROM repositories")
    assert manifest["kind"] == "ComponentRepository" and len(digest) == 64 and fmt == "forge"


def test_moved_tag_is_held_back_until_accepted(env, factory, register) -> None:
    repo = factory.create("demo", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    run_sync()
    old = repo.commits[-1]
    new = repo.commit(files={"tools/a/component.yaml": component_yaml("a", "1.0.0") + "# changed\n"}, push=True)
    repo.tag("v1.0.0", new, force=True)  # force-push the tag elsewhere

    result = run_sync().results["demo"]
    assert any("tag v1.0.0 moved from" in p for p in result.problems)
    tag = one(env, "SELECT first_commit, current_commit, state FROM repository_tags WHERE tag = 'v1.0.0'")
    assert tuple(tag) == (old, new, "MOVED")
    # The release stays at the first commit; the moved-to commit carries no release tag.
    assert one(env, "SELECT commit_hash FROM components WHERE 'v1.0.0' = ANY(release_tags)")[0] == old
    assert q(env, "SELECT 1 FROM components WHERE commit_hash = :c AND is_release", c=new) == []
    err = one(env, "SELECT error_message FROM sync_operations WHERE status = 'COMPLETED' "
                   "ORDER BY started_at DESC LIMIT 1")[0]
    assert "v1.0.0 moved" in err
    # Reported once; a re-sync is a no-op and the version is still held back.
    assert run_sync().plan.unchanged

    from agentforge.db import session_scope
    from models import repositories as repos_q

    with session_scope(env) as session:
        repo_id = repos_q.get_repository(session=session, name="demo").id
        repos_q.accept_tag(session=session, repository_id=repo_id, tag="v1.0.0")
    # Until the next sync reads the accepted commit, the rejected one releases nothing.
    assert q(env, "SELECT 1 FROM components WHERE commit_hash = :c AND (is_release OR release_tags <> '{}')",
             c=old) == []
    after = run_sync()
    assert after.results["demo"].status == "synced"
    assert tuple(one(env, "SELECT first_commit, state FROM repository_tags")) == (new, "OK")
    assert one(env, "SELECT commit_hash FROM components WHERE 'v1.0.0' = ANY(release_tags)")[0] == new


def test_an_emptied_mirror_folder_is_cloned_again(env, factory, register, home: Path) -> None:
    repo = factory.create("demo", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    run_sync()
    mirror = next((home / "mirrors").glob("*.git"))
    for child in mirror.iterdir():  # what `rm -rf mirror/*` leaves: the folder, nothing in it
        subprocess.run(["rm", "-rf", str(child)], check=True)
    again = run_sync()
    assert not again.plan.unchanged and again.results["demo"].status == "synced"  # not "up to date"
    assert (mirror / "HEAD").is_file()
    from agentforge.gitops import RepositoryMirror

    with RepositoryMirror(mirror, repo.url) as fresh:
        assert fresh.local_refs()["refs/tags/v1.0.0"] == repo.commits[-1]


def test_deleted_tag_commit_stays_pinned_and_fetchable(env, factory, register, home: Path) -> None:
    repo = factory.create("demo", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    run_sync()
    tagged = repo.commits[-1]
    # Rewrite history so nothing upstream reaches the tagged commit any more.
    repo.git("checkout", "-q", "--orphan", "fresh")
    repo.commit(files={"tools/a/component.yaml": component_yaml("a", "2.0.0")}, push=False)
    repo.git("branch", "-M", "main")
    repo.git("push", "-q", "--force", "origin", "main:main")
    repo.delete_tag("v1.0.0")

    result = run_sync().results["demo"]
    assert any("v1.0.0 was deleted upstream" in p for p in result.problems)
    assert any("force-pushed" in p for p in result.problems)  # the branch rewrite is reported too
    assert one(env, "SELECT state FROM repository_tags")[0] == "DELETED"
    mirror = next((home / "mirrors").glob("*.git"))
    pins = subprocess.run(["git", "--git-dir", str(mirror), "for-each-ref", "--format=%(objectname)",
                           "refs/forge/pins/"], capture_output=True, text=True, check=True).stdout.split()
    assert tagged in pins
    # A fresh mirror (pins lost) fetches the commit by id from the remote while it still has it.
    from agentforge.gitops import RepositoryMirror

    with RepositoryMirror(home / "fresh.git", repo.url) as fresh:
        fresh.ensure()
        fresh.fetch_commit(tagged)
        assert fresh.has_commit(tagged)


def test_branch_force_push_is_reported(env, factory, register) -> None:
    repo = factory.create("demo", files=tools_files(["a"]))
    first = repo.commits[-1]
    repo.commit(files={"x.txt": "x"})
    register(repo)
    run_sync()
    repo.force_push_branch(first)
    result = run_sync().results["demo"]
    assert any("branch main was force-pushed" in p for p in result.problems)


def test_a_deleted_tracked_branch_is_reported(env, factory, register) -> None:
    """`repo add --branch feature`, then `feature` deleted upstream: the sync follows the remote's
    default branch, and says so (it used to switch without a word)."""
    repo = factory.create("demo", files=tools_files(["a"]))
    repo.create_branch("feature")
    register(repo, branch="feature")
    assert run_sync().results["demo"].problems == []
    repo.delete_branch("feature")
    result = run_sync().results["demo"]
    assert result.status == "synced"
    assert any("branch feature no longer exists upstream" in p and "main" in p for p in result.problems), result
    assert one(env, "SELECT default_branch FROM repositories WHERE name = 'demo'")[0] == "main"
    again = run_sync()
    assert "demo" not in again.results and again.plan.unchanged  # said once: the next sync has nothing to do


def test_stale_in_progress_is_recovered_but_a_live_one_is_not(env, factory, register) -> None:
    register(factory.create("demo", files=tools_files(["a"])))
    run_sync()
    from agentforge.db import session_scope
    from models import repositories as repos_q

    # Fake a run killed mid-sync: SYNC_IN_PROGRESS and an open operation, but no lock holder.
    with session_scope(env) as session:
        repo_id = repos_q.get_repository(session=session, name="demo").id
        repos_q.begin_sync(session=session, repository_id=repo_id, source_commit=None)
    # While someone holds the lock, the state is live and left alone.
    with repos_q.repository_sync_lock(env, repo_id):
        assert repos_q.recover_if_stale(env, repo_id) is False
    assert one(env, "SELECT sync_status FROM repositories")[0] == "SYNC_IN_PROGRESS"

    run = run_sync()
    assert run.results["demo"].status == "synced"
    ops = q(env, "SELECT status, error_message FROM sync_operations ORDER BY started_at")
    assert [o[0] for o in ops] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert "interrupted" in ops[1][1]
    assert one(env, "SELECT sync_status FROM repositories")[0] == "SYNCED"


def test_failures_are_isolated_kept_and_backed_off(env, factory, register, tmp_path: Path) -> None:
    good = factory.create("good", files=tools_files(["a"]))
    broken = factory.create("broken", files={"forge-manifest.yaml": "apiVersion: forge.dev/v1\nkind: Nope\n"})
    gone = factory.create("gone", files=tools_files(["z"]))
    for handle in (good, broken, gone):
        register(handle)
    subprocess.run(["rm", "-rf", str(gone.path)], check=True)  # unreachable from now on

    run = run_sync()
    assert run.results["good"].status == "synced"
    assert run.results["broken"].status == "failed" and "forge-manifest.yaml" in (run.results["broken"].error or "")
    rows = {r[0]: r[1:] for r in q(env, "SELECT name, sync_status, last_error, last_sync, synced_refs, "
                                        "next_sync_after, failure_count FROM repositories")}
    for name in ("broken", "gone"):
        status, error, last_sync, refs, next_after, failures = rows[name]
        assert status == "SYNC_FAILED" and error and last_sync is None and refs is None  # checkpoint not advanced
        assert next_after is not None and failures == 1
    ops = q(env, "SELECT r.name, o.status, o.operation, o.direction, o.started_at IS NOT NULL, "
                 "o.completed_at IS NOT NULL, o.error_message FROM sync_operations o "
                 "JOIN repositories r ON r.id = o.repository_id ORDER BY r.name")
    assert [(o[0], o[1]) for o in ops] == [("broken", "FAILED"), ("gone", "FAILED"), ("good", "COMPLETED")]
    assert all(o[2] == "PULL_UPSTREAM" and o[3] == "UPSTREAM_TO_LOCAL" and o[4] and o[5] for o in ops)
    assert one(env, "SELECT count(*) FROM components")[0] == 1

    # Inside the back-off window a plain sync skips them; naming one syncs it anyway.
    again = run_sync()
    assert {again.plan.names[i] for i in again.plan.skipped} == {"broken", "gone"}
    # ...and still fails the command (exit 1: cron and CI saw success while these stayed broken),
    # without trying them (no Prefect flow: nothing to sync).
    res = cli("--json", "sync")
    assert res.code == 1, (res.out, res.err)
    assert {r["name"]: (r["status"], r["error_code"]) for r in res.json()} == {
        "good": ("unchanged", None), "broken": ("skipped", "SYNC_BACKING_OFF"), "gone": ("skipped", "SYNC_BACKING_OFF")}
    named = run_sync(["broken"])
    assert named.results["broken"].status == "failed"
    assert one(env, "SELECT failure_count FROM repositories WHERE name = 'broken'")[0] == 2
    # Fixed upstream and the window over: the next plain sync picks it up and resets the counters.
    broken.commit(files={"forge-manifest.yaml": None, **tools_files(["b"])})
    with env.begin() as conn:
        conn.execute(sa.text("UPDATE repositories SET next_sync_after = :t"),
                     {"t": datetime.now(UTC) - timedelta(seconds=1)})
    healed = run_sync()
    assert healed.results["broken"].status == "synced"
    assert tuple(one(env, "SELECT sync_status, failure_count, next_sync_after, last_error FROM repositories "
                          "WHERE name = 'broken'")) == ("SYNCED", 0, None, None)


def test_fifty_repositories_noop_is_one_batched_check(env, factory, register) -> None:
    handles = [factory.create(f"r{i:02d}", files=tools_files([f"c{i}"])) for i in range(50)]
    for handle in handles:
        register(handle)
    cold = run_sync()
    assert len(cold.results) == 50 and all(r.status == "synced" for r in cold.results.values())
    noop = run_sync()
    assert len(noop.plan.unchanged) == 50 and not noop.plan.to_sync and not noop.results
    assert one(env, "SELECT count(*) FROM sync_operations WHERE message = 'up to date'")[0] == 50


def test_an_empty_repository_says_it_is_empty_and_syncs_once_it_has_a_commit(env, factory, register) -> None:
    """An empty remote has no branch at all: the failure says so (not that a branch named by a
    guess has no commit), and the first push makes the next sync succeed."""
    empty = factory.create("blank", empty=True)
    register(empty)
    first = run_sync().results["blank"]
    assert first.status == "failed" and "the repository is empty" in (first.error or "")
    assert first.error_code == "GIT_REF_NOT_FOUND"
    empty.commit(files=tools_files(["t1"]), tags=["v1.0.0"])
    again = run_sync(["blank"]).results["blank"]  # named: past the failure's back-off
    assert again.status == "synced", again
    assert one(env, "SELECT count(*) FROM components WHERE name = 't1'")[0] == 1


def test_commits_with_one_commit_time_are_ordered_by_history(env, factory, register) -> None:
    """Two release commits with the same committer date (scripted histories commit several times a
    second): the version belongs to the ancestor, not to whichever commit id sorts first."""
    repo = factory.create("tie", files=tools_files(["gamma"]))
    fixed = {**factory.base_env, "GIT_AUTHOR_DATE": "1750000000 +0000", "GIT_COMMITTER_DATE": "1750000000 +0000"}

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo.workdir, env=fixed, check=True, capture_output=True,
                              text=True).stdout.strip()

    def commit(i: int) -> str:
        (repo.workdir / "tools" / "gamma" / "main.py").write_text(f"print({i})\n")
        git("add", "-A")
        git("commit", "-q", "-m", f"change {i}")
        return git("rev-parse", "HEAD")

    first = commit(0)
    # Its child, at the same second, with an id that sorts before the ancestor's (the old tie-break).
    for i in range(1, 200):
        later = commit(i)
        if later < first:
            break
        git("reset", "-q", "--hard", first)
    assert later < first
    git("tag", "v1.0.0", first)
    git("tag", "gamma@1.0.0", later)
    git("push", "-q", "--force", "origin", "main", "--tags")
    register(repo)
    [result] = run_sync().results.values()
    assert result.status == "synced", result
    rows = dict(((c, (rel, reused)) for c, rel, reused in q(
        env, "SELECT commit_hash, is_release, is_reused_version FROM components WHERE name = 'gamma'")))
    assert rows[first] == (True, False) and rows[later] == (False, True), rows
    assert any(f"released again at {later[:12]}" in p and f"first at {first[:12]}" in p for p in result.problems)


def test_a_sync_closes_an_operation_a_dead_run_left_open(env, factory, register) -> None:
    """An IN_PROGRESS operation the repair before a sync could not close (the killed run's server
    session still held the repository's lock for a moment) is closed by the next sync of it: the
    sync holds that lock, so no live run owns the operation."""
    repo = factory.create("stale", files=tools_files(["a"]), tag="v1.0.0")
    register(repo)
    run_sync()
    with env.begin() as conn:
        conn.execute(sa.text(
            "INSERT INTO sync_operations (id, repository_id, operation, status, direction, started_at) "
            "SELECT gen_random_uuid(), id, 'PULL_UPSTREAM', 'IN_PROGRESS', 'UPSTREAM_TO_LOCAL', now() "
            "FROM repositories"))
    repo.commit(files=tools_files(["a"], version="1.1.0"), tags=["v1.1.0"])
    assert run_sync().results["stale"].status == "synced"
    assert q(env, "SELECT count(*) FROM sync_operations WHERE status = 'IN_PROGRESS'") == [(0,)]
    assert one(env, "SELECT count(*) FROM sync_operations WHERE status = 'FAILED' "
                    "AND error_message LIKE 'interrupted:%'")[0] == 1


def test_tags_of_a_tree_or_a_file_are_reported_once_and_do_not_make_every_sync_read_again(env, factory,
                                                                                           register) -> None:
    """A tag pointing at a tree or a blob releases nothing; the mirror left it out of the recorded
    refs while the ref check still listed it, so every later sync took it for news and read the
    repository again (a Prefect flow each time), without ever saying why."""
    handle = factory.create("tt", files=tools_files(["a"]), tag="v1.0.0")
    handle.git("tag", "v3.0.0", handle.git("rev-parse", "HEAD^{tree}").strip())
    handle.git("tag", "-a", "-m", "x", "v4.0.0", handle.git("rev-parse", "HEAD:tools/a/component.yaml").strip())
    handle.git("push", "-q", "origin", "--tags")
    register(handle)
    first = run_sync().results["tt"]
    assert first.status == "synced"
    warned = sorted(p for p in first.problems if "no commit" in p)
    assert len(warned) == 2 and "v3.0.0" in warned[0] and "v4.0.0" in warned[1], first.problems
    again = run_sync()
    assert [again.plan.names[i] for i in again.plan.unchanged] == ["tt"] and not again.results
    # A new release still gets through, and the known odd tags are not reported again.
    handle.commit(files=tools_files(["a"], "1.1.0"), tags=["v1.1.0"])
    third = run_sync().results["tt"]
    assert third.status == "synced" and not [p for p in third.problems if "no commit" in p], third.problems
    assert sorted(v for (v,) in q(env, "SELECT version FROM components")) == ["1.0.0", "1.1.0"]
