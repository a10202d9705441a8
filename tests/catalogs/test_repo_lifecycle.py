"""A registered repository's life after `repo add`: `repo rm` takes the compositions synced from
it along, and `repo add` again with another --branch or --format makes the next sync read it
again (real git, real database, the real CLI for rm/add; sync through the plain services)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
import yaml

from tests.catalogs.conftest import js, md
from tests.cli.helpers import cli
from tests.lock.conftest import Library, lib  # noqa: F401  (the fixture)


def marketplace(name: str, plugins: list[str]) -> dict[str, str | bytes | None]:
    """A marketplace whose plugins (one command each) become compositions of the same names."""
    files: dict[str, str | bytes | None] = {".claude-plugin/marketplace.json": js({
        "name": name, "owner": {"name": "Acme"},
        "plugins": [{"name": p, "source": f"./plugins/{p}"} for p in plugins]})}
    for p in plugins:
        files[f"plugins/{p}/.claude-plugin/plugin.json"] = js({"name": p, "version": "1.0.0"})
        files[f"plugins/{p}/commands/{p}-run.md"] = md(f"description: Run {p}\n", f"Run {p}.\n")
    return files


def root_plugin(name: str, command: str, version: str = "2.0.0") -> dict[str, str | bytes | None]:
    """A repository that is one Claude plugin (its root .claude-plugin/plugin.json)."""
    return {".claude-plugin/plugin.json": js({"name": name, "version": version}),
            f"commands/{command}.md": md(f"description: {command}\n", f"{command}.\n")}


def compositions(lib: Library) -> dict[str, str | None]:  # noqa: F811
    return dict(lib.q("SELECT name, source_repo FROM compositions ORDER BY name"))


def import_composition(tmp_path: Path, name: str) -> None:
    from agentforge.services.compose import import_file

    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"apiVersion": "forge.dev/v1", "kind": "Composition",
                                    "metadata": {"name": name, "version": "1.0.0"}, "spec": {}}))
    import_file(path)


def sync_results(names: list[str] | None = None) -> dict[str, object]:
    from agentforge.services import sync as svc

    plan = svc.check_and_record(names)
    results = svc.plan_results(plan) + [svc.sync_repository(i, remote=plan.remote.get(i)) for i in plan.to_sync]
    return {r.name: r for r in results}


# --- repo rm ------------------------------------------------------------------------------------


def test_repo_rm_removes_the_compositions_synced_from_it(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    """The plugins of a removed marketplace do not linger as compositions (compose lock would
    then fail on components no registered repository offers); a composition from a file stays,
    and another repository's composition of a removed name is stored by its next sync."""
    mkt = lib.repo("mkt", files=marketplace("mkt", ["alpha", "beta"]), tag=None)
    second = lib.repo("second", files=root_plugin("alpha", "other"), tag=None, register=False)
    lib.register(second)
    lib.sync()
    import_composition(tmp_path, "mine")
    assert compositions(lib) == {"alpha": mkt.url, "beta": mkt.url, "mine": None}

    res = cli("--json", "repo", "rm", "mkt")
    assert res.code == 0, res.out + res.err
    done = res.json()
    assert done["removed"] == "mkt" and done["compositions_removed"] == ["alpha", "beta"]
    assert done["compositions_removed_count"] == 2 and done["compositions_kept"] == []
    assert done["offered_elsewhere"] == {"alpha": ["second"]}
    listed = cli("--json", "compose", "ls")
    assert listed.code == 0 and [(c["name"], c["source"]) for c in listed.json()] == [("mine", "file")]

    # second's remote did not move, yet its next sync reads it again and stores its alpha.
    assert sync_results()["second"].status == "synced"  # type: ignore[attr-defined]
    assert compositions(lib) == {"alpha": second.url, "mine": None}

    res = cli("repo", "rm", "second")
    assert res.code == 0, res.out + res.err
    assert "Removed second and 1 composition synced from it: alpha" in res.out
    assert compositions(lib) == {"mine": None}


