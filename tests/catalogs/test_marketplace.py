"""Claude Code plugin marketplaces and plugins: components, compositions, names, externals, tags."""

from __future__ import annotations

import pytest
import semver

from agentforge.catalogs import (
    apply_release_tags,
    component_checksum_at,
    component_files,
    component_tree,
    detect_format,
    external_sources,
    read_catalog_snapshot,
    release_version_for,
)
from agentforge.core.documents import parse_component, parse_composition
from agentforge.core.hashing import component_checksum
from tests.catalogs.conftest import js, md
from tests.gitfactory import Symlink

SHA = "a" * 40

MARKETPLACE = {
    "name": "Acme Tools",
    "owner": {"name": "Acme"},
    "metadata": {"version": "3.0.0", "description": "Acme's plugins"},
    "renames": {"legacy-ops": "ops"},
    "plugins": [
        {"name": "review", "source": "./plugins/review", "description": "Code review", "category": "dev"},
        {"name": "legacy-ops", "source": "./plugins/ops", "version": "0.3.0"},
        {"name": "ghost", "source": "./plugins/ghost"},
        {"name": "remote-gh", "source": {"source": "github", "repo": "acme/remote", "ref": "main", "sha": SHA}},
        {"name": "remote-url", "source": {"source": "url", "url": "https://git.example.com/x.git", "ref": "v1.4.0"}},
        {"name": "remote-sub", "source": {"source": "git-subdir", "url": "https://git.example.com/mono.git",
                                          "path": "plugins/sub", "ref": "develop"}},
    ],
}


def marketplace_files() -> dict[str, str]:
    return {
        ".claude-plugin/marketplace.json": js(MARKETPLACE),
        "plugins/review/.claude-plugin/plugin.json": js({
            "name": "review", "version": "1.2.0", "description": "Reviews code",
            "author": {"name": "Ann", "email": "ann@example.invalid"}}),
        "plugins/review/agents/reviewer.md": md("name: reviewer\ndescription: Reviews diffs\nmodel: sonnet\n"
                                                "tools: Read, Grep\n", "You review code.\n"),
        "plugins/review/commands/review.md": md("description: Run a review\nargument-hint: [pr-number]\n",
                                                "Use the Task tool with subagent_type: reviewer on $ARGUMENTS.\n"),
        "plugins/review/skills/checks/SKILL.md": md("name: checks\ndescription: Lint checks\nlicense: MIT\n"
                                                    "metadata:\n  version: 2.0.0\n", "Run the checks.\n"),
        "plugins/review/skills/checks/scripts/run.py": "print('checks')\n",
        "plugins/review/hooks/hooks.json": js({"hooks": {}}),
        "plugins/review/agents/evil.md": Symlink("/etc/passwd"),
        "plugins/review/.mcp.json": js({"mcpServers": {"review-db": {"command": "npx", "args": ["review-db"]}}}),
        # The ops plugin only has a Codex sibling manifest, naming a folder that does not exist.
        "plugins/ops/.codex-plugin/plugin.json": js({"name": "legacy-ops", "agents": ["./nope/"]}),
        "plugins/ops/agents/reviewer.md": md("name: reviewer\ndescription: Reviews deploys\n"),
        "plugins/ops/commands/deploy.md": md("description: Deploy\nsubagent_type: missing-agent\n"),
    }


