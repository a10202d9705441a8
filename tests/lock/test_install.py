"""Installs from the mirrors: exact commits, verified, all or nothing (services called directly)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agentforge.core.lockfile import parse_lock, render_lock
from agentforge.errors import LockError
from agentforge.services import install as install_svc
from agentforge.services import lock as lock_svc
from tests.lock.conftest import Library


def _locked(root: str, path: Path, **kw: object) -> lock_svc.ResolveOutcome:
    existing = lock_svc.read_existing_lock(path)
    out = lock_svc.resolve_root(root, pins=existing.pins, previous=existing.lock, **kw)  # type: ignore[arg-type]
    lock_svc.write_lock_file(path, out.text)
    return out


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _git_show(lib: Library, repo: str, commit: str, rel: str) -> bytes:
    return subprocess.run(["git", "-C", str(lib.handles[repo].path), "show", f"{commit}:{rel}"],
                          capture_output=True, check=True).stdout


@pytest.fixture()
def two(lib: Library) -> Library:
    lib.repo("tools", {"app": ("1.0.0", {"b": "^1"}), "b": "1.0.0"})
    lib.sync()
    return lib


def test_install_exact_commit_verified_and_recorded(two: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    out = _locked("app", path)
    # The user's work tree moves on: the install still takes files at the locked commit.
    two.handles["tools"].commit(files={"tools/b/main.py": "print('unreleased')\n"})
    lock = lock_svc.verify_lock_for_install("app", path, include_dev=False)
    target = tmp_path / "installed"
    result = install_svc.install_lock(lock, target=target)
    assert {p.component for p in result.packages} == {"app", "b"}
    b = next(p for p in out.lock.packages.values() if p.component == "b")
    assert (target / "b" / "main.py").read_bytes() == _git_show(two, "tools", b.commit, "tools/b/main.py")
    assert not (target / "b" / ".git").exists() and not list(target.glob(".staging-*"))
    record = json.loads((target / ".forge" / "b.json").read_text())
    assert record["commit"] == b.commit and record["checksum"] == b.checksum
    rows = two.q("SELECT name, install_path, installed_at IS NOT NULL, original_definition = definition, "
                 "sync_status::text FROM components WHERE is_installed ORDER BY name")
    assert [tuple(r) for r in rows] == [("app", str(target / "app"), True, True, "SYNCED"),
                                        ("b", str(target / "b"), True, True, "SYNCED")]

    # A second install with nothing changed is a no-op: same files, not rewritten.
    inode = (target / "b" / "main.py").stat().st_ino
    again = install_svc.install_lock(lock, target=target)
    assert again.unchanged == 2 and (target / "b" / "main.py").stat().st_ino == inode


def test_failure_leaves_previous_install_untouched(two: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    target = tmp_path / "installed"
    install_svc.install_lock(_locked("app", path).lock, target=target)
    before_files = _snapshot(target)

    two.release("tools", {"app": ("1.1.0", {"b": "^1"}), "b": "1.1.0"}, "v1.1.0")
    two.sync()
    new = _locked("app", path, upgrade=[]).lock
    assert {p.version for p in new.packages.values()} == {"1.1.0"}
    before_db = two.q("SELECT name, version, commit_hash, is_installed, install_path, installed_at FROM components "
                      "ORDER BY name, commit_hash")
    # Corrupt the package installed last (sorted by key), so the first one is already staged.
    last = sorted(new.packages)[-1]
    bad = new.model_copy(deep=True)
    bad.packages[last] = bad.packages[last].model_copy(update={"checksum": "sha256:" + "b" * 64})
    with pytest.raises(LockError) as info:
        install_svc.install_lock(bad, target=target)
    assert info.value.code == "CHECKSUM_MISMATCH"
    assert _snapshot(target) == before_files and not list(target.glob(".staging-*"))
    assert two.q("SELECT name, version, commit_hash, is_installed, install_path, installed_at FROM components "
                 "ORDER BY name, commit_hash") == before_db

    # The good lock then upgrades in place; the old version's row is no longer installed.
    install_svc.install_lock(new, target=target)
    assert b"1.1.0" in (target / "b" / "main.py").read_bytes()
    rows = two.q("SELECT name, version FROM components WHERE is_installed ORDER BY 1")
    assert [tuple(r) for r in rows] == [("app", "1.1.0"), ("b", "1.1.0")]


def test_frozen_refuses_and_changes_nothing(two: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("app", path, include_dev=False)
    assert info.value.code == "LOCK_MISSING" and not path.exists()
    _locked("app", path)
    data = path.read_bytes()
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("app", path, include_dev=True)  # stale for --dev
    assert info.value.code == "LOCK_STALE" and "stale" in info.value.message
    assert path.read_bytes() == data


def test_refuses_a_lock_for_another_root(two: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _locked("app", path)
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("b", path, include_dev=False)
    assert "locks Tool app, not Tool b" in info.value.message
    check = lock_svc.check_lock("b", path)
    assert check.wrong_root and not check.ok


def test_refuses_a_lock_for_a_root_in_another_repository(two: Library, tmp_path: Path) -> None:
    """The lock's root commit is not applied to another root (before: "z has 1.0.0: nothing matches
    commit:…" instead of naming the lock's root)."""
    two.repo("elsewhere", {"z": "1.0.0"})
    two.sync()
    path = tmp_path / "forge-lock.yaml"
    _locked("app", path)
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("z", path, include_dev=False)
    assert "locks Tool app, not Tool z" in info.value.message, info.value.message
    assert lock_svc.check_lock("z", path).wrong_root


