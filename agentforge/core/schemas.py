"""JSON Schemas of the four documents, generated from the pydantic models.

``python -m agentforge.core.schemas`` writes ``agentforge/schemas/{manifest,component,
composition,lockfile}.schema.json``; ``--check`` only reports stale files (exit 1), for CI.
Editors can point ``yaml.schemas`` at these files to validate users' YAML. The output is
deterministic (sorted keys, two-space indent, trailing newline) so a test can compare the
committed files with a fresh rendering.

The schemas describe structure; a few checks only the parser can make (semantic versions,
duplicate names, ``..`` in paths) are noted in the schema as ``pattern``/``format`` hints.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, TypeAdapter

from agentforge.core.documents import (
    AgentDocument,
    CompositionDocument,
    PromptDocument,
    RepositoryManifest,
    ToolDocument,
)
from agentforge.core.lockfile import LockFile

__all__ = ["SCHEMA_DIR", "render_schemas", "stale_schemas", "write_schemas"]

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_ComponentUnion = Annotated[ToolDocument | PromptDocument | AgentDocument, Field(discriminator="kind")]


def _schema(adapter: TypeAdapter[Any], title: str, file_name: str) -> str:
    schema = adapter.json_schema(by_alias=True, mode="validation")
    schema = {"$schema": _DIALECT, "$id": f"https://forge.dev/schemas/v1/{file_name}", "title": title, **schema}
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def render_schemas() -> dict[str, str]:
    """File name → schema text, for the four documents."""
    targets: list[tuple[str, TypeAdapter[Any], str]] = [
        ("manifest.schema.json", TypeAdapter(RepositoryManifest), "AgentForge repository manifest"),
        ("component.schema.json", TypeAdapter(_ComponentUnion), "AgentForge component (Tool, Prompt, Agent)"),
        ("composition.schema.json", TypeAdapter(CompositionDocument), "AgentForge composition"),
        ("lockfile.schema.json", TypeAdapter(LockFile), "AgentForge lock file (forge-lock.yaml)"),
    ]
    return {name: _schema(adapter, title, name) for name, adapter, title in targets}


def stale_schemas(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of schema files under ``directory`` that are missing or differ from a fresh rendering."""
    stale = []
    for name, text in render_schemas().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_schemas(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Write every schema file (LF endings) and return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_schemas().items():
        path = directory / name
        path.write_bytes(text.encode("utf-8"))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--check"]:
        stale = stale_schemas()
        for name in stale:
            print(f"stale: {SCHEMA_DIR / name}", file=sys.stderr)
        return 1 if stale else 0
    if args:
        print("usage: python -m agentforge.core.schemas [--check]", file=sys.stderr)
        return 2
    for path in write_schemas():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