def test_marketplace_records(factory, open_mirror):
    repo = factory.create("acme", files=marketplace_files())
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    assert detect_format(mirror, commit) == "claude-marketplace"
    snap = read_catalog_snapshot(mirror, commit, label="main")
    assert snap.fatal is None
    by = {(c.kind, c.name): c for c in snap.components}
    assert set(by) == {("Agent", "review--reviewer"), ("Agent", "ops--reviewer"), ("Prompt", "review"),
                       ("Prompt", "deploy"), ("Prompt", "checks"), ("Tool", "review-db")}
    reviewer = by[("Agent", "review--reviewer")]
    assert reviewer.version == "1.2.0" and reviewer.metadata["version_source"] == "plugin.json"
    assert reviewer.path == "plugins/review/agents/reviewer.md"
    assert reviewer.metadata["original_name"] == "reviewer" and reviewer.metadata["plugin"] == "review"
    assert reviewer.metadata["author"] == "Ann"
    spec = reviewer.definition["spec"]
    assert spec["source_file"] == "plugins/review/agents/reviewer.md"
    assert spec["frontmatter"]["tools"] == "Read, Grep" and spec["llm"] == {"model": "sonnet"}
    assert spec["body"] == "You review code.\n"
    # The ops plugin: version from the marketplace entry, renamed, Codex manifest read.
    ops_reviewer = by[("Agent", "ops--reviewer")]
    assert ops_reviewer.version == "0.3.0" and ops_reviewer.metadata["version_source"] == "marketplace"
    # A command's subagent_type resolves inside its plugin (the namespaced agent).
    review_cmd = by[("Prompt", "review")]
    assert review_cmd.definition["spec"]["type"] == "task"
    assert review_cmd.definition["spec"]["catalog_type"] == "command"
    assert review_cmd.definition["spec"]["frontmatter"]["argument-hint"] == "[pr-number]"
    assert review_cmd.definition["spec"]["dependencies"] == {
        "agents": [{"component": "review--reviewer", "version": f"commit:{commit}"}]}
    assert "dependencies" not in by[("Prompt", "deploy")].definition["spec"]
    skill = by[("Prompt", "checks")]
    assert skill.version == "2.0.0" and skill.path == "plugins/review/skills/checks"
    assert skill.metadata["license"] == "MIT" and skill.definition["spec"]["catalog_type"] == "skill"
    tool = by[("Tool", "review-db")]
    assert tool.definition["spec"]["type"] == "mcp-server" and tool.definition["spec"]["runtime"] == "npx"
    # Every definition is a valid forge.dev/v1 document (the lock code re-parses them).
    for record in snap.components:
        parse_component(record.definition, source=record.path)
    # Problems: collision note, missing agent warning, missing plugin folder, missing named path, externals.
    text = "\n".join(snap.problems)
    assert "Agent name 'reviewer' is used by 2 components" in text
    assert "refers to agent 'missing-agent', which is not in the repository" in text
    assert "source folder 'plugins/ghost' does not exist" in text
    assert "plugins/ops/.codex-plugin/plugin.json@main: agents path './nope/' does not exist" in text
    assert "plugin 'ops' was renamed from 'legacy-ops'" in text
    assert text.count("unresolved") == 3
    assert "plugins/review/agents/evil.md@main: symlink leaves the repository; not read" in text


def test_plugin_compositions_and_renames(factory, open_mirror):
    repo = factory.create("acme", files=marketplace_files())
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    snap = read_catalog_snapshot(mirror, commit, label="main")
    comps = {c.name: c for c in snap.compositions}
    assert set(comps) == {"review", "ops"}
    review = comps["review"]
    assert review.version == "1.2.0" and review.path == "plugins/review" and review.description == "Reviews code"
    deps = review.definition["spec"]["dependencies"]
    assert [d["name"] for d in deps["agents"]] == ["review--reviewer"]
    assert sorted(d["name"] for d in deps["prompts"]) == ["checks", "review"]
    assert [d["name"] for d in deps["tools"]] == ["review-db"]
    assert all(d["version"] == f"commit:{commit}" for g in deps.values() for d in g)
    assert review.definition["spec"]["hooks"] == ["plugins/review/hooks/hooks.json"]
    ops = comps["ops"]
    assert ops.version == "0.3.0" and ops.definition["metadata"]["previous_names"] == ["legacy-ops"]
    for c in snap.compositions:
        parse_composition(c.definition, source=c.path)
    catalog = snap.manifest["catalog"]
    assert catalog["format"] == "claude-marketplace" and catalog["renames"] == {"legacy-ops": "ops"}
    assert catalog["counts"] == {"agent": 2, "command": 2, "mcp-server": 1, "plugin": 2, "skill": 1}
    assert snap.manifest["metadata"]["name"] == "acme-tools"
    assert snap.manifest_hash
    ext = {e["component"]: e for e in external_sources(snap)}
    assert ext["remote-gh"]["repository"] == "https://github.com/acme/remote"
    assert ext["remote-gh"]["version"] == f"commit:{SHA}"
    assert ext["remote-url"]["version"] == "tag:v1.4.0"
    assert ext["remote-sub"]["version"] == "branch:develop" and ext["remote-sub"]["path"] == "plugins/sub"


