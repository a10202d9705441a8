"""Fixtures for the runtime tests: a bundle on disk and a throwaway PostgreSQL database.

The real ``composition_instances`` table belongs to the migrations; these tests create a
table with the same columns (snake_case, as in /work/shared/seed/database-schema.md plus
``updated_at``) in a uniquely named database, dropped afterwards.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

ADMIN_URL = os.environ.get("AGENTFORGE_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

INSTANCES_TABLE = """
CREATE TABLE composition_instances (
    id uuid PRIMARY KEY,
    composition_id uuid NOT NULL,
    name varchar(255) NOT NULL,
    config jsonb NOT NULL DEFAULT '{}',
    status text NOT NULL DEFAULT 'STOPPED',
    request_count bigint NOT NULL DEFAULT 0,
    error_count bigint NOT NULL DEFAULT 0,
    avg_response_time double precision,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz
)
"""


def _with_database(url: str, name: str) -> str:
    """The same server URL with another database name (kept a URL: that is what the runtime is given)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.startswith("postgres"):
        return urllib.parse.urlunsplit(parts._replace(path=f"/{name}"))
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = name
    return psycopg.conninfo.make_conninfo(**info)


class MetricsDb:
    """A throwaway database with a composition_instances table, and helpers over it."""

    def __init__(self, url: str) -> None:
        self.url = url

    def add_instance(self, instance_id: str, **columns: Any) -> None:
        add_instance_row(self.url, instance_id, **columns)

    def row(self, instance_id: str) -> dict[str, Any]:
        return instance_row(self.url, instance_id)

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]


@pytest.fixture
def metrics_db() -> Iterator[MetricsDb]:
    """A fresh database holding an empty composition_instances table."""
    try:
        admin = psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL at {ADMIN_URL}: {exc}")
    name = f"agentforge_runtime_test_{uuid.uuid4().hex[:12]}"
    with admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        url = _with_database(ADMIN_URL, name)
        try:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(INSTANCES_TABLE)
            yield MetricsDb(url)
        finally:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def add_instance_row(url: str, instance_id: str, **columns: Any) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO composition_instances (id, composition_id, name, request_count, error_count,"
            " avg_response_time) VALUES (%s, %s, 'default', %s, %s, %s)",
            (
                instance_id,
                str(uuid.uuid4()),
                columns.get("request_count", 0),
                columns.get("error_count", 0),
                columns.get("avg_response_time"),
            ),
        )


def instance_row(url: str, instance_id: str) -> dict[str, Any]:
    with psycopg.connect(url) as conn, conn.cursor(row_factory=psycopg.rows.dict_row) as cur:
        cur.execute(
            "SELECT request_count, error_count, avg_response_time, updated_at FROM composition_instances WHERE id = %s",
            (instance_id,),
        )
        row = cur.fetchone()
    assert row is not None
    return dict(row)


def write_bundle(
    root: Path,
    *,
    settings: dict[str, Any] | None = None,
    components: dict[str, Any] | None = None,
    files: dict[str, str] | None = None,
    instance_id: str | None = None,
) -> Path:
    """Write a bundle directory the way the deploy flow does: resolved.json + components/<name>/."""
    root.mkdir(parents=True, exist_ok=True)
    components = components if components is not None else sample_components()
    for name in components:
        (root / "components" / name).mkdir(parents=True, exist_ok=True)
    for relative, text in (files if files is not None else sample_files()).items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    document = {
        "composition": {
            "name": "sales-stack",
            "version": "1.0.0",
            "environment": "development",
            "lock_hash": "sha256:" + "0" * 64,
        },
        "instance": {"id": instance_id or str(uuid.uuid4()), "name": "default"},
        "settings": settings if settings is not None else sample_settings(),
        "components": components,
    }
    (root / "resolved.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    return root


def sample_settings() -> dict[str, Any]:
    return {
        "llm": {"provider": "echo", "model": "small-model", "api_key": "${SALES_API_KEY:-none}"},
        "runtime": {"timeout": 5},
        "deployment": {
            "instances": 1,
            "health_checks": {"readiness_probe": {"endpoint": "/ready", "timeout": 3}},
        },
    }


def _component(name: str, kind: str, spec: dict[str, Any], role: str | None = None) -> dict[str, Any]:
    return {
        "key": f"github.com/acme/sales/{name}",
        "kind": kind,
        "version": "1.2.0",
        "commit": "a" * 40,
        "path": f"components/{name}",
        "metadata": {"name": name, "version": "1.2.0"},
        "spec": spec,
        "role": role,
    }


def sample_components() -> dict[str, Any]:
    return {
        "sales-system": _component(
            "sales-system",
            "Prompt",
            {
                "type": "template",
                "template_file": "system.md",
                "variables": [{"name": "company", "type": "string", "default": "Acme"}],
            },
            role="system",
        ),
        "greeting": _component(
            "greeting",
            "Prompt",
            {
                "type": "task",
                "template": "Hello {{name}}, tone={{ tone }}, limit={{ limit }}",
                "variables": [
                    {"name": "name", "type": "string", "required": True},
                    {"name": "tone", "type": "string", "enum": ["formal", "casual"], "default": "formal"},
                    {"name": "limit", "type": "integer", "default": 3},
                ],
            },
        ),
        "crm-lookup": _component("crm-lookup", "Tool", {"type": "function", "config": {"timeout": 45}}),
        "sales-agent": _component(
            "sales-agent",
            "Agent",
            {
                "llm": {"provider": "echo", "model": "small-model"},
                "dependencies": {"prompts": [{"component": "greeting", "version": "^1.0.0"}]},
                "prompts": [{"source": "forge://acme/sales-system:v1.2.0"}],
            },
        ),
    }


def sample_files() -> dict[str, str]:
    return {"components/sales-system/system.md": "You are the sales assistant of {{ company }}."}


class Samples:
    settings = staticmethod(sample_settings)
    components = staticmethod(sample_components)
    files = staticmethod(sample_files)


@pytest.fixture
def samples() -> type[Samples]:
    return Samples


@pytest.fixture
def make_bundle() -> Any:
    """``make_bundle(root, settings=..., components=..., files=..., instance_id=...) -> Path``."""
    return write_bundle
