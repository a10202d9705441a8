"""The committed JSON Schemas must match the models; they must also accept real documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agentforge.core.schemas import SCHEMA_DIR, render_schemas, stale_schemas, write_schemas

EXPECTED = {"manifest.schema.json", "component.schema.json", "composition.schema.json", "lockfile.schema.json"}


def test_committed_schemas_are_fresh() -> None:
    stale = stale_schemas()
    assert not stale, f"regenerate with `python -m agentforge.core.schemas`: stale {stale}"


def test_rendering_is_deterministic_and_complete() -> None:
    first, second = render_schemas(), render_schemas()
    assert first == second
    assert set(first) == EXPECTED
    for name, text in first.items():
        schema = json.loads(text)
        assert schema["$schema"].startswith("https://json-schema.org/")
        assert schema["$id"].endswith(name)
        assert text.endswith("\n") and "\r" not in text


def test_component_schema_is_discriminated_by_kind() -> None:
    schema = json.loads(render_schemas()["component.schema.json"])
    assert set(schema["discriminator"]["mapping"]) == {"Tool", "Prompt", "Agent"}
    manifest = json.loads(render_schemas()["manifest.schema.json"])
    assert "apiVersion" in manifest["properties"]


def test_write_and_check_via_the_module_entry_point(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    assert {p.name for p in written} == EXPECTED
    assert stale_schemas(tmp_path) == []
    (tmp_path / "lockfile.schema.json").write_text("{}\n")
    assert stale_schemas(tmp_path) == ["lockfile.schema.json"]
    check = subprocess.run(
        [sys.executable, "-m", "agentforge.core.schemas", "--check"], capture_output=True, text=True, check=False
    )
    assert check.returncode == 0, check.stderr
    assert SCHEMA_DIR.is_dir()


def test_schemas_accept_documents_the_parsers_accept() -> None:
    import pytest

    jsonschema = pytest.importorskip("jsonschema")  # present through prefect; optional here
    from agentforge.core.lockfile import render_lock
    from agentforge.core.yamlio import load_document
    from tests.core.test_documents import MANIFEST, TOOL
    from tests.core.test_lockfile import EXAMPLE

    schemas = {name: json.loads(text) for name, text in render_schemas().items()}
    cases = [
        ("manifest.schema.json", load_document(MANIFEST, source="m")),
        ("component.schema.json", load_document(TOOL, source="t")),
        ("lockfile.schema.json", load_document(render_lock(EXAMPLE), source="l")),
        (
            "composition.schema.json",
            {
                "apiVersion": "forge.dev/v1",
                "kind": "Composition",
                "metadata": {"name": "s", "version": "1.0.0"},
                "spec": {"overrides": {"tools": {"a": {"x": 1}}}, "environments": {"dev": {}}},
            },
        ),
    ]
    for name, document in cases:
        jsonschema.validate(document, schemas[name])
    bad = {"apiVersion": "forge.dev/v2", "kind": "Tool", "metadata": {"name": "x", "version": "1.0.0"}}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schemas["component.schema.json"])
