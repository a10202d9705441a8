"""Catalog components that only have pseudo-versions (or pre-releases) resolve by a bare name.

A Copilot or agent-skills repository without tags gives its components the pseudo-version
``0.0.0-<yyyymmddhhmmss>-<12 hex>`` (FORMATS §6), a SemVer pre-release. Go's rule for
``latest`` (FORMATS §3): a bare name, ``*`` and ``latest`` pick the highest release, and the
newest pre-release when the component has no other release; a range that names a version
(``^0.0``, ``>=0.0.0``) keeps SemVer's pre-release exclusion. Real git, real sync, real database.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from agentforge.errors import ResolutionError
from agentforge.services import install as install_svc
from agentforge.services import lock as lock_svc
from tests.catalogs.conftest import js, md
from tests.cli.helpers import cli
from tests.lock.conftest import Library, component, lib  # noqa: F401  (the fixture)

PSEUDO = re.compile(r"^0\.0\.0-\d{14}-[0-9a-f]{12}$")


def copilot_files() -> dict[str, str | bytes | None]:
    return {
        ".github/prompts/python.prompt.md": md("description: Write Python\n", "Write idiomatic Python.\n"),
        ".github/copilot-instructions.md": "Be concise.\n",
    }


def skills_files() -> dict[str, str | bytes | None]:
    return {
        "skills/big/SKILL.md": md("name: big\ndescription: A big skill\n", "Do big things.\n"),
        "skills/big/scripts/run.py": "print('big')\n",
    }


def _root_package(out: lock_svc.ResolveOutcome) -> tuple[str, str]:
    root = next(p for p in out.lock.packages.values() if p.dependency_type == "root")
    return root.version, root.commit


def test_bare_name_star_and_latest_pick_the_newest_pseudo_version(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    cop = lib.repo("cop", files=copilot_files(), tag=None)
    skills = lib.repo("skills", files=skills_files(), tag=None)
    lib.sync()
    (version,) = {r[0] for r in lib.q("SELECT version FROM components WHERE name = 'python'")}
    assert PSEUDO.match(version), version

    for root in ("cop/python", "python", "python@*", "python@latest"):
        assert _root_package(lock_svc.resolve_root(root)) == (version, cop.commits[-1]), root
    out = lock_svc.resolve_root("skills/big")
    big_version, big_commit = _root_package(out)
    assert PSEUDO.match(big_version) and big_commit == skills.commits[-1]

    # The lock installs (what `agentforge install` does with it), and --frozen accepts it.
    path = tmp_path / "big-lock.yaml"
    lock_svc.write_lock_file(path, out.text)
    frozen = lock_svc.verify_lock_for_install("skills/big", path, include_dev=False)
    install_svc.install_lock(frozen, target=tmp_path / "installed")
    assert (tmp_path / "installed" / "big" / "scripts" / "run.py").read_text() == "print('big')\n"

    # A newer commit on the default branch: its pseudo-version is now the one a bare name picks.
    newer = cop.commit(files={".github/prompts/python.prompt.md": md("description: Write Python\n", "Newer.\n")})
    lib.sync()
    newest, commit = _root_package(lock_svc.resolve_root("python"))
    assert commit == newer and PSEUDO.match(newest) and newest != version

    # A range that names a version keeps SemVer's rule: pseudo-versions are pre-releases.
    for constraint in ("^0.0", ">=0.0.0", "0.*"):
        with pytest.raises(ResolutionError, match=f"nothing matches {re.escape(constraint)}"):
            lock_svc.resolve_root(f"python@{constraint}")


def test_dependencies_without_a_version_reach_pseudo_versions(lib: Library) -> None:  # noqa: F811
    cop = lib.repo("cop", files=copilot_files(), tag=None)
    # A forge component depending on the Copilot prompt with `*`, and on the skill with no version.
    skills = lib.repo("skills", files=skills_files(), tag=None)
    lib.repo("tools", files={"tools/app/component.yaml": component("app", "1.0.0", {
        "python": {"version": "*", "repository": cop.url},
        "big": {"repository": skills.url},
    })})
    lib.sync()
    out = lock_svc.resolve_root("app")
    got = {p.component: (p.commit, p.dependency_type) for p in out.lock.packages.values()}
    assert got == {"app": (got["app"][0], "root"), "python": (cop.commits[-1], "direct"),
                   "big": (skills.commits[-1], "direct")}
    assert all(PSEUDO.match(p.version) for p in out.lock.packages.values() if p.component != "app")

    # A composition's dependencies without a version (`compose import` writes this row).
    definition = {"apiVersion": "forge.dev/v1", "kind": "Composition", "metadata": {"name": "stack", "version": "1.0.0"},
                  "spec": {"dependencies": {"prompts": [{"name": "python", "repository": cop.url},
                                                        {"name": "big", "version": "*"}]}}}
    with lib.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO compositions (id, name, version, definition) "
                             "VALUES (:id, 'stack', '1.0.0', CAST(:d AS jsonb))"),
                     {"id": uuid.uuid4(), "d": json.dumps(definition)})
    out = lock_svc.resolve_root("stack", force_kind="composition", compute_checksums=False)
    assert {p.component: p.commit for p in out.lock.packages.values()} == {
        "python": cop.commits[-1], "big": skills.commits[-1]}


def test_a_tagless_plugin_locks_as_a_composition(lib: Library) -> None:  # noqa: F811
    # The catalog adapter pins a plugin's components to its commit (`commit:<sha>`), pseudo-versions and all.
    plugin = lib.repo("plug", tag=None, files={
        ".claude-plugin/plugin.json": js({"name": "plug", "description": "No version anywhere"}),
        "agents/helper.md": md("name: helper\ndescription: Helps\n", "Help.\n"),
        "commands/run.md": md("description: Run it\n", "Use subagent_type: helper.\n"),
    })
    lib.sync()
    (deps,) = lib.q("SELECT definition->'spec'->'dependencies' FROM compositions WHERE name = 'plug'")
    assert {d["version"] for group in deps[0].values() for d in group} == {f"commit:{plugin.commits[-1]}"}
    out = lock_svc.resolve_root("plug", compute_checksums=False)
    assert out.lock.root.kind == "Composition"
    assert {p.component: p.commit for p in out.lock.packages.values()} == {
        "helper": plugin.commits[-1], "run": plugin.commits[-1]}
    assert all(PSEUDO.match(p.version) for p in out.lock.packages.values())
    # Its components by bare name too.
    assert _root_package(lock_svc.resolve_root("helper", compute_checksums=False))[1] == plugin.commits[-1]


def test_a_catalog_component_no_tag_covers_is_released_at_the_tip(lib: Library) -> None:  # noqa: F811
    """Tags release lint only; fmt (no version anywhere, never tagged) used to have no release at
    all, so `lock fmt` failed while `ls` and `show` offered its pseudo-version as the latest (the
    usual layout of a skills repository where a few skills carry tags). Now a catalog component
    no tag covers is released as in a repository without tags: at the tip, by its pseudo-version."""
    skills = lib.repo("skills", tag=None, files={
        "skills/lint/SKILL.md": md("name: lint\ndescription: Lint\nmetadata:\n  version: 1.0.0\n", "Lint.\n"),
        "skills/fmt/SKILL.md": md("name: fmt\ndescription: Format\n", "Format.\n"),
    })
    skills.tag("lint--v1.0.0")
    lib.sync()
    version, commit = _root_package(lock_svc.resolve_root("fmt"))
    assert PSEUDO.match(version) and commit == skills.commits[-1], (version, commit)
    for constraint in ("latest", "*"):
        assert _root_package(lock_svc.resolve_root(f"fmt@{constraint}")) == (version, commit)
    res = cli("--json", "show", "fmt")
    assert res.code == 0 and res.json()["version"] == version, res.out + res.err
    assert _root_package(lock_svc.resolve_root("lint"))[0] == "1.0.0"
    # A new commit moves fmt's tip release along; once a tag covers fmt, only tags release it.
    skills.commit(files={"skills/fmt/SKILL.md": md("name: fmt\ndescription: Format more\n", "Format.\n")})
    lib.sync()
    newer, at = _root_package(lock_svc.resolve_root("fmt"))
    assert PSEUDO.match(newer) and at == skills.commits[-1] and newer > version
    skills.commit(files={"skills/fmt/SKILL.md": md("name: fmt\ndescription: F\nmetadata:\n  version: 0.2.0\n",
                                                    "Format.\n")}, tags=["fmt--v0.2.0"])
    skills.commit(files={"README.md": "later\n"})
    lib.sync()
    assert _root_package(lock_svc.resolve_root("fmt")) == ("0.2.0", skills.commits[-2])


def test_a_native_component_with_no_release_at_all_gets_a_hint_that_works(lib: Library) -> None:  # noqa: F811
    # FORMATS §3 for our own format: once a repository has release tags, only tagged commits release,
    # so b, added after the last tag, has commits but no release.
    tools = lib.repo("tools", {"a": "1.0.0"}, tag="v1.0.0")
    lib.release("tools", {"b": "0.1.0"}, tag=None)
    lib.sync()
    with pytest.raises(ResolutionError) as info:
        lock_svc.resolve_root("b")
    hint = info.value.hint or ""
    assert "relax" not in hint, hint
    assert "b has no release" in hint and "b@branch:main" in hint, hint
    # The hint's suggestion works.
    assert _root_package(lock_svc.resolve_root("b@branch:main"))[1] == tools.commits[-1]


def test_show_and_ls_name_what_a_bare_name_locks(lib: Library) -> None:  # noqa: F811
    # A release and a newer pre-release: `show c` and ls's "latest" name the release, as `lock c` does.
    lib.repo("tools", {"c": "1.0.0"}, tag="v1.0.0")
    lib.release("tools", {"c": "1.1.0-beta.1"}, tag="v1.1.0-beta.1")
    cop = lib.repo("cop", files=copilot_files(), tag=None)
    lib.sync()
    assert _root_package(lock_svc.resolve_root("c"))[0] == "1.0.0"
    res = cli("--json", "show", "c")
    assert res.code == 0, res.err
    assert (res.json()["version"], res.json()["versions"]) == ("1.0.0", ["1.1.0-beta.1", "1.0.0"])
    res = cli("--json", "ls")
    assert res.code == 0, res.err
    latest = {d["name"]: d["latest"] for d in res.json()}
    assert latest["c"] == "1.0.0" and PSEUDO.match(latest["python"]), latest
    res = cli("--json", "show", "python")
    assert res.code == 0, res.err
    assert (res.json()["version"], res.json()["commit"]) == (latest["python"], cop.commits[-1])
    res = cli("ls", "--repo", "tools")
    assert res.code == 0 and "1.1.0-beta.1" in res.out, res.out + res.err  # listed under other versions


@pytest.fixture(scope="module")
def prefect_env(prefect_api: None) -> Iterator[dict[str, str]]:
    from prefect.settings import PREFECT_API_URL

    yield {"PREFECT_API_URL": str(PREFECT_API_URL.value())}


@pytest.mark.prefect
def test_cli_lock_and_show_a_bare_name(lib: Library, tmp_path: Path,  # noqa: F811
                                       prefect_env: dict[str, str]) -> None:
    cop = lib.repo("cop", files=copilot_files(), tag=None)
    lib.sync()
    res = cli("lock", "cop/python", "-o", str(tmp_path / "lock.yaml"), env=prefect_env, cwd=tmp_path)
    assert res.code == 0, res.out + res.err
    assert cop.commits[-1] in (tmp_path / "lock.yaml").read_text()
    res = cli("install", "python", "--lock", str(tmp_path / "python-lock.yaml"), "--target",
              str(tmp_path / "installed"), env=prefect_env, cwd=tmp_path)
    assert res.code == 0, res.out + res.err
    assert cop.commits[-1] in (tmp_path / "python-lock.yaml").read_text()
    assert any((tmp_path / "installed" / "python").iterdir())
    res = cli("--json", "show", "python", env=prefect_env)
    assert res.code == 0, res.err
    assert PSEUDO.match(res.json()["version"]) and res.json()["commit"] == cop.commits[-1]
