"""Manifest, component and composition documents: parsing, dependencies, and error messages."""

from __future__ import annotations

import textwrap

import pytest
from pydantic import ValidationError

from agentforge.core.documents import (
    AgentDocument,
    ComponentDocument,
    CompositionDocument,
    DependencySpec,
    PromptDocument,
    PromptVariable,
    RepositoryManifest,
    ToolDocument,
    parse_any,
    parse_component,
    parse_composition,
    parse_forge_source,
    parse_manifest,
    safe_relpath,
)
from agentforge.errors import DocumentError

COMPONENT_SRC = "components/tools/x/component.yaml"
MANIFEST_SRC = "forge-manifest.yaml"


def doc(text: str) -> str:
    return textwrap.dedent(text).lstrip()


MANIFEST = doc(
    """
    apiVersion: forge.dev/v1
    kind: ComponentRepository
    metadata:
      name: crm-tools
      description: CRM tools
    repository:
      type: mixed
    components:
      tools:
        - name: salesforce-lookup
          path: components/tools/salesforce-lookup
      prompts:
        - name: crm-system-prompt
          path: ./components/prompts//crm-system/
      agents: []
    compositions:
      - name: sales-stack
        path: compositions/sales-stack.yaml
    x-custom: kept
    """
)

TOOL = doc(
    """
    apiVersion: forge.dev/v1
    kind: Tool
    metadata:
      name: salesforce-lookup
      version: 2.1.0
      description: Look up accounts
      license: MIT
      tags: [crm]
      owner-team: sales          # unknown, kept
    spec:
      type: mcp-server
      runtime: {command: python}
      schema: {input: {type: object}}
      config: {timeout: 30}
      dependencies:
        tools:
          - component: oauth-handler
            repository: github.com/tools/auth
            version: "~1.2.0"
            optional: false
        prompts: []
        agents: []
        peer:
          - {component: llm-gateway, kind: Agent}
          - {component: vault, type: mcp-server}
        dev:
          - {name: test-harness, version: 2, group: prompts}
      future-field: {a: 1}
    """
)


def test_manifest_parses_and_normalises_paths() -> None:
    manifest = parse_manifest(MANIFEST, source=MANIFEST_SRC)
    assert isinstance(manifest, RepositoryManifest)
    assert manifest.metadata.name == "crm-tools"
    assert manifest.repository.type == "mixed"
    assert [(g, e.name, e.path) for g, e in manifest.component_entries()] == [
        ("tools", "salesforce-lookup", "components/tools/salesforce-lookup"),
        ("prompts", "crm-system-prompt", "components/prompts/crm-system"),
    ]
    assert manifest.compositions[0].path == "compositions/sales-stack.yaml"
    assert manifest.raw["x-custom"] == "kept"
    assert manifest.model_extra == {"x-custom": "kept"}


def test_manifest_with_nulls_and_missing_optional_sections() -> None:
    manifest = parse_manifest(
        "apiVersion: forge.dev/v1\nkind: ComponentRepository\nmetadata: {name: r}\ncomponents:\n  tools:\n",
        source=MANIFEST_SRC,
    )
    assert manifest.components.tools == [] and manifest.compositions == []


def test_tool_component_keeps_everything_and_lists_dependencies() -> None:
    component = parse_component(TOOL, source=COMPONENT_SRC)
    assert isinstance(component, ToolDocument)
    assert (component.name, component.version, component.group) == ("salesforce-lookup", "2.1.0", "tools")
    assert component.metadata.model_extra == {"owner-team": "sales"}
    assert component.spec.schema_ == {"input": {"type": "object"}}
    assert component.raw["spec"]["future-field"] == {"a": 1}
    assert component.dependencies() == [
        DependencySpec(component="oauth-handler", group="tools", repository="github.com/tools/auth", version="~1.2.0"),
        DependencySpec(component="llm-gateway", group="agents", kind="peer"),
        DependencySpec(component="vault", group="tools", kind="peer"),
        DependencySpec(component="test-harness", group="prompts", version="2", kind="dev"),
    ]


