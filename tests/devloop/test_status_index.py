"""`status`'s stat index (``<install root>/.forge/status.index``): a folder unchanged since the
last run is answered without reading it; every change, racy or not, is still seen; the index
is only a cache (deleting or corrupting it changes no answer)."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from agentforge.services import devloop
from tests.devloop.conftest import README_V1, Installed, definition_yaml

SECOND = 1_000_000_000


def _index_path(installed: Installed) -> Path:
    return installed.folder.parent / devloop.STATE_DIR / devloop.STATUS_INDEX


def _index(installed: Installed) -> dict[str, Any]:
    path = _index_path(installed)
    return json.loads(path.read_text()) if path.exists() else {}


def _entries(installed: Installed) -> dict[str, Any]:
    return _index(installed).get("folders", {})


def _scan_at(monkeypatch: pytest.MonkeyPatch, clock: int | None = None, *, later: int = 10) -> None:
    """Make status believe its scan starts at ``clock`` (default: ``later`` seconds from now), so
    files written by the test are racy or safely old as the test needs."""
    monkeypatch.setattr(devloop, "_clock", (lambda: clock) if clock is not None
                        else (lambda: time.time_ns() + later * SECOND))


def _answer() -> list[dict[str, Any]]:
    return [line.model_dump() for line in devloop.status()]


def _history(installed: Installed) -> list[str]:
    return sorted(r["field_path"] for r in installed.q("SELECT field_path FROM component_changes "
                                                       "WHERE field_path <> 'local_definition'"))


def _same_size_edit(path: Path, old: str, new: str) -> None:
    """Change the content, keep the size and put the mtime back (as `cp -p`, `rsync -t` do)."""
    st = path.stat()
    text = path.read_text()
    assert len(old) == len(new) and old in text
    path.write_text(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


def test_a_warm_status_reads_no_installed_file(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    _scan_at(monkeypatch)
    first = _answer()
    assert first[0]["sync_status"] == "SYNCED" and first[0]["local_changes"] == 0
    assert set(_entries(installed)) == {"lookup"}

    def no_reading(folder: str) -> Any:
        raise AssertionError(f"{folder} was read although nothing changed")

    monkeypatch.setattr(devloop, "_read_folder", no_reading)
    monkeypatch.setattr(devloop, "_author", no_reading)  # nothing folded: no `git config` either
    assert _answer() == first


@pytest.mark.parametrize("trusted", [True, False], ids=["directory-times", "listing"])
def test_edits_after_the_index_was_written_are_seen(installed: Installed, monkeypatch: pytest.MonkeyPatch,
                                                    trusted: bool) -> None:
    """Added and removed files are seen from the directories' signatures where the filesystem
    moves a directory's times on create/remove (as here), and by listing where it does not."""
    if not trusted:  # a filesystem that never moves a directory's times: the probe finds out
        monkeypatch.setattr(devloop, "_directory_signature", lambda st: "never changes")
        monkeypatch.setattr(devloop, "_probe_directory_times", lambda directory: {"device": 0, "updated": False})
    _scan_at(monkeypatch)
    _answer()
    assert "lookup" in _entries(installed)
    assert _index(installed)["directory_times"]["updated"] is trusted
    # Same size, mtime put back: only ctime (and what a rename does to the inode) tells.
    _same_size_edit(installed.folder / "README.md", "line two", "line 2!!")
    [line] = devloop.status()
    assert line.local_changes == 1 and line.sync_status == "MODIFIED"
    assert _history(installed) == ["file:README.md"]
    [line] = devloop.status()  # the folded folder is cached again, with its count
    assert line.local_changes == 1 and "lookup" in _entries(installed)
    (installed.folder / "new.txt").write_text("mine\n")  # a new file: the folder's listing changed
    assert devloop.status()[0].local_changes == 2
    devloop.status()
    (installed.folder / "deeper" / "down").mkdir(parents=True)
    (installed.folder / "deeper" / "down" / "x.txt").write_text("x\n")
    assert devloop.status()[0].local_changes == 3
    devloop.status()
    (installed.folder / "new.txt").unlink()
    assert devloop.status()[0].local_changes == 2
    devloop.status()
    doc = installed.folder / "component.yaml"
    doc.write_text(doc.read_text().replace("timeout: 30", "timeout: 31"))  # a direct edit, folded
    [line] = devloop.status()
    assert line.local_changes == 3 and installed.row()["local_definition"]["spec"]["config"]["timeout"] == 31
    assert _history(installed) == ["file:README.md", "file:deeper/down/x.txt", "file:new.txt", "file:new.txt",
                                   "spec.config.timeout"]
    assert all(r["author"] for r in installed.q("SELECT author FROM component_changes "
                                                "WHERE field_path <> 'local_definition'"))  # asked when folding


