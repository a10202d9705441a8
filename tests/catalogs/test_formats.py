"""Copilot files, agent skills, MCP server.json, forge delegation, tag shapes, and messy files."""

from __future__ import annotations

import pytest

from agentforge.catalogs import (
    catalog_version_from_tag,
    coerce_version,
    detect_format,
    normalise_name,
    parse_markdown,
    read_catalog_snapshot,
)
from agentforge.core.documents import is_valid_name, parse_component
from tests.catalogs.conftest import js, md
from tests.gitfactory import Symlink


@pytest.mark.parametrize(("tag", "expected"), [
    ("v1.2.3", (None, "1.2.3")),
    ("1.2.3", (None, "1.2.3")),
    ("refs/tags/v2.0.0-rc.1", (None, "2.0.0-rc.1")),
    ("review@1.2.0", ("review", "1.2.0")),
    ("review@v1.2.0", ("review", "1.2.0")),
    ("review/v1.2.0", ("review", "1.2.0")),
    ("review--v1.2.0", ("review", "1.2.0")),
    ("review--1.2.0", ("review", "1.2.0")),
    ("plugins/ops/1.2.0", ("plugins/ops", "1.2.0")),
    ("my-plugin-v0.4.1", ("my-plugin", "0.4.1")),
    ("latest", None), ("v1.2", None), ("nightly-2024-01-01", None), ("../x/1.0.0", None), ("", None),
])
def test_tag_shapes(tag, expected):
    assert catalog_version_from_tag(tag) == expected


def test_coerce_and_names():
    assert [coerce_version(v) for v in ("1.2.3", "v1.2", 1.0, "2", "latest", None, True)] == [
        "1.2.3", "1.2.0", "1.0.0", "2.0.0", None, None, None]
    assert normalise_name("Code Reviewer") == "code-reviewer"
    assert normalise_name("Café Résumé") == "cafe-resume"
    assert normalise_name("\u200breviewer\u00a0") == "reviewer"
    cjk = normalise_name("日本語")
    assert cjk and cjk.startswith("xn--") and is_valid_name(cjk)
    assert normalise_name("!!!") is None and normalise_name("") is None


def test_copilot_layout(factory, open_mirror):
    repo = factory.create("copilot", files={
        ".github/agents/planner.agent.md": md("name: planner\ndescription: Plans\ntools: ['search', 'edit']\n"
                                              "agents: [coder, nobody]\nhandoffs:\n  - label: Code\n    agent: coder\n"),
        ".github/agents/coder.agent.md": md("description: Writes code\nmodel: GPT-5\n"),
        ".github/prompts/fix.prompt.md": md("agent: coder\ndescription: Fix a bug\n", "Fix ${input:bug}.\n"),
        ".github/prompts/ask.prompt.md": md("agent: ask\n"),
        ".github/instructions/py.instructions.md": md("applyTo: **/*.py\ndescription: Python rules\n", "Use ruff.\n"),
        ".github/chatmodes/review.chatmode.md": md("description: Review mode\n"),
        ".github/copilot-instructions.md": "Be concise.\n",
        ".github/skills/triage/SKILL.md": md("name: triage\ndescription: Triage issues\n"),
    })
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    assert detect_format(mirror, commit) == "copilot"
    snap = read_catalog_snapshot(mirror, commit, label="main", validate=True)
    by = {c.name: c for c in snap.components}
    assert {(c.kind, c.name, c.definition["spec"]["catalog_type"]) for c in snap.components} == {
        ("Agent", "planner", "agent"), ("Agent", "coder", "agent"), ("Prompt", "fix", "prompt"),
        ("Prompt", "ask", "prompt"), ("Prompt", "py", "instructions"), ("Prompt", "review", "chatmode"),
        ("Prompt", "copilot-instructions", "instructions"), ("Prompt", "triage", "skill")}
    assert by["planner"].definition["spec"]["dependencies"] == {
        "agents": [{"component": "coder", "version": f"commit:{commit}"}]}
    assert by["fix"].definition["spec"]["dependencies"]["agents"][0]["component"] == "coder"
    assert "dependencies" not in by["ask"].definition["spec"]  # a built-in agent, not a reference
    py = by["py"]
    assert py.definition["spec"]["frontmatter"]["applyTo"] == "**/*.py"
    assert py.metadata["frontmatter_lenient"] is True and py.definition["spec"]["type"] == "system"
    assert py.path == ".github/instructions/py.instructions.md"
    assert by["copilot-instructions"].definition["spec"]["template"] == "Be concise.\n"
    text = "\n".join(snap.problems)
    assert "refers to agent 'nobody'" in text
    assert "warning: .github/instructions/py.instructions.md@main:2:" in text  # the file's own line number
    assert snap.manifest["catalog"]["format"] == "copilot"


