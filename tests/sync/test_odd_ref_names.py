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


def test_a_default_branch_whose_name_is_not_utf8_fails_only_its_repository(env, factory, register,
                                                                           prefect_api: None) -> None:
    """The remote's HEAD moved to a branch whose name is not text: before, the batched check passed
    that name to the flow as a parameter and every sync of every repository crashed."""
    from agentforge.cli.repo_cmds import run_sync  # as `agentforge sync` runs the flow (plan as parameters)

    def sync_repositories() -> list:
        return run_sync(None)

    odd = factory.create("headodd", files=tools_files(["a"]), tag="v1.0.0")
    register(odd)
    register(factory.create("plain2", files=tools_files(["b"]), tag="v1.0.0"))
    assert {r.status for r in sync_repositories()} == {"synced"}
    odd.create_branch("feat\udcff")
    odd.git("symbolic-ref", "HEAD", "refs/heads/feat\udcff", bare=True)
    odd.commit(files=tools_files(["a"], version="1.1.0"), tags=["v1.1.0"])
    results = {r.name: r for r in sync_repositories()}
    assert results["headodd"].status == "synced", results  # its registered branch main still exists
    assert results["plain2"].status == "unchanged"
    assert ("a", "1.1.0") in q(env, "SELECT name, version FROM components WHERE is_release")


def test_a_repository_whose_only_branch_name_is_not_utf8_says_so(env, factory, register) -> None:
    from tests.sync.conftest import run_sync

    register(factory.create("onlyodd", files=tools_files(["a"]), tag="v1.0.0", branch="m\udcffx"))
    [result] = run_sync().results.values()
    assert result.status == "failed" and "no branch has a UTF-8 name" in (result.error or ""), result
    assert "refs/heads/m\\xffx" in (result.error or ""), result.error
