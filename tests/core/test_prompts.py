"""render_template: placeholders, defaults and every way a variable can be wrong."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentforge.core.prompts import TemplateVariableError, placeholders, render_template
from agentforge.errors import AgentForgeError


def var(name: str, type_: str | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, **extra}
    if type_ is not None:
        out["type"] = type_
    return out


def rejects(template: str, variables: list[dict[str, Any]], values: dict[str, Any]) -> TemplateVariableError:
    with pytest.raises(TemplateVariableError) as info:
        render_template(template, variables, values)
    return info.value


def test_placeholders_with_and_without_spaces() -> None:
    text = render_template("{{a}}-{{ b }}-{{   a   }}", [var("a"), var("b")], {"a": "x", "b": "y"})
    assert text == "x-y-x"


def test_defaults_apply_and_values_win() -> None:
    variables = [var("tone", "string", default="formal"), var("n", "integer", default=2)]
    assert render_template("{{ tone }}/{{ n }}", variables, {}) == "formal/2"
    assert render_template("{{ tone }}/{{ n }}", variables, {"tone": "casual", "n": 5}) == "casual/5"


def test_none_means_not_given() -> None:
    assert render_template("[{{ t }}]", [var("t", "string", default="d")], {"t": None}) == "[d]"


def test_optional_without_default_renders_empty() -> None:
    assert render_template("[{{ extra }}]", [var("extra", "string")], {}) == "[]"


def test_non_string_values_render_as_json() -> None:
    variables = [
        var("items", "array"),
        var("opts", "object"),
        var("flag", "boolean"),
        var("ratio", "number"),
    ]
    text = render_template(
        "{{items}} {{opts}} {{flag}} {{ratio}}",
        variables,
        {"items": ["a", 1], "opts": {"k": "é"}, "flag": True, "ratio": 0.5},
    )
    assert text == '["a", 1] {"k": "é"} true 0.5'


def test_undeclared_but_supplied_value_is_rendered() -> None:
    assert render_template("hi {{ who }}", [], {"who": "bob"}) == "hi bob"


def test_missing_required_names_the_variable() -> None:
    error = rejects("{{ name }}", [var("name", "string", required=True)], {})
    assert error.variable == "name"
    assert error.code == "PROMPT_VARIABLE_INVALID"
    assert "name" in error.message and "required" in error.message
    assert isinstance(error, AgentForgeError)
    assert error.to_dict()["details"] == {"variable": "name"}


def test_required_variable_checked_even_when_unused_in_template() -> None:
    assert rejects("static", [var("must", required=True)], {}).variable == "must"


@pytest.mark.parametrize(
    ("type_", "value"),
    [
        ("integer", True),  # bool is not an integer
        ("integer", 1.5),
        ("integer", "3"),
        ("number", False),
        ("number", "1.0"),
        ("string", 3),
        ("boolean", 0),
        ("array", "a,b"),
        ("array", {"a": 1}),
        ("object", ["a"]),
    ],
)
def test_wrong_type_is_rejected(type_: str, value: Any) -> None:
    error = rejects("{{ v }}", [var("v", type_)], {"v": value})
    assert error.variable == "v"
    assert type_ in error.message


@pytest.mark.parametrize(("type_", "value"), [("number", 3), ("number", 2.5), ("integer", 7), ("array", ())])
def test_accepted_types(type_: str, value: Any) -> None:
    render_template("{{ v }}", [var("v", type_)], {"v": value})


def test_value_outside_enum() -> None:
    variables = [var("tone", "string", enum=["formal", "casual"])]
    assert render_template("{{ tone }}", variables, {"tone": "casual"}) == "casual"
    error = rejects("{{ tone }}", variables, {"tone": "angry"})
    assert error.variable == "tone"
    assert "formal" in error.message and "angry" in error.message


def test_enum_does_not_confuse_booleans_and_numbers() -> None:
    assert rejects("{{ n }}", [var("n", enum=[0, 1])], {"n": True}).variable == "n"


def test_bad_default_is_an_error_too() -> None:
    assert rejects("{{ n }}", [var("n", "integer", default="three")], {}).variable == "n"


def test_unknown_placeholder() -> None:
    error = rejects("Hi {{ nobody }}", [var("name")], {"name": "x"})
    assert error.variable == "nobody"
    assert "nobody" in error.message


@pytest.mark.parametrize("expression", ["user.name", "x | upper", "range(10)", "'a' ~ 'b'", ""])
def test_expressions_are_refused_not_evaluated(expression: str) -> None:
    error = rejects("{{ " + expression + " }}", [var("user"), var("x")], {"user": "u", "x": "x"})
    assert error.variable == expression.strip()


def test_unknown_variable_type_in_declaration() -> None:
    assert rejects("{{ v }}", [var("v", "date")], {"v": "2024"}).variable == "v"


def test_declaration_without_name() -> None:
    assert rejects("x", [{"type": "string"}], {}).variable == "variables[0]"


def test_jinja_statements_are_plain_text() -> None:
    template = "{% for x in y %}{{ name }}{% endfor %}"
    assert render_template(template, [var("name")], {"name": "n"}) == "{% for x in y %}n{% endfor %}"


def test_placeholders_lists_names_once_in_order() -> None:
    assert placeholders("{{b}} {{ a }} {{b}}") == ["b", "a"]


@given(st.text())
def test_values_are_never_expanded(value: str) -> None:
    # A user-supplied value containing placeholders is inserted verbatim (single pass).
    text = render_template("<{{ v }}>", [var("v", "string")], {"v": value, "secret": "S"})
    assert text == f"<{value}>"


@given(st.text(alphabet=st.characters(blacklist_characters="{}")))
def test_text_without_braces_is_unchanged(template: str) -> None:
    assert render_template(template, [], {}) == template
