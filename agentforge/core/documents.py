"""The documents of FORMATS.md §1, §2 and §4 as pydantic models, and their parsers.

* :class:`RepositoryManifest` — ``forge-manifest.yaml`` (``kind: ComponentRepository``)
* :class:`ComponentDocument` — ``component.yaml`` (``kind: Tool | Prompt | Agent``; one
  subclass per kind: :class:`ToolDocument`, :class:`PromptDocument`, :class:`AgentDocument`)
* :class:`CompositionDocument` — ``kind: Composition``

Unknown fields are kept (``extra="allow"``) and the whole mapping as read is available as
``.raw`` (that is what the database stores as ``definition``). Two places are stricter on
purpose, because a typo there would silently drop dependencies or components: the group keys
under ``spec.dependencies`` and ``components`` must be the known ones.

Every failure is a :class:`~agentforge.errors.DocumentError` whose message reads
``<source>: <field path>: <what is wrong>``, one line per problem, never a pydantic dump.

Dependencies come out normalised as :class:`DependencySpec`, from both accepted spellings:

* long form ``spec.dependencies.{tools,prompts,agents,peer,dev}[]`` with ``component`` (or
  ``name``), ``repository``, ``version``, ``optional`` / ``required``, ``role``;
* short form ``spec.{tools,prompts,agents}[]`` entries with ``source: forge://ns/comp:version``
  (or the bare string). Short-form entries without a ``source`` are inline definitions (for
  example an agent's function tool), not dependencies, and are left alone.

Group of a ``peer``/``dev`` entry: taken from its ``group``, ``kind`` or ``type`` field when that
names a group (``tool``/``tools``/``Tool``, ``prompt``…, ``agent``…); an unrecognised ``kind`` or
``group`` is an error, an unrecognised ``type`` is ignored (tools use ``type`` for their own
purpose); otherwise the group is ``tools``, the most common peer dependency.
"""

from __future__ import annotations

import copy
import posixpath
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, Self

import semver
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from agentforge.core.urls import normalise_repository_url
from agentforge.core.yamlio import load_document
from agentforge.errors import AgentForgeError, DocumentError, UrlError

__all__ = [
    "API_VERSION",
    "COMPONENT_KINDS",
    "NAME_PATTERN",
    "AgentDocument",
    "ComponentDocument",
    "CompositionDocument",
    "DependencyEntry",
    "DependencySpec",
    "ManifestEntry",
    "PromptDocument",
    "PromptVariable",
    "RepositoryManifest",
    "ToolDocument",
    "format_validation_errors",
    "is_valid_name",
    "parse_any",
    "parse_component",
    "parse_composition",
    "parse_forge_source",
    "parse_manifest",
    "safe_relpath",
]

API_VERSION = "forge.dev/v1"
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,99}$"
COMPONENT_KINDS: tuple[str, ...] = ("Tool", "Prompt", "Agent")
DependencyGroup = Literal["tools", "prompts", "agents"]
DependencyKind = Literal["normal", "peer", "dev"]
GROUP_OF_KIND: dict[str, DependencyGroup] = {"Tool": "tools", "Prompt": "prompts", "Agent": "agents"}

_NAME_RE = re.compile(NAME_PATTERN[1:-1])
_VARIABLE_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_GROUP_WORDS: dict[str, DependencyGroup] = {
    "tool": "tools",
    "tools": "tools",
    "prompt": "prompts",
    "prompts": "prompts",
    "agent": "agents",
    "agents": "agents",
}
_SCHEMA_HINT = "Check the document against the JSON Schemas in agentforge/schemas/."


# --------------------------------------------------------------------------- field checks


def _at(subpath: str, message: str) -> ValueError:
    """A ValueError whose message carries a field path below the validator's own location.

    Model-level validators can only fail at their own location; the ``@path: msg`` form lets
    the formatter report the exact field (``components.tools[3].name``) instead.
    """
    return ValueError(f"@{subpath}: {message}")


