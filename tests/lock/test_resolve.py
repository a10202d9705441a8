"""Resolution over synced Postgres rows from real git repositories (services called directly)."""

from __future__ import annotations

import uuid

import pytest
import sqlalchemy as sa

from agentforge.errors import ConstraintError, NotFound, ResolutionError
from agentforge.services import lock as lock_svc
from tests.lock.conftest import Library, component


def versions(outcome: lock_svc.ResolveOutcome) -> dict[str, tuple[str, str]]:
    return {p.component: (p.version, p.dependency_type) for p in outcome.lock.packages.values()}


def test_component_root_transitive_one_version_per_key(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"b": "^1", "c": ">=1.1"}), "b": ("1.0.0", {"c": "^1"}), "c": "1.0.0"})
    lib.release("tools", {"c": "1.1.0"}, "v1.1.0")
    lib.release("tools", {"c": "2.0.0"}, "v2.0.0")
    lib.sync()
    out = lock_svc.resolve_root("app", compute_checksums=False)
    assert versions(out) == {"app": ("1.0.0", "root"), "b": ("1.0.0", "direct"), "c": ("1.1.0", "direct")}
    c = next(p for p in out.lock.packages.values() if p.component == "c")
    b_key = next(k for k, p in out.lock.packages.items() if p.component == "b")
    assert c.constraints == {"<root>": ">=1.1", b_key: "^1"}
    assert out.lock.root.model_dump() == {"kind": "Tool", "name": "app", "version": "1.0.0"}


def test_root_with_constraint_and_repo_prefix(lib: Library) -> None:
    lib.repo("tools", {"app": "1.0.0"})
    lib.release("tools", {"app": "2.0.0"}, "v2.0.0")
    lib.sync()
    assert versions(lock_svc.resolve_root("tools/app@^1", compute_checksums=False))["app"] == ("1.0.0", "root")
    assert versions(lock_svc.resolve_root("app", compute_checksums=False))["app"] == ("2.0.0", "root")


def test_composition_root(lib: Library) -> None:
    lib.repo("tools", {"a": ("1.0.0", {"b": "*"}), "b": "1.0.0"})
    lib.sync()
    definition = {"apiVersion": "forge.dev/v1", "kind": "Composition",
                  "metadata": {"name": "stack", "version": "1.0.0"},
                  "spec": {"dependencies": {"tools": [{"name": "a", "repository": lib.handles["tools"].url,
                                                       "version": "^1"}]}}}
    with lib.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO compositions (id, name, version, definition) "
                             "VALUES (:id, 'stack', '1.0.0', CAST(:d AS jsonb))"),
                     {"id": uuid.uuid4(), "d": __import__("json").dumps(definition)})
    out = lock_svc.resolve_root("stack", force_kind="composition", compute_checksums=False)
    assert out.lock.root.kind == "Composition"
    assert versions(out) == {"a": ("1.0.0", "direct"), "b": ("1.0.0", "transitive")}
    assert out.composition_id is not None
    lock_svc.persist_resolution(out.lock, composition_id=out.composition_id)
    stored = lib.q("SELECT lock_file->'root'->>'name' FROM compositions")
    assert stored == [("stack",)]


def test_backtracking_picks_an_older_version(lib: Library) -> None:
    # app needs a ^1 and c ^1; a 1.1.0 (newest) needs c ^2 → the resolver must settle on a 1.0.0.
    lib.repo("tools", {"app": ("1.0.0", {"a": "^1", "c": "^1"}), "a": ("1.0.0", {"c": "^1"}), "c": "1.0.0"})
    lib.release("tools", {"a": ("1.1.0", {"c": "^2"}), "c": "2.0.0"}, "v2.0.0")
    lib.sync()
    out = lock_svc.resolve_root("app@1.0.0", compute_checksums=False)
    assert versions(out) == {"app": ("1.0.0", "root"), "a": ("1.0.0", "direct"), "c": ("1.0.0", "direct")}


