"""kill -9 a pull (three-way merge) at every step: no local change is lost.

The installed ``lookup`` 1.0.0 carries a local field edit (``spec.config.timeout``) and a
direct file edit (README line one); upstream 1.1.0 changes another field and another line.
The pull is killed at each of the devloop's steps. Right after the "restart" (``status``,
which runs the journal recovery), the local edits are on disk; after a re-run of the pull
the folder holds both sides merged, the installed row is 1.1.0 with its local changes, and
no operation, journal or staging folder is left behind.
"""

from __future__ import annotations

import pytest
import yaml

from tests.crash.conftest import assert_nothing_stuck, killed
from tests.crash.driver import PULL_POINTS
from tests.devloop.conftest import README_V1, Installed, definition_yaml

LOCAL_README = README_V1.replace("line one", "line one (local)")
UPSTREAM_README = README_V1.replace("line five", "line five (upstream)")


def _local_edits_present(installed: Installed) -> None:
    doc = yaml.safe_load((installed.folder / "component.yaml").read_text())
    assert doc["spec"]["config"]["timeout"] == 99
    assert "line one (local)" in (installed.folder / "README.md").read_text()


@pytest.mark.parametrize("point", PULL_POINTS)
def test_pull_killed(installed: Installed, point: str) -> None:
    from agentforge.services import devloop

    devloop.edit_component("lookup", sets=["spec.config.timeout=99"], reason="slow backend")
    (installed.folder / "README.md").write_text(LOCAL_README)
    installed.release("1.1.0", {"component.yaml": definition_yaml("1.1.0", config={
        "timeout": 30, "retries": 1, "region": "us"}), "README.md": UPSTREAM_README})

    killed("pull", "lookup", at=point)
    devloop.status()  # the restart: recovery of an interrupted swap runs here
    if point != "pull.commit":  # after the commit the pull is done
        _local_edits_present(installed)

    outcome = devloop.pull_component("lookup")
    assert outcome.result in ("merged", "up-to-date")

    _local_edits_present(installed)
    doc = yaml.safe_load((installed.folder / "component.yaml").read_text())
    assert doc["spec"]["config"]["region"] == "us"
    assert doc["metadata"]["version"] == "1.1.0"
    assert "line five (upstream)" in (installed.folder / "README.md").read_text()
    row = installed.row()
    assert (row["version"], row["has_local_changes"], row["sync_status"]) == ("1.1.0", True, "MODIFIED")
    assert len(installed.q("SELECT 1 FROM components WHERE name = 'lookup' AND is_installed")) == 1
    assert_nothing_stuck(installed.engine)
    root = installed.folder.parent
    assert sorted(p.name for p in root.iterdir() if p.name.startswith(".pull-")) == []
    assert not (root / ".forge" / "lookup.pull-journal.json").exists()
