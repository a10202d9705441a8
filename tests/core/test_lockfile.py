"""forge-lock.yaml: deterministic rendering, strict reading, content hash, conflict markers."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentforge.core.documents import DependencySpec
from agentforge.core.lockfile import (
    LockedPackage,
    LockFile,
    LockPin,
    LockRoot,
    compute_content_hash,
    has_conflict_markers,
    package_key,
    parse_lock,
    read_lock_with_conflicts,
    render_lock,
    split_conflict_sides,
)
from agentforge.core.yamlio import canonical_json
from agentforge.errors import LockError

SRC = "forge-lock.yaml"
C1 = "a1b2c3d4e5f6789012345678901234567890abcd"
C2 = "1234567890123456789012345678901234567890"  # all digits: must stay a string in YAML
TREE = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
SUM = "sha256:" + "0" * 64


def package(
    repository: str, component: str, commit: str = C1, version: str = "2.1.3", **extra: object
) -> LockedPackage:
    return LockedPackage(
        repository=repository,
        component=component,
        kind="Tool",
        version=version,
        commit=commit,
        tree=TREE,
        checksum=SUM,
        dependency_type="direct",
        constraints={"<root>": "^2.1.0"},
        resolution_path=["<root>", package_key(repository, component)],
        **extra,  # type: ignore[arg-type]
    )


def lock_of(*packages: LockedPackage) -> LockFile:
    return LockFile(
        root=LockRoot(kind="Composition", name="sales-stack", version="1.0.0"),
        content_hash="sha256:" + "a" * 64,
        packages={p.key: p for p in packages},
    )


EXAMPLE = lock_of(
    package("https://github.com/company/crm-tools", "salesforce-lookup"),
    package("file:///srv/git/auth", "oauth-handler", commit=C2, version="1.2.0"),
    package("git@git.example.com:g/sub/r.git", "z-tool", verified=True, signing_key="ABC123"),
)


def test_render_is_sorted_lf_and_stable() -> None:
    text = render_lock(EXAMPLE)
    assert text == render_lock(lock_of(*reversed(list(EXAMPLE.packages.values()))))
    assert text.endswith("\n") and "\r" not in text
    keys = [line.split(":")[0] for line in text.splitlines() if not line.startswith(" ")]
    assert keys == sorted(keys) == ["content_hash", "lockfile_version", "packages", "root"]
    assert text.index("file:///srv/git/auth/oauth-handler") < text.index("git.example.com/g/sub/r/z-tool")
    assert text.index("git.example.com/g/sub/r/z-tool") < text.index("github.com/company/crm-tools/salesforce-lookup")
    assert "verified: true" in text and text.count("signing_key") == 1  # only where set
    assert parse_lock(text, source=SRC) == EXAMPLE
    assert f"commit: '{C2}'" in text


def test_package_keys() -> None:
    assert package_key("https://github.com/company/crm-tools", "x") == "github.com/company/crm-tools/x"
    assert package_key("git@github.com:company/crm-tools.git", "x") == "github.com/company/crm-tools/x"
    assert package_key("file:///srv/a", "x") == "file:///srv/a/x"


GOOD_PKG = (
    "    repository: https://github.com/o/r\n    component: c\n    kind: Tool\n    version: 1.0.0\n"
    f"    commit: {C1}\n    tree: {TREE}\n    checksum: '{SUM}'\n    dependency_type: direct\n"
)
HEADER = f"lockfile_version: 1\nroot: {{kind: Composition, name: s, version: 1.0.0}}\ncontent_hash: '{SUM}'\n"

BAD_LOCKS = [
    (
        "wrong version",
        HEADER.replace("lockfile_version: 1", "lockfile_version: 2") + "packages: {}\n",
        "lockfile_version: unsupported lock file version 2",
    ),
    (
        "missing version",
        HEADER.replace("lockfile_version: 1\n", "") + "packages: {}\n",
        "lockfile_version: is required",
    ),
    (
        "short commit",
        HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG.replace(C1, "abc123"),
        "packages.github.com/o/r/c.commit: 'abc123' is not a full",
    ),
    ("upper-case commit", HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG.replace(C1, C1.upper()), ".commit:"),
    (
        "missing tree",
        HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG.replace(f"    tree: {TREE}\n", ""),
        ".tree: is required",
    ),
    ("bad checksum", HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG.replace(SUM, "md5:x"), ".checksum:"),
    (
        "bad dependency type",
        HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG.replace("direct", "sideways"),
        ".dependency_type: 'sideways' is not allowed",
    ),
    (
        "key mismatch",
        HEADER + "packages:\n  github.com/o/r/other:\n" + GOOD_PKG,
        "packages.github.com/o/r/other: key does not match",
    ),
    (
        "credentials in url",
        HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG.replace("https://", "https://tok:x@"),
        "must not contain credentials",
    ),
    (
        "non-normalised url",
        HEADER
        + "packages:\n  github.com/o/r/c:\n"
        + GOOD_PKG.replace("https://github.com/o/r", "https://github.com/o/r.git"),
        "not in normalised form",
    ),
    ("unknown field", HEADER + "packages: {}\nwhen: today\n", "when: unknown field"),
    ("missing root", f"lockfile_version: 1\ncontent_hash: '{SUM}'\n", "root: is required"),
    ("not yaml", "lockfile_version: [1\n", "invalid YAML"),
    ("not a mapping", "- 1\n", "expected a mapping"),
    (
        "conflict markers",
        HEADER + "<<<<<<< HEAD\npackages: {}\n=======\npackages: {}\n>>>>>>> other\n",
        "conflict markers",
    ),
]


@pytest.mark.parametrize(("label", "text", "needle"), BAD_LOCKS, ids=[b[0] for b in BAD_LOCKS])
def test_bad_locks_name_the_file_and_field(label: str, text: str, needle: str) -> None:
    with pytest.raises(LockError) as info:
        parse_lock(text, source=SRC)
    assert info.value.code == "LOCK_INVALID"
    assert info.value.message.startswith(SRC)
    assert needle in info.value.message
    assert "tok:x" not in info.value.message


def test_good_minimal_lock_parses() -> None:
    lock = parse_lock(HEADER + "packages:\n  github.com/o/r/c:\n" + GOOD_PKG, source=SRC)
    assert lock.pins() == {"github.com/o/r/c": LockPin(C1, "1.0.0")}


def test_content_hash_shape_is_documented_exactly() -> None:
    root = {"apiVersion": "forge.dev/v1", "kind": "Composition", "metadata": {"name": "s", "version": "1.0.0"}}
    spec = DependencySpec(component="a", group="tools", version="^1.0.0")
    expected_payload = {
        "constraints": sorted([spec.model_dump(mode="json"), "--dev"], key=canonical_json),
        "lockfile_version": 1,
        "root": root,
    }
    expected = "sha256:" + hashlib.sha256(canonical_json(expected_payload).encode()).hexdigest()
    assert compute_content_hash(root, [spec, "--dev"]) == expected
    assert compute_content_hash(root, ["--dev", spec]) == expected  # order does not matter
    assert compute_content_hash(root, [spec]) != expected
    changed = {**root, "spec": {"configuration": {"x": 1}}}
    assert compute_content_hash(changed, [spec, "--dev"]) != expected


# --------------------------------------------------------------------------- conflicts

OURS_PIN = "1111111111111111111111111111111111111111"
THEIRS_PIN = "2222222222222222222222222222222222222222"


def _conflicted(diff3: bool) -> str:
    shared = lock_of(
        package("https://github.com/o/a", "same"),
        package("https://github.com/o/b", "moved", commit=OURS_PIN),
    )
    theirs = lock_of(
        package("https://github.com/o/a", "same"),
        package("https://github.com/o/b", "moved", commit=THEIRS_PIN),
        package("https://github.com/o/c", "only-theirs"),
    )
    ours_lines = render_lock(shared).splitlines(keepends=True)
    theirs_lines = render_lock(theirs).splitlines(keepends=True)
    # A whole-file conflict is the worst case git can leave; both sides are complete.
    base = ["||||||| base\n", "lockfile_version: 1\n"] if diff3 else []
    return "".join(["<<<<<<< HEAD\n", *ours_lines, *base, "=======\n", *theirs_lines, ">>>>>>> feature\n"])


@pytest.mark.parametrize("diff3", [False, True])
def test_conflicted_lock_keeps_agreed_pins(diff3: bool) -> None:
    text = _conflicted(diff3)
    assert has_conflict_markers(text)
    result = read_lock_with_conflicts(text, source=SRC)
    assert result.conflicted and result.lock is None
    assert result.pins == {"github.com/o/a/same": LockPin(C1, "2.1.3")}


def test_conflict_inside_one_package_hunk() -> None:
    text = render_lock(lock_of(package("https://github.com/o/a", "same"), package("https://github.com/o/b", "moved")))
    line = f"    commit: {C1}\n"
    marker_index = text.rindex(line)  # the second package (sorted: o/a then o/b)
    conflicted = (
        text[:marker_index]
        + f"<<<<<<< HEAD\n    commit: {OURS_PIN}\n=======\n    commit: {THEIRS_PIN}\n>>>>>>> theirs\n"
        + text[marker_index + len(line) :]
    )
    result = read_lock_with_conflicts(conflicted, source=SRC)
    assert result.conflicted
    assert set(result.pins) == {"github.com/o/a/same"}


def test_conflicted_with_broken_sides_reports_problems_without_raising() -> None:
    text = "<<<<<<< HEAD\npackages: [oops\n=======\n: : :\n>>>>>>> x\n"
    result = read_lock_with_conflicts(text, source=SRC)
    assert result.conflicted and result.pins == {} and result.problems
    assert all(problem.startswith(SRC) for problem in result.problems)


def test_unconflicted_read_is_parse_lock() -> None:
    result = read_lock_with_conflicts(render_lock(EXAMPLE), source=SRC)
    assert not result.conflicted and result.lock == EXAMPLE and result.pins == EXAMPLE.pins()
    with pytest.raises(LockError):
        read_lock_with_conflicts("lockfile_version: 7\n", source=SRC)


def test_split_sides() -> None:
    ours, theirs = split_conflict_sides("a\n<<<<<<< x\nb\n||||||| base\nc\n=======\nd\n>>>>>>> y\ne\n")
    assert (ours, theirs) == ("a\nb\ne\n", "a\nd\ne\n")


# --------------------------------------------------------------------------- properties

_names = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}", fullmatch=True)
_hex40 = st.text(alphabet="0123456789abcdef", min_size=40, max_size=40)
_versions = st.tuples(st.integers(0, 999), st.integers(0, 999), st.integers(0, 999)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}"
)
_repos = st.sampled_from(
    [
        "https://github.com/o/r",
        "git@git.example.com:g/s/r.git",
        "file:///srv/x y".replace(" ", "_"),
        "https://h.io:8443/a/b",
    ]
)
_text = st.text(max_size=30)


@st.composite
def _packages(draw: st.DrawFn) -> LockedPackage:
    repository = draw(_repos)
    component = draw(_names)
    return LockedPackage(
        repository=repository,
        component=component,
        kind=draw(st.sampled_from(["Tool", "Prompt", "Agent"])),
        version=draw(_versions),
        commit=draw(_hex40),
        tree=draw(_hex40),
        checksum="sha256:" + draw(_hex40) + draw(st.text(alphabet="0123456789abcdef", min_size=24, max_size=24)),
        dependency_type=draw(st.sampled_from(["root", "direct", "transitive", "peer", "dev"])),
        optional=draw(st.booleans()),
        constraints=draw(st.dictionaries(_text, _text, max_size=3)),
        resolution_path=draw(st.lists(_text, max_size=4)),
        verified=draw(st.none() | st.booleans()),
        signing_key=draw(st.none() | _text),
    )


@st.composite
def _locks(draw: st.DrawFn) -> LockFile:
    packages = draw(st.lists(_packages(), max_size=5))
    return LockFile(
        root=LockRoot(kind=draw(st.sampled_from(["Tool", "Composition"])), name=draw(_names), version=draw(_versions)),
        content_hash="sha256:" + draw(_hex40) + "0" * 24,
        packages={p.key: p for p in packages},
    )


@settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(_locks())
def test_render_parse_render_is_stable(lock: LockFile) -> None:
    text = render_lock(lock)
    again = parse_lock(text, source=SRC)
    assert again == lock
    assert render_lock(again) == text


_marker = st.sampled_from(["<<<<<<< HEAD", "=======", ">>>>>>> other", "||||||| base", "<<<<<<<", ">>>>>>>"])
_line = st.one_of(_marker, st.text(alphabet=string.printable, max_size=40))


@settings(max_examples=300, deadline=None)
@given(lock=_locks(), lines=st.lists(_line, max_size=12), positions=st.lists(st.integers(0, 200), max_size=6))
def test_conflict_marker_files_never_raise(lock: LockFile, lines: list[str], positions: list[int]) -> None:
    base = render_lock(lock).splitlines()
    for position, marker in zip(positions, ["<<<<<<< HEAD", "=======", ">>>>>>> x", *lines], strict=False):
        base.insert(position % (len(base) + 1), marker)
    text = "\n".join([*base, "<<<<<<< HEAD", *lines]) + "\n"
    result = read_lock_with_conflicts(text, source=SRC)
    assert result.conflicted
    assert result.lock is None
    for key, pin in result.pins.items():
        assert len(pin.commit) in (40, 64) and key


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_give_lock_errors_only(data: bytes) -> None:
    try:
        read_lock_with_conflicts(data, source=SRC)
    except LockError as exc:
        assert exc.message.startswith(SRC)


def test_conflict_markers_in_bytes_are_detected_too() -> None:
    data = _conflicted(diff3=False).encode()
    with pytest.raises(LockError, match="conflict markers"):
        parse_lock(data, source=SRC)
    assert read_lock_with_conflicts(data, source=SRC).conflicted
