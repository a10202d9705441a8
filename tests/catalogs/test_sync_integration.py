"""Catalog repositories end to end: repo add, sync, ls/show, lock, install --frozen (real git, real database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agentforge.db import get_engine, session_scope
from agentforge.errors import LockError
from agentforge.services import install as install_svc
from agentforge.services import lock as lock_svc
from agentforge.services import trust
from agentforge.services.repos import add_repository
from agentforge.services.settings import set_value
from tests.catalogs.conftest import js, md
from tests.cli.helpers import cli
from tests.lock.conftest import Library, lib  # noqa: F401  (the fixture)

REVIEWER = md("name: reviewer\ndescription: Reviews diffs: carefully\nmodel: sonnet\n", "You review code.\n")


def marketplace_files() -> dict[str, str | bytes | None]:
    return {
        ".claude-plugin/marketplace.json": js({
            "name": "acme", "owner": {"name": "Acme"},
            "plugins": [{"name": "review", "source": "./plugins/review"},
                        {"name": "remote", "source": {"source": "url", "url": "file:///nowhere/remote.git",
                                                      "sha": "b" * 40}}]}),
        "plugins/review/.claude-plugin/plugin.json": js({"name": "review", "version": "1.2.0"}),
        "plugins/review/agents/reviewer.md": REVIEWER,
        "plugins/review/commands/review.md": md("description: Run a review\n", "Use subagent_type: reviewer.\n"),
    }


def skills_files() -> dict[str, str | bytes | None]:
    return {
        "skills/lint/SKILL.md": md("name: lint\ndescription: Lint things\nmetadata:\n  version: 1.0.0\n", "Lint.\n"),
        "skills/lint/scripts/run.py": "print('lint')\n",
        "skills/fmt/SKILL.md": md("name: fmt\ndescription: Format things\n", "Format.\n"),
    }


def _lock_and_install(name: str, tmp_path: Path) -> tuple[lock_svc.ResolveOutcome, Path]:
    path = tmp_path / f"{name}-lock.yaml"
    out = lock_svc.resolve_root(name)
    lock_svc.write_lock_file(path, out.text)
    frozen = lock_svc.verify_lock_for_install(name, path, include_dev=False)  # what install --frozen does
    target = tmp_path / f"installed-{name}"
    install_svc.install_lock(frozen, target=target)
    return out, target


def test_marketplace_and_skills_sync_lock_install(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    lib.repo("acme", files=marketplace_files(), tag=None)
    skills = lib.repo("skills", files=skills_files(), tag=None)
    skills.tag("lint--v1.2.0")  # a tag for lint only: fmt (no version, no tag) is released at the tip
    lib.sync()

    rows = {(r[0], r[1]): r[2:] for r in lib.q(
        "SELECT r.name, c.name, c.type::text, c.version, c.is_release, c.path FROM components c "
        "JOIN repositories r ON r.id = c.repository_id")}
    assert rows[("acme", "reviewer")][:3] == ("AGENT", "1.2.0", True)
    assert rows[("acme", "reviewer")][3] == "plugins/review/agents/reviewer.md"
    assert rows[("skills", "lint")][:3] == ("PROMPT", "1.2.0", True)
    assert rows[("skills", "fmt")][2] is True and rows[("skills", "fmt")][1].startswith("0.0.0-")
    formats = dict(lib.q("SELECT name, source_format FROM repositories"))
    assert formats == {"acme": "claude-marketplace", "skills": "agent-skills"}

    # ls / show / repo show through the real CLI.
    res = cli("--json", "ls", "--type", "agent")
    assert res.code == 0, res.err
    assert [c["name"] for c in res.json()] == ["reviewer"]
    res = cli("--json", "show", "reviewer")
    assert res.code == 0, res.err and "Reviews diffs: carefully" in res.out
    res = cli("--json", "repo", "show", "acme")
    assert res.code == 0, res.err
    shown = res.json()
    assert shown["format"] == "claude-marketplace" and shown["format_counts"]["agent"] == 1
    assert [e["repository"] for e in shown["unresolved_external"]] == ["file:///nowhere/remote.git"]

    # A single-file agent: the file is the component; checksums verified at install.
    out, target = _lock_and_install("reviewer", tmp_path)
    pkg = next(p for p in out.lock.packages.values() if p.component == "reviewer")
    assert (target / "reviewer" / "reviewer.md").read_text() == REVIEWER
    assert json.loads((target / ".forge" / "reviewer.json").read_text())["checksum"] == pkg.checksum
    # A skill folder, released by the name--v tag.
    out, target = _lock_and_install("lint", tmp_path)
    pkg = next(p for p in out.lock.packages.values() if p.component == "lint")
    assert pkg.version == "1.2.0"
    assert (target / "lint" / "scripts" / "run.py").read_text() == "print('lint')\n"
    assert (target / "lint" / "SKILL.md").exists()


def test_single_file_checksum_mismatch_is_refused(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    lib.repo("acme", files=marketplace_files(), tag=None)
    lib.sync()
    path = tmp_path / "lock.yaml"
    out = lock_svc.resolve_root("reviewer")
    key = next(k for k, p in out.lock.packages.items() if p.component == "reviewer")
    tampered = out.text.replace(out.lock.packages[key].checksum, "sha256:" + "0" * 64)
    lock_svc.write_lock_file(path, tampered)
    # --frozen checks the lock against the mirror's single file before installing anything.
    with pytest.raises(LockError) as info:
        lock_svc.verify_lock_for_install("reviewer", path, include_dev=False)
    assert "reviewer 1.2.0: checksum" in info.value.message and "0" * 64 in info.value.message
    assert not (tmp_path / "t").exists()


def test_forced_format_and_invalid_format(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    # A marketplace repository read as plain agent-skills: the marketplace is ignored.
    handle = lib.repo("both", files={**marketplace_files(), **skills_files()}, tag=None, register=False)
    added = add_repository(handle.url, name="both", format="agent-skills")
    assert added.format == "agent-skills"
    lib.sync()
    names = {r[0] for r in lib.q("SELECT name FROM components")}
    assert {"lint", "fmt"} <= names and "reviewer" not in names
    assert lib.q("SELECT source_format FROM repositories")[0][0] == "forced:agent-skills"
    res = cli("--json", "repo", "show", "both")
    assert res.code == 0 and res.json()["format"] == "agent-skills" and res.json()["format_forced"] is True
    res = cli("repo", "add", handle.url, "--name", "other", "--format", "nonsense")
    assert res.code == 2 and "nonsense" in res.err


def test_untrusted_repository_needs_signatures(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    handle = lib.repo("skills", files=skills_files(), tag=None, register=False)
    assert add_repository(handle.url, name="skills", untrusted=True).trusted is False
    lib.sync()
    with pytest.raises(trust.SignatureRefused) as info:
        lock_svc.resolve_root("lint")
    assert info.value.code == "SIGNATURE_REQUIRED"
    with session_scope(get_engine()) as session:
        set_value("allow_unsigned_components", "true", session=session)
    assert lock_svc.resolve_root("lint").lock.packages


def _versions(lib: Library, name: str) -> list[tuple[str, bool, list[str]]]:  # noqa: F811
    return sorted((r[0], r[1], list(r[2])) for r in lib.q(
        "SELECT version, is_release, release_tags FROM components WHERE name = :n", n=name))


def test_a_tag_pushed_on_an_already_synced_commit_names_the_release(lib: Library) -> None:  # noqa: F811
    """The version must not depend on when the sync ran: tagging a commit already read (untagged,
    with a pseudo-version) releases it at the tag's version, as a first sync of the tagged commit does;
    so do a component tag and a tag moved back onto a commit once its move is accepted."""
    handle = lib.repo("cop", files={".github/prompts/a.prompt.md": md("description: a\n", "A\n"),
                                    ".github/prompts/b.prompt.md": md("description: b\n", "B\n")}, tag=None)
    lib.sync()
    [(pseudo, released, tags)] = _versions(lib, "a")
    assert pseudo.startswith("0.0.0-") and released and tags == []
    handle.tag("v1.0.0")
    lib.sync()
    assert _versions(lib, "a") == [("1.0.0", True, ["v1.0.0"])]
    assert _versions(lib, "b") == [("1.0.0", True, ["v1.0.0"])]
    meta = lib.q("SELECT definition->'metadata', metadata FROM components WHERE name = 'a'")[0]
    assert meta[0]["version"] == meta[1]["version"] == "1.0.0" and meta[0]["release_tag"] == "v1.0.0"
    assert meta[1]["manifest_version"] == pseudo
    # A component tag on the same commit: that component only, at its version.
    handle.tag("a@1.5.0")
    lib.sync()
    [(version, released, tags)] = _versions(lib, "a")
    assert (version, released) == ("1.5.0", True) and "a@1.5.0" in tags
    assert _versions(lib, "b") == [("1.0.0", True, ["v1.0.0"])]
    # The same rows as a first sync of this state gives.
    import subprocess

    copy = handle.path.parent / "cop-again.git"
    subprocess.run(["git", "clone", "-q", "--mirror", handle.url, str(copy)], check=True)
    add_repository(copy.as_uri(), name="cop-again")
    lib.sync()
    rows = lib.q("SELECT r.name, c.name, c.version, c.is_release FROM components c JOIN repositories r "
                 "ON r.id = c.repository_id ORDER BY 1, 2")
    by_repo = {repo: sorted((n, v, rel) for rr, n, v, rel in rows if rr == repo) for repo in ("cop", "cop-again")}
    assert by_repo["cop"] == by_repo["cop-again"], rows


def test_an_accepted_moved_tag_releases_the_new_commit_at_the_tags_version(lib: Library) -> None:  # noqa: F811
    plugin = {".claude-plugin/plugin.json": js({"name": "mv", "version": "1.2.0"}),
              "commands/cmv.md": md("description: run it\n", "one\n")}
    handle = lib.repo("mv", files=plugin, tag="v1.0.0")
    lib.sync()
    assert _versions(lib, "cmv") == [("1.0.0", True, ["v1.0.0"])]
    second = handle.commit({"commands/cmv.md": md("description: run it\n", "two\n")})
    lib.sync()
    assert ("1.0.0", True, ["v1.0.0"]) in _versions(lib, "cmv")
    handle.tag("v1.0.0", second, force=True)
    from agentforge.services import sync as svc

    plan = svc.plan_sync(["mv"])
    svc.record_plan_outcomes(plan)
    held = svc.sync_repository(plan.to_sync[0])
    assert any("accept-tag mv v1.0.0" in p for p in held.problems), held.problems  # the real name, not REPO
    assert ("1.0.0", True, ["v1.0.0"]) in _versions(lib, "cmv")  # still the first commit's
    res = cli("repo", "accept-tag", "mv", "v1.0.0")
    assert res.code == 0, res.err
    lib.sync()
    rows = lib.q("SELECT commit_hash, version, is_release FROM components WHERE name = 'cmv' ORDER BY is_release")
    released = [(c, v) for c, v, rel in rows if rel]
    assert released == [(second, "1.0.0")], rows


def test_an_agent_and_a_prompt_named_alike_are_both_kept_and_lockable(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    """Names are unique in a catalog repository whatever the kind: a lock names a component by
    repository and name. A chat mode and an agent both called 'planner' were stored under one
    name (one marked a 'reused version'), and locking a prompt that uses the agent failed with a
    bogus LOCK_MISMATCH."""
    lib.repo("cop", tag="v1.0.0", files={
        ".github/chatmodes/planner.chatmode.md": md("description: plan mode\n", "Plan.\n"),
        ".github/agents/planner.agent.md": md("name: Planner\ndescription: plans\n", "I plan.\n"),
        ".github/prompts/gen-tests.prompt.md": md("description: tests\nagent: planner\n", "Write tests.\n"),
    })
    lib.sync()
    rows = sorted(tuple(r) for r in lib.q("SELECT name, type::text, is_reused_version FROM components"))
    assert rows == [("agents--planner", "AGENT", False), ("chatmodes--planner", "PROMPT", False),
                    ("gen-tests", "PROMPT", False)], rows
    out, target = _lock_and_install("gen-tests", tmp_path)
    assert "agents--planner" in out.text and "kind: Agent" in out.text
    assert (target / "agents--planner").exists() or any(p.name == "agents--planner" for p in target.rglob("*"))


def test_accepting_one_moved_tag_never_releases_another_ones_held_version(lib: Library) -> None:  # noqa: F811
    """Two tags moved onto each other's commits; accepting one (v1.0.0 → c2) must release c2 as
    1.0.0, not as the still-held s@1.2.0 that also stands there."""
    handle = lib.repo("sk", files={"skills/s/SKILL.md": md("name: s\ndescription: d\n", "v1\n")}, tag="v1.0.0")
    c1 = handle.commits[-1]
    c2 = handle.commit({"skills/s/SKILL.md": md("name: s\ndescription: d\n", "v2\n")}, tags=["s@1.2.0"])
    lib.sync()
    handle.tag("s@1.2.0", c1, force=True)
    lib.sync()
    handle.tag("v1.0.0", c2, force=True)
    lib.sync()
    assert cli("repo", "accept-tag", "sk", "v1.0.0").code == 0
    lib.sync()
    rows = {c: (v, rel) for c, v, rel in lib.q("SELECT commit_hash, version, is_release FROM components "
                                                 "WHERE name = 's'")}
    assert rows[c2] == ("1.0.0", True), rows
    held = lib.q("SELECT state::text FROM repository_tags WHERE tag = 's@1.2.0'")
    assert held == [("MOVED",)]


@pytest.mark.parametrize(("files", "names", "message"), [
    ({"skills/caf\udce9/SKILL.md": md("name: cafe\ndescription: x\n"), "skills/ok/SKILL.md": md("name: ok\n")},
     ["ok"], "warning: 'skills/caf\\xe9'@main: not read (its name is not UTF-8)"),
    ({"skills/ok/SKILL.md": md("name: ok\n"), "skills/ok/caf\udce9.txt": "x", "skills/fine/SKILL.md": md("name: fine\n")},
     ["fine"], "skills/ok@main (skill 'ok'): file 'skills/ok/caf\\xe9.txt' cannot be locked or installed"),
    ({".github/agents/caf\udce9.agent.md": md("name: cafe\n"), ".github/agents/ok.agent.md": md("description: y\n")},
     ["ok"], "warning: '.github/agents/caf\\xe9.agent.md'@main: not read"),
    ({".github/prompts/back\\slash.prompt.md": md("description: x\n"), ".github/prompts/ok.prompt.md": md("x: y\n")},
     ["ok"], "warning: '.github/prompts/back\\slash.prompt.md'@main: not read (its name holds a newline or backslash"),
])
def test_a_catalog_file_name_the_database_cannot_carry_is_reported_not_fatal(
        lib: Library, files: dict[str, str | bytes | None], names: list[str], message: str) -> None:  # noqa: F811
    """Names git allows but a checksum line (or the database, for non-UTF-8) cannot carry used to
    crash the whole catalog's sync (UnicodeEncodeError hashing the manifest); now that file or
    component alone is reported and the rest of the repository is kept."""
    from agentforge.services import sync as svc

    lib.repo("c", files=files, tag=None)
    plan = svc.plan_sync(None)
    [result] = [svc.sync_repository(i) for i in plan.to_sync]
    assert result.status == "synced", result
    assert [p for p in result.problems if message in p], result.problems
    assert [n for (n,) in lib.q("SELECT name FROM components ORDER BY name")] == names