def test_single_file_components_tree_and_checksum(factory, open_mirror):
    repo = factory.create("acme", files=marketplace_files())
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    snap = read_catalog_snapshot(mirror, commit, label="main")
    by = {c.name: c for c in snap.components}
    agent = by["review--reviewer"]
    blob = repo.git("rev-parse", f"{commit}:plugins/review/agents/reviewer.md")
    assert agent.tree_hash == blob == component_tree(mirror, commit, agent.path)
    content = (repo.workdir / agent.path).read_bytes()
    assert component_files(mirror, commit, agent.path) == [("reviewer.md", content)]
    assert component_checksum_at(mirror, commit, agent.path) == component_checksum([("reviewer.md", content)])
    skill = by["checks"]
    assert skill.tree_hash == repo.git("rev-parse", f"{commit}:plugins/review/skills/checks")
    assert [rel for rel, _ in component_files(mirror, commit, skill.path)] == ["SKILL.md", "scripts/run.py"]


def test_tags_name_the_release(factory, open_mirror):
    repo = factory.create("acme", files=marketplace_files())
    commit = repo.commit(files={"plugins/review/agents/reviewer.md":
                                md("name: reviewer\ndescription: Reviews diffs v2\n")},
                         tags=["v1.2.0", "review--v1.3.0", "plugins/ops/0.4.0", "not-a-release", "nightly-2024"])
    mirror = open_mirror(repo)
    snap = read_catalog_snapshot(mirror, commit, label="v1.2.0")
    tags = ["v1.2.0", "review--v1.3.0", "plugins/ops/0.4.0", "not-a-release", "nightly-2024"]
    tagged = apply_release_tags(snap, tags)
    by = {c.name: c for c in tagged.components}
    # Plugin-scoped tag wins for the review plugin's components; the skill's own 2.0.0 disagrees.
    assert by["review--reviewer"].version == "1.3.0"
    assert by["checks"].version == "1.3.0" and by["checks"].metadata["manifest_version"] == "2.0.0"
    assert by["ops--reviewer"].version == "0.4.0"  # path-scoped tag
    assert by["deploy"].version == "0.4.0"
    text = "\n".join(tagged.problems)
    assert "has version 2.0.0 (from frontmatter metadata) but the tag releases 1.3.0" in text
    assert "not-a-release" not in text
    version, problem = release_version_for(by["review--reviewer"], "1.3.0")
    assert (version, problem) == ("1.3.0", None)


def test_root_plugin_and_forced_format(factory, open_mirror):
    repo = factory.create("solo", files={
        ".cursor-plugin/plugin.json": js({"name": "Solo Plugin", "version": "v0.9", "skills": "./missing"}),
        "agents/helper.md": md("description: helps\n"),
        "commands/go.md": md(None, "Just go.\n"),
    })
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    assert detect_format(mirror, commit) == "claude-plugin"
    snap = read_catalog_snapshot(mirror, commit, label="main")
    assert {c.name: c.version for c in snap.components} == {"helper": "0.9.0", "go": "0.9.0"}
    assert [c.name for c in snap.compositions] == ["solo-plugin"]
    assert snap.compositions[0].path == "."
    assert any("skills path './missing' does not exist" in p for p in snap.problems)
    forced = read_catalog_snapshot(mirror, commit, label="main", format="claude-marketplace")
    assert forced.fatal and "marketplace.json" in forced.fatal
    tip_only = read_catalog_snapshot(mirror, commit, label="main", read_components=False)
    assert tip_only.components == [] and [c.name for c in tip_only.compositions] == ["solo-plugin"]


