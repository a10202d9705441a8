"""Prompt template rendering: ``{{ var }}`` placeholders checked against declared variables.

Deliberately not Jinja: a template comes from a third-party Git repository, so rendering
must never evaluate anything. A placeholder is a plain name between double braces; the
substitution is a single pass, so a value that itself contains ``{{ x }}`` is inserted
literally and never expanded (no template injection through user input).

Variables follow FORMATS §2: ``{name, type, required, default, enum, description}``.
Every problem (missing required value, wrong type, value outside ``enum``, a placeholder
nobody declared or supplied, an expression where a name was expected) raises
:class:`TemplateVariableError` naming the variable, so the HTTP runtime can answer 422
with ``variable`` filled in.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from agentforge.errors import AgentForgeError

__all__ = ["VARIABLE_TYPES", "TemplateVariableError", "placeholders", "render_template"]

# `{{` ... `}}` with anything inside (non-greedy, single line): we look at every such block
# so an unsupported expression (`{{ user.name }}`, `{{ x | upper }}`) is reported instead of
# silently left in the output.
_BLOCK = re.compile(r"\{\{(.*?)\}\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")

VARIABLE_TYPES = frozenset({"string", "number", "integer", "boolean", "array", "object"})


class TemplateVariableError(AgentForgeError):
    """A prompt variable is missing, of the wrong type, outside its enum, or unknown."""

    code = "PROMPT_VARIABLE_INVALID"

    def __init__(self, variable: str, message: str, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"variable": variable})
        self.variable = variable


def placeholders(template: str) -> list[str]:
    """The placeholder names of a template, in order of first appearance (no validation)."""
    seen: dict[str, None] = {}
    for match in _BLOCK.finditer(template):
        seen.setdefault(match.group(1).strip(), None)
    return list(seen)


def _matches_type(value: Any, type_name: str) -> bool:
    # bool is a subclass of int in Python but not a number in JSON Schema terms.
    if type_name == "string":
        return isinstance(value, str)
    if type_name == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if type_name == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if type_name == "boolean":
        return isinstance(value, bool)
    if type_name == "array":
        return isinstance(value, (list, tuple))
    if type_name == "object":
        return isinstance(value, Mapping)
    return False


def _in_enum(value: Any, allowed: Sequence[Any]) -> bool:
    # `True == 1` in Python; an enum of [0, 1] must not accept booleans (and vice versa).
    return any(value == option and isinstance(value, bool) == isinstance(option, bool) for option in allowed)


def _type_label(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _declarations(variables: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    declared: dict[str, Mapping[str, Any]] = {}
    for index, entry in enumerate(variables):
        if not isinstance(entry, Mapping) or not isinstance(entry.get("name"), str) or not entry["name"]:
            raise TemplateVariableError(
                f"variables[{index}]",
                f"prompt variable #{index} has no name",
                hint="Each entry of spec.variables needs a `name`.",
            )
        name = entry["name"]
        type_name = entry.get("type")
        if type_name is not None and type_name not in VARIABLE_TYPES:
            raise TemplateVariableError(
                name,
                f"prompt variable {name!r} declares unknown type {type_name!r}",
                hint=f"Use one of: {', '.join(sorted(VARIABLE_TYPES))}.",
            )
        enum = entry.get("enum")
        if enum is not None and not isinstance(enum, (list, tuple)):
            raise TemplateVariableError(name, f"prompt variable {name!r} has an `enum` that is not a list")
        declared[name] = entry
    return declared


def _checked_value(name: str, declaration: Mapping[str, Any], value: Any) -> Any:
    type_name = declaration.get("type")
    if type_name is not None and not _matches_type(value, type_name):
        raise TemplateVariableError(
            name,
            f"prompt variable {name!r} must be of type {type_name}, got {_type_label(value)}",
        )
    enum = declaration.get("enum")
    if enum is not None and not _in_enum(value, enum):
        allowed = ", ".join(_as_text(option) for option in enum)
        raise TemplateVariableError(
            name,
            f"prompt variable {name!r} must be one of [{allowed}], got {_as_text(value)}",
        )
    return value


def render_template(
    template: str,
    variables: Sequence[Mapping[str, Any]],
    values: Mapping[str, Any],
) -> str:
    """Render ``template`` with ``values`` (defaults filled in), validating every variable.

    A declared variable without a value and without a default renders as an empty string
    unless it is ``required``. A value given for an undeclared name is accepted (the same
    value map is shared by all prompts of an agent) and rendered unchecked. ``None`` means
    "not given". Strings render as-is; every other value renders as JSON.
    """
    declared = _declarations(variables)
    effective: dict[str, Any] = {}
    for name, declaration in declared.items():
        value = values.get(name)
        if value is None:
            value = declaration.get("default")
        if value is None:
            if declaration.get("required", False):
                raise TemplateVariableError(
                    name,
                    f"prompt variable {name!r} is required but no value was given",
                    hint=f'Pass it in "variables": {{"{name}": ...}}.',
                )
            continue
        effective[name] = _checked_value(name, declaration, value)
    for name, value in values.items():
        if name not in declared and value is not None:
            effective[name] = value

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1).strip()
        if not _NAME.match(name):
            raise TemplateVariableError(
                name,
                f"unsupported placeholder {{{{ {name} }}}}: only plain variable names are allowed",
                hint="Templates are not Jinja: no expressions, filters or dotted access.",
            )
        if name in effective:
            return _as_text(effective[name])
        if name in declared:
            return ""
        raise TemplateVariableError(
            name,
            f"placeholder {{{{ {name} }}}} is not a declared variable and no value was given",
            hint="Declare it under spec.variables or pass a value for it.",
        )

    return _BLOCK.sub(substitute, template)
