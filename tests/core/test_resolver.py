"""Resolver scenarios in the style of Poetry's solver tests: an in-memory index, a few lines each."""

from __future__ import annotations

import pytest

from agentforge.core.resolver import Candidate, Dependency, resolve
from agentforge.errors import ConstraintError, ResolutionError
from tests.core.resolver_helpers import REPO, MemoryIndex, check_resolution, key, root_deps, sha


@pytest.fixture
def index() -> MemoryIndex:
    return MemoryIndex()


def test_simple(index: MemoryIndex) -> None:
    index.add("a", "1.0.0")
    index.add("a", "1.2.0")
    index.add("a", "2.0.0")
    result = check_resolution(index, {"a": "^1.0"}, expect={"a": "1.2.0"})
    pkg = result.packages[key("a")]
    assert pkg.dependency_type == "direct"
    assert pkg.constraints == {"<root>": "^1.0"}
    assert pkg.resolution_path == ["<root>", key("a")]
    assert not pkg.optional
    assert result.skipped == []


def test_transitive(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"b": "^1"})
    index.add("b", "1.0.0", deps={"c": "~2.1"})
    index.add("b", "1.1.0", deps={"c": "~2.1"})
    index.add("c", "2.1.5")
    index.add("c", "2.2.0")
    result = check_resolution(index, {"a": "*"}, expect={"a": "1.0.0", "b": "1.1.0", "c": "2.1.5"})
    c = result.packages[key("c")]
    assert c.dependency_type == "transitive"
    assert c.resolution_path == ["<root>", key("a"), key("b"), key("c")]
    assert c.constraints == {key("b"): "~2.1"}


def test_diamond_picks_the_common_version(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"c": ">=1.1"})
    index.add("b", "1.0.0", deps={"c": "<1.3"})
    for v in ("1.0.0", "1.1.0", "1.2.0", "1.3.0"):
        index.add("c", v)
    result = check_resolution(index, {"a": "^1", "b": "^1"}, expect={"a": "1.0.0", "b": "1.0.0", "c": "1.2.0"})
    assert result.packages[key("c")].constraints == {key("a"): ">=1.1", key("b"): "<1.3"}
    assert len(result.packages[key("c")].resolution_path) == 3


def test_backtracking_to_an_older_version(index: MemoryIndex) -> None:
    index.add("a", "2.1.4", deps={"c": "^2.0"})  # highest a conflicts with the root's c
    index.add("a", "2.0.0", deps={"c": "^1.0"})
    index.add("c", "1.0.3")
    index.add("c", "2.0.1")
    check_resolution(index, {"a": "^2", "c": "^1"}, expect={"a": "2.0.0", "c": "1.0.3"})


def test_backtracking_through_a_transitive_conflict(index: MemoryIndex) -> None:
    index.add("a", "2.0.0", deps={"x": "^2"})
    index.add("a", "1.0.0", deps={"x": "^1"})
    index.add("x", "2.0.0", deps={"c": "^2"})
    index.add("x", "1.0.0", deps={"c": "^1"})
    index.add("b", "1.0.0", deps={"c": "^1"})
    index.add("c", "1.5.0")
    index.add("c", "2.5.0")
    check_resolution(index, {"a": "*", "b": "*"}, expect={"a": "1.0.0", "x": "1.0.0", "b": "1.0.0", "c": "1.5.0"})


def test_conflict_message_is_a_chain_a_person_can_act_on(index: MemoryIndex) -> None:
    index.add("a", "2.1.4", deps={"c": "~1.0"})
    index.add("b", "1.3.0", deps={"c": "^2.0"})
    index.add("c", "1.0.3")
    index.add("c", "2.0.1")
    with pytest.raises(ResolutionError) as info:
        resolve(root_dependencies=root_deps({"a": "^2.1", "b": "^1"}), index=index, root_label="root")
    err = info.value
    assert "root needs a ^2.1 → a 2.1.4 needs c ~1.0" in err.message
    assert "root needs b ^1 → b 1.3.0 needs c ^2.0" in err.message
    assert "c has 1.0.3, 2.0.1: nothing matches ~1.0 and ^2.0" in err.message
    assert "resolution failed" not in err.message
    assert err.code == "RESOLUTION_FAILED"
    assert err.hint and "relax" in err.hint and "~1.0" in err.hint
    (conflict,) = err.details["conflicts"]
    assert conflict["key"] == key("c")
    assert conflict["available"] == ["1.0.3", "2.0.1"]
    assert {r["declared_by"] for r in conflict["requirements"]} == {key("a"), key("b")}
    assert ["root", key("a"), key("c")] in [r["chain"] for r in conflict["requirements"]]


