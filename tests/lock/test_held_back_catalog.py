"""`ls` and `show` read releases as `lock` does: a release whose tag moved (tag ledger MOVED, not
accepted) is held back, never offered as the latest, the newest, or a constraint's choice;
`show NAME@<that version>` still shows it, marked, naming `agentforge repo accept-tag`."""

from __future__ import annotations

from typing import Any

import pytest

from agentforge.errors import ResolutionError
from agentforge.services import lock as lock_svc
from tests.cli.helpers import cli
from tests.lock.conftest import Library, files_for


def _locked(ref: str) -> tuple[str, str]:
    out = lock_svc.resolve_root(ref, compute_checksums=False)
    package = next(p for p in out.lock.packages.values() if p.component == ref.rpartition("/")[2].split("@")[0])
    return package.version, package.commit


def _json(*args: str) -> Any:
    res = cli("--json", *args)
    assert res.code == 0, (args, res.out, res.err)
    return res.json()


def _ls_line(name: str) -> dict[str, Any]:
    return next(d for d in _json("ls") if d["name"] == name)


def test_a_moved_component_tag_is_not_offered_by_ls_or_show(lib: Library) -> None:
    repo = lib.repo("rev", {"g": "1.0.0"}, tag="v1.0.0")
    first_110 = lib.release("rev", {"g": "1.1.0"}, "g@1.1.0")
    lib.sync()
    assert _ls_line("g")["latest"] == "1.1.0" and _locked("rev/g")[0] == "1.1.0"
    # g@1.1.0 is re-pointed at another commit: that release is held back until accepted.
    moved_to = repo.commit(files={"tools/g/main.py": "print('changed')\n"})
    repo.tag("g@1.1.0", moved_to, force=True)
    lib.sync()
    assert lib.q("SELECT state::text FROM repository_tags WHERE tag = 'g@1.1.0'") == [("MOVED",)]
    assert _locked("rev/g")[0] == "1.0.0"

    line = _ls_line("g")
    assert (line["latest"], line["versions"]) == ("1.0.0", ["1.0.0"]), line
    assert line["held_back"] == ["1.1.0"]
    table = cli("ls")
    row = [cell.strip() for cell in next(r for r in table.out.splitlines() if "held back" in r).split("│")]
    assert row[1:5] == ["g", "Tool", "1.0.0", "held back: 1.1.0"], table.out

    shown = _json("show", "rev/g")
    assert (shown["version"], shown["release"], shown["held_back"]) == ("1.0.0", True, False), shown
    assert (shown["versions"], shown["held_back_versions"]) == (["1.0.0"], ["1.1.0"])
    for ref in ("rev/g@^1", "rev/g@latest", "rev/g@*", "rev/g@>=1.0.0"):
        assert _json("show", ref)["version"] == "1.0.0", ref

    # The exact version is still shown, marked, with the command that releases it.
    held = _json("show", "rev/g@1.1.0")
    assert (held["version"], held["commit"], held["release"], held["held_back"]) == ("1.1.0", first_110, False, True)
    assert held["held_back_tags"] == ["g@1.1.0"] and "agentforge repo accept-tag rev g@1.1.0" in held["held_back_reason"]
    assert _json("show", f"rev/g@commit:{first_110[:10]}")["held_back"] is True
    text = cli("show", "rev/g@1.1.0")
    assert text.code == 0 and "held back until `agentforge repo accept-tag rev g@1.1.0`" in text.out, text.out
    # A range only a held-back release satisfies selects nothing, and says why.
    refused = cli("show", "rev/g@^1.1")
    assert refused.code == 2 and "held back: 1.1.0" in refused.err and "accept-tag rev g@1.1.0" in refused.err, \
        refused.err

    # Accepted: the new commit is the 1.1.0 release everywhere.
    assert cli("repo", "accept-tag", "rev", "g@1.1.0").code == 0
    lib.sync()
    line = _ls_line("g")
    assert (line["latest"], line["held_back"]) == ("1.1.0", []), line
    shown = _json("show", "rev/g")
    assert (shown["version"], shown["commit"], shown["held_back"]) == ("1.1.0", moved_to, False)
    assert _locked("rev/g") == ("1.1.0", moved_to)


def test_a_moved_repository_tag_holds_back_every_version_it_released(lib: Library) -> None:
    """v1.2.0 (every component at its commit) moves: `show NAME@^1` picks what `lock` picks."""
    repo = lib.repo("tools", {"rev": "1.0.0", "s": "1.0.0"}, tag="v1.0.0")
    lib.release("tools", {"rev": "1.2.0", "s": "1.2.0"}, "v1.2.0")
    lib.sync()
    other = repo.commit(files={"tools/rev/main.py": "print('moved')\n"})
    repo.tag("v1.2.0", other, force=True)
    lib.sync()
    assert _locked("rev@^1")[0] == "1.0.0"
    assert _json("show", "tools/rev@^1")["version"] == "1.0.0"
    assert _json("show", "rev")["version"] == "1.0.0"
    assert {d["name"]: (d["latest"], d["held_back"]) for d in _json("ls")} == {
        "rev": ("1.0.0", ["1.2.0"]), "s": ("1.0.0", ["1.2.0"])}


def test_an_untouched_copy_of_a_held_back_version_stays_the_release(lib: Library) -> None:
    """v2.0.0 force-moved onto the commit v2.1.0 releases, where c 1.2.1 ships byte-identical:
    `lock` keeps c 1.2.1 at that commit, and so do `ls` and `show` (not the held-back row)."""
    repo = lib.repo("tools", {"c": "1.0.0"})
    held = lib.release("tools", {"c": "1.2.1"}, "v2.0.0")
    newest = lib.release("tools", {"other": "1.0.0"}, "v2.1.0")
    lib.sync()
    repo.tag("v2.0.0", newest, force=True)
    lib.sync()
    assert _locked("c") == ("1.2.1", newest)
    for ref in ("c", "c@1.2.1", "c@^1"):
        shown = _json("show", ref)
        assert (shown["version"], shown["commit"], shown["release"]) == ("1.2.1", newest, True), (ref, shown)
        assert shown["held_back"] is False
    line = _ls_line("c")
    assert (line["latest"], line["held_back"]) == ("1.2.1", []), line
    assert _json("show", f"c@{held}")["held_back"] is True


def test_a_held_back_release_keeps_prereleases_out_of_latest(lib: Library) -> None:
    """The only release that is not a pre-release is held back: `lock c` refuses the pre-release,
    so `ls` names no latest and `show c` shows the held-back release, marked."""
    repo = lib.repo("tools", {"c": "1.0.0"}, tag="v1.0.0")
    lib.release("tools", {"c": "1.1.0-beta.1"}, "v1.1.0-beta.1")
    lib.sync()
    repo.tag("v1.0.0", repo.commit(files=files_for({"c": "1.0.0"})), force=True)
    lib.sync()
    line = _ls_line("c")
    assert (line["latest"], line["versions"]) == (None, ["1.1.0-beta.1"]), line
    assert line["held_back"] == ["1.0.0"]
    shown = _json("show", "c")
    assert (shown["version"], shown["held_back"]) == ("1.0.0", True), shown
    with pytest.raises(ResolutionError):
        _locked("c")
    assert _json("show", "c@1.1.0-beta.1")["release"] is True
