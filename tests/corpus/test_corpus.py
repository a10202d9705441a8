"""Hostile inputs, each through the real entry point, each with the exact outcome expected.

The cases are listed in ``cases.yaml`` (file or inline value → entry point → code). For the
parse functions the code is the ``AgentForgeError.code``; for the CLI cases the process must
exit 2, print ``agentforge: CODE`` and no traceback, and write nothing (no repository row, no
mirror, no installed file); for webhook payloads the code is the HTTP status and nothing is
recorded; for repositories built with git (symlinks, traversal) the real sync must skip or
refuse what is hostile and say why.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from tests.cli.helpers import Result, cli
from tests.gitfactory import GitRepoFactory, Symlink

HERE = Path(__file__).parent
CASES: list[dict[str, Any]] = yaml.safe_load((HERE / "cases.yaml").read_text(encoding="utf-8"))
SECRET = "corpus-webhook-secret"


def _cases(*entries: str) -> list[Any]:
    return [pytest.param(c, id=c["id"]) for c in CASES if c["entry"] in entries]


def test_the_corpus_is_big_enough_and_every_file_is_indexed() -> None:
    assert len(CASES) >= 40
    assert len({c["id"] for c in CASES}) == len(CASES)
    indexed = {c["file"] for c in CASES if "file" in c}
    on_disk = {p.relative_to(HERE).as_posix() for p in HERE.glob("*/*") if p.is_file()}
    assert on_disk == indexed


def _generated(case: dict[str, Any]) -> bytes:
    size = int(case["size"])
    header = "apiVersion: forge.dev/v1\nkind: Tool\nmetadata: {name: lookup, version: '1.0.0'}\nspec:\n"
    kind = case["generate"]
    if kind == "deep-mapping":
        return (header + "".join("  " * (i + 1) + f"k{i}:\n" for i in range(size)) + "  " * (size + 1) + "x\n").encode()
    if kind == "deep-sequence":
        return (header + "  config: " + "[" * size + "]" * size + "\n").encode()
    if kind == "huge-string":
        return (header + "  description: '" + "A" * size + "'\n").encode()
    if kind == "many-keys":
        return (header + "  config:\n" + "".join(f"    k{i}: {i}\n" for i in range(size))).encode()
    if kind == "deep-json":
        return ("[" * size + "]" * size).encode()
    if kind == "big-json":
        return json.dumps({"ref": "refs/heads/main", "pad": "x" * size}).encode()
    raise AssertionError(f"unknown generator {kind}")


def _input(case: dict[str, Any]) -> bytes:
    if "file" in case:
        return (HERE / case["file"]).read_bytes()
    if "generate" in case:
        return _generated(case)
    return str(case["value"]).encode()


# --- parse functions --------------------------------------------------------------------------


@pytest.mark.parametrize("case", _cases("manifest", "component", "composition", "lock", "constraint"))
def test_parse_refuses(case: dict[str, Any]) -> None:
    from agentforge.core.constraints import parse_constraint
    from agentforge.core.documents import parse_component, parse_composition, parse_manifest
    from agentforge.core.lockfile import parse_lock
    from agentforge.errors import AgentForgeError

    data = _input(case)
    source = case["id"]
    parse = {
        "manifest": lambda: parse_manifest(data, source=source),
        "component": lambda: parse_component(data, source=source),
        "composition": lambda: parse_composition(data, source=source),
        "lock": lambda: parse_lock(data, source=source),
        "constraint": lambda: parse_constraint(data.decode()),
    }[case["entry"]]
    with pytest.raises(AgentForgeError) as caught:
        parse()
    assert caught.value.code == case["code"]
    assert case["message"] in caught.value.message
    assert caught.value.exit_code == 2
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123" not in caught.value.message  # tokens never echoed


@pytest.mark.parametrize("case", _cases("repo-add"))
def test_repo_add_refuses(case: dict[str, Any], clean_db: sa.Engine, home: Path) -> None:
    """The service `repo add` calls (the CLI cases above cover the process, exit code and output)."""
    from agentforge.errors import AgentForgeError
    from agentforge.services.repos import add_repository

    with pytest.raises(AgentForgeError) as caught:
        add_repository(str(case["value"]), check=False)
    assert (caught.value.code, caught.value.exit_code) == (case["code"], 2)
    assert case["message"] in caught.value.message
    with clean_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM repositories")).scalar() == 0
    assert not (home / "mirrors").exists() or not any((home / "mirrors").iterdir())


# --- the CLI: exit 2, the code, no traceback, nothing written ---------------------------------


@pytest.fixture(scope="module")
def cli_results(engine: sa.Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every CLI case, run concurrently (each is a separate process; the inputs never write)."""
    from agentforge.services import sync as svc
    from agentforge.services.repos import add_repository
    from tests.conftest import _TABLES
    from tests.lock.conftest import files_for

    home = tmp_path_factory.mktemp("corpus-home")
    cases = [c for c in CASES if c["entry"] in ("repo-add-cli", "install-cli")]
    # `install lookup` checks that the root exists before it reads the lock: sync one.
    tools = GitRepoFactory(home.parent / "corpus-git").create("corpus-tools", files=files_for({"lookup": "1.0.0"}),
                                                              tag="v1.0.0")
    add_repository(tools.url, name="corpus-tools")
    for repo_id in svc.check_and_record(["corpus-tools"]).to_sync:
        svc.sync_repository(repo_id)

    def run(case: dict[str, Any]) -> tuple[str, Result, Path | None]:
        env = {"AGENTFORGE_HOME": str(home), "COLUMNS": "200"}
        if case["entry"] == "repo-add-cli":
            return case["id"], cli("repo", "add", str(case["value"]), "--no-check", env=env), None
        target = home / "targets" / case["id"].replace("/", "_")
        lock = str(HERE / case["file"])
        return case["id"], cli("install", "lookup", "--lock", lock, "--frozen", "--target", str(target),
                               env=env), target

    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = {cid: (res, target) for cid, res, target in pool.map(run, cases)}
        with engine.connect() as conn:  # what the CLI runs left registered: only corpus-tools
            registered = conn.execute(sa.text("SELECT name, url FROM repositories")).all()
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text("TRUNCATE " + ", ".join(_TABLES) + " CASCADE"))
    yield {"results": results, "home": home, "registered": registered}