def is_valid_name(value: str) -> bool:
    """True when ``value`` follows the component/repository name rule of FORMATS.md."""
    return bool(_NAME_RE.fullmatch(value))


def _check_name(value: str) -> str:
    if not is_valid_name(value):
        raise ValueError(
            f"{value!r} is not a valid name (lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit, at most 100 characters)"
        )
    return value


def _check_semver(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    if not isinstance(value, str):
        raise ValueError(f"{text} is not a valid semantic version (write it as a string, e.g. '1.0.0')")
    try:
        semver.Version.parse(value)
    except (ValueError, TypeError):
        hint = " (no leading 'v')" if value[:1] in ("v", "V") else ""
        raise ValueError(f"{value!r} is not a valid semantic version{hint}") from None
    return value


def _constraint_text(value: Any) -> str:
    # YAML reads `version: 2` or `version: 1.5` as numbers; the user meant the text.
    if value is None:
        return "*"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{value!r} is not a version constraint")
    text = str(value).strip()
    if not text:
        raise ValueError("version constraint is empty (use '*' for any version)")
    return text


def _only_known_keys(model: type[BaseModel], data: Any, what: str) -> Any:
    """Refuse a key the model does not declare (a typo must not drop dependencies silently)."""
    if isinstance(data, Mapping):
        for key in data:
            if key not in model.model_fields:
                raise _at(f".{key}", f"unknown {what}")
    return data


def _none_to_list(value: Any) -> Any:
    return [] if value is None else value


def _none_to_dict(value: Any) -> Any:
    return {} if value is None else value


def _relpath_problem(path: Any) -> tuple[str | None, str | None]:
    """(normalised path, None) or (None, what is wrong)."""
    if not isinstance(path, str):
        return None, f"path must be a string, got {type(path).__name__}"
    if not path:
        return None, "path is empty"
    if "\x00" in path:
        return None, "path contains a NUL byte"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return None, f"path {path!r} contains control characters"
    if "\\" in path:
        return None, f"path {path!r} contains a backslash (use '/')"
    if path.startswith("/") or re.match(r"^[A-Za-z]:", path):
        return None, f"path {path!r} is absolute; it must be relative to the repository root"
    segments = path.split("/")
    if ".." in segments:
        return None, f"path {path!r} leaves the repository ('..')"
    kept = [s for s in segments if s not in ("", ".")]
    return (posixpath.join(*kept) if kept else "."), None


def safe_relpath(path: Any, *, field: str, source: str) -> str:
    """Normalise a repository-relative path, or raise a DocumentError naming ``source`` and ``field``.

    Refused: absolute paths (also ``C:``), ``..`` segments, backslashes, NUL and control
    characters. ``a//b/./c/`` becomes ``a/b/c``; the repository root is ``.``.
    Symlinks cannot be judged here (no file system); the sync layer checks those.
    """
    normalised, problem = _relpath_problem(path)
    if normalised is None:
        raise DocumentError(f"{source}: {field}: {problem}", hint="Paths are relative to the repository root.")
    return normalised


def _check_relpath(value: str) -> str:
    normalised, problem = _relpath_problem(value)
    if normalised is None:
        raise ValueError(problem)
    return normalised


def _check_repository(value: str | None) -> str | None:
    # Only the shape is checked here (kept as written); whether http:// is allowed is a
    # policy of the settings, applied when the repository is fetched.
    if value is None:
        return None
    if _NAME_RE.fullmatch(value):
        # A registered repository's short name (e.g. `crm-prompts`): resolved at lock time.
        return value
    try:
        normalise_repository_url(value, allow_insecure=True)
    except UrlError as exc:
        raise ValueError(exc.message) from None
    return value


Name = Annotated[str, AfterValidator(_check_name), Field(json_schema_extra={"pattern": NAME_PATTERN})]
SemVer = Annotated[str, BeforeValidator(_check_semver), Field(json_schema_extra={"format": "semver"})]
ConstraintText = Annotated[str, BeforeValidator(_constraint_text, json_schema_input_type=str | int | float)]
RelPath = Annotated[str, AfterValidator(_check_relpath)]
RepositoryRef = Annotated[str | None, AfterValidator(_check_repository)]


def parse_forge_source(source: str) -> tuple[str, str, str]:
    """Split ``forge://<namespace>/<component>[:<version>]`` into (namespace, component, constraint).

    ``<namespace>`` is a registered repository name or ``owner/repo``. A version that is a
    plain semantic version (``2.1.0`` or ``v2.1.0``) means exactly that version (``=2.1.0``);
    other text (``^2.1``, ``latest``) is kept as a constraint; no version means ``*``.
    Raises ValueError with a message that says what is wrong.
    """
    if not isinstance(source, str) or not source.startswith("forge://"):
        raise ValueError(f"{source!r} is not a forge:// reference (forge://<namespace>/<component>:<version>)")
    rest = source[len("forge://") :]
    head, _, last = rest.rpartition("/")
    component, colon, version = last.partition(":")
    if not head:
        raise ValueError(f"{source!r} has no namespace (forge://<namespace>/<component>:<version>)")
    namespace_parts = head.split("/")
    if len(namespace_parts) > 2 or not all(namespace_parts):
        raise ValueError(f"{source!r}: namespace {head!r} must be a repository name or owner/repo")
    for part in namespace_parts:
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", part):
            raise ValueError(f"{source!r}: namespace {head!r} is not valid")
    if not is_valid_name(component):
        raise ValueError(f"{source!r}: component name {component!r} is not valid")
    if colon and not version:
        raise ValueError(f"{source!r}: empty version after ':'")
    if not colon:
        return head, component, "*"
    bare = version[1:] if version[:1] in ("v", "V") else version
    try:
        semver.Version.parse(bare)
    except ValueError:
        return head, component, version
    return head, component, f"={bare}"


# --------------------------------------------------------------------------- dependencies


class DependencySpec(BaseModel):
    """One dependency, normalised from any accepted spelling."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    component: str
    group: DependencyGroup
    repository: str | None = None
    """The reference as written (normalise with ``urls.normalise_repository_url``); None = same repository."""
    namespace: str | None = None
    """From the ``forge://<namespace>/…`` short form: a repository name or ``owner/repo``."""
    version: str = "*"
    kind: DependencyKind = "normal"
    optional: bool = False
    role: str | None = None


class DependencyEntry(BaseModel):
    """One entry as written under ``spec.dependencies.<group>`` (or a short-form entry)."""

    model_config = ConfigDict(extra="allow")

    component: Name | None = None
    name: Name | None = None
    repository: RepositoryRef = None
    source: str | None = None
    version: ConstraintText | None = None
    optional: bool | None = None
    required: bool | None = None
    role: str | None = None
    kind: str | None = None
    type: str | None = None
    group: str | None = None

    @field_validator("kind", "group")
    @classmethod
    def _known_group_word(cls, value: str | None) -> str | None:
        if value is not None and value.lower() not in _GROUP_WORDS:
            raise ValueError(f"{value!r} is not a component kind (expected Tool, Prompt or Agent)")
        return value

    @field_validator("source")
    @classmethod
    def _forge_source(cls, value: str | None) -> str | None:
        if value is not None:
            parse_forge_source(value)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.component and self.name and self.component != self.name:
            raise _at(".name", f"{self.name!r} differs from component {self.component!r}")
        if self.optional is not None and self.required is not None and self.optional == self.required:
            raise _at(".required", "contradicts 'optional'")
        if self.source is not None:
            _, from_source, version = parse_forge_source(self.source)
            given = self.component or self.name
            if given and given != from_source:
                raise _at(".source", f"names component {from_source!r} but the entry says {given!r}")
            if self.repository is not None:
                raise _at(".repository", "give either 'source' (forge://) or 'repository', not both")
            if version != "*" and self.version is not None and self.version != version:
                raise _at(".version", f"{self.version!r} differs from the version in source ({version!r})")
        elif not (self.component or self.name):
            raise _at(".component", "is required (or 'name', or a forge:// 'source')")
        return self

    def to_spec(self, group: DependencyGroup | None, kind: DependencyKind) -> DependencySpec:
        """Normalise; ``group`` None means "infer it" (peer and dev entries)."""
        namespace: str | None = None
        component = self.component or self.name
        version = self.version
        if self.source is not None:
            namespace, component, source_version = parse_forge_source(self.source)
            if source_version != "*":
                version = source_version
        if group is None:
            group = "tools"
            for word in (self.group, self.kind, self.type):
                if word is not None and word.lower() in _GROUP_WORDS:
                    group = _GROUP_WORDS[word.lower()]
                    break
        optional = bool(self.optional) if self.optional is not None else self.required is False
        assert component is not None  # guaranteed by _consistent
        return DependencySpec(
            component=component,
            group=group,
            repository=self.repository,
            namespace=namespace,
            version=version or "*",
            kind=kind,
            optional=optional,
            role=self.role,
        )


def _entry_from_string(value: Any) -> Any:
    if isinstance(value, str):
        return {"source": value} if value.startswith("forge://") else {"component": value}
    return value


Entry = Annotated[DependencyEntry, BeforeValidator(_entry_from_string, json_schema_input_type=DependencyEntry | str)]
EntryList = Annotated[list[Entry], BeforeValidator(_none_to_list, json_schema_input_type=list[Entry] | None)]


class DependencyBlock(BaseModel):
    """``spec.dependencies``: the five known groups, nothing else (a typo must not drop deps)."""

    model_config = ConfigDict(extra="forbid")

    tools: EntryList = []
    prompts: EntryList = []
    agents: EntryList = []
    peer: EntryList = []
    dev: EntryList = []

    @model_validator(mode="before")
    @classmethod
    def _known_groups(cls, data: Any) -> Any:
        return _only_known_keys(cls, data, "dependency group (expected tools, prompts, agents, peer or dev)")

    def specs(self) -> list[DependencySpec]:
        out: list[DependencySpec] = []
        for group in ("tools", "prompts", "agents"):
            out.extend(entry.to_spec(group, "normal") for entry in getattr(self, group))
        out.extend(entry.to_spec(None, "peer") for entry in self.peer)
        out.extend(entry.to_spec(None, "dev") for entry in self.dev)
        return out


def _short_form_entries(spec: BaseModel) -> list[tuple[DependencyGroup, int, DependencyEntry]]:
    """Validate the ``spec.tools[]``/``prompts[]``/``agents[]`` entries that are dependencies."""
    found: list[tuple[DependencyGroup, int, DependencyEntry]] = []
    extra = spec.model_extra or {}
    groups: tuple[DependencyGroup, ...] = ("tools", "prompts", "agents")
    for group in groups:
        items = extra.get(group)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            is_ref = (isinstance(item, str) and item.startswith("forge://")) or (
                isinstance(item, Mapping) and "source" in item
            )
            if not is_ref:
                continue  # an inline definition, not a dependency
            try:
                entry = DependencyEntry.model_validate(_entry_from_string(item))
            except ValidationError as exc:
                sub, message = _first_error(exc)
                raise _at(f".{group}[{index}]{sub}", message) from None
            found.append((group, index, entry))
    return found


# --------------------------------------------------------------------------- base document


class _Document(BaseModel):
    """Common header and raw-mapping retention of every forge.dev/v1 document."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    api_version: Literal["forge.dev/v1"] = Field(alias="apiVersion")
    _raw: dict[str, Any] = PrivateAttr(default_factory=dict)

    @model_validator(mode="wrap")
    @classmethod
    def _keep_raw(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        document = handler(data)
        if isinstance(data, Mapping):
            document._raw = copy.deepcopy(dict(data))
        return document

    @property
    def raw(self) -> dict[str, Any]:
        """The mapping exactly as read (unknown fields included); stored as ``definition``."""
        return self._raw


# --------------------------------------------------------------------------- manifest


class ManifestMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Name
    description: str | None = None


class RepositoryInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: Literal["tools", "prompts", "agents", "compositions", "mixed"] = "mixed"


class ManifestEntry(BaseModel):
    """A listed component or composition: its name and the repository-relative path."""

    model_config = ConfigDict(extra="allow")

    name: Name
    path: RelPath


ManifestEntryList = Annotated[
    list[ManifestEntry], BeforeValidator(_none_to_list, json_schema_input_type=list[ManifestEntry] | None)
]


class ManifestComponents(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tools: ManifestEntryList = []
    prompts: ManifestEntryList = []
    agents: ManifestEntryList = []

    @model_validator(mode="before")
    @classmethod
    def _known_groups(cls, data: Any) -> Any:
        return _only_known_keys(cls, data, "component group (expected tools, prompts or agents)")


class RepositoryManifest(_Document):
    """``forge-manifest.yaml``: what a repository offers and where (FORMATS.md §1)."""

    kind: Literal["ComponentRepository"]
    metadata: ManifestMetadata
    repository: Annotated[
        RepositoryInfo, BeforeValidator(_none_to_dict, json_schema_input_type=RepositoryInfo | None)
    ] = Field(default_factory=RepositoryInfo)
    components: Annotated[
        ManifestComponents, BeforeValidator(_none_to_dict, json_schema_input_type=ManifestComponents | None)
    ] = Field(default_factory=ManifestComponents)
    compositions: ManifestEntryList = []

    @model_validator(mode="after")
    def _unique_names(self) -> Self:
        lists: list[tuple[str, list[ManifestEntry]]] = [
            ("components.tools", self.components.tools),
            ("components.prompts", self.components.prompts),
            ("components.agents", self.components.agents),
            ("compositions", self.compositions),
        ]
        for field, entries in lists:
            first_at: dict[str, int] = {}
            for index, entry in enumerate(entries):
                if entry.name in first_at:
                    raise _at(
                        f"{field}[{index}].name",
                        f"duplicate name {entry.name!r} (also at {field}[{first_at[entry.name]}].name)",
                    )
                first_at[entry.name] = index
        return self

    def component_entries(self) -> list[tuple[DependencyGroup, ManifestEntry]]:
        """Every listed component with its group, in file order."""
        groups: tuple[DependencyGroup, ...] = ("tools", "prompts", "agents")
        return [(group, entry) for group in groups for entry in getattr(self.components, group)]


# --------------------------------------------------------------------------- components


class PromptVariable(BaseModel):
    """A prompt template variable (FORMATS.md §2)."""

    model_config = ConfigDict(extra="allow")

    name: Annotated[str, Field(json_schema_extra={"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"})]
    type: Literal["string", "number", "integer", "boolean", "array", "object"] = "string"
    required: bool = False
    default: Any = None
    enum: list[Any] | None = None
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _identifier(cls, value: str) -> str:
        if not _VARIABLE_RE.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid variable name (letters, digits, '_')")
        return value

    def type_matches(self, value: Any) -> bool:
        """True when ``value`` has this variable's JSON type (booleans are not numbers)."""
        if self.type == "string":
            return isinstance(value, str)
        if self.type == "boolean":
            return isinstance(value, bool)
        if self.type == "integer":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.type == "number":
            return isinstance(value, int | float) and not isinstance(value, bool)
        if self.type == "array":
            return isinstance(value, list)
        return isinstance(value, dict)

    @model_validator(mode="after")
    def _default_fits(self) -> Self:
        if self.enum is not None:
            for index, option in enumerate(self.enum):
                if not self.type_matches(option):
                    raise _at(f".enum[{index}]", f"{option!r} is not of type {self.type}")
        if self.default is not None:
            if not self.type_matches(self.default):
                raise _at(".default", f"{self.default!r} is not of type {self.type}")
            if self.enum is not None and self.default not in self.enum:
                raise _at(".default", f"{self.default!r} is not one of the enum values")
        return self


class ComponentMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Name
    version: SemVer
    description: str | None = None
    author: str | None = None
    license: str | None = None
    tags: Annotated[list[str], BeforeValidator(_none_to_list, json_schema_input_type=list[str] | None)] = []


class ComponentSpec(BaseModel):
    """Free-form beyond the fields below; dependencies are common to every kind."""

    model_config = ConfigDict(extra="allow")

    dependencies: Annotated[
        DependencyBlock, BeforeValidator(_none_to_dict, json_schema_input_type=DependencyBlock | None)
    ] = Field(default_factory=DependencyBlock)
    _short_forms: list[tuple[DependencyGroup, int, DependencyEntry]] = PrivateAttr(default_factory=list)

    @model_validator(mode="after")
    def _collect_short_forms(self) -> Self:
        self._short_forms = _short_form_entries(self)
        return self

    def dependency_specs(self) -> list[DependencySpec]:
        specs = self.dependencies.specs()
        specs.extend(entry.to_spec(group, "normal") for group, _, entry in self._short_forms)
        return specs


class ToolSpec(ComponentSpec):
    type: Literal["mcp-server", "function", "webhook", "grpc"] | None = None
    runtime: Any = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    config: dict[str, Any] | None = None


class PromptSpec(ComponentSpec):
    type: Literal["system", "template", "task"] | None = None
    template: str | None = None
    template_file: RelPath | None = None
    variables: Annotated[
        list[PromptVariable], BeforeValidator(_none_to_list, json_schema_input_type=list[PromptVariable] | None)
    ] = []

    @model_validator(mode="after")
    def _unique_variables(self) -> Self:
        seen: dict[str, int] = {}
        for index, variable in enumerate(self.variables):
            if variable.name in seen:
                raise _at(
                    f".variables[{index}].name",
                    f"duplicate variable {variable.name!r} (also at variables[{seen[variable.name]}])",
                )
            seen[variable.name] = index
        return self


class LlmSettings(BaseModel):
    model_config = ConfigDict(extra="allow")

    provider: str | None = None
    model: str | None = None
    temperature: float | None = None
    max_tokens: Annotated[int, Field(ge=1)] | None = None


class AgentSpec(ComponentSpec):
    llm: LlmSettings | None = None
    behavior: dict[str, Any] | None = None


class ComponentDocument(_Document):
    """``component.yaml`` (FORMATS.md §2). Parsed documents are of the subclass for their kind."""

    kind: Literal["Tool", "Prompt", "Agent"]
    metadata: ComponentMetadata
    spec: Annotated[ComponentSpec, BeforeValidator(_none_to_dict, json_schema_input_type=ComponentSpec | None)] = Field(
        default_factory=ComponentSpec
    )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    @property
    def group(self) -> DependencyGroup:
        """``tools`` / ``prompts`` / ``agents``: the manifest group and lock-file kind family."""
        return GROUP_OF_KIND[self.kind]

    def dependencies(self) -> list[DependencySpec]:
        """Every dependency: long form (tools, prompts, agents, peer, dev), then the short forms."""
        return self.spec.dependency_specs()


class ToolDocument(ComponentDocument):
    kind: Literal["Tool"]
    spec: Annotated[ToolSpec, BeforeValidator(_none_to_dict, json_schema_input_type=ToolSpec | None)] = Field(
        default_factory=ToolSpec
    )


class PromptDocument(ComponentDocument):
    kind: Literal["Prompt"]
    spec: Annotated[PromptSpec, BeforeValidator(_none_to_dict, json_schema_input_type=PromptSpec | None)] = Field(
        default_factory=PromptSpec
    )


class AgentDocument(ComponentDocument):
    kind: Literal["Agent"]
    spec: Annotated[AgentSpec, BeforeValidator(_none_to_dict, json_schema_input_type=AgentSpec | None)] = Field(
        default_factory=AgentSpec
    )


_COMPONENT_CLASSES: dict[str, type[ComponentDocument]] = {
    "Tool": ToolDocument,
    "Prompt": PromptDocument,
    "Agent": AgentDocument,
}


# --------------------------------------------------------------------------- compositions


class CompositionMetadata(BaseModel):
    model_config = ConfigDict(extra="allow")

    name: Name
    version: SemVer
    description: str | None = None


ConfigMap = Annotated[dict[str, Any], BeforeValidator(_none_to_dict, json_schema_input_type=dict[str, Any] | None)]


class CompositionOverrides(BaseModel):
    """Per-component spec overrides, by group then component name."""

    model_config = ConfigDict(extra="forbid")

    tools: Annotated[
        dict[Name, ConfigMap], BeforeValidator(_none_to_dict, json_schema_input_type=dict[Name, ConfigMap] | None)
    ] = {}
    prompts: Annotated[
        dict[Name, ConfigMap], BeforeValidator(_none_to_dict, json_schema_input_type=dict[Name, ConfigMap] | None)
    ] = {}
    agents: Annotated[
        dict[Name, ConfigMap], BeforeValidator(_none_to_dict, json_schema_input_type=dict[Name, ConfigMap] | None)
    ] = {}

    @model_validator(mode="before")
    @classmethod
    def _known_groups(cls, data: Any) -> Any:
        if isinstance(data, Mapping):
            for key in data:
                if key not in cls.model_fields:
                    raise _at(f".{key}", "unknown override group (expected tools, prompts or agents)")
        return data


class CompositionSpec(ComponentSpec):
    configuration: ConfigMap = {}
    overrides: Annotated[
        CompositionOverrides, BeforeValidator(_none_to_dict, json_schema_input_type=CompositionOverrides | None)
    ] = Field(default_factory=CompositionOverrides)
    environments: Annotated[
        dict[str, ConfigMap], BeforeValidator(_none_to_dict, json_schema_input_type=dict[str, ConfigMap] | None)
    ] = {}
    deployment: ConfigMap = {}


class CompositionDocument(_Document):
    """``kind: Composition`` (FORMATS.md §4)."""

    kind: Literal["Composition"]
    metadata: CompositionMetadata
    spec: Annotated[CompositionSpec, BeforeValidator(_none_to_dict, json_schema_input_type=CompositionSpec | None)] = (
        Field(default_factory=CompositionSpec)
    )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def version(self) -> str:
        return self.metadata.version

    def dependencies(self) -> list[DependencySpec]:
        """Every dependency of the composition (``name``/``component``, ``required: false`` = optional)."""
        return self.spec.dependency_specs()


# --------------------------------------------------------------------------- parsing


def _loc_to_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _error_text(error: Mapping[str, Any]) -> tuple[str, str]:
    """(field path, message) for one pydantic error, in our words."""
    path = _loc_to_path(tuple(error.get("loc", ())))
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid"))
    if kind in ("value_error", "assertion_error"):
        message = message.split(", ", 1)[1] if ", " in message else message
        if message.startswith("@"):
            sub, _, message = message[1:].partition(": ")
            path = f"{path}{sub}" if path else sub.lstrip(".")
    elif kind == "missing":
        message = "is required"
    elif kind == "extra_forbidden":
        message = "unknown field"
    elif kind == "literal_error":
        expected = (error.get("ctx") or {}).get("expected", "")
        message = f"{_short_repr(error.get('input'))} is not allowed (expected {expected})"
    else:
        message = f"{message} (got {_short_repr(error.get('input'))})"
    return path, message


def _first_error(exc: ValidationError) -> tuple[str, str]:
    path, message = _error_text(exc.errors()[0])
    return (("." + path) if path and not path.startswith("[") else path), message


def format_validation_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field path, message) for every problem of a pydantic ValidationError, in our words."""
    return [_error_text(error) for error in exc.errors()]


def _document_error(exc: ValidationError, source: str) -> DocumentError:
    problems = format_validation_errors(exc)
    lines = [f"{source}: {path}: {message}" if path else f"{source}: {message}" for path, message in problems]
    return DocumentError(
        "\n".join(lines),
        hint=_SCHEMA_HINT,
        details={"source": source, "errors": [{"path": p, "message": m} for p, m in problems]},
    )


def _load_mapping(data: bytes | str | Mapping[str, Any], source: str) -> dict[str, Any]:
    document: Any = dict(data) if isinstance(data, Mapping) else load_document(data, source=source)
    if document is None:
        raise DocumentError(f"{source}: document is empty", hint=_SCHEMA_HINT)
    if not isinstance(document, dict):
        raise DocumentError(
            f"{source}: expected a mapping at the top level, got {type(document).__name__}", hint=_SCHEMA_HINT
        )
    return document


def _check_header(document: Mapping[str, Any], source: str, expected: tuple[str, ...]) -> str:
    api_version = document.get("apiVersion")
    if api_version is None:
        raise DocumentError(f"{source}: apiVersion: is required (expected {API_VERSION!r})", hint=_SCHEMA_HINT)
    if api_version != API_VERSION:
        raise DocumentError(
            f"{source}: apiVersion: unsupported apiVersion {_short_repr(api_version)} (expected {API_VERSION!r})",
            hint=_SCHEMA_HINT,
        )
    kind = document.get("kind")
    if kind is None:
        raise DocumentError(f"{source}: kind: is required (one of {', '.join(expected)})", hint=_SCHEMA_HINT)
    if kind not in expected:
        raise DocumentError(
            f"{source}: kind: unknown or unexpected kind {_short_repr(kind)} (expected {', '.join(expected)})",
            hint=_SCHEMA_HINT,
        )
    return str(kind)


def parse_manifest(data: bytes | str | Mapping[str, Any], *, source: str) -> RepositoryManifest:
    """Read a ``forge-manifest.yaml``; raise DocumentError naming ``source`` and the field."""
    document = _load_mapping(data, source)
    _check_header(document, source, ("ComponentRepository",))
    try:
        return RepositoryManifest.model_validate(document)
    except ValidationError as exc:
        raise _document_error(exc, source) from None


def parse_component(data: bytes | str | Mapping[str, Any], *, source: str) -> ComponentDocument:
    """Read a ``component.yaml``; the result is a Tool/Prompt/AgentDocument."""
    document = _load_mapping(data, source)
    kind = _check_header(document, source, COMPONENT_KINDS)
    try:
        return _COMPONENT_CLASSES[kind].model_validate(document)
    except ValidationError as exc:
        raise _document_error(exc, source) from None


#: What ``parse_components`` gives for a document that parsed: (kind, name, version, the mapping as read).
ParsedComponent = tuple[str, str, str, dict[str, Any]]


def parse_components(items: Sequence[tuple[bytes, str]]) -> list[ParsedComponent | str]:
    """``parse_component`` over many ``(data, source)`` pairs: per item, the parsed facts or the
    error message. Plain values only, so a batch can be parsed in another process
    (``agentforge.parsepool``) and sent back."""
    out: list[ParsedComponent | str] = []
    for data, source in items:
        try:
            doc = parse_component(data, source=source)
        except AgentForgeError as exc:
            out.append(exc.message)
            continue
        out.append((doc.kind, doc.name, doc.version, doc.raw))
    return out


def parse_composition(data: bytes | str | Mapping[str, Any], *, source: str) -> CompositionDocument:
    """Read a composition document."""
    document = _load_mapping(data, source)
    _check_header(document, source, ("Composition",))
    try:
        return CompositionDocument.model_validate(document)
    except ValidationError as exc:
        raise _document_error(exc, source) from None


def parse_any(
    data: bytes | str | Mapping[str, Any], *, source: str
) -> RepositoryManifest | ComponentDocument | CompositionDocument:
    """Read any forge.dev/v1 document, dispatching on its ``kind``."""
    document = _load_mapping(data, source)
    kind = _check_header(document, source, ("ComponentRepository", *COMPONENT_KINDS, "Composition"))
    if kind == "ComponentRepository":
        return parse_manifest(document, source=source)
    if kind == "Composition":
        return parse_composition(document, source=source)
    return parse_component(document, source=source)