def test_conflict_lists_held_back_versions_and_kept_pins(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"c": "~1.2"})
    index.add("c", "1.0.3")
    index.add("c", "1.2.0", held_back="tag v1.2.0 moved from abc1234 to def5678")
    b = index.add("b", "1.0.0", deps={"c": "^1.0"})
    with pytest.raises(ResolutionError) as info:
        resolve(
            root_dependencies=root_deps({"a": "*", "b": "*"}),
            index=index,
            pins={key("b"): b.commit, key("c"): sha("x")},
        )
    err = info.value
    assert "1.2.0 held back: tag v1.2.0 moved from abc1234 to def5678" in err.message
    assert "c has 1.0.3: nothing matches ~1.2" in err.message
    assert "pin kept from the lock: c" in err.message
    assert err.hint and "held-back" in err.hint
    assert err.details["conflicts"][0]["held_back"][0]["reason"].startswith("tag v1.2.0 moved")


def test_held_back_versions_are_never_chosen(index: MemoryIndex) -> None:
    index.add("c", "1.0.0")
    index.add("c", "1.1.0", held_back="version 1.1.0 reused with different files")
    check_resolution(index, {"c": "^1"}, expect={"c": "1.0.0"})
    with pytest.raises(ResolutionError, match=r"1\.1\.0 held back: version 1\.1\.0 reused"):
        check_resolution(index, {"c": "=1.1.0"}, expect={})


def test_missing_repository_says_how_to_register_it(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"github.com/other/repo/x": "^1"})
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"a": "^1"}, expect={})
    err = info.value
    assert "a 1.0.0 needs x ^1" in err.message
    assert "no registered repository provides github.com/other/repo/x" in err.message
    assert err.hint == "agentforge repo add https://github.com/other/repo"


def test_pins_are_kept_while_they_satisfy(index: MemoryIndex) -> None:
    old = index.add("a", "1.0.0")
    index.add("a", "1.1.0")
    c_old = index.add("c", "2.0.0")
    index.add("c", "2.5.0")
    pins = {key("a"): old.commit, key("c"): c_old.commit}
    check_resolution(index, {"a": "^1", "c": "^2"}, expect={"a": "1.0.0", "c": "2.0.0"}, pins=pins)
    check_resolution(index, {"a": "^1", "c": "^2"}, expect={"a": "1.1.0", "c": "2.0.0"}, pins=pins, upgrade={key("a")})
    check_resolution(index, {"a": "^1", "c": "^2"}, expect={"a": "1.1.0", "c": "2.0.0"}, pins=pins, upgrade={"a"})
    check_resolution(index, {"a": "^1", "c": "^2"}, expect={"a": "1.1.0", "c": "2.5.0"}, pins=pins, upgrade=set())
    # A pin that no longer satisfies is dropped quietly: the constraint wins.
    check_resolution(index, {"a": ">=1.1", "c": "^2"}, expect={"a": "1.1.0", "c": "2.0.0"}, pins=pins)


def test_pinned_commit_may_be_upper_case(index: MemoryIndex) -> None:
    old = index.add("a", "1.0.0")
    index.add("a", "1.1.0")
    check_resolution(index, {"a": "^1"}, expect={"a": "1.0.0"}, pins={key("a"): old.commit.upper()})


def test_peer_satisfied_by_what_is_resolved(index: MemoryIndex) -> None:
    index.add("plugin", "1.0.0", peer={"host": "^2"})
    index.add("host", "2.3.0")
    result = check_resolution(index, {"plugin": "^1", "host": "^2"}, expect={"plugin": "1.0.0", "host": "2.3.0"})
    host = result.packages[key("host")]
    assert host.dependency_type == "direct"
    assert host.constraints == {"<root>": "^2", key("plugin"): "^2"}


def test_peer_is_never_pulled_in(index: MemoryIndex) -> None:
    index.add("plugin", "1.0.0", peer={"host": "^2"})
    index.add("host", "2.3.0")
    with pytest.raises(ResolutionError) as info:
        resolve(root_dependencies=root_deps({"plugin": "^1"}), index=index)
    err = info.value
    assert "<root> needs plugin ^1 → plugin 1.0.0 needs peer host ^2" in err.message
    assert "nothing in the resolution provides host" in err.message
    assert err.hint == "add host ^2 to the root's dependencies"
    assert err.details["needed_by"] == key("plugin")