def test_repo_rm_refuses_compositions_with_instances_unless_forced(lib: Library) -> None:  # noqa: F811
    """A composition with instances does not vanish with its repository: refused (exit 2, naming
    the composition and its instances); with --force it is kept, since its instances and
    deployments reference it (deleting it would cascade to them), and the others go."""
    mkt = lib.repo("mkt", files=marketplace("mkt", ["alpha", "beta"]), tag=None)
    lib.sync()
    with lib.engine.begin() as conn:
        instance = conn.execute(sa.text(
            "INSERT INTO composition_instances (composition_id, name, config, status, environment) "
            "SELECT id, 'prod', '{}', 'STOPPED', 'production' FROM compositions WHERE name = 'alpha' RETURNING id"
        )).scalar_one()
        conn.execute(sa.text(
            "INSERT INTO deployments (composition_id, instance_id, environment, lock_hash, lock_file, bundle_path, "
            "status) SELECT composition_id, id, 'production', 'sha256:x', '{}', '/nowhere', 'SUPERSEDED' "
            "FROM composition_instances WHERE id = :i"), {"i": instance})

    refused = cli("repo", "rm", "mkt")
    assert refused.code == 2, refused.out + refused.err
    assert "alpha: alpha/prod (STOPPED)" in refused.err and "--force" in refused.err
    assert "Traceback" not in refused.err + refused.out
    assert lib.q("SELECT name FROM repositories") == [("mkt",)]
    assert compositions(lib) == {"alpha": mkt.url, "beta": mkt.url}

    forced = cli("--json", "repo", "rm", "mkt", "--force")
    assert forced.code == 0, forced.out + forced.err
    assert forced.json()["compositions_removed"] == ["beta"] and forced.json()["compositions_kept"] == ["alpha"]
    assert lib.q("SELECT name FROM repositories") == []
    assert compositions(lib) == {"alpha": mkt.url}
    assert lib.q("SELECT count(*) FROM composition_instances")[0][0] == 1
    assert lib.q("SELECT count(*) FROM deployments")[0][0] == 1


# --- one composition name, two repositories -----------------------------------------------------


def test_a_composition_whose_name_is_taken_is_reported_not_dropped(lib: Library, tmp_path: Path) -> None:  # noqa: F811
    """Composition names are unique: a second repository's plugin of a taken name is not stored,
    and its sync says so (in the result's problems and in sync_operations.error_message), naming
    both repositories; a repository refreshing its own composition reports nothing."""
    mkt = lib.repo("mkt", files=marketplace("mkt", ["alpha"]), tag=None)
    lib.sync()
    import_composition(tmp_path, "mine")
    second = lib.repo("second", files=root_plugin("alpha", "other"), tag=None)
    third = lib.repo("third", files=root_plugin("mine", "mine-run"), tag=None)

    results = sync_results(["second", "third"])
    (problem,) = [p for p in results["second"].problems if "alpha" in p]  # type: ignore[attr-defined]
    assert f"composition alpha 2.0.0 of {second.url} not stored" in problem
    assert f"taken by the composition alpha synced from {mkt.url} (repository mkt)" in problem
    (file_problem,) = results["third"].problems  # type: ignore[attr-defined]
    assert f"composition mine 2.0.0 of {third.url} not stored" in file_problem and "imported from a file" in file_problem
    assert compositions(lib) == {"alpha": mkt.url, "mine": None}
    stored = lib.q("SELECT o.error_message FROM sync_operations o JOIN repositories r ON r.id = o.repository_id "
                   "WHERE r.name = 'second' AND o.error_message IS NOT NULL")
    assert len(stored) == 1 and problem in stored[0][0]

    lib.handles["mkt"].commit(files={"plugins/alpha/.claude-plugin/plugin.json": js({"name": "alpha",
                                                                                      "version": "1.1.0"})})
    results = sync_results(["mkt"])
    assert results["mkt"].problems == []  # type: ignore[attr-defined]
    assert lib.q("SELECT version FROM compositions WHERE name = 'alpha'") == [("1.1.0",)]


# --- repo add again with another --branch or --format --------------------------------------------


