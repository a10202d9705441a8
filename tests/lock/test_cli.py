"""`lock`, `install` and `deps` through the real CLI (subprocesses running real Prefect flows)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentforge.core.lockfile import parse_lock
from tests.cli.helpers import cli
from tests.lock.conftest import Library

pytestmark = pytest.mark.prefect


@pytest.fixture(scope="module")
def prefect_env(prefect_api: None) -> Iterator[dict[str, str]]:
    """Subprocesses use the session's running Prefect API instead of starting their own."""
    from prefect.settings import PREFECT_API_URL

    yield {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


@pytest.fixture()
def project(lib: Library, tmp_path: Path) -> Library:
    lib.repo("tools", {"app": ("1.0.0", {"b": "^1", "c": "~1.0"}), "b": ("1.0.0", {"c": "^1"}), "c": "1.0.0"})
    lib.sync()
    (tmp_path / "work").mkdir()
    return lib


def test_lock_install_frozen_end_to_end(project: Library, tmp_path: Path, prefect_env: dict[str, str]) -> None:
    work = tmp_path / "work"
    # --frozen without a lock: refused, and nothing is written anywhere.
    res = cli("install", "app", "--frozen", "--target", str(tmp_path / "t"), cwd=work, env=prefect_env)
    assert res.code == 2 and "LOCK_MISSING" in res.err and "Traceback" not in res.err
    assert not (work / "forge-lock.yaml").exists() and not (tmp_path / "t").exists()

    # Two processes lock the same inputs: byte-identical files.
    one = cli("lock", "app", cwd=work, env=prefect_env)
    two = cli("lock", "app", "-o", "other.yaml", cwd=work, env=prefect_env)
    assert one.code == 0 and two.code == 0, one.err + two.err
    assert "Wrote forge-lock.yaml (3 packages" in one.out
    assert (work / "forge-lock.yaml").read_bytes() == (work / "other.yaml").read_bytes()

    res = cli("install", "app", "--frozen", "--target", str(tmp_path / "t"), cwd=work, env=prefect_env)
    assert res.code == 0, res.err
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == [".forge", "app", "b", "c"]
    assert project.q("SELECT count(*) FROM components WHERE is_installed AND sync_status = 'SYNCED'") == [(3,)]
    assert project.q("SELECT count(*) FROM component_dependencies") == [(3,)]

    # Hand-edit a checksum: --check exits 1 naming the package; --frozen refuses and changes nothing.
    path = work / "forge-lock.yaml"
    lock = parse_lock(path.read_bytes(), source="x")
    c = next(p for p in lock.packages.values() if p.component == "c")
    path.write_text(path.read_text().replace(c.checksum, "sha256:" + "e" * 64))
    edited = path.read_bytes()
    res = cli("lock", "app", "--check", cwd=work, env=prefect_env)
    assert res.code == 1 and "c 1.0.0: checksum" in res.out, res.out + res.err
    installed = sorted((p.as_posix(), p.stat().st_mtime_ns) for p in (tmp_path / "t").rglob("*"))
    res = cli("install", "app", "--frozen", "--target", str(tmp_path / "t"), cwd=work, env=prefect_env)
    assert res.code == 2 and "LOCK_STALE" in res.err and "checksum" in res.err
    assert path.read_bytes() == edited
    assert sorted((p.as_posix(), p.stat().st_mtime_ns) for p in (tmp_path / "t").rglob("*")) == installed

    # Without --frozen the mismatching lock is rewritten first (checksums recomputed), then installed.
    res = cli("install", "app", "--target", str(tmp_path / "t"), cwd=work, env=prefect_env)
    assert res.code == 0, res.err
    assert path.read_bytes() == (work / "other.yaml").read_bytes()

    # Another root's lock is refused, not overwritten — by install and by lock.
    before = path.read_bytes()
    res = cli("lock", "b", cwd=work, env=prefect_env)
    assert res.code == 2 and "LOCK_WRONG_ROOT" in res.err and "-o" in res.err, res.err
    assert path.read_bytes() == before
    res = cli("install", "b", "--target", str(tmp_path / "u"), cwd=work, env=prefect_env)
    assert res.code == 2 and "locks Tool app, not Tool b" in res.err, res.err
    assert path.read_bytes() == before and not (tmp_path / "u" / "b").exists()

    # A folder AgentForge did not install is never replaced: exit 2, the user's file kept; --force replaces.
    (tmp_path / "v" / "c").mkdir(parents=True)
    (tmp_path / "v" / "c" / "mine.txt").write_text("precious\n")
    res = cli("install", "app", "--frozen", "--target", str(tmp_path / "v"), cwd=work, env=prefect_env)
    assert res.code == 2 and "TARGET_NOT_MANAGED" in res.err and "Traceback" not in res.err, res.err
    assert (tmp_path / "v" / "c" / "mine.txt").read_text() == "precious\n"
    res = cli("install", "app", "--frozen", "--force", "--target", str(tmp_path / "v"), cwd=work, env=prefect_env)
    assert res.code == 0, res.err
    assert not (tmp_path / "v" / "c" / "mine.txt").exists() and (tmp_path / "v" / "c" / "component.yaml").is_file()


def test_deps_tree_why_graph(project: Library, tmp_path: Path, prefect_env: dict[str, str],
                             monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    res = cli("deps", "tree", "app", cwd=work, env=prefect_env)
    assert res.code == 0, res.err
    assert "app 1.0.0 (Tool)" in res.out and "b 1.0.0 Tool, direct, needs ^1" in res.out
    assert "c 1.0.0 Tool, direct, needs ~1.0" in res.out and "c 1.0.0 Tool, transitive" not in res.out
    tree = cli("--json", "deps", "tree", "app", cwd=work, env=prefect_env)
    assert tree.code == 0 and all("checksum" not in p for p in tree.json()["packages"].values())  # not computed
    dot_json = cli("--json", "deps", "graph", "app", "--format", "dot", cwd=work, env=prefect_env)
    assert dot_json.code == 0 and dot_json.json()["format"] == "dot"
    assert dot_json.json()["graph"].startswith("digraph dependencies {")
    res = cli("deps", "graph", "app", "--format", "json", cwd=work, env=prefect_env)
    assert res.code == 0, res.err
    graph = res.json()
    label = {k: v.split()[0] for k, v in graph["nodes"].items()}
    assert sorted(label.values()) == ["app", "b", "c"]
    assert sorted((label[e["from"]], label[e["to"]], e["constraint"]) for e in graph["edges"]) == [
        ("app", "b", "^1"), ("app", "c", "~1.0"), ("b", "c", "^1")]

    # The other formats and `why` in-process (the same command functions, no Prefect needed).
    from typer.testing import CliRunner

    from agentforge.cli.main import _register_optional, app

    _register_optional()
    monkeypatch.chdir(work)
    runner = CliRunner()
    dot = runner.invoke(app, ["deps", "graph", "app", "--format", "dot"]).output
    assert dot.startswith("digraph dependencies {") and dot.rstrip().endswith("}")
    assert dot.count(" -> ") == 3 and 'label="c 1.0.0"' in dot and 'label="~1.0"' in dot
    mermaid = runner.invoke(app, ["deps", "graph", "app", "--format", "mermaid"]).output
    assert mermaid.startswith("graph LR\n") and mermaid.count(" -->|") == 3 and '["b 1.0.0"]' in mermaid
    bad = runner.invoke(app, ["deps", "graph", "app", "--format", "png"])
    assert bad.exit_code != 0 and "FORMAT_INVALID" in str(bad.exception.code if hasattr(bad.exception, "code")
                                                          else bad.exception)
    from agentforge.services import lock as lock_svc

    lock_svc.write_lock_file(work / "forge-lock.yaml", lock_svc.resolve_root("app").text)
    why = runner.invoke(app, ["deps", "why", "c"])
    assert why.exit_code == 0, why.output
    assert "required by <root> with ~1.0" in why.output and "required by b with ^1" in why.output
    assert "path: <root> → c" in why.output


def test_bad_constraint_and_garbage_lock(lib: Library, tmp_path: Path, prefect_env: dict[str, str]) -> None:
    lib.repo("tools", {"app": ("1.0.0", {"c": ">=1 <<2"}), "c": "1.0.0"})
    lib.sync()
    res = cli("lock", "app", "-o", str(tmp_path / "x.yaml"), env=prefect_env)
    assert res.code == 2 and "CONSTRAINT_INVALID" in res.err and "'>=1 <<2'" in res.err
    assert "declared by app 1.0.0" in res.err and "Traceback" not in res.err
    garbage = tmp_path / "forge-lock.yaml"
    garbage.write_text("lockfile_version: 1\nroot: [\n")
    res = cli("install", "app", "--lock", str(garbage), env=prefect_env)
    assert res.code == 2 and "LOCK_INVALID" in res.err and str(garbage) in res.err and "Traceback" not in res.err


def test_composition_root_and_unregistered_repo(lib: Library, tmp_path: Path, prefect_env: dict[str, str]) -> None:
    lib.repo("tools", {"a": "1.0.0"})
    lib.sync()
    deps = [{"name": "a", "version": "^1"}, {"name": "auth", "repository": "github.com/acme/auth", "version": "*"}]
    definition = {"apiVersion": "forge.dev/v1", "kind": "Composition", "metadata": {"name": "stack", "version": "1.0.0"},
                  "spec": {"dependencies": {"tools": deps}}}
    with lib.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO compositions (id, name, version, definition) "
                             "VALUES (:id, 'stack', '1.0.0', CAST(:d AS jsonb))"),
                     {"id": uuid.uuid4(), "d": json.dumps(definition)})
    res = cli("lock", "stack", cwd=tmp_path, env=prefect_env)
    assert res.code == 2 and "github.com/acme/auth" in res.err and "agentforge repo add github.com/acme/auth" in res.err
    definition["spec"]["dependencies"]["tools"] = deps[:1]  # type: ignore[index]
    with lib.engine.begin() as conn:
        conn.execute(sa.text("UPDATE compositions SET definition = CAST(:d AS jsonb)"), {"d": json.dumps(definition)})
    res = cli("install", "stack", "--target", str(tmp_path / "t"), cwd=tmp_path, env=prefect_env)
    assert res.code == 0, res.err
    lock = parse_lock((tmp_path / "forge-lock.yaml").read_bytes(), source="x")
    assert lock.root.kind == "Composition" and [p.component for p in lock.packages.values()] == ["a"]
    assert (tmp_path / "t" / "a" / "component.yaml").exists()
    assert lib.q("SELECT lock_file->'root'->>'kind' FROM compositions") == [("Composition",)]