def test_broken_marketplace_is_fatal(factory, open_mirror):
    repo = factory.create("broken", files={".claude-plugin/marketplace.json": "{not json: [\n"})
    mirror = open_mirror(repo)
    snap = read_catalog_snapshot(mirror, repo.commits[-1], label="main")
    assert snap.fatal and ".claude-plugin/marketplace.json@main" in snap.fatal
    assert snap.fatal.startswith(".claude-plugin/marketplace.json@main:1:2: invalid JSON: ")


def test_broken_plugin_json_files_say_json(factory, open_mirror):
    repo = factory.create("broken-plugin", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "plugins": [{"name": "p", "source": "./p"}]}),
        "p/.claude-plugin/plugin.json": '{"name": "p",\n "version": "1.0.0" "x": 1}\n',
        "p/.mcp.json": '{"mcpServers": {"db": {"command": "npx",, }}}\n',
        "p/agents/a.md": md("name: a\n"),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main")
    assert [c.name for c in snap.components] == ["a"]
    assert snap.problems == [
        "p/.claude-plugin/plugin.json@main:2:21: invalid JSON: Expecting ',' delimiter; "
        "the plugin is read without it",
        "p/.mcp.json@main:1:41: invalid JSON: Expecting property name enclosed in double quotes; "
        "its MCP servers are skipped"]


def _names_repo(factory, plugins):
    return factory.create("names", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "plugins": plugins}),
        "p1/agents/rev.md": md("name: rev\n"), "p2/agents/rev.md": md("name: rev\n"),
        "p3/agents/lit.md": md("name: p1-colon--rev\n"),
    })


def test_own_name_wins_over_a_namespaced_one(factory, open_mirror):
    """p3's agent calls itself 'p1-colon--rev', the name p1's 'rev' would be namespaced to: the
    name written in the file is kept, the made-up one is numbered (it skipped p3's agent before,
    leaving p3 an empty composition)."""
    repo = _names_repo(factory, [{"name": "P1:Colon", "source": "./p1"}, {"name": "p2", "source": "./p2"},
                                 {"name": "p3", "source": "./p3"}])
    commit = repo.commits[-1]
    snap = read_catalog_snapshot(open_mirror(repo), commit, label="v1.0.0", validate=True)
    assert sorted((c.name, c.path) for c in snap.components) == [
        ("p1-colon--rev", "p3/agents/lit.md"), ("p1-colon--rev-2", "p1/agents/rev.md"),
        ("p2--rev", "p2/agents/rev.md")]
    deps = {c.name: c.definition["spec"]["dependencies"] for c in snap.compositions}
    assert deps == {"p1-colon": {"agents": [{"name": "p1-colon--rev-2", "version": f"commit:{commit}"}]},
                    "p2": {"agents": [{"name": "p2--rev", "version": f"commit:{commit}"}]},
                    "p3": {"agents": [{"name": "p1-colon--rev", "version": f"commit:{commit}"}]}}
    assert snap.problems == [
        "warning: p1/agents/rev.md@v1.0.0: Agent name 'p1-colon--rev' (namespaced) is already the name of "
        "p3/agents/lit.md (its own name); this one is named 'p1-colon--rev-2' instead",
        "Agent name 'rev' is used by 2 components; namespaced as p1-colon--rev-2 (p1/agents/rev.md), "
        "p2--rev (p2/agents/rev.md)"]