def test_mcp_server_json(factory, open_mirror):
    server = {
        "$schema": "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json",
        "name": "io.github.acme/weather", "description": "Weather data", "version": "1.0.2",
        "packages": [{"registryType": "npm", "identifier": "@acme/weather", "version": "1.0.2",
                      "transport": {"type": "stdio"}}],
        "remotes": [{"type": "streamable-http", "url": "https://weather.example.com/mcp"}],
        "repository": {"url": "https://github.com/acme/weather", "source": "github", "subfolder": "."},
    }
    repo = factory.create("weather", files={"server.json": js(server), "src/index.ts": "export {}\n"})
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    assert detect_format(mirror, commit) == "mcp-server"
    snap = read_catalog_snapshot(mirror, commit, label="main")
    (tool,) = snap.components
    assert (tool.kind, tool.name, tool.version, tool.path) == ("Tool", "io.github.acme-weather", "1.0.2", ".")
    assert tool.metadata["original_name"] == "io.github.acme/weather"
    spec = tool.definition["spec"]
    assert spec["type"] == "mcp-server" and spec["runtime"] == "npm" and spec["remotes"] == server["remotes"]
    assert tool.tree_hash == repo.git("rev-parse", f"{commit}^{{tree}}")


def test_forge_repositories_are_read_natively(factory, open_mirror):
    component = ("apiVersion: forge.dev/v1\nkind: Tool\nmetadata:\n  name: native\n  version: 1.0.0\n"
                 "spec:\n  type: function\n")
    repo = factory.create("native", files={"tools/native/component.yaml": component,
                                           "skills/x/SKILL.md": md("name: x\n")})
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    assert detect_format(mirror, commit) == "forge"
    snap = read_catalog_snapshot(mirror, commit, label="main")
    assert [(c.name, c.version) for c in snap.components] == [("native", "1.0.0")]
    forced = read_catalog_snapshot(mirror, commit, label="main", format="agent-skills")
    assert [c.name for c in forced.components] == ["x"]


def test_root_manifest_decides_without_listing_the_tree(factory, open_mirror, monkeypatch):
    """A regular forge-manifest.yaml at the root means forge (as detection would say) without the
    recursive listing of every file at every tag; so does a component.yaml within six folders,
    whatever the manifest is (here a symlink); a repository with neither is listed (skills)."""
    component = ("apiVersion: forge.dev/v1\nkind: Tool\nmetadata:\n  name: native\n  version: 1.0.0\n"
                 "spec:\n  type: function\n")
    manifest = ("apiVersion: forge.dev/v1\nkind: ComponentRepository\nmetadata:\n  name: native\n"
                "components:\n  tools:\n    - name: native\n      path: tools/native\n")
    files = {"tools/native/component.yaml": component, "skills/x/SKILL.md": md("name: x\n")}
    plain = factory.create("plain-manifest", files={**files, "forge-manifest.yaml": manifest})
    linked = factory.create("linked-manifest", files={**files, "meta/manifest.yaml": manifest,
                                                      "forge-manifest.yaml": Symlink("meta/manifest.yaml")})
    skills = factory.create("only-skills", files={"skills/x/SKILL.md": md("name: x\n")})
    listed: list[str] = []
    mirror = open_mirror(skills)
    original_list = mirror.list_tree
    monkeypatch.setattr(mirror, "list_tree", lambda commit: listed.append(commit) or original_list(commit))
    snap = read_catalog_snapshot(mirror, skills.commits[-1], label="main")
    assert [c.name for c in snap.components] == ["x"] and listed == [skills.commits[-1]]
    listed.clear()
    for handle in (plain, linked):
        mirror = open_mirror(handle)
        original = mirror.list_tree

        def spy(commit: str, _original=original) -> object:
            listed.append(commit)
            return _original(commit)

        monkeypatch.setattr(mirror, "list_tree", spy)
        commit = handle.commits[-1]
        snap = read_catalog_snapshot(mirror, commit, label="main")
        forced = read_catalog_snapshot(mirror, commit, label="main", format="forge")
        assert [(c.name, c.version, c.path) for c in snap.components] == [("native", "1.0.0", "tools/native")]
        assert snap.manifest == forced.manifest and snap.manifest is not None
        assert [c.tree_hash for c in snap.components] == [c.tree_hash for c in forced.components]
        assert listed == []
        listed.clear()


