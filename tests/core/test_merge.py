"""The pure three-way merge: examples, then the invariant over random edits (hypothesis)."""

from __future__ import annotations

import copy
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from agentforge.core.deepmerge import get_path
from agentforge.core.merge import (
    MISSING,
    diff_definitions,
    has_conflict_markers,
    parse_rendered_path,
    render_path,
    three_way_merge,
)

BASE = {"spec": {"config": {"timeout": 30, "retries": 1}, "tags": ["a"]}, "metadata": {"name": "x"}}


def test_disjoint_changes_merge_cleanly() -> None:
    ours = copy.deepcopy(BASE)
    ours["spec"]["config"]["timeout"] = 45
    theirs = copy.deepcopy(BASE)
    theirs["spec"]["config"]["retries"] = 3
    theirs["spec"]["new"] = True
    result = three_way_merge(BASE, ours, theirs)
    assert result.clean
    assert result.merged["spec"]["config"] == {"timeout": 45, "retries": 3}
    assert result.merged["spec"]["new"] is True


def test_same_field_changed_differently_is_a_conflict_keeping_both() -> None:
    ours = copy.deepcopy(BASE)
    ours["spec"]["config"]["timeout"] = 45
    theirs = copy.deepcopy(BASE)
    theirs["spec"]["config"]["timeout"] = 60
    result = three_way_merge(BASE, ours, theirs)
    [conflict] = result.conflicts
    assert conflict.path == ("spec", "config", "timeout")
    assert (conflict.base, conflict.ours, conflict.theirs) == (30, 45, 60)
    assert result.merged["spec"]["config"]["timeout"] == 45  # the local value stays in place


def test_delete_versus_modify_conflicts_and_lists_are_leaves() -> None:
    ours = copy.deepcopy(BASE)
    del ours["spec"]["config"]
    ours["spec"]["tags"] = ["a", "b"]
    theirs = copy.deepcopy(BASE)
    theirs["spec"]["config"]["timeout"] = 60
    theirs["spec"]["tags"] = ["a", "c"]
    result = three_way_merge(BASE, ours, theirs)
    paths = {c.path: c for c in result.conflicts}
    assert paths[("spec", "config")].ours is MISSING  # deleted locally, changed upstream
    assert paths[("spec", "config")].theirs == {"timeout": 60, "retries": 1}
    assert paths[("spec", "tags")].theirs == ["a", "c"]


def test_diff_and_paths_with_dotted_keys() -> None:
    new = copy.deepcopy(BASE)
    new["spec"]["crm.lookup"] = {"x": 1}
    del new["spec"]["tags"]
    new["spec"]["config"]["timeout"] = True
    changes = {c.field_path: c.change_type for c in diff_definitions(BASE, new)}
    assert changes == {'spec."crm.lookup"': "CREATE", "spec.tags": "DELETE", "spec.config.timeout": "UPDATE"}
    assert parse_rendered_path(render_path(("spec", "crm.lookup", "x"))) == ("spec", "crm.lookup", "x")
    assert get_path({"spec": {"crm.lookup": {"x": 1}}}, render_path(("spec", "crm.lookup", "x"))) == 1


def test_conflict_markers() -> None:
    assert has_conflict_markers("a\n<<<<<<< local\nx\n=======\ny\n>>>>>>> upstream\n")
    assert not has_conflict_markers("a\n=======\n")


# --- the invariant -------------------------------------------------------------------------------

KEYS = st.sampled_from(["a", "b", "c", "d.e"])
LEAVES = st.one_of(st.integers(-3, 3), st.booleans(), st.none(), st.text("xy", max_size=2),
                   st.lists(st.integers(0, 2), max_size=2))
DOCS = st.recursive(LEAVES, lambda children: st.dictionaries(KEYS, children, max_size=3), max_leaves=8)
PATHS = st.lists(KEYS, min_size=1, max_size=3).map(tuple)


def _apply(doc: dict[str, Any], edits: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    """Random edits: set a value at a path (creating mappings) or delete it (value MISSING)."""
    out = copy.deepcopy(doc)
    for path, value in edits:
        node: Any = out
        for key in path[:-1]:
            if not isinstance(node.get(key), dict):
                node[key] = {}
            node = node[key]
        if value is MISSING:
            node.pop(path[-1], None)
        else:
            node[path[-1]] = copy.deepcopy(value)
    return out


EDITS = st.lists(st.tuples(PATHS, st.one_of(LEAVES, st.just(MISSING), DOCS)), max_size=4)


def _strict(a: Any, b: Any) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_strict(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_strict(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _leaf_changes(old: Any, new: Any, path: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Paths of changed leaves; a mapping that appeared counts as each of its leaves."""
    if old is not MISSING and new is not MISSING and _strict(old, new):
        return []
    if isinstance(new, dict) and new:
        below = old if isinstance(old, dict) else {}
        out = [p for k in new for p in _leaf_changes(below.get(k, MISSING), new[k], (*path, k))]
        out += [(*path, k) for k in below if k not in new]
        if old is not MISSING and not isinstance(old, dict):
            out.append(path)  # the old scalar is gone too
        return out
    if old is MISSING and new is MISSING:
        return []
    return [path]


def _lookup(doc: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return MISSING
        doc = doc[key]
    return doc


@settings(max_examples=300, deadline=None)
@given(base=st.dictionaries(KEYS, DOCS, max_size=4), local_edits=EDITS, upstream_edits=EDITS)
def test_every_local_change_survives_or_is_a_conflict_with_both_values(
        base: dict[str, Any], local_edits: list[Any], upstream_edits: list[Any]) -> None:
    ours = _apply(base, local_edits)
    theirs = _apply(base, upstream_edits)
    before = (copy.deepcopy(base), copy.deepcopy(ours), copy.deepcopy(theirs))
    result = three_way_merge(base, ours, theirs)
    assert (base, ours, theirs) == before  # inputs untouched
    conflicts = {c.path: c for c in result.conflicts}
    for path in _leaf_changes(base, ours):
        # Present in the result, or covered by a conflict at it or above it that keeps both sides.
        covering = [c for p, c in conflicts.items() if path[:len(p)] == p]
        if covering:
            c = covering[0]
            assert c.ours == _lookup(ours, c.path) and c.theirs == _lookup(theirs, c.path)
            assert c.ours is MISSING or _lookup(result.merged, c.path) == c.ours
        elif _lookup(ours, path) is MISSING:
            # A deletion: gone from the result unless upstream re-created a mapping around it.
            assert not isinstance(_lookup(result.merged, path), int | str | bool | list) or \
                _lookup(base, path) != _lookup(result.merged, path), path
        elif isinstance(_lookup(ours, path), dict):
            assert isinstance(_lookup(result.merged, path), dict), path  # its leaves are checked one by one
        else:
            assert _lookup(result.merged, path) == _lookup(ours, path), path
    # Upstream changes that did not conflict are in the result too.
    for change in diff_definitions(base, theirs):
        if not any(change.path[:len(p)] == p or p[:len(change.path)] == change.path for p in conflicts):
            if not any(c.path[:len(change.path)] == change.path for c in diff_definitions(base, ours)):
                assert _lookup(result.merged, change.path) == _lookup(theirs, change.path)
    # Merging is symmetric up to which side a conflict keeps in place.
    assert {c.path for c in three_way_merge(base, theirs, ours).conflicts} == set(conflicts)