@pytest.mark.parametrize("case", _cases("repo-add-cli", "install-cli"))
def test_cli_refuses(case: dict[str, Any], cli_results: dict[str, Any]) -> None:
    result, target = cli_results["results"][case["id"]]
    assert result.code == 2, (result.out, result.err)
    output = result.out + result.err
    assert f"agentforge: {case['code']}" in output
    assert case["message"] in output
    assert "Traceback" not in output
    assert "ghp_abcdefghijklmnopqrstuvwxyz0123" not in output
    home: Path = cli_results["home"]
    assert not (home / "mirrors").exists() or not any((home / "mirrors").iterdir())
    if target is not None:
        assert not target.exists() or not any(target.iterdir())
    assert [name for name, _ in cli_results["registered"]] == ["corpus-tools"]  # no repository row added


# --- webhook payloads -------------------------------------------------------------------------


class _NeverTriggered:
    def __call__(self, delivery: Any) -> str:
        raise AssertionError("a hostile payload must not start a run")


@pytest.fixture(scope="module")
def webhook_client(engine: sa.Engine) -> Iterator[Any]:
    from starlette.testclient import TestClient

    from agentforge.config import Settings
    from agentforge.webhook import create_app

    app = create_app(settings=Settings(webhook_secret=SECRET), trigger=_NeverTriggered(), dispatch=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@pytest.mark.parametrize("case", _cases("webhook"))
def test_webhook_refuses(case: dict[str, Any], webhook_client: Any, clean_db: sa.Engine) -> None:
    body = _input(case)
    headers = {"X-GitHub-Event": "push", "Content-Type": "application/json"}
    signature = case.get("signature", "valid")
    if signature == "valid":
        headers["X-Hub-Signature-256"] = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    elif signature == "wrong":
        headers["X-Hub-Signature-256"] = "sha256=" + "0" * 64
    response = webhook_client.post("/webhooks/github", content=body, headers=headers)
    assert response.status_code == int(case["code"]), response.text
    answer = response.json()
    assert case["message"] in answer or case["message"] in answer.values()
    with clean_db.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM webhook_deliveries")).scalar() == 0


# --- repositories built with git --------------------------------------------------------------

_TOOL = ("apiVersion: forge.dev/v1\nkind: Tool\nmetadata: {name: %s, version: '1.0.0'}\n"
         "spec: {type: function}\n")


def _build(kind: str, factory: GitRepoFactory, outside: Path) -> Any:
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "component.yaml").write_text(_TOOL % "stolen")
    good = {"tools/good/component.yaml": _TOOL % "good"}
    if kind == "symlink-component-yaml":
        files = {**good, "tools/evil/component.yaml": Symlink(str(outside / "component.yaml"))}
    elif kind == "symlink-component-folder":
        files = {**good, "tools/evil": Symlink(str(outside))}
    elif kind == "manifest-traversal":
        manifest = {"apiVersion": "forge.dev/v1", "kind": "ComponentRepository", "metadata": {"name": "evil"},
                    "repository": {"type": "tools"},
                    "components": {"tools": [{"name": "good", "path": "tools/good"},
                                             {"name": "evil", "path": "../../outside"}]}}
        files = {**good, "forge-manifest.yaml": yaml.safe_dump(manifest)}
    elif kind == "component-alias-bomb":
        bomb = (HERE / "manifests" / "alias-bomb.yaml").read_text().replace("kind: ComponentRepository", "kind: Tool")
        files = {**good, "tools/evil/component.yaml": bomb}
    else:
        raise AssertionError(kind)
    return factory.create("hostile", files=files, tag="v1.0.0")


@pytest.mark.parametrize("case", _cases("sync"))
def test_sync_skips_or_refuses(case: dict[str, Any], clean_db: sa.Engine, home: Path, tmp_path: Path) -> None:
    from agentforge.services import sync as svc
    from agentforge.services.repos import add_repository

    handle = _build(case["build"], GitRepoFactory(tmp_path / "git"), tmp_path / "outside")
    add_repository(handle.url, name="hostile", check=True)
    plan = svc.check_and_record(None)
    [repo_id] = plan.to_sync
    result = svc.sync_repository(repo_id)
    with clean_db.connect() as conn:
        names = set(conn.execute(sa.text("SELECT name FROM components")).scalars())
    if case["code"] == "synced":
        assert result.status == "synced", result
        if case["message"] is not None:
            assert any(case["message"] in p for p in result.problems), result.problems
        assert names == {"good"}  # the hostile component is skipped, the rest is read
    else:
        assert (result.status, result.error_code) == ("failed", case["code"]), result
        assert case["message"] in (result.error or "")
        assert names == set()
    assert "stolen" not in names  # nothing outside the repository was read
