"""The README's main job, as a new user runs it: `agentforge demo`, twice."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest
import sqlalchemy as sa

from tests.cli.helpers import cli


@pytest.mark.slow
def test_demo_builds_syncs_locks_deploys_and_answers_twice(clean_db, tmp_path) -> None:
    env = {"AGENTFORGE_HOME": str(tmp_path / "home")}
    first = cli("--json", "demo", env=env, timeout=600)
    try:
        assert first.code == 0, first.err + first.out
        data = first.json()
        assert data["url"].startswith("http://127.0.0.1:")
        assert data["render"]["text"] == "Summarise lead Ada Lovelace (score 92) for the sales team."
        assert data["invoke"]["output"].startswith("echo(")
        # The agent's messages were built from its system prompt (rendered with defaults) and the input.
        messages = data["invoke"]["messages"]
        assert messages[0]["role"] == "system" and "Acme Corp" in messages[0]["content"]
        assert messages[-1] == {"role": "user", "content": "Which accounts did Ada's company buy from us?"}
        assert data["components"] == ["crm-system-prompt", "lead-summary", "oauth-handler", "sales-specialist",
                                      "salesforce-lookup"]
        assert {r["status"] for r in data["sync"]} == {"synced"}

        second = cli("--json", "demo", env=env, timeout=600)
        assert second.code == 0, second.err + second.out
        again = second.json()
        assert {r["status"] for r in again["sync"]} == {"unchanged"}
        assert again["lock_hash"] == data["lock_hash"]
        assert again["url"] == data["url"]  # the same running instance, not a restart

        instances = cli("--json", "compose", "instances", "sales-stack", env=env)
        assert instances.code == 0, instances.err
        (row,) = instances.json()
        assert row["status"] == "RUNNING" and row["url"] == data["url"]
    finally:
        cli("instance", "stop", "sales-stack/development", env=env)
        with clean_db.connect() as conn:  # never leave a process behind
            for (pid,) in conn.execute(sa.text("SELECT pid FROM composition_instances WHERE pid IS NOT NULL")):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