def test_agent_short_forms() -> None:
    agent = parse_component(
        doc(
            """
            apiVersion: forge.dev/v1
            kind: Agent
            metadata: {name: sales-agent, version: 1.0.0-beta.1}
            spec:
              llm: {provider: openai, model: gpt-x, temperature: 0.2, max_tokens: 512}
              behavior: {style: brief}
              tools:
                - source: "forge://crm-tools/salesforce-lookup:v2.1.0"
                - "forge://acme/auth-repo/oauth-handler"
                - {source: "forge://crm-tools/search:^1.2", required: false}
                - {name: inline-fn, description: an inline function tool, not a dependency}
              prompts:
                - {source: "forge://crm-tools/crm-system-prompt:3.0.0", role: system}
            """
        ),
        source="agent.yaml",
    )
    assert isinstance(agent, AgentDocument)
    assert agent.spec.llm is not None and agent.spec.llm.max_tokens == 512
    assert agent.dependencies() == [
        DependencySpec(component="salesforce-lookup", group="tools", namespace="crm-tools", version="=2.1.0"),
        DependencySpec(component="oauth-handler", group="tools", namespace="acme/auth-repo", version="*"),
        DependencySpec(component="search", group="tools", namespace="crm-tools", version="^1.2", optional=True),
        DependencySpec(
            component="crm-system-prompt", group="prompts", namespace="crm-tools", version="=3.0.0", role="system"
        ),
    ]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("forge://ns/comp:v2.1.0", ("ns", "comp", "=2.1.0")),
        ("forge://ns/comp:2.1.0", ("ns", "comp", "=2.1.0")),
        ("forge://o/r/comp", ("o/r", "comp", "*")),
        ("forge://ns/comp:latest", ("ns", "comp", "latest")),
        ("forge://ns/comp:branch:main", ("ns", "comp", "branch:main")),
    ],
)
def test_parse_forge_source(source: str, expected: tuple[str, str, str]) -> None:
    assert parse_forge_source(source) == expected


@pytest.mark.parametrize(
    "source", ["forge://comp", "https://x/y", "forge://a/b/c/comp", "forge://ns/Comp", "forge://ns/comp:", "forge:///c"]
)
def test_parse_forge_source_rejects(source: str) -> None:
    with pytest.raises(ValueError):
        parse_forge_source(source)


def test_prompt_variables() -> None:
    prompt = parse_component(
        doc(
            """
            apiVersion: forge.dev/v1
            kind: Prompt
            metadata: {name: crm-system-prompt, version: 3.0.0}
            spec:
              type: system
              template: "You help with {{ topic }}"
              variables:
                - {name: topic, type: string, required: true, enum: [sales, support], default: sales}
                - {name: limit, type: integer, default: 5, description: max items}
            """
        ),
        source="prompt.yaml",
    )
    assert isinstance(prompt, PromptDocument)
    topic, limit = prompt.spec.variables
    assert topic.required and topic.enum == ["sales", "support"]
    assert limit.type_matches(3) and not limit.type_matches(True) and not limit.type_matches(2.5)
    assert PromptVariable(name="x", type="number").type_matches(2.5)


def test_composition() -> None:
    composition = parse_composition(
        doc(
            """
            apiVersion: forge.dev/v1
            kind: Composition
            metadata: {name: sales-stack, version: 1.0.0, description: stack}
            spec:
              dependencies:
                agents:  [{name: sales-specialist, repository: github.com/agents/specialized, version: "^1.5.0", required: true}]
                tools:   [{component: salesforce-lookup, required: false}]
                prompts: [{name: sales-system, repository: "https://git.example.com/p/q.git", version: ">=3.0.0", role: system}]
              configuration: {llm: {model: big}, runtime: {timeout: 60}}
              overrides:
                tools: {salesforce-lookup: {config: {timeout: 45}}}
              environments:
                development: {llm: {model: small-model}}
                production:  {runtime: {timeout: 300}}
              deployment: {instances: 1, health_checks: {readiness_probe: {endpoint: /health/ready, timeout: 3}}}
            """
        ),
        source="compositions/sales-stack.yaml",
    )
    assert isinstance(composition, CompositionDocument)
    assert composition.spec.overrides.tools == {"salesforce-lookup": {"config": {"timeout": 45}}}
    assert composition.spec.environments["production"] == {"runtime": {"timeout": 300}}
    assert composition.dependencies() == [
        DependencySpec(component="salesforce-lookup", group="tools", optional=True),
        DependencySpec(
            component="sales-system",
            group="prompts",
            repository="https://git.example.com/p/q.git",
            version=">=3.0.0",
            role="system",
        ),
        DependencySpec(
            component="sales-specialist",
            group="agents",
            repository="github.com/agents/specialized",
            version="^1.5.0",
        ),
    ]