def test_optional_peer_that_nobody_provides_is_fine(index: MemoryIndex) -> None:
    index.add("plugin", "1.0.0", deps={}, optional={})
    plugin = index.add("plugin", "1.1.0")
    object.__setattr__(
        plugin, "dependencies", (Dependency(key("host"), "^2", kind="peer", optional=True, declared_by=plugin.key),)
    )
    check_resolution(index, {"plugin": "^1"}, expect={"plugin": "1.1.0"})


def test_peer_constraint_steers_the_choice_of_an_already_needed_package(index: MemoryIndex) -> None:
    index.add("plugin", "1.0.0", peer={"host": "^1"})
    index.add("host", "1.4.0")
    index.add("host", "2.0.0")
    result = check_resolution(index, {"plugin": "*", "host": "*"}, expect={"plugin": "1.0.0", "host": "1.4.0"})
    assert result.packages[key("host")].constraints == {"<root>": "*", key("plugin"): "^1"}


def test_peer_version_mismatch(index: MemoryIndex) -> None:
    index.add("plugin", "1.0.0", peer={"host": "^1"})
    index.add("host", "1.4.0")
    index.add("host", "2.0.0")
    with pytest.raises(ResolutionError) as info:
        resolve(root_dependencies=root_deps({"plugin": "*", "host": "^2"}), index=index)
    err = info.value
    assert "plugin 1.0.0 needs peer host ^1" in err.message
    assert "<root> needs host ^2" in err.message
    assert "host has 1.4.0, 2.0.0: nothing matches" in err.message


def test_root_peer_dependencies_are_resolved_and_tagged(index: MemoryIndex) -> None:
    index.add("host", "2.0.0")
    result = resolve(root_dependencies=root_deps(peer={"host": "^2"}), index=index)
    assert result.packages[key("host")].dependency_type == "peer"


def test_dev_dependencies_only_with_include_dev(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", dev={"lint": "*"})  # a's own dev deps are never resolved
    index.add("tester", "1.0.0", deps={"fixture": "^1"})
    index.add("fixture", "1.0.0")
    index.add("lint", "1.0.0")
    deps = root_deps({"a": "^1"}, dev={"tester": "^1"})
    check_resolution(index, deps, expect={"a": "1.0.0"})
    result = check_resolution(
        index, deps, expect={"a": "1.0.0", "tester": "1.0.0", "fixture": "1.0.0"}, include_dev=True
    )
    assert result.packages[key("tester")].dependency_type == "dev"
    assert result.packages[key("fixture")].dependency_type == "dev"
    assert result.packages[key("a")].dependency_type == "direct"


def test_dev_package_also_needed_at_run_time_is_not_dev(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"fixture": "^1"})
    index.add("fixture", "1.0.0")
    deps = root_deps({"a": "^1"}, dev={"fixture": "*"})
    result = check_resolution(index, deps, expect={"a": "1.0.0", "fixture": "1.0.0"}, include_dev=True)
    assert result.packages[key("fixture")].dependency_type == "transitive"


def test_optional_dependency_taken_when_satisfiable(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", optional={"extra": "^1"})
    index.add("extra", "1.2.0")
    result = check_resolution(index, {"a": "^1"}, expect={"a": "1.0.0", "extra": "1.2.0"})
    assert result.packages[key("extra")].optional
    assert not result.packages[key("a")].optional
    assert result.skipped == []


def test_optional_dependency_skipped_when_it_conflicts(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", optional={"extra": "^1"})
    index.add("extra", "1.2.0", deps={"c": "^2"})
    index.add("c", "1.0.0")
    index.add("c", "2.0.0")
    result = check_resolution(index, {"a": "^1", "c": "^1"}, expect={"a": "1.0.0", "c": "1.0.0"})
    (skipped,) = result.skipped
    assert skipped.dependency.key == key("extra")
    assert skipped.declared_by == key("a")
    assert "extra 1.2.0 needs c ^2" in skipped.reason


def test_optional_dependency_on_an_unknown_repository_is_skipped(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", optional={"github.com/nowhere/repo/x": "^1"})
    result = check_resolution(index, {"a": "^1"}, expect={"a": "1.0.0"})
    (skipped,) = result.skipped
    assert "no registered repository provides github.com/nowhere/repo/x" in skipped.reason


def test_optional_root_dependency_skipped(index: MemoryIndex) -> None:
    index.add("extra", "1.0.0")
    result = check_resolution(
        index, root_deps({"extra": "^1"}, optional={"github.com/x/y/z": "*"}), expect={"extra": "1.0.0"}
    )
    assert [s.declared_by for s in result.skipped] == ["<root>"]


def test_cycle_is_reported_with_its_path(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"b": "^1"})
    index.add("b", "1.0.0", deps={"c": "^1"})
    index.add("c", "1.0.0", deps={"a": "^1"})
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"a": "^1"}, expect={})
    assert "dependency cycle: a 1.0.0 → b 1.0.0 → c 1.0.0 → a 1.0.0" in info.value.message
    assert info.value.details["cycle"] == [key("a"), key("b"), key("c"), key("a")]


