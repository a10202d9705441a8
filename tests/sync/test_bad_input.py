"""Bad input in a repository: each problem is named and recorded, the rest is still stored."""

from __future__ import annotations

from tests.gitfactory import Symlink
from tests.sync.conftest import component_yaml, manifest_yaml, one, q, run_sync


def test_every_kind_of_bad_component_is_reported_and_the_rest_recorded(env, factory, register) -> None:
    entries = [("good", "tools/good"), ("bad-yaml", "tools/bad-yaml"), ("bad-kind", "tools/bad-kind"),
               ("bad-api", "tools/bad-api"), ("missing", "tools/missing"), ("escape", "../outside"),
               ("linked", "tools/linked"), ("good", "tools/good-again"), ("bad-semver", "tools/bad-semver"),
               ("huge", "tools/huge"), ("latin1", "tools/latin1"), ("mismatch", "tools/mismatch")]
    files = {
        "forge-manifest.yaml": manifest_yaml(entries),
        "tools/good/component.yaml": component_yaml("good", "1.0.0"),
        "tools/good-again/component.yaml": component_yaml("good", "1.0.0"),
        "tools/bad-yaml/component.yaml": "apiVersion: forge.dev/v1\nkind: Tool\nmetadata: [unclosed\n",
        "tools/bad-kind/component.yaml": component_yaml("bad-kind", "1.0.0", kind="Widget"),
        "tools/bad-api/component.yaml": component_yaml("bad-api", "1.0.0", api="forge.dev/v9"),
        "tools/missing/README.md": "no component.yaml here\n",
        "tools/linked": Symlink("../../.."),
        "tools/bad-semver/component.yaml": component_yaml("bad-semver", "1.0"),
        "tools/huge/component.yaml": b"# " + b"x" * (50 * 1024 * 1024) + b"\n",
        "tools/latin1/component.yaml": component_yaml("latin1", "1.0.0").encode() + b"# caf\xe9\n",
        "tools/mismatch/component.yaml": component_yaml("mismatch", "1.0.0"),
    }
    repo = factory.create("demo", files=files, tag=["v1.0.0", "mismatch@2.0.0"])
    other = factory.create("other", files={"t/component.yaml": component_yaml("fine", "0.1.0")})
    register(repo)
    register(other)

    run = run_sync()
    result = run.results["demo"]
    assert result.status == "synced" and run.results["other"].status == "synced"
    assert {r[0] for r in q(env, "SELECT DISTINCT name FROM components")} == {"good", "mismatch", "fine"}
    error = one(env, "SELECT o.error_message FROM sync_operations o JOIN repositories r ON r.id = o.repository_id "
                     "WHERE r.name = 'demo'")[0]
    expected = {
        "invalid YAML": "tools/bad-yaml/component.yaml",
        "unknown kind": "Widget",
        "unknown apiVersion": "forge.dev/v9",
        "missing component.yaml": "missing component.yaml in 'tools/missing'",
        "path with ..": "'../outside' leaves the repository",
        "symlink leaving the tree": "'tools/linked' leaves the repository",
        "duplicate name": "duplicate name 'good'",
        "invalid semver": "tools/bad-semver/component.yaml",
        "50 MiB file": "tools/huge/component.yaml",
        "non-UTF-8": "tools/latin1/component.yaml",
        "tag/version mismatch": "tag mismatch@2.0.0: mismatch",
    }
    missing = {what: needle for what, needle in expected.items() if needle not in error}
    assert not missing, f"not reported: {missing}\n--- recorded:\n{error}"
    # One line per problem, each naming its file: readable as it is shown by the CLI.
    lines = error.splitlines()
    assert any("1.0" in line and "bad-semver" in line for line in lines)
    assert any("UTF-8" in line or "utf-8" in line.lower() for line in lines if "latin1" in line)
    assert any("MiB" in line or "too large" in line or "bytes" in line for line in lines if "huge" in line)


def test_scanned_repository_with_duplicate_names(env, factory, register) -> None:
    files = {"a/component.yaml": component_yaml("same", "1.0.0"), "b/component.yaml": component_yaml("same", "1.0.0")}
    register(factory.create("dups", files=files))
    result = run_sync().results["dups"]
    assert result.status == "synced"
    assert any("duplicate Tool name 'same'" in p for p in result.problems)
    assert one(env, "SELECT count(*) FROM components")[0] == 1