def test_parse_any_dispatches_and_accepts_json() -> None:
    assert isinstance(parse_any(MANIFEST, source=MANIFEST_SRC), RepositoryManifest)
    assert isinstance(parse_any(TOOL, source=COMPONENT_SRC), ToolDocument)
    json_doc = '{"apiVersion": "forge.dev/v1", "kind": "Prompt", "metadata": {"name": "p", "version": "1.0.0"}}'
    parsed = parse_any(json_doc, source="p.json")
    assert isinstance(parsed, ComponentDocument) and parsed.kind == "Prompt"
    assert isinstance(
        parse_any(
            {"apiVersion": "forge.dev/v1", "kind": "Composition", "metadata": {"name": "c", "version": "0.1.0"}},
            source="c.yaml",
        ),
        CompositionDocument,
    )


HEAD = "apiVersion: forge.dev/v1\nkind: Tool\n"
META = "metadata: {name: x, version: 1.0.0}\n"

BAD_COMPONENTS = [
    (
        "bad semver",
        HEAD + "metadata: {name: x, version: 1.x}\n",
        "metadata.version: '1.x' is not a valid semantic version",
    ),
    (
        "leading v",
        HEAD + "metadata: {name: x, version: v1.0.0}\n",
        "metadata.version: 'v1.0.0' is not a valid semantic version",
    ),
    (
        "numeric version",
        HEAD + "metadata: {name: x, version: 1.0}\n",
        "metadata.version: 1.0 is not a valid semantic version",
    ),
    ("missing version", HEAD + "metadata: {name: x}\n", "metadata.version: is required"),
    ("missing metadata", HEAD, "metadata: is required"),
    (
        "bad name",
        HEAD + "metadata: {name: Bad_Name, version: 1.0.0}\n",
        "metadata.name: 'Bad_Name' is not a valid name",
    ),
    ("long name", HEAD + "metadata: {name: " + "a" * 101 + ", version: 1.0.0}\n", "metadata.name:"),
    (
        "wrong apiVersion",
        "apiVersion: forge.dev/v2\nkind: Tool\n" + META,
        "apiVersion: unsupported apiVersion 'forge.dev/v2'",
    ),
    ("missing apiVersion", "kind: Tool\n" + META, "apiVersion: is required"),
    ("unknown kind", "apiVersion: forge.dev/v1\nkind: Widget\n" + META, "kind: unknown or unexpected kind 'Widget'"),
    ("missing kind", "apiVersion: forge.dev/v1\n" + META, "kind: is required"),
    (
        "composition as component",
        "apiVersion: forge.dev/v1\nkind: Composition\n" + META,
        "kind: unknown or unexpected kind 'Composition'",
    ),
    ("tool type", HEAD + META + "spec: {type: rest}\n", "spec.type: 'rest' is not allowed"),
    (
        "dependency group typo",
        HEAD + META + "spec: {dependencies: {tool: []}}\n",
        "spec.dependencies.tool: unknown dependency group",
    ),
    (
        "dependency without name",
        HEAD + META + "spec: {dependencies: {tools: [{version: '1'}]}}\n",
        "spec.dependencies.tools[0].component: is required",
    ),
    (
        "dependency bad repo",
        HEAD + META + "spec: {dependencies: {tools: [{component: a, repository: 'ext::sh -c id'}]}}\n",
        "spec.dependencies.tools[0].repository: repository URL",
    ),
    (
        "dependency creds",
        HEAD + META + "spec: {dependencies: {tools: [{component: a, repository: 'https://u:pw@h/o/r'}]}}\n",
        "spec.dependencies.tools[0].repository: repository URL 'https://u:***@h/o/r': must not contain credentials",
    ),
    (
        "peer bad kind",
        HEAD + META + "spec: {dependencies: {peer: [{component: a, kind: Widget}]}}\n",
        "spec.dependencies.peer[0].kind: 'Widget' is not a component kind",
    ),
    (
        "name vs component",
        HEAD + META + "spec: {dependencies: {tools: [{component: a, name: b}]}}\n",
        "spec.dependencies.tools[0].name: 'b' differs",
    ),
    (
        "optional vs required",
        HEAD + META + "spec: {dependencies: {tools: [{component: a, optional: true, required: true}]}}\n",
        "spec.dependencies.tools[0].required: contradicts",
    ),
    (
        "empty constraint",
        HEAD + META + "spec: {dependencies: {tools: [{component: a, version: ''}]}}\n",
        "spec.dependencies.tools[0].version: version constraint is empty",
    ),
    ("short form bad source", HEAD + META + "spec: {tools: [{source: 'forge://ns/Bad'}]}\n", "spec.tools[0].source:"),
    (
        "short form conflicting version",
        HEAD + META + "spec: {tools: [{source: 'forge://ns/a:1.0.0', version: '2.0.0'}]}\n",
        "spec.tools[0].version:",
    ),
    ("list at top", "- a\n- b\n", "expected a mapping at the top level"),
    ("empty file", "", "document is empty"),
    (
        "prompt template_file escapes",
        "apiVersion: forge.dev/v1\nkind: Prompt\n" + META + "spec: {template_file: ../../etc/passwd}\n",
        "spec.template_file: path '../../etc/passwd' leaves the repository",
    ),
    (
        "prompt variable type",
        "apiVersion: forge.dev/v1\nkind: Prompt\n" + META + "spec: {variables: [{name: v, type: date}]}\n",
        "spec.variables[0].type: 'date' is not allowed",
    ),
    (
        "prompt default not in enum",
        "apiVersion: forge.dev/v1\nkind: Prompt\n" + META + "spec: {variables: [{name: v, enum: [a], default: b}]}\n",
        "spec.variables[0].default: 'b' is not one of the enum values",
    ),
    (
        "prompt duplicate variable",
        "apiVersion: forge.dev/v1\nkind: Prompt\n" + META + "spec: {variables: [{name: v}, {name: v}]}\n",
        "spec.variables[1].name: duplicate variable 'v'",
    ),
    (
        "agent max_tokens",
        "apiVersion: forge.dev/v1\nkind: Agent\n" + META + "spec: {llm: {max_tokens: 0}}\n",
        "spec.llm.max_tokens:",
    ),
    ("yaml error", HEAD + "metadata: [\n", "invalid YAML"),
]