def test_branch_tag_and_commit_constraints(index: MemoryIndex) -> None:
    index.add("a", "1.0.0")
    tip = index.add("a", "1.1.0", is_release=False, branches=["main"])
    index.add("b", "2.0.0", tags=["v2.0.0", "stable"])
    index.add("b", "2.1.0")
    pinned = index.add("c", "0.9.0")
    index.add("c", "1.0.0")
    result = check_resolution(
        index,
        {"a": "branch:main", "b": "tag:stable", "c": f"commit:{pinned.commit}"},
        expect={"a": "1.1.0", "b": "2.0.0", "c": "0.9.0"},
    )
    assert result.packages[key("a")].candidate.commit == tip.commit
    check_resolution(index, {"a": "main", "c": f"@{pinned.commit}"}, expect={"a": "1.1.0", "c": "0.9.0"})
    # A range never picks a branch tip, even a higher one.
    check_resolution(index, {"a": "*"}, expect={"a": "1.0.0"})
    with pytest.raises(ResolutionError, match=r"a has 1\.0\.0, 1\.1\.0 \(commit [0-9a-f]{12}\)"):
        check_resolution(index, {"a": "branch:develop"}, expect={})


def test_prereleases_only_when_asked_for(index: MemoryIndex) -> None:
    index.add("a", "2.1.0")
    index.add("a", "2.2.0-beta.1")
    check_resolution(index, {"a": "^2.1"}, expect={"a": "2.1.0"})
    check_resolution(index, {"a": "latest"}, expect={"a": "2.1.0"})
    check_resolution(index, {"a": ">=2.2.0-beta.1"}, expect={"a": "2.2.0-beta.1"})


def test_latest_means_the_highest_release(index: MemoryIndex) -> None:
    index.add("a", "1.0.0")
    index.add("a", "2.0.0")
    index.add("b", "1.0.0", deps={"a": "<2"})
    check_resolution(index, {"a": "latest"}, expect={"a": "2.0.0"})
    with pytest.raises(ResolutionError, match="nothing matches latest and <2"):
        check_resolution(index, {"a": "latest", "b": "*"}, expect={})


PSEUDO_OLD = "0.0.0-20261203101500-1a2b3c4d5e6f"
PSEUDO_NEW = "0.0.0-20261204042605-94f441e62148"


@pytest.mark.parametrize("text", ["*", "latest", "x", ">=*", "* || ^9"])
def test_no_version_picks_the_newest_prerelease_when_there_is_no_other_release(index: MemoryIndex, text: str) -> None:
    # Go's rule for `latest`: a component with only pre-releases (a catalog's pseudo-versions).
    index.add("a", PSEUDO_OLD)
    index.add("a", PSEUDO_NEW)
    index.add("b", "1.0.0-beta.1")
    index.add("b", "1.0.0-beta.2")
    check_resolution(index, {"a": text, "b": text}, expect={"a": PSEUDO_NEW, "b": "1.0.0-beta.2"})


def test_no_version_on_a_dependency_reaches_prereleases_too(index: MemoryIndex) -> None:
    index.add("app", "1.0.0", deps={"a": "*"})
    index.add("a", PSEUDO_NEW, deps={"b": "latest"})
    index.add("b", "0.1.0-rc.1")
    check_resolution(index, {"app": "^1"}, expect={"app": "1.0.0", "a": PSEUDO_NEW, "b": "0.1.0-rc.1"})


