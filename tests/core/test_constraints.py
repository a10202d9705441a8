"""Every row of the FORMATS §3 constraint grammar, matching and not matching, plus properties."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st

from agentforge.core.constraints import (
    Constraint,
    TagVersion,
    latest_version,
    parse_constraint,
    parse_version,
    sort_key,
    version_from_tag,
)
from agentforge.errors import ConstraintError

SHA = "a1b2c3d4e5f6789012345678901234567890abcd"


@dataclass(frozen=True)
class Cand:
    version: str = "0.0.0"
    commit: str = "0" * 40
    tags: frozenset[str] = frozenset()
    branches: frozenset[str] = frozenset()
    is_release: bool = True


def release(version: str) -> Cand:
    return Cand(version=version, tags=frozenset({f"v{version}"}))


# (constraint, versions that match, versions that do not)
RANGE_ROWS: list[tuple[str, list[str], list[str]]] = [
    # exact
    ("2.1.0", ["2.1.0", "2.1.0+build.7"], ["2.1.1", "2.0.9", "2.1.0-rc.1"]),
    ("=2.1.0", ["2.1.0"], ["2.1.1", "3.0.0"]),
    ("= 2.1.0", ["2.1.0"], ["2.1.1"]),
    ("2.1.0-beta.1", ["2.1.0-beta.1"], ["2.1.0", "2.1.0-beta.2"]),
    # caret
    ("^2.1.0", ["2.1.0", "2.9.9", "2.1.0+x"], ["2.0.9", "3.0.0", "2.2.0-beta.1", "3.0.0-alpha"]),
    ("^2.1", ["2.1.0", "2.5.0"], ["2.0.0", "3.0.0"]),
    ("^2", ["2.0.0", "2.99.0"], ["1.9.9", "3.0.0"]),
    ("^0.2.3", ["0.2.3", "0.2.9"], ["0.2.2", "0.3.0", "1.0.0"]),
    ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2", "0.1.0"]),
    ("^0.2", ["0.2.0", "0.2.7"], ["0.3.0", "0.1.9"]),
    ("^0.0", ["0.0.0", "0.0.9"], ["0.1.0"]),
    ("^0", ["0.0.1", "0.9.0"], ["1.0.0"]),
    ("^2.1.0-beta.1", ["2.1.0-beta.1", "2.1.0-beta.2", "2.1.0", "2.4.0"], ["2.1.0-alpha", "2.2.0-beta.1", "3.0.0"]),
    # tilde
    ("~2.1.0", ["2.1.0", "2.1.9"], ["2.2.0", "2.0.9"]),
    ("~2.1", ["2.1.0", "2.1.5"], ["2.2.0"]),
    ("~2", ["2.0.0", "2.9.0"], ["3.0.0", "1.0.0"]),
    ("~0.2.3", ["0.2.3", "0.2.4"], ["0.3.0"]),
    # comparators, space / comma joined
    (">=2.1.0 <3.0.0", ["2.1.0", "2.9.0"], ["3.0.0", "2.0.0"]),
    (">=2.1.0, <3.0.0", ["2.5.0"], ["3.0.1"]),
    (">=2.1.0,<3.0.0", ["2.5.0"], ["1.0.0"]),
    (">= 2.1.0 , < 3.0.0", ["2.5.0"], ["3.0.0"]),
    (">2.1.0", ["2.1.1"], ["2.1.0"]),
    ("<2.1.0", ["2.0.9"], ["2.1.0", "2.1.0-rc.1"]),
    ("<=2.1.0", ["2.1.0"], ["2.1.1"]),
    ("!=2.0.1", ["2.0.0", "2.0.2"], ["2.0.1"]),
    (">=1.0.0 !=1.2.0 <2", ["1.1.0", "1.3.0"], ["1.2.0", "2.0.0"]),
    # partial versions
    (">2", ["3.0.0"], ["2.9.9", "2.0.0"]),
    (">=2", ["2.0.0"], ["1.9.9"]),
    ("<2", ["1.9.9"], ["2.0.0"]),
    ("<=1.4", ["1.4.9", "1.0.0"], ["1.5.0"]),
    (">1.4", ["1.5.0"], ["1.4.9"]),
    ("<1.4", ["1.3.9"], ["1.4.0"]),
    (">=1.4", ["1.4.0"], ["1.3.9"]),
    ("2.1", ["2.1.0", "2.1.7"], ["2.2.0"]),
    ("2", ["2.0.0", "2.7.1"], ["3.0.0"]),
    # OR
    ("^1.2 || ^2.0", ["1.2.0", "1.9.0", "2.3.0"], ["1.1.0", "3.0.0"]),
    ("1.0.0 || 3.0.0", ["1.0.0", "3.0.0"], ["2.0.0"]),
    ("<1 || >=3", ["0.5.0", "3.1.0"], ["1.0.0", "2.9.9"]),
    # wildcards
    ("2.*", ["2.0.0", "2.9.9"], ["3.0.0", "1.0.0", "2.1.0-beta.1"]),
    ("2.1.x", ["2.1.0", "2.1.9"], ["2.2.0"]),
    ("2.1.*", ["2.1.3"], ["2.0.0"]),
    ("2.x.x", ["2.4.4"], ["3.0.0"]),
    ("*", ["0.0.1", "9.9.9"], ["1.0.0-beta"]),
    ("x", ["1.0.0"], ["1.0.0-rc.1"]),
    ("X", ["1.0.0"], []),
    (">=*", ["1.0.0"], []),
    # the npm pre-release rule
    (">=2.2.0-beta.1 <3", ["2.2.0-beta.1", "2.2.0-beta.2", "2.2.0", "2.5.0"], ["2.3.0-alpha", "2.2.0-alpha"]),
    (">2.2.0-beta.1", ["2.2.0-beta.2", "2.2.0-rc.1", "2.3.0"], ["2.2.0-beta.1", "2.3.0-rc.1"]),
    ("^1.0.0 || >=2.0.0-rc.1 <2.1", ["1.5.0", "2.0.0-rc.2", "2.0.0"], ["1.6.0-beta", "2.0.0-beta"]),
]

INVALID = [
    "",
    "   ",
    "^",
    ">=",
    "v2.1.0",
    "V2.1.0",
    "01.2.3",
    "1.02.3",
    "1.2.3-",
    "1.2.3-01",
    "2.x.1",
    "x.1",
    "*.1",
    "2.1-beta",
    "!=2.1",
    ">*",
    "<*",
    "^1 ||",
    "|| ^1",
    "^1 || || ^2",
    "1.0.0,",
    ">=1.0.0<2.0.0",
    "1.0.0 - 2.0.0",
    "a b",
    "main branch",
    "commit:abc123",
    "@abc123",
    "commit:" + "g" * 40,
    "branch:",
    "branch:has space",
    "branch:a..b",
    "branch:ends/",
    "branch:x.lock",
    "tag:",
    "tag:bad~name",
    "feature..x",
    "^^1",
    "~>1.2",
    "1.2.3.4",
]


@pytest.mark.parametrize(("text", "good", "bad"), RANGE_ROWS, ids=[r[0] for r in RANGE_ROWS])
def test_range_rows(text: str, good: list[str], bad: list[str]) -> None:
    c = parse_constraint(text)
    assert c.kind == "range"
    assert c.text == text
    assert c.is_range
    for v in good:
        assert c.allows_version(semver.Version.parse(v)), f"{text} should allow {v}"
        assert c.matches(release(v)), f"{text} should match {v}"
    for v in bad:
        assert not c.allows_version(semver.Version.parse(v)), f"{text} should not allow {v}"
        assert not c.matches(release(v)), f"{text} should not match {v}"


@pytest.mark.parametrize("text", ["^2.1.0", "*", "latest", "2.1.0"])
def test_range_kinds_only_match_releases(text: str) -> None:
    c = parse_constraint(text)
    tip = Cand(version="2.1.0", branches=frozenset({"main"}), is_release=False)
    assert not c.matches(tip)
    assert c.matches(release("2.1.0"))


def test_range_on_an_unparseable_candidate_version_does_not_match() -> None:
    assert not parse_constraint("*").matches(Cand(version="not-a-version"))


def test_latest() -> None:
    c = parse_constraint("latest")
    assert c.kind == "latest"
    assert c.is_range
    assert c.matches(release("9.0.0"))
    assert not c.matches(release("9.1.0-beta.1"))
    assert c.allows_version(semver.Version.parse("1.0.0"))
    assert not c.allows_version(semver.Version.parse("1.0.0-rc.1"))
    assert parse_constraint("  latest ").kind == "latest"


@pytest.mark.parametrize(("text", "expected"), [
    ("*", True), ("x", True), ("X.x", True), (">=*", True), ("latest", True), ("^1 || *", True),
    ("^0.0", False), (">=0.0.0", False), ("0.*", False), ("1.0.0", False), ("main", False),
    ("branch:main", False), ("tag:v1.0.0", False), ("commit:" + "a" * 40, False),
])
def test_names_no_version(text: str, expected: bool) -> None:
    assert parse_constraint(text).names_no_version is expected


def test_only_prereleases_opens_constraints_that_name_no_version() -> None:
    pseudo = "0.0.0-20261204042605-94f441e62148"
    for text in ("*", "latest", "x"):
        c = parse_constraint(text)
        assert not c.matches(release(pseudo))
        assert c.matches(release(pseudo), only_prereleases=True)
        assert c.allows_version(semver.Version.parse(pseudo), only_prereleases=True)
        assert not c.matches(Cand(version=pseudo, is_release=False), only_prereleases=True)  # still releases only
    for text in ("^0.0", ">=0.0.0", "0.*", "<1"):
        assert not parse_constraint(text).matches(release(pseudo), only_prereleases=True), text


@pytest.mark.parametrize(("versions", "expected"), [
    (["1.0.0", "2.0.0-beta.1", "0.9.0"], "1.0.0"),
    (["0.0.0-20261203101500-1a2b3c4d5e6f", "0.0.0-20261204042605-94f441e62148"],
     "0.0.0-20261204042605-94f441e62148"),
    (["1.0.0-rc.1", "1.0.0-rc.2", "junk"], "1.0.0-rc.2"),
    (["junk"], None),
    ([], None),
])
def test_latest_version(versions: list[str], expected: str | None) -> None:
    assert latest_version(versions) == expected


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("branch:main", "main"),
        ("main", "main"),
        ("develop", "develop"),
        ("feature/new-thing", "feature/new-thing"),
        ("branch:release/2.x", "release/2.x"),
        ("branch:2.x", "2.x"),
        ("_wip", "_wip"),
        ("branch: main", "main"),
    ],
)
def test_branch(text: str, ref: str) -> None:
    c = parse_constraint(text)
    assert (c.kind, c.ref) == ("branch", ref)
    assert not c.is_range
    assert c.matches(Cand(version="2.1.0", branches=frozenset({ref, "other"}), is_release=False))
    assert c.matches(Cand(version="2.1.0", branches=frozenset({ref})))  # a tip that is also a release
    assert not c.matches(Cand(version="2.1.0", branches=frozenset({"other"})))
    assert not c.matches(release("2.1.0"))
    assert not c.allows_version(semver.Version.parse("2.1.0"))


def test_tag() -> None:
    c = parse_constraint("tag:v2.1.0")
    assert (c.kind, c.ref) == ("tag", "v2.1.0")
    assert c.matches(release("2.1.0"))
    assert c.matches(Cand(version="7.0.0", tags=frozenset({"v2.1.0"})))  # the tag decides, not the version
    assert not c.matches(release("2.1.1"))
    assert not c.matches(Cand(version="2.1.0", tags=frozenset({"2.1.0"})))
    assert parse_constraint("tag:salesforce-lookup@2.1.0").ref == "salesforce-lookup@2.1.0"


@pytest.mark.parametrize("text", [f"commit:{SHA}", f"@{SHA}", f"commit:{SHA.upper()}", f"@{SHA.upper()}"])
def test_commit(text: str) -> None:
    c = parse_constraint(text)
    assert (c.kind, c.ref) == ("commit", SHA)
    assert c.matches(Cand(commit=SHA, is_release=False))
    assert c.matches(Cand(commit=SHA.upper()))
    assert not c.matches(Cand(commit="f" * 40))


@pytest.mark.parametrize("text", INVALID)
def test_invalid_constraints_name_text_and_declarer(text: str) -> None:
    with pytest.raises(ConstraintError) as info:
        parse_constraint(text, declared_by="github.com/acme/crm/salesforce-lookup")
    err = info.value
    assert repr(text) in err.message
    assert "declared by github.com/acme/crm/salesforce-lookup" in err.message
    assert err.hint
    assert err.code == "CONSTRAINT_INVALID"
    assert err.details["declared_by"] == "github.com/acme/crm/salesforce-lookup"


def test_v_prefix_hint_says_what_to_write() -> None:
    with pytest.raises(ConstraintError) as info:
        parse_constraint("v2.1.0")
    assert "2.1.0" in (info.value.hint or "") and "tag:v2.1.0" in (info.value.hint or "")


def test_non_string_constraint() -> None:
    with pytest.raises(ConstraintError, match="not a string"):
        parse_constraint(2.1, declared_by="x")  # type: ignore[arg-type]


def test_constraint_is_frozen_and_keeps_declarer_out_of_equality() -> None:
    a = parse_constraint("^1.2", declared_by="a")
    b = parse_constraint("^1.2", declared_by="b")
    assert a == b and a.declared_by == "a" and b.declared_by == "b"
    assert str(a) == "^1.2"
    with pytest.raises(AttributeError):
        a.text = "x"  # type: ignore[misc]
    assert isinstance(a, Constraint)


def test_build_metadata_is_ignored_in_comparators() -> None:
    assert parse_constraint(">1.0.0+b1").allows_version(semver.Version.parse("1.0.1"))
    assert not parse_constraint(">1.0.0+b1").allows_version(semver.Version.parse("1.0.0+b2"))
    assert parse_constraint("=1.0.0+b1").allows_version(semver.Version.parse("1.0.0+zzz"))


# -- versions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["0.0.0", "2.1.0", "2.1.0-beta.1", "2.1.0+build.5", "1.0.0-rc.1+x.y"])
def test_parse_version_strict(text: str) -> None:
    assert str(parse_version(text)) == text


@pytest.mark.parametrize("text", ["v2.1.0", "2.1", "2", "01.0.0", "2.1.0-", " 2.1.0", "latest", ""])
def test_parse_version_rejects(text: str) -> None:
    with pytest.raises(ConstraintError) as info:
        parse_version(text, where="components/a/component.yaml: metadata.version")
    assert repr(text) in info.value.message
    assert "component.yaml" in info.value.message


def test_sort_key_orders_by_precedence_ignoring_build() -> None:
    texts = ["1.0.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta", "0.9.0", "1.0.1", "junk", "10.0.0", "2.0.0"]
    assert sorted(texts, key=sort_key) == [
        "junk",
        "0.9.0",
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-beta",
        "1.0.0",
        "1.0.1",
        "2.0.0",
        "10.0.0",
    ]
    assert sort_key("1.0.0+a") == sort_key("1.0.0+b") == sort_key("1.0.0")


@pytest.mark.parametrize(
    ("tag", "component", "expected"),
    [
        ("v2.1.0", None, TagVersion(None, semver.Version(2, 1, 0))),
        ("2.1.0", None, TagVersion(None, semver.Version(2, 1, 0))),
        ("v2.1.0-rc.1", None, TagVersion(None, semver.Version.parse("2.1.0-rc.1"))),
        ("refs/tags/v2.1.0", None, TagVersion(None, semver.Version(2, 1, 0))),
        ("v2.1.0", "lookup", TagVersion(None, semver.Version(2, 1, 0))),  # repo-wide tags apply to all
        ("lookup@2.1.0", None, TagVersion("lookup", semver.Version(2, 1, 0))),
        ("lookup@2.1.0", "lookup", TagVersion("lookup", semver.Version(2, 1, 0))),
        ("lookup/v2.1.0", "lookup", TagVersion("lookup", semver.Version(2, 1, 0))),
        ("sales.prompt-v2/v1.0.0", None, TagVersion("sales.prompt-v2", semver.Version(1, 0, 0))),
        ("lookup@2.1.0", "other", None),
        ("lookup/v2.1.0", "other", None),
        ("v2.1", None, None),
        ("release-2024", None, None),
        ("lookup@latest", None, None),
        ("lookup@", None, None),
        ("Lookup@1.0.0", None, None),
        ("vv1.0.0", None, None),
        ("", None, None),
    ],
)
def test_version_from_tag(tag: str, component: str | None, expected: TagVersion | None) -> None:
    got = version_from_tag(tag, component)
    assert got == expected
    if got is not None:
        assert got.is_repository_wide == (got.component is None)


# -- properties ---------------------------------------------------------------------------------


@given(st.text(max_size=60))
def test_parse_never_raises_anything_but_constraint_error(text: str) -> None:
    try:
        c = parse_constraint(text, declared_by="fuzz")
    except ConstraintError:
        return
    c.matches(release("1.2.3"))
    c.allows_version(semver.Version(1, 2, 3))


_GRAMMAR_PIECE = st.sampled_from(
    [
        "^",
        "~",
        ">=",
        ">",
        "<=",
        "<",
        "=",
        "!=",
        "",
        " ",
        ",",
        "||",
        "*",
        "x",
        ".",
        "-",
        "+",
        "0",
        "1",
        "2",
        "10",
        "beta",
        "rc.1",
        "v",
        "main",
        "branch:",
        "tag:",
        "@",
        "commit:",
        "latest",
    ]
)


@given(st.lists(_GRAMMAR_PIECE, max_size=12).map("".join))
def test_grammar_shaped_text_never_raises_anything_but_constraint_error(text: str) -> None:
    try:
        parse_constraint(text)
    except ConstraintError:
        pass


_versions = st.builds(
    semver.Version,
    st.integers(0, 4),
    st.integers(0, 4),
    st.integers(0, 4),
    st.one_of(st.none(), st.sampled_from(["alpha", "beta.1", "rc.2", "0"])),
)


def _next_major_rule(v: semver.Version) -> str:
    if v.major > 0:
        return f"{v.major + 1}.0.0"
    if v.minor > 0:
        return f"0.{v.minor + 1}.0"
    return f"0.0.{v.patch + 1}"


@given(_versions, _versions)
def test_caret_equals_its_expansion(base: semver.Version, probe: semver.Version) -> None:
    caret = parse_constraint(f"^{base}")
    expanded = parse_constraint(f">={base} <{_next_major_rule(base)}")
    assert caret.allows_version(probe) == expanded.allows_version(probe)


@given(_versions, _versions)
def test_tilde_equals_its_expansion(base: semver.Version, probe: semver.Version) -> None:
    tilde = parse_constraint(f"~{base}")
    expanded = parse_constraint(f">={base}, <{base.major}.{base.minor + 1}.0")
    assert tilde.allows_version(probe) == expanded.allows_version(probe)


@given(_versions)
def test_prerelease_only_matches_ranges_naming_the_same_patch(probe: semver.Version) -> None:
    c = parse_constraint(">=0.0.0 <99.0.0")
    assert c.allows_version(probe) == (probe.prerelease is None)
