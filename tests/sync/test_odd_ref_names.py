"""Ref names git allows that are awkward for us: a non-ASCII default branch, a tag whose name is
not UTF-8. Through the real flow, since a name that is not text once broke Prefect's parameter
serialisation for every later sync of every repository."""

from __future__ import annotations

from tests.sync.conftest import one, q, tools_files


def test_a_non_ascii_default_branch_syncs_on_the_first_try(env, factory, register, prefect_api: None) -> None:
    from agentforge.config import get_settings
    from flows.sync import sync_repositories

    register(factory.create("uni", files=tools_files(["a"]), tag="v1.0.0", branch="ünï"))
    [result] = sync_repositories()
    assert result.status == "synced", result
    assert one(env, "SELECT default_branch FROM repositories")[0] == "ünï"
    [(repo_id,)] = q(env, "SELECT id FROM repositories")
    mirror = get_settings().mirrors_dir / f"{repo_id}.git"
    assert not list(mirror.rglob("*.lock"))
    assert [r.status for r in sync_repositories()] == ["unchanged"]


def test_a_tag_name_that_is_not_utf8_is_reported_and_harms_nothing(env, factory, register,
                                                                    prefect_api: None) -> None:
    from flows.sync import sync_repositories

    odd = factory.create("odd", files=tools_files(["a"]), tag="v1.0.0")
    register(odd)
    register(factory.create("plain", files=tools_files(["b"]), tag="v1.0.0"))
    odd.commit(files=tools_files(["a"], version="2.0.0"))
    odd.tag("v2.0.0\udcff")  # the byte 0xff: git takes any bytes in a ref name
    first = {r.name: r for r in sync_repositories()}
    assert first["odd"].status == "synced" and first["plain"].status == "synced", first
    assert any("refs/tags/v2.0.0\\xff ignored: its name is not UTF-8" in p for p in first["odd"].problems), first
    assert q(env, "SELECT name, version FROM components WHERE is_release ORDER BY name") == [("a", "1.0.0"),
                                                                                            ("b", "1.0.0")]
    # The next syncs (the batched ref check now sees the tag too) run and find nothing new.
    assert {r.name: r.status for r in sync_repositories()} == {"odd": "unchanged", "plain": "unchanged"}
    odd.tag("v2.0.0")
    assert {r.name: r.status for r in sync_repositories()} == {"odd": "synced", "plain": "unchanged"}
    assert ("a", "2.0.0") in q(env, "SELECT name, version FROM components WHERE is_release")