def test_conflict_reads_as_a_chain(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"a": "^2.1", "b": "^1"}), "a": ("2.1.4", {"c": "~1.0"}),
                       "b": ("1.3.0", {"c": "^2.0"}), "c": "1.0.3"})
    lib.release("tools", {"c": "2.0.1"}, "v2.0.1")
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    msg = info.value.message
    assert "<root> needs a ^2.1 → a 2.1.4 needs c ~1.0" in msg
    assert "<root> needs b ^1 → b 1.3.0 needs c ^2.0" in msg
    assert "c has 1.0.3, 2.0.1: nothing matches ~1.0 and ^2.0" in msg
    assert info.value.hint and "relax" in info.value.hint


def test_peer_checked_never_pulled_in(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"plugin": "*"}), "plugin": "1.0.0", "host": "1.0.0"})
    lib.handles["tools"].commit(files={
        "tools/plugin/component.yaml": component("plugin", "1.1.0", peer={"host": "^1"})}, tags=["v1.1.0"])
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    assert "needs peer host ^1" in info.value.message and "never installed implicitly" in info.value.message


def test_peer_satisfied_by_the_consumer(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"plugin": "*", "host": "*"}), "host": "1.0.0"},
             files={"tools/plugin/component.yaml": component("plugin", "1.0.0", peer={"host": "^1"})})
    lib.release("tools", {"host": "2.0.0"}, "v2.0.0")
    lib.sync()
    # host 2.0.0 is newest, but the plugin's peer constraint forces host 1.0.0.
    out = lock_svc.resolve_root("app@1.0.0", compute_checksums=False)
    assert versions(out)["host"] == ("1.0.0", "direct")
    host = next(p for p in out.lock.packages.values() if p.component == "host")
    assert any(k.endswith("/plugin") for k in host.constraints)


def test_dev_only_with_flag_and_optional_skipped(lib: Library) -> None:
    lib.repo("tools", {"tester": "1.0.0", "extra": "1.0.0"},
             files={"tools/app/component.yaml": component(
                 "app", "1.0.0", dev={"tester": "*"},
                 optional={"extra": "^5", "ghost": {"version": "*", "repository": "github.com/nobody/ghost"}})})
    lib.sync()
    out = lock_svc.resolve_root("app", compute_checksums=False)
    assert versions(out) == {"app": ("1.0.0", "root")}
    assert any(s.startswith("extra") for s in out.skipped) and any(s.startswith("ghost") for s in out.skipped)
    dev = lock_svc.resolve_root("app", include_dev=True, compute_checksums=False)
    assert versions(dev)["tester"] == ("1.0.0", "dev")
    assert dev.lock.content_hash != out.lock.content_hash


def test_cycle_reported_with_its_path(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"a": "*"}), "a": ("1.0.0", {"b": "*"}), "b": ("1.0.0", {"a": "*"})})
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    assert "dependency cycle: a 1.0.0 → b 1.0.0 → a 1.0.0" in info.value.message


def test_unregistered_repository_named_with_hint(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"auth": {"version": "^1", "repository": "github.com/acme/auth"}})})
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    assert "github.com/acme/auth" in info.value.message and "not registered" in info.value.message
    assert info.value.hint and "agentforge repo add github.com/acme/auth" in info.value.hint


def test_cross_repository_dependency(lib: Library) -> None:
    auth = lib.repo("auth", {"oauth": "1.2.0"})
    lib.repo("tools", {"app": ("1.0.0", {"oauth": {"version": "~1.2", "repository": auth.url}})})
    lib.sync()
    out = lock_svc.resolve_root("app", compute_checksums=False)
    key = next(k for k, p in out.lock.packages.items() if p.component == "oauth")
    assert out.lock.packages[key].repository == auth.url and versions(out)["oauth"] == ("1.2.0", "direct")