def test_no_version_prefers_any_release_that_is_not_a_prerelease(index: MemoryIndex) -> None:
    index.add("a", "0.1.0")
    index.add("a", "2.0.0-beta.1")
    index.add("a", PSEUDO_NEW)
    check_resolution(index, {"a": "*"}, expect={"a": "0.1.0"})
    check_resolution(index, {"a": "latest"}, expect={"a": "0.1.0"})


@pytest.mark.parametrize("text", ["^0.0", ">=0.0.0", "0.*", "<1", "~0.0.0"])
def test_a_range_that_names_a_version_never_takes_prereleases(index: MemoryIndex, text: str) -> None:
    index.add("a", PSEUDO_NEW)
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"a": text}, expect={})
    assert f"nothing matches {text}" in info.value.message
    assert info.value.hint == f"relax one of the constraints on a ({text})"


def test_no_version_with_a_range_on_the_same_prerelease_only(index: MemoryIndex) -> None:
    index.add("a", "1.0.0-beta.1")
    index.add("a", "1.0.0-beta.2")
    index.add("b", "1.0.0", deps={"a": ">=1.0.0-beta.1 <1.0.0-beta.2"})
    check_resolution(index, {"a": "*", "b": "*"}, expect={"a": "1.0.0-beta.1", "b": "1.0.0"})
    with pytest.raises(ResolutionError) as info:  # `latest` is exactly the newest one
        check_resolution(index, {"a": "latest", "b": "*"}, expect={})
    assert "nothing matches latest and >=1.0.0-beta.1 <1.0.0-beta.2" in info.value.message
    assert info.value.hint == "relax one of the constraints on a (latest, >=1.0.0-beta.1 <1.0.0-beta.2)"


def test_a_held_back_release_keeps_prereleases_out_and_the_hint_names_one(index: MemoryIndex) -> None:
    # The only release that is not a pre-release has a moved tag: no silent hand-over to a pre-release.
    index.add("a", "1.0.0", held_back="tag v1.0.0 moved from abc1234 to def5678")
    index.add("a", "1.1.0-rc.1")
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"a": "*"}, expect={})
    assert "relax" not in (info.value.hint or "")
    assert info.value.hint == ('fix or re-tag the held-back release(s) of a; or lock one of its pre-releases by '
                               'version: a@1.1.0-rc.1 (version: "1.1.0-rc.1" in a dependency)')
    check_resolution(index, {"a": "1.1.0-rc.1"}, expect={"a": "1.1.0-rc.1"})


def test_no_release_at_all_hint_names_a_reference_that_works(index: MemoryIndex) -> None:
    index.add("a", PSEUDO_OLD, is_release=False, commit="1" * 40)
    index.add("a", PSEUDO_NEW, is_release=False, branches=["main"])
    index.add("b", PSEUDO_OLD, is_release=False, commit="2" * 40)
    for name, ref in (("a", "branch:main"), ("b", "commit:" + "2" * 40)):
        with pytest.raises(ResolutionError) as info:
            check_resolution(index, {name: "*"}, expect={})
        assert info.value.hint == (f"{name} has no release, only commits (no release tag covers it): lock it by "
                                   f'reference, e.g. {name}@{ref} (version: "{ref}" in a dependency), or tag a '
                                   "release of it")
        check_resolution(index, {name: ref}, expect={name: PSEUDO_NEW if name == "a" else PSEUDO_OLD})


def test_bad_constraint_names_the_declaring_component(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"c": "^^1"})
    index.add("c", "1.0.0")
    with pytest.raises(ConstraintError) as info:
        check_resolution(index, {"a": "*"}, expect={})
    assert "'^^1'" in info.value.message and key("a") in info.value.message
    with pytest.raises(ConstraintError, match="declared by <root>"):
        check_resolution(index, {"a": "v1.0.0"}, expect={})


def test_component_root_is_itself_a_package(index: MemoryIndex) -> None:
    index.add("c", "1.0.0")
    index.add("c", "1.1.0")
    index.add("me", "0.9.0")  # other versions of the root's key are never chosen
    me = Candidate(
        key=key("me"), name="me", kind="Agent", version="1.0.0", commit=sha("me"), dependencies=root_deps({"c": "^1"})
    )
    result = resolve(root_dependencies=me.dependencies, index=index, root=me, root_label="me 1.0.0")
    assert set(result.packages) == {key("me"), key("c")}
    root_pkg = result.packages[key("me")]
    assert root_pkg.dependency_type == "root"
    assert root_pkg.candidate is me
    assert root_pkg.resolution_path == ["me 1.0.0"]
    c = result.packages[key("c")]
    assert c.dependency_type == "direct"
    assert c.constraints == {"me 1.0.0": "^1"}
    assert c.resolution_path == ["me 1.0.0", key("c")]