def test_readd_with_another_branch_tracks_it_and_the_next_sync_reads_it(lib: Library) -> None:  # noqa: F811
    handle = lib.repo("second", files=root_plugin("alpha", "other"), tag=None)
    handle.commit(files={"commands/devonly.md": md("description: dev\n", "Dev.\n")}, push=False)
    handle.create_branch("dev")
    handle.git("reset", "-q", "--hard", "HEAD~1")  # main stays at the first commit
    lib.sync()
    assert {r[0] for r in lib.q("SELECT name FROM components WHERE is_release")} == {"other"}

    res = cli("--json", "repo", "add", handle.url, "--branch", "dev")
    assert res.code == 0, res.out + res.err
    assert res.json()["changes"] == ["branch main → dev"] and res.json()["branch"] == "dev"
    assert res.json()["created"] is False
    assert lib.q("SELECT default_branch FROM repositories") == [("dev",)]
    # No ref moved upstream, yet the next sync reads the repository (its checkpoint was reset).
    result = sync_results(["second"])["second"]
    assert result.status == "synced" and "on dev" in result.message, result  # type: ignore[attr-defined]
    assert {r[0] for r in lib.q("SELECT name FROM components WHERE is_release")} == {"other", "devonly"}
    assert sync_results(["second"])["second"].status == "unchanged"  # type: ignore[attr-defined]

    again = cli("--json", "repo", "add", handle.url, "--branch", "dev")
    assert again.code == 0 and again.json()["changes"] == []
    plain = cli("--json", "repo", "add", handle.url)  # no --branch: the tracked branch stays
    assert plain.code == 0 and plain.json()["changes"] == [] and plain.json()["branch"] == "dev"
    back = cli("repo", "add", handle.url, "--branch", "main")
    assert back.code == 0, back.out + back.err
    assert "Updated second → " in back.out and "branch dev → main; the next sync reads it" in back.out


def test_readd_with_another_format_rereads_and_refuses_while_installed(lib: Library) -> None:  # noqa: F811
    files = {**marketplace("both", ["alpha"]),
             "skills/lint/SKILL.md": md("name: lint\ndescription: Lint things\n", "Lint.\n")}
    handle = lib.repo("both", files=files, tag=None)  # detected: claude-marketplace
    lib.sync()
    assert {r[0] for r in lib.q("SELECT name FROM components")} == {"alpha-run"}

    res = cli("--json", "repo", "add", handle.url, "--format", "agent-skills")
    assert res.code == 0, res.out + res.err
    assert res.json()["changes"] == ["format claude-marketplace (detected) → agent-skills (forced); "
                                     "1 component rows read with the old format deleted"]
    assert res.json()["deleted_rows"] == 1 and lib.q("SELECT count(*) FROM components") == [(0,)]
    reread = sync_results(["both"])["both"]
    assert reread.status == "synced"  # type: ignore[attr-defined]
    assert {r[0] for r in lib.q("SELECT name FROM components")} == {"lint"}
    assert lib.q("SELECT source_format FROM repositories") == [("forced:agent-skills",)]
    # The plugin composition the old format gave is gone with its components (compose lock on
    # it would fail on a component no repository offers), and the sync says so.
    assert compositions(lib) == {}
    assert any("composition alpha is no longer at the tip" in p for p in reread.problems)  # type: ignore[attr-defined]

    with lib.engine.begin() as conn:
        conn.execute(sa.text("UPDATE components SET is_installed = true WHERE name = 'lint'"))
    refused = cli("repo", "add", handle.url, "--format", "claude-marketplace")
    assert refused.code == 2, refused.out + refused.err
    assert "REPOSITORY_IN_USE" in refused.err and "installed components" in refused.err and "lint" in refused.err
    assert "agentforge repo rm --force both" in refused.err and "Traceback" not in refused.err
    assert lib.q("SELECT source_format FROM repositories") == [("forced:agent-skills",)]
    assert lib.q("SELECT name FROM components") == [("lint",)]
    assert sync_results(["both"])["both"].status == "unchanged"  # type: ignore[attr-defined]


def test_forcing_the_detected_format_keeps_the_rows(lib: Library) -> None:  # noqa: F811
    handle = lib.repo("skills", files={"skills/lint/SKILL.md": md("name: lint\ndescription: Lint\n", "Lint.\n")},
                      tag=None)
    lib.sync()
    with lib.engine.begin() as conn:
        conn.execute(sa.text("UPDATE components SET is_installed = true"))
    res = cli("--json", "repo", "add", handle.url, "--format", "agent-skills")
    assert res.code == 0, res.out + res.err
    assert res.json()["changes"] == ["format agent-skills (detected) → agent-skills (forced)"]
    assert res.json()["deleted_rows"] == 0 and lib.q("SELECT name, is_installed FROM components") == [("lint", True)]
    assert sync_results(["skills"])["skills"].status == "synced"  # type: ignore[attr-defined]
    assert lib.q("SELECT source_format FROM repositories") == [("forced:agent-skills",)]


