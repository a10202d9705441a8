"""No token ever lands anywhere: every flow runs with tokens configured, then everything is scanned.

Two tokens are configured, as a user would: ``GITHUB_TOKEN`` in the environment (the one the
fake GitHub accepts) and a different token stored with ``agentforge config set github.token
--stdin``. Then every flow through the CLI against the session's Prefect API: sync, lock,
install, pull (a three-way merge over a local edit), push --fork --pr (publish through the
fake GitHub) and compose deploy (which locks the composition first). Afterwards neither token (nor its base64 form) may appear in:

* any text, varchar, json/jsonb or array column of any table of the database;
* the Prefect API's stored flow-run parameters, task-run names/results metadata and logs;
* the mirrors (git config and every other file), the install root, bundles, instance
  folders and logs — in fact anywhere under the AgentForge home — and the config file;
* the CLI's stdout and stderr.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from tests.cli.helpers import Result, cli
from tests.devloop.conftest import README_V1, definition_yaml, installed  # noqa: F401  (fixture)
from tests.github_fake import github_fake  # noqa: F401  (fixture)
from tests.publish.conftest import Published, published  # noqa: F401  (fixture)

STORED_TOKEN = "ghp_StoredTokenNeverToBeSeen0123456789AB"


def _needles(*tokens: str) -> list[bytes]:
    out: list[bytes] = []
    for token in tokens:
        out += [token.encode(), base64.b64encode(token.encode()), base64.b64encode(f"x-access-token:{token}".encode())]
    return out


def _scan_database(engine: sa.Engine, tokens: list[str]) -> list[str]:
    hits: list[str] = []
    with engine.connect() as conn:
        columns = conn.execute(sa.text(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' "
            "AND (data_type IN ('text', 'character varying', 'json', 'jsonb', 'ARRAY', 'USER-DEFINED', 'bytea'))"
        )).all()
        assert len(columns) > 20  # the scan really covers the schema
        for table, column in columns:
            for token in tokens:
                found = conn.execute(sa.text(
                    f'SELECT count(*) FROM "{table}" WHERE position(:t IN "{column}"::text) > 0'), {"t": token}).scalar()
                if found:
                    hits.append(f"{table}.{column}")
    return hits


def _scan_prefect(tokens: list[str]) -> tuple[int, list[str]]:
    from prefect.client.orchestration import get_client

    async def read() -> tuple[int, list[str]]:
        async with get_client() as client:
            runs = await client.read_flow_runs(limit=200)
            task_runs = await client.read_task_runs(limit=200)
            logs = await client.read_logs(limit=200)
            texts = [run.model_dump_json() for run in runs] + [t.model_dump_json() for t in task_runs] + \
                [log.model_dump_json() for log in logs]
            return len(runs), [t for t in texts if any(token in t for token in tokens)]

    return asyncio.run(read())


def _scan_files(roots: list[Path], needles: list[bytes]) -> list[str]:
    hits = []
    for root in roots:
        paths = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
        for path in paths:
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(str(path))
    return hits


def _ok(result: Result) -> Result:
    assert result.code == 0, (result.out, result.err)
    return result


def test_no_token_reaches_the_database_prefect_files_or_output(
        published: Published, prefect_api: None, tmp_path: Path) -> None:  # noqa: F811
    from prefect.settings import PREFECT_API_URL

    from agentforge.services import devloop
    from agentforge.services.compose import import_file

    github_token = str(published.fake.token)
    tokens = [github_token, STORED_TOKEN]
    env = {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "GITHUB_TOKEN": github_token, "COLUMNS": "200"}
    outputs: list[Result] = []

    def run(*args: str, stdin: str | None = None) -> Result:
        result = _ok(cli(*args, env=env, cwd=tmp_path, input=stdin))
        outputs.append(result)
        return result

    run("config", "set", "github.token", "--stdin", stdin=STORED_TOKEN + "\n")
    lib = published.installed
    lib.repo.commit(files={"tools/lookup/component.yaml": definition_yaml("1.1.0")}, tags=["v1.1.0"])
    run("sync")
    lock = tmp_path / "forge-lock.yaml"
    run("lock", "lookup", "-o", str(lock))
    run("install", "lookup", "--lock", str(lock))
    devloop.edit_component("lookup", sets=["spec.config.timeout=99"])  # no flow: in this process
    lib.repo.commit(files={"tools/lookup/component.yaml": definition_yaml("1.2.0", config={
        "timeout": 30, "retries": 1, "region": "us"}), "tools/lookup/README.md": README_V1 + "more\n"},
        tags=["v1.2.0"])
    run("sync")
    run("pull", "lookup")
    run("push", "lookup", "--fork", "--pr", "-m", "tune the timeout")
    assert published.fake.pulls_of("acme", "tools")  # publish really went through the fake GitHub
    composition = {"apiVersion": "forge.dev/v1", "kind": "Composition",
                   "metadata": {"name": "lookup-stack", "version": "1.0.0"},
                   "spec": {"dependencies": {"tools": [{"name": "lookup", "version": "^1"}]},
                            "configuration": {"llm": {"provider": "echo", "model": "m",
                                                      "api_key": "${HELPDESK_KEY:-none}"}},
                            "environments": {"development": {}}}}
    (tmp_path / "stack.yaml").write_text(yaml.safe_dump(composition))
    import_file(tmp_path / "stack.yaml")  # no flow; the deploy flow locks it
    try:
        run("compose", "deploy", "lookup-stack", "--env", "development")
    finally:
        from tests.deploy.conftest import stop_all_instances

        stop_all_instances(lib.engine)

    assert _scan_database(lib.engine, tokens) == []
    flow_runs, prefect_hits = _scan_prefect(tokens)
    assert flow_runs >= 3 and prefect_hits == []
    home = Path(os.environ["AGENTFORGE_HOME"])
    assert (home / "mirrors").is_dir() and any((home / "mirrors").glob("*/config"))
    assert (home / "bundles").is_dir() and (home / "instances").is_dir()
    roots: list[Any] = [home, tmp_path, Path(os.environ["AGENTFORGE_CONFIG_FILE"])]
    assert _scan_files([r for r in roots if r.exists()], _needles(*tokens)) == []
    for result in outputs:
        assert not any(t in result.out or t in result.err for t in tokens), result

