"""`agentforge sync --follow-external` through the real CLI (real git, real database, real Prefect).

A marketplace lists three external plugins: a ``url`` source pinned to a commit that is neither
a tag nor the tip of its repository, a ``git-subdir`` source naming a plugin folder of a
monorepo with no catalog at its root, and a ``github`` source. Without ``--follow-external`` all
three are reported unresolved; with it the two local ones are registered, synced and their
compositions written pinned to the sha (``agentforge lock PLUGIN`` locks the pinned commit),
while the GitHub one (another host than the file:// marketplace) is reported and never
contacted. A second run registers nothing new and rewrites nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agentforge.services.repos import add_repository
from tests.catalogs.conftest import js, md
from tests.cli.helpers import cli
from tests.lock.conftest import Library, lib  # noqa: F401  (the fixture)

GITHUB_URL = "https://github.com/acme/gh-plugin"


@pytest.fixture(scope="module")
def prefect_env(prefect_api: None) -> Iterator[dict[str, str]]:
    """CLI subprocesses use the session's Prefect API. Any HTTPS git traffic would go to a closed
    local port (a proxy that is not there): nothing can reach GitHub even if the code tried."""
    from prefect.settings import PREFECT_API_URL

    closed = "http://127.0.0.1:9"
    yield {"PREFECT_API_URL": str(PREFECT_API_URL.value()), "https_proxy": closed, "HTTPS_PROXY": closed,
           "ALL_PROXY": closed, "NO_PROXY": "127.0.0.1,localhost"}


def _lock(name: str, tmp_path: Path, env: dict[str, str]) -> dict[str, Any]:
    out = tmp_path / f"{name}-lock.yaml"
    res = cli("lock", name, "-o", str(out), env=env, cwd=tmp_path)
    assert res.code == 0, res.out + res.err
    document = yaml.safe_load(out.read_text())
    assert isinstance(document, dict)
    return document


def _packages(lock: dict[str, Any]) -> dict[str, dict[str, Any]]:
    packages = lock["packages"]
    items = packages.values() if isinstance(packages, dict) else packages
    return {p["component"]: p for p in items}


def test_sync_follow_external_registers_syncs_and_pins(lib: Library, tmp_path: Path,  # noqa: F811
                                                        prefect_env: dict[str, str]) -> None:
    # A plugin repository (plugin.json at its root): the marketplace pins its first commit; the
    # tip has moved on (another version, another agent text), and nothing is tagged.
    remote = lib.repo("remote", tag=None, register=False, files={
        ".claude-plugin/plugin.json": js({"name": "remote", "version": "1.0.0", "description": "Remote tools"}),
        "agents/helper.md": md("name: helper\ndescription: Helps\n", "Pinned helper.\n"),
        "commands/run.md": md("description: Run it\n", "Use subagent_type: helper.\n"),
    })
    pinned = remote.commits[-1]
    tip = remote.commit(files={
        ".claude-plugin/plugin.json": js({"name": "remote", "version": "1.1.0"}),
        "agents/helper.md": md("name: helper\ndescription: Helps more\n", "Newer helper.\n"),
    })
    # A monorepo with plugin folders and nothing at its root that names them.
    mono = lib.repo("mono", tag=None, register=False, files={
        "plugins/sub/.claude-plugin/plugin.json": js({"name": "sub", "version": "0.3.0"}),
        "plugins/sub/agents/sub-agent.md": md("name: sub-agent\ndescription: Sub\n", "Sub agent.\n"),
        "plugins/other/agents/other-agent.md": md("name: other-agent\ndescription: Other\n", "Other.\n"),
    })
    mono_tip = mono.commits[-1]
    market = lib.repo("acme", tag=None, register=False, files={
        ".claude-plugin/marketplace.json": js({"name": "acme", "owner": {"name": "Acme"}, "plugins": [
            {"name": "review", "source": "./plugins/review"},
            {"name": "remote", "source": {"source": "url", "url": remote.url, "sha": pinned}},
            {"name": "sub", "description": "The sub plugin",
             "source": {"source": "git-subdir", "url": mono.url, "path": "plugins/sub", "sha": mono_tip}},
            {"name": "gh", "source": {"source": "github", "repo": "acme/gh-plugin"}},
        ]}),
        "plugins/review/.claude-plugin/plugin.json": js({"name": "review", "version": "2.0.0"}),
        "plugins/review/agents/reviewer.md": md("name: reviewer\ndescription: Reviews\n", "Review.\n"),
    })
    add_repository(market.url, name="acme")

    # Without --follow-external: synced, the three externals reported unresolved, nothing registered.
    res = cli("sync", env=prefect_env)
    assert res.code == 0, res.out + res.err
    assert res.out.count("unresolved") == 3, res.out
    shown = cli("--json", "repo", "show", "acme", env=prefect_env)
    assert shown.code == 0, shown.err
    assert sorted(e["component"] for e in shown.json()["unresolved_external"]) == ["gh", "remote", "sub"]
    assert [r[0] for r in lib.q("SELECT name FROM repositories")] == ["acme"]
    assert lib.q("SELECT name FROM compositions ORDER BY name") == [("review",)]

    # With it: the two file:// sources registered, synced and linked; GitHub reported, not contacted.
    res = cli("--json", "sync", "--follow-external", env=prefect_env)
    assert res.code == 0, res.out + res.err
    data = res.json()
    assert [r["name"] for r in data["sync"]] == ["acme"]
    (report,) = data["external"]
    assert report["marketplace"] == "acme"
    assert sorted((a["name"], a["url"], a["created"]) for a in report["registered"]) == [
        ("mono", mono.url, True), ("remote", remote.url, True)]
    assert sorted((r["name"], r["status"]) for r in report["synced"]) == [("mono", "synced"), ("remote", "synced")]
    sources = {s["plugin"]: s for s in report["sources"]}
    assert (sources["remote"]["status"], sources["remote"]["commit"]) == ("linked", pinned), sources["remote"]
    # `remote`'s own sync wrote a composition of the same name at its tip: the pinned one replaces it.
    assert "replaces" in sources["remote"]["message"]
    assert (sources["sub"]["status"], sources["sub"]["commit"]) == ("linked", mono_tip), sources["sub"]
    assert sources["gh"]["status"] == "not-followed" and sources["gh"]["repository"] is None
    assert GITHUB_URL in sources["gh"]["message"] and "not contacted" in sources["gh"]["message"]
    repos = dict(lib.q("SELECT name, url FROM repositories"))
    assert repos == {"acme": market.url, "remote": remote.url, "mono": mono.url}
    assert not lib.q("SELECT 1 FROM repositories WHERE url LIKE '%github.com%'")
    # The tip of `remote` was synced (its release); the pinned commit was read for the link.
    commits = {c for (c,) in lib.q("SELECT DISTINCT commit_hash FROM components c JOIN repositories r "
                                    "ON r.id = c.repository_id WHERE r.name = 'remote'")}
    assert commits == {pinned, tip}

    # The compositions belong to the marketplace, and every dependency names the repository and the sha.
    comps = {name: (source, definition) for name, source, definition in lib.q(
        "SELECT name, source_repo, definition FROM compositions")}
    assert set(comps) == {"review", "remote", "sub"}
    source_repo, definition = comps["remote"]
    assert source_repo == market.url
    assert definition["metadata"]["version"] == "1.0.0"  # the plugin's version at the pinned commit, not 1.1.0
    assert definition["metadata"]["external"] == {"repository": remote.url, "version": f"commit:{pinned}",
                                                  "commit": pinned}
    deps = definition["spec"]["dependencies"]
    assert deps == {"agents": [{"name": "helper", "repository": remote.url, "version": f"commit:{pinned}"}],
                    "prompts": [{"name": "run", "repository": remote.url, "version": f"commit:{pinned}"}]}
    source_repo, definition = comps["sub"]
    assert source_repo == market.url and definition["metadata"]["description"] == "The sub plugin"
    assert definition["metadata"]["version"] == "0.3.0"
    assert definition["spec"]["dependencies"] == {
        "agents": [{"name": "sub-agent", "repository": mono.url, "version": f"commit:{mono_tip}"}]}

    # `agentforge lock PLUGIN`: the pinned commit, not the tip; the command's agent resolves with it.
    lock = _lock("remote", tmp_path, prefect_env)
    assert lock["root"]["kind"] == "Composition" and lock["root"]["name"] == "remote"
    packages = _packages(lock)
    assert set(packages) == {"helper", "run"}
    assert {p["commit"] for p in packages.values()} == {pinned}
    assert {p["version"] for p in packages.values()} == {"1.0.0"}
    assert _packages(_lock("sub", tmp_path, prefect_env))["sub-agent"]["commit"] == mono_tip

    shown = cli("--json", "repo", "show", "acme", env=prefect_env)
    assert [e["component"] for e in shown.json()["unresolved_external"]] == ["gh"]

    # Idempotent: nothing new registered, nothing rewritten, the same lock.
    before = lib.q("SELECT name, updated_at FROM compositions ORDER BY name")
    res = cli("--json", "sync", "--follow-external", env=prefect_env)
    assert res.code == 0, res.out + res.err
    (report,) = res.json()["external"]
    assert not any(a["created"] for a in report["registered"])
    assert report["synced"] == []  # already synced by this very run (unchanged)
    assert sorted((s["plugin"], s["status"]) for s in report["sources"]) == [
        ("gh", "not-followed"), ("remote", "unchanged"), ("sub", "unchanged")]
    assert len(lib.q("SELECT 1 FROM repositories")) == 3
    assert lib.q("SELECT name, updated_at FROM compositions ORDER BY name") == before
    assert _packages(_lock("remote", tmp_path, prefect_env)) == packages

    # The external repository moves on: its syncs leave the marketplace's pinned composition alone.
    remote.commit(files={".claude-plugin/plugin.json": js({"name": "remote", "version": "1.2.0"})})
    res = cli("sync", "remote", env=prefect_env)
    assert res.code == 0 and "not stored" not in res.out, res.out  # the takeover was on purpose: no warning
    assert lib.q("SELECT source_repo, version FROM compositions WHERE name = 'remote'") == [(market.url, "1.0.0")]
    # The marketplace moves on too: its sync removes compositions its tip no longer lists, never
    # the external plugins `--follow-external` linked.
    market.commit(files={"README.md": "moved on\n"})
    res = cli("sync", "acme", env=prefect_env)
    assert res.code == 0 and "no longer at the tip" not in res.out, res.out
    assert {r[0] for r in lib.q("SELECT name FROM compositions")} == {"review", "remote", "sub"}

    # The table output names what happened to each external plugin.
    res = cli("sync", "--follow-external", "acme", env=prefect_env)
    assert res.code == 0, res.out + res.err
    assert "already registered as remote" in res.out and "not-followed" in res.out


def test_credentials_in_an_external_source_are_never_shown(lib: Library) -> None:  # noqa: F811
    """A marketplace source URL with a password in it is refused (never contacted) and reported
    with the password masked: in the sync's warnings and in the --follow-external report."""
    from agentforge.services import sync as svc
    from agentforge.services.repos import follow_external

    market = lib.repo("creds", tag=None, register=False, files={
        ".claude-plugin/marketplace.json": js({"name": "creds", "owner": {"name": "Acme"}, "plugins": [
            {"name": "leaky", "source": {"source": "url", "url": "https://user:secretpw@example.invalid/x.git"}},
        ]}),
    })
    add_repository(market.url, name="creds")
    plan = svc.check_and_record(None)
    results = [svc.sync_repository(i, remote=plan.remote.get(i)) for i in plan.to_sync]
    assert [r.status for r in results] == ["synced"]
    shown = " ".join(results[0].problems)
    assert "leaky" in shown and "secretpw" not in shown, shown
    (report,) = follow_external(["creds"])
    (source,) = report.sources
    assert "secretpw" not in source.model_dump_json() and source.repository is None
    assert not lib.q("SELECT 1 FROM repositories WHERE url LIKE '%example.invalid%'")