def test_moved_tag_is_held_back_and_cited(lib: Library) -> None:
    repo = lib.repo("tools", {"app": ("1.0.0", {"c": "^1.1"}), "c": "1.0.0"})
    lib.release("tools", {"c": "1.1.0"}, "v1.1.0")
    lib.sync()
    # Someone re-points v1.1.0 at a new commit: that release is held back until accepted.
    other = repo.commit(files={"tools/c/main.py": "print('changed')\n"})
    repo.tag("v1.1.0", other, force=True)
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    msg = info.value.message
    assert "1.1.0 held back: tag v1.1.0 moved from" in msg and "accept-tag" in msg


def test_a_release_accepted_but_not_synced_yet_says_to_sync(lib: Library) -> None:
    """Between `repo accept-tag` and the next sync no row releases the accepted version: the
    conflict names the accepted tag and the sync that reads it."""
    from agentforge.db import session_scope
    from models import repositories as repos_q

    repo = lib.repo("tools", {"app": ("1.0.0", {"c": "^1.1"}), "c": "1.0.0"})
    lib.release("tools", {"c": "1.1.0"}, "v1.1.0")
    lib.sync()
    other = repo.commit(files={"tools/c/main.py": "print('changed')\n"})
    repo.tag("v1.1.0", other, force=True)
    lib.sync()
    repo_id = lib.q("SELECT id FROM repositories WHERE name = 'tools'")[0][0]
    with session_scope(lib.engine) as session:
        repos_q.accept_tag(session=session, repository_id=repo_id, tag="v1.1.0")
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    assert f"1.1.0: tag v1.1.0 was accepted at {other[:12]} after the last sync" in info.value.message
    assert "`agentforge sync tools` reads it" in info.value.message
    assert info.value.hint and "agentforge sync" in info.value.hint
    conflict = next(d for d in info.value.details["conflicts"] if d["name"] == "c")
    assert conflict["pending"] == [f"1.1.0: tag v1.1.0 was accepted at {other[:12]} after the last sync; "
                                   "`agentforge sync tools` reads it"]
    lib.sync()
    out = lock_svc.resolve_root("app", compute_checksums=False)
    assert {p.component: (p.version, p.commit) for p in out.lock.packages.values()}["c"] == ("1.1.0", other)


def test_a_tag_moved_onto_another_release_does_not_hide_that_release(lib: Library) -> None:
    """v2.0.0 force-moved onto the commit v2.1.0 releases: the 2.0.0 release is held back, but the
    versions that commit holds are still released by the untouched v2.1.0 (no silent downgrade)."""
    repo = lib.repo("tools", {"app": ("1.0.0", {"c": "^1"}), "c": "1.0.0"})
    lib.release("tools", {"c": "1.2.1"}, "v2.0.0")
    # v2.1.0 releases another component; c 1.2.1 ships again byte-identical (a reused version).
    newest = lib.release("tools", {"other": "1.0.0"}, "v2.1.0")
    lib.sync()
    before = lock_svc.resolve_root("app", compute_checksums=False)
    repo.tag("v2.0.0", newest, force=True)
    lib.sync()
    assert lib.q("SELECT state::text FROM repository_tags WHERE tag = 'v2.0.0'") == [("MOVED",)]
    out = lock_svc.resolve_root("app", compute_checksums=False)
    c_before = next(p for p in before.lock.packages.values() if p.component == "c")
    c_after = next(p for p in out.lock.packages.values() if p.component == "c")
    assert (c_before.version, c_after.version) == ("1.2.1", "1.2.1")  # not silently 1.0.0
    assert c_after.commit == newest and c_after.tree == c_before.tree