def test_plugin_listed_twice(factory, open_mirror):
    repo = factory.create("twice", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "renames": {"old": "p2"}, "plugins": [
            {"name": "p1", "source": "./p1"}, {"name": "old", "source": "./p2"}, {"name": "old", "source": "./p2"},
            {"name": "p2", "source": "./p2"}]}),
        "p1/agents/rev.md": md("name: rev\n"), "p2/agents/rev.md": md("name: rev\n"),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main", validate=True)
    assert sorted(c.name for c in snap.compositions) == ["p1", "p2"]
    assert sorted(c.name for c in snap.components) == ["p1--rev", "p2--rev"]
    assert snap.problems == [
        "plugin 'p2' was renamed from 'old'; the new name is used",  # once, not once per listing
        ".claude-plugin/marketplace.json@main: plugin 'p2' listed twice in marketplace.json "
        "(entries plugins[1] and plugins[2]); the later one is skipped",
        ".claude-plugin/marketplace.json@main: plugin 'p2' listed twice in marketplace.json (as 'old' and 'p2') "
        "(entries plugins[1] and plugins[3]); the later one is skipped",
        "Agent name 'rev' is used by 2 components; namespaced as p1--rev (p1/agents/rev.md), "
        "p2--rev (p2/agents/rev.md)"]


@pytest.mark.parametrize("bad", ["", "  ", "--"])
def test_a_marketplace_entry_with_an_unusable_name_is_skipped(factory, open_mirror, bad):
    """`"name": ""` fell back to the plugin.json's name, which another entry had: two compositions
    named zed reached one INSERT and the repository's whole sync failed with a raw SQL error
    (CardinalityViolation); "  " was blamed on the plugin.json."""
    repo = factory.create("unnamed", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "plugins": [
            {"name": "zed", "source": "./plugins/zed"}, {"name": bad, "source": "./plugins/zed"}]}),
        "plugins/zed/.claude-plugin/plugin.json": js({"name": "zed", "version": "1.2.0"}),
        "plugins/zed/commands/go.md": md("description: c\n"),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main", validate=True)
    assert not snap.fatal
    assert [c.name for c in snap.compositions] == ["zed"] and [c.name for c in snap.components] == ["go"]
    assert snap.problems == [f".claude-plugin/marketplace.json@main: plugins[1]: plugin name {bad!r} is not usable "
                             "(it needs a letter or digit); skipped"]


def test_nested_skills_in_a_plugin_are_warned_of(factory, open_mirror):
    """In a plugin too, a SKILL.md inside another skill's folder is a file of the outermost skill
    holding it (FORMATS §6 "Skills inside skills"), with read_loose's warning; it used to be a
    skill of its own whose files were also the outer skill's. An agents/ folder inside a skill
    folder is the skill's files, not agents of the plugin."""
    tail = "; it is a file of that skill, not a skill of its own"
    repo = factory.create("nested-plugin", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "plugins": [{"name": "p1", "source": "./plugins/p1"},
                                                                       {"name": "p2", "source": "./plugins/p2"}]}),
        # p1 names an extra skills folder inside rev's: the SKILL.md there is found twice, warned of once.
        "plugins/p1/.claude-plugin/plugin.json": js({"name": "p1", "skills": ["./skills/rev/deep"]}),
        "plugins/p1/skills/rev/SKILL.md": md("name: rev\n"),
        "plugins/p1/skills/rev/deep/inner/SKILL.md": md("name: inner\n"),
        "plugins/p1/skills/rev/agents/helper.md": md("name: helper\n"),
        "plugins/p1/skills/lint/SKILL.md": md("name: lint\n"),
        "plugins/p2/skills/rev/SKILL.md": md("name: rev\n"),  # same layout in another plugin: not nested
    })
    commit = repo.commits[-1]
    snap = read_catalog_snapshot(open_mirror(repo), commit, label="v1", validate=True)
    assert sorted((c.name, c.path) for c in snap.components) == [
        ("lint", "plugins/p1/skills/lint"), ("p1--rev", "plugins/p1/skills/rev"),
        ("p2--rev", "plugins/p2/skills/rev")]
    deps = {c.name: c.definition["spec"]["dependencies"] for c in snap.compositions}
    assert deps["p1"] == {"prompts": [{"name": "lint", "version": f"commit:{commit}"},
                                      {"name": "p1--rev", "version": f"commit:{commit}"}]}
    assert [p for p in snap.problems if "inside the folder" in p] == [
        "warning: plugins/p1/skills/rev/deep/inner/SKILL.md@v1: inside the folder of the skill "
        f"'plugins/p1/skills/rev' (plugins/p1/skills/rev/SKILL.md){tail}"]
    assert snap.manifest["catalog"]["counts"] == {"plugin": 2, "skill": 3}
    # A single plugin at the root, many nested: the one line with a count, as for loose skills.
    one = factory.create("nested-root-plugin", files={
        ".claude-plugin/plugin.json": js({"name": "solo"}),
        "skills/big/SKILL.md": md("name: big\n"),
        **{f"skills/big/refs/r{i}/SKILL.md": md(f"name: r{i}\n") for i in range(7)},
    })
    snap = read_catalog_snapshot(open_mirror(one), one.commits[-1], label="main", validate=True)
    assert [c.name for c in snap.components] == ["big"]
    assert snap.problems == [
        "warning: 7 SKILL.md files are inside the folder of the skill 'skills/big' (skills/big/SKILL.md)@main, "
        "so they are files of that skill, not skills of their own: skills/big/refs/r0/SKILL.md, "
        "skills/big/refs/r1/SKILL.md, skills/big/refs/r2/SKILL.md, and 4 more"]