def test_a_symlink_inside_a_component_that_leaves_the_repository_skips_that_component(env, factory,
                                                                                     register) -> None:
    """A component folder holding a symlink out of the tree (absolute, or up through ``..``) is
    reported and not stored (an install would have to follow it out); one pointing elsewhere
    inside the repository is fine, and so are the other components."""
    entries = [("abs", "tools/abs"), ("up", "tools/up"), ("deep", "tools/deep"), ("inside", "tools/inside"),
               ("plain", "tools/plain")]
    files = {
        "forge-manifest.yaml": manifest_yaml(entries),
        "tools/abs/component.yaml": component_yaml("abs", "1.0.0"),
        "tools/abs/passwd": Symlink("/etc/passwd"),
        "tools/up/component.yaml": component_yaml("up", "1.0.0"),
        "tools/up/root": Symlink("../../.."),
        "tools/deep/component.yaml": component_yaml("deep", "1.0.0"),
        "tools/deep/a/b/c/link": Symlink("../../../../../../x"),
        "tools/inside/component.yaml": component_yaml("inside", "1.0.0"),
        "tools/inside/shared": Symlink("../../docs/shared.md"),
        "docs/shared.md": "shared text\n",
        "tools/plain/component.yaml": component_yaml("plain", "1.0.0"),
    }
    register(factory.create("links", files=files, tag="v1.0.0"))
    result = run_sync().results["links"]
    assert result.status == "synced"
    assert {r[0] for r in q(env, "SELECT name FROM components")} == {"inside", "plain"}
    skipped = [p for p in result.problems if "leaves the repository (or loops); component skipped" in p]
    assert len(skipped) == 3, result.problems
    assert any("'abs'" in p and "tools/abs/passwd" in p for p in skipped)
    assert any("'up'" in p and "tools/up/root" in p for p in skipped)
    assert any("'deep'" in p and "tools/deep/a/b/c/link" in p for p in skipped)
    # The one that stays inside the repository but leaves its folder is kept, with a warning that
    # `install` refuses it (it exports only symlinks inside the component's folder).
    assert any(p.startswith("warning: tools/inside@v1.0.0: symlink 'tools/inside/shared' leads to "
                            "'docs/shared.md', outside the component's folder") for p in result.problems), \
        result.problems
    # Recorded for the CLI and `repo show`, as every other per-component problem.
    error = one(env, "SELECT o.error_message FROM sync_operations o JOIN repositories r ON r.id = o.repository_id "
                     "WHERE r.name = 'links'")[0]
    assert "tools/abs/passwd" in error and "tools/deep/a/b/c/link" in error


def test_a_tool_and_a_prompt_may_share_a_name_and_both_are_released(env, factory, register) -> None:
    """Names are unique per kind (FORMATS §1): one is not a 'reused version' of the other."""
    manifest = ("apiVersion: forge.dev/v1\nkind: ComponentRepository\nmetadata: {name: kinds}\n"
                "repository: {type: mixed}\ncomponents:\n  tools:\n    - {name: same, path: tools/same}\n"
                "  prompts:\n    - {name: same, path: prompts/same}\n")
    files = {"forge-manifest.yaml": manifest,
             "tools/same/component.yaml": component_yaml("same", "1.0.0"),
             "prompts/same/component.yaml": component_yaml("same", "1.0.0", kind="Prompt")}
    register(factory.create("kinds", files=files, tag="v1.0.0"))
    result = run_sync().results["kinds"]
    rows = sorted(tuple(r) for r in q(env, "SELECT type::text, is_release, is_reused_version FROM components "
                                           "WHERE name = 'same'"))
    assert rows == [("PROMPT", True, False), ("TOOL", True, False)], (rows, result.problems)
    assert not any("reused version" in p for p in result.problems)


def test_a_symlink_loop_fails_only_its_component(env, factory, register) -> None:
    """A symlink pointing at itself (or a cycle) failed the whole repository's sync (exit 1,
    MANIFEST_INVALID 'Too many levels of symlinks'); it is that component's problem only."""
    files = {"x/p1/component.yaml": component_yaml("p1", "1.0.0"), "x/p1/loop": Symlink("loop"),
             "x/p2/component.yaml": component_yaml("p2", "1.0.0"),
             "x/p3/component.yaml": component_yaml("p3", "1.0.0"), "x/p3/a": Symlink("b"), "x/p3/b": Symlink("a")}
    register(factory.create("loops", files=files, tag="v1.0.0"))  # no manifest: scanned
    result = run_sync().results["loops"]
    assert result.status == "synced", (result.status, result.message)
    assert {r[0] for r in q(env, "SELECT name FROM components")} == {"p2"}
    skipped = sorted(p for p in result.problems if "(or loops); component skipped" in p)
    assert len(skipped) == 2 and "'p1'" in skipped[0] and "'p3'" in skipped[1], result.problems


def test_a_manifest_entry_with_a_bad_name_skips_only_that_entry_at_its_written_index(env, factory,
                                                                                     register) -> None:
    """An invalid name or a missing path is that entry's problem (FORMATS §1), not the manifest's;
    reported at its index as written, though an earlier duplicate entry was dropped before it."""
    entries = [("good", "tools/good"), ("good", "tools/good-again"), ("BadName", "tools/bad-name"),
               ("other", "tools/other")]
    manifest = (manifest_yaml(entries) + "    - {name: no-path}\n    - just a string\n    -\n"
                "compositions:\n  - {name: BadComp, path: x.yaml}\n  - {name: no-path-comp}\n")
    files = {"forge-manifest.yaml": manifest,
             "tools/good/component.yaml": component_yaml("good", "1.0.0"),
             "tools/good-again/component.yaml": component_yaml("good", "1.0.0"),
             "tools/bad-name/component.yaml": component_yaml("bad-name", "1.0.0"),
             "tools/other/component.yaml": component_yaml("other", "1.0.0")}
    register(factory.create("names", files=files, tag="v1.0.0"))
    result = run_sync().results["names"]
    assert result.status == "synced", result
    assert {r[0] for r in q(env, "SELECT name FROM components")} == {"good", "other"}
    problems = "\n".join(result.problems)
    assert "components.tools[2].name: 'BadName' is not a valid name" in problems, problems
    assert "components.tools[4].path" in problems and "(entry skipped)" in problems, problems
    assert "components.tools[1]: duplicate name 'good'" in problems, problems
    assert "components.tools[5]: expected a mapping with name and path, got str (entry skipped)" in problems
    assert "components.tools[6]: expected a mapping with name and path, got NoneType" in problems, problems
    assert "compositions[0].name: 'BadComp' is not a valid name" in problems, problems
    assert "compositions[1].path" in problems, problems
