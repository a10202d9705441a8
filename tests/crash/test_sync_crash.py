"""kill -9 a sync at every step; a restart and a re-run leave the database and mirror consistent.

What "consistent" means here: the repository is SYNCED (the killed run's SYNC_IN_PROGRESS is
recovered), no sync operation is left IN_PROGRESS, every component row's commit exists in
the mirror (no row without its commit), the rows are exactly those a crash-free sync makes
(nothing lost, nothing doubled), the tag ledger knows every release tag, and one more sync
is a no-op.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.crash.conftest import assert_nothing_stuck, killed
from tests.crash.driver import SYNC_POINTS
from tests.lock.conftest import Library

EXPECTED = {("a", "1.0.0"), ("b", "1.0.0"), ("a", "1.1.0"), ("b", "1.1.0")}


def _check_consistent(lib: Library) -> None:
    from agentforge.config import get_settings

    assert_nothing_stuck(lib.engine)
    [(repo_id, status, refs)] = lib.q("SELECT id, sync_status::text, synced_refs FROM repositories")
    assert status == "SYNCED"
    assert "refs/tags/v1.1.0" in refs["refs"]
    rows = lib.q("SELECT name, version, commit_hash, is_release FROM components")
    assert {(n, v) for n, v, _, _ in rows} == EXPECTED
    assert len(rows) == len(EXPECTED)  # no duplicate rows from the killed attempt
    assert all(is_release for *_, is_release in rows)
    mirror = get_settings().mirrors_dir / f"{repo_id}.git"
    for _, _, commit, _ in rows:
        subprocess.run(["git", "--git-dir", str(mirror), "cat-file", "-e", f"{commit}^{{commit}}"], check=True)
    assert {t for (t,) in lib.q("SELECT tag FROM repository_tags")} == {"v1.0.0", "v1.1.0"}


@pytest.mark.parametrize("point", SYNC_POINTS)
def test_incremental_sync_killed(lib: Library, point: str) -> None:
    lib.repo("tools", {"a": "1.0.0", "b": "1.0.0"}, tag="v1.0.0")
    lib.sync()
    lib.release("tools", {"a": "1.1.0", "b": "1.1.0"}, tag="v1.1.0")

    killed("sync", at=point)
    lib.sync()  # the restart and re-run (the killed process's connections and advisory lock are gone)

    _check_consistent(lib)
    before = lib.q("SELECT count(*) FROM components")
    lib.sync()
    assert lib.q("SELECT count(*) FROM components") == before
    assert lib.q("SELECT sync_status::text FROM repositories") == [("SYNCED",)]


@pytest.mark.parametrize("point", ["sync.intent", "sync.insert"])
def test_first_sync_killed(lib: Library, point: str) -> None:
    """The first sync also creates the mirror: a kill there must not leave a broken one behind."""
    lib.repo("tools", {"a": "1.0.0", "b": "1.0.0"}, tag="v1.0.0")
    lib.release("tools", {"a": "1.1.0", "b": "1.1.0"}, tag="v1.1.0")

    killed("sync", at=point)
    lib.sync()

    _check_consistent(lib)


@pytest.mark.parametrize("where", ["pack", "refs"])
def test_sync_killed_inside_git_fetch(lib: Library, where: str, tmp_path: Path) -> None:
    """kill -9 of the whole process group (the sync, git fetch, upload-pack) from inside git:
    while the pack is produced, and with the ref locks taken (``refs/…/*.lock`` left behind, as a
    real crash at that instant leaves them). The re-run removes the stale git locks — it holds the
    mirror's write lock, so no writer of ours is alive — and syncs as if nothing had happened."""
    from agentforge.config import get_settings

    lib.repo("tools", {"a": "1.0.0", "b": "1.0.0"}, tag="v1.0.0")
    lib.sync()
    lib.release("tools", {"a": "1.1.0", "b": "1.1.0"}, tag="v1.1.0")

    killed("sync-killed-in-git", where, str(tmp_path / "git-kill"), at="never")
    [(repo_id,)] = lib.q("SELECT id FROM repositories")
    mirror = get_settings().mirrors_dir / f"{repo_id}.git"
    left = sorted(p.relative_to(mirror).as_posix() for p in mirror.rglob("*.lock"))
    if where == "refs":
        assert left, "the kill was meant to leave git's ref locks behind"
    lib.sync()  # the restart and re-run

    _check_consistent(lib)
    assert not list(mirror.rglob("*.lock"))
    lib.sync()
    assert lib.q("SELECT sync_status::text FROM repositories") == [("SYNCED",)]


def test_first_sync_killed_while_its_clone_goes_on(lib: Library, tmp_path: Path) -> None:
    """kill -9 of the sync alone during its first clone: git outlives it and keeps writing. The
    clone writes into a scratch folder renamed into place only when complete, so while the orphan
    works there is no mirror (before: the orphan wrote into the mirror's own folder, which the next
    sync took for a mirror and fetched into while the orphan still wrote to it), the next sync
    clones afresh, and nothing of the orphan is left."""
    import time

    from agentforge.config import get_settings
    from agentforge.gitops import is_mirror

    lib.repo("tools", {"a": "1.0.0", "b": "1.0.0"}, tag="v1.0.0")
    lib.release("tools", {"a": "1.1.0", "b": "1.1.0"}, tag="v1.1.0")
    [(repo_id,)] = lib.q("SELECT id FROM repositories")
    mirror = get_settings().mirrors_dir / f"{repo_id}.git"
    scratch = tmp_path / "orphan"
    killed("sync-orphaning-clone", str(scratch), at="never")
    assert not (scratch / "orphan-done").exists()  # the orphaned clone is still at work...
    assert not is_mirror(mirror)  # ...and nothing at the mirror's place looks like a mirror
    lib.sync()  # the restart and re-run, while the orphaned clone still runs
    deadline = time.monotonic() + 60
    while not (scratch / "orphan-done").exists():
        assert time.monotonic() < deadline, "the orphaned clone never finished"
        time.sleep(0.1)
    time.sleep(0.5)  # its index-pack ends after its pack-objects

    _check_consistent(lib)
    assert sorted(p.name for p in mirror.parent.iterdir() if p.name.startswith(mirror.name)) == [
        mirror.name, f"{mirror.name}.forge-lock"]  # no scratch folder left
    lib.sync()
    assert lib.q("SELECT sync_status::text FROM repositories") == [("SYNCED",)]