def test_a_root_whose_tag_moved_keeps_its_pinned_commit(lib: Library) -> None:
    """Locked at app 2.1.0; then v2.1.0 is force-moved onto the 2.0.0 commit. Re-locking keeps the
    pinned 2.1.0 commit (it did not silently fall back to 2.0.0); --upgrade app chooses afresh."""
    repo = lib.repo("tools", {"app": "2.0.0"}, tag="v2.0.0")
    old = repo.git("rev-parse", "HEAD").strip()
    pinned = lib.release("tools", {"app": "2.1.0"}, "v2.1.0")
    lib.sync()
    first = lock_svc.resolve_root("app", compute_checksums=False)
    pins = {k: p.commit for k, p in first.lock.packages.items()}
    assert [p.commit for p in first.lock.packages.values()] == [pinned]
    repo.tag("v2.1.0", old, force=True)
    lib.sync()
    again = lock_svc.resolve_root("app", pins=pins, compute_checksums=False)
    assert [(p.version, p.commit) for p in again.lock.packages.values()] == [("2.1.0", pinned)]
    fresh = lock_svc.resolve_root("app", pins=pins, upgrade=["app"], compute_checksums=False)
    assert [p.version for p in fresh.lock.packages.values()] == ["2.0.0"]  # 2.1.0 is held back for new choices


def test_kept_pin_cited_in_a_conflict(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"c": "^1"}), "c": "1.0.0"})
    lib.sync()
    first = lock_svc.resolve_root("app", compute_checksums=False)
    pins = {k: p.commit for k, p in first.lock.packages.items()}
    lib.release("tools", {"app": ("1.1.0", {"c": "^2"}), "c": "1.5.0"}, "v1.1.0")
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("app@1.1.0", pins=pins, compute_checksums=False)
    assert "pin kept from the lock: c 1.0.0" in info.value.message


def test_bad_constraint_names_it_and_the_declarer(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"c": "^^1"}), "c": "1.0.0"})
    lib.sync()
    with pytest.raises(ConstraintError) as info:
        lock_svc.resolve_root("app", compute_checksums=False)
    assert "'^^1' declared by app 1.0.0 (" in info.value.message


def test_unknown_root(lib: Library) -> None:
    lib.repo("tools", {"app": "1.0.0"})
    lib.sync()
    with pytest.raises(NotFound):
        lock_svc.resolve_root("nope", compute_checksums=False)


def test_dependency_rows_replaced_on_relock(lib: Library) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"b": "^1"}), "b": ("1.0.0", {"c": "*"}), "c": "1.0.0"})
    lib.sync()
    first = lock_svc.resolve_root("app", compute_checksums=False)
    assert lock_svc.persist_resolution(first.lock, composition_id=None) == 2
    rows = lib.q("SELECT p.name, d.name, cd.version_constraint, cd.resolved_version, cd.resolved_commit, "
                 "cd.dependency_type::text, cd.is_optional, cd.resolution_path FROM component_dependencies cd "
                 "JOIN components p ON p.id = cd.component_id JOIN components d ON d.id = cd.dependency_id "
                 "ORDER BY 1, 2")
    b_key = next(k for k, p in first.lock.packages.items() if p.component == "b")
    c = next(p for p in first.lock.packages.values() if p.component == "c")
    assert [(*tuple(r[:4]), r[5], r[6]) for r in rows] == [
        ("app", "b", "^1", "1.0.0", "DIRECT", False), ("b", "c", "*", "1.0.0", "TRANSITIVE", False)]
    assert rows[1][4] == c.commit and rows[1][7] == ["<root>", b_key, c.key]

    # b 1.1.0 drops c: after an upgrade, no row of the old resolution is left behind.
    lib.release("tools", {"b": ("1.1.0", {})}, "v1.1.0")
    lib.sync()
    second = lock_svc.resolve_root("app@1.0.0", upgrade=[], pins={k: p.commit for k, p in first.lock.packages.items()},
                                   compute_checksums=False)
    assert lock_svc.persist_resolution(second.lock, composition_id=None, previous=first.lock) == 1
    rows = lib.q("SELECT p.name, d.name, cd.resolved_version FROM component_dependencies cd "
                 "JOIN components p ON p.id = cd.component_id JOIN components d ON d.id = cd.dependency_id")
    assert [tuple(r) for r in rows] == [("app", "b", "1.1.0")]