def test_commit_whose_tag_was_deleted_is_fetched_by_id(lib: Library, tmp_path: Path, home: Path) -> None:
    repo = lib.repo("tools", {"app": ("1.0.0", {"b": "1.0.0"}), "b": "1.0.0"}, tag="v1.0.0")
    lib.sync()
    path = tmp_path / "forge-lock.yaml"
    out = _locked("app", path)
    old = out.lock.packages[next(k for k in out.lock.packages if k.endswith("/b"))].commit
    # Rewrite history: the locked commit is reachable from no ref upstream any more.
    repo.delete_tag("v1.0.0")
    fresh = repo.commit(files={"tools/b/main.py": "print('rewritten')\n"})
    repo.git("checkout", "-q", "--orphan", "rewrite")
    rewritten = repo.commit(files={"tools/b/main.py": "print('rewritten')\n"}, push=False)
    repo.git("push", "-q", "--force", "origin", f"{rewritten}:refs/heads/main")
    assert fresh and old not in subprocess.run(["git", "-C", str(repo.path), "rev-list", "--all"],
                                               capture_output=True, text=True, check=True).stdout
    lib.sync()
    # A machine without the mirror: it is cloned, and the commit fetched by its id.
    shutil.rmtree(home / "mirrors", ignore_errors=True)
    lock = lock_svc.verify_lock_for_install("app", path, include_dev=False)
    target = tmp_path / "installed"
    install_svc.install_lock(lock, target=target)
    assert (target / "b" / "main.py").read_bytes() == _git_show(lib, "tools", old, "tools/b/main.py")


def test_render_is_stable_after_round_trip(two: Library, tmp_path: Path) -> None:
    path = tmp_path / "forge-lock.yaml"
    _locked("app", path)
    assert render_lock(parse_lock(path.read_bytes(), source="x")).encode() == path.read_bytes()


def test_never_replaces_files_it_did_not_install_or_unfolded_edits(two: Library, tmp_path: Path) -> None:
    """A folder AgentForge did not install, or one edited since (edits `status` has not folded
    yet: the database knows nothing of them), is refused with nothing changed; --force replaces."""
    from agentforge.errors import Conflict

    path = tmp_path / "forge-lock.yaml"
    lock = _locked("app", path).lock
    target = tmp_path / "installed"
    (target / "b").mkdir(parents=True)
    (target / "b" / "mine.txt").write_text("precious\n")
    with pytest.raises(Conflict) as info:
        install_svc.install_lock(lock, target=target)
    assert info.value.code == "TARGET_NOT_MANAGED" and str(target / "b") in info.value.message
    assert (target / "b" / "mine.txt").read_text() == "precious\n" and not (target / "app").exists()
    assert two.q("SELECT count(*) FROM components WHERE is_installed") == [(0,)]

    shutil.rmtree(target / "b")
    install_svc.install_lock(lock, target=target)
    (target / "b" / "main.py").write_text("# my edit, not folded by `status` yet\n")
    bumped = lock.model_copy(update={"packages": {
        k: (p.model_copy(update={"checksum": "sha256:" + "1" * 64}) if p.component == "b" else p)
        for k, p in lock.packages.items()}})  # a lock that differs for b: the install must touch b
    with pytest.raises(Conflict) as info:
        install_svc.install_lock(bumped, target=target)
    assert info.value.code == "LOCAL_CHANGES" and str(target / "b") in info.value.message
    assert (target / "b" / "main.py").read_text() == "# my edit, not folded by `status` yet\n"

    forced = install_svc.install_lock(lock, target=target, force=True)
    assert {p.component for p in forced.packages} == {"app", "b"}
    b = next(p for p in lock.packages.values() if p.component == "b")
    assert (target / "b" / "main.py").read_bytes() == _git_show(two, "tools", b.commit, "tools/b/main.py")


def test_a_folder_of_another_repository_or_a_second_folder_is_refused(two: Library, tmp_path: Path) -> None:
    from agentforge.errors import Conflict

    target = tmp_path / "installed"
    lock = _locked("app", tmp_path / "forge-lock.yaml").lock
    install_svc.install_lock(lock, target=target)
    before = _snapshot(target / "b")
    # Another repository's component of the same name would land in the same folder.
    two.repo("others", {"b": "2.0.0"})
    two.sync()
    theirs = _locked("others/b", tmp_path / "others.yaml").lock
    with pytest.raises(Conflict) as info:
        install_svc.install_lock(theirs, target=target)
    assert info.value.code == "TARGET_TAKEN" and str(target / "b") in info.value.message
    assert _snapshot(target / "b") == before
    # The same commits into a second folder: the first would silently stop being tracked.
    with pytest.raises(Conflict) as info:
        install_svc.install_lock(lock, target=tmp_path / "second")
    assert info.value.code == "ALREADY_INSTALLED" and str(target / "b") in info.value.message
    assert not (tmp_path / "second" / "b").exists()
    moved = install_svc.install_lock(lock, target=tmp_path / "second", force=True)
    assert {p.component for p in moved.packages} == {"app", "b"}
    assert two.q("SELECT install_path FROM components WHERE is_installed AND name = 'b'") == [
        (str(tmp_path / "second" / "b"),)]