@pytest.mark.parametrize(("label", "text", "needle"), BAD_COMPONENTS, ids=[b[0] for b in BAD_COMPONENTS])
def test_bad_components(label: str, text: str, needle: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_component(text, source=COMPONENT_SRC)
    message = info.value.message
    assert info.value.code == "DOCUMENT_INVALID"
    assert message.startswith(COMPONENT_SRC + ":")
    assert needle in message
    assert "pydantic" not in message and "errors.pydantic.dev" not in message
    assert "Value error" not in message


def test_the_exact_message_of_the_brief() -> None:
    with pytest.raises(DocumentError) as info:
        parse_component(HEAD + "metadata: {name: x, version: '1.x'}\n", source=COMPONENT_SRC)
    assert (
        info.value.message
        == "components/tools/x/component.yaml: metadata.version: '1.x' is not a valid semantic version"
    )


def test_several_problems_are_all_reported() -> None:
    with pytest.raises(DocumentError) as info:
        parse_component(HEAD + "metadata: {name: X, version: nope}\n", source=COMPONENT_SRC)
    lines = info.value.message.splitlines()
    assert len(lines) == 2 and all(line.startswith(COMPONENT_SRC) for line in lines)
    assert {e["path"] for e in info.value.details["errors"]} == {"metadata.name", "metadata.version"}


MHEAD = "apiVersion: forge.dev/v1\nkind: ComponentRepository\nmetadata: {name: repo}\n"

BAD_MANIFESTS = [
    (
        "dotdot",
        MHEAD + "components: {tools: [{name: a, path: ../outside}]}\n",
        "components.tools[0].path: path '../outside' leaves the repository",
    ),
    ("inner dotdot", MHEAD + "components: {tools: [{name: a, path: a/../../b}]}\n", "components.tools[0].path:"),
    (
        "absolute",
        MHEAD + "components: {tools: [{name: a, path: /etc}]}\n",
        "components.tools[0].path: path '/etc' is absolute",
    ),
    ("drive", MHEAD + "components: {tools: [{name: a, path: 'C:/x'}]}\n", "is absolute"),
    ("backslash", MHEAD + "components: {tools: [{name: a, path: 'a\\\\..\\\\b'}]}\n", "backslash"),
    ("nul", MHEAD + 'components: {tools: [{name: a, path: "a\\0b"}]}\n', "NUL"),
    ("empty path", MHEAD + "components: {tools: [{name: a, path: ''}]}\n", "path is empty"),
    ("missing path", MHEAD + "components: {tools: [{name: a}]}\n", "components.tools[0].path: is required"),
    (
        "duplicate tool",
        MHEAD + "components: {tools: [{name: a, path: x}, {name: b, path: y}, {name: a, path: z}]}\n",
        "components.tools[2].name: duplicate name 'a' (also at components.tools[0].name)",
    ),
    (
        "duplicate composition",
        MHEAD + "compositions: [{name: s, path: x.yaml}, {name: s, path: y.yaml}]\n",
        "compositions[1].name: duplicate name 's' (also at compositions[0].name)",
    ),
    ("group typo", MHEAD + "components: {tool: []}\n", "components.tool: unknown component group"),
    ("repository type", MHEAD + "repository: {type: things}\n", "repository.type: 'things' is not allowed"),
    (
        "bad repo name",
        "apiVersion: forge.dev/v1\nkind: ComponentRepository\nmetadata: {name: Repo}\n",
        "metadata.name: 'Repo'",
    ),
]


@pytest.mark.parametrize(("label", "text", "needle"), BAD_MANIFESTS, ids=[b[0] for b in BAD_MANIFESTS])
def test_bad_manifests(label: str, text: str, needle: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_manifest(text, source=MANIFEST_SRC)
    assert info.value.message.startswith(MANIFEST_SRC + ":")
    assert needle in info.value.message


def test_same_name_in_different_kinds_is_fine() -> None:
    manifest = parse_manifest(
        MHEAD + "components: {tools: [{name: a, path: t}], prompts: [{name: a, path: p}]}\n", source=MANIFEST_SRC
    )
    assert len(manifest.component_entries()) == 2


CPS = "apiVersion: forge.dev/v1\nkind: Composition\nmetadata: {name: s, version: 1.0.0}\n"

BAD_COMPOSITIONS = [
    ("override group", CPS + "spec: {overrides: {tool: {}}}\n", "spec.overrides.tool: unknown override group"),
    ("override not a map", CPS + "spec: {overrides: {tools: {a: 5}}}\n", "spec.overrides.tools.a:"),
    ("environment not a map", CPS + "spec: {environments: {dev: [1]}}\n", "spec.environments.dev:"),
    (
        "composition version",
        "apiVersion: forge.dev/v1\nkind: Composition\nmetadata: {name: s, version: '1'}\n",
        "metadata.version:",
    ),
]


@pytest.mark.parametrize(("label", "text", "needle"), BAD_COMPOSITIONS, ids=[b[0] for b in BAD_COMPOSITIONS])
def test_bad_compositions(label: str, text: str, needle: str) -> None:
    with pytest.raises(DocumentError) as info:
        parse_composition(text, source="c.yaml")
    assert info.value.message.startswith("c.yaml:") and needle in info.value.message


@pytest.mark.parametrize(
    ("path", "expected"),
    [("a/b", "a/b"), ("./a//b/", "a/b"), ("a/./b/.", "a/b"), (".", "."), ("./", "."), ("a..b/c", "a..b/c")],
)
def test_safe_relpath_normalises(path: str, expected: str) -> None:
    assert safe_relpath(path, field="components.tools[0].path", source=MANIFEST_SRC) == expected


@pytest.mark.parametrize("path", ["..", "a/../..", "/abs", "\\\\server\\share", "a\\b", "a\x00b", "", "C:x", "a\nb"])
def test_safe_relpath_refuses(path: str) -> None:
    with pytest.raises(DocumentError) as info:
        safe_relpath(path, field="components.tools[0].path", source=MANIFEST_SRC)
    assert info.value.message.startswith("forge-manifest.yaml: components.tools[0].path: ")


def test_dependency_spec_is_frozen_and_hashable() -> None:
    spec = DependencySpec(component="a", group="tools")
    with pytest.raises(ValidationError):
        spec.component = "b"  # type: ignore[misc]
    assert {spec, DependencySpec(component="a", group="tools")} == {spec}
