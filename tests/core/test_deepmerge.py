"""deep_merge semantics, dotted paths and --set parsing."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from agentforge.core.deepmerge import deep_merge, get_path, parse_path, parse_set_arguments, set_path, unset_path
from agentforge.errors import ConfigError

MERGES: list[tuple[str, dict[str, Any], dict[str, Any] | None, dict[str, Any]]] = [
    (
        "maps merge deeply",
        {"llm": {"model": "a", "t": 0.1}},
        {"llm": {"model": "b"}},
        {"llm": {"model": "b", "t": 0.1}},
    ),
    ("lists replace", {"tags": [1, 2, 3]}, {"tags": [9]}, {"tags": [9]}),
    ("scalar replaces map", {"a": {"b": 1}}, {"a": 5}, {"a": 5}),
    ("map replaces scalar", {"a": 5}, {"a": {"b": 1}}, {"a": {"b": 1}}),
    ("null is a value", {"a": {"b": 1}}, {"a": None}, {"a": None}),
    ("new keys added", {"a": 1}, {"b": {"c": 2}}, {"a": 1, "b": {"c": 2}}),
    ("no override", {"a": 1}, None, {"a": 1}),
    ("three levels", {"x": {"y": {"z": 1, "w": 2}}}, {"x": {"y": {"z": 3}}}, {"x": {"y": {"z": 3, "w": 2}}}),
]


@pytest.mark.parametrize(("label", "base", "override", "expected"), MERGES, ids=[m[0] for m in MERGES])
def test_deep_merge(label: str, base: dict[str, Any], override: dict[str, Any] | None, expected: Any) -> None:
    base_before, override_before = copy.deepcopy(base), copy.deepcopy(override)
    result = deep_merge(base, override)
    assert result == expected
    assert base == base_before and override == override_before


def test_deep_merge_result_shares_nothing() -> None:
    base = {"a": {"list": [1]}, "keep": {"x": [1]}}
    override = {"a": {"new": [2]}}
    result = deep_merge(base, override)
    result["keep"]["x"].append(2)
    result["a"]["new"].append(3)
    assert base["keep"]["x"] == [1] and override["a"]["new"] == [2]


PATHS = [
    ("a.b.c", [("key", "a"), ("key", "b"), ("key", "c")]),
    ("a.b[2].c", [("key", "a"), ("key", "b"), ("index", 2), ("key", "c")]),
    ("a.b.2.c", [("key", "a"), ("key", "b"), ("auto", "2"), ("key", "c")]),
    ('components."crm.lookup".timeout', [("key", "components"), ("key", "crm.lookup"), ("key", "timeout")]),
    ("components[crm.lookup].timeout", [("key", "components"), ("key", "crm.lookup"), ("key", "timeout")]),
    ("m['x y']", [("key", "m"), ("key", "x y")]),
    ("a[0][1]", [("key", "a"), ("index", 0), ("index", 1)]),
]


@pytest.mark.parametrize(("path", "segments"), PATHS)
def test_parse_path(path: str, segments: list[tuple[str, Any]]) -> None:
    assert parse_path(path) == segments


@pytest.mark.parametrize("path", ["", ".a", "a.", "a..b", "a[", "a[1", "a[-1]", "a]b", 'a."b', "a[1]b"])
def test_bad_paths_name_the_path(path: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_path(path)
    assert repr(path) in info.value.message


def test_set_get_unset_with_both_index_spellings() -> None:
    doc: dict[str, Any] = {"a": {"b": [{"c": 1}, {"c": 2}, {"c": 3}]}}
    set_path(doc, "a.b[2].c", 30)
    set_path(doc, "a.b.1.c", 20)
    assert get_path(doc, "a.b.2.c") == 30
    assert get_path(doc, "a.b[1].c") == 20
    assert unset_path(doc, "a.b[0].c") is True
    assert doc["a"]["b"][0] == {}
    assert unset_path(doc, "a.b[0].c") is False
    assert unset_path(doc, "a.missing.x") is False
    assert unset_path(doc, "a.b.2") is True and len(doc["a"]["b"]) == 2


def test_set_creates_containers_and_appends() -> None:
    doc: dict[str, Any] = {}
    set_path(doc, "x.y.z", 1)
    set_path(doc, "list[0].name", "first")
    set_path(doc, "list[1]", "second")
    set_path(doc, 'components."crm.lookup".config.timeout', 45)
    set_path(doc, "map.3", "key three")  # a dotted number on a mapping is a key
    assert doc == {
        "x": {"y": {"z": 1}},
        "list": [{"name": "first"}, "second"],
        "components": {"crm.lookup": {"config": {"timeout": 45}}},
        "map": {"3": "key three"},
    }


@pytest.mark.parametrize(
    ("path", "needle"),
    [
        ("a.b[5]", "past the end"),
        ("a.s.x", "is a str"),
        ("a.m[0]", "is a mapping, not a list"),
        ("a.b.name", "is a list"),
    ],
)
def test_set_errors_name_the_path(path: str, needle: str) -> None:
    doc: dict[str, Any] = {"a": {"b": [1], "s": "text", "m": {}}}
    with pytest.raises(ConfigError) as info:
        set_path(doc, path, 1)
    assert repr(path) in info.value.message and needle in info.value.message


def test_get_path_missing() -> None:
    doc = {"a": {"b": [1]}}
    assert get_path(doc, "a.c", default="d") == "d"
    assert get_path(doc, "a.b[3]", default=None) is None
    with pytest.raises(ConfigError) as info:
        get_path(doc, "a.c.d")
    assert "'a.c.d'" in info.value.message and "a.c does not exist" in info.value.message


def test_parse_set_arguments() -> None:
    parsed = parse_set_arguments(
        ["llm.model=small", "runtime.timeout=300", "tags=[a, b]", "flag=true", "text='3'", "empty=", "eq=a=b"]
    )
    assert parsed == [
        ("llm.model", "small"),
        ("runtime.timeout", 300),
        ("tags", ["a", "b"]),
        ("flag", True),
        ("text", "3"),
        ("empty", ""),
        ("eq", "a=b"),
    ]


@pytest.mark.parametrize(
    ("argument", "needle"),
    [("novalue", "KEY=VALUE"), ("=x", "KEY=VALUE"), ("a..b=1", "'a..b'"), ("k=[oops", "--set k")],
)
def test_parse_set_arguments_errors(argument: str, needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_set_arguments([argument])
    assert needle in info.value.message


def test_set_value_is_not_echoed_in_errors() -> None:
    with pytest.raises(ConfigError) as info:
        parse_set_arguments(["api_key=[sk-secret-value"])
    assert "sk-secret" not in info.value.message