BIG = "x" * 1000 + "\n"
DIALOGUE = """name: explainer
description: Use this agent when the user asks: "why?". Examples:
<example>
user: "Why does this fail?"
assistant: "Let me look: the test is flaky."
</example>
model: opus
"""


def test_messy_files(factory, open_mirror):
    files: dict[str, str | bytes] = {
        "skills/crlf/SKILL.md": "\ufeff---\r\nname: crlf-skill\r\ndescription: Windows: line endings\r\n---\r\nBody\r\n",
        "skills/nbsp/SKILL.md": "---\nname: nbsp\nmetadata:\n\u00a0\u00a0version: 1.4.0\ndescription: a\u00a0b\n---\n",
        "skills/zero/SKILL.md": "---\n\u200bname: \u200bzero-width\ndescription: z\n---\n",
        "skills/cafe/SKILL.md": md("name: Café Résumé\ndescription: accents\n"),
        "skills/kanji/SKILL.md": md("name: 日本語\ndescription: cjk\n"),
        "skills/plain/SKILL.md": "No frontmatter at all.\n",
        "skills/huge/SKILL.md": md("name: huge\ndescription: big\n", BIG * 300),
        "skills/hint/SKILL.md": md("name: hint\nargument-hint: [x]\nversion: 1.0\n"),
        "skills/dialogue/SKILL.md": md(DIALOGUE, "Explain.\n"),
        "skills/noname/SKILL.md": md("name: '!!!'\ndescription: unusable\n"),
        "skills/unclosed/SKILL.md": "---\nname: unclosed\nno end fence\n",
        # Symlinks: a skill folder pointing elsewhere in the repository is followed; one with a
        # file leaving the repository is refused (that skill only).
        "docs/linked-skill.md": md("name: linked-target\ndescription: the real one\n"),
        "skills/linked/SKILL.md": Symlink("../../docs/linked-skill.md"),
        "skills/linked/notes.txt": "notes\n",
        "shared/real/SKILL.md": md("name: real-one\n"),
        "skills/alias": Symlink("../shared/real"),
        "skills/leaky/SKILL.md": md("name: leaky\n"),
        "skills/leaky/secret": Symlink("../../../../etc/passwd"),
        "skills/outside": Symlink("/etc"),
    }
    files["skills/___/SKILL.md"] = "no name here\n"
    repo = factory.create("messy", files=files)
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    assert detect_format(mirror, commit) == "agent-skills"
    snap = read_catalog_snapshot(mirror, commit, label="main")
    by = {c.metadata.get("original_name", c.name): c for c in snap.components}
    names = {c.name for c in snap.components}
    assert {"crlf-skill", "nbsp", "zero-width", "cafe-resume", "plain", "huge", "hint", "explainer", "unclosed",
            "linked-target"} <= names
    assert "leaky" not in names and "___" not in names
    assert by["crlf-skill"].definition["spec"]["frontmatter"]["description"] == "Windows: line endings"
    assert by["crlf-skill"].definition["spec"]["template"] == "Body\n"
    assert by["nbsp"].version == "1.4.0"
    assert by["nbsp"].definition["spec"]["frontmatter"]["description"] == "a\u00a0b"  # values keep their text
    assert by["Café Résumé"].name == "cafe-resume"
    kanji = by["日本語"]
    assert kanji.name.startswith("xn--") and kanji.metadata["original_name"] == "日本語"
    assert by["plain"].definition["spec"]["template"] == "No frontmatter at all.\n"
    assert len(by["huge"].definition["spec"]["template"]) == 300 * 1001
    hint = by["hint"]
    assert hint.definition["spec"]["frontmatter"]["argument-hint"] == "[x]"
    assert hint.version == "1.0.0" and hint.definition["spec"]["frontmatter"]["version"] == "1.0"
    explainer = by["explainer"]
    description = explainer.definition["spec"]["frontmatter"]["description"]
    assert description.startswith('Use this agent when the user asks: "why?"')
    assert 'user: "Why does this fail?"' in description and explainer.metadata["frontmatter_lenient"]
    assert explainer.definition["spec"]["frontmatter"]["model"] == "opus"
    linked = {c.name: c for c in snap.components}["linked-target"]
    assert linked.path == "skills/linked" and linked.definition["spec"]["frontmatter"]["description"] == "the real one"
    assert [c.path for c in snap.components if c.name == "real-one"] == ["shared/real"]  # not twice
    for record in snap.components:
        parse_component(record.definition, source=record.path)
    text = "\n".join(snap.problems)
    assert "skills/noname/SKILL.md@main:2: no usable name" not in text  # falls back to the folder name
    assert "noname" in names
    assert "skills/___/SKILL.md@main:1: no usable name" in text
    assert "skills/leaky@main: symlink 'skills/leaky/secret' leaves the repository" in text
    assert "frontmatter fence '---' is never closed" in text
    assert "warning: skills/dialogue/SKILL.md@main" in text
    assert linked.tree_hash


