"""A small component library and a composition over it, synced into the test database.

    stack = lib_stack(...)            # repo "stack": tool lookup, prompt greet, agent helper @ v1.0.0
    import_composition(tmp_path, COMPOSITION)

Every instance process a test starts (in this process or through the CLI) is stopped by the
``instances`` fixture's finalizer: pids come from the database and the supervisor's registry.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.gitfactory import GitRepoFactory, RepoHandle
from tests.lock.conftest import Library


def component_files(version: str = "1.0.0", *, tool_config: dict[str, Any] | None = None,
                    greeting: str = "Hello") -> dict[str, str | bytes | None]:
    tool = {"apiVersion": "forge.dev/v1", "kind": "Tool", "metadata": {"name": "lookup", "version": version},
            "spec": {"type": "function", "config": tool_config or {"timeout": 30, "retries": 1}}}
    prompt = {"apiVersion": "forge.dev/v1", "kind": "Prompt", "metadata": {"name": "greet", "version": version},
              "spec": {"type": "system", "template_file": "template.txt",
                       "variables": [{"name": "name", "type": "string", "required": True}]}}
    agent = {"apiVersion": "forge.dev/v1", "kind": "Agent", "metadata": {"name": "helper", "version": version},
             "spec": {"llm": {"provider": "echo", "model": "base-model"},
                      "dependencies": {"prompts": [{"component": "greet", "version": f"^{version}"}],
                                       "tools": [{"component": "lookup", "version": f"^{version}"}]}}}
    return {
        "forge-manifest.yaml": yaml.safe_dump({
            "apiVersion": "forge.dev/v1", "kind": "ComponentRepository", "metadata": {"name": "stack"},
            "repository": {"type": "mixed"},
            "components": {"tools": [{"name": "lookup", "path": "tools/lookup"}],
                           "prompts": [{"name": "greet", "path": "prompts/greet"}],
                           "agents": [{"name": "helper", "path": "agents/helper"}]}}),
        "tools/lookup/component.yaml": yaml.safe_dump(tool),
        "tools/lookup/main.py": f"VERSION = {version!r}\n",
        "prompts/greet/component.yaml": yaml.safe_dump(prompt),
        "prompts/greet/template.txt": greeting + ", {{ name }}!",
        "agents/helper/component.yaml": yaml.safe_dump(agent),
    }


def composition(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "apiVersion": "forge.dev/v1", "kind": "Composition",
        "metadata": {"name": "helpdesk", "version": "1.0.0", "description": "test stack"},
        "spec": {
            "dependencies": {"agents": [{"name": "helper", "version": "^1.0.0"}],
                             "prompts": [{"name": "greet", "version": ">=1.0.0", "role": "system"}]},
            "configuration": {"llm": {"provider": "echo", "model": "big-model", "api_key": "${HELPDESK_KEY:-none}"},
                              "runtime": {"timeout": 60}},
            "overrides": {"tools": {"lookup": {"config": {"timeout": 45}}}},
            "environments": {"development": {"llm": {"model": "small-model"}},
                             "production": {"runtime": {"timeout": 300}}},
            "deployment": {"instances": 1,
                           "health_checks": {"readiness_probe": {"endpoint": "/health/ready", "timeout": 3}}},
        },
    }
    for path, value in changes.items():
        target = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target.setdefault(key, {})
        target[keys[-1]] = value
    return doc


def write_composition(folder: Path, doc: dict[str, Any], name: str = "helpdesk.yaml") -> Path:
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def stop_all_instances(engine: sa.Engine) -> None:
    from agentforge.runtime import supervisor

    with engine.connect() as conn:
        pids = {p for (p,) in conn.execute(sa.text("SELECT pid FROM composition_instances WHERE pid IS NOT NULL"))}
    for pid in pids | set(supervisor._children):
        supervisor.stop_instance(pid, timeout=5)


class Stack(Library):
    def stack(self, **kw: Any) -> RepoHandle:
        handle = self.factory.create("stack", files=component_files(**kw), tag="v1.0.0")
        self.handles["stack"] = handle
        self.register(handle)
        return handle


@pytest.fixture()
def lib(clean_db: sa.Engine, home: Path, tmp_path: Path) -> Iterator[Stack]:
    """Database + home + git factory; every instance process is stopped afterwards."""
    library = Stack(GitRepoFactory(tmp_path / "git"), clean_db)
    try:
        yield library
    finally:
        stop_all_instances(clean_db)


@pytest.fixture()
def stack(lib: Stack, tmp_path: Path) -> Stack:
    """The stack synced and the helpdesk composition imported (not locked, not deployed)."""
    from agentforge.services.compose import import_file

    lib.stack()
    lib.sync()
    import_file(write_composition(tmp_path, composition()))
    return lib