def test_a_same_size_edit_in_the_same_second_is_seen(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    """Git's racily clean files. On a filesystem with 1-second timestamps and no ctime (simulated:
    the signature is size and whole seconds), an edit made in the second the folder was scanned
    keeps its signature; only not caching a folder changed that recently keeps it visible."""
    monkeypatch.setattr(devloop, "_signature", lambda st: f"{st.st_size}:{st.st_mtime_ns // SECOND}")
    readme = installed.folder / "README.md"
    readme.write_text(README_V1)  # the same content, written just now
    written = readme.stat().st_mtime_ns
    _scan_at(monkeypatch, written + SECOND // 2)  # status runs in the same second
    [line] = devloop.status()
    assert line.local_changes == 0
    assert "lookup" not in _entries(installed)  # racily clean: not cached
    _same_size_edit(readme, "line two", "LINE TWO")  # still in that second, as far as the signature says
    _scan_at(monkeypatch, written + 10 * SECOND)
    [line] = devloop.status()
    assert line.local_changes == 1 and _history(installed) == ["file:README.md"]
    # Once the folder is quiet the coarse signature is trusted, so the test above is not vacuous.
    _scan_at(monkeypatch, time.time_ns() + 10 * SECOND)
    devloop.status()
    assert "lookup" in _entries(installed)


def test_a_file_added_in_the_same_second_as_a_scan_is_seen(installed: Installed,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The racy rule covers directories too: on a filesystem with 1-second timestamps
    (simulated), a file added in the second a folder was scanned can leave its directory's
    signature as it was."""
    _scan_at(monkeypatch)
    devloop.status()  # an index whose probe trusts directory times here
    assert _index(installed)["directory_times"]["updated"] is True
    monkeypatch.setattr(devloop, "_signature", lambda st: f"{st.st_size}:{st.st_mtime_ns // SECOND}")
    monkeypatch.setattr(devloop, "_directory_signature", lambda st: f"{st.st_mtime_ns // SECOND}")
    time.sleep(0.05)  # the files' times stay older than the folder's by this much
    (installed.folder / "scratch").write_text("")
    (installed.folder / "scratch").unlink()
    changed = installed.folder.stat().st_mtime_ns
    _scan_at(monkeypatch, changed + devloop._RACY_NS - SECOND // 100)  # racy for the folder only
    assert devloop.status()[0].local_changes == 0
    assert "lookup" not in _entries(installed)
    (installed.folder / "new.txt").write_text("mine\n")
    os.utime(installed.folder, ns=(changed, changed))  # its signature, to a 1-second clock, unchanged
    _scan_at(monkeypatch)
    assert devloop.status()[0].local_changes == 1


def test_an_entry_missing_a_directory_is_not_trusted(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    (installed.folder / "docs").mkdir()
    (installed.folder / "docs" / "a.txt").write_text("a\n")
    _scan_at(monkeypatch)
    devloop.status()  # folds a.txt
    devloop.status()  # caches the folder
    index = _index(installed)
    entry = index["folders"]["lookup"]
    assert set(entry["dirs"]) == {"", "docs"} and "docs/a.txt" in entry["files"]
    entry["dirs"] = {"": entry["dirs"][""]}  # "docs" left out: a file added there would go unseen
    _index_path(installed).write_text(json.dumps(index))
    (installed.folder / "docs" / "b.txt").write_text("b\n")
    assert devloop.status()[0].local_changes == 2


def test_the_index_is_only_a_cache(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    (installed.folder / "README.md").write_text(README_V1 + "local note\n")
    (installed.folder / "extra.txt").write_text("mine\n")
    doc = installed.folder / "component.yaml"
    doc.write_text(doc.read_text().replace("retries: 1", "retries: 5"))
    _scan_at(monkeypatch)
    expected = _answer()
    assert expected[0]["local_changes"] == 3 and expected[0]["sync_status"] == "MODIFIED"
    assert _answer() == expected and "lookup" in _entries(installed)
    history = _history(installed)
    path = _index_path(installed)
    good = _index(installed)
    entry = good["folders"]["lookup"]
    # Wrong in every way an entry can be (a crafted one that matches every signature is not corrupt).
    bad_entries: list[Any] = ["x", [], {"modified": "7"}, {**entry, "modified": "7"},
                              {"at": 1, "modified": 7, "files": {}, "state": [None, None]},
                              {**entry, "files": {"README.md": "1:2:3:4"}}, {**entry, "state": "x"},
                              {**entry, "dirs": {"": "0:1:2:3:4"}}, {**entry, "dirs": {"sub": entry["dirs"][""]}},
                              {**entry, "dirs": []}, {**entry, "files": None}]
    corruptions: list[bytes | None] = [None, b"", b"\x00garbage{", b"[]", b'{"version": 99, "folders": {}}',
                                       json.dumps({**good, "version": good["version"] - 1}).encode(),
                                       json.dumps({**good, "folders": []}).encode(),
                                       json.dumps({**good, "directory_times": "yes"}).encode()]
    corruptions += [json.dumps({**good, "folders": {"lookup": bad}}).encode() for bad in bad_entries]
    for corrupt in corruptions:
        if corrupt is None:
            path.unlink()
        else:
            path.write_bytes(corrupt)
        assert _answer() == expected, corrupt
        assert _index(installed)["folders"]["lookup"]["files"] == entry["files"], corrupt  # rewritten, valid
    assert _history(installed) == history  # nothing folded twice


def test_a_changed_state_file_invalidates_the_entry(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    _scan_at(monkeypatch)
    devloop.status()
    assert "lookup" in _entries(installed)
    state = installed.folder.parent / devloop.STATE_DIR
    record = state / "lookup.json"
    original = record.read_text()
    data = json.loads(original)
    data["files"]["README.md"] = "0" * 64
    record.write_text(json.dumps(data))  # in place, as install writes it: same inode
    # README now differs from what the record says (and, with no seen file yet, from what was seen).
    assert devloop.status()[0].local_changes == 1
    assert _history(installed) == ["file:README.md"]
    record.write_text(original)
    assert devloop.status()[0].local_changes == 0
    devloop.status()
    assert "lookup" in _entries(installed)
    # Another command recorded other "seen" hashes: the difference is folded, not skipped.
    (state / "lookup.seen.json").write_text(json.dumps({"files": data["files"]}))
    devloop.status()
    assert _history(installed) == ["file:README.md", "file:README.md"]


def test_edit_and_revert_show_through_the_index(installed: Installed, monkeypatch: pytest.MonkeyPatch) -> None:
    _scan_at(monkeypatch)
    devloop.status()
    devloop.edit_component("lookup", sets=["spec.config.timeout=45"])
    [line] = devloop.status()
    assert line.local_changes == 1 and line.sync_status == "MODIFIED"
    (installed.folder / "README.md").write_text("changed\n")
    assert devloop.status()[0].local_changes == 2
    devloop.status()
    assert _entries(installed)["lookup"]["modified"] == 1
    devloop.revert_component("lookup")
    [line] = devloop.status()
    assert line.local_changes == 0 and line.sync_status == "SYNCED"
    devloop.status()
    assert _entries(installed)["lookup"]["modified"] == 0


def test_a_deleted_folder_is_reported_as_without_the_index(installed: Installed,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    _scan_at(monkeypatch)
    devloop.status()
    assert "lookup" in _entries(installed)
    shutil.rmtree(installed.folder)
    [line] = devloop.status()
    assert line.sync_status == "MODIFIED" and line.local_changes == 2  # README.md and icon.bin gone
    assert line.warning and "component.yaml: the file was deleted" in line.warning
    assert "lookup" not in _entries(installed)
    again = _answer()
    _index_path(installed).unlink()
    assert _answer() == again == [line.model_dump()]
    assert _history(installed) == ["file:README.md", "file:icon.bin"]


def test_upstream_is_the_newest_release_by_semver(installed: Installed) -> None:
    installed.release("1.9.0", {"component.yaml": definition_yaml("1.9.0")})
    sha = installed.release("1.10.0", {"component.yaml": definition_yaml("1.10.0")})
    [line] = devloop.status()
    assert (line.upstream_version, line.upstream_commit) == ("1.10.0", sha)  # not "1.9.0" (text order)
    installed.release("2.0.0-beta.2", {"component.yaml": definition_yaml("2.0.0-beta.2")})
    sha = installed.release("2.0.0-beta.10", {"component.yaml": definition_yaml("2.0.0-beta.10")})
    [line] = devloop.status()
    assert (line.upstream_version, line.upstream_commit) == ("2.0.0-beta.10", sha)
