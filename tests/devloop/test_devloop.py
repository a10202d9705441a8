"""The local development loop against a real install: edit, fold, history, diff, revert, pull, resolve."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from agentforge.core.yamlio import load_document
from agentforge.errors import AgentForgeError
from agentforge.services import devloop
from tests.devloop.conftest import README_V1, Installed, definition_yaml


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _definition(folder: Path) -> Any:
    return load_document((folder / "component.yaml").read_bytes(), source="test")


def test_edit_updates_file_row_and_history(installed: Installed) -> None:
    out = devloop.edit_component("lookup", sets=["spec.config.timeout=45", "spec.tags=[a, b]"],
                                 unsets=["spec.config.region"], reason="slow API")
    assert out.sync_status == "MODIFIED"
    row = installed.row()
    assert row["has_local_changes"] and row["sync_status"] == "MODIFIED"
    assert row["local_definition"]["spec"]["config"] == {"timeout": 45, "retries": 1}
    assert _definition(installed.folder) == row["local_definition"]
    rows = installed.q("SELECT field_path, change_type, old_value, new_value, reason, author FROM component_changes "
                       "ORDER BY field_path")
    by_path = {r["field_path"]: r for r in rows}
    assert by_path["spec.config.timeout"]["change_type"] == "UPDATE"
    assert (by_path["spec.config.timeout"]["old_value"], by_path["spec.config.timeout"]["new_value"]) == (30, 45)
    assert by_path["spec.config.region"]["change_type"] == "DELETE"
    assert by_path["spec.tags"]["change_type"] == "CREATE"
    assert by_path["spec.config.timeout"]["reason"] == "slow API" and by_path["spec.config.timeout"]["author"]
    assert "local_definition" in by_path  # the design's trigger row is still written
    history = devloop.component_history("lookup")
    assert {h.field_path for h in history} == {"spec.config.timeout", "spec.config.region", "spec.tags"}


BAD_EDITS = [
    (["spec.type=nonsense"], [], "spec.type"),
    (["metadata.version=not-semver"], [], "metadata.version"),
    (["metadata.name=other"], [], "metadata.name"),
    (["spec.config[0]=1"], [], "spec.config"),
    ([], ["spec.nothing.here"], "spec.nothing.here"),
    (["novalue"], [], "KEY=VALUE"),  # the argument itself is not echoed: it may be a secret
]


def test_bad_edits_change_nothing(installed: Installed) -> None:
    before = _files(installed.folder)
    for sets, unsets, needle in BAD_EDITS:
        with pytest.raises(AgentForgeError) as err:
            devloop.edit_component("lookup", sets=sets, unsets=unsets)
        assert needle in err.value.message and err.value.exit_code == 2, (sets, unsets, err.value.message)
        assert _files(installed.folder) == before
        assert installed.row()["local_definition"] is None
        assert installed.q("SELECT count(*) AS n FROM component_changes")[0]["n"] == 0


def test_edit_refuses_to_write_over_a_hand_broken_definition(installed: Installed) -> None:
    """A component.yaml the user broke by hand is theirs to fix: `edit` would replace their text."""
    target = installed.folder / "component.yaml"
    broken = target.read_bytes() + b"\n  this: [is not: yaml\n"
    target.write_bytes(broken)
    with pytest.raises(AgentForgeError) as err:
        devloop.edit_component("lookup", sets=["spec.config.timeout=5"])
    assert err.value.exit_code == 2 and str(target) in err.value.message
    assert target.read_bytes() == broken
    assert installed.row()["local_definition"] is None


def test_direct_edits_are_folded_by_status_once(installed: Installed) -> None:
    doc = _definition(installed.folder)
    doc["spec"]["config"]["retries"] = 5
    from agentforge.core.yamlio import dump_yaml

    (installed.folder / "component.yaml").write_text(dump_yaml(doc))
    (installed.folder / "README.md").write_text(README_V1 + "local note\n")
    (installed.folder / "extra.txt").write_text("mine\n")
    [line] = devloop.status()
    assert line.sync_status == "MODIFIED" and line.local_changes == 3
    assert installed.row()["local_definition"]["spec"]["config"]["retries"] == 5
    paths = {r["field_path"]: r["change_type"] for r in installed.q("SELECT * FROM component_changes")}
    assert paths == {"spec.config.retries": "UPDATE", "file:README.md": "UPDATE", "file:extra.txt": "CREATE",
                     "local_definition": "UPDATE"}
    devloop.status()  # nothing new: not recorded twice
    assert len(installed.q("SELECT * FROM component_changes")) == 4
    diff = devloop.diff_component("lookup")
    assert [f["field"] for f in diff.fields] == ["spec.config.retries"]
    assert "+local note" in diff.files["README.md"] and "+mine" in diff.files["extra.txt"]
    # An invalid direct edit is reported, not folded.
    (installed.folder / "component.yaml").write_text("apiVersion: forge.dev/v1\nkind: Tool\nmetadata: {}\n")
    [line] = devloop.status()
    assert line.warning and "metadata" in line.warning
    assert installed.row()["local_definition"]["spec"]["config"]["retries"] == 5


def test_revert_one_field_then_everything(installed: Installed) -> None:
    original = _files(installed.folder)
    devloop.edit_component("lookup", sets=["spec.config.timeout=45", "spec.config.retries=9"])
    (installed.folder / "README.md").write_text("changed\n")
    devloop.revert_component("lookup", field="spec.config.timeout")
    assert installed.row()["local_definition"]["spec"]["config"] == {"timeout": 30, "retries": 9, "region": "eu"}
    out = devloop.revert_component("lookup")
    assert out.sync_status == "SYNCED"
    assert _files(installed.folder) == original
    row = installed.row()
    assert row["local_definition"] is None and not row["has_local_changes"]


def test_pull_fast_forward_moves_the_installed_row(installed: Installed) -> None:
    old_id = installed.row()["id"]
    sha = installed.release("1.1.0", {"component.yaml": definition_yaml("1.1.0", type="webhook"),
                                      "NEW.md": "new\n"})
    [line] = devloop.status()
    assert line.upstream_commit == sha and line.upstream_version == "1.1.0"
    out = devloop.pull_component("lookup")
    assert out.result == "fast-forward" and out.sync_status == "SYNCED"
    row = installed.row()
    assert row["commit_hash"] == sha and row["version"] == "1.1.0" and row["id"] != old_id
    assert row["original_definition"]["spec"]["type"] == "webhook" and row["local_definition"] is None
    assert not installed.q("SELECT 1 FROM components WHERE id = :i AND is_installed", i=old_id)
    assert (installed.folder / "NEW.md").read_text() == "new\n"
    import json

    record = json.loads((installed.folder.parent / ".forge" / "lookup.json").read_text())
    assert record["commit"] == sha and record["version"] == "1.1.0" and "NEW.md" in record["files"]
    [op] = installed.q("SELECT * FROM sync_operations WHERE operation = 'PULL_UPSTREAM' AND component_id IS NOT NULL")
    assert op["status"] == "COMPLETED" and op["target_commit"] == sha
    assert devloop.pull_component("lookup").result == "up-to-date"


def test_pull_merges_local_changes_cleanly(installed: Installed) -> None:
    devloop.edit_component("lookup", sets=["spec.config.timeout=45"])
    (installed.folder / "README.md").write_text(README_V1.replace("line one", "line ONE (local)"))
    installed.release("1.1.0", {"component.yaml": definition_yaml(
        "1.1.0", config={"timeout": 30, "retries": 3, "region": "eu"}),
        "README.md": README_V1.replace("line five", "line five (upstream)")})
    out = devloop.pull_component("lookup")
    assert out.result == "merged" and out.sync_status == "MODIFIED" and not out.conflicts
    row = installed.row()
    assert row["version"] == "1.1.0"
    assert row["local_definition"]["spec"]["config"] == {"timeout": 45, "retries": 3, "region": "eu"}
    assert row["original_definition"]["spec"]["config"]["timeout"] == 30
    readme = (installed.folder / "README.md").read_text()
    assert "line ONE (local)" in readme and "line five (upstream)" in readme
    # History carries the local change onto the new row.
    carried = [h for h in devloop.component_history("lookup") if h.version == "1.1.0"]
    assert [h.field_path for h in carried] == ["spec.config.timeout"]
    assert devloop.diff_component("lookup").fields[0]["new"] == 45


def _conflicting_release(installed: Installed) -> None:
    devloop.edit_component("lookup", sets=["spec.config.timeout=45", "spec.config.region=us"])
    (installed.folder / "README.md").write_text(README_V1.replace("line two", "line two (local)"))
    installed.release("1.1.0", {"component.yaml": definition_yaml(
        "1.1.0", config={"timeout": 60, "retries": 1, "region": "eu"}),
        "README.md": README_V1.replace("line two", "line two (upstream)"),
        "icon.bin": b"\x00\x02upstream-binary"})


def test_pull_conflict_keeps_both_sides_then_resolve_theirs(installed: Installed) -> None:
    _conflicting_release(installed)
    (installed.folder / "icon.bin").write_bytes(b"\x00\x03local-binary")
    out = devloop.pull_component("lookup")
    assert out.result == "conflict" and out.sync_status == "CONFLICT"
    assert set(out.conflicts) == {"component.yaml:spec.config.timeout", "README.md", "icon.bin"}
    [op] = installed.q("SELECT * FROM sync_operations WHERE operation = 'PULL_UPSTREAM' AND component_id IS NOT NULL")
    assert op["status"] == "REQUIRES_MANUAL_RESOLUTION" and set(op["conflict_files"]) == set(out.conflicts)
    row = installed.row()
    assert row["sync_status"] == "CONFLICT" and row["version"] == "1.1.0"
    assert row["local_definition"]["spec"]["config"] == {"timeout": 45, "retries": 1, "region": "us"}
    readme = (installed.folder / "README.md").read_text()
    assert "<<<<<<< local/README.md" in readme and "line two (local)" in readme and "line two (upstream)" in readme
    assert (installed.folder / "icon.bin").read_bytes() == b"\x00\x03local-binary"
    with pytest.raises(AgentForgeError, match="unresolved"):
        devloop.pull_component("lookup")
    with pytest.raises(AgentForgeError, match="markers"):
        devloop.resolve_component("lookup", "continue")
    res = devloop.resolve_component("lookup", "theirs")
    assert res.sync_status == "MODIFIED"  # region=us stays: it did not conflict
    row = installed.row()
    assert row["local_definition"]["spec"]["config"] == {"timeout": 60, "retries": 1, "region": "us"}
    assert "line two (upstream)" in (installed.folder / "README.md").read_text()
    assert (installed.folder / "icon.bin").read_bytes() == b"\x00\x02upstream-binary"
    statuses = {r["operation"]: r["status"] for r in installed.q("SELECT * FROM sync_operations WHERE component_id IS NOT NULL")}
    assert statuses == {"PULL_UPSTREAM": "COMPLETED", "RESOLVE_CONFLICT": "COMPLETED"}


def test_resolve_ours_and_continue(installed: Installed) -> None:
    _conflicting_release(installed)
    devloop.pull_component("lookup")
    (installed.folder / "README.md").write_text(README_V1.replace("line two", "line two (hand merged)"))
    res = devloop.resolve_component("lookup", "continue")
    assert res.sync_status == "MODIFIED"
    assert installed.row()["local_definition"]["spec"]["config"]["timeout"] == 45
    assert "hand merged" in (installed.folder / "README.md").read_text()


def test_resolve_ours_keeps_local(installed: Installed) -> None:
    _conflicting_release(installed)
    devloop.pull_component("lookup")
    devloop.resolve_component("lookup", "ours")
    assert installed.row()["local_definition"]["spec"]["config"]["timeout"] == 45
    assert (installed.folder / "README.md").read_text() == README_V1.replace("line two", "line two (local)")


def test_pull_overwrite_and_stash(installed: Installed) -> None:
    _conflicting_release(installed)
    out = devloop.pull_component("lookup", mode="stash")
    assert out.result == "stashed" and out.sync_status == "MODIFIED" and not out.conflicts
    assert out.stash and (Path(out.stash) / "files" / "README.md").read_text().count("(local)") == 1
    assert installed.row()["local_definition"]["spec"]["config"]["timeout"] == 45  # local reapplied over upstream
    assert "line two (local)" in (installed.folder / "README.md").read_text()
    installed.release("1.2.0", {"component.yaml": definition_yaml("1.2.0")})
    out = devloop.pull_component("lookup", mode="overwrite")
    assert out.result == "overwritten" and out.sync_status == "SYNCED"
    assert installed.row()["local_definition"] is None
    assert (installed.folder / "README.md").read_text() == README_V1.replace("line two", "line two (upstream)")


def test_pull_to_a_version(installed: Installed) -> None:
    installed.release("1.1.0", {"NEW.md": "a\n", "component.yaml": definition_yaml("1.1.0")})
    installed.release("1.2.0", {"NEW.md": "b\n", "component.yaml": definition_yaml("1.2.0")})
    assert devloop.pull_component("lookup", to_version="1.1.0").to_version == "1.1.0"
    assert (installed.folder / "NEW.md").read_text() == "a\n"
    with pytest.raises(AgentForgeError, match=r"no release 9\.9\.9"):
        devloop.pull_component("lookup", to_version="9.9.9")


STEPS = ["plan", "intent", "read", "merge", "stage", "swap", "records", "database", "commit"]


def test_interrupted_pull_leaves_everything_as_before(installed: Installed,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure injected at each step in turn (one setup: every failed pull must leave the same state)."""
    _conflicting_release(installed)
    before_files = _files(installed.folder)
    before_row = installed.row()
    state_dir = installed.folder.parent / ".forge"
    before_record = (state_dir / "lookup.json").read_bytes()
    for step in STEPS:
        def fail(at: str, step: str = step) -> None:
            if at == step:
                raise RuntimeError(f"injected at {at}")

        monkeypatch.setattr(devloop, "FAULT_HOOK", fail)
        with pytest.raises(RuntimeError, match="injected"):
            devloop.pull_component("lookup")
        monkeypatch.setattr(devloop, "FAULT_HOOK", None)
        assert _files(installed.folder) == before_files, step
        after = installed.row()
        assert (after["id"], after["local_definition"], after["sync_status"]) == \
            (before_row["id"], before_row["local_definition"], before_row["sync_status"]), step
        assert (state_dir / "lookup.json").read_bytes() == before_record, step
        assert not (state_dir / "lookup.merge.json").exists(), step
        assert not [p for p in installed.folder.parent.iterdir() if p.name.startswith(".pull-")], step
    ops = installed.q("SELECT status FROM sync_operations WHERE operation = 'PULL_UPSTREAM' "
                      "AND component_id IS NOT NULL")
    # "plan" and "intent" fail before the intent row commits; every later step leaves a FAILED row.
    assert len(ops) == len(STEPS) - 2 and all(o["status"] == "FAILED" for o in ops)
    # And the pull works afterwards.
    assert devloop.pull_component("lookup").result == "conflict"