def test_parse_markdown_unit():
    parsed = parse_markdown(b"\xef\xbb\xbf---\r\nname: a\r\ntools: [Read, Grep]\r\n---\r\nhi\r\n", source="f.md")
    assert parsed.fields == {"name": "a", "tools": ["Read", "Grep"]} and parsed.body == "hi\n"
    lenient = parse_markdown("---\nname: b\ndescription: x: y\ntools: [Read, Grep]\nlist:\n  - one\n  - two\n---\n",
                             source="g.md")
    assert lenient.lenient and lenient.fields["description"] == "x: y"
    assert lenient.fields["tools"] == ["Read", "Grep"] and lenient.fields["list"] == ["one", "two"]
    assert lenient.field_lines["name"] == 2


def test_skill_at_the_repository_root(factory, open_mirror):
    # A single-skill repository (SKILL.md at the root): one component, the whole repository,
    # whose SKILL.md files further down are its files, not skills of their own.
    repo = factory.create("one-skill", files={
        "SKILL.md": md("name: root-skill\ndescription: The whole repository\n", "Do it.\n"),
        "scripts/run.py": "print('run')\n",
        "examples/inner/SKILL.md": md("name: inner\n", "An example, part of root-skill.\n"),
    })
    mirror = open_mirror(repo)
    commit = repo.commits[-1]
    snap = read_catalog_snapshot(mirror, commit, label="main", validate=True)
    assert [(c.name, c.path) for c in snap.components] == [("root-skill", ".")]
    assert snap.components[0].tree_hash == repo.git("rev-parse", f"{commit}^{{tree}}")
    assert snap.manifest["catalog"]["counts"] == {"plugin": 0, "skill": 1}
    # Skills side by side, one nested in another's folder: the nested one is the outer one's file.
    repo = factory.create("skills", files={
        "skills/a/SKILL.md": md("name: a\n"), "skills/a/sub/SKILL.md": md("name: a-sub\n"),
        "skills/b/SKILL.md": md("name: b\n"),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main")
    assert sorted(c.name for c in snap.components) == ["a", "b"]


def test_nested_skills_are_warned_of(factory, open_mirror):
    """A SKILL.md inside another skill's folder stays a file of that skill, and a warning names
    it and the skill holding it (the outermost one, which is the skill kept)."""
    repo = factory.create("nested", files={
        "b/SKILL.md": md("name: b\n"), "b/big/SKILL.md": md("name: big\n"),
        "f/SKILL.md": md("name: f\n"), "f/Weird Name!/SKILL.md": md("name: weird\n"),
        "a/SKILL.md": md("name: a\n"), "a/x/SKILL.md": md("name: ax\n"), "a/x/y/SKILL.md": md("name: axy\n"),
        "c/SKILL.md": md("name: c\n"),
    })
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="v1", validate=True)
    assert sorted(c.name for c in snap.components) == ["a", "b", "c", "f"]
    tail = "; it is a file of that skill, not a skill of its own"
    assert [p for p in snap.problems if "inside the folder" in p] == [
        f"warning: a/x/SKILL.md@v1: inside the folder of the skill 'a' (a/SKILL.md){tail}",
        f"warning: a/x/y/SKILL.md@v1: inside the folder of the skill 'a' (a/SKILL.md){tail}",
        f"warning: b/big/SKILL.md@v1: inside the folder of the skill 'b' (b/SKILL.md){tail}",
        f"warning: f/Weird Name!/SKILL.md@v1: inside the folder of the skill 'f' (f/SKILL.md){tail}",
    ]
    assert len(snap.problems) == 4
    # A root SKILL.md makes the repository one skill: one warning for a nested SKILL.md ...
    one = factory.create("one-nested", files={"SKILL.md": md("name: root-skill\n"),
                                              "examples/inner/SKILL.md": md("name: inner\n")})
    snap = read_catalog_snapshot(open_mirror(one), one.commits[-1], label="main")
    assert snap.problems == [
        "warning: examples/inner/SKILL.md@main: inside the folder of the skill at the repository root "
        f"(SKILL.md){tail}"]
    # ... and one line with a count for many (the messages stay bounded).
    many = factory.create("many-nested", files={
        "SKILL.md": md("name: root-skill\n"), **{f"skills/s{i:02d}/SKILL.md": md(f"name: s{i:02d}\n") for i in range(40)}})
    snap = read_catalog_snapshot(open_mirror(many), many.commits[-1], label="main")
    assert [c.name for c in snap.components] == ["root-skill"]
    assert snap.problems == [
        "warning: 40 SKILL.md files are inside the folder of the skill at the repository root (SKILL.md)@main, "
        "so they are files of that skill, not skills of their own: skills/s00/SKILL.md, skills/s01/SKILL.md, "
        "skills/s02/SKILL.md, and 37 more"]


def test_same_namespaced_name_twice_gets_a_number(factory, open_mirror):
    """Two skills named alike in folders of the same name namespace alike (``skills--foo``): the
    second is numbered, not dropped."""
    repo = factory.create("twice", files={"x/skills/foo/SKILL.md": md("name: foo\n"),
                                          "y/skills/foo/SKILL.md": md("name: foo\n")})
    snap = read_catalog_snapshot(open_mirror(repo), repo.commits[-1], label="main", validate=True)
    assert sorted((c.name, c.path) for c in snap.components) == [
        ("skills--foo", "x/skills/foo"), ("skills--foo-2", "y/skills/foo")]
    text = "\n".join(snap.problems)
    assert ("warning: y/skills/foo/SKILL.md@main: Prompt name 'skills--foo' (namespaced) is already the name of "
            "x/skills/foo/SKILL.md (namespaced the same way); this one is named 'skills--foo-2' instead") in text
    assert "skipped" not in text


def test_json_files_are_reported_as_json(factory, open_mirror):
    """A .json file that is not JSON is named as such, with line and column (it was 'invalid YAML');
    one YAML can still read (a trailing comma) is read, with a warning."""
    broken = '{\n  "name": "io.x/y",\n  "version": "1.0.0",,\n}\n'
    repo = factory.create("bad-server", files={"server.json": broken})
    mirror = open_mirror(repo)
    snap = read_catalog_snapshot(mirror, repo.commits[-1], label="v1", format="mcp-server")
    assert snap.components == [] and snap.fatal is None
    assert snap.problems == [
        "server.json@v1:3:22: invalid JSON: Expecting property name enclosed in double quotes; skipped"]
    assert "YAML" not in "\n".join(snap.problems)
    lax = factory.create("lax-server", files={"server.json": '{"name": "io.x/y", "version": "1.0.0",}\n'})
    snap = read_catalog_snapshot(open_mirror(lax), lax.commits[-1], label="v1")
    assert [(c.name, c.version) for c in snap.components] == [("io.x-y", "1.0.0")]
    assert snap.problems == [
        "warning: server.json@v1:1:39: invalid JSON: Expecting property name enclosed in double quotes; "
        "read as YAML instead (the tools that use this file may refuse it)"]
