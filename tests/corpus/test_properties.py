"""Property tests that tests/core does not have yet.

* the lock reader on *mutated real lock files* (a lock made by the real resolver over real
  git repositories, then a line replaced, dropped, duplicated or a scalar swapped for a
  hostile value): it returns a lock that round-trips and pins only well-formed commits and
  URLs, or raises ``LockError`` naming the file — never anything else;
* the constraint parser: the canonical text of a constraint is a fixed point, and ``a || b``
  allows exactly what ``a`` or ``b`` allows;
* the three-way merge identities (nothing changed upstream → ours; nothing changed locally →
  theirs; both made the same change → that change, no conflict).
"""

from __future__ import annotations

import re
from typing import Any

import semver
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentforge.core.constraints import parse_constraint
from agentforge.core.lockfile import parse_lock, render_lock
from agentforge.core.merge import three_way_merge
from agentforge.errors import ConstraintError, LockError
from tests.lock.conftest import Library

SRC = "mutated/forge-lock.yaml"
HOSTILE = ["--upload-pack=touch /tmp/x", "../../etc", "ext::sh -c x", "\x00", "~" * 300, "-1", "1e309", "null",
           "[]", "{}", "*alias", "&anchor x", "!!python/object:os.system", "'", "\"", "https://u:p@h/x", "0" * 40,
           "G" * 40, "sha256:" + "0" * 64, "9" * 30]

_OBJECT_ID = re.compile(r"^([0-9a-f]{40}|[0-9a-f]{64})$")


def _real_lock(lib: Library) -> str:
    from agentforge.services.lock import resolve_root

    lib.repo("tools", {"a": ("1.0.0", {"b": "^1", "c": "~1.0"}), "b": "1.0.0", "c": "1.0.0"}, tag="v1.0.0")
    lib.sync()
    return resolve_root("a").text


def _mutate(text: str, op: str, index: int, hostile: str) -> str:
    lines = text.splitlines()
    i = index % len(lines)
    if op == "drop":
        del lines[i]
    elif op == "duplicate":
        lines.insert(i, lines[i])
    elif op == "value":
        key, sep, _ = lines[i].partition(":")
        lines[i] = f"{key}{sep} {hostile}" if sep else hostile
    elif op == "indent":
        lines[i] = "  " + lines[i]
    else:  # "truncate"
        lines = lines[:i]
    return "\n".join(lines) + "\n"


def test_lock_reader_on_mutated_real_locks(lib: Library) -> None:
    text = _real_lock(lib)
    original = parse_lock(text, source=SRC)

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(ops=st.lists(st.tuples(st.sampled_from(["drop", "duplicate", "value", "indent", "truncate"]),
                                  st.integers(0, 10_000), st.sampled_from(HOSTILE)), min_size=1, max_size=3))
    def check(ops: list[tuple[str, int, str]]) -> None:
        mutated = text
        for op, index, hostile in ops:
            mutated = _mutate(mutated, op, index, hostile)
        try:
            lock = parse_lock(mutated, source=SRC)
        except LockError as exc:
            assert exc.code == "LOCK_INVALID"
            assert exc.message.startswith(SRC), exc.message
            return
        assert parse_lock(render_lock(lock), source=SRC) == lock
        for pkg in lock.packages.values():
            assert _OBJECT_ID.match(pkg.commit) and _OBJECT_ID.match(pkg.tree)
            assert not pkg.repository.startswith("-") and "::" not in pkg.repository and "@" not in pkg.repository
            assert ".." not in pkg.component.split("/")

    check()
    assert parse_lock(text, source=SRC) == original  # the real lock itself reads back unchanged


_versions = st.builds(lambda a, b, c: f"{a}.{b}.{c}", st.integers(0, 5), st.integers(0, 5), st.integers(0, 5))
_partial = st.one_of(_versions, st.builds(lambda a, b: f"{a}.{b}", st.integers(0, 5), st.integers(0, 5)),
                     st.integers(0, 5).map(str))
_simple = st.one_of(
    st.builds(lambda op, v: f"{op}{v}", st.sampled_from(["", "=", ">", ">=", "<", "<=", "^", "~"]), _partial),
    st.builds(lambda a, b: f">={a} <{b}", _versions, _versions),
    st.just("*"),
)
_ranges = st.lists(_simple, min_size=1, max_size=3).map(" || ".join)
_probes = st.builds(semver.Version, st.integers(0, 6), st.integers(0, 6), st.integers(0, 6))


@settings(max_examples=300, deadline=None)
@given(text=_ranges, probes=st.lists(_probes, min_size=1, max_size=8))
def test_canonical_constraint_text_is_a_fixed_point(text: str, probes: list[semver.Version]) -> None:
    try:
        constraint = parse_constraint(text)
    except ConstraintError:
        return
    again = parse_constraint(str(constraint))
    assert str(again) == str(constraint)
    for probe in probes:
        assert again.allows_version(probe) == constraint.allows_version(probe)


@settings(max_examples=300, deadline=None)
@given(left=_simple, right=_simple, probes=st.lists(_probes, min_size=1, max_size=8))
def test_or_allows_exactly_the_union(left: str, right: str, probes: list[semver.Version]) -> None:
    try:
        a, b, both = parse_constraint(left), parse_constraint(right), parse_constraint(f"{left} || {right}")
    except ConstraintError:
        return
    for probe in probes:
        assert both.allows_version(probe) == (a.allows_version(probe) or b.allows_version(probe))


_keys = st.sampled_from(["a", "b", "c", "spec", "config"])
_docs = st.recursive(st.one_of(st.integers(-3, 3), st.text(max_size=3), st.booleans(), st.none()),
                     lambda inner: st.dictionaries(_keys, inner, max_size=3) | st.lists(inner, max_size=2),
                     max_leaves=10)
_mappings = st.dictionaries(_keys, _docs, max_size=4)


@settings(max_examples=300, deadline=None)
@given(base=_mappings, changed=_mappings)
def test_merge_identities(base: dict[str, Any], changed: dict[str, Any]) -> None:
    upstream_untouched = three_way_merge(base, changed, base)
    assert upstream_untouched.merged == changed and not upstream_untouched.conflicts
    local_untouched = three_way_merge(base, base, changed)
    assert local_untouched.merged == changed and not local_untouched.conflicts
    same_change = three_way_merge(base, changed, changed)
    assert same_change.merged == changed and not same_change.conflicts