def test_killed_pull_is_rolled_back_on_next_command(installed: Installed) -> None:
    """The process dies (os._exit) after swapping files, before the database commit."""
    _conflicting_release(installed)
    before_files = _files(installed.folder)
    before_local = installed.row()["local_definition"]
    script = textwrap.dedent("""
        import os
        from agentforge.services import devloop
        def die(step):
            if step == "database":
                os._exit(17)
        devloop.FAULT_HOOK = die
        devloop.pull_component("lookup")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 17, proc.stderr
    assert (installed.folder.parent / ".forge" / "lookup.pull-journal.json").exists()
    assert _files(installed.folder) != before_files  # the swap happened
    devloop.status()  # any loop command recovers first
    assert _files(installed.folder) == before_files
    assert installed.row()["local_definition"] == before_local
    assert not (installed.folder.parent / ".forge" / "lookup.pull-journal.json").exists()
    assert installed.q("SELECT status FROM sync_operations WHERE operation = 'PULL_UPSTREAM' AND component_id IS NOT NULL")[0]["status"] == "FAILED"


def test_one_component_installed_in_two_folders_is_named_by_its_folder(installed: Installed,
                                                                       tmp_path: Path) -> None:
    from agentforge.core.lockfile import parse_lock
    from agentforge.services import sync as svc
    from agentforge.services.install import install_lock
    from agentforge.services.lock import resolve_root

    installed.repo.commit(files={"tools/lookup/component.yaml": definition_yaml("1.1.0")}, tags=["v1.1.0"])
    plan = svc.plan_sync(None)
    for repo_id in plan.to_sync:
        svc.sync_repository(repo_id, remote=plan.remote.get(repo_id))
    newer = resolve_root("lookup@1.1.0")
    install_lock(parse_lock(newer.text.encode(), source="lock"), target=tmp_path / "other")
    other = tmp_path / "other" / "lookup"
    with pytest.raises(AgentForgeError) as err:
        devloop.diff_component("lookup")
    assert err.value.code == "AMBIGUOUS_COMPONENT"
    assert str(installed.folder) in err.value.message and str(other) in err.value.message
    assert err.value.hint and "folder" in err.value.hint
    out = devloop.edit_component(str(other), sets=["spec.config.timeout=7"])
    assert out.path == str(other / "component.yaml")
    assert _definition(other)["spec"]["config"]["timeout"] == 7
    assert _definition(installed.folder)["spec"]["config"]["timeout"] == 30  # the other install untouched
    with pytest.raises(AgentForgeError) as err:
        devloop.diff_component(str(tmp_path / "nowhere" / "lookup"))
    assert err.value.code == "NOT_FOUND"