def test_entry_without_source_is_skipped(factory, open_mirror):
    repo = factory.create("nosrc", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "plugins": [{"name": "nosrc"},
                                                                       {"name": "p1", "source": "./p1"}]}),
        "p1/agents/rev.md": md("name: rev\n"), "agents/root.md": md("name: root\n"),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main")
    assert [c.name for c in snap.compositions] == ["p1"]
    assert [c.name for c in snap.components] == ["rev"]
    assert snap.problems == [".claude-plugin/marketplace.json@main: plugins[0]: plugin 'nosrc' has no 'source'; "
                             "skipped"]


def test_plugin_left_with_no_components_is_warned_of(factory, open_mirror):
    repo = factory.create("emptied", files={
        ".claude-plugin/marketplace.json": js({"name": "m", "plugins": [{"name": "p", "source": "./p"},
                                                                       {"name": "q", "source": "./q"}]}),
        "p/agents/___.md": md("name: '!!!'\n"), "q/hooks/hooks.json": js({"hooks": {}}),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main")
    assert sorted(c.name for c in snap.compositions) == ["p", "q"]
    assert snap.problems[-1] == ("warning: p@main: plugin 'p' has none of its 1 component(s) left (each one's "
                                 "problem is above); its composition is empty")
    assert len(snap.problems) == 2  # the skipped agent's, and that one (none for q, which had no components)


def test_pseudo_versions_sort_by_time(factory, open_mirror):
    repo = factory.create("skills", files={"skills/alpha/SKILL.md": md("name: alpha\ndescription: a\n")})
    first = repo.commits[-1]
    second = repo.commit(files={"skills/alpha/SKILL.md": md("name: alpha\ndescription: b\n")})
    mirror = open_mirror(repo)
    versions = []
    for commit in (first, second):
        snap = read_catalog_snapshot(mirror, commit, label="main")
        (record,) = snap.components
        stamp = mirror.commit_time(commit).strftime("%Y%m%d%H%M%S")
        assert record.version == f"0.0.0-{stamp}-{commit[:12]}"
        assert record.metadata["version_source"] == "pseudo"
        versions.append(semver.Version.parse(record.version))
    assert versions[0] < versions[1]
    # A pseudo-versioned component takes a tag's version without a mismatch problem.
    assert release_version_for(record, "1.0.0") == ("1.0.0", None)
