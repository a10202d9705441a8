"""load_document limits and the deterministic writers."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentforge.core.yamlio import MAX_DOCUMENT_BYTES, canonical_json, dump_yaml, load_document, load_json_document
from agentforge.errors import DocumentError

SOURCE = "components/tools/x/component.yaml"


def _billion_laughs(levels: int = 9) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for level in range(1, levels + 1):
        refs = ",".join([f"*l{level - 1}"] * 10)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


GOOD = [
    ("plain", "a: 1\nb: [x, y]\n", {"a": 1, "b": ["x", "y"]}),
    ("json", '{"a": {"b": [1, 2.5, null, true]}}', {"a": {"b": [1, 2.5, None, True]}}),
    ("json with tabs", '{\n\t"a": 1\n}', {"a": 1}),
    ("bom stripped", b"\xef\xbb\xbfa: 1\n", {"a": 1}),
    ("crlf", b"a: 1\r\nb:\r\n  - c\r\n", {"a": 1, "b": ["c"]}),
    ("unicode", "name: héllo ✓\n".encode(), {"name": "héllo ✓"}),
    ("timestamps stay text", "released: 2024-01-31\n", {"released": "2024-01-31"}),
    ("scalar keys become text", "200: ok\ntrue: yes\n", {"200": "ok", "true": True}),
    ("small alias use", "base: &b {x: 1}\nuse: *b\n", {"base": {"x": 1}, "use": {"x": 1}}),
    ("merge keys", "base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n", {"base": {"x": 1, "y": 2}, "use": {"x": 1, "y": 3}}),
    ("empty", "", None),
]


@pytest.mark.parametrize(("label", "data", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_good_documents(label: str, data: str | bytes, expected: object) -> None:
    assert load_document(data, source=SOURCE) == expected


@pytest.mark.parametrize("text", ["[" * 64 + "]" * 64, "a:\n" + "".join("  " * i + "- \n" for i in range(1, 63))])
def test_depth_64_is_accepted(text: str) -> None:
    result = load_document(text, source=SOURCE)
    assert result is not None


BAD = [
    ("too large", b"a: " + b"x" * MAX_DOCUMENT_BYTES, "larger than the 1 MiB limit"),
    ("not utf-8", b"a: \xff\xfe\n", "not valid UTF-8"),
    ("utf-16", "a: 1\n".encode("utf-16"), "NUL byte"),
    ("nul", b"a: 1\x00\n", "NUL byte"),
    ("billion laughs", _billion_laughs(), "alias bomb"),
    ("deep nesting", "[" * 100 + "]" * 100, "nesting deeper than 64"),
    ("deep json", "[" * 5000 + "]" * 5000, "nest"),
    (
        "deep via alias",
        "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a" + "]" * 30,
        "once aliases are expanded",
    ),
    ("recursive alias", "a: &a [*a]\n", "recursive"),
    ("undefined alias", "a: *nope\n", "undefined"),
    ("duplicate key", "a: 1\nb: 2\na: 3\n", "duplicate key 'a'"),
    ("several documents", "a: 1\n---\nb: 2\n", "single document"),
    ("binary", "a: !!binary aGVsbG8=\n", "bytes"),
    ("nan", "a: .nan\n", "not representable in JSON"),
    ("python tag", "a: !!python/object/apply:os.system [ls]\n", "invalid YAML"),
    ("syntax", "a: [b\n", "invalid YAML"),
]


@pytest.mark.parametrize(("label", "data", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_documents_name_the_source(label: str, data: str | bytes, needle: str) -> None:
    with pytest.raises(DocumentError) as info:
        load_document(data, source=SOURCE)
    assert info.value.code == "DOCUMENT_INVALID"
    assert info.value.message.startswith(SOURCE)
    assert needle in info.value.message
    assert len(info.value.message) < 500  # never an echo of the document


def test_position_is_reported() -> None:
    with pytest.raises(DocumentError) as info:
        load_document("a: 1\nb: [c\n", source="f.yaml")
    assert info.value.message.startswith("f.yaml:3:")


@pytest.mark.parametrize(("data", "message"), [
    ('{\n  "a": 1,,\n}\n', "s.json:2:10: invalid JSON: Expecting property name enclosed in double quotes"),
    ('{"a": 1,}', "s.json:1:9: invalid JSON: Expecting property name enclosed in double quotes"),  # YAML takes it
    ("a: 1\n", "s.json:1:1: invalid JSON: Expecting value"),
    ('{"a": 1, "a": 2}', "s.json: invalid JSON: duplicate key 'a'"),
    ('{"a": NaN}', "s.json: invalid JSON: NaN is not allowed"),
    ("[" * 100 + "]" * 100, "s.json: nesting deeper than 64 levels"),
    ("[" * 5000 + "]" * 5000, "s.json: nesting deeper than 64 levels"),
    (b'{"a": "\xff"}', "s.json: document is not valid UTF-8 (byte offset 7)"),
])
def test_json_documents_are_judged_as_json(data: str | bytes, message: str) -> None:
    """A file that must be JSON is not read as YAML, so the error speaks of JSON (it said invalid YAML)."""
    with pytest.raises(DocumentError) as info:
        load_json_document(data, source="s.json")
    assert info.value.message == message


def test_json_documents_load() -> None:
    assert load_json_document(b'\xef\xbb\xbf{\n\t"a": [1, 2.5, null, true]\n}\n', source="s.json") == {
        "a": [1, 2.5, None, True]}


def test_aliases_are_unshared_copies() -> None:
    result = load_document("base: &b {x: [1]}\nuse: *b\n", source="f.yaml")
    result["use"]["x"].append(2)
    assert result["base"]["x"] == [1]


def test_canonical_json() -> None:
    assert canonical_json({"b": 1, "a": ["é", {"d": None, "c": True}]}) == '{"a":["é",{"c":true,"d":null}],"b":1}'
    with pytest.raises(ValueError):
        canonical_json({"a": float("nan")})


def test_dump_yaml_is_deterministic_and_round_trips() -> None:
    data = {"z": 1, "a": {"y": "1.0", "x": ["b", "a"], "w": "héllo\nworld\n"}, "m": None, "e": {}, "n": "0123"}
    text = dump_yaml(data)
    assert text == dump_yaml(json.loads(json.dumps(data)))
    assert text.endswith("\n") and "\r" not in text
    assert "héllo" in text
    assert text.index("a:") < text.index("m:") < text.index("z:")
    assert load_document(text, source="x") == data


def test_dump_yaml_writes_no_anchors() -> None:
    shared = {"k": [1, 2]}
    text = dump_yaml({"a": shared, "b": shared})
    assert "&" not in text and "*" not in text


_json_scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text()
_json_values = st.recursive(
    _json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(_json_values)
def test_dump_yaml_round_trips_any_json_data(value: object) -> None:
    text = dump_yaml(value)
    assert load_document(text, source="x.yaml") == value
    assert dump_yaml(load_document(text, source="x.yaml")) == text