def test_dependency_back_on_the_component_root_is_a_cycle(index: MemoryIndex) -> None:
    me = Candidate(key=key("me"), name="me", kind="Agent", version="1.0.0", commit=sha("me"))
    index.add("c", "1.0.0", deps={"me": "^1"})
    with pytest.raises(ResolutionError, match=r"dependency cycle: <root> → c 1\.0\.0 → <root>"):
        resolve(root_dependencies=root_deps({"c": "^1"}), index=index, root=me)


def test_names_that_collide_are_shown_as_keys(index: MemoryIndex) -> None:
    index.add("github.com/one/repo/util", "1.0.0")
    index.add("github.com/two/repo/util", "2.0.0")
    index.add("a", "1.0.0", deps={"github.com/two/repo/util": "^1"})
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"github.com/one/repo/util": "^1", "a": "*"}, expect={})
    assert "a 1.0.0 needs github.com/two/repo/util ^1" in info.value.message
    assert "github.com/two/repo/util has 2.0.0" in info.value.message


def test_shortest_resolution_path_and_every_declarer(index: MemoryIndex) -> None:
    index.add("a", "1.0.0", deps={"b": "*"})
    index.add("b", "1.0.0", deps={"c": ">=1"})
    index.add("c", "1.0.0")
    result = check_resolution(index, {"a": "*", "c": "^1"}, expect={"a": "1.0.0", "b": "1.0.0", "c": "1.0.0"})
    c = result.packages[key("c")]
    assert c.resolution_path == ["<root>", key("c")]
    assert c.constraints == {"<root>": "^1", key("b"): ">=1"}
    assert list(result.packages) == sorted(result.packages)


@pytest.mark.slow
def test_large_chain_resolves_with_one_index_lookup_per_key(index: MemoryIndex) -> None:
    # 2,000 components × 20 versions, each depending on the next. No timing assert: this guards
    # against per-call work that grows with the graph (the index is asked once per key).
    n = 2000
    for i in range(n):
        for v in range(20):
            deps = {f"c{i + 1}": f"^1.{v // 2}"} if i + 1 < n else None
            index.add(f"c{i}", f"1.{v}.0", deps=deps)
    result = check_resolution(index, {"c0": "^1"}, expect={f"c{i}": "1.19.0" for i in range(n)})
    assert max(index.lookups.values()) == 1
    assert result.packages[key(f"c{n - 1}")].resolution_path[-1] == f"{REPO}/c{n - 1}"
    assert len(result.packages[key(f"c{n - 1}")].resolution_path) == n + 1


def test_a_range_conflict_lists_only_what_a_range_could_choose(index: MemoryIndex) -> None:
    """Commits no release tag covers are counted, not listed by version: "s has 1.0.0 (commit …),
    1.2.0: nothing matches 1.0.0" read as if 1.0.0 existed and did not match 1.0.0."""
    index.add("s", "1.0.0", held_back="tag v1.0.0 moved from abc1234 to def5678")
    index.add("s", "1.0.0", is_release=False, commit="1" * 40)
    index.add("s", "1.0.0", is_release=False, commit="2" * 40, branches=["main"])
    index.add("s", "1.2.0")
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"s": "1.0.0"}, expect={})
    msg = info.value.message
    assert "s has 1.2.0 and 2 commits no release tag covers: nothing matches 1.0.0" in msg, msg
    assert "1.0.0 held back: tag v1.0.0 moved" in msg and "(commit " not in msg
    with pytest.raises(ResolutionError) as info:  # a branch reference can choose a commit: listed as before
        check_resolution(index, {"s": "branch:develop"}, expect={})
    assert f"1.0.0 (commit {'1' * 12})" in info.value.message
    index.add("t", "1.0.0", is_release=False, commit="3" * 40)
    with pytest.raises(ResolutionError) as info:
        check_resolution(index, {"t": "^1"}, expect={})
    assert "t has no release (only 1 commit no release tag covers): nothing matches ^1" in info.value.message