def test_format_auto_undoes_a_forced_format(lib: Library) -> None:  # noqa: F811
    """A forced --format could not be undone (`repo add` without it said "Already registered" and
    kept it; `--format auto` was refused while the hint said to leave the flag out)."""
    files = {**marketplace("both", ["alpha"]),
             "skills/lint/SKILL.md": md("name: lint\ndescription: Lint things\n", "Lint.\n")}
    handle = lib.repo("both", files=files, tag=None)
    assert cli("repo", "add", handle.url, "--format", "agent-skills").code == 0
    lib.sync()
    assert {r[0] for r in lib.q("SELECT name FROM components")} == {"lint"}
    res = cli("--json", "repo", "add", handle.url, "--format", "auto")
    assert res.code == 0, res.out + res.err
    assert res.json()["changes"] == ["format agent-skills (forced) → detected at the next sync; "
                                     "1 component rows read with the old format deleted"]
    assert lib.q("SELECT source_format FROM repositories") == [(None,)]
    assert sync_results(["both"])["both"].status == "synced"  # type: ignore[attr-defined]
    assert {r[0] for r in lib.q("SELECT name FROM components")} == {"alpha-run"}
    assert lib.q("SELECT source_format FROM repositories") == [("claude-marketplace",)]
    # On a repository with no forced format, auto changes nothing.
    res = cli("--json", "repo", "add", handle.url, "--format", "auto")
    assert res.code == 0 and res.json()["changes"] == [] and not res.json()["created"], res.out + res.err
    assert lib.q("SELECT source_format FROM repositories") == [("claude-marketplace",)]
    assert lib.q("SELECT count(*) FROM components") == [(1,)]


def test_a_plugin_removed_upstream_takes_its_composition_with_it(lib: Library) -> None:  # noqa: F811
    """Compositions are what the tip lists: one whose plugin left the marketplace is removed by the
    next sync; one with instances is kept, and the sync says why."""
    handle = lib.repo("mkt", files=marketplace("mkt", ["alpha", "beta", "gamma"]), tag=None)
    lib.sync()
    assert set(compositions(lib)) == {"alpha", "beta", "gamma"}
    with lib.engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO composition_instances (composition_id, name, config, status, environment) "
                             "SELECT id, 'prod', '{}', 'STOPPED', 'production' FROM compositions WHERE name = 'gamma'"))
    handle.commit({".claude-plugin/marketplace.json": js({
        "name": "mkt", "owner": {"name": "Acme"}, "plugins": [{"name": "alpha", "source": "./plugins/alpha"}]})})
    result = sync_results(["mkt"])["mkt"]
    assert set(compositions(lib)) == {"alpha", "gamma"}
    problems = result.problems  # type: ignore[attr-defined]
    assert any("composition beta is no longer at the tip" in p and "removed" in p for p in problems), problems
    assert any("composition gamma is no longer at the tip" in p and "gamma/prod (STOPPED)" in p for p in problems)


def test_a_repository_with_nothing_to_read_says_so(lib: Library) -> None:  # noqa: F811
    """`repo add --format forge` on a catalog (or a repository with nothing we know) synced 0 rows
    and said nothing about why."""
    handle = lib.repo("cat", files={"skills/lint/SKILL.md": md("name: lint\ndescription: Lint\n", "Lint.\n")},
                      tag=None)
    assert cli("repo", "add", handle.url, "--format", "forge").code == 0
    result = sync_results(["cat"])["cat"]
    assert result.status == "synced" and lib.q("SELECT count(*) FROM components") == [(0,)]  # type: ignore[attr-defined]
    [warning] = result.problems  # type: ignore[attr-defined]
    assert "no forge-manifest.yaml and no component.yaml" in warning and "--format auto" in warning, warning
